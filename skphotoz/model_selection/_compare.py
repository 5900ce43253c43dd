"""Paired comparisons of label-efficiency curves over their shared test galaxies: the
label-efficiency factor k and metric differences, with bootstrap intervals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.utils import check_random_state

from .._validation import Range, Real, StrOptions, integer, validated
from .._validation import random_state as random_state_constraint
from ..metrics import OUTLIER_THRESHOLD
from ._curves import LabelEfficiencyCurve

_BOOTSTRAP_CONSTRAINTS = {
    "n_bootstrap": [integer(10, 1_000_000)],
    "confidence": [Range(Real, 0, 1, closed="neither")],
}


def _check_paired(curves) -> None:
    for name, curve in zip(("curve_a", "curve_b"), curves, strict=False):
        if not isinstance(curve, LabelEfficiencyCurve):
            raise TypeError(
                f"{name} must be a LabelEfficiencyCurve (the result of "
                f"label_efficiency_curve); got {type(curve).__name__}."
            )
    first = curves[0]
    for other in curves[1:]:
        same = len(other.test_indices) == len(first.test_indices) and all(
            np.array_equal(a, b)
            for a, b in zip(other.test_indices, first.test_indices, strict=True)
        )
        if not same or not np.array_equal(other.repeats, first.repeats):
            raise ValueError(
                "the curves must share their test galaxies (computed with the same cv, "
                "n_repeats and random_state on the same y); got curves "
                f"{first.name!r} and {other.name!r} with different test splits."
            )
        # The same redshifts, up to rounding: curves saved by another numpy or platform may
        # differ in the last bits of the same simulated galaxies.
        same_y = other.y.shape == first.y.shape and np.allclose(
            other.y, first.y, rtol=_Y_RTOL, atol=0.0, equal_nan=True
        )
        if not same_y:
            raise ValueError(f"the curves {first.name!r} and {other.name!r} have different y.")


_PAIRED_METRICS = ("sigma_mad", "outlier_fraction", "bias")
#: Relative rounding allowed between the y of two paired curves.
_Y_RTOL = 1e-9


def _pooled_metric(curve, positions, metric: str = "sigma_mad") -> np.ndarray:
    """``metric`` at each budget, averaged over repeats, of the test galaxies at
    ``positions`` (one index array into each split's test galaxies): shape (n_budgets,)."""
    per_repeat = []
    for repeat in range(curve.n_repeats):
        splits = np.flatnonzero(curve.repeats == repeat)
        z_spec = np.concatenate([curve.y[curve.test_indices[s]][positions[s]] for s in splits])
        z_phot = np.concatenate([curve.predictions[s][:, positions[s]] for s in splits], axis=1)
        dz = (z_phot - z_spec) / (1 + z_spec)
        if metric == "outlier_fraction":
            per_repeat.append(np.mean(np.abs(dz) > OUTLIER_THRESHOLD, axis=1))
        elif metric == "bias":
            per_repeat.append(np.mean(dz, axis=1))
        else:
            centre = np.median(dz, axis=1, keepdims=True)
            per_repeat.append(1.4826 * np.median(np.abs(dz - centre), axis=1))
    return np.mean(per_repeat, axis=0)


def _bootstrap(curves, n_bootstrap: int, random_state, metric: str = "sigma_mad"):
    """``metric`` of each curve on the test galaxies and on ``n_bootstrap`` resamples of them
    (the same resample for every curve and budget, drawn within each split)."""
    rng = check_random_state(random_state)
    sizes = [len(t) for t in curves[0].test_indices]
    everyone = [np.arange(size) for size in sizes]
    point = [_pooled_metric(curve, everyone, metric) for curve in curves]
    draws = [np.empty((n_bootstrap, len(curve.label_counts))) for curve in curves]
    for i in range(n_bootstrap):
        positions = [rng.randint(size, size=size) for size in sizes]
        for curve, out in zip(curves, draws, strict=True):
            out[i] = _pooled_metric(curve, positions, metric)
    return point, draws


def _labels_needed(target: float, counts: np.ndarray, sigma: np.ndarray) -> tuple[float, int]:
    """Labels at which the curve (counts, sigma) reaches ``target``, interpolated in log
    labels on its running minimum; returns (labels, censored) with censored -1 when even its
    smallest budget is as good (labels <= counts[0]) and +1 when its largest is not."""
    envelope = np.minimum.accumulate(sigma)
    if target >= envelope[0]:
        return float(counts[0]), -1
    if target < envelope[-1]:
        return float(counts[-1]), 1
    j = int(np.argmax(envelope <= target))
    log_n = np.log(counts.astype(np.float64))
    step = envelope[j - 1] - envelope[j]
    frac = (envelope[j - 1] - target) / step if step > 0 else 1.0
    return float(np.exp(log_n[j - 1] + frac * (log_n[j] - log_n[j - 1]))), 0


@dataclass
class LabelEfficiencyFactor:
    """Result of :func:`label_efficiency_factor`.

    Attributes
    ----------
    label_counts : ndarray of shape (n_budgets,)
        The budgets of the first curve.
    factor : ndarray of shape (n_budgets,)
        Labels the second curve needs for the first curve's σ_MAD, divided by the budget.
    low, high : ndarray of shape (n_budgets,)
        The bootstrap interval of the factor.
    censored : ndarray of shape (n_budgets,)
        -1 where the second curve's smallest budget already reaches the first's σ_MAD (the
        factor is an upper bound), +1 where its largest does not (a lower bound), 0 otherwise.
    sigma_mad_a, sigma_mad_b : ndarray
        σ_MAD of each curve at its budgets (mean over repeats).
    confidence : float
    """

    label_counts: np.ndarray
    factor: np.ndarray
    low: np.ndarray
    high: np.ndarray
    censored: np.ndarray
    sigma_mad_a: np.ndarray
    sigma_mad_b: np.ndarray
    confidence: float


@validated({**_BOOTSTRAP_CONSTRAINTS, "random_state": random_state_constraint()})
def label_efficiency_factor(
    curve_a: LabelEfficiencyCurve,
    curve_b: LabelEfficiencyCurve,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state=None,
) -> LabelEfficiencyFactor:
    """How many times more labels ``curve_b`` needs to match ``curve_a``, with an interval.

    For each budget ``n`` of ``curve_a``, k is the number of labels at which ``curve_b``
    reaches the σ_MAD of ``curve_a`` at ``n`` (interpolated linearly in log labels between
    ``curve_b``'s budgets, on its running minimum so that noise does not make it cross twice),
    divided by ``n``: k = 2 means that ``b`` needs twice the labels. The interval is a
    percentile bootstrap over the test galaxies, resampled within each split and shared by
    both curves, so it reflects the noise of the comparison, not of each curve alone. The
    published claim of self-supervised photo-z (Hayat et al. 2021) is k = 2–4 for a
    fine-tuned network against one trained from scratch.

    Parameters
    ----------
    curve_a, curve_b : LabelEfficiencyCurve
        Computed over the same test galaxies (same ``cv``, ``n_repeats``, ``random_state``
        and ``y``), e.g. fine-tuned (a) and from scratch (b).
    n_bootstrap : int, default=1000
    confidence : float, default=0.95
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    LabelEfficiencyFactor

    Examples
    --------
    Two curves over the same splits: a kNN regressor on the informative feature only, and
    one that also sees three noise features (it needs more labels for the same scatter).

    >>> import numpy as np
    >>> from sklearn.neighbors import KNeighborsRegressor
    >>> from skphotoz.model_selection import label_efficiency_curve, label_efficiency_factor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(600, 4))
    >>> z = 0.1 + 0.03 * np.tanh(X[:, 0])
    >>> budgets = [25, 50, 100, 200, 400]
    >>> sharp = label_efficiency_curve(
    ...     KNeighborsRegressor(5), X[:, :1], z, label_counts=budgets, cv=3, random_state=0
    ... )
    >>> blurred = label_efficiency_curve(
    ...     KNeighborsRegressor(5), X, z, label_counts=budgets, cv=3, random_state=0
    ... )
    >>> result = label_efficiency_factor(sharp, blurred, n_bootstrap=100, random_state=0)
    >>> bool(result.factor[0] > 1)  # the blurred model needs more labels
    True
    >>> result.low.shape, result.high.shape
    ((5,), (5,))
    """
    _check_paired([curve_a, curve_b])
    (point_a, point_b), (draws_a, draws_b) = _bootstrap(
        [curve_a, curve_b], n_bootstrap, random_state
    )
    counts_a, counts_b = curve_a.label_counts, curve_b.label_counts

    def factors(sigma_a, sigma_b):
        needed = [_labels_needed(s, counts_b, sigma_b) for s in sigma_a]
        return np.array([n for n, _ in needed]) / counts_a, np.array([c for _, c in needed])

    factor, censored = factors(point_a, point_b)
    boot = np.array([factors(a, b)[0] for a, b in zip(draws_a, draws_b, strict=True)])
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(boot, [tail, 100 - tail], axis=0)
    return LabelEfficiencyFactor(
        label_counts=counts_a,
        factor=factor,
        low=low,
        high=high,
        censored=censored,
        sigma_mad_a=point_a,
        sigma_mad_b=point_b,
        confidence=confidence,
    )


@dataclass
class PairedDifference:
    """Result of :func:`paired_difference`: metric(a) − metric(b) at each common budget
    (σ_MAD unless another ``metric`` was asked for).

    Attributes
    ----------
    label_counts : ndarray
    difference, low, high : ndarray
        The difference and its bootstrap interval (negative: ``a`` is better, for σ_MAD and
        the outlier fraction; for the bias, the signed difference of the two biases).
    prob_a_better : ndarray
        Share of bootstrap resamples in which ``a`` is better: the smaller value, or for
        ``"bias"`` the bias closer to 0.
    sigma_mad_a, sigma_mad_b : ndarray
        The metric of each curve (σ_MAD by default; the name is kept for that default).
    confidence : float
    metric : str
        ``"sigma_mad"``, ``"outlier_fraction"`` or ``"bias"``.
    """

    label_counts: np.ndarray
    difference: np.ndarray
    low: np.ndarray
    high: np.ndarray
    prob_a_better: np.ndarray
    sigma_mad_a: np.ndarray
    sigma_mad_b: np.ndarray
    confidence: float
    metric: str = "sigma_mad"


@validated(
    {
        **_BOOTSTRAP_CONSTRAINTS,
        "random_state": random_state_constraint(),
        "metric": [StrOptions(set(_PAIRED_METRICS))],
    }
)
def paired_difference(
    curve_a: LabelEfficiencyCurve,
    curve_b: LabelEfficiencyCurve,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state=None,
    metric: str = "sigma_mad",
) -> PairedDifference:
    """A metric (σ_MAD by default) of ``curve_a`` minus that of ``curve_b`` at the budgets both
    have, with a paired bootstrap interval over the shared test galaxies (resampled within
    each split).

    Parameters
    ----------
    curve_a, curve_b : LabelEfficiencyCurve
        Computed over the same test galaxies.
    n_bootstrap : int, default=1000
    confidence : float, default=0.95
    random_state : int, RandomState instance or None, default=None
    metric : {"sigma_mad", "outlier_fraction", "bias"}, default="sigma_mad"
        What is compared: σ_MAD, the catastrophic-outlier fraction η (``|dz| > 0.05``) or
        the mean ``dz`` (:func:`skphotoz.metrics.bias`), each averaged over repeats as
        :meth:`LabelEfficiencyCurve.pooled` does.

    Returns
    -------
    PairedDifference
    """
    _check_paired([curve_a, curve_b])
    common, in_a, in_b = np.intersect1d(
        curve_a.label_counts, curve_b.label_counts, return_indices=True
    )
    if common.size == 0:
        raise ValueError(
            f"the curves have no label budget in common: {curve_a.label_counts.tolist()} and "
            f"{curve_b.label_counts.tolist()}."
        )
    (point_a, point_b), (draws_a, draws_b) = _bootstrap(
        [curve_a, curve_b], n_bootstrap, random_state, metric
    )
    boot = draws_a[:, in_a] - draws_b[:, in_b]
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(boot, [tail, 100 - tail], axis=0)
    # A bias is better the closer it is to 0, whatever its sign.
    better = np.abs(draws_a[:, in_a]) < np.abs(draws_b[:, in_b]) if metric == "bias" else boot < 0
    return PairedDifference(
        label_counts=common,
        difference=point_a[in_a] - point_b[in_b],
        low=low,
        high=high,
        prob_a_better=better.mean(axis=0),
        sigma_mad_a=point_a[in_a],
        sigma_mad_b=point_b[in_b],
        confidence=confidence,
        metric=metric,
    )
