"""Galactic extinction and flux units of SDSS ugriz images.

Conventions (SDSS DR7/DR8, Schlegel, Finkbeiner & Davis 1998; Schlafly & Finkbeiner 2011):
fluxes are in nanomaggies, ``m_AB = 22.5 - 2.5 log10(f)``; the extinction in band *b* is
``A_b = R_b E(B-V)``.
"""

from __future__ import annotations

import numpy as np

BANDS = ("u", "g", "r", "i", "z")

#: A_b / E(B-V) for ugriz from Schlafly & Finkbeiner (2011), Table 6 (R_V = 3.1).
EXTINCTION_COEFFICIENTS = np.array([4.239, 3.303, 2.285, 1.698, 1.263])

#: A_b / E(B-V) behind the SDSS archive's per-band ``extinction`` column (SFD98 coefficients).
SFD98_EXTINCTION_COEFFICIENTS = np.array([5.155, 3.793, 2.751, 2.086, 1.479])

#: Zero point of the nanomaggy: m_AB = 22.5 - 2.5 log10(f / nanomaggy).
NANOMAGGY_ZEROPOINT = 22.5


def _band_axis_extinction(extinction, n_dims: int, band_axis: int, name: str) -> np.ndarray:
    """Reshape per-band extinction ``(n, n_bands)`` or ``(n_bands,)`` to broadcast on images."""
    ext = np.asarray(extinction, dtype=np.float64)
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
        Colour excess E(B-V) in magnitudes.
    coefficients : array-like of shape (n_bands,), default=EXTINCTION_COEFFICIENTS
        R_b = A_b / E(B-V) per band.

    Returns
    -------
    extinction : ndarray of shape (n_samples, n_bands)
    """
    ebv = np.atleast_1d(np.asarray(ebv, dtype=np.float64))
    if ebv.ndim != 1:
        raise ValueError(f"ebv must be a scalar or 1-D array; got shape {ebv.shape}.")
    _check_finite(ebv, "ebv")
    coefficients = np.asarray(coefficients, dtype=np.float64)
    if coefficients.ndim != 1:
        raise ValueError(
            f"coefficients must be a 1-D array (n_bands,); got shape {coefficients.shape}."
        )
    _check_finite(coefficients, "coefficients")
    return ebv[:, np.newaxis] * coefficients[np.newaxis, :]


def _check_finite(values: np.ndarray, name: str) -> None:
    n_bad = int(np.count_nonzero(~np.isfinite(values)))
    if n_bad:
        raise ValueError(
            f"{name} must be finite; got {n_bad} NaN or infinite value(s) of {values.size}."
        )


def _check_images(images, name="images") -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(
            f"{name} must be a 4-D array (n_samples, n_bands, height, width); "
            f"got shape {images.shape}."
        )
    return images


def deredden(images, extinction) -> np.ndarray:
    """Correct images for Galactic extinction: ``image_b * 10**(0.4 A_b)``.

    Parameters
    ----------
    images : array-like of shape (n_samples, n_bands, height, width)
        Observed (reddened) fluxes.
    extinction : array-like of shape (n_samples, n_bands) or (n_bands,)
        Extinction A_b in magnitudes per band (the archive's ``e_bv`` column).

    Returns
    -------
    ndarray of the images' floating dtype and shape.
    """
    images = _check_images(images)
    ext = _band_axis_extinction(extinction, 4, 1, "extinction")
    _check_band_count(images, ext)
    dtype = images.dtype if np.issubdtype(images.dtype, np.floating) else np.float32
    return (images * 10.0 ** (0.4 * ext)).astype(dtype, copy=False)


def redden(images, ebv, coefficients=EXTINCTION_COEFFICIENTS) -> np.ndarray:
    """Apply Galactic extinction of colour excess ``ebv``: ``image_b * 10**(-0.4 R_b E(B-V))``.

    The inverse of ``deredden(images, extinction_from_ebv(ebv, coefficients))``.

    Parameters
    ----------
    images : array-like of shape (n_samples, n_bands, height, width)
        Extinction-free fluxes.
    ebv : float or array-like of shape (n_samples,)
        Colour excess E(B-V) in magnitudes.
    coefficients : array-like of shape (n_bands,), default=EXTINCTION_COEFFICIENTS

    Returns
    -------
    ndarray of the images' floating dtype and shape.
    """
    images = _check_images(images)
    ext = _band_axis_extinction(extinction_from_ebv(ebv, coefficients), 4, 1, "ebv")
    if ext.shape[0] not in (1, images.shape[0]):
        raise ValueError(
            f"ebv must be a scalar or have one value per image ({images.shape[0]}); "
            f"got {ext.shape[0]} values."
        )
    _check_band_count(images, ext)
    dtype = images.dtype if np.issubdtype(images.dtype, np.floating) else np.float32
    return (images * 10.0 ** (-0.4 * ext)).astype(dtype, copy=False)


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


def nanomaggies_to_mag(flux) -> np.ndarray:
    """AB magnitude of a flux in nanomaggies; non-positive fluxes give ``inf``."""
    flux = np.asarray(flux, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = NANOMAGGY_ZEROPOINT - 2.5 * np.log10(flux)
    return np.where(flux > 0, mag, np.inf)


def mag_to_nanomaggies(mag) -> np.ndarray:
    """Flux in nanomaggies of an AB magnitude."""
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=np.float64) - NANOMAGGY_ZEROPOINT))
