"""Label-efficiency study: hybrid, pretrained and from-scratch networks vs photometry baselines.

For each seed: a new pool of simulated SDSS galaxies (dereddened 64x64 stamps; with
``--contaminated``, 30 % of them with a neighbouring galaxy and 10 % with a star) and
:func:`skphotoz.model_selection.label_efficiency_curve` of these models over the same splits
and label subsets:

- ``hybrid fine-tuned``: ``PhotoZRegressor(FrozenEstimator(plain embedder), photometry=True)``:
  the plain MoCo encoder fine-tuned with the stamps' exact aperture photometry joined to a
  bottleneck of its features;
- ``hybrid fine-tuned (colour)``: the same from the encoder pretrained with the photometry
  term (the ``colour MoCo`` embedder, ``MoCoEmbedder`` defaults);
- ``hybrid from scratch``: ``PhotoZRegressor(photometry=True)``, their fully supervised control;
- ``GP photometry+embedding``: ``hybrid_gp``, the Gaussian process on the aperture photometry
  joined to the first ``--embedding-components`` principal components of the plain MoCo
  embeddings;
- ``GP photometry+embedding (colour)``: the same on the embeddings of the colour embedder
  (below);
- ``GP``: ``photometry_baseline("gp")``, the Gaussian process on aperture photometry (the
  strongest photometry baseline);

- ``colour MoCo``: ``PhotoZRegressor(FrozenEstimator(embedder))`` with the embedder pretrained,
  without labels, on all the pool's images with InfoNCE and the photometry term
  (``MoCoEmbedder`` defaults);
- ``plain MoCo``: the same with InfoNCE alone (``photometry_weight=0``), MoCo v2;
- ``semi-supervised``: ``PhotoZRegressor(MoCoEmbedder(redshift_weight=1))``: each fit
  pretrains on its training rows with InfoNCE, the photometry term and the redshift term
  (the labelled rows' redshifts and, on the others, those of a photometric GP teacher fitted
  on them), then fine-tunes (one pretraining per fit: the slow one);
- ``semi-supervised hybrid``: the same with ``photometry=True``;
- ``hybrid fine-tuned (fold)``: its control without labels in pretraining,
  ``PhotoZRegressor(MoCoEmbedder(), photometry=True)``, pretrained on the same training rows;
- ``from scratch``: ``PhotoZRegressor()``, the fully supervised baseline;
- ``forest``: ``photometry_baseline("forest")``, a random forest on the same photometry.

The embedder of a seed is pretrained once (without labels, on all the pool's images) and
shared by the models that use it. With ``--partial DIR`` each (seed, model) curve is saved as
it is finished and reused by a later run with the same settings, so an interrupted study
resumes where it stopped.

The seeds are pooled (each seed's galaxies are its own repeat) and the models compared with
paired bootstraps over the test galaxies: the label-efficiency factor k of each network
against from scratch (labels from scratch needs for the network's σ_MAD) and σ_MAD
differences at each budget. The GPs are read against the hybrid from scratch the same way
(the "ceiling": a fine-tuned hybrid only reaches k >= 2 where it beats a model whose k is
below 2). Prints the tables and writes a CSV, the figure and (``--curves``)
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

import joblib
import numpy as np
import torch
from sklearn.frozen import FrozenEstimator

from skphotoz import MoCoEmbedder, PhotoZRegressor
from skphotoz.baselines import photometry_baseline
from skphotoz.data import deredden
from skphotoz.datasets import make_sdss_galaxies
from skphotoz.hybrid import hybrid_gp
from skphotoz.metrics import bias, outlier_fraction
from skphotoz.model_selection import (
    LabelEfficiencyCurve,
    label_efficiency_curve,
    label_efficiency_factor,
    paired_difference,
)

sys.path.insert(0, str(Path(__file__).parent))
from _output import write_rows  # noqa: E402

MODELS = (
    "semi-supervised hybrid",
    "hybrid fine-tuned (fold)",
    "hybrid fine-tuned",
    "hybrid fine-tuned (colour)",
    "hybrid from scratch",
    "GP photometry+embedding",
    "GP photometry+embedding (colour)",
    "semi-supervised",
    "colour MoCo",
    "plain MoCo",
    "from scratch",
    "GP",
    "forest",
)
NETWORKS = (
    "semi-supervised hybrid",
    "hybrid fine-tuned (fold)",
    "hybrid fine-tuned",
    "hybrid fine-tuned (colour)",
    "semi-supervised",
    "colour MoCo",
    "plain MoCo",
)
# Those that pretrain once per fit (slow) and those of the colour embedder are asked for.
PER_FIT_PRETRAINING = ("semi-supervised hybrid", "hybrid fine-tuned (fold)", "semi-supervised")
DEFAULT_MODELS = tuple(m for m in MODELS if m not in PER_FIT_PRETRAINING and "colour" not in m)
# Pairs whose factor k is read: (pretrained, its from-scratch control).
CONTROLS = {
    "semi-supervised hybrid": "hybrid from scratch",
    "hybrid fine-tuned (fold)": "hybrid from scratch",
    "hybrid fine-tuned": "hybrid from scratch",
    "hybrid fine-tuned (colour)": "hybrid from scratch",
}
# Not networks, but read against the hybrid from scratch the same way: the factor k a
# fine-tuned hybrid would reach by matching them. A fine-tuned hybrid reaches k >= 2 only by
# beating a model whose own k is below 2.
CEILINGS = ("GP photometry+embedding (colour)", "GP photometry+embedding", "GP")
CONTROLS.update({name: "hybrid from scratch" for name in CEILINGS})
USES_COLOUR_EMBEDDER = (
    "colour MoCo",
    "hybrid fine-tuned (colour)",
    "GP photometry+embedding (colour)",
)
USES_PLAIN_EMBEDDER = ("hybrid fine-tuned", "GP photometry+embedding", "plain MoCo")


def pretrained(kind: str, X, seed: int, args, cache: dict):
    """The seed's embedder of ``kind`` ("plain" or "colour"), pretrained once without labels
    (and kept with ``--partial``, so that a resumed study does not pretrain it again)."""
    if kind in cache:
        return cache[kind]
    path = partial_path(args, seed, f"{kind} embedder")
    if path is not None and path.exists():
        cache[kind] = joblib.load(path)
        print(f"  {kind} MoCo: reused {path}")
        return cache[kind]
    weight = {"photometry_weight": 0.0} if kind == "plain" else {}
    moco = dict(n_epochs=args.moco_epochs, random_state=seed, device=args.device)
    tick = time.perf_counter()
    cache[kind] = MoCoEmbedder(**moco, **weight).fit(X)
    print(f"  {kind} MoCo: pretrained on {len(X)} galaxies in {time.perf_counter() - tick:.0f} s")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(cache[kind], path)
    return cache[kind]


def build(name: str, X, seed: int, args, cache: dict):
    """The estimator of model ``name`` for one seed's pool (its embedder pretrained here)."""
    network = dict(
        batch_size=args.batch_size, min_steps=args.min_steps, random_state=0, device=args.device
    )
    moco = dict(n_epochs=args.moco_epochs, random_state=seed, device=args.device)
    if name in USES_PLAIN_EMBEDDER or name in USES_COLOUR_EMBEDDER:
        kind = "colour" if name in USES_COLOUR_EMBEDDER else "plain"
        frozen = FrozenEstimator(pretrained(kind, X, seed, args, cache))
        if name.startswith("GP photometry+embedding"):
            return hybrid_gp(
                frozen,
                n_components=args.embedding_components,
                n_restarts=args.gp_restarts,
                random_state=0,
            )
        return PhotoZRegressor(frozen, photometry=name.startswith("hybrid"), **network)
    if name == "semi-supervised":
        return PhotoZRegressor(MoCoEmbedder(**moco, redshift_weight=1.0), **network)
    if name in ("semi-supervised hybrid", "hybrid fine-tuned (fold)"):
        weight = 1.0 if name == "semi-supervised hybrid" else 0.0
        embedder = MoCoEmbedder(**moco, redshift_weight=weight)
        return PhotoZRegressor(embedder, photometry=True, **network)
    if name in ("from scratch", "hybrid from scratch"):
        return PhotoZRegressor(photometry=name == "hybrid from scratch", **network)
    if name == "GP":
        return photometry_baseline("gp", n_restarts=args.gp_restarts, random_state=0)
    return photometry_baseline("forest", n_jobs=args.threads, random_state=0)


def simulate(seed: int, args):
    """The seed's pool: dereddened stamps and redshifts."""
    contamination = {"neighbour_fraction": 0.3, "star_fraction": 0.1} if args.contaminated else {}
    pool = make_sdss_galaxies(args.pool, random_state=seed, stamp_size=64, **contamination)
    return deredden(pool.images, pool.extinction).astype(np.float32), pool.redshift


def partial_path(args, seed: int, name: str) -> Path | None:
    """Where the (seed, model) curve of these settings is kept, with ``--partial``."""
    if not args.partial:
        return None
    settings = (
        f"pool{args.pool}-cv{args.cv}-b{'_'.join(map(str, args.budgets))}-m{args.min_steps}"
        f"-bs{args.batch_size}-e{args.moco_epochs}-pc{args.embedding_components}"
        f"-r{args.gp_restarts}{'-contaminated' if args.contaminated else ''}"
    )
    return Path(args.partial) / settings / f"seed{seed}-{name.replace(' ', '_')}.pkl"


def run_seed(seed: int, names, args) -> dict:
    started = time.perf_counter()
    print(f"seed {seed}: {args.pool} galaxies{' (contaminated)' if args.contaminated else ''}")
    X = z = None
    curves, cache = {}, {}
    for name in names:
        path = partial_path(args, seed, name)
        if path is not None and path.exists():
            with open(path, "rb") as f:
                curve = pickle.load(f)
            # A curve measured at more budgets (copied from a larger study) serves at these.
            try:
                curves[name] = curve.select(np.asarray(args.budgets))
            except ValueError as error:
                raise ValueError(f"{path}: {error} Remove it to refit.") from error
            print(f"  {name:<15} reused {path}")
            continue
        if args.report_only:
            print(f"  {name:<15} not measured yet: left out")
            continue
        if X is None:
            X, z = simulate(seed, args)
        estimator = build(name, X, seed, args, cache)
        tick = time.perf_counter()
        curves[name] = label_efficiency_curve(
            estimator, X, z, label_counts=args.budgets, cv=args.cv, random_state=seed
        )
        curves[name].name = name
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                pickle.dump(curves[name], f)
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
        "--models", nargs="+", default=list(DEFAULT_MODELS), choices=MODELS, metavar="MODEL",
        help=f"models to fit, of {', '.join(MODELS)} (default: all but those that pretrain in "
        "every fit and the models of the colour embedder)",
    )  # fmt: skip
    parser.add_argument(
        "--reuse", nargs="*", default=[], metavar="PICKLE",
        help="pooled curves saved by --curves of earlier runs (same pool, seeds and cv): their "
        "models are not refitted (the comparisons refuse curves of other test splits)",
    )  # fmt: skip
    parser.add_argument(
        "--report-only", action="store_true",
        help="with --partial: fit nothing, report the curves measured so far",
    )  # fmt: skip
    parser.add_argument("--moco-epochs", type=int, default=30)
    parser.add_argument(
        "--contaminated", action="store_true",
        help="stamps with neighbours (30 %%) and stars (10 %%) instead of clean ones",
    )  # fmt: skip
    parser.add_argument(
        "--embedding-components", type=int, default=4,
        help="principal components of the embeddings joined to the photometry for the GP",
    )  # fmt: skip
    parser.add_argument(
        "--gp-restarts", type=int, default=1, help="GaussianProcessPhotoZ.n_restarts"
    )
    parser.add_argument(
        "--partial", default=None, metavar="DIR",
        help="keep each (seed, model) curve here as it is finished, and reuse it",
    )  # fmt: skip
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
        # (with --report-only, the models measured for every seed)
        todo = [name for name in todo if all(name in run for run in runs)]
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
    print("\nlabel-efficiency factor k: labels the from-scratch control needs for the σ_MAD")
    print("(ceiling: the k of the best non-network models against the hybrid from scratch)")
    for name in NETWORKS + CEILINGS:
        control = CONTROLS.get(name, "from scratch")
        if name in pooled and control in pooled:
            # k reads the control's curve at every budget it has (up to 2N and beyond).
            factor = label_efficiency_factor(
                pooled[name], pooled[control], n_bootstrap=args.bootstrap, random_state=0
            )
            for b, n in enumerate(factor.label_counts):
                print(
                    f"  {name + (' (ceiling)' if name in CEILINGS else ''):<15} {n:>5} labels: "
                    f"k {marks[int(factor.censored[b])]}"
                    f"{factor.factor[b]:.2f} [{factor.low[b]:.2f}, {factor.high[b]:.2f}]"
                )
                rows.append(
                    {
                        "model": f"k {name} vs {control}",
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
