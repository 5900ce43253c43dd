"""Uncertainty sampling: the galaxies whose redshift a model knows least, spread over
clusters."""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import clone

from .._inputs import rows_text
from .._validation import HasMethods, Range, Real, integer
from .._validation import random_state as random_state_constraint
from ._base import BLOCK, LabelSelector, kmeans, seeded
from ._strategies import TypicalSelection


def prediction_width(estimator, X) -> np.ndarray:
    """Half the 68 % interval of a fitted model's redshift prediction, per row of X: the
    spread of a :class:`~skphotoz.PhotoZRegressor`'s PDF (``predict_interval``) or a
    Gaussian process's predictive σ (``predict(X, return_std=True)``); a Pipeline's last step
    is asked after the steps before it transform X."""
    final, Xt = estimator, X
    if hasattr(estimator, "steps"):
        final = estimator.steps[-1][1]
        Xt = estimator[:-1].transform(X)
    if hasattr(final, "predict_interval"):
        low, high = final.predict_interval(Xt, coverage=0.68)
        return 0.5 * (np.asarray(high, dtype=np.float64) - np.asarray(low, dtype=np.float64))
    error = None
    try:
        result = final.predict(Xt, return_std=True)
    except TypeError as exc:
        error, result = exc, None
    if not isinstance(result, tuple) or len(result) != 2:
        detail = f" ({error})" if error is not None else ""
        raise TypeError(
            f"estimator must give an uncertainty per galaxy: a predict_interval method (a "
            f"PhotoZRegressor) or predict(X, return_std=True) returning (mean, std) (a "
            f"Gaussian process); {type(final).__name__} has neither{detail}."
        )
    std = np.asarray(result[1], dtype=np.float64).reshape(-1)
    if len(std) != len(Xt):
        raise ValueError(
            f"estimator's predict(X, return_std=True) gave {len(std)} standard deviations for "
            f"{len(Xt)} galaxies."
        )
    return std


class UncertaintySelection(LabelSelector):
    """Batch uncertainty sampling: label the galaxies whose redshift the model knows least.

    Given a fitted model's uncertainty per galaxy (``uncertainty=`` of :meth:`select`; e.g.
    :func:`prediction_width` of a fitted :class:`~skphotoz.PhotoZRegressor` on the pool's
    images), one batch is chosen: the ``n_candidates * n_select`` most uncertain galaxies
    are cut into ``n_select`` k-means clusters and the most uncertain of each is taken, so
    that a batch is not spent on one cluster of look-alikes.

    Without ``uncertainty=``, ``estimator`` (anything :func:`prediction_width` reads, e.g.
    ``GaussianProcessPhotoZ()`` on the same features) is fitted on the labelled rows and asked
    for its σ, in rounds: when fewer rows are labelled than ``initial_fraction * n_select``,
    ``initial`` first brings them to that number; the rest of the budget is split into
    ``n_rounds`` equal batches, the model refitted after each. Rounds after the first need the
    redshifts of the galaxies picked in earlier rounds (``y`` of every row, as in a
    simulation); a survey runs one round per observing run.

    Parameters
    ----------
    estimator : regressor, default=None
        Model refitted each round; required unless ``uncertainty`` is passed to ``select``.
    initial : LabelSelector, default=None
        Strategy of the first labels (None: :class:`TypicalSelection`).
    initial_fraction : float, default=0.5
        Share of the budget chosen by ``initial`` when few rows are labelled.
    n_rounds : int, default=2
        Batches of uncertainty sampling after the initial labels.
    n_candidates : int, default=10
        The most uncertain ``n_candidates`` times the batch size are clustered for diversity.
    random_state : int, RandomState instance or None, default=None
    """

    _parameter_constraints = {
        "estimator": [None, HasMethods(["fit", "predict"])],
        "initial": [None, HasMethods(["select"])],
        "initial_fraction": [Range(Real, 0, 1, closed="both")],
        "n_rounds": [integer(1, 1000)],
        "n_candidates": [integer(1, 1000)],
        "random_state": random_state_constraint(),
    }

    def __init__(
        self,
        estimator=None,
        *,
        initial=None,
        initial_fraction=0.5,
        n_rounds=2,
        n_candidates=10,
        random_state=None,
    ):
        self.estimator = estimator
        self.initial = initial
        self.initial_fraction = initial_fraction
        self.n_rounds = n_rounds
        self.n_candidates = n_candidates
        self.random_state = random_state

    def select(self, X, n_select: int, *, labelled=None, y=None, uncertainty=None) -> np.ndarray:
        """As :meth:`LabelSelector.select`; ``uncertainty`` (one value per row of X, e.g.
        :func:`prediction_width` of a fitted model) gives one batch without a model."""
        if uncertainty is None and self.estimator is None:
            raise ValueError(
                "UncertaintySelection needs a model: pass estimator= (refitted on the labelled "
                "rows each round) or uncertainty= to select (the widths of a fitted model)."
            )
        if uncertainty is None and y is None:
            raise ValueError(
                "UncertaintySelection fits its model on the labelled rows and needs their "
                "redshifts in y (one value per row of X, NaN where unknown); got y=None."
            )
        X, labelled, y, rng = self._prepare(X, n_select, labelled, y)
        if uncertainty is None:
            rows = self._rounds(X, int(n_select), labelled, y, rng)
        else:
            width = np.asarray(uncertainty, dtype=np.float64)
            if width.shape != (len(X),) or not np.isfinite(width).all():
                raise ValueError(
                    f"uncertainty must be 1-D with one finite value per row of X ({len(X)}); "
                    f"got shape {width.shape}, {int(np.count_nonzero(~np.isfinite(width)))} "
                    f"values not finite."
                )
            rows = _diverse_top(X, width, int(n_select), labelled, self.n_candidates, rng)
        return self._verified(rows, n_select, labelled)

    def _rounds(self, X, n_select, labelled, y, rng):
        """The initial labels, then ``n_rounds`` batches, the model refitted before each."""
        chosen = list(labelled)
        new: list[int] = []
        n_initial = max(
            0, min(n_select, math.ceil(self.initial_fraction * n_select)) - len(labelled)
        )
        if len(labelled) + n_initial < 2:
            n_initial = min(n_select, 2 - len(labelled))
        if n_initial:
            initial = seeded(TypicalSelection() if self.initial is None else self.initial, rng)
            picked = initial.select(X, n_initial, labelled=np.array(chosen, dtype=np.int64))
            chosen += picked.tolist()
            new += picked.tolist()
        remaining = n_select - len(new)
        sizes = [remaining // self.n_rounds + (r < remaining % self.n_rounds)
                 for r in range(self.n_rounds)]  # fmt: skip
        for size in sizes:
            if size == 0:
                continue
            rows = np.array(chosen, dtype=np.int64)
            targets = None if y is None else y[rows]
            if targets is None or not np.isfinite(targets).all():
                missing = rows if targets is None else rows[~np.isfinite(targets)]
                raise ValueError(
                    f"UncertaintySelection fits its model on the labelled rows and needs their "
                    f"redshifts in y; {len(missing)} of {len(rows)} have none (rows "
                    f"{rows_text(missing)}). Rounds after the first need the redshifts of the "
                    f"rows picked before (a simulation); for a survey, run one round at a time "
                    f"with n_rounds=1."
                )
            model = clone(self.estimator).fit(np.asarray(X[np.sort(rows)]), y[np.sort(rows)])
            width = np.zeros(len(X))
            free = np.setdiff1d(np.arange(len(X)), rows)
            for start in range(0, len(free), BLOCK * 16):
                part = free[start : start + BLOCK * 16]
                width[part] = prediction_width(model, np.asarray(X[part]))
            picked = _diverse_top(X, width, size, rows, self.n_candidates, rng)
            chosen += picked.tolist()
            new += picked.tolist()
        return np.array(new, dtype=np.int64)


def _diverse_top(X, width, n_select, labelled, n_candidates, rng) -> np.ndarray:
    """The most uncertain row of each of ``n_select`` k-means clusters of the
    ``n_candidates * n_select`` most uncertain rows, the most uncertain first."""
    width = np.array(width, dtype=np.float64)
    width[labelled] = -np.inf
    free = len(X) - len(labelled)
    n_top = min(free, n_candidates * n_select)
    top = np.argpartition(-width, n_top - 1)[:n_top]
    top = np.sort(top)
    if n_top == n_select:
        picked = top
    else:
        labels, _ = kmeans(np.asarray(X[top], dtype=np.float32), n_select, rng)
        picked = np.array(
            [top[labels == c][np.argmax(width[top[labels == c]])] for c in range(n_select)
             if np.any(labels == c)]
        )  # fmt: skip
        if len(picked) < n_select:  # k-means may leave a cluster empty on duplicates
            rest = np.setdiff1d(top, picked)
            rest = rest[np.argsort(-width[rest], kind="stable")]
            picked = np.concatenate([picked, rest[: n_select - len(picked)]])
    return picked[np.argsort(-width[picked], kind="stable")]
