"""Label-selection study: which galaxies to label, against random labels, at small budgets.

For each seed: a new pool of simulated SDSS galaxies (dereddened 64x64 stamps; with
``--contaminated``, 30 % with a neighbouring galaxy and 10 % with a star), split as in the
label-efficiency study (``--cv`` random folds; the test galaxies are always a random split), and
for each model and strategy a :func:`skphotoz.model_selection.label_efficiency_curve` whose
labelled rows at each budget are chosen by the strategy among the split's training rows, on
the standardised aperture photometry of the pool (11 features). ``random`` is the plain curve
(random labels), so every strategy is compared with it on the same test galaxies:

- σ_MAD and outlier fraction η (``|dz| > 0.05``) pooled over the seeds, per budget;
- paired bootstrap differences strategy − random of σ_MAD and of η, with 95 % intervals;
- the label-efficiency factor k on σ_MAD (random labels needed / strategy labels).

Models: ``GP`` (the Gaussian process on aperture photometry, the strongest photometry
baseline) and ``hybrid fine-tuned`` (``PhotoZRegressor(FrozenEstimator(plain embedder),
photometry=True)``; its embedder is pretrained once per seed without labels, or reused from
``--partial`` of this script or of ``label_efficiency.py`` with the same settings).

Every (seed, model, strategy) curve is kept in ``--partial`` as it is finished and reused by a
later run with the same settings.

    python benchmarks/label_selection.py --pool 4000 --cv 2 --budgets 50 100 250 500 \\
        --seeds 0 1 2 --models GP --partial benchmarks/results/label_selection_partial
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import torch
from sklearn.frozen import FrozenEstimator
from sklearn.preprocessing import StandardScaler

from skphotoz import MoCoEmbedder, PhotoZRegressor
from skphotoz.baselines import GaussianProcessPhotoZ, photometry_baseline
from skphotoz.data import deredden
from skphotoz.datasets import make_sdss_galaxies
from skphotoz.metrics import outlier_fraction
from skphotoz.model_selection import (
    LabelEfficiencyCurve,
    label_efficiency_curve,
    label_efficiency_factor,
    paired_difference,
)
from skphotoz.preprocessing import AperturePhotometry
from skphotoz.selection import (
    CellSelection,
    CoverageSelection,
    MixedSelection,
    TypicalSelection,
    UncertaintySelection,
)

sys.path.insert(0, str(Path(__file__).parent))
from _output import write_rows  # noqa: E402

MODELS = ("GP", "hybrid fine-tuned")


def strategies() -> dict:
    """Every strategy measured, by name (``random`` is no strategy: random labels)."""
    gp = GaussianProcessPhotoZ(n_restarts=0, random_state=0)
    return {
        "random": None,
        "typical": TypicalSelection(),
        "cells": CellSelection(),
        "cells_centre": CellSelection(within="centre"),
        "coverage": CoverageSelection(),
        "typical+coverage": MixedSelection(TypicalSelection(), CoverageSelection()),
        "uncertainty": UncertaintySelection(gp, initial=TypicalSelection(), n_rounds=2),
    }


STRATEGIES = tuple(strategies())


def simulate(seed: int, args):
    contamination = {"neighbour_fraction": 0.3, "star_fraction": 0.1} if args.contaminated else {}
    pool = make_sdss_galaxies(args.pool, random_state=seed, stamp_size=64, **contamination)
    images = deredden(pool.images, pool.extinction).astype(np.float32)
    features = StandardScaler().fit_transform(AperturePhotometry().fit_transform(images))
    return images, pool.redshift, features


def settings(args) -> str:
    return (
        f"pool{args.pool}-cv{args.cv}-m{args.min_steps}-bs{args.batch_size}-e{args.moco_epochs}"
        f"-r{args.gp_restarts}{'-contaminated' if args.contaminated else ''}"
    )


def embedder(seed: int, X, args):
    """The seed's plain MoCo embedder: reused from --embedders (label_efficiency.py's partial
    directory of the same settings) or pretrained here once and kept."""
    for directory in filter(None, [args.embedders, args.partial and Path(args.partial)]):
        for path in sorted(Path(directory).glob(f"**/seed{seed}-plain_embedder.pkl")):
            if ("contaminated" in str(path.parent)) == args.contaminated and (
                f"pool{args.pool}-" in str(path.parent)
                and f"-e{args.moco_epochs}-" in str(path.parent)
            ):
                print(f"  plain MoCo: reused {path}")
                return joblib.load(path)
    tick = time.perf_counter()
    model = MoCoEmbedder(
        n_epochs=args.moco_epochs, photometry_weight=0.0, random_state=seed, device=args.device
    ).fit(X)
    print(f"  plain MoCo: pretrained in {time.perf_counter() - tick:.0f} s", flush=True)
    if args.partial:
        path = Path(args.partial) / settings(args) / f"seed{seed}-plain_embedder.pkl"
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, path)
    return model


def build(model: str, seed: int, X, args, cache: dict):
    if model == "GP":
        return photometry_baseline("gp", n_restarts=args.gp_restarts, random_state=0)
    if "embedder" not in cache:
        cache["embedder"] = embedder(seed, X, args)
    return PhotoZRegressor(
        FrozenEstimator(cache["embedder"]),
        photometry=True,
        batch_size=args.batch_size,
        min_steps=args.min_steps,
        random_state=0,
        device=args.device,
    )


def run(args) -> dict:
    """{(model, strategy): curve pooled over the seeds}, fitting only what is not kept."""
    named = strategies()
    out = {}
    for model in args.models:
        per_seed = {name: [] for name in args.strategies}
        for seed in args.seeds:
            data, cache = None, {}
            for name in args.strategies:
                path = None
                if args.partial:
                    tag = f"seed{seed}-{model}-{name}-b{'_'.join(map(str, args.budgets))}"
                    path = Path(args.partial) / settings(args) / f"{tag.replace(' ', '_')}.pkl"
                if path is not None and path.exists():
                    with open(path, "rb") as f:
                        per_seed[name].append(pickle.load(f))
                    continue
                if args.report_only:
                    continue
                if data is None:
                    data = simulate(seed, args)
                images, z, features = data
                tick = time.perf_counter()
                curve = label_efficiency_curve(
                    build(model, seed, images, args, cache),
                    images,
                    z,
                    label_counts=args.budgets,
                    cv=args.cv,
                    random_state=seed,
                    selection=named[name],
                    selection_features=None if named[name] is None else features,
                )
                curve.name = f"{model} {name}"
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with open(path, "wb") as f:
                        pickle.dump(curve, f)
                per_seed[name].append(curve)
                print(
                    f"seed {seed} {model:<17} {name:<17} σ_MAD "
                    + " ".join(f"{s:.4f}" for s in curve.sigma_mad()[:, 0])
                    + "  η "
                    + " ".join(f"{e:.3f}" for e in curve.pooled(outlier_fraction)[:, 0])
                    + f"  ({time.perf_counter() - tick:.0f} s)",
                    flush=True,
                )
        for name, curves in per_seed.items():
            if len(curves) == len(args.seeds):
                out[(model, name)] = LabelEfficiencyCurve.concatenate(curves)
    return out


def report(pooled: dict, args) -> list[dict]:
    rows = []
    for (model, name), curve in pooled.items():
        sigma = curve.sigma_mad().mean(axis=1)
        eta = curve.pooled(outlier_fraction).mean(axis=1)
        random = pooled.get((model, "random"))
        diffs = {}
        if random is not None and name != "random":
            for metric in ("sigma_mad", "outlier_fraction"):
                diffs[metric] = paired_difference(
                    curve, random, n_bootstrap=args.bootstrap, random_state=0, metric=metric
                )
            factor = label_efficiency_factor(
                curve, random, n_bootstrap=args.bootstrap, random_state=0
            )
        for b, n in enumerate(curve.label_counts):
            row = {
                "model": model,
                "strategy": name,
                "labels": int(n),
                "sigma_mad": round(float(sigma[b]), 5),
                "outlier_fraction": round(float(eta[b]), 4),
                "d_sigma_mad": "",
                "d_sigma_mad_95": "",
                "d_outlier_fraction": "",
                "d_outlier_fraction_95": "",
                "k": "",
                "k_95": "",
            }
            if diffs:
                s, e = diffs["sigma_mad"], diffs["outlier_fraction"]
                row.update(
                    d_sigma_mad=round(float(s.difference[b]), 5),
                    d_sigma_mad_95=f"[{s.low[b]:+.5f}, {s.high[b]:+.5f}]",
                    d_outlier_fraction=round(float(e.difference[b]), 4),
                    d_outlier_fraction_95=f"[{e.low[b]:+.4f}, {e.high[b]:+.4f}]",
                    k=round(float(factor.factor[b]), 2),
                    k_95=f"[{factor.low[b]:.2f}, {factor.high[b]:.2f}]"
                    + {-1: " (<=)", 0: "", 1: " (>=)"}[int(factor.censored[b])],
                )
            rows.append(row)
    print(
        f"\n{'model':<17} {'strategy':<17} {'labels':>6} {'σ_MAD':>7} {'η':>6}   "
        f"{'Δσ_MAD [95%]':<30} {'Δη [95%]':<28} k"
    )
    for r in rows:
        d_sigma = f"{r['d_sigma_mad']:+.4f} {r['d_sigma_mad_95']}" if r["k"] != "" else ""
        d_eta = f"{r['d_outlier_fraction']:+.4f} {r['d_outlier_fraction_95']}" if d_sigma else ""
        print(
            f"{r['model']:<17} {r['strategy']:<17} {r['labels']:>6} {r['sigma_mad']:>7.4f} "
            f"{r['outlier_fraction']:>6.3f}   {d_sigma:<30} {d_eta:<28} {r['k']} {r['k_95']}"
        )
    return rows


def figures(pooled: dict, args) -> None:
    """The curves of each strategy (``--figure``) and, with ``--map-figure``, the first seed's
    training galaxies on the first two principal components of its plain MoCo embeddings
    with the galaxies random labels and the default strategy take at ``--map-budget``."""
    import matplotlib

    matplotlib.use("Agg")
    from sklearn.decomposition import PCA

    from skphotoz.plotting import LabelEfficiencyDisplay, plot_selection
    from skphotoz.selection import DEFAULT_STRATEGY

    for model in args.models:
        curves = []
        for (of, name), curve in pooled.items():
            if of == model:
                curve.name = name
                curves.append(curve)
        if args.figure and curves:
            import matplotlib.pyplot as plt

            fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
            for ax, metric in zip(axes, ("sigma_mad", "outlier_fraction"), strict=True):
                LabelEfficiencyDisplay.from_curves(curves, metric=metric, ax=ax)
            fig.suptitle(f"{model}: labels chosen by each strategy, on the same test galaxies")
            path = args.figure
            if len(args.models) > 1:  # one figure per model
                path = path.replace(".png", f"_{model.replace(' ', '_')}.png")
            fig.savefig(path, dpi=110, bbox_inches="tight")
            print(f"wrote {path}")
    if not args.map_figure:
        return
    seed = args.seeds[0]
    random, chosen = pooled.get(("GP", "random")), pooled.get(("GP", DEFAULT_STRATEGY))
    if random is None or chosen is None:
        print("(no map: the GP's random and default curves are needed)")
        return
    images, z, _ = simulate(seed, args)
    budget = list(random.label_counts).index(args.map_budget)
    train = random.train_indices[0]
    pool = train[np.isfinite(z[train])]
    points = PCA(2, random_state=0).fit_transform(embedder(seed, images, args).transform(images))
    picks = {
        f"{DEFAULT_STRATEGY} labels": chosen.labelled_indices[0][budget],
        "random labels": random.labelled_indices[0][budget],
    }
    position = {row: i for i, row in enumerate(pool)}
    picks = {name: [position[row] for row in rows] for name, rows in picks.items()}
    figure = plot_selection(points[pool], picks, colour=z[pool])
    figure.savefig(args.map_figure, dpi=110, bbox_inches="tight")
    print(f"wrote {args.map_figure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=4000)
    parser.add_argument("--cv", type=int, default=2)
    parser.add_argument("--budgets", type=int, nargs="+", default=[50, 100, 250, 500, 1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=["GP"], choices=MODELS)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--contaminated", action="store_true")
    parser.add_argument("--gp-restarts", type=int, default=1)
    parser.add_argument("--moco-epochs", type=int, default=30)
    parser.add_argument("--min-steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--partial", default=None, metavar="DIR")
    parser.add_argument(
        "--embedders", default=None, metavar="DIR",
        help="where label_efficiency.py kept its plain embedders (seedN-plain_embedder.pkl)",
    )  # fmt: skip
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--out", default=None, help="CSV of the table")
    parser.add_argument(
        "--figure",
        default=None,
        help="PNG of the curves (with several models, one per model: _MODEL is appended)",
    )
    parser.add_argument(
        "--map-figure", default=None,
        help="PNG of the first seed's training galaxies on a map of their embeddings, with the "
        "galaxies random labels and the default strategy take",
    )  # fmt: skip
    parser.add_argument("--map-budget", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    pooled = run(args)
    rows = report(pooled, args)
    if args.out and rows:
        write_rows(args.out, rows)
    if args.figure or args.map_figure:
        figures(pooled, args)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
