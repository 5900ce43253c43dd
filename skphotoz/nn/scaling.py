"""The fixed first layers of the networks and the statistics they are built from.

Images enter the networks through :class:`AsinhScaling` (one softening per band: the band's
pixel noise, :func:`band_noise`), feature vectors through :class:`Standardize` (training mean
and spread, :func:`feature_stats`); the hybrid networks add a fixed aperture-photometry layer
(:func:`photometry_layer`). The statistics are estimated once, at ``fit``, on up to 512
samples read in blocks, so that out-of-core archives are never loaded whole.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from sklearn.base import clone
from torch import nn

from .._inputs import MAX_INPUT, input_shape


class AsinhScaling(nn.Module):
    """Map fluxes to ``asinh(x / softening_b)`` per band.

    Galaxy images span several decades in surface brightness; the asinh (Lupton et al. 1999)
    is linear within the noise and logarithmic in the bright core. A softening equal to each
    band's pixel noise puts the noise of every band on the same scale.

    Huge but finite fluxes stay finite: where ``x / softening`` overflows the float range,
    the asinh is computed as ``sign(x) (log|x| - log softening + log 2)``, its value there
    (about 90 to 160 in float32). NaN maps to 0, the sky level (the estimators' "fill"
    policy replaces non-finite pixels by 0 before this layer anyway).
    """

    def __init__(self, softening: torch.Tensor | list[float]):
        super().__init__()
        softening = torch.as_tensor(softening, dtype=torch.float32).reshape(1, -1, 1, 1)
        self.register_buffer("softening", softening)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ratio = x / self.softening
        overflow = torch.isinf(ratio) & torch.isfinite(x)
        asymptote = torch.sign(x) * (torch.log(x.abs()) - torch.log(self.softening) + math.log(2.0))
        scaled = torch.where(overflow, asymptote, torch.asinh(ratio))
        return torch.nan_to_num(scaled, nan=0.0)


#: Standardised features are clipped to this many standard deviations from the training mean.
MAX_STANDARD_SCORE = 1e4


class Standardize(nn.Module):
    """``(x - mean) / scale`` with per-feature statistics fitted on the training data.

    Scores are clipped to ±10,000 (:data:`MAX_STANDARD_SCORE`) so that a huge but finite
    feature cannot overflow the network downstream; NaN maps to 0, the training mean (the
    estimators' "fill" policy puts the mean there before this layer anyway).
    """

    def __init__(self, mean: torch.Tensor | list[float], scale: torch.Tensor | list[float]):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32).reshape(1, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = (x - self.mean) / self.scale
        score = torch.nan_to_num(
            score, nan=0.0, posinf=MAX_STANDARD_SCORE, neginf=-MAX_STANDARD_SCORE
        )
        return score.clamp(-MAX_STANDARD_SCORE, MAX_STANDARD_SCORE)


# Scaling statistics are estimated on at most this many samples.
_N_STATS = 512
# Width of the border whose pixels estimate the sky noise of a stamp.
_BORDER = 4

# Rows of the scaling-statistics sample read at a time (bounds the memory of band_noise).
_STATS_BLOCK = 64


def _stats_rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(n, _N_STATS), replace=False))


def _stats_sample(X, rows) -> np.ndarray:
    """Rows of X as float64 with non-finite values as NaN (lazy input: checked as read)."""
    read = getattr(X, "read_raw", None)
    sample = np.asarray(read(rows) if read is not None else X[rows], dtype=np.float64)
    return np.where(np.isfinite(sample), sample, np.nan)


def _stats_blocks(X, rows):
    """:func:`_stats_sample` of ``rows``, ``_STATS_BLOCK`` rows at a time."""
    for start in range(0, len(rows), _STATS_BLOCK):
        yield _stats_sample(X, rows[start : start + _STATS_BLOCK])


def _border_pixels(sample: np.ndarray) -> np.ndarray:
    """The pixels of each stamp's border, (n, n_bands, n_border_pixels)."""
    b = max(1, min(_BORDER, sample.shape[-1] // 4))
    inner = slice(b, -b) if sample.shape[-2] > 2 * b else slice(0, 0)
    return np.concatenate(
        [
            sample[:, :, :b, :].reshape(*sample.shape[:2], -1),
            sample[:, :, -b:, :].reshape(*sample.shape[:2], -1),
            sample[:, :, inner, :b].reshape(*sample.shape[:2], -1),
            sample[:, :, inner, -b:].reshape(*sample.shape[:2], -1),
        ],
        axis=2,
    )


def band_noise(X, seed: int = 0) -> np.ndarray:
    """Robust per-band pixel noise: 1.4826 MAD of the border pixels of up to 512 stamps.

    Non-finite pixels are ignored; the result lies in [1e-12, 1e30]. The stamps are read
    64 at a time and only their borders kept (the whole stamps are read again only for
    noise-free input, whose fallback is a fraction of the typical flux)."""
    rows = _stats_rows(len(X), seed)
    border = np.concatenate([_border_pixels(block) for block in _stats_blocks(X, rows)])
    n_bands = border.shape[1]
    border = border.transpose(1, 0, 2).reshape(n_bands, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bands
        centre = np.nanmedian(border, axis=1, keepdims=True)
        sigma = 1.4826 * np.nanmedian(np.abs(border - centre), axis=1)
    valid = np.isfinite(sigma) & (sigma > 0)
    if not valid.all():
        # Noise-free inputs (e.g. tests) fall back to a fraction of the typical flux: the
        # median |pixel| of each band, over the pixels of the whole sample (kept in float32
        # where X holds float32 or narrower, which it represents exactly).
        narrow = np.dtype(getattr(X, "dtype", np.float64)) in (np.float16, np.float32)
        flux = np.concatenate(
            [np.abs(block).transpose(1, 0, 2, 3).reshape(n_bands, -1)
             .astype(np.float32 if narrow else np.float64)
             for block in _stats_blocks(X, rows)],
            axis=1,
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bands
            fallback = np.array([np.nanmedian(band.astype(np.float64)) for band in flux])
        fallback = np.where(np.isfinite(fallback), np.maximum(fallback * 0.1, 1e-12), 1.0)
        sigma = np.where(valid, sigma, fallback)
    return np.clip(sigma, 1e-12, MAX_INPUT).astype(np.float32)


def feature_stats(X) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (1 where constant) of 2-D features, over finite values
    (a feature with none: mean 0, scale 1)."""
    X = np.asarray(X, dtype=np.float64)
    X = np.where(np.isfinite(X), X, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN features
        mean = np.nanmean(X, axis=0)
        scale = np.nanstd(X, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    return (
        np.clip(mean, -MAX_INPUT, MAX_INPUT).astype(np.float32),
        np.clip(scale, 1e-30, MAX_INPUT).astype(np.float32),
    )


def photometry_layer(X, photometry, seed: int = 0):
    """The fixed aperture-photometry layer of ``photometry`` (an unfitted
    :class:`~skphotoz.preprocessing.AperturePhotometry`) for the stamps X, standardised with
    the mean and spread of its features on up to 512 of them (holes read as sky); and the
    feature names."""
    from ..preprocessing import aperture_masks
    from .photometry import AperturePhotometryLayer

    rows = _stats_rows(len(X), seed)
    stamps = np.nan_to_num(_stats_sample(X, rows), nan=0.0)
    photometry = clone(photometry)
    mean, scale = feature_stats(photometry.fit_transform(stamps))
    layer = AperturePhotometryLayer(
        aperture_masks(input_shape(X)[1:], photometry.radii, photometry.pixel_scale),
        photometry.reference_band,
        photometry.flux_floor,
        mean,
        scale,
    )
    return layer, photometry.get_feature_names_out()


def input_scaling(X, seed: int = 0):
    """The fixed first layer for X: asinh per band for images, standardisation for vectors."""
    if len(input_shape(X)) == 3:
        return AsinhScaling(band_noise(X, seed))
    return Standardize(*feature_stats(X))
