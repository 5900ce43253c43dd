"""Which galaxies to take spectra of: label selection from embeddings and photometry.

A survey with a budget of spectra does not have to draw its targets at random. C3R2 (Masters
et al. 2015, ApJ 813, 53) divides colour space into cells and sends spectrographs to the cells
that have no redshift yet; in machine learning, choosing *typical* points of the clusters of a
self-supervised embedding beats random picks at small budgets (TypiClust, Hacohen et al. 2022,
arXiv 2202.02794), and covering the feature space (k-center greedy, Sener & Savarese 2018)
helps once the budget grows.

Each strategy is a small scikit-learn estimator (``get_params``, ``clone``) with one method,
``select(X, n_select, labelled=None)``, that returns the rows of ``X`` to label next, best
first. ``X`` holds the features of the unlabelled pool (embeddings, standardised aperture
photometry, or both); ``labelled`` are rows that already have a redshift (an existing
spectroscopic sample), which the selection fills around. A numpy memmap of any size is read in
blocks, so an archive larger than RAM can be selected from.

:func:`skphotoz.model_selection.label_efficiency_curve` takes a strategy (``selection=``), so
that the curve of each strategy is cross-validated on the same random test galaxies as the
random curve and compared with :func:`~skphotoz.model_selection.paired_difference`.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.utils import check_random_state

from ._inputs import all_finite, non_finite_rows, rows_text
from ._validation import HasMethods, Range, Real, StrOptions, integer
from ._validation import random_state as random_state_constraint

__all__ = [
    "CellSelection",
    "CoverageSelection",
    "LabelSelector",
    "MixedSelection",
    "RandomSelection",
    "TypicalSelection",
    "UncertaintySelection",
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "make_selection",
    "prediction_width",
]

# Rows per block of the distance computations: 4,096 rows x 1,024 centres of float32 is 16 MB.
_BLOCK = 4096
# Above this many rows, k-means runs on mini-batches (scikit-learn's MiniBatchKMeans).
_FULL_KMEANS_ROWS = 20_000


def _check_features(X) -> np.ndarray:
    """``X`` as a 2-D float32 array (a view of a float32 memmap, not a copy), checked finite
    block by block; errors name the argument and the rows."""
    if X is None or isinstance(X, str | bytes | dict) or not hasattr(X, "__len__"):
        raise TypeError(
            f"X must be an array of features, one row per galaxy (embeddings or "
            f"photometry); got {type(X).__name__}."
        )
    array = np.asarray(X)
    if array.dtype.kind not in "biuf" or array.dtype.kind == "b":
        raise TypeError(f"X must hold numbers; got an array of dtype {array.dtype}.")
    if array.ndim != 2:
        raise ValueError(
            f"X must be 2-D (galaxies x features); got shape {array.shape}. Reduce images to "
            f"features first (an embedder's transform, or AperturePhotometry)."
        )
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"X must have at least one row and one feature; got {array.shape}.")
    bad = [] if all_finite(array) else non_finite_rows(array)[0]
    if len(bad):
        raise ValueError(
            f"X holds NaN or infinite features in {len(bad)} row(s) ({rows_text(bad)}); a "
            f"galaxy without features cannot be placed among the others. Leave those rows "
            f"out or fill them before selecting."
        )
    return _well_scaled(array)


def _well_scaled(array: np.ndarray) -> np.ndarray:
    """``array`` as float32 on a scale where float32 distances are exact enough: unchanged
    (a view, for a float32 memmap) when its spread is between 1e-3 and 1e3 and its mean
    within 10 spreads of 0; otherwise centred and divided by its spread, in blocks, from
    float64 statistics. Every strategy is invariant to such a shift and global scale, while
    squared norms of raw fluxes (1e-29) or of values near 1e19 would underflow or overflow in
    float32, and a large offset would cancel the distances' digits."""
    step = _BLOCK * 16
    blocks = [(start, start + step) for start in range(0, len(array), step)]

    def scaled(start, stop, by=1.0):
        return np.asarray(array[start:stop], dtype=np.float64) / by

    peak = max(float(np.abs(scaled(*span)).max()) for span in blocks) or 1.0
    # Statistics of array / peak: no float64 overflow, whatever the values' magnitude.
    mean = sum(scaled(*span, peak).sum(axis=0) for span in blocks) / len(array)
    squares = sum(np.square(scaled(*span, peak) - mean).sum() for span in blocks)
    mean, spread = mean * peak, float(np.sqrt(squares / array.size)) * peak
    offset = float(np.abs(mean).max())
    if spread == 0.0 or (1e-3 <= spread <= 1e3 and offset <= 10 * spread):
        if array.dtype == np.float32:
            return array
        if peak <= 1e30:  # no float32 overflow
            return array.astype(np.float32)
    out = np.empty(array.shape, dtype=np.float32)
    for start, stop in blocks:
        out[start:stop] = (scaled(start, stop) - mean) / (spread if spread > 0 else 1.0)
    return out


def _check_labelled(labelled, n_rows: int) -> np.ndarray:
    if labelled is None:
        return np.empty(0, dtype=np.int64)
    rows = np.asarray(labelled)
    if rows.size == 0:
        return np.empty(0, dtype=np.int64)
    if rows.dtype.kind == "b":
        if rows.shape != (n_rows,):
            raise ValueError(
                f"labelled as a boolean mask must have one value per row of X ({n_rows}); "
                f"got shape {rows.shape}."
            )
        return np.flatnonzero(rows).astype(np.int64)
    if rows.dtype.kind not in "iu" or rows.ndim != 1:
        raise TypeError(
            f"labelled must be row numbers of X (a 1-D integer array) or a boolean mask; got "
            f"an array of dtype {rows.dtype} and shape {rows.shape}."
        )
    outside = rows[(rows < 0) | (rows >= n_rows)]
    if outside.size:
        raise ValueError(
            f"labelled must be rows of X (0 to {n_rows - 1}); got {outside.size} outside: "
            f"{rows_text(outside)}."
        )
    unique = np.unique(rows)
    if unique.size != rows.size:
        raise ValueError(
            f"labelled lists {rows.size - unique.size} row(s) more than once; each labelled "
            f"galaxy must appear once."
        )
    return rows.astype(np.int64)


def _squared_norms(X: np.ndarray) -> np.ndarray:
    out = np.empty(len(X), dtype=np.float32)
    for start in range(0, len(X), _BLOCK * 16):
        block = X[start : start + _BLOCK * 16]
        out[start : start + len(block)] = np.einsum("ij,ij->i", block, block)
    return out


def _kmeans(X: np.ndarray, n_clusters: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Labels and centres of ``n_clusters`` k-means clusters of X (mini-batches on large X)."""
    seed = rng.randint(2**31 - 1)
    if len(X) <= _FULL_KMEANS_ROWS:
        model = KMeans(n_clusters, n_init=1, random_state=seed).fit(X)
    else:
        model = MiniBatchKMeans(
            n_clusters,
            batch_size=max(4096, 3 * n_clusters),
            n_init=1,
            max_no_improvement=10,
            random_state=seed,
        ).fit(X)
    return model.labels_.astype(np.int64), model.cluster_centers_.astype(np.float32)


def _members(labels: np.ndarray, n_clusters: int) -> list[np.ndarray]:
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_clusters + 1))
    return [order[bounds[c] : bounds[c + 1]] for c in range(n_clusters)]


class LabelSelector(BaseEstimator):
    """Base class of the selection strategies: checks the input once, then ``_select``.

    A subclass implements ``_select(X, n_select, labelled, y, rng)`` and returns ``n_select``
    distinct rows of X that are not in ``labelled``, best first.
    """

    def select(self, X, n_select: int, *, labelled=None, y=None) -> np.ndarray:
        """The rows of ``X`` to label next, in order.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features of the pool (embeddings, standardised photometry, ...). A float32
            numpy memmap is read in blocks, not copied.
        n_select : int
            Rows to return: at least 1 and at most the rows not yet labelled.
        labelled : array-like of int or bool, optional
            Rows that already have a redshift; they are never returned, and the selection
            fills the gaps around them.
        y : array-like of shape (n_samples,), optional
            Known redshifts (NaN where unknown); only strategies that fit a model use it.

        Returns
        -------
        rows : ndarray of int64, shape (n_select,)
            Row numbers of X, the first the most wanted; the first ``m`` are the strategy's
            choice for a budget of ``m`` only where the strategy says so (coverage, random).
        """
        self._validate_params()
        X = _check_features(X)
        labelled = _check_labelled(labelled, len(X))
        available = len(X) - len(labelled)
        if (
            isinstance(n_select, bool | np.bool_)
            or not isinstance(n_select, int | np.integer)
            or not 1 <= n_select <= available
        ):
            raise ValueError(
                f"n_select must be an integer from 1 to the {available} rows of X that are not "
                f"labelled yet ({len(X)} rows, {len(labelled)} labelled); got {n_select!r}."
            )
        if y is not None:
            y = np.asarray(y, dtype=np.float64).reshape(-1)
            if len(y) != len(X):
                raise ValueError(
                    f"y must have one redshift (or NaN) per row of X ({len(X)}); got {len(y)}."
                )
        rng = check_random_state(self.random_state)
        rows = np.asarray(self._select(X, int(n_select), labelled, y, rng), dtype=np.int64)
        # The contract every strategy keeps (a broken subclass fails loudly, not silently).
        if (
            len(rows) != n_select
            or len(np.unique(rows)) != n_select
            or np.isin(rows, labelled).any()
        ):
            raise RuntimeError(
                f"{type(self).__name__} returned {len(rows)} rows for n_select={n_select}, "
                f"some repeated or already labelled; this is a bug."
            )
        return rows


class RandomSelection(LabelSelector):
    """Random rows: the control every strategy is measured against.

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None

    Examples
    --------
    >>> import numpy as np
    >>> from skphotoz.selection import RandomSelection
    >>> X = np.random.default_rng(0).normal(size=(100, 3))
    >>> RandomSelection(random_state=0).select(X, 5, labelled=[0, 1]).shape
    (5,)
    """

    _parameter_constraints = {"random_state": random_state_constraint()}

    def __init__(self, *, random_state=None):
        self.random_state = random_state

    def _select(self, X, n_select, labelled, y, rng):
        free = np.setdiff1d(np.arange(len(X)), labelled)
        return rng.permutation(free)[:n_select]


class TypicalSelection(LabelSelector):
    """Typical points of k-means clusters (TypiClust; Hacohen et al. 2022).

    The pool is cut into as many k-means clusters as there will be labels (the labelled rows
    plus ``n_select``). Each pick takes the cluster with the fewest labels, the largest first,
    and in it the most *typical* galaxy: the one whose ``n_neighbors`` nearest neighbours in
    its cluster are closest (highest density). Few labels then land on dense, representative
    galaxies rather than on outliers, which is what a model with few labels learns most from.

    Parameters
    ----------
    n_neighbors : int, default=20
        Neighbours that measure typicality (TypiClust's 20).
    max_cluster_size : int, default=1000
        Members of a cluster compared with each other; a larger cluster is represented by a
        random subset of this size, which bounds the cost on millions of galaxies.
    random_state : int, RandomState instance or None, default=None
        Seeds k-means and the subsets.

    Examples
    --------
    >>> import numpy as np
    >>> from skphotoz.selection import TypicalSelection
    >>> X = np.random.default_rng(0).normal(size=(300, 4))
    >>> rows = TypicalSelection(random_state=0).select(X, 10)
    >>> len(set(rows.tolist()))
    10
    """

    _parameter_constraints = {
        "n_neighbors": [integer(1, 10_000)],
        "max_cluster_size": [integer(2, 1_000_000)],
        "random_state": random_state_constraint(),
    }

    def __init__(self, *, n_neighbors=20, max_cluster_size=1000, random_state=None):
        self.n_neighbors = n_neighbors
        self.max_cluster_size = max_cluster_size
        self.random_state = random_state

    def _typical_order(self, X, members: np.ndarray, rng) -> np.ndarray:
        """Members of one cluster, the most typical first (a random subset beyond
        ``max_cluster_size``, the others after it in random order)."""
        if len(members) > self.max_cluster_size:
            members = rng.permutation(members)
            head, tail = members[: self.max_cluster_size], members[self.max_cluster_size :]
        else:
            head, tail = members, members[:0]
        if len(head) < 2:
            return np.concatenate([head, tail])
        points = np.asarray(X[np.sort(head)], dtype=np.float32)
        head = np.sort(head)
        norms = np.einsum("ij,ij->i", points, points)
        d2 = norms[:, None] + norms[None, :] - 2.0 * (points @ points.T)
        np.maximum(d2, 0.0, out=d2)
        k = min(self.n_neighbors, len(head) - 1)
        # The k nearest others of each member (itself, at distance 0, is the smallest).
        nearest = np.partition(d2, k, axis=1)[:, 1 : k + 1]
        typicality = -np.sqrt(nearest).mean(axis=1)
        return np.concatenate([head[np.argsort(-typicality, kind="stable")], tail])

    def _select(self, X, n_select, labelled, y, rng):
        n_clusters = min(len(labelled) + n_select, len(X))
        labels, _ = _kmeans(X, n_clusters, rng)
        return _pick_from_clusters(
            labels, n_clusters, labelled, n_select, lambda m: self._typical_order(X, m, rng)
        )


def _pick_from_clusters(labels, n_clusters, labelled, n_select, order_of) -> np.ndarray:
    """Pick ``n_select`` rows one at a time from the cluster with the fewest labels (the
    largest first), each cluster's rows in the order ``order_of(members)`` gives."""
    members = _members(labels, n_clusters)
    sizes = np.array([len(m) for m in members])
    taken = (
        np.bincount(labels[labelled], minlength=n_clusters)
        if len(labelled)
        else (np.zeros(n_clusters, dtype=np.int64))
    )
    is_labelled = np.zeros(len(labels), dtype=bool)
    is_labelled[labelled] = True
    ordered: dict[int, list] = {}
    cursor = np.zeros(n_clusters, dtype=np.int64)
    chosen = []
    # A cluster is exhausted when all its members are labelled or chosen.
    left = sizes - taken
    while len(chosen) < n_select:
        open_ = np.flatnonzero(left > 0)
        # Fewest labels first, then the largest cluster (lexsort: last key is primary).
        c = int(open_[np.lexsort((-sizes[open_], taken[open_]))[0]])
        if c not in ordered:
            ordered[c] = [r for r in order_of(members[c]) if not is_labelled[r]]
        row = ordered[c][cursor[c]]
        cursor[c] += 1
        chosen.append(row)
        taken[c] += 1
        left[c] -= 1
    return np.array(chosen, dtype=np.int64)


class CellSelection(LabelSelector):
    """One galaxy per cell of feature space, the cells without a redshift first (C3R2-like).

    C3R2 (Masters et al. 2015, 2017) maps colour space with a self-organizing map and takes
    spectra in the cells that have none, to calibrate the colour-redshift relation with the
    fewest redshifts. Here the cells are k-means clusters: the map's 2-D layout serves its
    pictures, while the selection needs only the cells, and scikit-learn's k-means is
    well kept and scales to millions of rows with mini-batches. Cells are taken by their
    number of labels (none first), then by their number of galaxies (most first). Beyond one
    per cell, further picks go where the cell's share of labels lags its share of galaxies
    most.

    With one cell per label and a random galaxy from each (the defaults), this is stratified
    random sampling: every region of feature space gets a label, while within a region the
    labels fall where the galaxies are, as random labels do. The galaxy nearest the centre
    (``within="centre"``) concentrates labels on cell centres instead.

    Parameters
    ----------
    n_cells : int or None, default=None
        Cells of the map; None makes one cell per label (the labelled rows plus
        ``n_select``), so that every label covers a cell of its own.
    within : {"random", "centre"}, default="random"
        Which galaxy of a cell is taken: a random one, or the one nearest the cell's centre
        (then the next nearest).
    random_state : int, RandomState instance or None, default=None
        Seeds k-means and the random picks.
    """

    _parameter_constraints = {
        "n_cells": [None, integer(1, 10_000_000)],
        "within": [StrOptions({"random", "centre"})],
        "random_state": random_state_constraint(),
    }

    def __init__(self, *, n_cells=None, within="random", random_state=None):
        self.n_cells = n_cells
        self.within = within
        self.random_state = random_state

    def _select(self, X, n_select, labelled, y, rng):
        wanted = len(labelled) + n_select if self.n_cells is None else self.n_cells
        n_cells = min(wanted, len(X))
        labels, centres = _kmeans(X, n_cells, rng)

        def order(members):
            members = np.sort(members)
            if self.within == "random":
                return rng.permutation(members)
            points = np.asarray(X[members], dtype=np.float32)
            d2 = ((points - centres[labels[members[0]]]) ** 2).sum(axis=1)
            return members[np.argsort(d2, kind="stable")]

        return _pick_proportional(labels, n_cells, labelled, n_select, order)


def _pick_proportional(labels, n_cells, labelled, n_select, order_of) -> np.ndarray:
    """Cells without labels first (most galaxies first), then the cell with the most
    galaxies per label (D'Hondt: labels follow the galaxies' distribution)."""
    members = _members(labels, n_cells)
    sizes = np.array([len(m) for m in members], dtype=np.float64)
    taken = np.bincount(labels[labelled], minlength=n_cells).astype(np.float64)
    is_labelled = np.zeros(len(labels), dtype=bool)
    is_labelled[labelled] = True
    left = sizes - taken
    ordered: dict[int, list] = {}
    cursor = np.zeros(n_cells, dtype=np.int64)
    chosen = []
    while len(chosen) < n_select:
        open_ = np.flatnonzero(left > 0)
        empty = open_[taken[open_] == 0]
        if len(empty):
            c = int(empty[np.argmax(sizes[empty])])
        else:
            c = int(open_[np.argmax(sizes[open_] / (taken[open_] + 1))])
        if c not in ordered:
            ordered[c] = [r for r in order_of(members[c]) if not is_labelled[r]]
        chosen.append(ordered[c][cursor[c]])
        cursor[c] += 1
        taken[c] += 1
        left[c] -= 1
    return np.array(chosen, dtype=np.int64)


class CoverageSelection(LabelSelector):
    """k-center greedy coverage (Sener & Savarese 2018): each pick is the galaxy farthest from
    every labelled or picked one, so that no region of feature space stays far from a label.

    It reaches the edges of the distribution (rare colours, outliers) early, which cuts
    catastrophic outliers; with very few labels it spends them on unusual galaxies rather than
    typical ones. The order is greedy: the first ``m`` rows are its choice for a budget of
    ``m``. Without labelled rows the first pick is the galaxy nearest the mean.

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        Unused by the greedy order (deterministic); kept so that every strategy takes one.
    """

    _parameter_constraints = {"random_state": random_state_constraint()}

    def __init__(self, *, random_state=None):
        self.random_state = random_state

    def _select(self, X, n_select, labelled, y, rng):
        return _k_center(X, n_select, labelled)


def _k_center(X: np.ndarray, n_select: int, labelled: np.ndarray) -> np.ndarray:
    norms = _squared_norms(X)
    distance = np.full(len(X), np.inf, dtype=np.float32)

    def update(centres: np.ndarray) -> None:
        points = np.asarray(X[centres], dtype=np.float32)
        c_norms = norms[centres]
        for start in range(0, len(X), _BLOCK * 16):
            block = X[start : start + _BLOCK * 16]
            d2 = (
                norms[start : start + len(block), None]
                + c_norms[None, :]
                - 2.0 * (block @ points.T)
            )
            np.minimum(
                distance[start : start + len(block)],
                d2.min(axis=1),
                out=(distance[start : start + len(block)]),
            )

    chosen = []
    if len(labelled):
        for start in range(0, len(labelled), 1024):
            update(labelled[start : start + 1024])
        distance[labelled] = -np.inf
    else:
        mean = np.zeros(X.shape[1], dtype=np.float64)
        for start in range(0, len(X), _BLOCK * 16):
            mean += X[start : start + _BLOCK * 16].sum(axis=0, dtype=np.float64)
        mean = (mean / len(X)).astype(np.float32)
        d2 = norms - 2.0 * _matvec(X, mean)
        first = int(np.argmin(d2))
        chosen.append(first)
        update(np.array([first]))
        distance[first] = -np.inf
    while len(chosen) < n_select:
        row = int(np.argmax(distance))
        chosen.append(row)
        # One matrix-vector product per pick: the cost that bounds the selection's time.
        d2 = norms + norms[row] - 2.0 * _matvec(X, X[row])
        np.minimum(distance, d2, out=distance)
        distance[row] = -np.inf
    return np.array(chosen, dtype=np.int64)


def _matvec(X: np.ndarray, v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    if isinstance(X, np.memmap) or not X.flags.c_contiguous:
        out = np.empty(len(X), dtype=np.float32)
        for start in range(0, len(X), _BLOCK * 16):
            out[start : start + _BLOCK * 16] = X[start : start + _BLOCK * 16] @ v
        return out
    return X @ v


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
        if uncertainty is not None:
            n_rows = len(_check_features(X))
            width = np.asarray(uncertainty, dtype=np.float64)
            if width.shape != (n_rows,) or not np.isfinite(width).all():
                raise ValueError(
                    f"uncertainty must be 1-D with one finite value per row of X ({n_rows}); "
                    f"got shape {width.shape}, {int(np.count_nonzero(~np.isfinite(width)))} "
                    f"values not finite."
                )
            self._width = width
        else:
            self._width = None
            if self.estimator is None:
                raise ValueError(
                    "UncertaintySelection needs a model: pass estimator= (refitted on the "
                    "labelled rows each round) or uncertainty= to select (the widths of a "
                    "fitted model)."
                )
            if y is None:
                raise ValueError(
                    "UncertaintySelection fits its model on the labelled rows and needs their "
                    "redshifts in y (one value per row of X, NaN where unknown); got y=None."
                )
        try:
            return super().select(X, n_select, labelled=labelled, y=y)
        finally:
            del self._width

    def _select(self, X, n_select, labelled, y, rng):
        if self._width is not None:
            return _diverse_top(X, self._width, n_select, labelled, self.n_candidates, rng)
        chosen = list(labelled)
        new: list[int] = []
        n_initial = max(
            0, min(n_select, math.ceil(self.initial_fraction * n_select)) - len(labelled)
        )
        if len(labelled) + n_initial < 2:
            n_initial = min(n_select, 2 - len(labelled))
        if n_initial:
            initial = TypicalSelection() if self.initial is None else clone(self.initial)
            if "random_state" in initial.get_params():
                initial.set_params(random_state=rng.randint(2**31 - 1))
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
            for start in range(0, len(free), _BLOCK * 16):
                part = free[start : start + _BLOCK * 16]
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
        labels, _ = _kmeans(np.asarray(X[top], dtype=np.float32), n_select, rng)
        picked = np.array(
            [top[labels == c][np.argmax(width[top[labels == c]])] for c in range(n_select)
             if np.any(labels == c)]
        )  # fmt: skip
        if len(picked) < n_select:  # k-means may leave a cluster empty on duplicates
            rest = np.setdiff1d(top, picked)
            rest = rest[np.argsort(-width[rest], kind="stable")]
            picked = np.concatenate([picked, rest[: n_select - len(picked)]])
    return picked[np.argsort(-width[picked], kind="stable")]


class MixedSelection(LabelSelector):
    """Two strategies in turn: ``first`` chooses ``first_fraction`` of the budget, ``then``
    the rest around them (e.g. typical galaxies first, then coverage of the edges).

    Parameters
    ----------
    first : LabelSelector, default=None
        Strategy of the first labels (None: :class:`TypicalSelection`).
    then : LabelSelector, default=None
        Strategy of the rest, with the first ones counted as labelled (None:
        :class:`CoverageSelection`).
    first_fraction : float, default=0.5
        Share of the budget chosen by ``first`` (rounded up).
    random_state : int, RandomState instance or None, default=None
        Seeds both strategies where theirs is None.
    """

    _parameter_constraints = {
        "first": [None, HasMethods(["select"])],
        "then": [None, HasMethods(["select"])],
        "first_fraction": [Range(Real, 0, 1, closed="both")],
        "random_state": random_state_constraint(),
    }

    def __init__(self, first=None, then=None, *, first_fraction=0.5, random_state=None):
        self.first = first
        self.then = then
        self.first_fraction = first_fraction
        self.random_state = random_state

    def _select(self, X, n_select, labelled, y, rng):
        steps = (
            TypicalSelection() if self.first is None else clone(self.first),
            CoverageSelection() if self.then is None else clone(self.then),
        )
        for step in steps:
            if step.get_params().get("random_state", 0) is None:
                step.set_params(random_state=rng.randint(2**31 - 1))
        n_first = min(n_select, math.ceil(self.first_fraction * n_select))
        chosen = np.empty(0, dtype=np.int64)
        if n_first:
            chosen = steps[0].select(X, n_first, labelled=labelled, y=y)
        if n_select > n_first:
            rest = steps[1].select(
                X, n_select - n_first, labelled=np.concatenate([labelled, chosen]), y=y
            )
            chosen = np.concatenate([chosen, rest])
        return chosen


#: The strategies by name (as ``skphotoz select --strategy`` takes them), with what they do.
STRATEGIES = {
    "random": "random galaxies (the control)",
    "typical": "typical galaxies of k-means clusters (TypiClust)",
    "cells": "a random galaxy from each of as many k-means cells as labels (C3R2-like)",
    "coverage": "k-center greedy coverage of feature space",
    "typical+coverage": "typical galaxies for half the budget, then coverage",
    "uncertainty": "the galaxies whose redshift PDF is widest, spread over k-means clusters",
}


def make_selection(name: str, *, random_state=None) -> LabelSelector:
    """The strategy called ``name`` in :data:`STRATEGIES`, with its default settings."""
    makers = {
        "random": RandomSelection,
        "typical": TypicalSelection,
        "cells": CellSelection,
        "coverage": CoverageSelection,
        "typical+coverage": MixedSelection,
        "uncertainty": UncertaintySelection,
    }
    if name not in makers:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}; got {name!r}.")
    return makers[name](random_state=random_state)


#: The strategy of ``skphotoz select`` and of the demo when none is named: chosen by the
#: measurements of ``benchmarks/label_selection.py`` (docs/selection.md).
DEFAULT_STRATEGY = "cells"
