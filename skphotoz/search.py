"""Similarity search over galaxy embeddings: exact top-k by blocked matrix products, or faiss.

A user picks one galaxy (a rare object, a lens candidate, an artefact) and asks for the most
similar ones among millions. Embeddings are L2-normalised (``metric="cosine"``) and compared by
inner product, the similarity of self-supervised photo-z work (Hayat et al. 2021; faiss
``IndexFlatIP`` in its large-survey follow-up, Stein et al. 2021).

The exact engine never forms the full query × index similarity matrix: it multiplies blocks of
queries by blocks of index rows, keeps each block's top-k and merges them into a running top-k,
so memory stays bounded for any number of galaxies. Within a block the top-k is found in two
steps: the index rows of the block are split into ``_N_GROUPS`` slabs, row ``r`` of every slab
forms group ``r``, the maximum of each group is taken (an element-wise reduction of the slabs),
and only the ``k`` groups with the largest maxima can hold the ``k`` largest similarities (any
other group is beaten by ``k`` larger values), so an exact top-k runs on ``_N_GROUPS * k``
candidates instead of the whole block; once a query's running top-k is good, only the groups
whose maximum beats its k-th best are gathered.
"""

from __future__ import annotations

import itertools
import numbers
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import Bunch
from sklearn.utils.validation import check_array, check_is_fitted

__all__ = ["SimilaritySearch", "plot_neighbors", "run_search_cli"]

_METRICS = ("cosine", "dot")
_BACKENDS = ("torch", "faiss")
_INDEXES = ("flat", "hnsw", "ivf")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_FAISS_CODECS = {"float32": "Flat", "float16": "SQfp16", "bfloat16": "SQbf16"}
# Groups of index rows of a block whose maxima pre-select the top-k candidates.
_N_GROUPS = 16
# Block sizes measured on 2-core CPUs (benchmarks/search.py): the top-k bookkeeping costs
# about a quarter of the matrix product per block, whatever the block shape, and fewer larger
# blocks mean fewer thread synchronisations. When few queries come at once the index blocks
# widen so that the similarity buffer keeps its size (64 MiB on the CPU, 256 MiB on a GPU).
_CPU_QUERY_BLOCK = 1024
_CPU_INDEX_BLOCK = 16384
_CPU_BUFFER = 2**24
_CUDA_QUERY_BLOCK = 4096
_CUDA_INDEX_BLOCK = 16384
_CUDA_BUFFER = 2**26
# Fewest queries in a block for which the bfloat16 pre-selection is used on CPU.
_BF16_MIN_QUERIES = 32
# Rows passed to the embedder or copied into the index at a time: bounds the memory of fit.
_INGEST_BLOCK = 8192
# faiss IVF: training rows per inverted list (faiss warns below 39).
_IVF_TRAIN_PER_LIST = 64


class SimilaritySearch(BaseEstimator):
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
        ``"cosine"`` L2-normalises the index at fit and each query at search time, so the
        similarity is the cosine in [-1, 1]; ``"dot"`` uses raw inner products.
    embedder : transformer, optional
        A *fitted* object with ``transform`` (e.g. :class:`skphotoz.MoCoEmbedder`): ``fit``,
        ``kneighbors`` and ``score_samples`` then take images and embed them, a block of 8,192
        at a time. It is used as given and never refitted; since :func:`~sklearn.base.clone`
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
        with a scalar quantizer.
    device : str, default="auto"
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. The
        faiss backend runs on the CPU.
    n_lists : int, optional
        Inverted lists of ``index="ivf"``; by default ``4 * sqrt(n_samples)``, at most
        ``n_samples // 39``.
    n_probe : int, default=16
        Inverted lists visited per query (``index="ivf"``): more is slower and closer to exact.
    hnsw_m : int, default=32
        Graph links per node of ``index="hnsw"``.
    ef_search : int, default=64
        Candidate list length of an HNSW query (``index="hnsw"``): more is slower and closer to
        exact.
    query_block_size : int, optional
        Queries per block; by default 1,024 on the CPU and 4,096 on a GPU.
    index_block_size : int, optional
        Index rows per block of the torch backend. By default as many as fit a working buffer
        of 32 MiB (CPU) or 256 MiB (GPU) — similarities of the block's queries, plus the
        float32 copy of the rows for half-precision storage — but at least 8,192 (CPU) or
        16,384 (GPU) rows.

    Attributes
    ----------
    index_ : torch.Tensor of shape (n_samples_fit_, embedding_dim_) or faiss.Index
        The stored (normalised, for ``metric="cosine"``) embeddings.
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
    plot_neighbors : colour composites of a query and its neighbours.

    Notes
    -----
    :meth:`kneighbors` returns similarities (larger is more similar), sorted in descending
    order, where scikit-learn's ``NearestNeighbors`` returns distances in ascending order.
    Torch threads follow :func:`torch.get_num_threads` and faiss threads
    ``faiss.omp_get_max_threads``; this class changes neither.

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

    def fit(self, X, y=None) -> SimilaritySearch:
        """Index the galaxies.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Embeddings; or, with ``embedder``, anything its ``transform`` accepts (e.g. images
            (n_samples, n_bands, height, width) or :class:`skphotoz.data.HDF5Images`). Read a
            block of rows at a time, so memory-mapped and lazy arrays are not loaded whole.
        y : None
            Ignored.

        Returns
        -------
        self : SimilaritySearch
        """
        self._check_params()
        if self.backend == "faiss":
            _import_faiss()
        X = _as_array_like(X)
        n = X.shape[0]
        if n < 1:
            raise ValueError(f"X must hold at least one sample; got shape {tuple(X.shape)}.")
        self.device_ = self._resolve_device()
        blocks = self._embedded_blocks(X)
        _, first = next(blocks)
        d = first.shape[1]
        blocks = itertools.chain([(0, first)], blocks)
        if self.backend == "torch":
            self.index_ = torch.empty((n, d), dtype=_DTYPES[self.dtype], device=self.device_)
            max_norm = 0.0
            for start, block in blocks:
                rows = self._normalize(block)
                max_norm = max(max_norm, float(torch.linalg.vector_norm(rows, dim=1).max()))
                self.index_[start : start + len(block)] = rows.to(self.device_)
            # Bounds the rounding error of the bfloat16 pre-selection (see _search_block).
            self.max_norm_ = max_norm
        else:
            self.index_ = self._build_faiss(X, blocks, n, d)
        self.n_samples_fit_ = n
        self.embedding_dim_ = d
        if self.embedder is None:
            self.n_features_in_ = d
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
        exclude_self = X_query is None
        k = self._check_n_neighbors(n_neighbors, exclude_self)
        similarities, indices = self._search(X_query, k)
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
        k = self._check_n_neighbors(n_neighbors, X is None)
        similarities, _ = self._search(X, k)
        return similarities.mean(axis=1)

    def __getstate__(self) -> dict[str, Any]:
        # A copy: BaseEstimator may return the live __dict__.
        state = dict(super().__getstate__())
        index = state.get("index_")
        if isinstance(index, torch.Tensor):
            state["index_"] = index.cpu()
        elif index is not None:
            state["index_"] = _import_faiss().serialize_index(index)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        index = state.get("index_")
        if isinstance(index, np.ndarray):
            state["index_"] = _import_faiss().deserialize_index(index)
        elif isinstance(index, torch.Tensor):
            device = state["device_"]
            if device.type == "cuda" and not torch.cuda.is_available():
                device = torch.device("cpu")
            state["device_"] = device
            state["index_"] = index.to(device)
        super().__setstate__(state)

    # -- validation -----------------------------------------------------------------------

    def _check_params(self) -> None:
        _check_choice(self.metric, "metric", _METRICS)
        _check_choice(self.backend, "backend", _BACKENDS)
        _check_choice(self.index, "index", _INDEXES)
        _check_choice(self.dtype, "dtype", tuple(_DTYPES))
        _check_int(self.n_neighbors, "n_neighbors")
        for name in ("n_probe", "hnsw_m", "ef_search"):
            _check_int(getattr(self, name), name)
        for name in ("n_lists", "query_block_size", "index_block_size"):
            if getattr(self, name) is not None:
                _check_int(getattr(self, name), name)
        if self.backend == "torch" and self.index != "flat":
            raise ValueError(
                f"index={self.index!r} is approximate and needs backend='faiss'; the torch "
                f"backend supports index='flat' only, got backend='torch'."
            )
        if self.embedder is not None and not hasattr(self.embedder, "transform"):
            raise TypeError(
                f"embedder must be a fitted transformer with a transform method; got "
                f"{type(self.embedder).__name__}."
            )

    def _resolve_device(self) -> torch.device:
        if not isinstance(self.device, str):
            raise TypeError(f"device must be a string; got {type(self.device).__name__}.")
        if self.device == "auto":
            cuda = self.backend == "torch" and torch.cuda.is_available()
            return torch.device("cuda" if cuda else "cpu")
        try:
            device = torch.device(self.device)
        except RuntimeError as error:
            raise ValueError(
                f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {self.device!r}."
            ) from error
        if device.type not in ("cpu", "cuda"):
            raise ValueError(
                f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {self.device!r}."
            )
        if device.type == "cuda" and self.backend == "faiss":
            raise ValueError(
                f"backend='faiss' runs on the CPU; expected device='auto' or 'cpu', got "
                f"device={self.device!r}."
            )
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device={self.device!r} but CUDA is not available; use device='auto' or 'cpu'."
            )
        return device

    def _check_n_neighbors(self, n_neighbors, exclude_self: bool) -> int:
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        _check_int(k, "n_neighbors")
        available = self.n_samples_fit_ - int(exclude_self)
        if k > available:
            where = "indexed samples other than the query" if exclude_self else "indexed samples"
            raise ValueError(
                f"n_neighbors must be at most {available}, the number of {where}; "
                f"got n_neighbors={k}."
            )
        return k

    # -- embeddings -----------------------------------------------------------------------

    def _embed(self, block) -> np.ndarray:
        """Validated float32 embeddings of a block of rows of X."""
        if self.embedder is not None:
            block = self.embedder.transform(block)
        elif getattr(block, "ndim", 2) != 2:
            raise ValueError(
                f"X must be 2-D embeddings (n_samples, n_features); got shape {block.shape}. "
                f"Pass embedder= to search images."
            )
        embeddings = check_array(block, dtype=np.float32, input_name="X")
        if not embeddings.flags.writeable:  # e.g. a memory-mapped .npy; torch needs writable
            embeddings = embeddings.copy()
        expected = getattr(self, "embedding_dim_", None)
        if expected is not None and embeddings.shape[1] != expected:
            source = "embedder output" if self.embedder is not None else "X"
            raise ValueError(
                f"{source} has {embeddings.shape[1]} features, but {type(self).__name__} was "
                f"fitted with embeddings of dimension {expected}."
            )
        return embeddings

    def _embedded_blocks(self, X):
        """Yield ``(start, float32 tensor)`` blocks of the embeddings of X, of equal width."""
        width = None
        for start in range(0, X.shape[0], _INGEST_BLOCK):
            block = self._embed(X[start : start + _INGEST_BLOCK])
            if width is not None and block.shape[1] != width:
                raise ValueError(
                    f"X rows must all have {width} features; got {block.shape[1]} from row {start}."
                )
            width = block.shape[1]
            yield start, torch.from_numpy(block)

    def _normalize(self, embeddings: torch.Tensor) -> torch.Tensor:
        if self.metric == "dot":
            return embeddings
        norms = torch.linalg.vector_norm(embeddings, dim=1, keepdim=True)
        return embeddings / norms.clamp_min(torch.finfo(torch.float32).tiny)

    # -- search ---------------------------------------------------------------------------

    def _search(self, X_query, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of every query; with ``X_query=None`` the index itself, self-matches removed."""
        exclude_self = X_query is None
        n_queries = self.n_samples_fit_ if exclude_self else None
        if not exclude_self:
            X_query = _as_array_like(X_query)
            n_queries = X_query.shape[0]
            if n_queries < 1:
                raise ValueError(
                    f"X_query must hold at least one sample; got shape {tuple(X_query.shape)}."
                )
        k_search = k + int(exclude_self)
        similarities = np.empty((n_queries, k), dtype=np.float32)
        indices = np.empty((n_queries, k), dtype=np.int64)
        block = self._query_block()
        for start in range(0, n_queries, block):
            stop = min(start + block, n_queries)
            queries = self._stored_rows(start, stop) if exclude_self else None
            if queries is None:
                queries = self._normalize(torch.from_numpy(self._embed(X_query[start:stop])))
            values, rows = self._search_block(queries, k_search)
            if exclude_self:
                values, rows = _drop_self(values, rows, np.arange(start, stop), k)
            similarities[start:stop] = values
            indices[start:stop] = rows
        return similarities, indices

    def _query_block(self) -> int:
        if self.query_block_size is not None:
            return self.query_block_size
        return _CUDA_QUERY_BLOCK if self.device_.type == "cuda" else _CPU_QUERY_BLOCK

    def _stored_rows(self, start: int, stop: int) -> torch.Tensor:
        """Indexed embeddings ``start:stop`` as float32 queries (already normalised)."""
        if isinstance(self.index_, torch.Tensor):
            return self.index_[start:stop].float()
        return torch.from_numpy(self.index_.reconstruct_n(start, stop - start))

    def _search_block(self, queries: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(self.index_, torch.Tensor):
            return self._search_faiss(queries.numpy(), k)
        # The bfloat16 pass pays off where the products are compute-bound (many queries);
        # a few queries only stream the index through memory, which the conversion slows.
        bf16 = (
            self.device_.type == "cpu"
            and len(queries) >= _BF16_MIN_QUERIES
            and self.index_.dtype == torch.float32
            and _cpu_has_bf16()
        )
        index_block = self.index_block_size
        if index_block is None:
            cuda = self.device_.type == "cuda"
            buffer = _CUDA_BUFFER if cuda else _CPU_BUFFER
            minimum = _CUDA_INDEX_BLOCK if cuda else _CPU_INDEX_BLOCK
            # Rows stored in another precision than the products are converted in a buffer
            # of their own.
            per_row = len(queries) + (self.embedding_dim_ if bf16 or self.dtype != "float32" else 0)
            index_block = max(minimum, buffer // per_row // _N_GROUPS * _N_GROUPS)
        queries = queries.to(self.device_)
        if bf16:
            values, rows = _bf16_prefiltered_top_k(
                queries, self.index_, k, index_block, self.max_norm_
            )
        else:
            values, rows = _exact_top_k(queries, self.index_, k, index_block)
        return values.float().cpu().numpy(), rows.cpu().numpy()

    # -- faiss ----------------------------------------------------------------------------

    def _build_faiss(self, X, blocks, n: int, d: int):
        faiss = _import_faiss()
        codec = _FAISS_CODECS[self.dtype]
        if self.index == "flat":
            spec = codec
        elif self.index == "hnsw":
            spec = f"HNSW{self.hnsw_m}" + ("" if codec == "Flat" else f"_{codec}")
        else:
            n_lists = self.n_lists or int(np.clip(4 * np.sqrt(n), 1, max(1, n // 39)))
            spec = f"IVF{n_lists},{codec}"
        index = faiss.index_factory(d, spec, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            n_train = min(n, _IVF_TRAIN_PER_LIST * index.nlist)
            rows = np.unique(np.linspace(0, n - 1, n_train).astype(np.int64))
            index.train(self._normalize(torch.from_numpy(self._embed(X[rows]))).numpy())
        for _, block in blocks:
            index.add(np.ascontiguousarray(self._normalize(block).numpy()))
        if self.index == "ivf":
            index.make_direct_map()
        return index

    def _search_faiss(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        faiss = _import_faiss()
        params = None
        if self.index == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))
        elif self.index == "ivf":
            params = faiss.SearchParametersIVF(nprobe=self.n_probe)
        values, rows = self.index_.search(np.ascontiguousarray(queries), k, params=params)
        return values, rows


def _exact_top_k(
    queries: torch.Tensor,
    index: torch.Tensor,
    k: int,
    index_block_size: int = _CPU_INDEX_BLOCK,
    compute_dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k largest inner products of each query with the rows of ``index``.

    Parameters
    ----------
    queries : torch.Tensor of shape (n_queries, d), float32
    index : torch.Tensor of shape (n_samples, d)
        Rows in any floating dtype on the device of ``queries``; half-precision rows are
        converted to float32 one block at a time.
    k : int
        Number of neighbours, at most ``n_samples``.
    index_block_size : int, default=16384
        Index rows multiplied at once.
    compute_dtype : torch.dtype, default=torch.float32
        Precision of the products; rows are converted one block at a time. With
        ``torch.bfloat16`` the result is the exact top-k of the rounded similarities, which
        :func:`_bf16_prefiltered_top_k` turns into the exact answer.

    Returns
    -------
    values : torch.Tensor of shape (n_queries, k), ``compute_dtype``, descending in each row
    indices : torch.Tensor of shape (n_queries, k), int64
    """
    queries = queries.to(compute_dtype)
    n_queries = queries.shape[0]
    index_block_size = min(index_block_size, index.shape[0])
    # Similarities are laid out (index rows, queries): BLAS multiplies (rows x d) by
    # (d x queries) ~15% faster on CPU than the transposed product, and the groups of index
    # rows used below are then contiguous slabs, reduced by an element-wise maximum.
    scores = torch.empty((index_block_size, n_queries), dtype=compute_dtype, device=queries.device)
    queries_t = queries.T.contiguous()
    rows_buffer = None
    if index.dtype != compute_dtype:
        rows_buffer = torch.empty(
            (index_block_size, index.shape[1]), dtype=compute_dtype, device=queries.device
        )
    best_values = best_indices = None
    for start in range(0, index.shape[0], index_block_size):
        rows = index[start : start + index_block_size]
        width = rows.shape[0]
        if rows_buffer is not None:
            rows = rows_buffer[:width].copy_(rows)
        block = scores[:width]
        torch.mm(rows, queries_t, out=block)
        threshold = None
        if best_values is not None and best_values.shape[1] == k:
            threshold = best_values.amin(dim=1)
        values, columns = _block_candidates(block, k, threshold)
        columns += start
        if best_values is not None:
            values = torch.cat([best_values, values], dim=1)
            columns = torch.cat([best_indices, columns], dim=1)
        best_values, order = torch.topk(values, min(k, values.shape[1]), dim=1, sorted=False)
        best_indices = columns.gather(1, order)
    best_values, order = torch.sort(best_values, dim=1, descending=True)
    return best_values, best_indices.gather(1, order)


def _bf16_prefiltered_top_k(
    queries: torch.Tensor,
    index: torch.Tensor,
    k: int,
    index_block_size: int,
    max_norm: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k of float32 rows at about half the cost, on CPUs with native bfloat16.

    A bfloat16 pass (products twice as fast as float32 on such CPUs, float32 accumulation)
    keeps the ``2k + 16`` best candidates of each query; their similarities recomputed in
    float64 give the answer. Rounding both factors and the product to bfloat16 (unit
    roundoff u = 2**-8) and accumulating ``d`` terms in float32 moves a similarity by at most
    ``eps = (3u + 4u**2 + d 2**-24) |q| max|x|``. A galaxy left out scored at most the last
    candidate's bfloat16 value ``s_last`` in that pass, so at most ``s_last + eps`` exactly;
    when the k-th best exact similarity beats that, the answer is exact. The few queries for
    which it does not are searched again in float32.
    """
    n, d = index.shape
    k_wide = min(n, 2 * k + 16)
    if k_wide == n:
        return _exact_top_k(queries, index, k, index_block_size)
    approx, candidates = _exact_top_k(
        queries, index, k_wide, index_block_size, compute_dtype=torch.bfloat16
    )
    values = torch.empty((len(queries), k), dtype=torch.float32)
    indices = torch.empty((len(queries), k), dtype=torch.long)
    # Candidates are rescored in float64, so near-ties are ordered as exactly as the stored
    # rows allow; gathered rows take at most ~32 MiB at a time.
    chunk = max(1, 2**22 // (k_wide * d))
    for start in range(0, len(queries), chunk):
        stop = start + chunk
        rows = index[candidates[start:stop]].double()  # (chunk, k_wide, d)
        exact = torch.bmm(rows, queries[start:stop].double().unsqueeze(2)).squeeze(2)
        top, order = torch.topk(exact, k, dim=1)
        values[start:stop] = top.float()
        indices[start:stop] = candidates[start:stop].gather(1, order)
    u = 2.0**-8
    eps = (3 * u + 4 * u**2 + d * 2.0**-24) * max_norm * torch.linalg.vector_norm(queries, dim=1)
    unsure = values[:, -1] <= approx[:, -1].float() + eps
    if bool(unsure.any()):
        values[unsure], indices[unsure] = _exact_top_k(queries[unsure], index, k, index_block_size)
    return values, indices


def _cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX)."""
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(check is not None and check())


def _block_candidates(
    block: torch.Tensor, k: int, threshold: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Similarities of a block that may enter each query's top-k, and their index rows.

    ``block`` has shape ``(n_index_rows, n_queries)``. Returns two ``(n_queries,
    n_candidates)`` tensors, padded with ``-inf`` similarities. The block is viewed as
    ``_N_GROUPS`` slabs of consecutive index rows; row ``r`` of every slab forms group ``r``,
    whose maximum over the slabs is one element-wise reduction. Only groups whose maximum
    beats the query's current k-th best (``threshold``) can contribute; once the running
    top-k is good these are a handful, which are gathered directly. Otherwise the ``k``
    groups with the largest maxima hold the block's top-k (any other group is beaten by ``k``
    larger values).
    """
    width, n_queries = block.shape
    group_width = width // _N_GROUPS
    if width % _N_GROUPS or group_width < k:
        columns = torch.arange(width, device=block.device).expand(n_queries, width)
        return block.T, columns.clone()
    grouped = block.view(_N_GROUPS, group_width, n_queries)
    maxima = grouped.amax(dim=0)  # (group_width, n_queries)
    offsets = torch.arange(_N_GROUPS, device=block.device) * group_width
    if threshold is not None:
        hits = maxima > threshold
        counts = hits.sum(dim=0)
        most = int(counts.max())
        if most * _N_GROUPS <= group_width:
            # Through the transposed view the hits come query by query, as the slots need.
            queries, groups = hits.T.nonzero(as_tuple=True)
            first = torch.cumsum(counts, dim=0) - counts
            slots = torch.arange(queries.numel(), device=block.device) - first[queries]
            values = block.new_full((n_queries, most, _N_GROUPS), float("-inf"))
            values[queries, slots] = grouped[:, groups, queries].T
            columns = torch.zeros(
                (n_queries, most, _N_GROUPS), dtype=torch.long, device=block.device
            )
            columns[queries, slots] = groups.unsqueeze(1) + offsets
            return values.view(n_queries, -1), columns.view(n_queries, -1)
    groups = torch.topk(maxima.T, k, dim=1, sorted=False).indices  # (n_queries, k)
    queries = torch.arange(n_queries, device=block.device).unsqueeze(1)
    values = grouped[:, groups, queries].permute(1, 0, 2).reshape(n_queries, -1)
    columns = (groups.unsqueeze(1) + offsets.view(1, -1, 1)).reshape(n_queries, -1)
    return values, columns


def _drop_self(
    values: np.ndarray, rows: np.ndarray, own: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Remove each query's own row from its k + 1 neighbours (else its last neighbour)."""
    is_self = rows == own[:, None]
    # Queries whose own row is not among their neighbours (duplicates, dot products) lose
    # their last, least similar neighbour instead.
    is_self[~is_self.any(axis=1), -1] = True
    keep = ~is_self
    return values[keep].reshape(-1, k), rows[keep].reshape(-1, k)


def _as_array_like(X):
    """Arrays and lazy array-likes (``shape`` and row slicing) pass through; the rest → ndarray."""
    if hasattr(X, "shape") and hasattr(X, "__getitem__"):
        return X
    return np.asarray(X)


def _check_choice(value, name: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; got {value!r}.")


def _check_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")


def _import_faiss():
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "backend='faiss' needs the faiss package: pip install faiss-cpu (or "
            "pip install 'skphotoz[faiss]'); backend='torch' needs nothing more."
        ) from error
    return faiss


def plot_neighbors(
    images,
    query,
    neighbors,
    similarities=None,
    *,
    redshift=None,
    n_cols: int = 6,
    panel_size: float = 1.8,
    rgb_kwargs: dict | None = None,
):
    """Show a query galaxy and its neighbours as g, r, i colour composites.

    Parameters
    ----------
    images : array-like of shape (n_samples, 5, height, width)
        ugriz images in nanomaggies, e.g. :class:`skphotoz.data.HDF5Images`; only the shown
        rows are read.
    query : int or array-like of shape (5, height, width)
        Row of ``images`` of the query, or an image outside it.
    neighbors : array-like of int of shape (n_neighbors,)
        Rows of ``images``, e.g. ``indices[0]`` from :meth:`SimilaritySearch.kneighbors`.
    similarities : array-like of shape (n_neighbors,), optional
        Shown in each neighbour's caption.
    redshift : array-like of shape (n_samples,), optional
        Redshifts of ``images``, shown in the captions.
    n_cols : int, default=6
        Panels per row.
    panel_size : float, default=1.8
        Width and height of one panel in inches.
    rgb_kwargs : dict, optional
        Passed to :func:`skphotoz.data.to_rgb`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from .data import to_rgb

    neighbors = np.asarray(neighbors, dtype=np.int64).reshape(-1)
    if similarities is not None:
        similarities = np.asarray(similarities, dtype=np.float64).reshape(-1)
        if similarities.shape != neighbors.shape:
            raise ValueError(
                f"similarities must have one value per neighbour ({neighbors.size}); got "
                f"{similarities.size}."
            )
    _check_int(n_cols, "n_cols")
    query_is_row = isinstance(query, numbers.Integral)
    rows = np.concatenate([[query], neighbors]) if query_is_row else neighbors
    stamps = np.asarray(images[rows], dtype=np.float32)
    if not query_is_row:
        stamps = np.concatenate([np.asarray(query, dtype=np.float32)[None], stamps])
    rgb = to_rgb(stamps, **(rgb_kwargs or {}))
    n_panels = len(rgb)
    n_rows = -(-n_panels // n_cols)
    fig, axes = plt.subplots(
        n_rows,
        min(n_cols, n_panels),
        figsize=(panel_size * min(n_cols, n_panels), (panel_size + 0.35) * n_rows),
        squeeze=False,
    )
    for position, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if position >= n_panels:
            continue
        ax.imshow(rgb[position], origin="lower", interpolation="nearest")
        if position == 0:
            caption = f"query #{query}" if query_is_row else "query"
        else:
            caption = f"#{neighbors[position - 1]}"
            if similarities is not None:
                caption += f"  s={similarities[position - 1]:.3f}"
        if redshift is not None and (position > 0 or query_is_row):
            row = rows[position] if query_is_row else neighbors[position - 1]
            caption += f"\nz={float(redshift[row]):.3f}"
        ax.set_title(caption, fontsize=8)
    fig.tight_layout()
    return fig


def run_search_cli(
    archive_path,
    query_index: int,
    *,
    n_neighbors: int = 10,
    embeddings_path=None,
    embedder_path=None,
    output_png=None,
    crop: int | None = None,
    metric: str = "cosine",
    backend: str = "torch",
    device: str = "auto",
) -> Bunch:
    """Search an HDF5 archive for the galaxies most similar to one of its galaxies.

    The engine behind ``skphotoz search``: it indexes the archive's embeddings (read from a
    ``.npy`` file, or computed with a pickled fitted embedder), prints the neighbours and
    optionally draws them.

    Parameters
    ----------
    archive_path : str or path-like
        HDF5 archive (see :func:`skphotoz.data.open_archive`).
    query_index : int
        Row of the query galaxy in the archive.
    n_neighbors : int, default=10
    embeddings_path : str or path-like, optional
        ``.npy`` file of shape (n_samples, d), one row per archive galaxy, memory-mapped.
    embedder_path : str or path-like, optional
        ``joblib`` pickle of a fitted transformer (e.g. :class:`skphotoz.MoCoEmbedder`) that
        embeds the archive images; used when ``embeddings_path`` is not given.
    output_png : str or path-like, optional
        Where to save the figure of :func:`plot_neighbors`.
    crop : int, optional
        Centre-crop of the archive stamps (64 for the published 107-px archive), for the
        embedder and the figure.
    metric, backend, device : str
        See :class:`SimilaritySearch`.

    Returns
    -------
    Bunch
        ``indices`` and ``similarities`` of the neighbours (the query excluded), ``redshift``
        of the neighbours when the archive has it, and ``query_redshift``.
    """
    import joblib

    from .data import open_archive

    if (embeddings_path is None) == (embedder_path is None):
        raise ValueError(
            "exactly one of embeddings_path and embedder_path is needed; got "
            f"embeddings_path={embeddings_path!r}, embedder_path={embedder_path!r}."
        )
    archive = open_archive(archive_path, crop=crop)
    n = archive.images.shape[0]
    if isinstance(query_index, bool) or not isinstance(query_index, numbers.Integral):
        raise ValueError(f"query_index must be an integer; got {query_index!r}.")
    if not 0 <= query_index < n:
        raise ValueError(f"query_index must be in [0, {n - 1}]; got {query_index}.")
    if embeddings_path is not None:
        X, embedder = np.load(embeddings_path, mmap_mode="r"), None
        if X.shape[0] != n:
            raise ValueError(
                f"embeddings_path must hold one row per archive galaxy ({n}); got "
                f"{X.shape[0]} rows."
            )
    else:
        X, embedder = archive.images, joblib.load(embedder_path)
    search = SimilaritySearch(embedder=embedder, metric=metric, backend=backend, device=device)
    search.fit(X)
    k = min(n_neighbors + 1, n)
    values, rows = search.kneighbors(np.asarray(X[[query_index]]), n_neighbors=k)
    keep = rows[0] != query_index
    result = Bunch(indices=rows[0][keep][:n_neighbors], similarities=values[0][keep][:n_neighbors])
    redshift = archive.get("redshift")
    result.query_redshift = None if redshift is None else float(redshift[query_index])
    result.redshift = None if redshift is None else redshift[result.indices]
    z_query = "" if redshift is None else f"  z={result.query_redshift:.4f}"
    print(f"query #{query_index}{z_query}")
    print(f"{'rank':>4} {'index':>10} {'similarity':>10}" + ("" if redshift is None else "  z"))
    for rank, (row, value) in enumerate(zip(result.indices, result.similarities, strict=True), 1):
        z = "" if redshift is None else f"  {redshift[row]:.4f}"
        print(f"{rank:>4} {row:>10} {value:>10.4f}{z}")
    if output_png is not None:
        fig = plot_neighbors(
            archive.images, query_index, result.indices, result.similarities, redshift=redshift
        )
        fig.savefig(output_png, dpi=120)
        import matplotlib.pyplot as plt

        plt.close(fig)
    return result
