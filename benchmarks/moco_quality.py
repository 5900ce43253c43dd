"""Does MoCo pretraining make useful embeddings? kNN photo-z on simulated galaxies.

Pretrains ``MoCoEmbedder`` with its CPU defaults on unlabelled simulated galaxies, then compares
the 5-fold cross-validated σ_MAD of a k-nearest-neighbour regressor on

1. the pretrained embeddings,
2. the embeddings of the same encoder randomly initialised (``n_epochs=0``),
3. raw pixels down-sampled to 8x8 per band (asinh-scaled),
4. the aperture photometry of the same stamps (:class:`skphotoz.preprocessing.AperturePhotometry`:
   colours and r magnitudes in three apertures), the reference the embeddings should match,
5. the pretrained embeddings joined to that photometry (``join_photometry`` = 1 and 2), probed
   without re-standardising each feature (which would undo the weighting),

and writes docs/experiments/moco_quality.csv. Labels are used only by the kNN probe. With the
photometry term it also prints the go/no-go figure that needs no labels, written beside the CSV
(``*_residual.csv``): the RMS (and robust) residual of the photometry head's reading of each
target feature from the embeddings of 1,000 held-out clean stamps, in units of the feature's
spread (colours with Gaussian noise of 0.1 of their spread already cost a colour kNN 7 %:
docs/results.md).

    python benchmarks/moco_quality.py [--n 4000] [--epochs 20]

``--load EMBEDDER`` probes a saved embedder instead of pretraining one (e.g. the plain-MoCo
embedder that ``benchmarks/label_efficiency.py --partial`` keeps: ``--n 4000 --seed S
--deredden [--contaminated]`` gives the same galaxies as that study's pool of seed S).
"""

from __future__ import annotations

import argparse
import ast
import csv
import time
from pathlib import Path

import joblib
import numpy as np
import torch
from sklearn.model_selection import KFold, cross_validate
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skphotoz import MoCoEmbedder
from skphotoz.data import deredden
from skphotoz.datasets import make_sdss_galaxies
from skphotoz.metrics import MAD_TO_SIGMA, PHOTOZ_SCORING
from skphotoz.preprocessing import AperturePhotometry


def knn_scores(features, z, seed, standardise=True):
    knn = KNeighborsRegressor(n_neighbors=10, weights="distance")
    probe = make_pipeline(StandardScaler(), knn) if standardise else knn
    cv = KFold(5, shuffle=True, random_state=seed)
    result = cross_validate(probe, features, z, cv=cv, scoring=PHOTOZ_SCORING)
    return -result["test_neg_sigma_mad"].mean(), -result["test_neg_outlier_fraction"].mean()


def robust_spread(values):
    """Per-column standard deviation from the MAD (1.4826 x MAD), blind to the odd outlier."""
    return MAD_TO_SIGMA * np.median(np.abs(values - np.median(values, axis=0)), axis=0)


def head_residuals(embedder, args, n_held_out=1000):
    """The go/no-go figure that needs no labels: how well the photometry head reads each
    feature of its targets from the embedding of held-out clean stamps (the centre crop
    that ``transform`` embeds, no augmentation), in units of the feature's spread (1.4826 x
    MAD over those stamps). Empty without the photometry term measured on stamps."""
    measured = getattr(embedder, "target_photometry_", None)
    if "photometry" not in embedder.heads_ or measured is None:
        return []
    held_out = make_sdss_galaxies(n_held_out, random_state=args.seed + 10_000)
    stamps = held_out.images
    if args.deredden:
        stamps = deredden(stamps, held_out.extinction).astype(np.float32)
    target = measured.transform(stamps)
    with torch.no_grad():
        read = embedder.heads_["photometry"](torch.as_tensor(embedder.transform(stamps)))
    error = read.numpy().astype(np.float64) - target
    spread, robust = robust_spread(target), robust_spread(error)
    rms = np.sqrt(np.mean(error**2, axis=0))
    return [
        dict(
            feature=name,
            spread=float(s),
            rms_over_spread=float(r / s),
            robust_over_spread=float(b / s),
        )
        for name, s, r, b in zip(measured.get_feature_names_out(), spread, rms, robust, strict=True)
    ]


def downsampled_pixels(images, factor=8):
    n, c, h, w = images.shape
    pooled = images.reshape(n, c, h // factor, factor, w // factor, factor).mean(axis=(3, 5))
    noise = np.median(np.abs(images[:, :, :4, :]), axis=(0, 2, 3)).reshape(1, c, 1, 1)
    return np.arcsinh(pooled / noise).reshape(n, -1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=None, help="default: the estimator's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--deredden", action="store_true",
        help="deredden the stamps with their E(B-V) first (as for photo-z; default: raw)",
    )  # fmt: skip
    parser.add_argument("--out", default="docs/experiments/moco_quality.csv")
    parser.add_argument("--save", default=None, help="joblib path for the pretrained embedder")
    parser.add_argument("--load", default=None, help="probe this saved embedder; no pretraining")
    parser.add_argument(
        "--contaminated", action="store_true",
        help="stamps with neighbours and stars (neighbour_fraction=0.3, star_fraction=0.1)",
    )  # fmt: skip
    parser.add_argument(
        "--join-weights", type=float, nargs="+", default=[1.0, 2.0],
        help="join_photometry weights of the joined probes",
    )  # fmt: skip
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="other MoCoEmbedder parameters, e.g. --set crop_size=32 temperature=0.1",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    contamination = {"neighbour_fraction": 0.3, "star_fraction": 0.1} if args.contaminated else {}
    sample = make_sdss_galaxies(args.n, random_state=args.seed, **contamination)
    X, z = sample.images, sample.redshift
    if args.deredden:
        X = deredden(X, sample.extinction).astype(np.float32)
    params = dict(random_state=args.seed, device="cpu")
    if args.epochs is not None:
        params["n_epochs"] = args.epochs
    for item in args.set:
        name, _, value = item.partition("=")
        params[name] = ast.literal_eval(value)

    started = time.perf_counter()
    if args.load:
        pretrained = joblib.load(args.load)
        params = {"loaded": args.load, **pretrained.get_params(deep=False)}
        params.pop("callbacks", None)
    else:
        pretrained = MoCoEmbedder(verbose=True, **params).fit(X)
    pretrain_s = time.perf_counter() - started
    rate = np.mean([h["images_per_s"] for h in pretrained.history_])
    if args.save:
        joblib.dump(pretrained, args.save)
    random_init = MoCoEmbedder(**{**pretrained.get_params(deep=False), "n_epochs": 0}).fit(X)
    residuals = head_residuals(pretrained, args)

    embeddings = pretrained.transform(X)
    probes = [("MoCo pretrained embeddings", embeddings)]
    if "photometry" in pretrained.heads_:
        # What the photometry head reads from the embeddings: is the photometry in them
        # imprecise, or there but outweighed by other directions?
        with torch.no_grad():
            read = pretrained.heads_["photometry"](torch.as_tensor(embeddings)).numpy()
        probes.append(("photometry head's reading", read))
    joined = {
        weight: pretrained.set_params(join_photometry=weight).transform(X)
        for weight in args.join_weights
    }
    pretrained.set_params(join_photometry=0.0)
    rows = []
    for name, features in (
        *probes,
        ("same encoder, random init", random_init.transform(X)),
        ("raw pixels 5x8x8 (asinh)", downsampled_pixels(X)),
        ("aperture photometry", AperturePhotometry().fit_transform(X)),
        *((f"joined to photometry, w={w:g}", values) for w, values in joined.items()),
    ):
        sigma, eta = knn_scores(features, z, args.seed, standardise="joined" not in name)
        rows.append(
            dict(features=name, dim=features.shape[1], sigma_mad=sigma, outlier_fraction=eta)
        )

    print(
        f"\n{args.n} simulated galaxies{' (dereddened)' if args.deredden else ''}; pretraining "
        f"{len(pretrained.history_)} epochs in "
        f"{pretrain_s:.0f} s ({rate:.0f} img/s, loss {pretrained.history_[0]['loss']:.3f} -> "
        f"{pretrained.history_[-1]['loss']:.3f}); parameters {params}"
    )
    terms = [k for k in pretrained.history_[-1] if k.startswith("loss_")]
    for k in terms:
        print(f"  {k}: {pretrained.history_[0][k]:.3f} -> {pretrained.history_[-1][k]:.3f}")
    print(f"{'kNN (k=10) on':<30} {'dim':>5} {'sigma_MAD':>10} {'eta':>7}")
    for row in rows:
        print(
            f"{row['features']:<30} {row['dim']:>5} {row['sigma_mad']:>10.4f} "
            f"{row['outlier_fraction']:>7.3f}"
        )
    random_row = next(row for row in rows if row["features"] == "same encoder, random init")
    gain = 1 - rows[0]["sigma_mad"] / random_row["sigma_mad"]
    print(f"pretraining lowers sigma_MAD by {100 * gain:.0f}% against the random encoder")
    if residuals:
        print(
            "\nGo/no-go without labels: the photometry head on held-out clean stamps "
            "(centre crop, no augmentation), residual in units of each feature's spread"
        )
        print(f"{'feature':<14} {'spread':>8} {'RMS/spread':>11} {'robust/spread':>14}")
        for row in residuals:
            print(
                f"{row['feature']:<14} {row['spread']:>8.4f} {row['rms_over_spread']:>11.3f} "
                f"{row['robust_over_spread']:>14.3f}"
            )
        path = Path(args.out)
        with open(path.with_name(path.stem + "_residual.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(residuals[0]))
            writer.writeheader()
            writer.writerows(residuals)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        fields = [*rows[0], "pretrain_s", "n", "dereddened", "parameters"]
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    **row,
                    "pretrain_s": round(pretrain_s, 1),
                    "n": args.n,
                    "dereddened": args.deredden,
                    "parameters": params,
                }
            )


if __name__ == "__main__":
    main()
