"""The input rules of skphotoz, in one place and without torch.

What an array of samples must be (:func:`check_input`: 2-D feature vectors, 4-D images
``(n, bands, H, W)`` or an out-of-core array read through :class:`CheckedImages`), what a
redshift must be (:func:`check_redshifts`: finite and > -1, NaN marking an unlabelled galaxy
where that is allowed), and the lazy row views (:func:`take_rows`) that cross-validation
uses on archives larger than memory. The estimators, the command line, ingest and the metrics
all check through these functions, so each rule is written once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
from sklearn.utils.validation import column_or_1d, validate_data


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


def rows_text(rows) -> str:
    rows = [int(r) for r in rows]
    shown = ", ".join(str(r) for r in rows[:_SHOWN_ROWS])
    return f"[{shown}{', ...' if len(rows) > _SHOWN_ROWS else ''}]"


def non_finite_error(
    n_values: int, rows, n_samples: int | None = None, *, masked: bool = False
) -> ValueError:
    """The error of ``nan_policy="raise"`` for non-finite input values in ``rows``;
    ``masked``: X was a masked array, whose masked entries count as missing."""
    of = f" of {n_samples}" if n_samples is not None else ""
    what = "masked, NaN or infinite" if masked else "NaN or infinite"
    return ValueError(
        f"X holds {n_values} {what} value(s) in {len(rows)}{of} sample(s) (rows "
        f"{rows_text(rows)}) and nan_policy='raise'"
        + (": masked entries are missing values. " if masked else ". ")
        + "Leave those samples out, or set nan_policy='fill' to replace the missing values by "
        "0 after the input scaling (the sky level of sky-subtracted images, the training mean "
        "of 2-D features)."
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


class _ArchiveView:
    """What a wrapper of an array-like (``self.data``) tells of the archive under it: how
    the engine should read it (``chunk_rows``) and whether it keeps a cache."""

    data: object

    @property
    def chunk_rows(self) -> int:
        """Galaxies per stored chunk of the archive underneath (1 where it does not say)."""
        return int(getattr(self.data, "chunk_rows", 1) or 1)

    @property
    def cache(self) -> str | None:
        """The in-memory cache of the archive underneath (None where it has none)."""
        return getattr(self.data, "cache", None)


class CheckedImages(_ArchiveView):
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


def check_numeric(X, name: str = "X") -> None:
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


def unmask(values, fill=np.nan):
    """A numpy masked array as a plain array whose masked entries are missing values
    (``fill``: NaN, cast to float64 when needed; identifiers take their own code, e.g. -1);
    anything else as it is. Every entry point reads masks through this: a mask must never be
    dropped, leaving the masked values (often -9999) to be used as numbers."""
    if isinstance(values, list | tuple) and _holds_masked(values):
        values = _stack_masked(values)  # np.asarray would drop the masks of the items
    if not isinstance(values, np.ma.MaskedArray):
        return values
    if not np.ma.is_masked(values):
        return np.ma.getdata(values)
    dtype = values.dtype
    if isinstance(fill, float) and np.isnan(fill) and dtype.kind not in "fc":
        dtype = np.float64
    return np.ma.filled(values.astype(dtype), fill)


def _holds_masked(values) -> bool:
    return any(
        isinstance(item, np.ma.MaskedArray)
        or (isinstance(item, list | tuple) and _holds_masked(item))
        for item in values
    )


def _stack_masked(values) -> np.ma.MaskedArray:
    """A list (of lists) of arrays, some masked, as one masked array keeping every mask."""
    items = [
        _stack_masked(item) if isinstance(item, list | tuple) else np.ma.asanyarray(item)
        for item in values
    ]
    return np.ma.stack(items) if items else np.ma.masked_array([])


def as_array(X, name: str) -> np.ndarray:
    """``np.asarray(X)`` (a masked array's masked entries as NaN), with a ValueError naming
    ``name`` where X is not rectangular (a ragged list of rows)."""
    try:
        return np.asarray(unmask(X))
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{name} must be a rectangular array of numbers; it could not be read as an array "
            f"({error})."
        ) from None


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
    masked = isinstance(X, np.ma.MaskedArray) or (isinstance(X, list | tuple) and _holds_masked(X))
    if masked:
        # Masked values are missing values: NaN, for the nan_policy to raise on or fill.
        X = unmask(X)
    if is_lazy_images(X):
        check_numeric(X)
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
        X = as_array(X, "X")
    check_numeric(X)
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
        raise non_finite_error(count, rows, len(X), masked=masked)
    return X


def fill_input(X, scaling, nan_policy: str):
    """X with its non-finite values replaced by what ``scaling`` maps to 0 (``"fill"``):
    0 for images (the sky level), the training mean of each feature for 2-D input. Lazy
    input (:class:`CheckedImages`) fills itself as it is read."""
    if nan_policy != "fill" or not isinstance(X, np.ndarray):
        return X
    if all_finite(X):
        return X
    if X.ndim == 2 and hasattr(scaling, "mean"):  # skphotoz.nn.Standardize
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


def check_labels(y, n_samples: int, caller: str, name: str = "y") -> np.ndarray:
    """Redshift labels as an array: float64 (n_samples,), finite or NaN (unlabelled), within
    ±1e30. ``caller`` (the estimator's name) is named when y is missing. The redshift rule
    itself (> -1) is :func:`check_redshifts`."""
    if y is None:
        raise ValueError(
            f"{caller} requires y to be passed, but the target {name} is None; give "
            f"one redshift per sample of X ({n_samples}), NaN for unlabelled rows."
        )
    if isinstance(y, str | bytes | os.PathLike | Mapping):
        raise TypeError(f"{name} must be an array of redshifts; got {type(y).__name__}.")
    array = np.asarray(unmask(y))  # masked labels are unlabelled (NaN)
    check_numeric(array, name)
    if array.dtype.kind == "b":
        raise TypeError(f"{name} must be an array of redshifts; got booleans.")
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
            f"infinite: {rows_text(rows)})."
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


class RowSubset(_ArchiveView):
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


#: Above the highest spectroscopic redshift of any galaxy (JADES-GS-z14-0, z = 14.32;
#: Carniani et al. 2024, Nature 633, 318), a training label is more likely a missing-value
#: code (99, 999) than a galaxy: fits warn about such labels (they are used as given).
MAX_PLAUSIBLE_REDSHIFT = 15.0


def warn_implausible_redshifts(z, caller: str, name: str = "y") -> None:
    """A UserWarning naming the labels of ``z`` above :data:`MAX_PLAUSIBLE_REDSHIFT`."""
    values = np.asarray(z, dtype=np.float64).reshape(-1)
    with np.errstate(invalid="ignore"):
        high = np.flatnonzero(values > MAX_PLAUSIBLE_REDSHIFT)
    if high.size:
        import warnings

        warnings.warn(
            f"{caller}: {high.size} label(s) of {name} lie above z = "
            f"{MAX_PLAUSIBLE_REDSHIFT:g}, beyond any galaxy measured (e.g. row {int(high[0])} "
            f"is {values[high[0]]:g}): a missing-value code such as 99? They are used as "
            f"given; mark unknown redshifts NaN.",
            UserWarning,
            stacklevel=4,
        )


def check_redshifts(z, name: str = "y", *, allow_nan: bool = False, advice: str | None = None):
    """The redshift rule: every value finite and > -1 (so that 1 + z > 0).

    Parameters
    ----------
    z : ndarray
        Redshifts, already numeric (see :func:`check_labels` for the array checks).
    name : str, default="y"
        How the error names the values (``"z_spec"``, ``"catalogue column 'z' (redshift)"``).
    allow_nan : bool, default=False
        NaN marks an unlabelled galaxy and passes (semi-supervised training, catalogues with
        empty cells); infinity never does.
    advice : str, optional
        What the user should do with the values refused (default: mark them NaN where NaN is
        allowed, else drop those galaxies).

    Returns
    -------
    ndarray
        ``z`` itself.

    Raises
    ------
    ValueError
        Naming the values, the rule, how many rows break it and the first of them: values
        such as -9999 are missing-value codes, not redshifts.
    """
    values = np.asarray(z).reshape(-1)
    n_missing = 0 if allow_nan else int(np.count_nonzero(~np.isfinite(values)))
    if n_missing:
        raise ValueError(f"{name} must be finite; got {n_missing} NaN or infinite values.")
    with np.errstate(invalid="ignore"):
        huge = np.flatnonzero(np.isfinite(values) & (values > MAX_INPUT))
        if huge.size:
            raise ValueError(
                f"{name} must be redshifts below 1e30; {huge.size} row(s) are not, e.g. row "
                f"{int(huge[0])} is {float(values[huge[0]]):g}."
            )
        bad = np.flatnonzero((values <= -1) | np.isinf(values))  # NaN compares False
    if bad.size:
        row = int(bad[0])
        value = float(values[row])
        if advice is None:
            advice = "Mark unknown redshifts NaN." if allow_nan else "Drop those galaxies."
        unlabelled = " or NaN for unlabelled galaxies" if allow_nan else ""
        raise ValueError(
            f"{name} must be > -1 (1 + z > 0){unlabelled}; {bad.size} row(s) are not, e.g. "
            f"row {row} is {value:g}: a missing-value code such as -9999? {advice}"
        )
    return z


def as_numbers(name: str, value) -> np.ndarray:
    """``value`` as a float64 array (masked entries as NaN), or a TypeError naming ``name``
    for what is not numbers (None, booleans, strings, objects)."""
    array = np.asarray(unmask(value)) if value is not None else None
    if array is not None and array.dtype.kind == "b":
        raise TypeError(f"{name} must be an array of numbers; got booleans.")
    if array is None or array.dtype.kind not in "iuf":
        try:
            if array is None or array.dtype.kind != "O":
                raise TypeError
            return array.astype(np.float64)
        except (TypeError, ValueError):
            given = "None" if array is None else f"an array of dtype {array.dtype}"
            raise TypeError(f"{name} must be an array of numbers; got {given}.") from None
    return array.astype(np.float64)


def check_redshift_pair(z_spec, z_phot) -> tuple[np.ndarray, np.ndarray]:
    """Spectroscopic and photometric redshifts as float64 (n,): equal lengths, at least one,
    finite, and z_spec > -1 (the measures divide by 1 + z_spec)."""
    z_spec = as_numbers("z_spec", z_spec)
    z_phot = as_numbers("z_phot", z_phot)
    for name, z in (("z_spec", z_spec), ("z_phot", z_phot)):
        if z.ndim == 2 and z.shape[1] == 1:
            continue
        if z.ndim != 1:
            raise ValueError(f"{name} must be a 1-D array of redshifts; got shape {z.shape}.")
    z_spec, z_phot = z_spec.reshape(-1), z_phot.reshape(-1)
    if z_spec.shape[0] != z_phot.shape[0]:
        raise ValueError(
            f"z_spec and z_phot must have equal lengths; got {z_spec.shape[0]} and "
            f"{z_phot.shape[0]}."
        )
    if z_spec.shape[0] == 0:
        raise ValueError("z_spec and z_phot must hold at least one galaxy; got empty arrays.")
    check_redshifts(z_spec, "z_spec")
    n_bad = int(np.count_nonzero(~np.isfinite(z_phot)))
    if n_bad:
        raise ValueError(f"z_phot must be finite; got {n_bad} NaN or infinite values.")
    return z_spec, z_phot


def check_quantiles(quantiles) -> np.ndarray:
    """Probabilities at which to cut a PDF: numbers in [0, 1], at least one, as float64 (n,)."""
    if isinstance(quantiles, str | bytes) or np.asarray(quantiles).dtype.kind not in "iuf":
        raise TypeError(f"quantiles must be numbers in [0, 1]; got {quantiles!r}.")
    q = np.asarray(quantiles, dtype=np.float64).reshape(-1)
    if q.size == 0 or not np.all(np.isfinite(q)) or np.any((q < 0) | (q > 1)):
        raise ValueError(f"quantiles must be numbers in [0, 1]; got {quantiles!r}.")
    return q
