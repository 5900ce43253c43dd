"""Exact top-k inner products by blocked matrix products, in PyTorch.

The engine never forms the full query × index similarity matrix: it multiplies blocks of
queries by blocks of index rows, keeps each block's top-k and merges them into a running top-k,
so memory stays bounded for any number of galaxies. Within a block the top-k is found in two
steps: the index rows of the block are split into ``N_GROUPS`` slabs, row ``r`` of every slab
forms group ``r``, the maximum of each group is taken (an element-wise reduction of the slabs),
and only the ``k`` groups with the largest maxima can hold the ``k`` largest similarities (any
other group is beaten by ``k`` larger values), so an exact top-k runs on ``N_GROUPS * k``
candidates instead of the whole block; once a query's running top-k is good, only the groups
whose maximum beats its k-th best are gathered.
"""

from __future__ import annotations

import numpy as np
import torch

# Groups of index rows of a block whose maxima pre-select the top-k candidates.
N_GROUPS = 16
# Block sizes measured on 2-core CPUs (benchmarks/search.py): the top-k bookkeeping costs
# about a quarter of the matrix product per block, whatever the block shape, and fewer larger
# blocks mean fewer thread synchronisations. When few queries come at once the index blocks
# widen so that the similarity buffer keeps its size (64 MiB on the CPU, 256 MiB on a GPU).
CPU_QUERY_BLOCK = 1024
CPU_INDEX_BLOCK = 16384
CPU_BUFFER = 2**24
CUDA_QUERY_BLOCK = 4096
CUDA_INDEX_BLOCK = 16384
CUDA_BUFFER = 2**26
# Fewest queries in a block for which the bfloat16 pre-selection is used on CPU.
BF16_MIN_QUERIES = 32


def exact_top_k(
    queries: torch.Tensor,
    index: torch.Tensor,
    k: int,
    index_block_size: int = CPU_INDEX_BLOCK,
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
        :func:`bf16_prefiltered_top_k` turns into the exact answer.

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


def bf16_prefiltered_top_k(
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
        return exact_top_k(queries, index, k, index_block_size)
    approx, candidates = exact_top_k(
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
        values[unsure], indices[unsure] = exact_top_k(queries[unsure], index, k, index_block_size)
    return values, indices


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX)."""
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(check is not None and check())


def _block_candidates(
    block: torch.Tensor, k: int, threshold: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Similarities of a block that may enter each query's top-k, and their index rows.

    ``block`` has shape ``(n_index_rows, n_queries)``. Returns two ``(n_queries,
    n_candidates)`` tensors, padded with ``-inf`` similarities. The block is viewed as
    ``N_GROUPS`` slabs of consecutive index rows; row ``r`` of every slab forms group ``r``,
    whose maximum over the slabs is one element-wise reduction. Only groups whose maximum
    beats the query's current k-th best (``threshold``) can contribute; once the running
    top-k is good these are a handful, which are gathered directly. Otherwise the ``k``
    groups with the largest maxima hold the block's top-k (any other group is beaten by ``k``
    larger values).
    """
    width, n_queries = block.shape
    group_width = width // N_GROUPS
    if width % N_GROUPS or group_width < k:
        columns = torch.arange(width, device=block.device).expand(n_queries, width)
        return block.T, columns.clone()
    grouped = block.view(N_GROUPS, group_width, n_queries)
    maxima = grouped.amax(dim=0)  # (group_width, n_queries)
    offsets = torch.arange(N_GROUPS, device=block.device) * group_width
    if threshold is not None:
        hits = maxima > threshold
        counts = hits.sum(dim=0)
        most = int(counts.max())
        if most * N_GROUPS <= group_width:
            # Through the transposed view the hits come query by query, as the slots need.
            queries, groups = hits.T.nonzero(as_tuple=True)
            first = torch.cumsum(counts, dim=0) - counts
            slots = torch.arange(queries.numel(), device=block.device) - first[queries]
            values = block.new_full((n_queries, most, N_GROUPS), float("-inf"))
            values[queries, slots] = grouped[:, groups, queries].T
            columns = torch.zeros(
                (n_queries, most, N_GROUPS), dtype=torch.long, device=block.device
            )
            columns[queries, slots] = groups.unsqueeze(1) + offsets
            return values.view(n_queries, -1), columns.view(n_queries, -1)
    groups = torch.topk(maxima.T, k, dim=1, sorted=False).indices  # (n_queries, k)
    queries = torch.arange(n_queries, device=block.device).unsqueeze(1)
    values = grouped[:, groups, queries].permute(1, 0, 2).reshape(n_queries, -1)
    columns = (groups.unsqueeze(1) + offsets.view(1, -1, 1)).reshape(n_queries, -1)
    return values, columns


def drop_self(
    values: np.ndarray, rows: np.ndarray, own: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Remove each query's own row from its k + 1 neighbours (else its last neighbour)."""
    is_self = rows == own[:, None]
    # Queries whose own row is not among their neighbours (duplicates, dot products) lose
    # their last, least similar neighbour instead.
    is_self[~is_self.any(axis=1), -1] = True
    keep = ~is_self
    return values[keep].reshape(-1, k), rows[keep].reshape(-1, k)
