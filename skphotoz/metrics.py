"""Photometric-redshift quality measures and their scikit-learn scorers.

Definitions follow the SDSS photo-z literature (e.g. Pasquet et al. 2019; Hayat et al. 2021):

- ``delta_z = (z_phot - z_spec) / (1 + z_spec)``
- ``sigma_mad = 1.4826 * median(|delta_z - median(delta_z)|)``
- ``bias = mean(delta_z)``
- outlier fraction ``eta`` = fraction of galaxies with ``|delta_z| > 0.05``

and, for redshift PDFs given on bins (``predict_pdf``), the probability integral transform
(PIT), its calibration and the continuous ranked probability score (CRPS), the measures of the
LSST photo-z data challenge (Schmidt et al. 2020).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import make_scorer

from ._inputs import as_numbers, check_quantiles, check_redshift_pair, check_redshifts, rows_text
from ._validation import positive, validated

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
    "pit",
    "pit_calibration",
    "crps",
    "pdf_quantiles",
]

#: Consistency constant of the median absolute deviation for a Gaussian.
MAD_TO_SIGMA = 1.4826

#: Default |delta_z| above which a galaxy counts as a catastrophic outlier (Pasquet et al. 2019).
OUTLIER_THRESHOLD = 0.05


_REMOVE_GALAXIES = "NaN and masked entries are missing values, not numbers: remove those galaxies."


def _numbers(name: str, value, rule: str = "finite", advice: str = _REMOVE_GALAXIES) -> np.ndarray:
    """``value`` as float64 (:func:`as_numbers`), refusing NaN, infinity and masked entries
    with a ValueError that names ``name``, what it must be (``rule``), how many values break
    it and where, and what to do (``advice``)."""
    array = as_numbers(name, value)
    bad = ~np.isfinite(array)
    if bad.any():
        n_masked = int(np.ma.count_masked(value)) if isinstance(value, np.ma.MaskedArray) else 0
        masked = f" ({n_masked} of them masked)" if n_masked else ""
        where = np.argwhere(bad)
        first = tuple(int(i) for i in where[0]) if array.ndim > 1 else int(where[0][0])
        raise ValueError(
            f"{name} must be {rule}; got {len(where)} NaN or infinite values{masked}, the first "
            f"at index {first}. {advice}"
        )
    return array


def _check_redshift_pair(z_spec, z_phot) -> tuple[np.ndarray, np.ndarray]:
    """The one check of the point measures: :func:`check_redshift_pair` with NaN or masked
    values refused naming the masked ones, and the redshift rule (> -1) applied to z_phot too."""
    z_spec, z_phot = _numbers("z_spec", z_spec), _numbers("z_phot", z_phot)
    z_spec, z_phot = check_redshift_pair(z_spec, z_phot)
    check_redshifts(
        z_phot,
        "z_phot",
        advice="A predicted redshift <= -1 is a missing-value code or a broken model: drop "
        "those galaxies or fix the model.",
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
    z_spec, z_phot = _check_redshift_pair(z_spec, z_phot)
    with np.errstate(over="ignore", invalid="ignore"):
        dz = (z_phot - z_spec) / (1.0 + z_spec)
        wide = ~np.isfinite(dz)
        if wide.any():  # z_phot - z_spec beyond float64, though its ratio may not be
            scale = 1.0 + z_spec[wide]
            dz[wide] = z_phot[wide] / scale - z_spec[wide] / scale
    wide = np.flatnonzero(~np.isfinite(dz))
    if wide.size:
        row = int(wide[0])
        raise ValueError(
            f"delta_z = (z_phot - z_spec) / (1 + z_spec) exceeds the float64 range for "
            f"{wide.size} {'galaxy' if wide.size == 1 else 'galaxies'} (e.g. row {row}: "
            f"z_spec={float(z_spec[row])!r}, z_phot={float(z_phot[row])!r}); such values are "
            f"not redshifts."
        )
    return dz


def _scaled(values: np.ndarray, function) -> float:
    """``function(values)`` (a mean, a median of deviations) without float64 overflow in
    its intermediate sums: computed on ``values / max|values|`` and scaled back; a result
    beyond the float64 range raises instead of returning infinity."""
    scale = float(np.max(np.abs(values)))
    if scale == 0.0 or scale < 1e300:
        result = float(function(values))
    else:
        with np.errstate(over="ignore"):
            result = float(function(values / scale)) * scale
    if not np.isfinite(result):
        raise ValueError(
            f"the measure exceeds the float64 range for residuals up to {scale:g}; such "
            f"values are not redshifts."
        )
    return result


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
    return MAD_TO_SIGMA * _scaled(dz, lambda v: np.median(np.abs(v - np.median(v))))


def bias(z_spec, z_phot) -> float:
    """Mean normalised residual ``mean(dz)``; positive when redshifts are over-estimated."""
    return _scaled(delta_z(z_spec, z_phot), np.mean)


@validated({"threshold": [positive()]})
def outlier_fraction(z_spec, z_phot, threshold: float = OUTLIER_THRESHOLD) -> float:
    """Fraction of catastrophic outliers, ``|dz| > threshold``.

    Parameters
    ----------
    z_spec, z_phot : array-like of shape (n_samples,)
    threshold : float, default=0.05
        Limit on ``|dz|``; must be positive.
    """
    return float(np.mean(np.abs(delta_z(z_spec, z_phot)) > threshold))


@validated({"threshold": [positive()]})
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
    z_spec, z_phot = _check_redshift_pair(z_spec, z_phot)
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


def _check_binned_pdf(pdf, edges) -> tuple[np.ndarray, np.ndarray]:
    """Binned PDFs and their edges, the rules of every PDF measure: edges 1-D, finite and
    strictly increasing, at least 2 (one bin), bin widths within float64; pdf real
    (n_samples, n_bins), finite, non-negative, each row with a positive sum. Returns the
    rows normalised to sum 1 (rows that already do are unchanged to rounding)."""
    pdf = _numbers("pdf", pdf)
    edges = _numbers(
        "edges",
        edges,
        "increasing, finite bin edges",
        "Bin edges cannot be missing (NaN or masked).",
    )
    if edges.ndim != 1 or edges.size < 2:
        raise ValueError(
            f"edges must be 1-D with at least 2 bin edges (one bin); got shape {edges.shape}."
        )
    with np.errstate(over="ignore", invalid="ignore"):
        widths = np.diff(edges)
    if np.any(widths <= 0):
        i = int(np.flatnonzero(widths <= 0)[0])
        raise ValueError(
            f"edges must be increasing, finite bin edges (strictly increasing); got "
            f"edges[{i}]={float(edges[i])!r} >= edges[{i + 1}]={float(edges[i + 1])!r}."
        )
    if not np.all(np.isfinite(widths)):
        raise ValueError(
            f"edges must be increasing, finite bin edges with bin widths within the float64 "
            f"range; got edges from {float(edges[0])!r} to {float(edges[-1])!r}."
        )
    n_bins = edges.size - 1
    if pdf.ndim != 2 or pdf.shape[1] != n_bins:
        raise ValueError(
            f"pdf must have shape (n_samples, {n_bins}) for {edges.size} edges; got "
            f"{pdf.shape} (pdf shape (n_samples, n_bins) needs edges shape (n_bins + 1,))."
        )
    if np.any(pdf < 0):
        where = np.argwhere(pdf < 0)
        row, col = (int(i) for i in where[0])
        raise ValueError(
            f"pdf must be non-negative (probabilities of the bins); got {len(where)} negative "
            f"values, e.g. pdf[{row}, {col}]={float(pdf[row, col])!r}."
        )
    # Rows rescaled by their largest value first, so that huge values cannot overflow the sum.
    top = pdf.max(axis=1, keepdims=True, initial=0.0)
    pdf = pdf / np.where(top > 0, top, 1.0)
    total = pdf.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        bad = np.flatnonzero(total[:, 0] <= 0)
        raise ValueError(
            f"every pdf row must have a positive sum; rows {rows_text(bad)} are all zero."
        )
    return pdf / total, edges


def _check_pdf(z_spec, pdf, edges) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z_spec (the redshift rule), pdf and edges of :func:`pit` and :func:`crps`."""
    z_spec = _numbers("z_spec", z_spec)
    if not (z_spec.ndim == 1 or (z_spec.ndim == 2 and z_spec.shape[1] == 1)):
        raise ValueError(f"z_spec must be a 1-D array of redshifts; got shape {z_spec.shape}.")
    z_spec = z_spec.reshape(-1)
    pdf, edges = _check_binned_pdf(pdf, edges)
    if pdf.shape[0] != z_spec.shape[0]:
        raise ValueError(
            f"z_spec and pdf must have equal lengths; got {z_spec.shape[0]} and {pdf.shape[0]}."
        )
    if pdf.shape[0] == 0:
        raise ValueError("z_spec and pdf must hold at least one galaxy; got empty arrays.")
    check_redshifts(z_spec, "z_spec")
    return z_spec, pdf, edges


def _cdf_at_edges(pdf: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros((len(pdf), 1)), np.cumsum(pdf, axis=1)], axis=1)


def pit(z_spec, pdf, edges) -> np.ndarray:
    """Probability integral transform: each PDF's CDF at the true redshift.

    The CDF is linear within bins, 0 below the first edge and 1 above the last. A calibrated
    photo-z code gives PIT values uniform on [0, 1].

    Parameters
    ----------
    z_spec : array-like of shape (n_samples,)
    pdf : array-like of shape (n_samples, n_bins)
        Probabilities of the bins (rows are normalised here).
    edges : array-like of shape (n_bins + 1,)

    Returns
    -------
    ndarray of shape (n_samples,)

    Examples
    --------
    >>> pit([0.25], [[0.5, 0.5]], [0.0, 0.5, 1.0])
    array([0.25])
    """
    z_spec, pdf, edges = _check_pdf(z_spec, pdf, edges)
    cdf = _cdf_at_edges(pdf)
    rows = np.arange(len(z_spec))
    j = np.clip(np.searchsorted(edges, z_spec, side="right") - 1, 0, len(edges) - 2)
    with np.errstate(over="ignore"):  # z_spec far outside the edges: frac clips to 0 or 1
        frac = np.clip((z_spec - edges[j]) / (edges[j + 1] - edges[j]), 0.0, 1.0)
    # Rounding of the cumulative sum can step just past 1 above the last edge.
    return np.clip(cdf[rows, j] + frac * pdf[rows, j], 0.0, 1.0)


def pit_calibration(pit_values, method: str = "ks") -> float:
    """Distance of the PIT distribution from uniform: 0 for perfectly calibrated PDFs.

    Parameters
    ----------
    pit_values : array-like of shape (n_samples,)
    method : {"ks", "cvm"}, default="ks"
        Kolmogorov-Smirnov statistic (largest CDF difference) or the Cramér-von Mises
        distance ``∫ (F_PIT(u) - u)² du``.
    """
    if not isinstance(method, str) or method not in ("ks", "cvm"):
        raise ValueError(f"method must be 'ks' or 'cvm'; got {method!r}.")
    u = _numbers(
        "pit_values",
        pit_values,
        "a non-empty array of numbers in [0, 1]",
        "NaN and masked entries are missing values: remove them.",
    )
    if not (u.ndim == 1 or (u.ndim == 2 and u.shape[1] == 1)):
        raise ValueError(
            f"pit_values must be a non-empty array of numbers in [0, 1] of shape (n_samples,) "
            f"(as pit returns them); got shape {u.shape}."
        )
    u = np.sort(u.reshape(-1))
    if u.size == 0:
        raise ValueError("pit_values must be a non-empty array of numbers in [0, 1]; got none.")
    if u[0] < 0 or u[-1] > 1:
        n_out = int(np.count_nonzero((u < 0) | (u > 1)))
        raise ValueError(
            f"pit_values must be a non-empty array of numbers in [0, 1]; got {n_out} outside, "
            f"from {float(u[0])!r} to {float(u[-1])!r}."
        )
    n = u.size
    i = np.arange(1, n + 1)
    if method == "ks":
        return float(max(np.max(i / n - u), np.max(u - (i - 1) / n)))
    return float(1.0 / (12 * n * n) + np.mean((u - (2 * i - 1) / (2 * n)) ** 2))


def _segment_square_integral(width, start, stop) -> np.ndarray:
    """∫ f² over a segment where f is linear from ``start`` to ``stop``."""
    # The factor (at most 1 for a CDF) first: width * 3 can overflow where the result does not.
    return width * ((start**2 + start * stop + stop**2) / 3.0)


def crps(z_spec, pdf, edges) -> float:
    """Mean continuous ranked probability score of binned PDFs, ``∫ (F(z) - H(z - z_spec))² dz``.

    Computed exactly for the CDF that is linear within bins; lower is better, and it is in
    redshift units.

    Parameters
    ----------
    z_spec : array-like of shape (n_samples,)
    pdf : array-like of shape (n_samples, n_bins)
    edges : array-like of shape (n_bins + 1,)

    Examples
    --------
    >>> round(crps([0.5], [[0.25, 0.25, 0.25, 0.25]], [0.0, 0.25, 0.5, 0.75, 1.0]), 6)
    0.083333
    """
    z_spec, pdf, edges = _check_pdf(z_spec, pdf, edges)
    cdf = _cdf_at_edges(pdf)
    a, b = edges[:-1][None, :], edges[1:][None, :]
    f_a, f_b = cdf[:, :-1], cdf[:, 1:]
    split = np.clip(z_spec[:, None], a, b)
    f_split = f_a + (f_b - f_a) * (split - a) / (b - a)
    with np.errstate(over="ignore", invalid="ignore"):
        below = _segment_square_integral(split - a, f_a, f_split)
        above = _segment_square_integral(b - split, 1.0 - f_split, 1.0 - f_b)
        outside = np.clip(edges[0] - z_spec, 0, None) + np.clip(z_spec - edges[-1], 0, None)
        scores = below.sum(axis=1) + above.sum(axis=1) + outside
    if not np.all(np.isfinite(scores)):
        raise ValueError(
            f"the CRPS exceeds the float64 range for z_spec up to {float(np.max(z_spec)):g} "
            f"and edges from {float(edges[0]):g} to {float(edges[-1]):g}; such values are not "
            f"redshifts."
        )
    return _scaled(scores, np.mean)


def pdf_quantiles(pdf, edges, quantiles) -> np.ndarray:
    """Quantiles of binned redshift PDFs, the CDF being linear within each bin.

    The quantile ``q`` of a row is the redshift where its CDF reaches ``q``, 0 at the first
    edge and 1 at the last; within a bin the probability is spread uniformly.
    :meth:`skphotoz.PhotoZRegressor.predict_quantiles` and ``skphotoz predict`` use it.

    Parameters
    ----------
    pdf : array-like of shape (n_samples, n_bins)
        Probabilities of the bins: finite and non-negative, each row with a positive sum;
        rows are normalised here (``predict_pdf`` returns them summing to 1).
    edges : array-like of shape (n_bins + 1,)
        Finite, strictly increasing bin edges (``redshift_bins_``), at least 2.
    quantiles : sequence of float in [0, 1]

    Returns
    -------
    ndarray of shape (n_samples, n_quantiles)

    Examples
    --------
    >>> pdf_quantiles([[0.25, 0.25, 0.25, 0.25]], [0.0, 1.0, 2.0, 3.0, 4.0], [0.5, 0.625])
    array([[2. , 2.5]])
    """
    pdf, edges = _check_binned_pdf(pdf, edges)
    quantiles = check_quantiles(quantiles)
    cdf = _cdf_at_edges(pdf)
    cdf[:, -1] = 1.0
    out = np.empty((len(pdf), len(quantiles)))
    rows = np.arange(len(pdf))
    for k, q in enumerate(quantiles):
        # Last edge whose CDF is below q: the quantile lies in the bin that starts there.
        j = np.clip((cdf < q).sum(axis=1) - 1, 0, pdf.shape[1] - 1)
        mass = pdf[rows, j]
        frac = np.where(mass > 0, (q - cdf[rows, j]) / np.where(mass > 0, mass, 1.0), 0.0)
        with np.errstate(over="ignore"):  # (rounding at edges near the float64 limit)
            z = edges[j] + np.clip(frac, 0.0, 1.0) * (edges[j + 1] - edges[j])
        out[:, k] = np.clip(z, edges[j], edges[j + 1])
    return out
