"""The :class:`SimilaritySearch` estimator: exact search in PyTorch, or faiss.

Its fit (the index built a block of embeddings at a time) and parameter checks are here; the
search itself, and the checks of what it is given, are in ``_query``.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .._inputs import check_preprocessing
from .._validation import (
    FixedAfterFit,
    HasMethods,
    StrOptions,
    check_value,
    fit_context,
    integer,
)
from ..nn.engine import is_available, resolve_device
from ._faiss import FaissIndex, import_faiss
from ._query import FLOAT32_MAX, as_array_like, embed, row_norms, search, unit_rows

__all__ = ["SimilaritySearch"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Rows passed to the embedder or copied into the index at a time: bounds the memory of fit.
_INGEST_BLOCK = 8192
# Largest read of input rows at a time (float32 bytes): 8,192 rows of embeddings, but a few
# hundred images (819 stamps of 5 x 64 x 64), so that an archive reaches the embedder in
# blocks of tens of MB, not GB.
_READ_BYTES = 2**26
# faiss HNSW: fewer than 2 links per node crashes faiss (a division by log(1) = 0); each link
# costs 8 bytes per indexed galaxy (4 at the base level, stored twice over), so 256 links
# already add 2 KiB to every galaxy.
_HNSW_M_RANGE = (2, 256)
# Largest value of the integer parameters handed to faiss (C ints) or sizing buffers.
_MAX_INT = 2**31 - 1
# Largest query block: with the 16,384-row minimum index block the similarity buffer stays
# at most 2**30 float32 values (4 GiB).
_MAX_QUERY_BLOCK = 2**16
# Largest similarity buffer (values) of a query block times an index block, both given.
_MAX_BUFFER = 2**30
# Storage precisions: largest finite value and smallest normal number. With metric="dot"
# the embeddings are stored as given, so their largest |value| must fit the storage; if it
# is below the smallest normal number every stored value is subnormal and loses precision.
_RANGES = {
    "float32": (float(np.finfo(np.float32).max), float(np.finfo(np.float32).tiny)),
    "bfloat16": (float(torch.finfo(torch.bfloat16).max), float(torch.finfo(torch.bfloat16).tiny)),
    "float16": (float(np.finfo(np.float16).max), float(np.finfo(np.float16).tiny)),
}
# Parameters that decide what the index holds (the others only how it is searched).


class SimilaritySearch(FixedAfterFit, BaseEstimator):
    """Most similar galaxies by inner product of (normalised) embeddings.

    Exact search (``index="flat"``) multiplies blocks of queries by blocks of the index with
    PyTorch on the CPU or a GPU and merges per-block top-k lists, so memory stays bounded for
    any index size; ``backend="faiss"`` uses faiss' exact ``IndexFlatIP`` or its approximate
    HNSW graph and IVF inverted lists for the largest surveys.

    Parameters
    ----------
    n_neighbors : int, default=10
        Number of neighbours returned by :meth:`kneighbors` and averaged by
        :meth:`score_samples` when not given there.
    metric : {"cosine", "dot"}, default="cosine"
        ``"cosine"`` L2-normalises the index at fit and each query at search time (in float64,
        so any finite norm works), so the similarity is the cosine in [-1, 1]; zero vectors
        have no direction and are refused. ``"dot"`` uses raw inner products: the index is
        stored as given, so its values must fit ``dtype``, and similarities beyond the float32
        range in which they are returned raise an error.
    embedder : transformer, optional
        A *fitted* object with ``transform`` (e.g. :class:`skphotoz.MoCoEmbedder`): ``fit``,
        ``kneighbors`` and ``score_samples`` then take images and embed them a block at a
        time: at most 64 MiB of float32 input (819 stamps of 5 x 64 x 64), so that an
        :class:`~skphotoz.data.HDF5Images` archive is never loaded whole, and at most 8,192
        rows. It is used as given and never refitted; since :func:`~sklearn.base.clone`
        returns unfitted copies of nested estimators, wrap it in
        :class:`sklearn.frozen.FrozenEstimator` to keep it fitted through ``clone``.
    backend : {"torch", "faiss"}, default="torch"
        ``"torch"``: exact search on ``device``. ``"faiss"``: faiss on the CPU (needs the
        ``faiss-cpu`` package), exact or approximate according to ``index``.
    index : {"flat", "hnsw", "ivf"}, default="flat"
        ``"flat"``: exact. ``"hnsw"``: faiss HNSW graph (``hnsw_m`` links per node, recall set by
        ``ef_search``). ``"ivf"``: faiss inverted lists (``n_lists`` k-means cells, ``n_probe``
        visited per query). Approximate indexes need ``backend="faiss"``.
    dtype : {"float32", "float16", "bfloat16"}, default="float32"
        Storage precision of the index: half precision halves its memory. The torch backend
        computes similarities in float32 from the stored values; the faiss backend stores them
        with a scalar quantizer. With ``metric="dot"``, float16 holds values up to 65,504 only
        (larger ones raise an error rather than being stored as infinity) and an index whose
        values are all below 6.1e-5 (float16's smallest normal number) is refused, since it
        would lose its precision.
    device : str or torch.device, default="auto"
        ``"auto"`` (CUDA when available, else CPU) or any torch device this machine has
        (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, ...). The faiss backend runs on the
        CPU.
    n_lists : int, optional
        Inverted lists of ``index="ivf"``, at most the number of indexed galaxies; by default
        ``4 * sqrt(n_samples)``, at most ``n_samples // 39``.
    n_probe : int, default=16
        Inverted lists visited per query (``index="ivf"``): more is slower and closer to exact.
        A query whose lists hold fewer than ``n_neighbors`` galaxies is searched again with
        more lists, so every query gets real neighbours (see Notes).
    hnsw_m : int, default=32
        Graph links per node of ``index="hnsw"``, from 2 to 256 (each link costs 8 bytes per
        indexed galaxy).
    ef_search : int, default=64
        Candidate list length of an HNSW query (``index="hnsw"``): more is slower and closer to
        exact; at least ``n_neighbors`` and at most the number of indexed galaxies are used.
    query_block_size : int, optional
        Queries per block; by default 1,024 on the CPU and 4,096 on a GPU.
    index_block_size : int, optional
        Index rows per block of the torch backend. By default as many as fit a working buffer
        of 2**24 (CPU) or 2**26 (GPU) values — similarities of the block's queries, plus the
        converted copy of the rows for half-precision storage — but at least 16,384 rows.

    Attributes
    ----------
    index_ : torch.Tensor of shape (n_samples_fit_, embedding_dim_) or FaissIndex
        The stored (normalised, for ``metric="cosine"``) embeddings; with ``backend="faiss"``
        a :class:`~skphotoz.search._faiss.FaissIndex`, whose ``index`` is the faiss index.
    device_ : torch.device
        Device of the torch index.
    n_samples_fit_ : int
        Number of indexed galaxies.
    embedding_dim_ : int
        Dimension of the embeddings.
    n_features_in_ : int
        Number of features seen in fit, when ``X`` was embeddings (no ``embedder``).

    See Also
    --------
    sklearn.neighbors.NearestNeighbors : exact neighbours by distance, not block-merged top-k.
    skphotoz.plotting.plot_neighbors : colour composites of a query and its neighbours.

    Notes
    -----
    :meth:`kneighbors` returns similarities (larger is more similar), sorted in descending
    order, where scikit-learn's ``NearestNeighbors`` returns distances in ascending order.
    Torch threads follow :func:`torch.get_num_threads` and faiss threads
    ``faiss.omp_get_max_threads``; this class changes neither. Where an approximate faiss
    index reaches fewer than ``n_neighbors`` galaxies from a query (few IVF lists probed), that
    query is searched again more widely, up to exhaustively; no ``-1`` rows are returned.

    Embeddings (given, or returned by ``embedder``) must be finite: NaN or infinite values
    raise a ValueError naming the rows. Parameters are checked again at search time, so
    ``set_params`` can change the search parameters (``n_neighbors``, ``n_probe``,
    ``ef_search``, block sizes) of a fitted search; changing what the index holds
    (``metric``, ``backend``, ``index``, ``dtype``, ``n_lists``, ``hnsw_m``) needs a refit and
    raises a ValueError until then. Every integer parameter is at most 2**31 - 1 (faiss takes
    C ints); ``query_block_size`` at most 65,536, and both block sizes given must multiply to
    at most 2**30 similarities (4 GiB).

    Examples
    --------
    >>> import numpy as np
    >>> from skphotoz.search import SimilaritySearch
    >>> rng = np.random.default_rng(0)
    >>> centres = rng.normal(size=(3, 16))  # three kinds of galaxy
    >>> embeddings = centres[rng.integers(3, size=1000)] + 0.1 * rng.normal(size=(1000, 16))
    >>> embeddings[42] = rng.normal(size=16)  # and an artefact
    >>> search = SimilaritySearch(n_neighbors=3).fit(embeddings)
    >>> similarity, indices = search.kneighbors(embeddings[[7]])
    >>> int(indices[0, 0]), round(float(similarity[0, 0]), 3)
    (7, 1.0)
    >>> search.kneighbors(n_neighbors=2)[1].shape  # the index itself, excluding self-matches
    (1000, 2)
    >>> int(np.argmin(search.score_samples()))  # the most unusual galaxy of the index
    42
    """

    #: Parameters the built index cannot follow once changed (a new fit is needed); search-only
    #: parameters (n_neighbors, n_probe, ef_search, block sizes) may change freely.
    _fixed_after_fit = ("metric", "backend", "index", "dtype", "n_lists", "hnsw_m")
    _fixed_after_fit_reason = (
        "the index was built for it (search-only parameters such as n_neighbors, n_probe and "
        "ef_search may change freely)"
    )

    _parameter_constraints: dict = {
        "n_neighbors": [integer(1, _MAX_INT)],
        "metric": [StrOptions({"cosine", "dot"})],
        "embedder": [None, HasMethods(["transform"])],
        "backend": [StrOptions({"torch", "faiss"})],
        "index": [StrOptions({"flat", "hnsw", "ivf"})],
        "dtype": [StrOptions(set(_DTYPES))],
        "device": [str, torch.device],
        # At most the number of indexed galaxies, checked in fit.
        "n_lists": [None, integer(1, _MAX_INT)],
        # Capped by faiss (and the adapter) at the number of lists.
        "n_probe": [integer(1, _MAX_INT)],
        "hnsw_m": [integer(*_HNSW_M_RANGE)],
        # Capped by the adapter at the number of indexed galaxies.
        "ef_search": [integer(1, _MAX_INT)],
        # Capped by the numbers of queries and of indexed galaxies; their product (the
        # similarity buffer) is checked in fit.
        "query_block_size": [None, integer(1, _MAX_QUERY_BLOCK)],
        "index_block_size": [None, integer(1, _MAX_BUFFER)],
    }

    def __init__(
        self,
        n_neighbors: int = 10,
        *,
        metric: str = "cosine",
        embedder=None,
        backend: str = "torch",
        index: str = "flat",
        dtype: str = "float32",
        device: str = "auto",
        n_lists: int | None = None,
        n_probe: int = 16,
        hnsw_m: int = 32,
        ef_search: int = 64,
        query_block_size: int | None = None,
        index_block_size: int | None = None,
    ):
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.embedder = embedder
        self.backend = backend
        self.index = index
        self.dtype = dtype
        self.device = device
        self.n_lists = n_lists
        self.n_probe = n_probe
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.query_block_size = query_block_size
        self.index_block_size = index_block_size

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None) -> SimilaritySearch:
        """Index the galaxies.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Embeddings; or, with ``embedder``, anything its ``transform`` accepts (e.g. images
            (n_samples, n_bands, height, width) or :class:`skphotoz.data.HDF5Images`). Read a
            block of rows at a time, so memory-mapped and lazy arrays are not loaded whole.
            Embeddings must be finite; with ``metric="cosine"`` none may be zero (its cosine
            is undefined).
        y : None
            Ignored.

        Returns
        -------
        self : SimilaritySearch

        Raises
        ------
        ValueError
            For NaN or infinite embeddings, zero vectors under ``metric="cosine"``, and, under
            ``metric="dot"``, embeddings out of the range of ``dtype`` (largest |value| above
            its largest number, e.g. 65,504 for float16, or all of them below its smallest
            normal number).
        """
        X = as_array_like(X, "X")
        self._check_preprocessing(X)
        n = X.shape[0]
        if n < 1:
            raise ValueError(f"X must hold at least one sample; got shape {tuple(X.shape)}.")
        self._check_combination(n)
        if self.backend == "faiss":
            import_faiss()
        self.device_ = self._resolve_device()
        blocks = self._embedded_blocks(X)
        _, first = next(blocks)
        d = first.shape[1]
        blocks = itertools.chain([(0, first)], blocks)
        largest = [0.0]  # largest |value| of the stored rows (metric="dot")

        def stored(blocks):
            for start, block in blocks:
                if self.metric == "dot":  # before the cast that flushes tiny values to 0
                    largest[0] = max(largest[0], float(np.abs(block).max()))
                rows = self._prepare_index_rows(block, start)
                yield start, rows

        if self.backend == "torch":
            self.index_ = torch.empty((n, d), dtype=_DTYPES[self.dtype], device=self.device_)
            max_norm = 0.0
            for start, rows in stored(blocks):
                rows = torch.from_numpy(rows)
                max_norm = max(max_norm, float(torch.linalg.vector_norm(rows, dim=1).max()))
                self.index_[start : start + len(rows)] = rows.to(self.device_)
            # Bounds the rounding error of the bfloat16 pre-selection (see _query._search_block).
            self.max_norm_ = max_norm
        else:
            self.index_ = FaissIndex.build(
                (rows for _, rows in stored(blocks)),
                n_samples=n,
                kind=self.index,
                dtype=self.dtype,
                n_lists=self.n_lists,
                hnsw_m=self.hnsw_m,
                n_probe=self.n_probe,
                ef_search=self.ef_search,
                training_rows=self._training_rows(X),
            )
        if self.metric == "dot" and 0 < largest[0] < _RANGES[self.dtype][1]:
            raise ValueError(
                f"dtype={self.dtype!r} cannot store X faithfully: with metric='dot' the "
                f"embeddings are stored as given, and the largest |value| of X, "
                f"{largest[0]:.3g}, is below the smallest normal {self.dtype} number "
                f"({_RANGES[self.dtype][1]:.3g}): every stored value would lose its precision. "
                f"Scale the embeddings up"
                + (", use a wider dtype (dtype='float32')" if self.dtype != "float32" else "")
                + " or use metric='cosine'."
            )
        self.n_samples_fit_ = n
        self.embedding_dim_ = d
        if self.embedder is None:
            self.n_features_in_ = d
        # Parameters that shape the index: changing them after fit needs a refit.
        self._remember_fixed()
        return self

    def kneighbors(
        self, X_query=None, n_neighbors: int | None = None, return_distance: bool = True
    ) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
        """Find the most similar indexed galaxies.

        Parameters
        ----------
        X_query : array-like of shape (n_queries, n_features), optional
            Query embeddings (or images, with ``embedder``). If None, the queries are the indexed
            galaxies themselves and each one's own row is excluded from its neighbours.
        n_neighbors : int, optional
            Number of neighbours; ``self.n_neighbors`` if None.
        return_distance : bool, default=True
            Also return the similarities (named as in scikit-learn; they are similarities,
            larger is closer).

        Returns
        -------
        similarities : ndarray of shape (n_queries, n_neighbors), float32
            Cosine similarities (``metric="cosine"``) or inner products, descending in each row.
            Only if ``return_distance`` is True.
        indices : ndarray of shape (n_queries, n_neighbors), int64
            Rows of the index in the same order.
        """
        check_is_fitted(self)
        check_value(
            f"{type(self).__name__}.kneighbors", "return_distance", return_distance, ["boolean"]
        )
        self._check_search_parameters()
        exclude_self = X_query is None
        k = self._check_n_neighbors(n_neighbors, exclude_self)
        similarities, indices = search(self, X_query, k, "X_query")
        return (similarities, indices) if return_distance else indices

    def score_samples(self, X=None, n_neighbors: int | None = None) -> np.ndarray:
        """Typicality of galaxies: mean similarity to their nearest indexed neighbours.

        Follows scikit-learn's outlier-detector convention: the lower, the more unusual, so
        ``np.argsort(search.score_samples())`` lists the indexed survey from its rarest objects
        and artefacts to its most common galaxies.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), optional
            Galaxies to score against the whole index (embeddings, or images with
            ``embedder``). A galaxy that is itself indexed then finds itself as its first
            neighbour. If None, the indexed galaxies are scored, each excluding itself.
        n_neighbors : int, optional
            Neighbours averaged; ``self.n_neighbors`` if None.

        Returns
        -------
        scores : ndarray of shape (n_samples,), float32
        """
        check_is_fitted(self)
        self._check_search_parameters()
        k = self._check_n_neighbors(n_neighbors, X is None)
        similarities, _ = search(self, X, k, "X")
        # Averaged in float64: a float32 sum of large inner products could overflow.
        return similarities.astype(np.float64).mean(axis=1).astype(np.float32)

    def __getstate__(self) -> dict[str, Any]:
        # A copy: BaseEstimator may return the live __dict__. An exact index is stored as a
        # numpy array and the device by name, so that the state holds no torch object (skops
        # stores arrays as plain .npy); a FaissIndex pickles itself as bytes.
        state = dict(super().__getstate__())
        index = state.get("index_")
        if isinstance(index, torch.Tensor):
            index = index.cpu()
            # numpy has no bfloat16: its bits are stored as int16.
            if index.dtype == torch.bfloat16:
                index = index.view(torch.int16)
            state["index_"] = index.numpy()
        for name in ("device", "device_"):
            if isinstance(state.get(name), torch.device):
                state[name] = str(state[name])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if "device_" in state:
            device = torch.device(state["device_"])
            if device.type != "cpu" and not is_available(device):
                device = torch.device("cpu")
            state["device_"] = device
            index = state.get("index_")
            if isinstance(index, np.ndarray):  # the exact index (old pickles hold a tensor)
                index = torch.from_numpy(index)
                if index.dtype == torch.int16 and state.get("dtype") == "bfloat16":
                    index = index.view(torch.bfloat16)
            if isinstance(index, torch.Tensor):
                state["index_"] = index.to(device)
        super().__setstate__(state)

    # -- validation -----------------------------------------------------------------------

    def _check_combination(self, n_samples: int) -> None:
        """Checks across parameters (and the data); ``_parameter_constraints`` checks each one
        alone."""
        if self.backend == "torch" and self.index != "flat":
            raise ValueError(
                f"index={self.index!r} is approximate and needs backend='faiss'; the torch "
                f"backend supports index='flat' only, got backend='torch'."
            )
        if self.index == "ivf" and self.n_lists is not None and self.n_lists > n_samples:
            raise ValueError(
                f"n_lists must be at most the number of indexed galaxies ({n_samples}): each "
                f"inverted list is a k-means cell of them; got n_lists={self.n_lists}."
            )
        if (
            self.query_block_size is not None
            and self.index_block_size is not None
            and self.query_block_size * self.index_block_size > _MAX_BUFFER
        ):
            raise ValueError(
                f"query_block_size * index_block_size is the number of similarities held at "
                f"once and must be at most {_MAX_BUFFER} (4 GiB of float32); got "
                f"query_block_size={self.query_block_size} and "
                f"index_block_size={self.index_block_size}."
            )

    def _check_search_parameters(self) -> None:
        """Parameters may change between fit and search (``set_params``): check them again,
        and refuse changes that the fitted index cannot follow."""
        self._validate_params()
        self._check_combination(self.n_samples_fit_)
        self._check_fixed()

    def _resolve_device(self) -> torch.device:
        if isinstance(self.device, str) and self.device == "auto":
            cuda = self.backend == "torch" and torch.cuda.is_available()
            return torch.device("cuda" if cuda else "cpu")
        device = resolve_device(self.device)  # any torch device this machine has
        if device.type != "cpu" and self.backend == "faiss":
            raise ValueError(
                f"backend='faiss' runs on the CPU; expected device='auto' or 'cpu', got "
                f"device={self.device!r}."
            )
        return device

    def _check_n_neighbors(self, n_neighbors, exclude_self: bool) -> int:
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        check_value(type(self).__name__, "n_neighbors", k, [integer(1, _MAX_INT)])
        available = self.n_samples_fit_ - int(exclude_self)
        if k > available:
            where = "indexed samples other than the query" if exclude_self else "indexed samples"
            raise ValueError(
                f"n_neighbors must be at most {available}, the number of {where}; "
                f"got n_neighbors={k}."
            )
        return k

    # -- embeddings -----------------------------------------------------------------------

    def _check_preprocessing(self, X) -> None:
        """An archive (HDF5Images) to embed must be read as the embedder's training images
        were: it reaches the embedder in numpy blocks, which carry no preprocessing, so it is
        checked here, whole."""
        if self.embedder is not None:
            check_preprocessing(self.embedder, X)

    def _embed_rows(self, X, start: int, stop: int, name: str, fitted_dim: int | None = None):
        """``_query.embed`` of the rows ``start:stop`` of X, read ``_READ_BYTES`` at a time."""
        step = _rows_per_read(X)
        blocks = [
            embed(self, X[first : min(first + step, stop)], name, first, fitted_dim)
            for first in range(start, stop, step)
        ]
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)

    def _embedded_blocks(self, X):
        """Yield ``(start, float64 ndarray)`` blocks of the embeddings of X, of equal width."""
        width = None
        n = X.shape[0]
        for start in range(0, n, _INGEST_BLOCK):
            block = self._embed_rows(X, start, min(start + _INGEST_BLOCK, n), "X")
            if width is not None and block.shape[1] != width:
                raise ValueError(
                    f"X rows must all have {width} features; got {block.shape[1]} from row {start}."
                )
            width = block.shape[1]
            yield start, block

    def _prepare_index_rows(self, embeddings: np.ndarray, start: int) -> np.ndarray:
        """float32 rows to store: unit vectors (cosine), or the embeddings checked against the
        range of ``dtype`` (dot)."""
        if self.metric == "cosine":
            return unit_rows(embeddings, "X", start).astype(np.float32)
        largest = float(np.abs(embeddings).max())
        limit = min(_RANGES[self.dtype][0], FLOAT32_MAX)
        if largest > limit:
            raise ValueError(
                f"dtype={self.dtype!r} cannot store X: with metric='dot' the embeddings are "
                f"stored as given, and X holds a value of |value| {largest:.3g}, beyond the "
                f"largest {self.dtype} number ({limit:.6g}), which would be stored as infinity. "
                f"Scale the embeddings down"
                + (
                    ", use dtype='float32' (or 'bfloat16', of float32's range)"
                    if self.dtype == "float16"
                    else ""
                )
                + " or use metric='cosine'."
            )
        norm = float(row_norms(embeddings).max())
        if norm > FLOAT32_MAX / 2:
            raise ValueError(
                f"With metric='dot' inner products are computed in float32, and X holds an "
                f"embedding of norm {norm:.3g}, so large that they could overflow (float32 "
                f"reaches {FLOAT32_MAX:.3g}). Scale the embeddings down or use "
                f"metric='cosine'."
            )
        return embeddings.astype(np.float32)

    # -- faiss ----------------------------------------------------------------------------

    def _training_rows(self, X):
        """``positions -> rows`` of X embedded and normalised, to train an IVF index."""

        step = _rows_per_read(X)

        def rows(positions: np.ndarray) -> np.ndarray:
            # (up to every row of X: read and embedded a block at a time)
            return np.concatenate(
                [
                    self._prepare_index_rows(embed(self, X[positions[i : i + step]], "X"), 0)
                    for i in range(0, len(positions), step)
                ]
            )

        return rows


def _rows_per_read(X) -> int:
    """Rows of X read at a time: at most ``_READ_BYTES`` of float32 values."""
    per_row = 4 * int(np.prod(X.shape[1:], dtype=np.int64))
    return max(1, _READ_BYTES // max(per_row, 1))
