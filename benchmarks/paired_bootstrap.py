"""Paired bootstrap of σ_MAD differences between the models of finetune_vs_scratch.py.

The fold-to-fold scatter of σ_MAD with a few hundred test galaxies per fold is as large as the
differences between the models, so comparing means over three folds says little. All models
predict the same galaxies, so the comparison can be paired: resample the out-of-fold test
galaxies with replacement (within each run and fold, so every resample keeps the design), score
both models on the same resample, and look at the distribution of the difference.

Takes one or more ``--predictions`` files of ``benchmarks/finetune_vs_scratch.py`` (e.g. the
same configuration run with several ``--seed``: new pool, encoder, labels, folds and
initialisations) and prints, per model, σ_MAD per run and pooled, then for each pair the pooled
difference with its 95 % bootstrap interval, the share of resamples in which the first model
wins, and in how many folds it wins.

    python benchmarks/paired_bootstrap.py seed1.npz seed2.npz [--n-boot 2000] [--out FILE.csv]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

from skphotoz.metrics import MAD_TO_SIGMA, delta_z, outlier_fraction, sigma_mad

sys.path.insert(0, str(Path(__file__).parent))
from _output import write_rows  # noqa: E402


def load_runs(paths):
    """Concatenate prediction files; return model names, z_true, z_pred and a stratum id."""
    names, z_true, z_pred, strata, labels = None, [], [], [], []
    for i, path in enumerate(paths):
        with np.load(path) as run:
            run_names = [str(n) for n in run["models"]]
            if names is None:
                names = run_names
            elif run_names != names:
                raise SystemExit(f"{path} holds models {run_names}, expected {names}")
            z_true.append(run["z_true"])
            z_pred.append(run["z_pred"])
            strata.append(i * 1000 + run["fold"])
            labels.append(f"seed {int(run['seed'])}")
    return (
        names,
        np.concatenate(z_true),
        np.concatenate(z_pred, axis=1),
        np.concatenate(strata),
        labels,
    )


def bootstrap_indices(strata, n_boot, rng):
    """(n_boot, n) indices resampled with replacement within each stratum."""
    out = np.empty((n_boot, len(strata)), dtype=np.intp)
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        out[:, members] = members[rng.integers(0, len(members), (n_boot, len(members)))]
    return out


def sigma_mad_rows(dz):
    """σ_MAD of each row of a 2-D array of normalised residuals."""
    centred = np.abs(dz - np.median(dz, axis=1, keepdims=True))
    return MAD_TO_SIGMA * np.median(centred, axis=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions", nargs="+", help="npz files of finetune_vs_scratch.py")
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="csv file for the pairwise comparisons")
    args = parser.parse_args()

    names, z_true, z_pred, strata, labels = load_runs(args.predictions)
    print(f"{len(z_true)} out-of-fold predictions from {len(labels)} run(s): {', '.join(labels)}")
    header = " ".join(f"{label:>8}" for label in labels)
    print(f"\n{'model':<40} {header} {'pooled':>8} {'eta':>6}")
    folds = np.unique(strata)
    fold_scores = {
        name: np.array([sigma_mad(z_true[strata == f], pred[strata == f]) for f in folds])
        for name, pred in zip(names, z_pred, strict=True)
    }
    for name, pred in zip(names, z_pred, strict=True):
        per_run = " ".join(
            f"{fold_scores[name][folds // 1000 == r].mean():>8.4f}" for r in range(len(labels))
        )
        print(
            f"{name:<40} {per_run} {sigma_mad(z_true, pred):>8.4f} "
            f"{outlier_fraction(z_true, pred):>6.3f}"
        )
    print("(per run: mean over its folds; pooled: all out-of-fold predictions together)")

    rng = np.random.default_rng(args.seed)
    index = bootstrap_indices(strata, args.n_boot, rng)
    boot = {
        name: sigma_mad_rows(delta_z(z_true, pred)[index])
        for name, pred in zip(names, z_pred, strict=True)
    }
    print(f"\npaired bootstrap, {args.n_boot} resamples within each run and fold")
    print(f"{'A - B':<78} {'Δσ_MAD':>8} {'95% interval':>19} {'P(A<B)':>7} {'folds A<B':>9}")
    rows = []
    for a, b in itertools.combinations(names, 2):
        if a.split(",")[0] == b.split(",")[0]:
            continue  # a model against its own TTA predictions
        diff = boot[a] - boot[b]
        observed = sigma_mad(z_true, z_pred[names.index(a)]) - sigma_mad(
            z_true, z_pred[names.index(b)]
        )
        low, high = np.percentile(diff, [2.5, 97.5])
        wins = int(np.sum(fold_scores[a] < fold_scores[b]))
        p_win = float(np.mean(diff < 0))
        print(
            f"{a + ' - ' + b:<78} {observed:>+8.4f} [{low:>+8.4f}, {high:>+8.4f}] "
            f"{p_win:>7.3f} {wins:>5}/{len(folds)}"
        )
        rows.append(
            dict(
                model_a=a, model_b=b, delta_sigma_mad=round(observed, 5),
                ci_low=round(low, 5), ci_high=round(high, 5), p_a_better=round(p_win, 4),
                folds_a_better=wins, n_folds=len(folds), n_galaxies=len(z_true),
                runs=" ".join(Path(p).name for p in args.predictions),
            )
        )  # fmt: skip
    if args.out:
        write_rows(args.out, rows)


if __name__ == "__main__":
    main()
