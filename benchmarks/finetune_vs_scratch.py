"""Fine-tuning a MoCo-pretrained encoder vs training from scratch, with few labels.

Simulated galaxies, dereddened with their known E(B-V) as surveys do (``--observed`` to
skip): an unlabelled pool of ``--n-pool`` images pretrains ``MoCoEmbedder`` (CPU defaults, or
loads ``--embedder``); ``--n-labels`` of them are labelled and split 3-fold.
In each fold, on the same labelled training rows:

- ``PhotoZRegressor(encoder=FrozenEstimator(embedder))``: fine-tuned, backbone at 0.1x lr;
- ``PhotoZRegressor()``: the same architecture trained from scratch;
- a random forest on dereddened aperture photometry measured from the images (the
  photometry-only baseline of ``benchmarks/validate_simulator.py``).

The CNNs are scored on their plain predictions and with ``test_time_augmentation=True`` (the
mean PDF over the eight quarter-turn and mirror images). Prints σ_MAD, outlier fraction and
time per model, and σ_MAD per fold, and writes docs/experiments/finetune_vs_scratch.csv;
``--predictions FILE.npz`` also keeps every out-of-fold prediction, for the paired bootstrap
of ``benchmarks/paired_bootstrap.py`` (which can pool runs of several ``--seed``).

    python benchmarks/finetune_vs_scratch.py [--n-pool 4000] [--n-labels 1000] [--epochs 30]
        [--batch-size 128] [--seed 0] [--predictions out.npz]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import torch
from sklearn.ensemble import RandomForestRegressor
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import KFold

from skphotoz import MoCoEmbedder, PhotoZRegressor
from skphotoz.data import deredden
from skphotoz.datasets import make_sdss_galaxies
from skphotoz.metrics import outlier_fraction, sigma_mad

sys.path.insert(0, str(Path(__file__).parent))
from _output import write_rows  # noqa: E402
from validate_simulator import aperture_features  # noqa: E402

FOREST = "random forest, aperture photometry"


def main():
    defaults = PhotoZRegressor()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-pool", type=int, default=4000)
    parser.add_argument("--n-labels", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=defaults.n_epochs, help="regressor epochs")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr, help="regressor (head) lr")
    parser.add_argument(
        "--backbone-lr-ratio",
        type=float,
        default=defaults.backbone_lr_ratio,
        help="the fine-tuned backbone's lr relative to the head's",
    )
    parser.add_argument("--target-sigma", type=float, default=defaults.target_sigma)
    parser.add_argument(
        "--observed",
        action="store_true",
        help="feed the images as observed; by default they are dereddened with the known "
        "E(B-V) first, as surveys do and as the photometry baseline is",
    )
    parser.add_argument(
        "--embedder",
        default=None,
        help="joblib file: loaded if it exists (it must have been pretrained on this pool), "
        "else written after pretraining",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/experiments/finetune_vs_scratch.csv")
    parser.add_argument(
        "--predictions",
        default=None,
        help="npz file for the out-of-fold predictions of every model (paired_bootstrap.py)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pool = make_sdss_galaxies(args.n_pool, random_state=args.seed)
    X, z = pool.images, pool.redshift
    if not args.observed:
        X = deredden(X, pool.extinction)
    if args.embedder and Path(args.embedder).exists():
        embedder = joblib.load(args.embedder)
        if embedder.input_shape_ != X.shape[1:]:
            raise SystemExit(f"{args.embedder} was fitted on samples of another shape")
        pretrain_s = float(sum(h["time_s"] for h in embedder.history_))
    else:
        tick = time.perf_counter()
        embedder = MoCoEmbedder(random_state=args.seed, device="cpu").fit(X)
        pretrain_s = time.perf_counter() - tick
        if args.embedder:
            joblib.dump(embedder, args.embedder)

    rng = np.random.default_rng(args.seed)
    labelled = np.sort(rng.choice(args.n_pool, args.n_labels, replace=False))
    photometry = aperture_features(pool.images[labelled], pool.extinction[labelled])
    common = dict(
        n_epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        target_sigma=args.target_sigma, random_state=args.seed, device="cpu",
    )  # fmt: skip
    models = {
        "fine-tuned (MoCo pretrained)": lambda: PhotoZRegressor(
            encoder=FrozenEstimator(embedder), backbone_lr_ratio=args.backbone_lr_ratio, **common
        ),
        "from scratch (supervised)": lambda: PhotoZRegressor(**common),
    }
    names = [f"{name}{tta}" for name in models for tta in ("", ", TTA")] + [FOREST]
    results = {name: [] for name in names}
    timings = {name: 0.0 for name in names}
    test_rows, test_folds = [], []
    for fold, (train, test) in enumerate(
        KFold(3, shuffle=True, random_state=args.seed).split(labelled)
    ):
        rows_train, rows_test = labelled[train], labelled[test]
        test_rows.append(rows_test)
        test_folds.append(np.full(len(rows_test), fold))
        for name, make in models.items():
            tick = time.perf_counter()
            model = make().fit(X[rows_train], z[rows_train])
            timings[name] += time.perf_counter() - tick
            for tta in (False, True):
                key = f"{name}{', TTA' if tta else ''}"
                tick = time.perf_counter()
                model.set_params(test_time_augmentation=tta)
                results[key].append((z[rows_test], model.predict(X[rows_test])))
                timings[key] += time.perf_counter() - tick
                score = sigma_mad(*results[key][-1])
                print(f"fold {fold}: {key}: sigma_MAD {score:.4f}", flush=True)
        tick = time.perf_counter()
        forest = RandomForestRegressor(
            n_estimators=200, min_samples_leaf=3, max_features=0.5, n_jobs=args.threads,
            random_state=args.seed,
        ).fit(photometry[train], z[rows_train])  # fmt: skip
        results[FOREST].append((z[rows_test], forest.predict(photometry[test])))
        timings[FOREST] += time.perf_counter() - tick
        print(f"fold {fold}: {FOREST}: sigma_MAD {sigma_mad(*results[FOREST][-1]):.4f}", flush=True)

    print(
        f"\n{args.n_pool} simulated galaxies (unlabelled pool), {args.n_labels} labelled, "
        f"3-fold CV; MoCo pretraining {pretrain_s:.0f} s; {args.epochs} training epochs of "
        f"batch {args.batch_size}, lr {args.lr} (fine-tuned backbone x{args.backbone_lr_ratio}), "
        f"target_sigma {args.target_sigma}; "
        f"images {'as observed' if args.observed else 'dereddened'}"
    )
    print(f"{'model':<40} {'sigma_MAD':>16} {'eta':>7} {'s (fit or predict)':>19}  per fold")
    rows = []
    for name, folds in results.items():
        sigmas = np.array([sigma_mad(t, p) for t, p in folds])
        etas = np.array([outlier_fraction(t, p) for t, p in folds])
        per_fold = " ".join(f"{s:.4f}" for s in sigmas)
        print(
            f"{name:<40} {sigmas.mean():>8.4f} ± {sigmas.std():.4f} {etas.mean():>7.3f} "
            f"{timings[name]:>19.0f}  {per_fold}"
        )
        rows.append(
            dict(
                model=name,
                sigma_mad=round(sigmas.mean(), 5),
                sigma_mad_std=round(sigmas.std(), 5),
                sigma_mad_folds=per_fold,
                outlier_fraction=round(etas.mean(), 4),
                seconds=round(timings[name], 1),
                n_pool=args.n_pool,
                n_labels=args.n_labels,
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                backbone_lr_ratio=args.backbone_lr_ratio,
                target_sigma=args.target_sigma,
                images="observed" if args.observed else "dereddened",
                pretrain_s=round(pretrain_s, 1),
                seed=args.seed,
            )
        )
    if args.predictions:
        np.savez(
            args.predictions,
            models=np.array(names),
            row=np.concatenate(test_rows),
            fold=np.concatenate(test_folds),
            z_true=np.concatenate([t for t, _ in results[names[0]]]),
            z_pred=np.stack([np.concatenate([p for _, p in results[n]]) for n in names]),
            seed=args.seed,
            config=str(rows[0]),
        )
        print(f"wrote {args.predictions}")
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
