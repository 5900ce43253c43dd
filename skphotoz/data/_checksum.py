"""Damage in HDF5 archives: found by checksums, named by rows, never returned as numbers.

skphotoz writes every dataset of an archive with HDF5's Fletcher-32 filter: each chunk carries
a checksum of its bytes, and HDF5 refuses to return a chunk whose bytes no longer match it
(h5py raises ``OSError``). Without it, bytes overwritten on disk (a bad sector, a partial copy,
a bug in another tool) are read back as other numbers, often NaN, with no error.

- :func:`read_rows` reads a selection and turns such an ``OSError`` into
  :class:`~skphotoz.exceptions.DamagedDataError` naming the file, the dataset and the damaged
  rows (found by reading the selection's chunks one at a time);
- :func:`verify_archive` reads every chunk of every dataset (``skphotoz verify``).

Archives written before the checksums (or by other tools) still open; damage inside them can
only be found when it breaks the HDF5 structure or a compression filter.
"""

from __future__ import annotations

import os

import h5py
import numpy as np
from sklearn.utils import Bunch

from ..exceptions import DamagedDataError

__all__ = ["damaged_rows", "read_rows", "row_ranges", "rows_word", "verify_archive"]

# Rows listed in a message before "... and N more".
_MAX_LISTED = 6


def read_rows(dataset: h5py.Dataset, selection, *, path, what: str, first: int, stop: int):
    """``dataset[selection]``, or :class:`DamagedDataError` naming the damaged rows among
    ``first..stop-1`` (the rows that ``selection`` touches)."""
    try:
        return dataset[selection]
    except OSError as error:
        damaged = damaged_rows(dataset, first, stop)
        raise DamagedDataError(
            _message(dataset, path, what, damaged, first, stop, error)
        ) from error


def damaged_rows(dataset: h5py.Dataset, first: int = 0, stop: int | None = None) -> np.ndarray:
    """The rows of ``dataset`` whose chunk cannot be read back (its checksum or filter
    fails), among the chunks that hold rows ``first..stop-1``: all the rows of each such
    chunk, since none of them can be read."""
    n = dataset.shape[0] if dataset.ndim else 0
    stop = n if stop is None else min(stop, n)
    if dataset.ndim == 0 or stop <= first:
        return np.empty(0, dtype=np.int64)
    step = dataset.chunks[0] if dataset.chunks else stop - first
    bad = []
    start = first - first % step if dataset.chunks else first
    for a in range(start, stop, step):
        b = min(a + step, n)
        try:
            dataset[a:b]
        except OSError:
            bad.append(np.arange(a, b))
    return np.concatenate(bad) if bad else np.empty(0, dtype=np.int64)


def row_ranges(rows: np.ndarray) -> str:
    """``[3, 4, 5, 9]`` as ``"3-5, 9"`` (at most a few ranges, then how many more rows)."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return "none"
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    parts = []
    for run in np.split(rows, breaks)[:_MAX_LISTED]:
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    shown = sum(len(run) for run in np.split(rows, breaks)[:_MAX_LISTED])
    text = ", ".join(parts)
    return text if shown == rows.size else f"{text} and {rows.size - shown} more rows"


def rows_word(rows) -> str:
    return "row" if np.size(rows) == 1 else "rows"


def _message(dataset, path, what, damaged, first, stop, error) -> str:
    where = f"{os.fspath(path)!r}: {what} (dataset {dataset.name!r})"
    one = damaged.size == 1
    check = (
        f"{'its' if one else 'their'} Fletcher-32 checksum does not match the bytes on disk"
        if dataset.fletcher32
        else f"HDF5 could not read {'it' if one else 'them'} ({error})"
    )
    if damaged.size == 0:
        return (
            f"{where}: rows {first}-{stop - 1} could not be read ({error}). Run `skphotoz verify "
            f"{os.fspath(path)}` to list the damaged rows."
        )
    return (
        f"{where}: {rows_word(damaged)} {row_ranges(damaged)} "
        f"{'is' if one else 'are'} damaged: {check}; the bytes changed after they "
        f"were written. They are not returned as numbers. Run `skphotoz verify "
        f"{os.fspath(path)}` to list every damaged row, then restore the file or leave those "
        f"galaxies out."
    )


def verify_archive(path, *, progress=None) -> Bunch:
    """Read every chunk of every dataset of an HDF5 archive and report what is damaged.

    Parameters
    ----------
    path : str or path-like
        The archive (any HDF5 file: every dataset is read).
    progress : callable, optional
        ``progress(iterable, total, description)`` wrapping the loop over chunks (e.g. a tqdm
        bar); none by default.

    Returns
    -------
    sklearn.utils.Bunch
        ``damaged``: {dataset name: rows whose chunk fails its checksum or cannot be read}
        (only the damaged datasets); ``checksummed``: {dataset name: whether it carries
        Fletcher-32 checksums}; ``n_chunks``: chunks read; ``nonfinite_rows``: rows of the
        images holding NaN or infinite pixels (not damage by itself: real cutouts can hold
        masked pixels, but in an archive without checksums it is how overwritten bytes
        usually show).
    """
    from ._lazy import open_hdf5

    datasets = {}
    with open_hdf5(path) as f:

        def collect(name, item):  # (returning anything but None would stop the visit)
            if isinstance(item, h5py.Dataset):
                datasets[name] = item

        f.visititems(collect)
        plan = []
        for name, dataset in sorted(datasets.items()):
            if dataset.ndim == 0 or dataset.shape[0] == 0:
                plan.append((name, 0, 0))
                continue
            step = dataset.chunks[0] if dataset.chunks else dataset.shape[0]
            plan += [
                (name, a, min(a + step, dataset.shape[0])) for a in range(0, dataset.shape[0], step)
            ]
        damaged = {}
        nonfinite = []
        steps = plan if progress is None else progress(plan, len(plan), "verifying")
        for name, a, b in steps:
            dataset = datasets[name]
            try:
                block = dataset[()] if dataset.ndim == 0 else dataset[a:b]
            except OSError:
                damaged.setdefault(name, []).append(np.arange(a, b))
                continue
            if name == "images" and block.ndim == 4 and np.issubdtype(block.dtype, np.floating):
                finite = np.isfinite(block).reshape(len(block), -1).all(axis=1)
                nonfinite.append(a + np.flatnonzero(~finite))
        return Bunch(
            damaged={name: np.concatenate(rows) for name, rows in damaged.items()},
            checksummed={name: bool(d.fletcher32) for name, d in datasets.items()},
            n_chunks=len(plan),
            nonfinite_rows=np.concatenate(nonfinite) if nonfinite else np.empty(0, np.int64),
        )
