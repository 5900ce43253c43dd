"""Label-efficiency curves: cross-validation at several label budgets, keeping every
out-of-fold prediction for the paired comparisons of ``_compare``."""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass

import numpy as np
from sklearn.base import clone
from sklearn.metrics import check_scoring
from sklearn.model_selection import KFold, check_cv
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils.parallel import Parallel, delayed

from .._inputs import rows_text, take_rows
from .._validation import HasMethods, integer, validated
from .._validation import random_state as random_state_constraint
from ..metrics import sigma_mad

# Bounds: more folds or repeats than this only burn time; verbosity is a level.
_MAX_FOLDS = 10_000
_MAX_JOBS = 1024


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
    train_indices : list of ndarray
        Rows of each split's training set, in the order random labels take them: at budget
        ``n`` the first ``n`` are labelled (without a ``selection``); then come the rows that
        never had a label. With a ``selection``, ``labelled_indices`` gives the rows labelled
        at each budget instead.
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
    estimators : list of list or None
        With ``return_estimators=True``, the fitted estimators of each split (one per
        budget), e.g. to draw PDFs of the best one.
    labelled_indices : list of list of ndarray or None
        Rows labelled at each budget of each split (``labelled_indices[split][budget]``): the
        first ``n`` of ``train_indices`` for random labels, the strategy's choice with a
        ``selection``. None in curves saved before it was kept.
    selection : str
        How the labelled rows were chosen: ``"random"`` or the strategy's class name.
    """

    label_counts: np.ndarray
    test_scores: np.ndarray
    predictions: list
    test_indices: list
    train_indices: list
    y: np.ndarray
    repeats: np.ndarray
    fit_times: np.ndarray
    scoring: str = "neg_sigma_mad"
    name: str = ""
    estimators: list | None = None
    labelled_indices: list | None = None
    selection: str = "random"

    @classmethod
    def as_list(cls, curves, name: str = "curves") -> list:
        """``curves`` (one curve or several) as a non-empty list of curves; a TypeError or
        ValueError naming ``name`` for anything else."""
        if isinstance(curves, cls):
            return [curves]
        if curves is None or isinstance(curves, str | bytes) or not hasattr(curves, "__iter__"):
            raise TypeError(
                f"{name} must be a LabelEfficiencyCurve or a list of them (results of "
                f"label_efficiency_curve); got {type(curves).__name__}."
            )
        curves = list(curves)
        if not curves:
            raise ValueError(f"{name} must hold at least one LabelEfficiencyCurve; got none.")
        for i, curve in enumerate(curves):
            if not isinstance(curve, cls):
                raise TypeError(
                    f"{name} must be LabelEfficiencyCurve results of label_efficiency_curve; "
                    f"got a {type(curve).__name__} at position {i}."
                )
        return curves

    @classmethod
    def concatenate(cls, curves) -> LabelEfficiencyCurve:
        """One curve from curves on *different* galaxies with the same budgets (e.g. one per
        simulated data set): their rows are stacked and each curve's repeats become repeats
        of the result, so that pooled metrics average over all of them and paired
        comparisons of two such results resample every data set."""
        curves = cls.as_list(curves)
        counts = curves[0].label_counts
        for curve in curves[1:]:
            if not np.array_equal(curve.label_counts, counts):
                raise ValueError(
                    f"curves must have the same label_counts to be concatenated; got "
                    f"{counts.tolist()} and {curve.label_counts.tolist()}."
                )
        selections = sorted({c.selection for c in curves})
        if len(selections) > 1:
            raise ValueError(
                f"curves must choose their labels the same way to be concatenated; got "
                f"{', '.join(selections)}."
            )
        offsets = np.cumsum([0] + [len(c.y) for c in curves[:-1]])
        repeat_offsets = np.cumsum([0] + [c.n_repeats for c in curves[:-1]])
        return cls(
            label_counts=counts,
            test_scores=np.concatenate([c.test_scores for c in curves], axis=1),
            predictions=[p for c in curves for p in c.predictions],
            test_indices=[
                t + o for c, o in zip(curves, offsets, strict=True) for t in c.test_indices
            ],
            train_indices=[
                t + o for c, o in zip(curves, offsets, strict=True) for t in c.train_indices
            ],
            y=np.concatenate([c.y for c in curves]),
            repeats=np.concatenate(
                [c.repeats + o for c, o in zip(curves, repeat_offsets, strict=True)]
            ),
            fit_times=np.concatenate([c.fit_times for c in curves], axis=1),
            scoring=curves[0].scoring,
            name=curves[0].name,
            labelled_indices=(
                None
                if any(c.labelled_indices is None for c in curves)
                else [
                    [rows + o for rows in split]
                    for c, o in zip(curves, offsets, strict=True)
                    for split in c.labelled_indices
                ]
            ),
            selection=curves[0].selection,
        )

    def select(self, label_counts) -> LabelEfficiencyCurve:
        """The curve at some of its budgets only, e.g. to compare it with a curve computed at
        fewer budgets over the same splits."""
        wanted = np.asarray(label_counts).reshape(-1)
        if wanted.size == 0 or wanted.dtype.kind not in "iu":
            raise ValueError(
                f"label_counts must be one or more budgets (integers) of the curve "
                f"({self.label_counts.tolist()}); got {label_counts!r}."
            )
        missing = np.setdiff1d(wanted, self.label_counts)
        if missing.size:
            raise ValueError(
                f"label_counts must be budgets of the curve ({self.label_counts.tolist()}); got "
                f"{missing.tolist()}."
            )
        keep = np.flatnonzero(np.isin(self.label_counts, wanted))
        return LabelEfficiencyCurve(
            label_counts=self.label_counts[keep],
            test_scores=self.test_scores[keep],
            predictions=[p[keep] for p in self.predictions],
            test_indices=self.test_indices,
            train_indices=self.train_indices,
            y=self.y,
            repeats=self.repeats,
            fit_times=self.fit_times[keep],
            scoring=self.scoring,
            name=self.name,
            estimators=(
                None
                if self.estimators is None
                else [[fitted[b] for b in keep] for fitted in self.estimators]
            ),
            labelled_indices=(
                None
                if self.labelled_indices is None
                else [[split[b] for b in keep] for split in self.labelled_indices]
            ),
            selection=self.selection,
        )

    @property
    def n_repeats(self) -> int:
        return int(self.repeats.max()) + 1

    def pooled(self, metric) -> np.ndarray:
        """``metric(z_spec, z_phot)`` of the pooled out-of-fold predictions of each repeat, at
        each budget: shape (n_budgets, n_repeats)."""
        if not callable(metric):
            raise TypeError(
                f"metric must be a callable metric(z_spec, z_phot), e.g. "
                f"skphotoz.metrics.sigma_mad; got {metric!r}."
            )
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


def _uses_unlabelled(estimator) -> bool:
    """Whether ``estimator`` (or a Pipeline's last step) learns from rows whose label is NaN:
    those that say so with the class attribute ``accepts_unlabelled = True`` (a tag, so that
    this generic tool knows no estimator by name; :class:`~skphotoz.PhotoZRegressor` sets it)."""
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return bool(getattr(final, "accepts_unlabelled", False))


def _rows(X, rows: np.ndarray):
    """Rows of X in that order: a copy for numpy arrays, a lazy view for out-of-core arrays."""
    if isinstance(X, np.ndarray) or not hasattr(X, "shape"):
        return _safe_indexing(X, rows)
    return take_rows(X, rows)


def _fit_and_score(estimator, X, y, train, n_labels, test, scorer, verbose, message):
    """Fit on ``train`` with labels beyond the first ``n_labels`` training rows set to NaN (and
    those rows dropped when the estimator cannot use them); score and predict ``test``."""
    y_train = y[train].copy()
    y_train[n_labels:] = np.nan
    keep = slice(None) if _uses_unlabelled(estimator) else slice(0, n_labels)
    started = time.perf_counter()
    estimator.fit(_rows(X, train[keep]), y_train[keep])
    fit_time = time.perf_counter() - started
    X_test = _rows(X, test)
    predictions = np.asarray(estimator.predict(X_test), dtype=np.float64).reshape(-1)
    if predictions.shape[0] != len(test) or not np.isfinite(predictions).all():
        raise ValueError(
            f"label_efficiency_curve: the estimator's predictions at {message} are not one "
            f"finite redshift per test galaxy: {predictions.shape[0]} values for {len(test)} "
            f"galaxies, {int(np.count_nonzero(~np.isfinite(predictions)))} NaN or infinite."
        )
    # The default score comes from the predictions; another scorer predicts for itself.
    score = (
        -sigma_mad(y[test], predictions) if scorer is None else scorer(estimator, X_test, y[test])
    )
    if verbose:
        print(f"[label_efficiency_curve] {message}: score {score:.4f}, fit {fit_time:.1f} s")
    return score, predictions, fit_time, estimator


@validated(
    {
        "estimator": [HasMethods(["fit", "predict"])],
        "n_repeats": [integer(1, 10_000)],
        "n_jobs": [None, integer(1, _MAX_JOBS), integer(-_MAX_JOBS, -1)],
        "random_state": random_state_constraint(),
        "verbose": [integer(0, 1000), "boolean"],
        "return_estimators": ["boolean"],
        "selection": [None, HasMethods(["select"])],
    }
)
def label_efficiency_curve(
    estimator,
    X,
    y,
    *,
    label_counts,
    cv=5,
    scoring=None,
    n_repeats: int = 1,
    n_jobs: int | None = None,
    random_state=None,
    verbose: int = 0,
    return_estimators: bool = False,
    selection=None,
    selection_features=None,
) -> LabelEfficiencyCurve:
    """Cross-validated accuracy against the number of labelled training galaxies.

    For each split of the labelled rows and each budget ``n`` of ``label_counts``, the
    estimator is fitted on the split's training rows of which only ``n`` keep their labels
    (a random subset, nested: a larger budget adds labels to a smaller one's); the others
    become NaN. Estimators that learn from unlabelled rows
    (:class:`~skphotoz.PhotoZRegressor`, alone or last in a Pipeline) get all training rows,
    so pretraining inside ``fit`` sees every image; any other regressor gets the ``n``
    labelled rows only. Rows whose ``y`` is NaN on input are never tested on, and are
    unlabelled training rows of every split.

    Like :func:`sklearn.model_selection.learning_curve`, it clones the estimator for each fit
    and runs the fits with joblib, so joblib's backends (e.g. Dask or Ray) spread them over a
    cluster. Two curves computed with the same ``cv``, ``n_repeats`` and ``random_state`` on
    the same ``y`` share their test galaxies and training subsets, so that
    :func:`label_efficiency_factor` and :func:`paired_difference` compare them pairwise.

    Parameters
    ----------
    estimator : regressor
        Cloned for each fit; e.g. ``PhotoZRegressor()`` (from scratch),
        ``PhotoZRegressor(FrozenEstimator(embedder))`` (fine-tuned) or
        ``make_pipeline(AperturePhotometry(), RandomForestRegressor())``.
    X : array-like of shape (n_samples, ...)
        Images (numpy or a lazy :class:`~skphotoz.data.HDF5Images`) or features.
    y : array-like of shape (n_samples,)
        Spectroscopic redshifts; NaN marks rows without one.
    label_counts : array-like of int
        Budgets: labelled training rows per fit, each at most the number of labelled rows of
        the smallest training split.
    cv : int or cross-validation splitter, default=5
        An int gives shuffled :class:`~sklearn.model_selection.KFold` splits, drawn anew for
        each repeat; a splitter is used as given (the same splits at every repeat).
    scoring : str or callable, default=None
        A scikit-learn scorer; None gives :data:`skphotoz.metrics.sigma_mad_scorer`
        (minus σ_MAD).
    n_repeats : int, default=1
        Repetitions with other splits (for an int ``cv``) and other label subsets.
    n_jobs : int, default=None
        Fits run in parallel (joblib).
    random_state : int, RandomState instance or None, default=None
        Seeds the splits and the label subsets (not the estimator's own randomness).
    verbose : int, default=0
        Print a line per fit.
    return_estimators : bool, default=False
        Keep the fitted estimators (``curve.estimators[split][budget]``).
    selection : LabelSelector, default=None
        How the labelled rows of each budget are chosen among a split's labelled training
        rows: a strategy of :mod:`skphotoz.selection` (cloned, and called once per split and
        budget with ``y`` of those rows, which only model-based strategies read), or None for
        random labels. The splits, and so the test galaxies, are the same as without it, so
        that a curve with a strategy and the random curve compare pairwise; the test rows
        are always a random split.
    selection_features : array-like of shape (n_samples, n_features), default=None
        Features the strategy selects on (e.g. standardised aperture photometry or
        embeddings); None uses X, which must then be 2-D features.

    Returns
    -------
    LabelEfficiencyCurve

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.neighbors import KNeighborsRegressor
    >>> from skphotoz.model_selection import label_efficiency_curve
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 4))
    >>> z = 0.1 + 0.03 * np.tanh(X[:, 0]) + 0.002 * rng.normal(size=300)
    >>> curve = label_efficiency_curve(
    ...     KNeighborsRegressor(5), X, z, label_counts=[20, 60, 200], cv=3, random_state=0
    ... )
    >>> curve.test_scores.shape  # budgets x splits
    (3, 3)
    >>> bool(curve.sigma_mad()[-1, 0] < curve.sigma_mad()[0, 0])  # more labels, less scatter
    True
    """

    if isinstance(cv, bool | np.bool_) or (
        isinstance(cv, numbers.Integral) and not 2 <= cv <= _MAX_FOLDS
    ):
        raise ValueError(
            f"cv must be a number of folds from 2 to {_MAX_FOLDS}, a splitter or an iterable "
            f"of (train, test) splits; got cv={cv!r}."
        )
    if X is None or isinstance(X, str | bytes | dict) or not hasattr(X, "__len__"):
        raise TypeError(
            f"X must be an array-like with one row per galaxy (images, features or an "
            f"HDF5Images); got {type(X).__name__}."
        )
    y_array = np.asarray(y) if y is not None else None
    if y_array is None or y_array.dtype.kind not in "biuf":
        given = "None" if y_array is None else f"an array of dtype {y_array.dtype}"
        raise TypeError(f"y must be an array of redshifts (NaN where unknown); got {given}.")
    y = y_array.astype(np.float64).reshape(-1)
    n = len(X)
    if len(y) != n:
        raise ValueError(f"y must have one redshift per row of X ({n}); got {len(y)}.")
    if np.isinf(y).any():
        raise ValueError("y contains infinity; mark rows without a redshift with NaN.")
    if np.isnan(y).all():
        raise ValueError("y has no labelled row (all NaN): there is nothing to score.")
    counts = np.asarray(label_counts)
    if counts.ndim != 1 or counts.size == 0 or not np.issubdtype(counts.dtype, np.integer):
        raise ValueError(f"label_counts must be a 1-D sequence of integers; got {label_counts!r}.")
    if np.any(counts < 2) or np.any(np.diff(counts) <= 0):
        raise ValueError(f"label_counts must be increasing integers >= 2; got {counts.tolist()}.")
    scorer = None if scoring is None else check_scoring(estimator, scoring=scoring)
    labelled = np.flatnonzero(~np.isnan(y))
    unlabelled = np.flatnonzero(np.isnan(y))
    rng = check_random_state(random_state)

    tasks = []
    splits = []
    for repeat in range(n_repeats):
        splitter = cv
        if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
            splitter = KFold(int(cv), shuffle=True, random_state=rng.randint(2**31 - 1))
        splitter = check_cv(splitter)
        for train_pos, test_pos in splitter.split(labelled):
            train = rng.permutation(labelled[train_pos])
            if counts[-1] > len(train):
                raise ValueError(
                    f"label_counts must not exceed the labelled training rows of a split "
                    f"({len(train)}); got {counts[-1]}."
                )
            # Labelled rows first (in random order: the first n are budget n's), then the
            # rows that never had a label.
            train = np.concatenate([train, unlabelled])
            test = np.sort(labelled[test_pos])
            splits.append((repeat, train, test))
    features = _selection_features(selection, selection_features, X, labelled)
    if selection is not None:
        from ..selection._base import seeded  # (k-means and the strategies: only when asked for)

    # Drawn after the splits, so that the splits are those of the random curve.
    selection_seed = None if selection is None else rng.randint(2**31 - 1)
    labelled_indices = []
    for s, (repeat, train, test) in enumerate(splits):
        labelled_indices.append([])
        n_train_labelled = len(train) - len(unlabelled)
        for b, count in enumerate(counts):
            message = f"repeat {repeat}, split {s}, {count} labels"
            ordered = train
            if selection is not None:
                pool = train[:n_train_labelled]
                selector = seeded(selection, (selection_seed + 7919 * s) % 2**31)
                picked = pool[selector.select(features[pool], int(count), y=y[pool])]
                ordered = np.concatenate([picked, train[~np.isin(train, picked)]])
            labelled_indices[s].append(ordered[: int(count)].copy())
            tasks.append((s, b, ordered, int(count), test, message))

    results = Parallel(n_jobs=n_jobs)(
        delayed(_fit_and_score)(
            clone(estimator), X, y, train, count, test, scorer, verbose, message
        )
        for s, b, train, count, test, message in tasks
    )
    scores = np.empty((len(counts), len(splits)))
    fit_times = np.empty((len(counts), len(splits)))
    predictions = [np.empty((len(counts), len(test))) for _, _, test in splits]
    estimators = [[None] * len(counts) for _ in splits]
    for (s, b, *_), (score, pred, fit_time, fitted) in zip(tasks, results, strict=True):
        scores[b, s], fit_times[b, s] = score, fit_time
        predictions[s][b] = pred
        estimators[s][b] = fitted
    name = type(estimator).__name__
    if hasattr(estimator, "steps"):
        name = " + ".join(type(step).__name__ for _, step in estimator.steps)
    return LabelEfficiencyCurve(
        label_counts=counts.astype(np.int64),
        test_scores=scores,
        predictions=predictions,
        test_indices=[test for _, _, test in splits],
        train_indices=[train for _, train, _ in splits],
        y=y,
        repeats=np.array([repeat for repeat, _, _ in splits]),
        fit_times=fit_times,
        scoring="neg_sigma_mad" if scoring is None else str(scoring),
        name=name,
        estimators=estimators if return_estimators else None,
        labelled_indices=labelled_indices,
        selection="random" if selection is None else type(selection).__name__,
    )


def _selection_features(selection, features, X, labelled):
    """The features a selection strategy reads, checked against X's rows (and finite on the
    labelled rows, which are the ones it chooses among)."""
    if selection is None:
        if features is not None:
            raise ValueError(
                "selection_features is only read with a selection strategy (selection=...); "
                "got selection_features without one."
            )
        return None
    name = "selection_features"
    if features is None:
        name = "X"
        features = X if hasattr(X, "shape") else np.asarray(X)
        if not isinstance(features, np.ndarray) or features.ndim != 2:
            raise ValueError(
                f"selection needs 2-D features to select on: X has shape "
                f"{getattr(X, 'shape', None)}; pass selection_features (e.g. standardised "
                f"aperture photometry or embeddings of the same rows)."
            )
    features = np.asarray(features)
    if features.ndim != 2 or len(features) != len(X):
        raise ValueError(
            f"selection_features must be 2-D with one row per row of X ({len(X)}); got shape "
            f"{features.shape}."
        )
    if features.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold numbers; got an array of dtype {features.dtype}.")
    bad = labelled[~np.isfinite(features[labelled]).all(axis=1)]
    if len(bad):
        raise ValueError(
            f"{name} holds NaN or infinite values in {len(bad)} labelled row(s) "
            f"({rows_text(bad)}); a strategy cannot place them among the others. Fill or "
            f"drop those rows (rows without a label may have no features)."
        )
    return features
