"""Input handling shared by the skphotoz estimators: validation, batching, scaling statistics."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from sklearn.utils.validation import validate_data

from .nn import AsinhScaling, GalaxyAugment, Standardize, VectorAugment
from .nn.engine import autocast, resolve_device, to_device

# Scaling statistics are estimated on at most this many samples.
_N_STATS = 512
# Width of the border whose pixels estimate the sky noise of a stamp.
_BORDER = 4


def is_lazy_images(X) -> bool:
    """True for out-of-core 4-D array-likes (e.g. HDF5Images) that must not be loaded whole."""
    return not isinstance(X, np.ndarray) and getattr(X, "ndim", None) == 4 and hasattr(X, "shape")


def check_input(estimator, X, *, reset: bool):
    """Validate X: 2-D feature vectors, 4-D images (n, bands, H, W), or a lazy 4-D array-like.

    Lazy array-likes are checked by shape only and left on disk; everything else goes through
    scikit-learn's ``validate_data`` (finite float32).
    """
    if is_lazy_images(X):
        n, c, h, w = X.shape
        if reset:
            estimator.n_features_in_ = c
        elif c != estimator.n_features_in_:
            raise ValueError(
                f"X has {c} bands, but {type(estimator).__name__} is expecting "
                f"{estimator.n_features_in_} bands as input."
            )
        if n < 1:
            raise ValueError(f"X must hold at least one sample; got shape {X.shape}.")
        return X
    ndim = getattr(X, "ndim", None)
    if ndim is None:
        ndim = np.asarray(X).ndim
    if ndim == 3 or ndim > 4:
        raise ValueError(
            f"X must be 2-D (n_samples, n_features) feature vectors or 4-D "
            f"(n_samples, n_bands, height, width) images; got a {ndim}-D array."
        )
    X = validate_data(estimator, X, reset=reset, dtype=np.float32, allow_nd=True)
    return X


def input_shape(X) -> tuple[int, ...]:
    """Shape of one sample."""
    return tuple(X.shape[1:])


def check_sample_shape(estimator, X) -> None:
    """At predict time the samples must have the shape seen in fit."""
    if input_shape(X) != tuple(estimator.input_shape_):
        raise ValueError(
            f"X has samples of shape {input_shape(X)}, but {type(estimator).__name__} was "
            f"fitted on samples of shape {tuple(estimator.input_shape_)}."
        )


def _stats_rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(n, _N_STATS), replace=False))


def band_noise(X, seed: int = 0) -> np.ndarray:
    """Robust per-band pixel noise: 1.4826 MAD of the border pixels of up to 512 stamps."""
    sample = np.asarray(X[_stats_rows(len(X), seed)], dtype=np.float64)
    b = min(_BORDER, sample.shape[-1] // 4) or 1
    border = np.concatenate(
        [
            sample[:, :, :b, :].reshape(*sample.shape[:2], -1),
            sample[:, :, -b:, :].reshape(*sample.shape[:2], -1),
            sample[:, :, b:-b, :b].reshape(*sample.shape[:2], -1),
            sample[:, :, b:-b, -b:].reshape(*sample.shape[:2], -1),
        ],
        axis=2,
    )
    border = border.transpose(1, 0, 2).reshape(sample.shape[1], -1)
    mad = np.median(np.abs(border - np.median(border, axis=1, keepdims=True)), axis=1)
    sigma = 1.4826 * mad
    # Noise-free inputs (e.g. tests) fall back to a fraction of the typical flux.
    fallback = np.maximum(np.median(np.abs(sample), axis=(0, 2, 3)), 1e-12) * 0.1
    return np.where(sigma > 0, sigma, fallback).astype(np.float32)


def feature_stats(X) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (1 where constant) of 2-D features."""
    X = np.asarray(X, dtype=np.float64)
    scale = X.std(axis=0)
    return X.mean(axis=0).astype(np.float32), np.where(scale > 0, scale, 1.0).astype(np.float32)


def input_scaling(X, seed: int = 0):
    """The fixed first layer for X: asinh per band for images, standardisation for vectors."""
    if len(input_shape(X)) == 3:
        return AsinhScaling(band_noise(X, seed))
    return Standardize(*feature_stats(X))


def center_crop(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """Central ``size × size`` pixels of a batch of images (no-op for None or vectors)."""
    if size is None or images.ndim != 4 or images.shape[-1] == size:
        return images
    top = (images.shape[-2] - size) // 2
    left = (images.shape[-1] - size) // 2
    return images[..., top : top + size, left : left + size]


@contextlib.contextmanager
def seeded(seed: int):
    """Run a block with torch's global RNG seeded, restoring the RNG afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@torch.no_grad()
def predict_batches(module, X, *, batch_size: int, device, crop: int | None = None) -> np.ndarray:
    """Apply ``module`` to X in batches on ``device``; the module returns to where it was, in
    the dtype it had."""
    device = resolve_device(device)
    first = next(module.parameters())
    home_device, home_dtype = first.device, first.dtype
    # Feature vectors on the CPU go through the (small) network in float64: float32 matrix
    # products round differently with the number of rows, and a row's prediction must not
    # depend on the other rows of its batch (scikit-learn's subset invariance).
    exact = len(input_shape(X)) == 1 and device.type == "cpu"
    dtype = torch.float64 if exact else torch.float32
    module = module.to(device=device, dtype=dtype).eval()
    outputs = []
    try:
        for start in range(0, len(X), batch_size):
            batch = torch.as_tensor(np.asarray(X[start : start + batch_size], dtype=np.float32))
            batch = center_crop(to_device(batch, device), crop).to(dtype)
            with autocast(device):
                out = module(batch)
            outputs.append(out.float().cpu().numpy())
    finally:
        module.to(device=home_device, dtype=home_dtype)
    return np.concatenate(outputs)


class RowSubset:
    """Rows ``rows`` of an array-like, indexed lazily (for HDF5 input)."""

    def __init__(self, data, rows: np.ndarray):
        self.data = data
        self.rows = np.asarray(rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.data.shape[1:])

    def __getitem__(self, index):
        return self.data[self.rows[index]]


def take_rows(X, rows: np.ndarray):
    """``X[rows]``: a copy for in-memory arrays, a lazy view for out-of-core ones."""
    if isinstance(X, np.ndarray):
        return X[rows]
    return RowSubset(X, rows)


# ------------------------------------------------------------- parameter checks
def check_choice(estimator, name: str, allowed: tuple) -> None:
    value = getattr(estimator, name)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}.")


def check_integer(estimator, name: str, low: int) -> None:
    value = getattr(estimator, name)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}.")


def check_number(estimator, name: str, low: float, high: float | None = None, strict=False):
    """``low <= value`` (``low < value`` if strict), or ``low < value < high`` with a high."""
    value = getattr(estimator, name)
    is_number = isinstance(value, float | int | np.floating | np.integer) and not isinstance(
        value, bool
    )
    if high is not None:
        if not (is_number and low < value < high):
            raise ValueError(f"{name} must be in ({low}, {high}); got {value!r}.")
        return
    ok = is_number and (value > low if strict else value >= low)
    if not ok:
        raise ValueError(f"{name} must be a number {'>' if strict else '>='} {low}; got {value!r}.")


BACKBONES = ("auto", "resnet18", "resnet34", "resnet50", "mlp")
STEM_NAMES = ("standard", "published")


def check_augmentation_params(estimator) -> None:
    """The architecture and augmentation parameters both estimators share."""
    check_choice(estimator, "backbone", BACKBONES)
    check_choice(estimator, "stem", STEM_NAMES)
    for name in (
        "weight_decay",
        "warmup_epochs",
        "jitter",
        "psf_fwhm",
        "noise",
        "dust_ebv",
        "brightness",
    ):
        check_number(estimator, name, 0)
    check_number(estimator, "scale", 1)
    check_number(estimator, "lr", 0, strict=True)
    check_integer(estimator, "batch_size", 2)


def resolve_crop_size(crop_size, X) -> int | None:
    """Side of the views: ``crop_size``, or half the stamp; None for vectors."""
    if len(input_shape(X)) != 3:
        return None
    size = input_shape(X)[-1]
    if crop_size is None:
        return max(1, size // 2)
    if isinstance(crop_size, bool) or not isinstance(crop_size, int | np.integer):
        raise ValueError(f"crop_size must be an integer or None; got {crop_size!r}.")
    if not 1 <= crop_size <= size:
        raise ValueError(f"crop_size must be between 1 and the stamp size {size}; got {crop_size}.")
    return int(crop_size)


def build_augment(estimator, X, encoder, crop: int | None):
    """Augmentations of the estimator's parameters for X, with noise in units of the
    encoder's input scaling (the band sky noise, or 0.1 of each feature's spread)."""
    scaling = encoder[0]
    if len(input_shape(X)) == 1:
        return VectorAugment(scaling.scale.reshape(-1) * 0.1, noise=estimator.noise)
    return GalaxyAugment(
        crop,
        rotation=estimator.rotation,
        flip=estimator.flip,
        jitter=estimator.jitter,
        scale=estimator.scale,
        psf_fwhm=estimator.psf_fwhm,
        noise=estimator.noise,
        noise_sigma=scaling.softening.reshape(-1).clone(),
        # Reddening is defined for the five SDSS bands only.
        dust_ebv=estimator.dust_ebv if input_shape(X)[0] == 5 else 0.0,
        brightness=estimator.brightness,
    )
