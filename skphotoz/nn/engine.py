"""The one training loop of skphotoz.

Every estimator trains through :func:`fit_module`: a *task* module turns a batch into a loss
(MoCo pretraining, redshift fine-tuning), and the engine owns everything around it: device and
precision, batching and shuffling, the SGD optimiser with warm-up and cosine decay, gradient
clipping, progress, history, atomic per-epoch checkpoints and resuming from them.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm


@dataclass
class TrainConfig:
    """Settings of one training run (see :func:`fit_module`)."""

    n_epochs: int = 10
    batch_size: int = 128
    lr: float = 0.03
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    clip_grad_norm: float | None = None
    device: str = "auto"
    num_workers: int = 0
    seed: int = 0
    verbose: bool = False
    checkpoint_path: str | os.PathLike | None = None
    description: str = "train"


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> the first CUDA device if any, else the CPU; otherwise ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<i>'; got {device!r}.")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but CUDA is not available here.")
    return resolved


def epoch_batches(n_samples: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Shuffled index batches of one epoch, of near-equal size and never of a single sample.

    The order depends only on ``(seed, epoch)``, so a resumed run sees the same batches.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n_samples)
    n_batches = max(1, n_samples // batch_size)
    return [np.sort(b) for b in np.array_split(order, n_batches)]


class _Batches(torch.utils.data.Dataset):
    """Reads a whole batch from the array-likes at once (one HDF5 read per batch)."""

    def __init__(self, arrays: Sequence):
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, indices):
        return tuple(torch.as_tensor(np.asarray(a[indices], dtype=np.float32)) for a in self.arrays)


def batch_loader(arrays: Sequence, batches: Sequence[np.ndarray], device, num_workers=0):
    """DataLoader yielding the given index batches of ``arrays`` as float32 tensors."""
    return torch.utils.data.DataLoader(
        _Batches(arrays),
        sampler=batches,
        batch_size=None,
        num_workers=num_workers,
        pin_memory=torch.device(device).type == "cuda",
        persistent_workers=False,
    )


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a batch to the device; images go channels-last on CUDA."""
    tensor = tensor.to(device, non_blocking=True)
    if device.type == "cuda" and tensor.ndim == 4:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    return tensor


def autocast(device: torch.device):
    """bf16 autocast on CUDA, a no-op elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _cosine_with_warmup(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _save_atomically(state: dict, path) -> None:
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def fit_module(
    task: nn.Module,
    arrays: Sequence,
    config: TrainConfig,
    param_groups: list[dict] | None = None,
    on_epoch_end: Callable[[dict], bool] | None = None,
) -> list[dict]:
    """Train ``task`` on ``arrays`` and return the per-epoch history.

    Parameters
    ----------
    task : nn.Module
        ``task(*batch, generator=generator)`` returns the scalar loss of a batch, where
        ``batch`` are the rows of ``arrays`` as float32 tensors on the device and
        ``generator`` is a ``torch.Generator`` there, the only source of randomness of the
        step (augmentations, shuffle-BN). The task is moved to the device.
    arrays : sequence of array-likes
        Equal-length arrays (numpy, :class:`~skphotoz.data.HDF5Images`, ...), indexed with
        sorted index arrays one batch at a time.
    config : TrainConfig
    param_groups : list of dict, optional
        Optimiser parameter groups; a group's ``lr_scale`` multiplies ``config.lr``
        (e.g. 0.1 for a fine-tuned backbone). Defaults to all trainable parameters.
    on_epoch_end : callable, optional
        Called with the epoch's history entry, the task in eval mode; it may add entries to
        it (e.g. a validation loss) and returns True to stop training (early stopping).

    Returns
    -------
    list of dict
        One entry per epoch: ``epoch``, ``loss`` (mean over batches), ``lr`` (at the end),
        ``lrs`` (of every parameter group), ``images_per_s`` and ``time_s``; resumed runs
        include the epochs of the checkpoint.
    """
    device = resolve_device(config.device)
    task.to(device)
    if device.type == "cuda":
        task.to(memory_format=torch.channels_last)
    n_samples = len(arrays[0])
    steps_per_epoch = len(epoch_batches(n_samples, config.batch_size, config.seed, 0))
    if param_groups is None:
        param_groups = [{"params": [p for p in task.parameters() if p.requires_grad]}]
    groups = [
        {
            **{k: v for k, v in g.items() if k != "lr_scale"},
            "lr": config.lr * g.get("lr_scale", 1.0),
        }
        for g in param_groups
    ]
    optimizer = torch.optim.SGD(
        groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        _cosine_with_warmup(
            config.n_epochs * steps_per_epoch, round(config.warmup_epochs * steps_per_epoch)
        ),
    )
    history: list[dict] = []
    start_epoch = 0
    if config.checkpoint_path is not None and os.path.exists(config.checkpoint_path):
        checkpoint = torch.load(config.checkpoint_path, map_location=device, weights_only=False)
        try:
            task.load_state_dict(checkpoint["task"])
        except RuntimeError as exc:
            raise ValueError(
                f"checkpoint {os.fspath(config.checkpoint_path)!r} does not fit this model "
                f"(another architecture or input shape); remove it to start afresh."
            ) from exc
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        history = checkpoint["history"]
        start_epoch = checkpoint["epoch"] + 1

    task.train()
    for epoch in range(start_epoch, config.n_epochs):
        batches = epoch_batches(n_samples, config.batch_size, config.seed, epoch)
        generator = torch.Generator(device=device)
        generator.manual_seed(config.seed * 100_003 + epoch)
        loader = batch_loader(arrays, batches, device, config.num_workers)
        progress = tqdm(
            loader,
            total=len(batches),
            desc=f"{config.description} {epoch + 1}/{config.n_epochs}",
            disable=not config.verbose,
            leave=False,
        )
        total_loss, n_seen, started = 0.0, 0, time.perf_counter()
        for batch in progress:
            batch = [to_device(t, device) for t in batch]
            with autocast(device):
                loss = task(*batch, generator=generator)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"the training loss became {loss.item()} at epoch {epoch}; lower lr "
                    f"(now {config.lr}) or check the input for extreme values."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(task.parameters(), config.clip_grad_norm)
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * batch[0].shape[0]
            n_seen += batch[0].shape[0]
            rate = n_seen / (time.perf_counter() - started)
            progress.set_postfix(loss=f"{loss.item():.4f}", img_s=f"{rate:.0f}")
        elapsed = time.perf_counter() - started
        history.append(
            {
                "epoch": epoch,
                "loss": total_loss / n_seen,
                "lr": optimizer.param_groups[0]["lr"],
                "lrs": [group["lr"] for group in optimizer.param_groups],
                "images_per_s": n_seen / elapsed,
                "time_s": elapsed,
            }
        )
        stop = False
        if on_epoch_end is not None:
            task.eval()
            with torch.no_grad():
                stop = bool(on_epoch_end(history[-1]))
            task.train()
        if config.verbose:
            entry = history[-1]
            tqdm.write(
                f"{config.description} epoch {epoch + 1}/{config.n_epochs}: "
                f"loss {entry['loss']:.4f}, {entry['images_per_s']:.0f} img/s"
            )
        if config.checkpoint_path is not None:
            _save_atomically(
                {
                    "task": task.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "epoch": epoch,
                    "history": history,
                },
                config.checkpoint_path,
            )
        if stop:
            break
    task.eval()
    return history
