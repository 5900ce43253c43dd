"""The one training loop of skphotoz, and batched inference.

Every estimator trains through :class:`Trainer` (or its shorthand :func:`fit_module`): a *task*
module turns a batch into a loss (MoCo pretraining, redshift fine-tuning), and the trainer owns
everything around it — device and precision, batching and shuffling, the SGD optimiser with
warm-up and cosine decay, gradient clipping and the history — in small steps
(:meth:`~Trainer.build_optimizer`, :meth:`~Trainer.run_epoch`, :meth:`~Trainer.state_dict` /
:meth:`~Trainer.load_state_dict`). Early stopping, checkpoints and progress are callbacks
(:mod:`skphotoz.nn.callbacks`) that own their state; that state goes into the checkpoint, so a
resumed run is the same run.

How the batches are ordered, read and moved to the device is :mod:`skphotoz.nn.loading`.

Every source of randomness of a step is a function of ``(seed, epoch)``: the order of the
batches and the ``torch.Generator`` handed to the task. An epoch therefore computes the same
thing whether the run was interrupted before it or not.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..exceptions import NonFiniteError
from . import distributed
from .loading import (
    ReadAhead,
    _Batches,
    _flat,
    _Groups,
    batch_loader,
    epoch_batches,
    on_device,
    rank_batches,
    read_groups,
    shuffle_block_rows,
    to_device,
)


@dataclass
class TrainConfig:
    """Settings of one training run (see :class:`Trainer`)."""

    n_epochs: int = 10
    batch_size: int = 128
    lr: float = 0.03
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    clip_grad_norm: float | None = None
    device: str = "auto"
    num_workers: int = 0
    prefetch: int = 2
    shuffle_buffer: int | None = None
    seed: int = 0
    description: str = "train"


# Settings that change how a run computes, not what: left out of the run's fingerprint.
_RUNTIME_SETTINGS = ("device", "num_workers", "prefetch", "description")


def available_devices() -> list[str]:
    """The torch devices usable here: "cpu", then each CUDA (or MPS, XPU) device."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        names += [f"xpu:{i}" for i in range(xpu.device_count())]
    return names


def is_available(device: torch.device) -> bool:
    """Whether ``device`` (a ``torch.device``) exists on this machine."""
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        return torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        return mps is not None and mps.is_available() and (device.index or 0) == 0
    backend = getattr(torch, device.type, None)
    backend_available = getattr(backend, "is_available", None)
    if backend_available is None or not backend_available():
        return False
    count = getattr(backend, "device_count", lambda: 1)()
    return (device.index or 0) < count


def resolve_device(device: str | torch.device) -> torch.device:
    """The ``torch.device`` of a ``device`` setting, checked to exist here.

    ``"auto"`` is the first CUDA device if there is one, else the CPU; any other string is
    what ``torch.device`` takes (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, ...). Under
    torchrun, ``"auto"`` and ``"cuda"`` are the GPU of this process's ``LOCAL_RANK``.

    Raises
    ------
    ValueError
        For a string that names no torch device, or a device that this machine does not
        have, naming the devices it has.
    """
    if isinstance(device, str) and device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not isinstance(device, str | torch.device):
        raise TypeError(
            f"device must be 'auto', a torch device string such as 'cpu', 'cuda', 'cuda:1' "
            f"or 'mps', or a torch.device; got {device!r} of type {type(device).__name__}."
        )
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:<i>', 'mps' or another torch device "
            f"string; got {device!r}, which torch does not know."
        ) from None
    if resolved.type == "cuda" and resolved.index is None and distributed.launched_by_torchrun():
        resolved = torch.device("cuda", distributed.local_rank())
    if not is_available(resolved):
        raise ValueError(
            f"device={device!r} was asked for, but it is not available here; available: "
            f"{', '.join(repr(d) for d in ['auto', *available_devices()])}."
        )
    return resolved


def autocast(device: torch.device):
    """bf16 autocast on CUDA, a no-op elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def center_crop(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """Central ``size × size`` pixels of a batch of images (no-op for None or vectors)."""
    if size is None or images.ndim != 4 or images.shape[-1] == size:
        return images
    top = (images.shape[-2] - size) // 2
    left = (images.shape[-1] - size) // 2
    return images[..., top : top + size, left : left + size]


def _cosine_with_warmup(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


# ------------------------------------------------------------------ fingerprints
# Rows of each array read to fingerprint the data: cheap (one sorted read), and enough to tell
# apart two data sets, two cross-validation folds or two archives.
_FINGERPRINT_ROWS = 64


def fingerprint_state(state: dict[str, torch.Tensor]) -> str:
    """Hash of a state dict's names, shapes, dtypes and values."""
    digest = hashlib.blake2b(digest_size=12)
    for name, tensor in state.items():
        tensor = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def fingerprint_array(array) -> str:
    """Hash of an array-like's shape and of up to 64 evenly spaced rows (all rows of 1-D
    arrays, e.g. labels)."""
    n = len(array)
    shape = tuple(getattr(array, "shape", (n,)))
    if len(shape) == 1:
        rows = np.arange(n)
    else:
        rows = np.unique(np.linspace(0, n - 1, min(n, _FINGERPRINT_ROWS)).astype(np.int64))
    values = np.ascontiguousarray(np.asarray(array[rows], dtype=np.float32))
    digest = hashlib.blake2b(digest_size=12)
    digest.update(repr(shape).encode())
    digest.update(values.tobytes())
    return digest.hexdigest()


# ------------------------------------------------------------------------ trainer
class Trainer:
    """Train ``task`` on ``arrays``: the one training loop of skphotoz.

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
    callbacks : sequence of Callback, optional
        Called in order at each hook (see :class:`skphotoz.nn.callbacks.Callback`); put a
        :class:`~skphotoz.nn.callbacks.Checkpoint` last, so that it saves what the others
        computed for the epoch.

    Under ``torchrun --nproc_per_node=N`` the trainer starts the process group itself and
    trains on N processes (see :mod:`skphotoz.nn.distributed`): ``config.batch_size`` is the
    global batch, each rank reads and computes a disjoint ``1/N`` of it, the gradients are
    averaged across ranks, the history holds the losses of the global batches, and at the end
    of every epoch all ranks hold rank 0's weights and buffers.

    Attributes
    ----------
    history : list of dict
        One entry per completed epoch: ``epoch``, ``loss`` (mean over batches; for a task
        with a ``loss_terms`` dict also ``loss_<term>`` of each term), ``lr`` (at
        the end), ``lrs`` (of every parameter group), ``images_per_s`` and ``time_s``, plus
        what callbacks add (e.g. ``validation_loss``); a resumed run includes the epochs of
        its checkpoint.
    stop : bool
        Set by a callback at the end of an epoch to end training there (early stopping).
    finished : bool
        The run ended normally (all epochs, or stopped by a callback).
    interrupted : bool
        The run was interrupted (Ctrl-C) and rolled back to its last complete epoch.
    """

    def __init__(
        self,
        task: nn.Module,
        arrays: Sequence,
        config: TrainConfig,
        param_groups: list[dict] | None = None,
        callbacks: Sequence = (),
    ):
        self.task = task
        self.arrays = arrays
        self.config = config
        self.param_groups = param_groups
        self.callbacks = list(callbacks)
        self.device = resolve_device(config.device)
        distributed.init_from_env(self.device)
        self.world_size = distributed.world_size()
        self.rank = distributed.rank()
        self.n_samples = len(arrays[0])
        if self.world_size > 1 and min(config.batch_size, self.n_samples) < 2 * self.world_size:
            raise ValueError(
                f"{config.description}: batch_size={config.batch_size} (with "
                f"{self.n_samples} samples) cannot be shared by {self.world_size} processes: "
                f"batch_size is the global batch, and each process needs at least 2 samples "
                f"of it; use batch_size >= {2 * self.world_size} or fewer processes."
            )
        self.shuffle_block = shuffle_block_rows(arrays[0]) if config.shuffle_buffer else 1
        self.steps_per_epoch = len(epoch_batches(self.n_samples, config.batch_size, config.seed, 0))
        self._loader = None
        self._groups = None
        self.history: list[dict] = []
        self.stop = False
        self.finished = False
        self.interrupted = False
        self.epoch = 0

    # -- the steps -----------------------------------------------------------------------
    def build_optimizer(self) -> None:
        """SGD with momentum over the parameter groups, warm-up then cosine decay per step."""
        config = self.config
        groups = self.param_groups
        if groups is None:
            groups = [{"params": [p for p in self.task.parameters() if p.requires_grad]}]
        groups = [
            {
                **{k: v for k, v in g.items() if k != "lr_scale"},
                "lr": config.lr * g.get("lr_scale", 1.0),
            }
            for g in groups
        ]
        # foreach: one call per operation over all tensors (PyTorch picks it on CUDA only;
        # on the CPU it saves a Python loop over every parameter at every step).
        self.optimizer = torch.optim.SGD(
            groups,
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            foreach=True,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            _cosine_with_warmup(
                config.n_epochs * self.steps_per_epoch,
                round(config.warmup_epochs * self.steps_per_epoch),
            ),
        )

    def fingerprint(self) -> dict[str, str]:
        """What makes this run this run: the training settings, the learning-rate scale of
        each parameter group, the data and the initial weights. Call before training."""
        settings = {k: v for k, v in asdict(self.config).items() if k not in _RUNTIME_SETTINGS}
        scales = [g.get("lr_scale", 1.0) for g in self.param_groups or [{}]]
        out = {name: repr(value) for name, value in settings.items()}
        out["lr_scale of each parameter group"] = repr(scales)
        for i, array in enumerate(self.arrays):
            out[f"data (array {i})"] = fingerprint_array(array)
        if self.config.shuffle_buffer is not None:  # the blocks follow the archive's chunks
            out["rows per shuffled block"] = repr(self.shuffle_block)
        out["initial weights"] = fingerprint_state(self.task.state_dict())
        return out

    def state_dict(self) -> dict:
        """Everything a resumed run needs: weights and buffers, optimiser, schedule, history,
        the callbacks' states and whether the run finished. Plain tensors and containers, so
        that it loads with ``torch.load(weights_only=True)``."""
        return {
            "task": self.task.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "history": self.history,
            "finished": self.finished,
            "callbacks": {self._key(i, cb): cb.state_dict() for i, cb in enumerate(self.callbacks)},
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (of :meth:`state_dict`); training resumes after its epoch."""
        self.task.load_state_dict(state["task"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.history = list(state["history"])
        self.finished = bool(state["finished"])
        self.epoch = int(state["epoch"])
        saved = state.get("callbacks", {})
        for i, callback in enumerate(self.callbacks):
            if self._key(i, callback) in saved:
                callback.load_state_dict(saved[self._key(i, callback)])
        self._snapshot_weights()

    def run_epoch(self, epoch: int) -> dict:
        """One pass over the data; returns the epoch's history entry."""
        config, device, task = self.config, self.device, self.task
        batches = rank_batches(
            self.n_samples,
            config.batch_size,
            config.seed,
            epoch,
            self.rank,
            self.world_size,
            config.shuffle_buffer,
            self.shuffle_block,
        )
        generator = torch.Generator(device=device)
        # Rank 0 draws what a single process draws; the other ranks draw their own.
        generator.manual_seed(config.seed * 100_003 + epoch + self.rank * 1_000_003)
        self._call("on_epoch_begin", epoch, len(batches))
        task.train()
        forward = getattr(self, "_forward", task)
        total_loss, n_seen, started = 0.0, 0, time.perf_counter()
        term_sums: dict[str, float] = {}
        with self._reading(batches) as stream:
            for batch in on_device(stream, device):
                total_loss, n_seen = self._step(
                    batch, forward, generator, epoch, total_loss, n_seen, term_sums
                )
        task.eval()
        if self.world_size > 1 and term_sums:  # each rank summed the terms of its share
            sums = distributed.all_reduce_sum(torch.tensor(list(term_sums.values())))
            term_sums = dict(zip(term_sums, (sums / self.world_size).tolist(), strict=True))
        elapsed = time.perf_counter() - started
        return {
            "epoch": epoch,
            "loss": total_loss / n_seen,
            **{f"loss_{name}": total / n_seen for name, total in term_sums.items()},
            "lr": self.optimizer.param_groups[0]["lr"],
            "lrs": [group["lr"] for group in self.optimizer.param_groups],
            "images_per_s": n_seen / elapsed,
            "time_s": elapsed,
        }

    def _step(self, batch, forward, generator, epoch, total_loss, n_seen, term_sums):
        """One optimiser step on ``batch`` (on the device); the running loss sums."""
        config, task = self.config, self.task
        with autocast(self.device):
            loss = forward(*batch, generator=generator)
        # The mean loss of the global batch (of this rank's share on one process).
        value_t = distributed.all_reduce_sum(loss.detach().float()) / self.world_size
        if not torch.isfinite(value_t):
            raise NonFiniteError(self._non_finite_message(value_t, batch, epoch))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(task.parameters(), config.clip_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        value, size = value_t.item(), batch[0].shape[0] * self.world_size
        for name, term in getattr(task, "loss_terms", {}).items():
            term_sums[name] = term_sums.get(name, 0.0) + float(term) * size
        self._call("on_batch_end", value, size)
        return total_loss + value * size, n_seen + size

    @contextlib.contextmanager
    def _reading(self, batches):
        """The epoch's batches as CPU tensors, read ahead of the step that uses them.

        With ``num_workers=0`` a :class:`ReadAhead` thread reads up to ``prefetch`` batches
        ahead (``prefetch=0``: each batch is read when its step starts). With workers, one
        DataLoader for the whole run, whose workers persist across epochs (started once, not
        at every epoch), each holding ``prefetch`` groups ahead.
        """
        config = self.config
        groups = read_groups(batches, config.batch_size, config.shuffle_buffer)
        if config.num_workers > 0:
            if self._loader is None:
                cached = [a.cache for a in self.arrays if getattr(a, "cache", None)]
                if cached:
                    warnings.warn(
                        f"{config.description}: an archive opened with cache={cached[0]!r} "
                        f"keeps its stamps in the memory of the process that reads them; "
                        f"with num_workers={config.num_workers} each worker reads the file "
                        f"and fills a cache of its own. Use num_workers=0 with a cache (a "
                        f"thread reads the batches ahead).",
                        UserWarning,
                        stacklevel=4,
                    )
                self._groups = _Groups()
                self._loader = batch_loader(
                    self.arrays,
                    self._groups,
                    self.device,
                    config.num_workers,
                    seed=config.seed * 100_003 + self.rank,
                    persistent=True,
                    prefetch=config.prefetch,
                )
            self._groups.groups = groups
            yield _flat(self._loader)
        elif config.prefetch > 0:
            reader = _Batches(self.arrays)
            pin = self.device.type == "cuda"
            with ReadAhead(reader.__getitem__, groups, config.prefetch, pin) as ahead:
                yield iter(ahead)
        else:
            reader = _Batches(self.arrays)
            yield _flat(reader[group] for group in groups)

    def close(self) -> None:
        """Stop the DataLoader workers (they persist across epochs); the next epoch starts
        new ones. :meth:`fit` calls it when it ends, also on an error: the workers are shut
        down here, not when the loader is collected (a traceback kept by an interactive
        session or a retry loop would keep them alive)."""
        iterator = getattr(self._loader, "_iterator", None)
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        self._loader = None
        self._groups = None

    def fit(self) -> list[dict]:
        """Train until ``n_epochs`` or a callback's stop; returns :attr:`history`.

        A ``KeyboardInterrupt`` (Ctrl-C) after at least one complete epoch rolls the task
        back to its last complete epoch, warns, and ends the run as interrupted (a checkpoint
        keeps that epoch, to resume from); before that it propagates.

        Raises
        ------
        NonFiniteError
            If a batch's loss is NaN or infinite, or an epoch leaves NaN or infinite weights
            (checked before the callbacks, so a checkpoint never saves them), with advice
            naming ``lr``, ``batch_size`` and the number of samples.
        """
        self.task.to(self.device)
        if self.device.type == "cuda":
            self.task.to(memory_format=torch.channels_last)
        # Every rank starts from rank 0's weights; gradients are averaged across ranks.
        distributed.broadcast_state(self.task)
        self._forward = distributed.wrap(self.task, self.device)
        self.build_optimizer()
        self._snapshot_weights()
        self._call("on_train_begin")
        start = len(self.history)
        try:
            for epoch in range(start, self.config.n_epochs):
                if self.finished:
                    break
                entry = self.run_epoch(epoch)
                # Buffers (BatchNorm statistics) drift apart on the ranks' own shares.
                distributed.broadcast_state(self.task)
                # A step can leave NaN weights behind a finite loss (the last step of a run).
                self.check_finite_weights(epoch)
                self.history.append(entry)
                self.epoch = epoch
                # The epoch is complete: an interruption from here on keeps it.
                self._snapshot_weights()
                with torch.no_grad():
                    self._call("on_epoch_end", entry)
                # Rank 0's callbacks decide (early stopping on identical weights agrees anyway).
                self.stop = bool(distributed.broadcast_object(self.stop))
                if self.stop:
                    break
            self.finished = True
        except KeyboardInterrupt:
            if not self.history:
                raise
            self.task.load_state_dict(self._last_complete)
            self.task.eval()
            self.interrupted = True
            warnings.warn(
                f"{self.config.description}: training interrupted; the model keeps the weights "
                f"of its last complete epoch ({self.history[-1]['epoch'] + 1} of "
                f"{self.config.n_epochs}).",
                UserWarning,
                stacklevel=2,
            )
        finally:
            self.close()
        self._call("on_train_end")
        distributed.broadcast_state(self.task)
        self._forward = self.task
        self.task.eval()
        return self.history

    # -- helpers -------------------------------------------------------------------------
    def _call(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def _snapshot_weights(self) -> None:
        # Where Ctrl-C rolls back to; a copy on the device, cheap next to an epoch.
        self._last_complete = {k: v.detach().clone() for k, v in self.task.state_dict().items()}

    @staticmethod
    def _key(index: int, callback) -> str:
        return f"{index}:{type(callback).__name__}"

    def _advice(self) -> str:
        config = self.config
        return (
            f"lower lr (now {config.lr}), raise batch_size (now {config.batch_size}) or give "
            f"more samples (now {self.n_samples}), or check the input for extreme values."
        )

    def _non_finite_message(self, loss, batch, epoch: int) -> str:
        bad = [i for i, t in enumerate(batch) if not bool(torch.isfinite(t).all())]
        if bad:
            return (
                f"the training loss became {loss.item()} at epoch {epoch}: a batch of input "
                f"array {bad[0]} holds NaN or infinite values; clean or mask the input."
            )
        return (
            f"the training loss became {loss.item()} at epoch {epoch} (training diverged); "
            f"{self._advice()}"
        )

    def check_finite_weights(self, epoch: int) -> None:
        """Raise :class:`NonFiniteError` if a weight or buffer of the task is NaN or infinite."""
        for name, tensor in self.task.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise NonFiniteError(
                    f"{self.config.description}: the weights became NaN or infinite during "
                    f"epoch {epoch} (first: {name}; training diverged); {self._advice()}"
                )


def fit_module(
    task: nn.Module,
    arrays: Sequence,
    config: TrainConfig,
    param_groups: list[dict] | None = None,
    callbacks: Sequence = (),
) -> list[dict]:
    """Train ``task`` on ``arrays`` with a :class:`Trainer` and return the per-epoch history."""
    return Trainer(task, arrays, config, param_groups, callbacks).fit()


# ----------------------------------------------------------------------- inference
@torch.no_grad()
def predict(module: nn.Module, X, *, batch_size: int, device, crop: int | None = None):
    """Apply ``module`` to the rows of X in batches on ``device``; a float32 numpy array.

    The live module is never changed: where it is in training mode, on another device or in
    another dtype than the pass needs, a copy runs instead, so prediction is safe in the
    middle of training and from several threads.

    Feature vectors (2-D X) on the CPU go through the (small) network in float64: float32
    matrix products round differently with the number of rows, and a row's prediction must
    not depend on the other rows of its batch.
    """
    device = resolve_device(device)
    exact = len(X.shape) == 2 and device.type == "cpu"
    dtype = torch.float64 if exact else torch.float32
    first = next(module.parameters(), None)
    stale = first is not None and (first.device != device or first.dtype != dtype)
    if stale or any(m.training for m in module.modules()):
        module = copy.deepcopy(module).to(device=device, dtype=dtype).eval()
    # Filled in place (the outputs of a large archive are held once, not twice).
    outputs = None
    n = len(X)

    def read(start: int) -> list[tuple[torch.Tensor]]:
        rows = np.ascontiguousarray(X[start : start + batch_size], dtype=np.float32)
        if not rows.flags.writeable:  # a read-only memmap: torch warns on shared memory
            rows = rows.copy()
        return [(torch.as_tensor(rows),)]

    starts = range(0, n, batch_size)
    # An array in memory is sliced as fast as it is read; anything else (an archive read
    # lazily) is read one batch ahead by a thread, overlapping the network.
    ahead = None if isinstance(X, np.ndarray) or len(starts) < 2 else ReadAhead(read, starts, 1)
    try:
        stream = (batch for start in starts for batch in read(start)) if ahead is None else ahead
        start = 0
        for (batch,) in stream:
            batch = center_crop(to_device(batch, device), crop).to(dtype)
            with autocast(device):
                out = module(batch).float().cpu().numpy()
            if outputs is None:
                outputs = np.empty((n, *out.shape[1:]), dtype=np.float32)
            outputs[start : start + len(out)] = out
            start += len(out)
    finally:
        if ahead is not None:
            ahead.close()
    if outputs is None:
        raise ValueError("predict needs at least one row of X; got 0 rows.")
    return outputs
