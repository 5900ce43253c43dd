"""Search-time machinery of :class:`~skphotoz.search.SimilaritySearch`: what it takes as
input (array-likes, embeddings checked row by row, queries normalised or scaled), and the
search of the index a block of queries at a time, with the neighbours of every block
assembled into one answer.

The functions take the estimator (``estimator``) for its parameters and, at search time, its
index; the estimator itself, its fit and its parameter checks are in ``_estimator``.
"""

from __future__ import annotations

import os
from numbers import Number

import numpy as np
import torch

from .._inputs import as_array, unmask
from ._topk import (
    BF16_MIN_QUERIES,
    CPU_BUFFER,
    CPU_INDEX_BLOCK,
    CPU_QUERY_BLOCK,
    CUDA_BUFFER,
    CUDA_INDEX_BLOCK,
    CUDA_QUERY_BLOCK,
    N_GROUPS,
    bf16_prefiltered_top_k,
    cpu_has_bf16,
    drop_self,
    exact_top_k,
)

FLOAT32_MAX = float(np.finfo(np.float32).max)


def as_array_like(X, name: str):
    """Arrays and lazy array-likes (``shape`` and row slicing) pass through; sequences become
    ndarrays; anything else (None, a number, a string or path, a mapping) is refused."""
    if isinstance(X, np.ma.MaskedArray):  # masked entries are missing: NaN, refused later
        X = unmask(X)
    if hasattr(X, "shape") and hasattr(X, "__getitem__"):
        shape = X.shape
        if isinstance(shape, tuple) and len(shape) >= 1:
            return X
    elif X is not None and not isinstance(X, str | bytes | os.PathLike | dict | Number):
        array = as_array(X, name)
        if array.ndim >= 1:
            return array
    raise TypeError(
        f"{name} must be an array-like of shape (n_samples, n_features) (embeddings, or what "
        f"the embedder transforms); got {type(X).__name__}"
        + (f" {X!r}." if isinstance(X, str | Number | os.PathLike) else ".")
    )


def _n_rows(block) -> int | None:
    """Number of rows of an array-like (None where it has no length)."""
    shape = getattr(block, "shape", None)
    if shape is not None and len(shape) >= 1:
        return int(shape[0])
    try:
        return len(block)
    except TypeError:
        return None


def _rows(positions: np.ndarray, start: int, what: str = "row") -> str:
    """``"2 rows (3, 7)"``: how many and which (the first five), counted from ``start``."""
    which = ", ".join(str(start + i) for i in positions[:5]) + (
        ", ..." if positions.size > 5 else ""
    )
    if what == "row":
        return f"{positions.size} row{'s' if positions.size > 1 else ''} ({which})"
    plural = "s" if positions.size > 1 else ""
    return f"{positions.size} {what}{plural} (row{plural} {which})"


def row_norms(rows: np.ndarray) -> np.ndarray:
    """L2 norms of float64 rows without overflow or underflow (scaled by each row's largest
    |value|), so any finite embedding has a finite norm."""
    largest = np.abs(rows).max(axis=1)
    scale = np.where(largest > 0, largest, 1.0)
    return np.linalg.norm(rows / scale[:, None], axis=1) * largest


def unit_rows(rows: np.ndarray, name: str, start: int) -> np.ndarray:
    """float64 rows divided by their norms; zero rows have no direction and are refused."""
    norms = row_norms(rows)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ValueError(
            f"{name} holds {_rows(zero, start, 'zero vector')}; metric='cosine' needs a "
            f"direction for every embedding: drop those rows or use metric='dot'."
        )
    # Largest |value| first, then the norm of the rescaled row: exact for tiny and huge rows.
    largest = np.abs(rows).max(axis=1, keepdims=True)
    scaled = rows / largest
    return scaled / np.linalg.norm(scaled, axis=1, keepdims=True)


# -- embeddings ------------------------------------------------------------------------


def embed(estimator, block, name: str, start: int = 0, fitted_dim: int | None = None) -> np.ndarray:
    """Validated float64 embeddings of the rows ``start:`` of ``name`` (X or X_query), of
    ``fitted_dim`` features if given (queries; at fit a previous fit's dimension does not
    count)."""
    source = name
    if estimator.embedder is not None:
        n_rows = _n_rows(block)
        block = estimator.embedder.transform(block)
        source = f"the embedder's output for {name}"
        n_out = _n_rows(block)
        if n_rows is not None and n_out != n_rows:
            raise ValueError(
                f"{source} (rows {start} to {start + n_rows - 1}) has {n_out} rows; the "
                f"embedder must return one embedding per input row."
            )
    if isinstance(block, torch.Tensor):  # e.g. an embedder's output, possibly with grad
        block = block.detach().cpu().numpy()
    elif hasattr(block, "toarray") and hasattr(block, "nnz"):  # a scipy sparse matrix
        block = block.toarray()
    embeddings = np.asarray(block)
    if embeddings.ndim != 2:
        hint = (
            " Pass embedder= to search images."
            if estimator.embedder is None and embeddings.ndim > 2
            else " Reshape a single embedding with x.reshape(1, -1)."
            if embeddings.ndim == 1
            else ""
        )
        raise ValueError(
            f"{source} must be 2-D embeddings (n_samples, n_features); got shape "
            f"{embeddings.shape}.{hint}"
        )
    if embeddings.dtype.kind not in "biuf":
        try:
            if embeddings.dtype.kind not in "O":
                raise TypeError
            embeddings = embeddings.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{source} must hold real numbers; got an array of dtype {embeddings.dtype}."
            ) from None
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.shape[1] == 0:
        raise ValueError(f"{source} must have at least one feature; got shape (n, 0).")
    bad = np.flatnonzero(~np.isfinite(embeddings).all(axis=1))
    if bad.size:
        raise ValueError(
            f"{source} holds NaN or infinite values in {_rows(bad, start)}; "
            f"similarity search needs finite embeddings: drop or repair those rows."
        )
    if fitted_dim is not None and embeddings.shape[1] != fitted_dim:
        raise ValueError(
            f"{source} has {embeddings.shape[1]} features, but {type(estimator).__name__} was "
            f"fitted with embeddings of dimension {fitted_dim}."
        )
    return embeddings


def _prepare_queries(estimator, embeddings: np.ndarray, name: str, start: int):
    """float32 queries and the float64 factor that turns their similarities into the
    requested ones. Cosine queries are unit vectors (factor 1); dot queries are scaled by
    a power of two to a norm in [0.5, 1), which keeps their float32 products from
    overflowing or underflowing and changes no ranking."""
    if estimator.metric == "cosine":
        return unit_rows(embeddings, name, start).astype(np.float32), np.ones(len(embeddings))
    norms = row_norms(embeddings)
    _, exponents = np.frexp(norms)
    exponents = np.where(norms > 0, exponents, 0)
    scaled = np.ldexp(embeddings, -exponents[:, None])
    return scaled.astype(np.float32), np.ldexp(1.0, exponents)


# -- search ----------------------------------------------------------------------------


def search(estimator, X_query, k: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of every query; with ``X_query=None`` the index itself, self-matches removed."""
    exclude_self = X_query is None
    n_queries = estimator.n_samples_fit_ if exclude_self else None
    if not exclude_self:
        X_query = as_array_like(X_query, name)
        estimator._check_preprocessing(X_query)
        n_queries = X_query.shape[0]
        if n_queries < 1:
            raise ValueError(
                f"{name} must hold at least one sample; got shape {tuple(X_query.shape)}."
            )
    k_search = k + int(exclude_self)
    similarities = np.empty((n_queries, k), dtype=np.float32)
    indices = np.empty((n_queries, k), dtype=np.int64)
    block = _query_block(estimator)
    for start in range(0, n_queries, block):
        stop = min(start + block, n_queries)
        if exclude_self:
            embedded = _stored_rows(estimator, start, stop)
        else:
            embedded = estimator._embed_rows(X_query, start, stop, name, estimator.embedding_dim_)
        queries, factor = _prepare_queries(estimator, embedded, name, start)
        values, rows = _search_block(estimator, torch.from_numpy(queries), k_search)
        if exclude_self:
            values, rows = drop_self(values, rows, np.arange(start, stop), k)
        values = values.astype(np.float64) * factor[:, None]
        if not np.isfinite(values).all() or np.abs(values).max() > FLOAT32_MAX:
            raise ValueError(
                f"The inner products of {name} with the indexed embeddings exceed the "
                f"float32 range ({FLOAT32_MAX:.3g}) in which similarities are returned; "
                f"scale the embeddings down or use metric='cosine'."
            )
        if (rows < 0).any() or (rows >= estimator.n_samples_fit_).any():
            raise RuntimeError(  # a faiss index short of neighbours; _faiss prevents it
                f"the index returned invalid neighbour rows for {name}; refit it."
            )
        similarities[start:stop] = values
        indices[start:stop] = rows
    return similarities, indices


def _query_block(estimator) -> int:
    if estimator.query_block_size is not None:
        return estimator.query_block_size
    return CUDA_QUERY_BLOCK if estimator.device_.type == "cuda" else CPU_QUERY_BLOCK


def _stored_rows(estimator, start: int, stop: int) -> np.ndarray:
    """Indexed embeddings ``start:stop`` (as stored: normalised for cosine) in float64."""
    if isinstance(estimator.index_, torch.Tensor):
        return estimator.index_[start:stop].cpu().double().numpy()
    return estimator.index_.reconstruct(start, stop).astype(np.float64)


def _search_block(estimator, queries: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(estimator.index_, torch.Tensor):
        # The current n_probe and ef_search: set_params changes them without a refit.
        return estimator.index_.search(
            queries.numpy(), k, n_probe=estimator.n_probe, ef_search=estimator.ef_search
        )
    # The bfloat16 pass pays off where the products are compute-bound (many queries);
    # a few queries only stream the index through memory, which the conversion slows.
    bf16 = (
        estimator.device_.type == "cpu"
        and len(queries) >= BF16_MIN_QUERIES
        and estimator.index_.dtype == torch.float32
        and cpu_has_bf16()
    )
    index_block = estimator.index_block_size
    if index_block is None:
        cuda = estimator.device_.type == "cuda"
        buffer = CUDA_BUFFER if cuda else CPU_BUFFER
        minimum = CUDA_INDEX_BLOCK if cuda else CPU_INDEX_BLOCK
        # Rows stored in another precision than the products are converted in a buffer
        # of their own.
        per_row = len(queries) + (
            estimator.embedding_dim_ if bf16 or estimator.dtype != "float32" else 0
        )
        index_block = max(minimum, buffer // per_row // N_GROUPS * N_GROUPS)
    queries = queries.to(estimator.device_)
    if bf16:
        values, rows = bf16_prefiltered_top_k(
            queries, estimator.index_, k, index_block, estimator.max_norm_
        )
    else:
        values, rows = exact_top_k(queries, estimator.index_, k, index_block)
    return values.float().cpu().numpy(), rows.cpu().numpy()
