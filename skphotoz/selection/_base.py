"""The shared base of the selection strategies: input checks, features rescaled for float32
distances, k-means, picking from cells, and :class:`LabelSelector`."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.utils import check_random_state

from .._inputs import all_finite, non_finite_rows, rows_text

# Rows per block of the distance computations: 4,096 rows x 1,024 centres of float32 is 16 MB.
BLOCK = 4096
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
    step = BLOCK * 16
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


def squared_norms(X: np.ndarray) -> np.ndarray:
    out = np.empty(len(X), dtype=np.float32)
    for start in range(0, len(X), BLOCK * 16):
        block = X[start : start + BLOCK * 16]
        out[start : start + len(block)] = np.einsum("ij,ij->i", block, block)
    return out


def kmeans(X: np.ndarray, n_clusters: int, rng) -> tuple[np.ndarray, np.ndarray]:
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


def members_of(labels: np.ndarray, n_clusters: int) -> list[np.ndarray]:
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_clusters + 1))
    return [order[bounds[c] : bounds[c + 1]] for c in range(n_clusters)]


def pick_from_cells(labels, n_cells, labelled, n_select, order_of) -> np.ndarray:
    """Pick ``n_select`` rows one at a time: from the cells without labels first (most
    galaxies first), then from the cell with the most galaxies per label (D'Hondt: labels
    follow the galaxies' distribution); each cell's rows in the order ``order_of(members)``
    gives."""
    members = members_of(labels, n_cells)
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


def matvec(X: np.ndarray, v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    if isinstance(X, np.memmap) or not X.flags.c_contiguous:
        out = np.empty(len(X), dtype=np.float32)
        for start in range(0, len(X), BLOCK * 16):
            out[start : start + BLOCK * 16] = X[start : start + BLOCK * 16] @ v
        return out
    return X @ v


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
        X, labelled, y, rng = self._prepare(X, n_select, labelled, y)
        return self._verified(self._select(X, int(n_select), labelled, y, rng), n_select, labelled)

    def _prepare(self, X, n_select, labelled, y):
        """The checked parameters and input: ``X`` (float32, well scaled), ``labelled``
        (row numbers), ``y`` (float64 or None) and the random generator."""
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
        return X, labelled, y, check_random_state(self.random_state)

    def _verified(self, rows, n_select, labelled) -> np.ndarray:
        """``rows`` as int64, checked against the contract every strategy keeps (a broken
        strategy fails loudly, not silently)."""
        rows = np.asarray(rows, dtype=np.int64)
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


def seeded(selector, seed):
    """``selector`` (a clone) with a seed where its ``random_state`` is None; ``seed`` is an
    int or a RandomState to draw one from (drawn only when needed), so that a strategy run
    inside another (or inside a curve) is reproducible from the outer seed."""
    selector = clone(selector)
    if selector.get_params().get("random_state", 0) is None:
        if isinstance(seed, np.random.RandomState):
            seed = seed.randint(2**31 - 1)
        selector.set_params(random_state=seed)
    return selector
