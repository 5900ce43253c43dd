"""Is a float16 copy of the stamps good enough to train and embed from? (``cache="float16"``)

``HDF5Images(path, cache="float16")`` keeps the stamps read in memory in float16: half the
memory of float32, each value rounded to 11 significant bits. This measures what that
rounding does, on simulated galaxies, clean and with neighbours and stars, against the things
it could spoil:

1. the pixels: RMS rounding error per band in units of the band's pixel noise, the largest
   error in those units, and the largest relative error of values in float16's normal range
   (below 6.1e-5 the error is at most 3e-8 in absolute terms);
2. the aperture photometry (the 11 features of ``AperturePhotometry``): RMS change of each
   feature in magnitudes, against the feature's spread over the galaxies;
3. the embeddings of a pretrained embedder: the cosine similarity of each
   galaxy's embedding of the rounded stamps to that of the exact ones, and the 5-fold kNN
   (k = 10) photo-z σ_MAD on each, on the same folds.

    python benchmarks/cache_precision.py --n 4000 --pretrain-epochs 5 [--contaminated]

``--load EMBEDDER`` probes a saved embedder instead of pretraining one; with neither, the
embedder part is skipped. Rows are appended to ``--out``
(benchmarks/results/cache_precision.csv).
"""

from __future__ import annotations

import argparse
import csv
import os
import time

import joblib
import numpy as np
import torch

from skphotoz import MoCoEmbedder
from skphotoz.data import deredden
from skphotoz.datasets import make_sdss_galaxies
from skphotoz.nn.scaling import band_noise
from skphotoz.preprocessing import AperturePhotometry

try:  # run as a script: benchmarks/ is on the path
    from moco_quality import knn_scores
except ImportError:  # imported as benchmarks.cache_precision
    from benchmarks.moco_quality import knn_scores

FIELDS = ("run", "config", "n", "measure", "what", "value", "note")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--contaminated", action="store_true",
                        help="neighbour_fraction=0.3, star_fraction=0.1")  # fmt: skip
    parser.add_argument("--load", default=None, help="a fitted MoCoEmbedder (joblib)")
    parser.add_argument(
        "--pretrain-epochs", type=int, default=0,
        help="without --load: pretrain a plain-MoCo embedder for this many epochs on the exact "
        "stamps (0: no embedder part)",
    )  # fmt: skip
    parser.add_argument("--out", default="benchmarks/results/cache_precision.csv")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    contamination = {"neighbour_fraction": 0.3, "star_fraction": 0.1} if args.contaminated else {}
    config = "contaminated" if args.contaminated else "clean"
    sample = make_sdss_galaxies(args.n, random_state=args.seed, **contamination)
    # Dereddened, as the photo-z studies feed them (and as an archive opened with
    # deredden=True is cached: the cache holds the stored stamps, dereddened on each read).
    exact = deredden(sample.images, sample.extinction).astype(np.float32)
    stored16 = sample.images.astype(np.float16).astype(np.float32)
    rounded = deredden(stored16, sample.extinction).astype(np.float32)
    run = time.strftime("%Y-%m-%d %H:%M")
    rows = []

    def add(measure, what, value, note=""):
        rows.append(dict(run=run, config=config, n=args.n, measure=measure, what=what,
                         value=float(value), note=note))  # fmt: skip
        print(f"{config:13s} {measure:42s} {what:16s} {float(value):.4g} {note}")

    # 1. Pixels.
    noise = band_noise(exact)
    error = rounded - exact
    for b, band in enumerate("ugriz"):
        add("pixel RMS error / pixel noise", band, np.sqrt(np.mean(error[:, b] ** 2)) / noise[b])
    add(
        "largest pixel error / pixel noise",
        "all",
        np.max(np.abs(error) / noise[None, :, None, None]),
    )
    # float16's normal numbers, among the stored values (the cache rounds them, then
    # dereddens): relative to the value, the rounding is at most 2**-11 there
    normal = np.abs(sample.images) >= np.finfo(np.float16).tiny
    add("largest relative pixel error, |value| >= 6.1e-5", "all",
        np.max(np.abs(error[normal] / exact[normal])))  # fmt: skip
    add("largest |value| (float16 max 65504)", "all", np.abs(sample.images).max())

    # 2. Aperture photometry.
    phot = AperturePhotometry().fit(exact)
    f_exact, f_rounded = phot.transform(exact), phot.transform(rounded)
    names = getattr(phot, "get_feature_names_out", lambda: None)()
    for j in range(f_exact.shape[1]):
        diff = f_rounded[:, j] - f_exact[:, j]
        spread = np.std(f_exact[:, j])
        name = str(names[j]) if names is not None else f"feature {j}"
        add("photometry RMS change (mag)", name, np.sqrt(np.mean(diff**2)),
            f"feature spread {spread:.3f} mag")  # fmt: skip

    # 3. Embeddings and the kNN probe.
    if args.load or args.pretrain_epochs:
        if args.load:
            embedder = joblib.load(args.load)
        else:
            embedder = MoCoEmbedder(
                n_epochs=args.pretrain_epochs, photometry_weight=0.0, random_state=args.seed,
                device="cpu",
            ).fit(exact)  # fmt: skip
        e_exact, e_rounded = embedder.transform(exact), embedder.transform(rounded)
        cosine = np.sum(e_exact * e_rounded, axis=1) / (
            np.linalg.norm(e_exact, axis=1) * np.linalg.norm(e_rounded, axis=1)
        )
        add("embedding cosine, rounded vs exact", "median", np.median(cosine))
        add("embedding cosine, rounded vs exact", "minimum", np.min(cosine))
        z = sample.redshift
        for name, features in (("exact", e_exact), ("float16", e_rounded)):
            sigma, eta = knn_scores(features, z, args.seed)
            add("kNN (k=10) sigma_MAD on the embeddings", name, sigma, f"outliers {eta:.4f}")

    new = not os.path.exists(args.out)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} rows appended to {args.out}")


if __name__ == "__main__":
    main()
