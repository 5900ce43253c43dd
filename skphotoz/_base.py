"""What the network estimators share: their base class, input checks, scaling statistics.

:class:`NetworkEstimator` owns the parameters that :class:`~skphotoz.MoCoEmbedder` and
:class:`~skphotoz.PhotoZRegressor` have in common (declared once, with their constraints,
checked once per ``fit``), builds the encoder, the augmentations and the training
configuration, and makes the one call into the training engine.
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections.abc import Mapping

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import column_or_1d, validate_data

from ._validation import InvalidParameterError, StrOptions, finite, integer, random_state
from .nn import AsinhScaling, Encoder, GalaxyAugment, Standardize, VectorAugment, distributed
from .nn.backbones import build_backbone
from .nn.callbacks import Checkpoint, CheckpointMismatchError, ProgressTable
from .nn.engine import NonFiniteError, TrainConfig, Trainer, predict, resolve_device

# Scaling statistics are estimated on at most this many samples.
_N_STATS = 512
# Width of the border whose pixels estimate the sky noise of a stamp.
_BORDER = 4
# What the training loop calls on each callback.
_CALLBACK_HOOKS = (
    "on_train_begin",
    "on_epoch_begin",
    "on_batch_end",
    "on_epoch_end",
    "on_train_end",
    "state_dict",
    "load_state_dict",
)
# Training rows on which a fitted network must give finite outputs.
_N_PROBE = 16


def is_lazy_images(X) -> bool:
    """True for out-of-core 4-D array-likes (e.g. HDF5Images) that must not be loaded whole."""
    return not isinstance(X, np.ndarray) and getattr(X, "ndim", None) == 4 and hasattr(X, "shape")


#: What ``nan_policy`` takes.
NAN_POLICIES = ("raise", "fill")
#: Input values beyond ±1e30 are clipped there: no real image or feature holds them, and
#: clipping keeps the augmentations (brightness, reddening) and the float32 conversion of
#: float64 input from overflowing to infinity.
MAX_INPUT = 1e30
#: The smallest image side the network estimators take.
MIN_IMAGE_SIZE = 4
# Rows listed in an error message.
_SHOWN_ROWS = 10


def _rows_text(rows) -> str:
    rows = [int(r) for r in rows]
    shown = ", ".join(str(r) for r in rows[:_SHOWN_ROWS])
    return f"[{shown}{', ...' if len(rows) > _SHOWN_ROWS else ''}]"


def non_finite_error(n_values: int, rows, n_samples: int | None = None) -> ValueError:
    """The error of ``nan_policy="raise"`` for non-finite input values in ``rows``."""
    of = f" of {n_samples}" if n_samples is not None else ""
    return ValueError(
        f"X holds {n_values} NaN or infinite value(s) in {len(rows)}{of} sample(s) (rows "
        f"{_rows_text(rows)}) and nan_policy='raise'. Clean or mask those values, or set "
        f"nan_policy='fill' to replace them by 0 after the input scaling (the sky level of "
        f"sky-subtracted images, the training mean of 2-D features)."
    )


# Samples per block of the checks of in-memory arrays (bounded temporaries).
_CHUNK = 1024


def all_finite(values: np.ndarray) -> bool:
    """True if no value is NaN or infinite; one float64 sum, no temporary array."""
    if values.size == 0 or values.dtype.kind not in "fc":
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.add.reduce(values, axis=None, dtype=np.float64)))


def non_finite_rows(values: np.ndarray) -> tuple[np.ndarray, int]:
    """The rows holding NaN or infinity, and the number of such values (block by block)."""
    rows, count = [], 0
    for start in range(0, len(values), _CHUNK):
        bad = ~np.isfinite(values[start : start + _CHUNK])
        count += int(np.count_nonzero(bad))
        rows.append(start + np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1)))
    return (np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)), count


def _clip_huge(values: np.ndarray) -> np.ndarray:
    """Finite ``values`` beyond ±MAX_INPUT clipped there (a copy only if something is
    clipped; NaN and infinity kept, for the ``nan_policy``)."""
    if values.size == 0 or values.dtype.kind != "f":
        return values
    high, low = np.fmax.reduce(values, axis=None), np.fmin.reduce(values, axis=None)
    # (compared as Python floats: MAX_INPUT overflows a float16 array's dtype)
    if not (float(high) > MAX_INPUT or float(low) < -MAX_INPUT):  # (also all-NaN arrays)
        return values
    out = None
    for start in range(0, len(values), _CHUNK):
        block = values[start : start + _CHUNK]
        with np.errstate(invalid="ignore"):
            huge = np.isfinite(block) & (np.abs(block) > MAX_INPUT)
        if huge.any():
            if out is None:
                out = values.copy()
            out[start : start + _CHUNK] = np.where(huge, np.sign(block) * MAX_INPUT, block)
    return values if out is None else out


def _row_numbers(index, n: int) -> np.ndarray:
    """The row numbers that ``array[index]`` reads (for error messages)."""
    if isinstance(index, slice):
        rows = range(n)[index]
        return np.arange(rows.start, rows.stop, rows.step)
    index = np.asarray(index)
    if index.dtype == bool:
        return np.flatnonzero(index)
    return np.where(index < 0, index + n, index).reshape(-1)


class CheckedImages:
    """Lazy images read through the estimator's ``nan_policy``, batch by batch.

    Wraps an out-of-core image array (e.g. :class:`~skphotoz.data.HDF5Images`): every read
    is checked for NaN and infinity and raises (``nan_policy="raise"``, naming the rows) or
    replaces them by 0, the sky level (``"fill"``); values beyond ±1e30 are clipped. The
    training loop, the scaling statistics and prediction all read through it, so lazy input
    is checked as it is read, never loaded whole.
    """

    def __init__(self, data, nan_policy: str):
        self.data = data
        self.nan_policy = nan_policy

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    dtype = np.dtype(np.float32)

    def _read(self, index) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows ``index`` as float32 (huge values clipped) and their finite mask, None when
        all are finite; raises for non-finite values under ``nan_policy="raise"``."""
        values = _clip_huge(np.ascontiguousarray(self.data[index], dtype=np.float32))
        finite = np.isfinite(values)
        if finite.all():
            return values, None
        if self.nan_policy == "raise":
            rows = _row_numbers(index, len(self))
            per_row = finite.reshape(len(rows), -1) if values.ndim == 4 else finite.reshape(1, -1)
            bad = rows[~per_row.all(axis=1)] if len(rows) == len(per_row) else rows
            raise non_finite_error(int(np.count_nonzero(~finite)), bad)
        return values, finite

    def read_raw(self, index) -> np.ndarray:
        """Rows ``index`` as float32, checked but not filled (for the scaling statistics,
        which ignore non-finite values)."""
        return self._read(index)[0]

    def __getitem__(self, index) -> np.ndarray:
        values, finite = self._read(index)
        if finite is not None:
            values = np.where(finite, values, np.float32(0.0))
        return values


def _reject_non_arrays(X) -> None:
    """Clear errors for what is not an array of samples: a path, a dict/Bunch, None, text."""
    if X is None:
        raise TypeError(
            "X must be an array of samples (n_samples, n_features) or images (n_samples, "
            "n_bands, height, width); got None."
        )
    if isinstance(X, str | bytes | os.PathLike):
        raise TypeError(
            f"X must be an array of samples, not a path ({X!r}); open the archive with "
            f"skphotoz.data.open_archive(path) and pass archive.images (or "
            f"skphotoz.data.HDF5Images(path))."
        )
    if not any(hasattr(X, a) for a in ("shape", "__len__", "__array__", "__array_interface__")):
        raise TypeError(
            f"X must be an array of samples (numpy array, list of rows, or an out-of-core "
            f"array such as skphotoz.data.HDF5Images); got a {type(X).__name__}."
        )
    if isinstance(X, Mapping):
        keys = ", ".join(repr(k) for k in list(X)[:8])
        raise TypeError(
            f"X must be an array of samples, not a dict-like object with keys {keys} (e.g. "
            f"the Bunch of skphotoz.data.open_archive); pass archive.images."
        )


def _check_numeric(X, name: str = "X") -> None:
    """Refuse text, complex, date and other non-numeric arrays (numbers stored as objects
    pass, and are converted later)."""
    dtypes = getattr(X, "dtypes", None)  # a pandas DataFrame: one dtype per column
    if dtypes is not None and not hasattr(X, "dtype"):
        kinds = [getattr(d, "kind", "O") for d in dtypes]
    else:
        kinds = [getattr(getattr(X, "dtype", None), "kind", "f")]
    for kind in kinds:
        if kind in "biuf":
            continue
        if kind == "O":
            values = np.asarray(X, dtype=object).reshape(-1)
            if not any(isinstance(v, str | bytes) for v in values):
                continue
        if kind == "c":  # scikit-learn's wording, as its estimator checks expect
            raise ValueError(
                f"Complex data not supported: {name} must hold real numbers; got complex values."
            )
        names = {"U": "string", "S": "bytes", "O": "text (object)", "M": "date"}
        raise TypeError(
            f"{name} must hold real numbers (float or integer dtype); got {names.get(kind, kind)} "
            f"values. Convert it with np.asarray({name}, dtype=np.float32) if they are numbers."
        )


def _check_image_shape(shape) -> None:
    """Images are (n, bands, H, W) with H == W >= MIN_IMAGE_SIZE and bands >= 1."""
    n, c, h, w = (int(v) for v in shape)
    if h != w and h == c and w <= 16 < h:
        raise ValueError(
            f"X has shape {tuple(shape)}, which looks channels-last (n, height, width, bands); "
            f"images must be (n_samples, n_bands, height, width): transpose to (n, bands, H, "
            f"W) with X.transpose(0, 3, 1, 2)."
        )
    if c < 1 or h < 1 or w < 1:
        raise ValueError(
            f"X must hold images with at least one band and one pixel: (n_samples, n_bands, "
            f"height, width); got shape {tuple(shape)}."
        )
    if h != w:
        if c == h and w < h:
            hint = " It looks channels-last: transpose it with X.transpose(0, 3, 1, 2)."
        else:
            hint = ""
        raise ValueError(
            f"X must hold square images (height == width) of shape (n_samples, n_bands, "
            f"height, width); got shape {tuple(shape)}, {h}x{w} pixels.{hint}"
        )
    if h < MIN_IMAGE_SIZE:
        raise ValueError(
            f"X must hold images of at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} pixels; got "
            f"{h}x{w} (shape {tuple(shape)})."
        )


def _check_dimensions(estimator, X) -> None:
    """Images for a model fitted on images, feature vectors for one fitted on vectors."""
    fitted = getattr(estimator, "input_shape_", None)
    if fitted is not None and len(X.shape) - 1 != len(fitted):
        raise ValueError(
            f"X has samples of shape {tuple(X.shape[1:])}, but {type(estimator).__name__} was "
            f"fitted on samples of shape {tuple(fitted)} "
            f"({'images' if len(fitted) == 3 else 'feature vectors'})."
        )


def check_input(estimator, X, *, reset: bool):
    """Validate X: 2-D feature vectors, 4-D images (n, bands, H, W), or a lazy 4-D array-like.

    Numpy input goes through scikit-learn's ``validate_data`` (float32, C-contiguous, values
    beyond ±1e30 clipped) and is checked for NaN and infinity up front: ``nan_policy="raise"``
    raises naming the rows; ``"fill"`` leaves them for :func:`fill_input` (after the scaling
    statistics, which ignore them, are taken). Lazy array-likes are checked by shape and
    preprocessing here and wrapped in :class:`CheckedImages`, which checks each batch as it
    is read.
    """
    _reject_non_arrays(X)
    if isinstance(X, np.ma.MaskedArray):
        # Masked values are missing values: NaN, for the nan_policy to raise on or fill.
        X = np.ma.filled(np.ma.asarray(X, dtype=np.float64), np.nan)
    if is_lazy_images(X):
        _check_numeric(X)
        _check_image_shape(X.shape)
        n, c = X.shape[:2]
        if n < 1:
            raise ValueError(f"X must hold at least one sample; got shape {tuple(X.shape)}.")
        if reset:
            estimator.n_features_in_ = c
            estimator.preprocessing_ = preprocessing_of(X)
        else:
            _check_dimensions(estimator, X)
            if c != estimator.n_features_in_:
                raise ValueError(
                    f"X has {c} bands, but {type(estimator).__name__} is expecting "
                    f"{estimator.n_features_in_} bands as input."
                )
            check_preprocessing(estimator, X)
        return CheckedImages(X, estimator.nan_policy)
    if not hasattr(X, "shape") or not hasattr(X, "dtype"):
        try:
            X = np.asarray(X)
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"X must be a rectangular array of numbers; it could not be read as one ({error})."
            ) from None
    _check_numeric(X)
    ndim = len(X.shape)
    if ndim == 3 or ndim > 4:  # (scikit-learn explains 0-D and 1-D input itself)
        raise ValueError(
            f"X must be 2-D (n_samples, n_features) feature vectors or 4-D "
            f"(n_samples, n_bands, height, width) images; got a {ndim}-D array of shape "
            f"{tuple(X.shape)}."
        )
    if ndim == 4:
        _check_image_shape(X.shape)
    if not reset and ndim in (2, 4):
        _check_dimensions(estimator, X)
    # Clipped before the float32 conversion, which would turn float64 beyond its range into
    # infinity (other array-likes are clipped after it).
    clipped = isinstance(X, np.ndarray)
    if clipped:
        X = _clip_huge(X)
    X = validate_data(
        estimator, X, reset=reset, dtype=np.float32, allow_nd=True, ensure_all_finite=False
    )
    X = np.ascontiguousarray(X)
    if not clipped:
        X = _clip_huge(X)
    if reset:
        estimator.preprocessing_ = None
    if estimator.nan_policy == "raise" and not all_finite(X):
        rows, count = non_finite_rows(X)
        raise non_finite_error(count, rows, len(X))
    return X


def fill_input(X, scaling, nan_policy: str):
    """X with its non-finite values replaced by what ``scaling`` maps to 0 (``"fill"``):
    0 for images (the sky level), the training mean of each feature for 2-D input. Lazy
    input (:class:`CheckedImages`) fills itself as it is read."""
    if nan_policy != "fill" or not isinstance(X, np.ndarray):
        return X
    if all_finite(X):
        return X
    if X.ndim == 2 and isinstance(scaling, Standardize):
        fill = scaling.mean.detach().cpu().numpy().reshape(1, -1).astype(np.float32)
    else:
        fill = np.float32(0.0)
    out = np.empty_like(X, dtype=np.float32)
    for start in range(0, len(X), _CHUNK):
        block = X[start : start + _CHUNK]
        out[start : start + _CHUNK] = np.where(np.isfinite(block), block, fill)
    return out


def preprocessing_of(X) -> dict | None:
    """``{"deredden": bool, "crop": int | None}`` of an HDF5Images-like X, else None.

    Row views (:func:`take_rows`, e.g. a cross-validation split) and checked wrappers are
    read as the archive under them is."""
    while isinstance(X, RowSubset | CheckedImages):
        X = X.data
    if hasattr(X, "deredden") and hasattr(X, "crop"):
        crop = X.crop
        return {"deredden": bool(X.deredden), "crop": None if crop is None else int(crop)}
    return None


def check_preprocessing(estimator, X) -> None:
    """An HDF5Images given after fit must be read as the training archive was."""
    fitted = getattr(estimator, "preprocessing_", None)
    given = preprocessing_of(X)
    if fitted is None or given is None or given == fitted:
        return
    raise ValueError(
        f"X is read with preprocessing {given}, but {type(estimator).__name__} was fitted on "
        f"images read with {fitted} (preprocessing_); open the archive the same way, e.g. "
        f"HDF5Images(path, deredden={fitted['deredden']}, crop={fitted['crop']})."
    )


def check_labels(y, n_samples: int, name: str = "y") -> np.ndarray:
    """Redshift labels: float64 (n_samples,), finite or NaN (unlabelled), within ±1e30."""
    if y is None:
        raise ValueError(
            f"PhotoZRegressor requires y to be passed, but the target {name} is None; give "
            f"one redshift per sample of X ({n_samples}), NaN for unlabelled rows."
        )
    if isinstance(y, str | bytes | os.PathLike | Mapping):
        raise TypeError(f"{name} must be an array of redshifts; got {type(y).__name__}.")
    array = np.asarray(y)
    _check_numeric(array, name)
    if array.ndim == 2 and array.shape[1] == 1:
        array = column_or_1d(array, warn=True)
    if array.ndim != 1 or array.shape[0] != n_samples:
        raise ValueError(
            f"{name} must be a 1-D array of {n_samples} redshifts: one redshift per sample of X "
            f"({n_samples}); got shape {array.shape}."
        )
    y = np.ascontiguousarray(array, dtype=np.float64)
    if np.isinf(y).any():
        rows = np.flatnonzero(np.isinf(y))
        raise ValueError(
            f"{name} contains infinity; mark unlabelled rows with NaN ({len(rows)} rows are "
            f"infinite: {_rows_text(rows)})."
        )
    if np.nanmax(np.abs(y), initial=0.0) > MAX_INPUT:
        raise ValueError(
            f"{name} must hold redshifts within ±1e30; got values up to {np.nanmax(np.abs(y)):g}."
        )
    return y


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
    from .nn.photometry import AperturePhotometryLayer
    from .preprocessing import aperture_masks

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

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, index):
        return self.data[self.rows[index]]


def take_rows(X, rows: np.ndarray):
    """``X[rows]``: a copy for in-memory arrays, a lazy view for out-of-core ones."""
    if isinstance(X, np.ndarray):
        return X[rows]
    return RowSubset(X, rows)


def _normalise(value):
    """A parameter value in a form that compares by value (tuples for sequences)."""
    if isinstance(value, list | tuple | np.ndarray):
        return tuple(_normalise(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


@contextlib.contextmanager
def seeded(seed: int):
    """Run a block with torch's global RNG seeded, restoring the RNG afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def resolve_crop_size(crop_size, X) -> int | None:
    """Side of the views: ``crop_size``, or half the stamp; None for vectors."""
    if len(input_shape(X)) != 3:
        return None
    size = input_shape(X)[-1]
    if crop_size is None:
        return max(1, size // 2)
    if not 1 <= crop_size <= size:
        raise ValueError(
            f"crop_size must be between 1 and the stamp size {size} of X (shape "
            f"{tuple(X.shape)}); got crop_size={crop_size}."
        )
    return int(crop_size)


# Upper bounds that keep a typo from exhausting memory or running for days.
_MAX_EPOCHS = 100_000
_MAX_BATCH = 1 << 16
_MAX_BATCH_FLOATS = 1 << 29  # 2 GiB of float32 input per batch


class NetworkEstimator(BaseEstimator):
    """Base of the network estimators: shared parameters, encoder, augmentations, training.

    Not public. Subclasses list every parameter in their own ``__init__`` signature (as
    scikit-learn requires), pass the shared ones to ``super().__init__``, extend
    ``_parameter_constraints`` and decorate ``fit`` with
    :func:`skphotoz._validation.fit_context`.

    What it guarantees to both estimators:

    - input: :func:`check_input` refuses what is not an array of samples (paths, dicts,
      text, complex, channels-last or non-square images, images under 4x4 pixels) with a
      message saying what to do, and applies ``nan_policy`` ("raise" names the rows; "fill"
      puts the value that the input scaling maps to 0 in place of NaN and infinity, since a
      single NaN would turn the batch and then the weights into NaN); finite values beyond
      ±1e30 are clipped there;
    - parameters: checked by ``fit`` and again by every prediction (``set_params`` after
      fitting); the structural ones (``_structural_parameters``) must still be what the
      model was fitted with;
    - outputs: ``fit`` raises :class:`~skphotoz.nn.engine.NonFiniteError` (a ValueError) if
      training diverged, and predictions raise it rather than return NaN or infinity.
    """

    _parameter_constraints: dict = {
        "backbone": [StrOptions({"auto", "resnet18", "resnet34", "resnet50", "mlp"})],
        "stem": [StrOptions({"standard", "published"})],
        "n_epochs": [integer(0, _MAX_EPOCHS)],
        "batch_size": [integer(2, _MAX_BATCH)],
        "lr": [finite(0, 100, "right")],
        "weight_decay": [finite(0, 10, "both")],
        "warmup_epochs": [finite(0, _MAX_EPOCHS, "both")],
        "rotation": ["boolean"],
        "flip": ["boolean"],
        "jitter": [finite(0, 10_000, "both")],
        "scale": [finite(1, 100, "both")],
        "psf_fwhm": [finite(0, 50, "both")],
        "noise": [finite(0, 1000, "both")],
        "dust_ebv": [finite(0, 1, "both")],
        "brightness": [finite(0, 5, "both")],
        "crop_size": [integer(1, 1 << 16), None],
        "nan_policy": [StrOptions(set(NAN_POLICIES))],
        "device": [str, torch.device],
        "num_workers": [integer(0, 128)],
        "random_state": random_state(),
        "verbose": ["boolean"],
        "checkpoint_dir": [str, os.PathLike, None],
        "callbacks": [list, tuple, None],
    }

    #: Parameters that change how a fit runs or what is read from it afterwards, not what it
    #: learns: left out of the checkpoint fingerprint.
    _runtime_parameters = frozenset(
        {"device", "num_workers", "verbose", "checkpoint_dir", "callbacks", "warm_start"}
        | {"random_state"}  # its seed is in the fingerprint
    )

    def __init__(
        self,
        backbone="auto",
        *,
        stem="standard",
        n_epochs=30,
        batch_size=128,
        lr=0.03,
        weight_decay=1e-4,
        warmup_epochs=1.0,
        rotation=True,
        flip=True,
        jitter=0.0,
        scale=1.0,
        psf_fwhm=0.0,
        noise=0.0,
        dust_ebv=0.0,
        brightness=0.0,
        crop_size=None,
        nan_policy="raise",
        device="auto",
        num_workers=0,
        random_state=None,
        verbose=False,
        checkpoint_dir=None,
        callbacks=None,
    ):
        self.backbone = backbone
        self.stem = stem
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_epochs = warmup_epochs
        self.rotation = rotation
        self.flip = flip
        self.jitter = jitter
        self.scale = scale
        self.psf_fwhm = psf_fwhm
        self.noise = noise
        self.dust_ebv = dust_ebv
        self.brightness = brightness
        self.crop_size = crop_size
        self.nan_policy = nan_policy
        self.device = device
        self.num_workers = num_workers
        self.random_state = random_state
        self.verbose = verbose
        self.checkpoint_dir = checkpoint_dir
        self.callbacks = callbacks

    #: Parameters that fix the shape of the fitted network: changing one after ``fit`` needs a
    #: new fit (prediction refuses it rather than silently ignoring it).
    _structural_parameters: tuple[str, ...] = ("backbone", "stem", "crop_size")

    def __setstate__(self, state):
        # Estimators pickled before nan_policy existed read input as "raise" did.
        state.setdefault("nan_policy", "raise")
        super().__setstate__(state)

    # -- checking ------------------------------------------------------------------------
    def _validate_params(self):
        """All parameters against their constraints, plus the checks across parameters
        (:meth:`_check_parameters`); run by ``fit`` and again by every prediction, since
        parameters may be changed with ``set_params`` after fitting."""
        super()._validate_params()
        self._check_parameters()

    def _check_parameters(self) -> None:
        """Checks that the constraint language cannot express (subclasses extend): here,
        that ``device`` exists on this machine and that each callback has the hooks."""
        resolve_device(self.device)
        for callback in self.callbacks or ():
            missing = [
                hook for hook in _CALLBACK_HOOKS if not callable(getattr(callback, hook, None))
            ]
            if missing:
                raise InvalidParameterError(
                    f"callbacks must be skphotoz.nn.callbacks.Callback objects (with the hooks "
                    f"{', '.join(_CALLBACK_HOOKS)}); got {callback!r}, which lacks "
                    f"{', '.join(missing)}."
                )

    def _structure(self) -> dict:
        return {name: _normalise(getattr(self, name)) for name in self._structural_parameters}

    def _remember_structure(self) -> None:
        self._fitted_structure = self._structure()

    def _check_structure(self) -> None:
        """The structural parameters must still be what the model was fitted with."""
        fitted = getattr(self, "_fitted_structure", None)
        if fitted is None:  # fitted by an older version
            return
        for name, value in self._structure().items():
            if name in fitted and value != fitted[name]:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} was set after fitting, but this "
                    f"{type(self).__name__} was fitted with {name}={fitted[name]!r}; the "
                    f"fitted network cannot follow it. Refit the model, or set {name} back "
                    f"to {fitted[name]!r}."
                )

    def _check_batch_memory(self, X, n_rows: int) -> None:
        """A batch (at most the rows there are) must fit in 2 GiB of float32 input: a
        ``batch_size`` typo must not exhaust the memory of the machine."""
        per_sample = int(np.prod(input_shape(X)))
        rows = min(self.batch_size, n_rows)
        if rows * per_sample > _MAX_BATCH_FLOATS:
            raise ValueError(
                f"batch_size={self.batch_size} gives batches of {rows} samples of shape "
                f"{input_shape(X)}, {rows * per_sample * 4 / 2**30:.1f} GiB of input (the "
                f"activations take many times more); batches are limited to 2 GiB of input, "
                f"i.e. batch_size <= {_MAX_BATCH_FLOATS // per_sample} for these samples."
            )

    def _check_predict_call(self) -> None:
        """Parameters valid and unchanged where they must be, and the device present."""
        self._validate_params()
        self._check_structure()

    def _check_fitted(self, modules, X, n_samples: int) -> None:
        """Raise :class:`NonFiniteError` if training diverged: a weight is NaN or infinite,
        or the fitted network gives NaN or infinite outputs on a few training rows (weights
        can blow up to huge finite values). The engine checks the weights each epoch; this
        also covers what a last step or a restored checkpoint left."""
        advice = (
            f"training diverged. Lower lr (now {self.lr}), raise batch_size (now "
            f"{self.batch_size}) or give more samples (now {n_samples})."
        )
        probe = take_rows(X, np.arange(min(len(X), _N_PROBE)))
        for module in modules:
            for name, tensor in module.state_dict().items():
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    raise NonFiniteError(
                        f"{type(self).__name__}: the fitted weights are NaN or infinite (first: "
                        f"{name}); {advice}"
                    )
            out = predict(
                module, probe, batch_size=_N_PROBE, device=self.device, crop=self._input_crop()
            )
            if not np.isfinite(out).all():
                raise NonFiniteError(
                    f"{type(self).__name__}: the fitted network gives NaN or infinite outputs "
                    f"on its own training samples; {advice}"
                )

    def _check_outputs(self, outputs: np.ndarray, module, what: str) -> np.ndarray:
        """Prediction outputs must be finite: raise naming the rows and the likely cause."""
        finite = np.isfinite(outputs)
        if finite.all():
            return outputs
        rows = np.flatnonzero(~finite.reshape(len(outputs), -1).all(axis=1))
        broken = [
            name
            for name, tensor in module.state_dict().items()
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
        ]
        if broken:
            cause = (
                f"the model is at fault: its weights hold NaN or infinite values (first: "
                f"{broken[0]}); refit it"
            )
        else:
            cause = (
                "the model gave finite outputs on its training samples when it was fitted, "
                "so the input is at fault: those samples hold values far outside the range of "
                "the training data; check them"
            )
        raise NonFiniteError(
            f"{type(self).__name__}.{what} produced NaN or infinite values for "
            f"{len(rows)} of {len(outputs)} samples (rows {_rows_text(rows)}): {cause}."
        )

    # -- building ------------------------------------------------------------------------
    def _draw_seed(self, random_state=None) -> int:
        """The run's integer seed: weights, batches, augmentations and splits derive from it.

        Under torchrun this starts the process group, and every rank takes rank 0's seed
        (with ``random_state=None`` each process would draw its own)."""
        rng = check_random_state(self.random_state) if random_state is None else random_state
        seed = int(rng.randint(np.iinfo(np.int32).max))
        distributed.init_from_env(resolve_device(self.device))
        return int(distributed.broadcast_object(seed))

    def _backbone_name(self, X) -> str:
        if self.backbone != "auto":
            return self.backbone
        return "resnet18" if len(input_shape(X)) == 3 else "mlp"

    def _build_encoder(self, X, seed: int) -> Encoder:
        """Input scaling (fixed, from X) then the backbone, initialised from torch's global RNG
        (callers seed it, see :func:`seeded`); ``seed`` picks the rows of the scaling
        statistics."""
        body = build_backbone(self._backbone_name(X), input_shape(X), stem=self.stem)
        return Encoder(input_scaling(X, seed), body)

    def _build_augment(self, X, encoder, crop: int | None):
        """Augmentations of the estimator's parameters for X, with noise in units of the
        encoder's input scaling (the band sky noise, or 0.1 of each feature's spread)."""
        scaling = encoder[0]
        if len(input_shape(X)) == 1:
            return VectorAugment(scaling.scale.reshape(-1) * 0.1, noise=self.noise)
        return GalaxyAugment(
            crop,
            rotation=self.rotation,
            flip=self.flip,
            jitter=self.jitter,
            scale=self.scale,
            psf_fwhm=self.psf_fwhm,
            noise=self.noise,
            noise_sigma=scaling.softening.reshape(-1).clone(),
            # Reddening is defined for the five SDSS bands only.
            dust_ebv=self.dust_ebv if input_shape(X)[0] == 5 else 0.0,
            brightness=self.brightness,
        )

    def _input_crop(self) -> int | None:
        """Central crop of the input before the predicting module (None: no crop)."""
        return self.crop_size_

    # -- training ------------------------------------------------------------------------
    def _train(
        self,
        task,
        arrays,
        *,
        seed: int,
        description: str,
        checkpoint_name: str,
        n_epochs: int | None = None,
        batch_size: int | None = None,
        param_groups=None,
        clip_grad_norm: float | None = None,
        callbacks=(),
    ) -> Trainer:
        """Train ``task`` through the engine with the estimator's settings and callbacks.

        The callbacks run in this order: the estimator's own (``callbacks``, e.g. early
        stopping), the user's (copied to ``callbacks_``), progress (``verbose``), and the
        checkpoint (``checkpoint_dir``) last, so that it saves what the others computed.
        """
        config = TrainConfig(
            n_epochs=self.n_epochs if n_epochs is None else n_epochs,
            batch_size=self.batch_size if batch_size is None else batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            warmup_epochs=self.warmup_epochs,
            clip_grad_norm=clip_grad_norm,
            device=self.device,
            num_workers=self.num_workers,
            seed=seed,
            description=description,
        )
        self.callbacks_ = copy.deepcopy(list(self.callbacks or []))
        chain = [*callbacks, *self.callbacks_]
        if self.verbose:
            chain.append(ProgressTable(description))
        if self.checkpoint_dir is not None:
            folder = os.fspath(self.checkpoint_dir)
            if os.path.exists(folder) and not os.path.isdir(folder):
                raise NotADirectoryError(
                    f"checkpoint_dir must be a folder (created if missing); got {folder!r}, "
                    f"which is a file."
                )
            path = os.path.join(folder, checkpoint_name)
            chain.append(Checkpoint(path, self._run_parameters(), verbose=self.verbose))
        trainer = Trainer(task, arrays, config, param_groups, chain)
        try:
            trainer.fit()
        except CheckpointMismatchError as error:
            if self.random_state is None:
                raise CheckpointMismatchError(
                    f"{error} Note: random_state=None draws a new seed at every fit, so a fit "
                    f"can only resume its checkpoint with an integer random_state."
                ) from error
            raise
        return trainer

    def _run_parameters(self) -> dict[str, str]:
        """The parameters that shape what a fit learns, as strings for the fingerprint."""
        return {
            f"parameter {name}": repr(value)
            for name, value in sorted(self.get_params(deep=False).items())
            if name not in self._runtime_parameters
            # The default is left out: checkpoints written before nan_policy existed (which
            # read input as "raise" does) stay resumable.
            and not (name == "nan_policy" and value == "raise")
        }
