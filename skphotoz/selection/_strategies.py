"""The strategies that read features only: random, typical points, cells, coverage, and two
in turn."""

from __future__ import annotations

import math

import numpy as np

from .._validation import HasMethods, Range, Real, StrOptions, integer
from .._validation import random_state as random_state_constraint
from ._base import BLOCK, LabelSelector, kmeans, matvec, pick_from_cells, seeded, squared_norms


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
        head = np.sort(head)
        points = np.asarray(X[head], dtype=np.float32)
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
        labels, _ = kmeans(X, n_clusters, rng)
        # As many clusters as labels: every pick goes to a cluster without a label.
        return pick_from_cells(
            labels, n_clusters, labelled, n_select, lambda m: self._typical_order(X, m, rng)
        )


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
        labels, centres = kmeans(X, n_cells, rng)

        def order(members):
            members = np.sort(members)
            if self.within == "random":
                return rng.permutation(members)
            points = np.asarray(X[members], dtype=np.float32)
            d2 = ((points - centres[labels[members[0]]]) ** 2).sum(axis=1)
            return members[np.argsort(d2, kind="stable")]

        return pick_from_cells(labels, n_cells, labelled, n_select, order)


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
    norms = squared_norms(X)
    distance = np.full(len(X), np.inf, dtype=np.float32)

    def update(centres: np.ndarray) -> None:
        points = np.asarray(X[centres], dtype=np.float32)
        c_norms = norms[centres]
        for start in range(0, len(X), BLOCK * 16):
            block = X[start : start + BLOCK * 16]
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
        for start in range(0, len(X), BLOCK * 16):
            mean += X[start : start + BLOCK * 16].sum(axis=0, dtype=np.float64)
        mean = (mean / len(X)).astype(np.float32)
        d2 = norms - 2.0 * matvec(X, mean)
        first = int(np.argmin(d2))
        chosen.append(first)
        update(np.array([first]))
        distance[first] = -np.inf
    while len(chosen) < n_select:
        row = int(np.argmax(distance))
        chosen.append(row)
        # One matrix-vector product per pick: the cost that bounds the selection's time.
        d2 = norms + norms[row] - 2.0 * matvec(X, X[row])
        np.minimum(distance, d2, out=distance)
        distance[row] = -np.inf
    return np.array(chosen, dtype=np.int64)


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
            seeded(TypicalSelection() if self.first is None else self.first, rng),
            seeded(CoverageSelection() if self.then is None else self.then, rng),
        )
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
