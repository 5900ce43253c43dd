"""Label-efficiency curves: photo-z accuracy against the number of spectroscopic labels.

The question self-supervised photo-z answers is how many spectroscopic redshifts pretraining
saves. :func:`label_efficiency_curve` cross-validates an estimator at several label budgets —
the training rows keep their images, but the labels beyond the budget become NaN, so an
estimator that also learns from unlabelled rows sees every image — and keeps every
out-of-fold prediction, so that :func:`label_efficiency_factor` can compare two curves over
the same test galaxies with a paired bootstrap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .metrics import sigma_mad


@dataclass
class LabelEfficiencyCurve:
    """Result of :func:`label_efficiency_curve`.

    Attributes
    ----------
    label_counts : ndarray of shape (n_budgets,)
        Labelled training rows at each budget (increasing).
    test_scores : ndarray of shape (n_budgets, n_splits)
        Score of each budget on each test split, with the scorer's sign (for the default
        scorer, minus σ_MAD: greater is better, as in scikit-learn).
    predictions : list of ndarray of shape (n_budgets, n_test)
        Out-of-fold predictions of each split, one row per budget.
    test_indices : list of ndarray of shape (n_test,)
        Rows of ``X`` (and ``y``) of each split's test galaxies.
    y : ndarray of shape (n_samples,)
        The spectroscopic redshifts the curve was computed with (NaN where unlabelled).
    repeats : ndarray of shape (n_splits,)
        Repeat of the cross-validation each split belongs to.
    fit_times : ndarray of shape (n_budgets, n_splits)
        Seconds to fit each model.
    scoring : str
        Name of the score.
    name : str
        Name of the estimator, for legends.
    """

    label_counts: np.ndarray
    test_scores: np.ndarray
    predictions: list
    test_indices: list
    y: np.ndarray
    repeats: np.ndarray
    fit_times: np.ndarray
    scoring: str = "neg_sigma_mad"
    name: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def n_repeats(self) -> int:
        return int(self.repeats.max()) + 1

    def pooled(self, metric) -> np.ndarray:
        """``metric(z_spec, z_phot)`` of the pooled out-of-fold predictions of each repeat, at
        each budget: shape (n_budgets, n_repeats)."""
        out = np.empty((len(self.label_counts), self.n_repeats))
        for repeat in range(self.n_repeats):
            splits = np.flatnonzero(self.repeats == repeat)
            rows = np.concatenate([self.test_indices[s] for s in splits])
            z_spec = self.y[rows]
            for b in range(len(self.label_counts)):
                z_phot = np.concatenate([self.predictions[s][b] for s in splits])
                out[b, repeat] = metric(z_spec, z_phot)
        return out

    def sigma_mad(self) -> np.ndarray:
        """σ_MAD of the pooled out-of-fold predictions of each repeat: (n_budgets, n_repeats)."""
        return self.pooled(sigma_mad)
