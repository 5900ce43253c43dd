"""Label-efficiency study: pretrained, semi-supervised and from-scratch networks vs the forest.

For each seed: a new pool of simulated SDSS galaxies (dereddened 64x64 stamps) and
:func:`skphotoz.model_selection.label_efficiency_curve` of these models over the same splits
and label subsets:

- ``colour MoCo``: ``PhotoZRegressor(FrozenEstimator(embedder))`` with the embedder pretrained,
  without labels, on all the pool's images with InfoNCE and the photometry term
  (``MoCoEmbedder`` defaults);
- ``plain MoCo``: the same with InfoNCE alone (``photometry_weight=0``), MoCo v2;
- ``semi-supervised``: ``PhotoZRegressor(MoCoEmbedder(redshift_weight=1))``: each fit
  pretrains on its training rows with InfoNCE, the photometry term and the redshift term on
  the rows labelled at that budget, then fine-tunes (one pretraining per fit: the slow one);
- ``from scratch``: ``PhotoZRegressor()``, the fully supervised baseline;
- ``forest``: ``make_pipeline(AperturePhotometry(), RandomForestRegressor())`` on the same
  images.

The seeds are pooled (each seed's galaxies are its own repeat) and the models compared with
paired bootstraps over the test galaxies: the label-efficiency factor k of each network
against from scratch (labels from scratch needs for the network's σ_MAD) and σ_MAD
differences at each budget. Prints the tables and writes a CSV, the figure and (``--curves``)
the pooled curves, which a later run can take with ``--reuse`` instead of refitting them.

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

MODELS = ("semi-supervised", "colour MoCo", "plain MoCo", "from scratch", "forest")
NETWORKS = ("semi-supervised", "colour MoCo", "plain MoCo")


def build(name: str, X, seed: int, args):
    """The estimator of model ``name`` for one seed's pool (pretrained here if frozen)."""
    network = dict(
        batch_size=args.batch_size, min_steps=args.min_steps, random_state=0, device=args.device
    )
    moco = dict(n_epochs=args.moco_epochs, random_state=seed, device=args.device)
    if name in ("colour MoCo", "plain MoCo"):
        weight = {} if name == "colour MoCo" else {"photometry_weight": 0.0}
        tick = time.perf_counter()
        embedder = MoCoEmbedder(**moco, **weight).fit(X)
        print(f"  {name}: pretrained on {len(X)} galaxies in {time.perf_counter() - tick:.0f} s")
        return PhotoZRegressor(FrozenEstimator(embedder), **network)
    if name == "semi-supervised":
        return PhotoZRegressor(MoCoEmbedder(**moco, redshift_weight=1.0), **network)
    if name == "from scratch":
        return PhotoZRegressor(**network)
    forest = RandomForestRegressor(
        n_estimators=200, min_samples_leaf=3, max_features=0.5, n_jobs=args.threads, random_state=0
    )
    return make_pipeline(AperturePhotometry(), forest)


def run_seed(seed: int, names, args) -> dict:
    started = time.perf_counter()
    pool = make_sdss_galaxies(args.pool, random_state=seed, stamp_size=64)
    X = deredden(pool.images, pool.extinction).astype(np.float32)
    z = pool.redshift
    print(f"seed {seed}: {args.pool} galaxies")
    curves = {}
    for name in names:
        estimator = build(name, X, seed, args)
        tick = time.perf_counter()
        curves[name] = label_efficiency_curve(
            estimator, X, z, label_counts=args.budgets, cv=args.cv, random_state=seed
        )
        curves[name].name = name
        sigma = curves[name].sigma_mad()[:, 0]
        print(
            f"  {name:<15} σ_MAD "
            + " ".join(f"{s:.4f}" for s in sigma)
            + f"   ({time.perf_counter() - tick:.0f} s)",
            flush=True,
        )
    print(f"  seed done in {time.perf_counter() - started:.0f} s", flush=True)
    return curves


def _common(a: LabelEfficiencyCurve, b: LabelEfficiencyCurve):
    """Both curves at their common budgets."""
    counts = np.intersect1d(a.label_counts, b.label_counts)
    return a.select(counts), b.select(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=2000, help="galaxies simulated per seed")
    parser.add_argument("--budgets", type=int, nargs="+", default=[100, 250, 500, 1000])
    parser.add_argument("--cv", type=int, default=2, help="folds (test share 1/cv)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--models", nargs="+", default=list(MODELS), choices=MODELS, metavar="MODEL",
        help=f"models to fit, of {', '.join(MODELS)} (default: all)",
    )  # fmt: skip
    parser.add_argument(
        "--reuse", nargs="*", default=[], metavar="PICKLE",
        help="pooled curves saved by --curves of earlier runs (same pool, seeds and cv): their "
        "models are not refitted (the comparisons refuse curves of other test splits)",
    )  # fmt: skip
    parser.add_argument("--moco-epochs", type=int, default=30)
    parser.add_argument("--min-steps", type=int, default=1000, help="PhotoZRegressor.min_steps")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", default="docs/label_efficiency.csv")
    parser.add_argument("--figure", default="docs/img/label_efficiency.png")
    parser.add_argument("--curves", default=None, help="pickle of the pooled curves (optional)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    pooled: dict[str, LabelEfficiencyCurve] = {}
    for path in args.reuse:
        with open(path, "rb") as f:
            pooled.update(pickle.load(f))
    todo = [name for name in args.models if name not in pooled]
    if todo:
        runs = [run_seed(seed, todo, args) for seed in args.seeds]
        for name in todo:
            pooled[name] = LabelEfficiencyCurve.concatenate([run[name] for run in runs])
    pooled = {name: pooled[name] for name in MODELS if name in pooled}
    if args.curves:
        with open(args.curves, "wb") as f:
            pickle.dump(pooled, f)

    rows = []
    print("\nσ_MAD pooled over the seeds (mean of the per-seed σ_MAD), η, bias")
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
            f"  {name:<15} "
            + "  ".join(
                f"{n}: {sigma[b].mean():.4f} ({100 * eta[b]:.1f}%)"
                for b, n in enumerate(curve.label_counts)
            )
        )

    blank = {"outlier_fraction": "", "bias": "", "fit_s_mean": ""}
    marks = {-1: "<=", 0: "", 1: ">="}
    if "from scratch" in pooled:
        print("\nlabel-efficiency factor k: labels from scratch needs for the network's σ_MAD")
        for name in NETWORKS:
            if name not in pooled:
                continue
            # k reads the from-scratch curve at every budget it has (up to 2N and beyond).
            factor = label_efficiency_factor(
                pooled[name], pooled["from scratch"], n_bootstrap=args.bootstrap, random_state=0
            )
            for b, n in enumerate(factor.label_counts):
                print(
                    f"  {name:<15} {n:>5} labels: k {marks[int(factor.censored[b])]}"
                    f"{factor.factor[b]:.2f} [{factor.low[b]:.2f}, {factor.high[b]:.2f}]"
                )
                rows.append(
                    {
                        "model": f"k {name} vs from scratch",
                        "labels": int(n),
                        "sigma_mad": round(float(factor.factor[b]), 3),
                        "sigma_mad_per_seed": f"[{factor.low[b]:.3f}, {factor.high[b]:.3f}] "
                        f"censored={int(factor.censored[b])}",
                        **blank,
                    }
                )
    print("\npaired σ_MAD differences (a − b; negative: a better), 95% bootstrap intervals")
    # Each model against every model listed after it (MODELS runs from the newest method to
    # the photometry baseline).
    pairs = [
        (a, b)
        for a in MODELS
        for b in MODELS
        if a in pooled and b in pooled and MODELS.index(a) < MODELS.index(b)
    ]
    for a, b in pairs:
        left, right = _common(pooled[a], pooled[b])
        diff = paired_difference(left, right, n_bootstrap=args.bootstrap, random_state=0)
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
                    **blank,
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
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
