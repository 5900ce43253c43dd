"""The faiss adapter of :class:`~skphotoz.search.SimilaritySearch`.

:class:`FaissIndex` hides faiss behind the few calls the estimator makes: build an
inner-product index from blocks of rows, search it, read rows back, and pickle it. faiss is
imported only when one is built or unpickled (:func:`import_faiss`), so ``backend="torch"``
never needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

__all__ = ["FaissIndex", "import_faiss"]

# Storage precision -> faiss codec (scalar quantizers for half precision).
_FAISS_CODECS = {"float32": "Flat", "float16": "SQfp16", "bfloat16": "SQbf16"}
_KINDS = ("flat", "hnsw", "ivf")
# faiss IVF: training rows per inverted list (faiss warns below 39).
_IVF_TRAIN_PER_LIST = 64


def import_faiss():
    """The ``faiss`` module, or an ImportError that says how to install it."""
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "backend='faiss' needs the faiss package: pip install faiss-cpu (or "
            "pip install 'skphotoz[faiss]'); backend='torch' needs nothing more."
        ) from error
    return faiss


def default_n_lists(n_samples: int) -> int:
    """IVF lists by default: ``4 * sqrt(n_samples)``, at most ``n_samples // 39``, at least 1."""
    return int(np.clip(4 * np.sqrt(n_samples), 1, max(1, n_samples // 39)))


class FaissIndex:
    """An inner-product faiss index of float32 rows: exact, HNSW or IVF.

    Build one with :meth:`build`; the constructor wraps an existing faiss index.

    Parameters
    ----------
    index : faiss.Index
        An inner-product index; IVF indexes need their direct map (see :meth:`build`) for
        :meth:`reconstruct`.
    kind : {"flat", "hnsw", "ivf"}, default="flat"
        How ``index`` searches: it decides which search parameters apply.
    n_probe : int, default=16
        Inverted lists visited per query (``kind="ivf"``) unless :meth:`search` says otherwise.
    ef_search : int, default=64
        Candidate list length of an HNSW query (``kind="hnsw"``) unless :meth:`search` says
        otherwise.

    Attributes
    ----------
    index : faiss.Index
        The wrapped faiss index.

    Notes
    -----
    faiss marks a missing neighbour with the row ``-1``: an approximate index may reach fewer
    than ``k`` rows from a query (an IVF query whose ``n_probe`` lists hold fewer than ``k``
    rows, a poorly connected HNSW graph). :meth:`search` never returns such rows: it searches
    those queries again with twice the lists or candidates, up to all of them (exhaustive for
    IVF); an HNSW query still short then searches the stored rows exhaustively. A
    RuntimeError is left for a query short even of that, which cannot happen for k at most
    the number of rows.
    """

    def __init__(self, index, kind: str = "flat", *, n_probe: int = 16, ef_search: int = 64):
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {list(_KINDS)}; got {kind!r}.")
        self.index = index
        self.kind = kind
        self.n_probe = n_probe
        self.ef_search = ef_search

    @classmethod
    def build(
        cls,
        blocks: Iterable[np.ndarray],
        *,
        n_samples: int,
        kind: str = "flat",
        dtype: str = "float32",
        n_lists: int | None = None,
        hnsw_m: int = 32,
        n_probe: int = 16,
        ef_search: int = 64,
        training_rows: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> FaissIndex:
        """Index ``n_samples`` rows given as consecutive blocks.

        Parameters
        ----------
        blocks : iterable of ndarray of shape (n_rows, d), float32
            The rows to index, in order, as the search should see them (e.g. normalised);
            consumed once.
        n_samples : int
            Total number of rows of ``blocks``.
        kind : {"flat", "hnsw", "ivf"}, default="flat"
            ``"flat"``: exact; ``"hnsw"``: HNSW graph of ``hnsw_m`` links per node; ``"ivf"``:
            ``n_lists`` k-means cells, trained on rows spread over the whole index.
        dtype : {"float32", "float16", "bfloat16"}, default="float32"
            Storage precision: half precision uses faiss' scalar quantizers.
        n_lists : int, optional
            Inverted lists of ``kind="ivf"``, at most ``n_samples``; by default
            ``4 * sqrt(n_samples)``, at most ``n_samples // 39``.
        hnsw_m : int, default=32
            Links per node of ``kind="hnsw"``, at least 2 (faiss crashes with 1).
        n_probe, ef_search : int
            Default search parameters, see the class.
        training_rows : callable, optional
            ``training_rows(positions)`` returns the rows at the given sorted positions,
            prepared like ``blocks``; needed by ``kind="ivf"`` to train before indexing.

        Returns
        -------
        FaissIndex
        """
        faiss = import_faiss()
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {list(_KINDS)}; got {kind!r}.")
        if dtype not in _FAISS_CODECS:
            raise ValueError(f"dtype must be one of {list(_FAISS_CODECS)}; got {dtype!r}.")
        blocks = iter(blocks)
        first = np.ascontiguousarray(next(blocks), dtype=np.float32)
        d = first.shape[1]
        codec = _FAISS_CODECS[dtype]
        if kind == "flat":
            spec = codec
        elif kind == "hnsw":
            if hnsw_m < 2:
                raise ValueError(f"hnsw_m must be at least 2; got {hnsw_m}.")
            spec = f"HNSW{hnsw_m}" + ("" if codec == "Flat" else f"_{codec}")
        else:
            n_lists = n_lists or default_n_lists(n_samples)
            if n_lists > n_samples:
                raise ValueError(
                    f"n_lists must be at most the number of rows ({n_samples}); got {n_lists}."
                )
            if training_rows is None:
                raise ValueError("kind='ivf' needs training_rows to train its lists.")
            spec = f"IVF{n_lists},{codec}"
        index = faiss.index_factory(d, spec, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            n_train = min(n_samples, _IVF_TRAIN_PER_LIST * index.nlist)
            positions = np.unique(np.linspace(0, n_samples - 1, n_train).astype(np.int64))
            index.train(np.ascontiguousarray(training_rows(positions), dtype=np.float32))
        index.add(first)
        for block in blocks:
            index.add(np.ascontiguousarray(block, dtype=np.float32))
        if index.ntotal != n_samples:
            raise ValueError(f"blocks held {index.ntotal} rows; expected n_samples={n_samples}.")
        if kind == "ivf":
            index.make_direct_map()
        return cls(index, kind, n_probe=n_probe, ef_search=ef_search)

    @property
    def n_samples(self) -> int:
        """Number of indexed rows."""
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        """Dimension of the rows."""
        return int(self.index.d)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        n_probe: int | None = None,
        ef_search: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows of largest inner product with each query.

        Parameters
        ----------
        queries : ndarray of shape (n_queries, dim)
        k : int
            Between 1 and :attr:`n_samples`.
        n_probe, ef_search : int, optional
            Override the search parameters given at construction for this call.

        Returns
        -------
        similarities : ndarray of shape (n_queries, k), float32, descending in each row
        indices : ndarray of shape (n_queries, k), int64
            Rows of the index; never ``-1`` (see the class notes).

        Raises
        ------
        RuntimeError
            If a query is still short of ``k`` rows when the index is searched as widely as
            it can be.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(
                f"queries must have shape (n_queries, {self.dim}); got {queries.shape}."
            )
        if not 1 <= k <= self.n_samples:
            raise ValueError(f"k must be in [1, {self.n_samples}]; got {k}.")
        n_probe = self.n_probe if n_probe is None else n_probe
        ef_search = self.ef_search if ef_search is None else ef_search
        values, rows = self._search_once(queries, k, n_probe, ef_search)
        short = (rows < 0).any(axis=1)
        while short.any():
            wider = self._wider(k, n_probe, ef_search)
            storage = getattr(self.index, "storage", None)
            if wider is None and self.kind == "hnsw" and storage is not None:
                # A graph that even a full candidate list cannot cross (many duplicates, few
                # links): the short queries search the stored rows exhaustively.
                which = np.flatnonzero(short)
                faiss = import_faiss()
                if isinstance(storage, faiss.Index):
                    storage = faiss.downcast_index(storage)
                values[which], rows[which] = storage.search(queries[which], k)
                short[which] = (rows[which] < 0).any(axis=1)
                if not short.any():
                    break
            if wider is None:
                raise RuntimeError(
                    f"the faiss {self.kind} index found fewer than k={k} neighbours for "
                    f"{int(short.sum())} of {len(queries)} queries even when searched as "
                    f"widely as it can be ({self._breadth(k, n_probe, ef_search)}); use an "
                    f"exact index (index='flat') or a smaller k."
                )
            n_probe, ef_search = wider
            which = np.flatnonzero(short)
            values[which], rows[which] = self._search_once(queries[which], k, n_probe, ef_search)
            short[which] = (rows[which] < 0).any(axis=1)
        return values, rows

    def reconstruct(self, start: int, stop: int) -> np.ndarray:
        """Stored rows ``start:stop`` as float32 (decoded, for half-precision storage)."""
        return self.index.reconstruct_n(start, stop - start)

    def serialize(self) -> np.ndarray:
        """The faiss index as a uint8 array (``faiss.serialize_index``)."""
        return import_faiss().serialize_index(self.index)

    @classmethod
    def deserialize(cls, buffer: np.ndarray, kind: str = "flat", **search_params) -> FaissIndex:
        """Inverse of :meth:`serialize`; ``kind`` and ``search_params`` as in the constructor."""
        return cls(import_faiss().deserialize_index(buffer), kind, **search_params)

    def __getstate__(self) -> dict[str, Any]:
        return {
            "index": self.serialize(),
            "kind": self.kind,
            "n_probe": self.n_probe,
            "ef_search": self.ef_search,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.index = import_faiss().deserialize_index(state["index"])
        self.kind = state["kind"]
        self.n_probe = state["n_probe"]
        self.ef_search = state["ef_search"]

    def __repr__(self) -> str:
        return f"FaissIndex({type(self.index).__name__}, kind={self.kind!r}, n={self.n_samples})"

    # -- search parameters -----------------------------------------------------------------

    def _n_lists(self) -> int:
        return int(import_faiss().extract_index_ivf(self.index).nlist)

    def _effective(self, k: int, n_probe: int, ef_search: int) -> tuple[int, int]:
        """Parameters as faiss sees them: HNSW candidates in [k, n]; IVF lists at most all."""
        if self.kind == "hnsw":
            return n_probe, min(max(ef_search, k), self.n_samples)
        if self.kind == "ivf":
            return min(n_probe, self._n_lists()), ef_search
        return n_probe, ef_search

    def _search_once(
        self, queries: np.ndarray, k: int, n_probe: int, ef_search: int
    ) -> tuple[np.ndarray, np.ndarray]:
        params = None
        n_probe, ef_search = self._effective(k, n_probe, ef_search)
        if self.kind == "hnsw":
            params = import_faiss().SearchParametersHNSW(efSearch=ef_search)
        elif self.kind == "ivf":
            params = import_faiss().SearchParametersIVF(nprobe=n_probe)
        values, rows = self.index.search(queries, k, params=params)
        return values, rows

    def _wider(self, k: int, n_probe: int, ef_search: int) -> tuple[int, int] | None:
        """Twice the lists (IVF) or candidates (HNSW), capped; None when already at the cap."""
        n_probe, ef_search = self._effective(k, n_probe, ef_search)
        if self.kind == "hnsw" and ef_search < self.n_samples:
            return n_probe, min(2 * ef_search, self.n_samples)
        if self.kind == "ivf" and n_probe < self._n_lists():
            return min(2 * n_probe, self._n_lists()), ef_search
        return None

    def _breadth(self, k: int, n_probe: int, ef_search: int) -> str:
        n_probe, ef_search = self._effective(k, n_probe, ef_search)
        if self.kind == "hnsw":
            return f"ef_search={ef_search}"
        if self.kind == "ivf":
            return f"n_probe={n_probe}"
        return "exhaustive"
