"""Are similarity-search neighbours meaningful? Evaluation on simulated SDSS galaxies.

Pretrains ``MoCoEmbedder`` (CPU defaults unless told) on simulated galaxies, indexes their
embeddings with ``SimilaritySearch`` and measures, for the pretrained encoder and for the same
encoder randomly initialised (``n_epochs=0``, the baseline any learning must beat):

1. redshift: median |Δz| = |z_i - z_j| / (1 + z_i) over each galaxy's 10 nearest neighbours,
   against random pairs;
2. structure: median |ΔB/T| (true bulge fraction) of neighbours, against random pairs;
3. invariance: a copy of a galaxy rotated by a multiple of 90°, possibly flipped, with a new
   noise realisation at the sky level, is searched in the index; rate at which the original
   comes back at rank 1 (and within the top 10);
4. artefacts: 1% of the indexed galaxies receive each of a bright star, a satellite trail and a
   dead column; ROC AUC of ``-score_samples()`` (the indexed survey scoring itself, self-matches
   excluded) for telling them from clean galaxies.

Writes docs/search_quality.csv.

    python benchmarks/search_quality.py [--n 3000] [--epochs 10]
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from skphotoz import MoCoEmbedder
from skphotoz.data import mag_to_nanomaggies
from skphotoz.datasets import make_sdss_galaxies
from skphotoz.search import SimilaritySearch

K = 10
# r-band PSF FWHM of 1.4" (typical SDSS seeing) at 0.396"/px: a Gaussian of sigma 1.5 px.
PSF_SIGMA_PX = 1.4 / 0.396 / 2.355
# Colours of a G/K star, u-g, g-r, r-i, i-z (stellar locus, Covey et al. 2007).
STAR_COLOURS = np.array([1.4, 0.6, 0.2, 0.1])
ARTEFACTS = ("bright star", "satellite trail", "dead column")


def sky_sigma(images: np.ndarray) -> np.ndarray:
    """Per-band sky noise: 1.4826 MAD of the 4-px border of the stamps."""
    border = np.concatenate(
        [
            images[:, :, :4].reshape(*images.shape[:2], -1),
            images[:, :, -4:].reshape(*images.shape[:2], -1),
        ],
        axis=2,
    )
    centred = border - np.median(border, axis=(0, 2), keepdims=True)
    return 1.4826 * np.median(np.abs(centred), axis=(0, 2))


def augmented_copies(images, sigma, rng) -> np.ndarray:
    """Rotated by a random multiple of 90°, flipped half the time, with fresh sky noise."""
    out = np.empty_like(images)
    for i, image in enumerate(images):
        image = np.rot90(image, k=rng.integers(1, 4), axes=(1, 2))
        if rng.random() < 0.5:
            image = image[:, :, ::-1]
        out[i] = image
    out += rng.normal(size=out.shape).astype(np.float32) * sigma[None, :, None, None]
    return out


def add_star(image, rng) -> None:
    """A star of r = 15-18 mag, PSF-shaped, 8-24 px from the galaxy centre."""
    size = image.shape[-1]
    angle, radius = rng.uniform(0, 2 * np.pi), rng.uniform(8, 24)
    cy, cx = size / 2 + radius * np.sin(angle), size / 2 + radius * np.cos(angle)
    r_mag = rng.uniform(15, 18)
    mags = r_mag + np.array([STAR_COLOURS[:2].sum(), STAR_COLOURS[1], 0, -STAR_COLOURS[2], 0])
    mags[4] = mags[3] - STAR_COLOURS[3]
    y, x = np.mgrid[:size, :size]
    psf = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * PSF_SIGMA_PX**2))
    psf /= 2 * np.pi * PSF_SIGMA_PX**2
    image += mag_to_nanomaggies(mags)[:, None, None].astype(np.float32) * psf


def add_trail(image, rng) -> None:
    """A straight satellite trail across the stamp, 1.5 px wide, 0.3-1.5 nanomaggies/px."""
    size = image.shape[-1]
    angle, offset = rng.uniform(0, np.pi), rng.uniform(-20, 20)
    y, x = np.mgrid[:size, :size] - size / 2
    distance = x * np.sin(angle) - y * np.cos(angle) - offset
    image += rng.uniform(0.3, 1.5) * np.exp(-(distance**2) / (2 * 1.5**2)).astype(np.float32)


def add_dead_column(image, rng) -> None:
    """A CCD column read as zero in every band, within 12 px of the galaxy centre."""
    column = image.shape[-1] // 2 + rng.integers(-12, 13)
    image[:, :, column] = 0.0


def evaluate(embeddings, truth, copies_embeddings, originals, artefact_labels) -> dict:
    search = SimilaritySearch(n_neighbors=K).fit(embeddings)
    similarities, neighbours = search.kneighbors()
    z, bt = truth["redshift"], truth["bulge_fraction"]
    clean = artefact_labels == ""
    rng = np.random.default_rng(0)
    random = rng.integers(len(z), size=neighbours.shape)
    rows = np.flatnonzero(clean)

    def median_delta(values, scale, others):
        return float(
            np.median(np.abs(values[others[rows]] - values[rows, None]) / scale[rows, None])
        )

    one = np.ones_like(z)
    result = {
        "neighbour_dz": median_delta(z, 1 + z, neighbours),
        "random_dz": median_delta(z, 1 + z, random),
        "neighbour_dbt": median_delta(bt, one, neighbours),
        "random_dbt": median_delta(bt, one, random),
    }
    _, found = search.kneighbors(copies_embeddings)
    result["augmented_rank1"] = float(np.mean(found[:, 0] == originals))
    result["augmented_top10"] = float(np.mean((found == originals[:, None]).any(axis=1)))
    scores = search.score_samples()
    for name in ARTEFACTS:
        members = (artefact_labels == name) | clean
        result[f"auc_{name.replace(' ', '_')}"] = float(
            roc_auc_score(artefact_labels[members] == name, -scores[members])
        )
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="indexed galaxies")
    parser.add_argument("--epochs", type=int, default=None, help="default: the estimator's")
    parser.add_argument("--n-copies", type=int, default=300, help="augmented copies searched")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/search_quality.csv")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)

    sample = make_sdss_galaxies(args.n, random_state=args.seed)
    images = sample.images.copy()
    truth = {"redshift": sample.redshift, "bulge_fraction": sample.truth["bulge_fraction"]}
    sigma = sky_sigma(images)

    # 1% of the index per artefact type, on distinct galaxies.
    n_each = max(1, args.n // 100)
    chosen = rng.choice(args.n, size=n_each * len(ARTEFACTS), replace=False)
    labels = np.full(args.n, "", dtype=object)
    for name, add, rows in zip(
        ARTEFACTS,
        (add_star, add_trail, add_dead_column),
        np.split(chosen, len(ARTEFACTS)),
        strict=True,
    ):
        for row in rows:
            add(images[row], rng)
        labels[rows] = name
    clean_rows = np.flatnonzero(labels == "")
    originals = rng.choice(clean_rows, size=min(args.n_copies, clean_rows.size), replace=False)
    copies = augmented_copies(images[originals], sigma, rng)

    params = dict(random_state=args.seed, device="cpu")
    if args.epochs is not None:
        params["n_epochs"] = args.epochs
    started = time.perf_counter()
    pretrained = MoCoEmbedder(verbose=True, **params).fit(images)
    pretrain_s = time.perf_counter() - started
    random_init = MoCoEmbedder(**{**params, "n_epochs": 0}).fit(images)

    results = {}
    for name, encoder in (("MoCo pretrained", pretrained), ("random init", random_init)):
        results[name] = evaluate(
            encoder.transform(images), truth, encoder.transform(copies), originals, labels
        )

    print(
        f"\n{args.n} simulated galaxies, top-{K} cosine neighbours; pretraining "
        f"{len(pretrained.history_)} epochs in {pretrain_s:.0f} s"
    )
    metrics = list(next(iter(results.values())))
    print(f"{'measure':<22}" + "".join(f"{name:>18}" for name in results))
    for metric in metrics:
        print(f"{metric:<22}" + "".join(f"{r[metric]:>18.4f}" for r in results.values()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["encoder", *metrics, "n", "epochs", "pretrain_s"])
        writer.writeheader()
        for name, r in results.items():
            epochs = len(pretrained.history_) if name == "MoCo pretrained" else 0
            writer.writerow(
                {
                    "encoder": name,
                    **r,
                    "n": args.n,
                    "epochs": epochs,
                    "pretrain_s": round(pretrain_s),
                }
            )


if __name__ == "__main__":
    main()
