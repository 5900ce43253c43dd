"""Callbacks of the training loop: early stopping, checkpoints, progress — and yours.

A callback is an object with hooks that :class:`~skphotoz.nn.engine.Trainer` calls with itself
as the first argument. It owns its state and returns it from :meth:`Callback.state_dict`, which
the checkpoint saves, so that a resumed run continues every callback where it was.

>>> from skphotoz.nn.callbacks import Callback
>>> class LossLog(Callback):
...     def on_train_begin(self, trainer):
...         self.losses = []
...     def on_epoch_end(self, trainer, entry):
...         self.losses.append(entry["loss"])
...     def state_dict(self):
...         return {"losses": list(self.losses)}
...     def load_state_dict(self, state):
...         self.losses = list(state["losses"])

Pass instances to an estimator's ``callbacks=[LossLog()]``; they run after the estimator's own
(progress, early stopping) and before its checkpoint.

Under torchrun every rank calls the hooks with the same values (the losses of the global
batches, identical weights at the end of an epoch); :class:`ProgressTable` prints and
:class:`Checkpoint` writes on rank 0 only (``distributed.is_main_process()``), and a
callback that writes files should do the same.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from .._validation import integer, validated
from ..exceptions import CheckpointMismatchError
from . import distributed


class Callback:
    """Base class: every hook does nothing. Override the ones you need.

    Hooks receive the :class:`~skphotoz.nn.engine.Trainer` (its ``task``, ``config``,
    ``history``, ``optimizer``; set ``trainer.stop = True`` at the end of an epoch to stop).
    """

    def on_train_begin(self, trainer) -> None:
        """Before the first epoch (and before a checkpoint is resumed): reset your state."""

    def on_epoch_begin(self, trainer, epoch: int, n_batches: int) -> None:
        """Before the batches of ``epoch``."""

    def on_batch_end(self, trainer, loss: float, batch_size: int) -> None:
        """After each optimiser step, with the batch's loss."""

    def on_epoch_end(self, trainer, entry: dict) -> None:
        """After each epoch, the task in eval mode, gradients off. ``entry`` is the epoch's
        history entry; add to it what you compute (e.g. a validation score)."""

    def on_train_end(self, trainer) -> None:
        """After the last epoch, an early stop or an interruption (``trainer.interrupted``)."""

    def state_dict(self) -> dict:
        """The callback's state for the checkpoint: tensors, numbers, strings, containers."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore the state of :meth:`state_dict` when a run resumes."""


class EarlyStopping(Callback):
    """Stop when a validation loss has not improved for ``patience`` epochs; keep the best
    weights.

    Parameters
    ----------
    validate : callable
        ``validate(task) -> dict`` of validation scores of the task in eval mode, including
        ``"validation_loss"``; every entry goes into the epoch's history.
    patience : int, default=5
        Epochs without improvement before stopping, from 1 to 100,000.
    verbose : bool, default=False
        Print which epoch is kept.

    Attributes
    ----------
    best_epoch : int or None
        The epoch whose weights are kept (0-based).
    """

    @validated({"validate": [callable], "patience": [integer(1, 100_000)], "verbose": ["boolean"]})
    def __init__(self, validate: Callable, patience: int = 5, verbose: bool = False):
        self.validate = validate
        self.patience = patience
        self.verbose = verbose

    def on_train_begin(self, trainer) -> None:
        self.best_loss = math.inf
        self.best_epoch = None
        self.stale = 0
        self.best_state = None

    def on_epoch_end(self, trainer, entry: dict) -> None:
        scores = self.validate(trainer.task)
        entry.update(scores)
        loss = scores["validation_loss"]
        if loss < self.best_loss:
            self.best_loss, self.best_epoch, self.stale = loss, entry["epoch"], 0
            self.best_state = {k: v.detach().clone() for k, v in trainer.task.state_dict().items()}
        else:
            self.stale += 1
        if self.stale >= self.patience:
            trainer.stop = True

    def on_train_end(self, trainer) -> None:
        if self.best_state is None:
            return
        trainer.task.load_state_dict(self.best_state)
        if self.verbose:
            last, total = trainer.history[-1]["epoch"] + 1, trainer.config.n_epochs
            how = f"stopped at epoch {last} of {total}" if trainer.stop else f"ran {total} epochs"
            tqdm.write(
                f"early stopping: {how}; kept epoch {self.best_epoch + 1} "
                f"(validation loss {self.best_loss:.4f})",
                file=sys.stdout,
            )

    def state_dict(self) -> dict:
        return {
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "stale": self.stale,
            "best_state": self.best_state,
        }

    def load_state_dict(self, state: dict) -> None:
        self.best_loss = state["best_loss"]
        self.best_epoch = state["best_epoch"]
        self.stale = state["stale"]
        self.best_state = state["best_state"]


class ProgressTable(Callback):
    """A progress bar over each epoch's batches and a table row per epoch: train loss,
    validation loss and σ_MAD when there is a validation split, learning rate, img/s, time."""

    _COLUMNS = (
        ("epoch", "{:>7}"),
        ("loss", "{:>10.4f}"),
        ("validation_loss", "{:>10.4f}"),
        ("validation_sigma_mad", "{:>10.4f}"),
        ("lr", "{:>9.2e}"),
        ("images_per_s", "{:>8.0f}"),
        ("time_s", "{:>7.1f}"),
    )
    _TITLES = {
        "epoch": "epoch",
        "loss": "loss",
        "validation_loss": "val loss",
        "validation_sigma_mad": "val σ_MAD",
        "lr": "lr",
        "images_per_s": "img/s",
        "time_s": "s",
    }

    @validated({"description": [str]})
    def __init__(self, description: str = "train"):
        self.description = description

    def on_train_begin(self, trainer) -> None:
        self._header_done = False
        self._bar = None
        # Under torchrun only rank 0 shows progress.
        self._silent = not distributed.is_main_process()

    def on_epoch_begin(self, trainer, epoch: int, n_batches: int) -> None:
        if getattr(self, "_silent", False):
            return
        self._bar = tqdm(
            total=n_batches,
            desc=f"{self.description} {epoch + 1}/{trainer.config.n_epochs}",
            leave=False,
            file=sys.stderr,
        )

    def on_batch_end(self, trainer, loss: float, batch_size: int) -> None:
        if self._bar is None:
            return
        self._bar.update(1)
        self._bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def on_epoch_end(self, trainer, entry: dict) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if getattr(self, "_silent", False):
            return
        columns = [(k, f) for k, f in self._COLUMNS if k in entry]
        if not self._header_done:
            widths = [len(f.format(1.0 if k != "epoch" else 1)) for k, f in columns]
            titles = [self._TITLES[k].rjust(w) for (k, _), w in zip(columns, widths, strict=True)]
            tqdm.write(f"{self.description}: " + " ".join(titles), file=sys.stdout)
            self._header_done = True
        values = [
            f.format(f"{entry[k] + 1}/{trainer.config.n_epochs}" if k == "epoch" else entry[k])
            for k, f in columns
        ]
        tqdm.write(f"{self.description}: " + " ".join(values), file=sys.stdout)

    def on_train_end(self, trainer) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class Checkpoint(Callback):
    """Save the run after every epoch; resume an unfinished run of the same fit.

    The file records the run's fingerprint (:meth:`Trainer.fingerprint
    <skphotoz.nn.engine.Trainer.fingerprint>` plus ``extra``, e.g. the estimator's
    parameters) and whether it finished. At the start of training:

    - no file: train from the start;
    - the same run, unfinished: resume after its last complete epoch — the result is the
      result of an uninterrupted run;
    - the same run, finished: restore its final state (nothing to train);
    - another run, finished: train from the start; the file is replaced at the first epoch;
    - another run, unfinished: :class:`CheckpointMismatchError` naming what differs, since
      replacing it would lose that run's progress.

    Files are written to a temporary name and renamed, so a kill during a write leaves the
    previous checkpoint intact; they load with ``torch.load(weights_only=True)``.

    Parameters
    ----------
    path : str or path-like
    extra : dict of str, optional
        More of what identifies the run (compared as strings).
    verbose : bool, default=False
        Say when a run resumes or a finished checkpoint is replaced.
    """

    @validated({"path": [str, os.PathLike], "extra": [None, dict], "verbose": ["boolean"]})
    def __init__(self, path, extra: dict | None = None, verbose: bool = False):
        self.path = os.fspath(path)
        self.extra = dict(extra or {})
        self.verbose = verbose

    def on_train_begin(self, trainer) -> None:
        self.fingerprint = {**trainer.fingerprint(), **self.extra}
        try:
            self._resume(trainer)
        finally:
            # Under torchrun: no rank reads the file while rank 0 may already replace it.
            distributed.barrier()

    def _resume(self, trainer) -> None:
        if not os.path.exists(self.path):
            return
        saved = load_checkpoint(self.path, trainer.device)
        differences = _differences(saved.get("fingerprint", {}), self.fingerprint)
        if differences:
            if saved.get("finished", False):
                self._say(f"{self.path} holds a finished run of another fit; it will be replaced")
                return
            raise CheckpointMismatchError(
                f"checkpoint {self.path!r} holds an unfinished run of another fit, which "
                f"differs in {'; '.join(differences)}. Resume that fit with its own data and "
                f"parameters, or remove the file (or choose another checkpoint_dir) to start "
                f"afresh."
            )
        try:
            trainer.load_state_dict(saved["trainer"])
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as error:
            raise _unusable(
                self.path,
                f"its saved training state does not fit this model ({type(error).__name__}: "
                f"{_first_line(error)})",
            ) from error
        if trainer.finished:
            self._say(f"{self.path}: this run had finished; its final state is restored")
        else:
            self._say(f"{self.path}: resuming after epoch {trainer.epoch + 1}")

    def on_epoch_end(self, trainer, entry: dict) -> None:
        self._save(trainer)

    def on_train_end(self, trainer) -> None:
        if not trainer.interrupted:
            self._save(trainer)

    def _save(self, trainer) -> None:
        if not distributed.is_main_process():  # under torchrun rank 0 writes
            return
        state = {"fingerprint": self.fingerprint, "trainer": trainer.state_dict()}
        state["finished"] = state["trainer"]["finished"]
        save_atomically(state, self.path)

    def _say(self, message: str) -> None:
        if self.verbose and distributed.is_main_process():
            tqdm.write(message, file=sys.stdout)


def _differences(saved: dict, current: dict) -> list[str]:
    names = sorted(set(saved) | set(current))
    return [
        f"{name} ({saved.get(name, 'absent')} in the checkpoint, {current.get(name, 'absent')} now)"
        for name in names
        if saved.get(name) != current.get(name)
    ]


def save_atomically(state: dict, path) -> None:
    """``torch.save`` to ``path + ".partial"``, flushed to disk, then renamed over ``path``."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = path + ".partial"
    with open(partial, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)


#: What :meth:`Trainer.state_dict <skphotoz.nn.engine.Trainer.state_dict>` holds and a resume
#: reads.
_TRAINER_KEYS = ("task", "optimizer", "scheduler", "epoch", "history", "finished")


def load_checkpoint(path, device=None) -> dict:
    """Read a checkpoint written by :class:`Checkpoint`, safely (``weights_only=True``).

    Raises
    ------
    ValueError
        If the file is empty, truncated, not a torch file, carries code (refused by
        ``weights_only``), or is a torch file of another program (without the training
        state and fingerprint of a :class:`Checkpoint`); the message names the path and
        says to delete it or choose another ``checkpoint_dir``.
    """
    path = os.fspath(path)
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise _unusable(path, "the file is empty, e.g. left by an interrupted copy")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # truncated, foreign or code-carrying files
        if "weights only load failed" in str(error).lower():
            why = (
                "it holds code or objects other than tensors and plain containers, which "
                "skphotoz refuses to load (torch.load(weights_only=True))"
            )
        else:
            why = (
                f"it cannot be read as a torch checkpoint: truncated, or not written by "
                f"skphotoz ({type(error).__name__}: {_first_line(error)})"
            )
        raise _unusable(path, why) from error
    if not isinstance(state, dict) or "trainer" not in state or "fingerprint" not in state:
        found = sorted(map(str, state))[:8] if isinstance(state, dict) else type(state).__name__
        raise _unusable(path, f"it holds no training state or fingerprint; found {found}")
    fingerprint, trainer = state["fingerprint"], state["trainer"]
    if not isinstance(fingerprint, dict) or not all(isinstance(k, str) for k in fingerprint):
        raise _unusable(path, "its fingerprint is not a mapping of names")
    missing = [key for key in _TRAINER_KEYS if not isinstance(trainer, dict) or key not in trainer]
    if missing:
        raise _unusable(path, f"its training state lacks {', '.join(missing)}")
    return state


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else "no message"


def _unusable(path: str, why: str) -> ValueError:
    return ValueError(
        f"checkpoint {path!r} is not a readable skphotoz checkpoint: {why}. Delete the file, or "
        f"choose another checkpoint_dir, to train from the start."
    )
