"""Photometric-redshift quality measures and their scikit-learn scorers.

Definitions follow the SDSS photo-z literature (e.g. Pasquet et al. 2019; Hayat et al. 2021):

- ``delta_z = (z_phot - z_spec) / (1 + z_spec)``
- ``sigma_mad = 1.4826 * median(|delta_z - median(delta_z)|)``
- ``bias = mean(delta_z)``
- outlier fraction ``eta`` = fraction of galaxies with ``|delta_z| > 0.05``
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.metrics import make_scorer

__all__ = [
    "delta_z",
    "sigma_mad",
    "bias",
    "outlier_fraction",
    "photoz_report",
    "sigma_mad_scorer",
    "bias_scorer",
    "outlier_fraction_scorer",
    "PHOTOZ_SCORING",
]

#: Consistency constant of the median absolute deviation for a Gaussian.
MAD_TO_SIGMA = 1.4826

#: Default |delta_z| above which a galaxy counts as a catastrophic outlier (Pasquet et al. 2019).
OUTLIER_THRESHOLD = 0.05


def _check_redshifts(z_spec, z_phot) -> tuple[np.ndarray, np.ndarray]:
    z_spec = np.asarray(z_spec, dtype=np.float64)
    z_phot = np.asarray(z_phot, dtype=np.float64)
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
    for name, z in (("z_spec", z_spec), ("z_phot", z_phot)):
        n_bad = int(np.count_nonzero(~np.isfinite(z)))
        if n_bad:
            raise ValueError(f"{name} must be finite; got {n_bad} NaN or infinite values.")
    if np.any(z_spec <= -1):
        raise ValueError(
            f"z_spec must be > -1 so that 1 + z_spec is positive; got minimum {z_spec.min()}."
        )
    return z_spec, z_phot


def delta_z(z_spec, z_phot) -> np.ndarray:
    """Normalised redshift residuals ``(z_phot - z_spec) / (1 + z_spec)``.

    Parameters
    ----------
    z_spec : array-like of shape (n_samples,)
        Spectroscopic (true) redshifts.
    z_phot : array-like of shape (n_samples,)
        Photometric (predicted) redshifts.

    Returns
    -------
    ndarray of shape (n_samples,)

    Examples
    --------
    >>> delta_z([0.1, 0.2], [0.1, 0.32])
    array([0. , 0.1])
    """
    z_spec, z_phot = _check_redshifts(z_spec, z_phot)
    return (z_phot - z_spec) / (1.0 + z_spec)


def sigma_mad(z_spec, z_phot) -> float:
    """Robust scatter ``1.4826 * median(|dz - median(dz)|)`` of the normalised residuals.

    Parameters
    ----------
    z_spec, z_phot : array-like of shape (n_samples,)

    Returns
    -------
    float

    Examples
    --------
    >>> round(sigma_mad([0.0, 0.0, 0.0], [0.0, 0.01, 0.03]), 6)
    0.014826
    """
    dz = delta_z(z_spec, z_phot)
    return float(MAD_TO_SIGMA * np.median(np.abs(dz - np.median(dz))))


def bias(z_spec, z_phot) -> float:
    """Mean normalised residual ``mean(dz)``; positive when redshifts are over-estimated."""
    return float(np.mean(delta_z(z_spec, z_phot)))


def outlier_fraction(z_spec, z_phot, threshold: float = OUTLIER_THRESHOLD) -> float:
    """Fraction of catastrophic outliers, ``|dz| > threshold``.

    Parameters
    ----------
    z_spec, z_phot : array-like of shape (n_samples,)
    threshold : float, default=0.05
        Limit on ``|dz|``; must be positive.
    """
    if (
        not isinstance(threshold, numbers.Real)
        or isinstance(threshold, bool)
        or not np.isfinite(threshold)
        or threshold <= 0
    ):
        raise ValueError(f"threshold must be a positive finite number; got {threshold!r}.")
    return float(np.mean(np.abs(delta_z(z_spec, z_phot)) > threshold))


def photoz_report(z_spec, z_phot, threshold: float = OUTLIER_THRESHOLD) -> dict:
    """All point-estimate measures at once.

    Returns
    -------
    dict
        ``{"n": ..., "sigma_mad": ..., "bias": ..., "outlier_fraction": ...}``.

    Examples
    --------
    >>> r = photoz_report([0.1, 0.2, 0.3], [0.1, 0.2, 0.5])
    >>> r["n"], round(r["outlier_fraction"], 3)
    (3, 0.333)
    """
    z_spec, z_phot = _check_redshifts(z_spec, z_phot)
    return {
        "n": int(z_spec.shape[0]),
        "sigma_mad": sigma_mad(z_spec, z_phot),
        "bias": bias(z_spec, z_phot),
        "outlier_fraction": outlier_fraction(z_spec, z_phot, threshold),
    }


def _abs_bias(z_spec, z_phot) -> float:
    return abs(bias(z_spec, z_phot))


#: Scorer for ``scoring=``: returns ``-sigma_mad`` (the ``neg_sigma_mad`` convention).
sigma_mad_scorer = make_scorer(sigma_mad, greater_is_better=False)

#: Scorer returning ``-outlier_fraction`` (lower fractions score higher).
outlier_fraction_scorer = make_scorer(outlier_fraction, greater_is_better=False)

#: Scorer returning ``-|bias|``: model selection wants the bias near zero, of either sign.
bias_scorer = make_scorer(_abs_bias, greater_is_better=False)

#: Multi-metric scoring for ``cross_validate(..., scoring=PHOTOZ_SCORING)``.
PHOTOZ_SCORING = {
    "neg_sigma_mad": sigma_mad_scorer,
    "neg_outlier_fraction": outlier_fraction_scorer,
    "neg_abs_bias": bias_scorer,
}
