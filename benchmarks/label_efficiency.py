"""Label-efficiency study: fine-tuned vs from-scratch networks vs the photometry forest.

For each seed: a new pool of simulated SDSS galaxies (dereddened 64x64 stamps), a MoCo encoder
pretrained on all its images (labels unused), and :func:`skphotoz.model_selection.
label_efficiency_curve` of three models over the same splits and label subsets:

- ``fine-tuned``: ``PhotoZRegressor(FrozenEstimator(embedder))``;
- ``from scratch``: ``PhotoZRegressor()``, the fully supervised baseline;
- ``forest``: ``make_pipeline(AperturePhotometry(), RandomForestRegressor())`` on the same
  images.

The seeds are pooled (each seed's galaxies are its own repeat) and the models compared with
paired bootstraps over the test galaxies: the label-efficiency factor k (labels from scratch
needs for the fine-tuned σ_MAD) and σ_MAD differences at each budget. Prints the tables and
writes a CSV, the figure and the out-of-fold predictions.

    python benchmarks/label_efficiency.py --pool 2000 --budgets 100 250 500 1000 --cv 2 \\
        --seeds 0 1 2 --moco-epochs 30 --min-steps 400 --batch-size 64
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.ensemble import RandomForestRegressor
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import make_pipeline

from skphotoz import MoCoEmbedder, PhotoZRegressor
from skphotoz.data import deredden
from skphotoz.datasets import make_sdss_galaxies
from skphotoz.metrics import bias, outlier_fraction
from skphotoz.model_selection import (
    LabelEfficiencyCurve,
    label_efficiency_curve,
    label_efficiency_factor,
    paired_difference,
)
from skphotoz.preprocessing import AperturePhotometry

sys.path.insert(0, str(Path(__file__).parent))
from _output import write_rows  # noqa: E402

MODELS = ("fine-tuned", "from scratch", "forest")


def models(embedder, args) -> dict:
    network = dict(
        batch_size=args.batch_size, min_steps=args.min_steps, random_state=0, device=args.device
    )
    forest = RandomForestRegressor(
        n_estimators=200, min_samples_leaf=3, max_features=0.5, n_jobs=args.threads, random_state=0
    )
    return {
        "fine-tuned": PhotoZRegressor(FrozenEstimator(embedder), **network),
        "from scratch": PhotoZRegressor(**network),
        "forest": make_pipeline(AperturePhotometry(), forest),
    }


def run_seed(seed: int, args) -> dict:
    started = time.perf_counter()
    pool = make_sdss_galaxies(args.pool, random_state=seed, stamp_size=64)
    X = deredden(pool.images, pool.extinction).astype(np.float32)
    z = pool.redshift
    tick = time.perf_counter()
    embedder = MoCoEmbedder(n_epochs=args.moco_epochs, random_state=seed, device=args.device)
    embedder.fit(X)
    pretrain_s = time.perf_counter() - tick
    print(f"seed {seed}: {args.pool} galaxies; MoCo, {args.moco_epochs} epochs: {pretrain_s:.0f} s")
    curves = {}
    for name, estimator in models(embedder, args).items():
        tick = time.perf_counter()
        curves[name] = label_efficiency_curve(
            estimator, X, z, label_counts=args.budgets, cv=args.cv, random_state=seed
        )
        curves[name].name = name
        sigma = curves[name].sigma_mad()[:, 0]
        print(
            f"  {name:<13} σ_MAD "
            + " ".join(f"{s:.4f}" for s in sigma)
            + f"   ({time.perf_counter() - tick:.0f} s)"
        )
    print(f"  seed done in {time.perf_counter() - started:.0f} s")
    return {"curves": curves, "pretrain_s": pretrain_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=2000, help="galaxies simulated per seed")
    parser.add_argument("--budgets", type=int, nargs="+", default=[100, 250, 500, 1000])
    parser.add_argument("--cv", type=int, default=2, help="folds (test share 1/cv)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--moco-epochs", type=int, default=30)
    parser.add_argument("--min-steps", type=int, default=1000, help="PhotoZRegressor.min_steps")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", default="docs/label_efficiency.csv")
    parser.add_argument("--figure", default="docs/img/label_efficiency.png")
    parser.add_argument("--curves", default=None, help="pickle of the curves (optional)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    runs = [run_seed(seed, args) for seed in args.seeds]
    pooled = {
        name: LabelEfficiencyCurve.concatenate([run["curves"][name] for run in runs])
        for name in MODELS
    }
    if args.curves:
        with open(args.curves, "wb") as f:
            pickle.dump(pooled, f)

    rows = []
    print(f"\nσ_MAD pooled over seeds {args.seeds} (mean of the per-seed σ_MAD), η, bias")
    for name, curve in pooled.items():
        sigma = curve.sigma_mad()
        eta = curve.pooled(outlier_fraction).mean(axis=1)
        shift = curve.pooled(bias).mean(axis=1)
        for b, n in enumerate(curve.label_counts):
            rows.append(
                {
                    "model": name,
                    "labels": int(n),
                    "sigma_mad": round(float(sigma[b].mean()), 5),
                    "sigma_mad_per_seed": " ".join(f"{v:.4f}" for v in sigma[b]),
                    "outlier_fraction": round(float(eta[b]), 4),
                    "bias": round(float(shift[b]), 5),
                    "fit_s_mean": round(float(curve.fit_times[b].mean()), 1),
                }
            )
        print(
            f"  {name:<13} "
            + "  ".join(
                f"{n}: {sigma[b].mean():.4f} ({100 * eta[b]:.1f}%)"
                for b, n in enumerate(curve.label_counts)
            )
        )

    factor = label_efficiency_factor(
        pooled["fine-tuned"], pooled["from scratch"], n_bootstrap=args.bootstrap, random_state=0
    )
    print("\nlabel-efficiency factor k: labels from scratch needs for the fine-tuned σ_MAD")
    marks = {-1: "<=", 0: "", 1: ">="}
    for b, n in enumerate(factor.label_counts):
        print(
            f"  {n:>5} labels: k {marks[int(factor.censored[b])]}{factor.factor[b]:.2f} "
            f"[{factor.low[b]:.2f}, {factor.high[b]:.2f}]"
        )
        rows.append(
            {
                "model": "k fine-tuned vs from scratch",
                "labels": int(n),
                "sigma_mad": round(float(factor.factor[b]), 3),
                "sigma_mad_per_seed": f"[{factor.low[b]:.3f}, {factor.high[b]:.3f}] "
                f"censored={int(factor.censored[b])}",
                "outlier_fraction": "",
                "bias": "",
                "fit_s_mean": "",
            }
        )
    print("\npaired σ_MAD differences (a − b; negative: a better), 95% bootstrap intervals")
    for a, b in (
        ("fine-tuned", "from scratch"),
        ("fine-tuned", "forest"),
        ("from scratch", "forest"),
    ):
        diff = paired_difference(pooled[a], pooled[b], n_bootstrap=args.bootstrap, random_state=0)
        for i, n in enumerate(diff.label_counts):
            print(
                f"  {a} − {b}, {n:>5} labels: {diff.difference[i]:+.4f} "
                f"[{diff.low[i]:+.4f}, {diff.high[i]:+.4f}]  P(a better) "
                f"{diff.prob_a_better[i]:.2f}"
            )
            rows.append(
                {
                    "model": f"{a} - {b}",
                    "labels": int(n),
                    "sigma_mad": round(float(diff.difference[i]), 5),
                    "sigma_mad_per_seed": f"[{diff.low[i]:+.5f}, {diff.high[i]:+.5f}] "
                    f"P={diff.prob_a_better[i]:.2f}",
                    "outlier_fraction": "",
                    "bias": "",
                    "fit_s_mean": "",
                }
            )
    write_rows(args.out, rows)
    try:
        import matplotlib

        matplotlib.use("Agg")
        from skphotoz.plotting import LabelEfficiencyDisplay

        display = LabelEfficiencyDisplay.from_curves(list(pooled.values()))
        display.figure_.savefig(args.figure, dpi=110, bbox_inches="tight")
        print(f"wrote {args.figure}")
    except ImportError as error:
        print(f"(no figure: {error})")
    pretrain = [run["pretrain_s"] for run in runs]
    print(
        f"\ntotal {time.perf_counter() - started:.0f} s; MoCo pretraining "
        + ", ".join(f"{s:.0f} s" for s in pretrain)
    )


if __name__ == "__main__":
    main()
