"""How training batches reach the device: the order of an epoch's samples (a full or a
block shuffle, shared by torchrun ranks), reading them from array-likes in groups, reading
ahead of the step (a thread, or DataLoader workers that persist across epochs), and the copy
to the device. :class:`~skphotoz.nn.engine.Trainer` and :func:`~skphotoz.nn.engine.predict`
read through it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Sequence

import numpy as np
import torch

#: Rows of the contiguous blocks of a block-shuffled epoch (rounded up to whole chunks of an
#: archive whose chunks hold more rows): one HDF5 read each.
SHUFFLE_BLOCK_ROWS = 64


def shuffle_block_rows(array) -> int:
    """Rows of each contiguous block of a block-shuffled epoch over ``array``: at least
    :data:`SHUFFLE_BLOCK_ROWS`, in whole chunks of an array that says how many rows its
    chunks hold (``chunk_rows``, as :class:`~skphotoz.data.HDF5Images` does), so that no
    chunk is read by two blocks."""
    chunk = int(getattr(array, "chunk_rows", 1) or 1)
    return chunk * -(-SHUFFLE_BLOCK_ROWS // chunk)


def epoch_order(
    n_samples: int, seed: int, epoch: int, shuffle_buffer: int | None = None, block: int = 1
) -> np.ndarray:
    """The epoch's order of the samples, a function of ``(seed, epoch)`` only.

    With ``shuffle_buffer=None`` a uniform random permutation. With an integer, a
    block shuffle: the samples are cut into contiguous blocks of ``block`` rows, the blocks
    are put in random order, and each run of ``shuffle_buffer // block`` consecutive blocks
    of that order (a buffer) is shuffled within itself, so that an epoch reads the data in
    contiguous blocks, one buffer at a time.
    """
    rng = np.random.default_rng([seed, epoch])
    if shuffle_buffer is None:
        return rng.permutation(n_samples)
    starts = rng.permutation(np.arange(0, n_samples, block))
    per_buffer = max(1, shuffle_buffer // block)
    order = []
    for i in range(0, len(starts), per_buffer):
        rows = np.concatenate(
            [np.arange(s, min(s + block, n_samples)) for s in starts[i : i + per_buffer]]
        )
        order.append(rng.permutation(rows))
    return np.concatenate(order)


def epoch_batches(
    n_samples: int,
    batch_size: int,
    seed: int,
    epoch: int,
    shuffle_buffer: int | None = None,
    block: int = 1,
) -> list[np.ndarray]:
    """Shuffled index batches of one epoch, of near-equal size and never of a single sample.

    The order depends only on ``(seed, epoch)`` (see :func:`epoch_order` for
    ``shuffle_buffer`` and ``block``), so a resumed run sees the same batches.
    """
    return rank_batches(n_samples, batch_size, seed, epoch, 0, 1, shuffle_buffer, block)


def rank_batches(
    n_samples: int,
    batch_size: int,
    seed: int,
    epoch: int,
    rank: int,
    world_size: int,
    shuffle_buffer: int | None = None,
    block: int = 1,
) -> list[np.ndarray]:
    """This rank's share of each batch of :func:`epoch_batches` (a distributed sampler).

    Each global batch is dealt out to the ``world_size`` ranks in equal shares (the at most
    ``world_size - 1`` samples beyond a multiple of it sit the step out; which ones changes
    every epoch), so the ranks see disjoint samples, take the same number of steps, and
    together the batch a single process would. With one process, the whole batches.
    """
    order = epoch_order(n_samples, seed, epoch, shuffle_buffer, block)
    shares = []
    for batch in np.array_split(order, max(1, n_samples // batch_size)):
        usable = len(batch) - len(batch) % world_size
        shares.append(np.sort(batch[:usable][rank::world_size]))
    return shares


def read_groups(
    batches: Sequence[np.ndarray], batch_size: int, shuffle_buffer: int | None
) -> list[tuple[np.ndarray, ...]]:
    """The batches of an epoch in groups read from the data at once: one batch each for a
    full shuffle; for a block shuffle, the consecutive batches of about one buffer, whose
    rows lie in a few contiguous blocks."""
    per_group = 1 if shuffle_buffer is None else max(1, shuffle_buffer // max(1, batch_size))
    return [tuple(batches[i : i + per_group]) for i in range(0, len(batches), per_group)]


class _Batches(torch.utils.data.Dataset):
    """Reads a group of batches from the array-likes at once (one read of the union of their
    rows: one HDF5 read per contiguous run), returned as a list of batches."""

    def __init__(self, arrays: Sequence):
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, group):
        if isinstance(group, np.ndarray):  # a single batch
            return self._read(group)
        if len(group) == 1:
            return [self._read(group[0])]
        rows = np.unique(np.concatenate(group))
        read = [np.asarray(a[rows]) for a in self.arrays]
        return [
            tuple(
                torch.as_tensor(np.ascontiguousarray(r[np.searchsorted(rows, b)], dtype=np.float32))
                for r in read
            )
            for b in group
        ]

    def _read(self, indices) -> tuple[torch.Tensor, ...]:
        # Contiguous copies: torch refuses views with negative strides (e.g. of X[::-1]).
        return tuple(
            torch.as_tensor(np.ascontiguousarray(a[indices], dtype=np.float32)) for a in self.arrays
        )


class _Groups(torch.utils.data.Sampler):
    """The read groups of the current epoch: one sampler for the life of a loader whose
    workers persist across epochs (each epoch iterates it again)."""

    def __init__(self):
        self.groups: list = []

    def __iter__(self):
        return iter(self.groups)

    def __len__(self) -> int:
        return len(self.groups)


def batch_loader(
    arrays: Sequence,
    batches: Sequence,
    device,
    num_workers=0,
    seed: int = 0,
    persistent: bool = False,
    prefetch: int = 2,
):
    """DataLoader yielding the given index batches of ``arrays`` as float32 tensors.

    ``batches`` holds index arrays (one batch each) or, as :func:`read_groups` makes them,
    tuples of index arrays read at once (each yields a list of batches). With
    ``persistent`` the workers live as long as the loader; give it a :class:`_Groups` and set
    its ``groups`` before each epoch. Each worker holds ``prefetch`` items ahead. The loader
    draws its workers' base seed from a generator
    of its own, seeded with ``seed``: without one it would draw from torch's global RNG, and
    every fit would change the caller's random state (an estimator must leave it as it found
    it).
    """
    return torch.utils.data.DataLoader(
        _Batches(arrays),
        sampler=batches,
        batch_size=None,
        num_workers=num_workers,
        pin_memory=torch.device(device).type == "cuda",
        persistent_workers=persistent and num_workers > 0,
        prefetch_factor=max(1, prefetch) if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),
    )


class ReadAhead:
    """Batches read by a background thread, at most ``depth`` ahead of the one in use.

    The thread reads each group of ``groups`` with ``read`` (a list of batches), pins the
    batches' memory where they go to a CUDA device (so that their copy can overlap compute),
    and queues them; iterating yields them in order. An error of the reader is raised where
    the batch it failed on would have been yielded, with its own type. Reading overlaps the
    step: numpy, h5py and torch release the interpreter while they compute, and the queue
    bounds the memory read ahead to ``depth`` batches. :meth:`close` (or leaving a ``with``
    block) stops the thread, also in the middle of an epoch.
    """

    _END = object()

    def __init__(self, read: Callable, groups: Sequence, depth: int, pin: bool = False):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._read, self._groups, self._pin = read, groups, pin
        self._done = False
        self._thread = threading.Thread(target=self._run, name="skphotoz-read-ahead", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for group in self._groups:
                for batch in self._read(group):
                    if self._pin:
                        batch = tuple(t.pin_memory() for t in batch)
                    if not self._put(batch):
                        return
            self._put(self._END)
        except BaseException as error:  # raised again in the consuming thread
            self._put(_ReaderError(error))

    def __iter__(self):
        # Once: after the end, an error or close(), nothing more comes (rather than a wait
        # for a reader that has stopped).
        while not self._done:
            item = self._queue.get()
            if item is self._END:
                self._done = True
                return
            if isinstance(item, _ReaderError):
                self._done = True
                raise item.error
            yield item

    def close(self) -> None:
        """Stop the reader, also in the middle of the groups; iterating then ends."""
        self._done = True
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):  # unblock a waiting put
                self._queue.get(timeout=0.05)
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _ReaderError:
    def __init__(self, error: BaseException):
        self.error = error


def _flat(groups):
    """The batches of an iterable of read groups (lists of batches) in order."""
    for group in groups:
        if isinstance(group, list):
            yield from group
        else:
            yield group


def on_device(batches, device: torch.device):
    """``batches`` moved to ``device``; on CUDA the copy of the next batch is started on a
    side stream before the current one is handed out, so that it overlaps the current
    step (the step waits for its own batch's copy only)."""
    if device.type != "cuda":
        for batch in batches:
            yield [to_device(t, device) for t in batch]
        return
    side = torch.cuda.Stream(device)
    batches = iter(batches)

    def send(batch):
        with torch.cuda.stream(side):
            return [to_device(t, device) for t in batch]

    ahead = next(batches, None)
    ahead = None if ahead is None else send(ahead)
    while ahead is not None:
        current = torch.cuda.current_stream(device)
        current.wait_stream(side)
        for tensor in ahead:
            tensor.record_stream(current)
        batch, error = ahead, None
        try:
            following = next(batches, None)
        except Exception as exc:  # raised after this batch's step, where it belongs
            following, error = None, exc
        ahead = None if following is None else send(following)
        yield batch
        if error is not None:
            raise error


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a batch to the device; images go channels-last on CUDA."""
    tensor = tensor.to(device, non_blocking=True)
    if device.type == "cuda" and tensor.ndim == 4:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    return tensor
