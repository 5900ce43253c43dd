"""Galactic extinction and flux units of SDSS ugriz images.

Conventions (SDSS DR7/DR8, Schlegel, Finkbeiner & Davis 1998; Schlafly & Finkbeiner 2011):
fluxes are in nanomaggies, ``m_AB = 22.5 - 2.5 log10(f)``; the extinction in band *b* is
``A_b = R_b E(B-V)``.
"""

from __future__ import annotations

import numpy as np

from .._inputs import all_finite, as_array, check_numeric, non_finite_rows, rows_text, unmask
from .._validation import StrOptions, validated
from ._lazy import MAX_EXTINCTION, MIN_EXTINCTION

BANDS = ("u", "g", "r", "i", "z")

#: A_b / E(B-V) for ugriz from Schlafly & Finkbeiner (2011), Table 6 (R_V = 3.1).
EXTINCTION_COEFFICIENTS = np.array([4.239, 3.303, 2.285, 1.698, 1.263])

#: A_b / E(B-V) behind the SDSS archive's per-band ``extinction`` column (SFD98 coefficients).
SFD98_EXTINCTION_COEFFICIENTS = np.array([5.155, 3.793, 2.751, 2.086, 1.479])

#: Zero point of the nanomaggy: m_AB = 22.5 - 2.5 log10(f / nanomaggy).
NANOMAGGY_ZEROPOINT = 22.5

#: Range of E(B-V) (mag) accepted. Below -0.05 a value is a missing-value code (SDSS writes
#: -9999; a dust map's noise dips only slightly below 0), as :func:`read_catalog` rules.
#: E(B-V) = 10 is A_V = 31 mag: no galaxy is seen through it (the SDSS footprint stays below
#: ~1, and SFD98 itself is unreliable in the Galactic plane, where larger values occur).
MIN_EBV, MAX_EBV = -0.05, 10.0
#: AB magnitudes accepted by :func:`mag_to_nanomaggies`: -30 is brighter than the Sun
#: (-26.7), 50 far fainter than the deepest image (~32); values outside are missing-value
#: codes (SDSS writes -9999, SExtractor 99) or not magnitudes.
MIN_MAGNITUDE, MAX_MAGNITUDE = -30.0, 50.0
#: What ``nan_policy`` of :func:`deredden` and :func:`redden` takes.
NAN_POLICIES = ("raise", "propagate")


def _real_values(values, name: str, what: str) -> np.ndarray:
    """``values`` (``what``, for the errors) as a float64 array: None, text, booleans and
    complex numbers refused, and a masked array's masked entries (missing values) refused,
    since an unknown value cannot be applied."""
    if values is None or isinstance(values, str | bytes):
        raise TypeError(f"{name} must be {what} (numbers); got {type(values).__name__}.")
    if isinstance(values, np.ma.MaskedArray) and np.ma.is_masked(values):
        mask = np.ma.getmaskarray(values)
        rows = np.flatnonzero(mask.reshape(len(mask), -1).any(axis=1)) if mask.ndim else [0]
        raise ValueError(
            f"{name} has {int(mask.sum())} masked value(s) (rows {rows_text(rows)}): masked "
            f"entries are missing values, and an unknown value cannot be applied. Drop those "
            f"rows, or fill them with known values."
        )
    array = as_array(unmask(values), name)
    check_numeric(array, name)
    if array.dtype.kind == "b":
        raise TypeError(f"{name} must be {what} (numbers); got booleans.")
    try:
        return array.astype(np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be {what} (numbers); got an array of dtype {array.dtype}."
        ) from None


def _check_range(values: np.ndarray, name: str, low: float, high: float, unit: str) -> None:
    """Every value within [low, high]: outside, a missing-value code or a unit error."""
    with np.errstate(invalid="ignore"):
        bad = (values < low) | (values > high)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1)) if bad.ndim else [0]
        value = float(values[bad].reshape(-1)[0])
        raise ValueError(
            f"{name} must be within [{low:g}, {high:g}] {unit}; {int(bad.sum())} value(s) are "
            f"not (rows {rows_text(rows)}), e.g. {value:g}: a missing-value code (such as "
            f"-9999) or a unit error? Drop those rows."
        )


def _band_axis_extinction(extinction, n_dims: int, band_axis: int, name: str) -> np.ndarray:
    """Reshape per-band extinction ``(n, n_bands)`` or ``(n_bands,)`` to broadcast on images."""
    ext = _real_values(extinction, name, "extinctions in magnitudes")
    _check_finite(ext, name)
    if ext.ndim not in (1, 2):
        raise ValueError(
            f"{name} must have shape (n_bands,) or (n_samples, n_bands); got shape {ext.shape}."
        )
    if ext.ndim == 1:
        ext = ext[np.newaxis, :]
    shape = [ext.shape[0]] + [1] * (n_dims - 1)
    shape[band_axis] = ext.shape[1]
    return ext.reshape(shape)


def extinction_from_ebv(ebv, coefficients=EXTINCTION_COEFFICIENTS) -> np.ndarray:
    """Per-band extinction ``A_b = R_b E(B-V)`` in magnitudes.

    Parameters
    ----------
    ebv : float or array-like of shape (n_samples,)
        Colour excess E(B-V) in magnitudes, within [-0.05, 10] (``MIN_EBV``, ``MAX_EBV``):
        below, a value is a missing-value code such as -9999 (a dust map's noise dips only
        slightly below 0); above, no galaxy is seen through the dust (A_V > 31 mag). Masked
        entries (missing values) are refused: an unknown E(B-V) cannot be applied.
    coefficients : array-like of shape (n_bands,), default=EXTINCTION_COEFFICIENTS
        R_b = A_b / E(B-V) per band: finite and >= 0 (dust dims every band), and such that
        no extinction exceeds ``MAX_EXTINCTION`` (60 mag).

    Returns
    -------
    extinction : ndarray of shape (n_samples, n_bands)

    Raises
    ------
    TypeError
        For values that are not numbers (None, text, booleans).
    ValueError
        For complex, masked, non-finite or out-of-range values, naming the argument.
    """
    ebv = np.atleast_1d(_real_values(ebv, "ebv", "colour excesses E(B-V) in magnitudes"))
    if ebv.ndim != 1:
        raise ValueError(f"ebv must be a scalar or 1-D array; got shape {ebv.shape}.")
    _check_finite(ebv, "ebv")
    _check_range(ebv, "ebv (E(B-V))", MIN_EBV, MAX_EBV, "mag")
    coefficients = _real_values(coefficients, "coefficients", "ratios R_b = A_b / E(B-V)")
    if coefficients.ndim != 1:
        raise ValueError(
            f"coefficients must be a 1-D array (n_bands,); got shape {coefficients.shape}."
        )
    _check_finite(coefficients, "coefficients")
    if (coefficients < 0).any():
        raise ValueError(
            f"coefficients (R_b = A_b / E(B-V)) must be >= 0: dust dims every band; got "
            f"{coefficients.tolist()}."
        )
    extinction = ebv[:, np.newaxis] * coefficients[np.newaxis, :]
    if extinction.size and extinction.max() > MAX_EXTINCTION:
        raise ValueError(
            f"ebv times coefficients gives extinction up to {extinction.max():g} mag, beyond "
            f"{MAX_EXTINCTION:g} mag (MAX_EXTINCTION), more than any sight line; check the "
            f"coefficients (R_b of optical bands are 1-6) and ebv."
        )
    return extinction


def _check_finite(values: np.ndarray, name: str) -> None:
    n_bad = int(np.count_nonzero(~np.isfinite(values)))
    if n_bad:
        raise ValueError(
            f"{name} must be finite; got {n_bad} NaN or infinite value(s) of {values.size}."
        )


def _check_images(images, nan_policy: str, name="images") -> np.ndarray:
    """Images as an array (masked pixels as NaN), 4-D and real; non-finite pixels raise
    under ``nan_policy="raise"``, naming the galaxies (rows) that hold them."""
    masked = isinstance(images, np.ma.MaskedArray) and np.ma.is_masked(images)
    images = as_array(images, name)
    check_numeric(images, name)
    if images.ndim != 4:
        raise ValueError(
            f"{name} must be a 4-D array (n_samples, n_bands, height, width); "
            f"got shape {images.shape}."
        )
    if images.dtype.kind == "O":
        try:
            images = images.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must hold numbers; got an array of objects.") from None
    if nan_policy == "raise" and not all_finite(images):
        # (counted: all_finite's float64 sum also overflows for huge finite pixels)
        rows, count = non_finite_rows(images)
    else:
        count = 0
    if count:
        what = "masked, NaN or infinite" if masked else "NaN or infinite"
        raise ValueError(
            f"{name} hold {count} {what} pixel(s) in {len(rows)} of {len(images)} galaxies "
            f"(rows {rows_text(rows)}) and nan_policy='raise'"
            + (": masked pixels are missing values. " if masked else ". ")
            + "Drop those galaxies, or pass nan_policy='propagate' to keep them (non-finite "
            "in the output, e.g. masked pixels)."
        )
    return images


def _scaled(images: np.ndarray, factor: np.ndarray, name: str = "images") -> np.ndarray:
    """``images * factor`` in the images' floating dtype (float32 for integers); a finite
    pixel that the product would take beyond that dtype's range raises, naming the rows."""
    dtype = images.dtype if np.issubdtype(images.dtype, np.floating) else np.float32
    with np.errstate(over="ignore", invalid="ignore"):
        out = (images * factor).astype(dtype, copy=False)
    if not all_finite(out):
        overflow = ~np.isfinite(out) & np.isfinite(images)
        if overflow.any():
            rows = np.flatnonzero(overflow.reshape(len(overflow), -1).any(axis=1))
            raise ValueError(
                f"{name} hold fluxes too large for {dtype}: the extinction correction takes "
                f"{int(overflow.sum())} pixel(s) beyond {float(np.finfo(dtype).max):g} (rows "
                f"{rows_text(rows)}), e.g. {float(np.abs(images[overflow]).max()):g}. Check the "
                f"flux unit (nanomaggies)"
                + (", or pass float64 images." if dtype != np.float64 else ".")
            )
    return out


@validated({"nan_policy": [StrOptions(set(NAN_POLICIES))]})
def deredden(images, extinction, *, nan_policy="raise") -> np.ndarray:
    """Correct images for Galactic extinction: ``image_b * 10**(0.4 A_b)``.

    Parameters
    ----------
    images : array-like of shape (n_samples, n_bands, height, width)
        Observed (reddened) fluxes. A masked array's masked pixels are missing values (NaN).
    extinction : array-like of shape (n_samples, n_bands) or (n_bands,)
        Extinction A_b in magnitudes per band (the archive's ``e_bv`` column), within
        [-0.25, 60] (``MIN_EXTINCTION``, ``MAX_EXTINCTION``): below, a value is a
        missing-value code such as -9999, which would zero the galaxy; above, no sight line
        reaches it, and the correction would overflow. Masked entries are refused: an unknown
        extinction cannot be applied.
    nan_policy : {"raise", "propagate"}, default="raise"
        What to do with NaN or infinite (or masked) pixels: ``"raise"`` names the galaxies
        (rows) that hold them, so that a broken image is not passed on unnoticed;
        ``"propagate"`` keeps them, non-finite in the output (for images whose masked pixels
        are NaN on purpose and are handled later).

    Returns
    -------
    ndarray of the images' floating dtype (float32 for integer images) and shape.

    Raises
    ------
    ValueError
        For misshapen, complex, non-finite or out-of-range extinction, non-finite pixels under
        ``nan_policy="raise"``, or fluxes that the correction would take beyond the dtype's
        range.
    """
    images = _check_images(images, nan_policy)
    ext = _band_axis_extinction(extinction, 4, 1, "extinction")
    _check_range(ext.reshape(len(ext), -1), "extinction", MIN_EXTINCTION, MAX_EXTINCTION, "mag")
    _check_band_count(images, ext)
    return _scaled(images, 10.0 ** (0.4 * ext))


@validated({"nan_policy": [StrOptions(set(NAN_POLICIES))]})
def redden(images, ebv, coefficients=EXTINCTION_COEFFICIENTS, *, nan_policy="raise") -> np.ndarray:
    """Apply Galactic extinction of colour excess ``ebv``: ``image_b * 10**(-0.4 R_b E(B-V))``.

    The inverse of ``deredden(images, extinction_from_ebv(ebv, coefficients))``.

    Parameters
    ----------
    images : array-like of shape (n_samples, n_bands, height, width)
        Extinction-free fluxes. A masked array's masked pixels are missing values (NaN).
    ebv : float or array-like of shape (n_samples,)
        Colour excess E(B-V) in magnitudes, within [-0.05, 10] (see
        :func:`extinction_from_ebv`); masked entries are refused.
    coefficients : array-like of shape (n_bands,), default=EXTINCTION_COEFFICIENTS
        R_b = A_b / E(B-V) per band (>= 0).
    nan_policy : {"raise", "propagate"}, default="raise"
        What to do with NaN or infinite (or masked) pixels: ``"raise"`` names the galaxies
        (rows) that hold them; ``"propagate"`` keeps them, non-finite in the output (e.g.
        masked pixels).

    Returns
    -------
    ndarray of the images' floating dtype (float32 for integer images) and shape.
    """
    images = _check_images(images, nan_policy)
    ext = _band_axis_extinction(extinction_from_ebv(ebv, coefficients), 4, 1, "ebv")
    if ext.shape[0] not in (1, images.shape[0]):
        raise ValueError(
            f"ebv must be a scalar or have one value per image ({images.shape[0]}); "
            f"got {ext.shape[0]} values."
        )
    _check_band_count(images, ext)
    return _scaled(images, 10.0 ** (-0.4 * ext))


def _check_band_count(images: np.ndarray, ext: np.ndarray) -> None:
    if ext.shape[1] != images.shape[1]:
        raise ValueError(
            f"extinction has {ext.shape[1]} bands but images have {images.shape[1]} bands (axis 1)."
        )
    if ext.shape[0] not in (1, images.shape[0]):
        raise ValueError(
            f"extinction must have one row per image ({images.shape[0]}) or a single row; "
            f"got {ext.shape[0]} rows."
        )


def _measured(values, name: str, kind: str, what: str, allow=None) -> np.ndarray:
    """``values`` (``kind``, e.g. "fluxes") as float64, every one finite (``allow``: also
    that one infinity); ``what`` is what they are converted to, for the errors."""
    if isinstance(values, np.ma.MaskedArray) and np.ma.is_masked(values):
        n = int(np.ma.count_masked(values))
        raise ValueError(
            f"{name} has {n} masked value(s): masked entries are missing values, which have "
            f"no {what}; drop them before converting."
        )
    array = _real_values(values, name, kind)
    bad = ~np.isfinite(array)
    if allow is not None:
        bad &= array != allow
    if bad.any():
        shown = ", ".join(f"{v:g}" for v in np.unique(array[bad])[:3])
        also = " (or inf: a non-detection)" if allow is not None else ""
        raise ValueError(
            f"{name} must be finite{also}; got {int(bad.sum())} NaN or infinite value(s) "
            f"({shown}), which have no {what}."
        )
    return array


def nanomaggies_to_mag(flux) -> np.ndarray:
    """AB magnitude ``22.5 - 2.5 log10(flux)`` of a flux in nanomaggies.

    Parameters
    ----------
    flux : float or array-like
        Fluxes in nanomaggies, finite. A flux <= 0 (a non-detection: sky-subtracted fluxes
        scatter around 0) has no magnitude and gives ``inf`` (infinitely faint), which
        :func:`mag_to_nanomaggies` turns back into 0.

    Returns
    -------
    ndarray of float64, the shape of ``flux``.

    Raises
    ------
    TypeError
        For what is not numbers (None, text, booleans).
    ValueError
        For NaN, infinite, masked (missing) or complex values: they have no magnitude, and
        turning them into ``inf`` or ``-inf`` would pass them off as measurements.
    """
    flux = _measured(flux, "flux", "fluxes in nanomaggies", "magnitude")
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = NANOMAGGY_ZEROPOINT - 2.5 * np.log10(flux)
    return np.where(flux > 0, mag, np.inf)


def mag_to_nanomaggies(mag) -> np.ndarray:
    """Flux in nanomaggies ``10**(-0.4 (mag - 22.5))`` of an AB magnitude.

    Parameters
    ----------
    mag : float or array-like
        AB magnitudes within [-30, 50] (``MIN_MAGNITUDE``, ``MAX_MAGNITUDE``): -30 is
        brighter than the Sun, 50 far fainter than any image reaches; values outside are
        missing-value codes (SDSS writes -9999, SExtractor 99), which would otherwise give
        ``inf`` or a spurious flux. ``inf`` (what :func:`nanomaggies_to_mag` gives a
        non-detection) gives 0.

    Returns
    -------
    float64 scalar or ndarray, the shape of ``mag``.

    Raises
    ------
    TypeError
        For what is not numbers (None, text, booleans).
    ValueError
        For NaN, ``-inf``, masked (missing), complex or out-of-range magnitudes.
    """
    values = _measured(mag, "mag", "AB magnitudes", "flux", allow=np.inf)
    finite = np.where(np.isfinite(values), values, 0.0)
    _check_range(finite, "mag (AB magnitude)", MIN_MAGNITUDE, MAX_MAGNITUDE, "mag")
    flux = 10.0 ** (-0.4 * (finite - NANOMAGGY_ZEROPOINT))
    return np.where(np.isinf(values), 0.0, flux)[()]
