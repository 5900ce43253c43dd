"""Multi-process training with PyTorch's own distributed engine.

The same ``fit`` runs under ``torchrun --nproc_per_node=N`` (one process per GPU, or per
group of CPU cores): :class:`~skphotoz.nn.engine.Trainer` sees the variables that torchrun
sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), starts the
process group (NCCL for CUDA devices, gloo otherwise) and then

- gives each rank a disjoint ``1/N`` of every batch (``batch_size`` is the global batch, so a
  run on N processes takes the same optimisation steps as a run on one);
- averages the gradients across ranks (``DistributedDataParallel``), so the weights stay the
  same on every rank;
- gathers MoCo's keys from all ranks before they enter the queue, and encodes the keys in
  sub-batches shuffled across ranks (shuffle-BN, He et al. 2020, section 3.3);
- copies rank 0's weights and buffers (BatchNorm statistics) to every rank at the end of each
  epoch and of training, so callbacks and the fitted model are identical everywhere;
- lets only rank 0 write checkpoints and print progress.

Inference (``skphotoz predict`` and ``embed`` under torchrun) is split instead: each rank
runs its contiguous share of every block of rows (:func:`share_of_rows`, whole batches, so
that each batch holds exactly the rows it holds in one process and the outputs are the same),
and rank 0 receives the shares (:func:`gather_rows`) and writes them.

Outside torchrun (or with ``WORLD_SIZE=1``) every function here is a cheap no-op.
"""

from __future__ import annotations

import atexit
import datetime
import inspect
import os

import torch
import torch.distributed as dist
from torch import nn


def launched_by_torchrun() -> bool:
    """Whether this process is one of several started by torchrun (``WORLD_SIZE`` > 1)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def is_initialized() -> bool:
    """Whether a process group of more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes training together (1 without a process group)."""
    return dist.get_world_size() if is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without a process group, or before one is started: torchrun's
    ``RANK`` then)."""
    if is_initialized():
        return dist.get_rank()
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def local_rank() -> int:
    """This process's rank on its machine (torchrun's ``LOCAL_RANK``; 0 otherwise)."""
    try:
        return int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        return 0


def is_main_process() -> bool:
    """Rank 0: the process that writes files and prints."""
    return rank() == 0


def init_from_env(device: torch.device | None = None) -> bool:
    """Start the process group that torchrun's variables describe, if not started yet.

    NCCL when ``device`` is a CUDA device, gloo otherwise. Returns whether a group of more
    than one process is running afterwards. The group is closed when the process exits.
    """
    if is_initialized() or not launched_by_torchrun():
        return is_initialized()
    if not dist.is_available():
        raise RuntimeError(
            "this process was started by torchrun with WORLD_SIZE="
            f"{os.environ.get('WORLD_SIZE')}, but this build of PyTorch has no "
            "torch.distributed; install a PyTorch build with distributed support."
        )
    if not dist.is_initialized():
        cuda = device is not None and torch.device(device).type == "cuda"
        backend = "nccl" if cuda else "gloo"
        if cuda:
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
        atexit.register(_close)
    return is_initialized()


def _close() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if is_initialized():
        dist.barrier()


def _on_comm_device(tensor: torch.Tensor) -> torch.Tensor:
    # NCCL works on CUDA tensors only, gloo on CPU tensors (and CUDA for a few collectives).
    if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
        return tensor.cuda()
    return tensor


@torch.no_grad()
def broadcast_state(module: nn.Module, src: int = 0) -> None:
    """Copy ``module``'s parameters and buffers from rank ``src`` to every rank, in place."""
    if not is_initialized():
        return
    for tensor in module.state_dict().values():
        moved = _on_comm_device(tensor)
        dist.broadcast(moved, src)
        if moved is not tensor:
            tensor.copy_(moved)


@torch.no_grad()
def broadcast_tensor(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Rank ``src``'s ``tensor`` (the same shape and dtype on every rank) on every rank."""
    if not is_initialized():
        return tensor
    moved = _on_comm_device(tensor.contiguous())
    dist.broadcast(moved, src)
    return moved.to(tensor.device)


def broadcast_object(value, src: int = 0):
    """Rank ``src``'s ``value`` on every rank (a picklable Python object)."""
    if not is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src)
    return box[0]


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over ranks, as a new tensor (``tensor`` itself, detached, without
    a process group)."""
    if not is_initialized():
        return tensor.detach()
    out = _on_comm_device(tensor.detach().clone())
    dist.all_reduce(out)
    return out.to(tensor.device)


def all_gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` (the same shape on every rank) over ranks, in rank order."""
    if not is_initialized():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def share_of_rows(
    start: int, stop: int, step: int = 1, *, rank_: int | None = None, world: int | None = None
) -> tuple[int, int]:
    """This rank's contiguous share ``[a, b)`` of the rows ``[start, stop)``, in whole steps of
    ``step`` rows counted from ``start`` (the batches one process would run), the steps split
    as evenly as whole steps allow; ranks in order, so the shares joined in rank order are
    ``[start, stop)``. A share may be empty (``a == b``) when there are fewer steps than ranks.

    ``rank_`` and ``world`` default to this process's rank and the process group's size.
    """
    world = world_size() if world is None else world
    rank_ = rank() if rank_ is None else rank_
    steps = -(-(stop - start) // step)
    a = start + step * (steps * rank_ // world)
    b = start + step * (steps * (rank_ + 1) // world)
    return min(a, stop), min(b, stop)


def gather_rows(values, dst: int = 0):
    """Each rank's ``values`` (an array of rows, or a dict of them; None for an empty share)
    joined in rank order on rank ``dst``; None on the other ranks. Without a process group:
    ``values`` itself."""
    if not is_initialized():
        return values
    parts = [None] * dist.get_world_size() if dist.get_rank() == dst else None
    dist.gather_object(values, parts, dst=dst)
    if dist.get_rank() != dst:
        return None
    import numpy as np

    parts = [part for part in parts if part is not None]
    if not parts:
        return None
    if isinstance(parts[0], dict):
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    return np.concatenate(parts)


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` in ``DistributedDataParallel`` when a process group runs; else itself.

    Buffers are not broadcast at every step (MoCo's queue alone is tens of MB): the queue is
    the same on every rank by construction, and BatchNorm statistics are copied from rank 0
    at the end of each epoch (:func:`broadcast_state`).
    """
    if not is_initialized():
        return module
    if not any(p.requires_grad for p in module.parameters()):
        return module
    device_ids = (
        [device.index if device.index is not None else 0] if device.type == "cuda" else None
    )
    ddp = nn.parallel.DistributedDataParallel
    # PyTorch renamed the option (2.10+); both mean: no buffer broadcast at each forward.
    if "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters:
        return ddp(module, device_ids=device_ids, forward_sync_buffers=False)
    return ddp(module, device_ids=device_ids, broadcast_buffers=False)
