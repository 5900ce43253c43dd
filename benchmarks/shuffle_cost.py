"""What a block-shuffled epoch (``shuffle_buffer``) costs in accuracy against a full shuffle.

A block shuffle reads an archive in contiguous blocks of 64 galaxies, in random order,
``shuffle_buffer`` galaxies at a time, and shuffles within each buffer: each batch then comes
from one stretch of the archive. Where the archive's order is unrelated to the galaxies this
changes nothing but the random draw. The cost shows where the order follows a property of the
galaxies, as in a survey archive sorted by sky position, where neighbours share their dust
and observing conditions: here the archive is sorted by E(B-V), which varies across the sky.

For each seed, on the same simulated galaxies written to an archive in that order
(dereddened on read; the embedder reads it lazily, the regressor its labelled rows, which keep
the archive's order):

1. ``MoCoEmbedder`` pretrained with a full shuffle and with ``shuffle_buffer``; the 5-fold
   kNN (k = 10) photo-z σ_MAD of each one's embeddings (the kNN probe);
2. ``PhotoZRegressor`` from scratch on the first half of a random split (the labels) with each
   shuffle; σ_MAD on the other half;

and the paired differences (block - full). Rows go to ``--out`` after each fit; ``--reuse``
skips the (seed, model, shuffle) already there.

    python benchmarks/shuffle_cost.py --n 2000 --seeds 0 1 --shuffle-buffer 256
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time

import numpy as np
import torch

from skphotoz import MoCoEmbedder, PhotoZRegressor
from skphotoz.data import open_archive, write_archive
from skphotoz.datasets import make_sdss_galaxies
from skphotoz.metrics import sigma_mad

try:  # run as a script: benchmarks/ is on the path
    from moco_quality import knn_scores
except ImportError:  # imported as benchmarks.shuffle_cost
    from benchmarks.moco_quality import knn_scores

FIELDS = ("run", "seed", "n", "order", "model", "shuffle", "sigma_mad", "outliers", "fit_s")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--shuffle-buffer", type=int, default=256)
    parser.add_argument("--moco-epochs", type=int, default=8)
    parser.add_argument("--min-steps", type=int, default=300, help="PhotoZRegressor's min_steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/shuffle_cost.csv")
    parser.add_argument("--reuse", action="store_true", help="keep the rows already in --out")
    parser.add_argument(
        "--models", nargs="+", choices=["moco", "photoz"], default=["moco", "photoz"],
        help="which of the two studies to run (default: both)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    if args.reuse and os.path.exists(args.out):
        with open(args.out, newline="") as f:
            rows = list(csv.DictReader(f))
    done = {(int(r["seed"]), r["model"], r["shuffle"]) for r in rows}
    run = time.strftime("%Y-%m-%d %H:%M")
    folder = tempfile.mkdtemp(prefix="skphotoz-shuffle-")

    def save():
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    for seed in args.seeds:
        sample = make_sdss_galaxies(args.n, random_state=seed, stamp_size=64)
        order = np.argsort(sample.extinction[:, 2], kind="stable")  # sorted by dust (A_r)
        path = os.path.join(folder, f"sorted-{seed}.h5")
        write_archive(
            path,
            sample.images[order],
            extinction=sample.extinction[order],
            redshift=sample.redshift[order],
        )
        archive = open_archive(path, deredden=True)
        z = archive.redshift
        labelled = np.zeros(args.n, bool)
        labelled[np.random.default_rng(seed).permutation(args.n)[: args.n // 2]] = True
        for shuffle in (None, args.shuffle_buffer):
            name = "full" if shuffle is None else str(shuffle)
            if "moco" in args.models and (seed, "MoCo kNN probe", name) not in done:
                started = time.perf_counter()
                embedder = MoCoEmbedder(
                    n_epochs=args.moco_epochs, random_state=seed, device="cpu",
                    shuffle_buffer=shuffle,
                ).fit(archive.images)  # fmt: skip
                fit_s = time.perf_counter() - started
                sigma, eta = knn_scores(embedder.transform(archive.images), z, seed)
                rows.append(dict(run=run, seed=seed, n=args.n, order="sorted by A_r",
                                 model="MoCo kNN probe", shuffle=name, sigma_mad=sigma,
                                 outliers=eta, fit_s=round(fit_s)))  # fmt: skip
                save()
                print(rows[-1], flush=True)
            photoz_key = (seed, "PhotoZRegressor from scratch", name)
            if "photoz" in args.models and photoz_key not in done:
                started = time.perf_counter()
                train = np.flatnonzero(labelled)
                model = PhotoZRegressor(
                    min_steps=args.min_steps, random_state=seed, device="cpu",
                    shuffle_buffer=shuffle,
                )  # fmt: skip
                model.fit(archive.images[train], z[train])
                fit_s = time.perf_counter() - started
                test = np.flatnonzero(~labelled)
                predicted = model.predict(archive.images[test])
                outliers = np.mean(np.abs(predicted - z[test]) / (1 + z[test]) > 0.05)
                rows.append(dict(run=run, seed=seed, n=args.n, order="sorted by A_r",
                                 model="PhotoZRegressor from scratch", shuffle=name,
                                 sigma_mad=sigma_mad(z[test], predicted), outliers=outliers,
                                 fit_s=round(fit_s)))  # fmt: skip
                save()
                print(rows[-1], flush=True)
        archive.images.close()
        os.remove(path)

    print("\npaired differences, block - full (σ_MAD):")
    for model in ("MoCo kNN probe", "PhotoZRegressor from scratch"):
        diffs = []
        for seed in args.seeds:
            by = {r["shuffle"]: float(r["sigma_mad"]) for r in rows
                  if int(r["seed"]) == seed and r["model"] == model}  # fmt: skip
            if "full" in by and len(by) == 2:
                other = next(v for k, v in by.items() if k != "full")
                diffs.append(other - by["full"])
                print(f"  {model:30s} seed {seed}: full {by['full']:.4f}, block {other:.4f}, "
                      f"difference {other - by['full']:+.4f}")  # fmt: skip
        if diffs:
            print(f"  {model:30s} mean difference {np.mean(diffs):+.4f} over {len(diffs)} seeds")


if __name__ == "__main__":
    main()
