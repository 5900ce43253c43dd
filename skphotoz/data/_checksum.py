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

import contextlib
import os
import zlib

import h5py
import numpy as np
from sklearn.utils import Bunch

from ..exceptions import DamagedDataError

__all__ = [
    "DATASETS_ATTR",
    "check_listed_datasets",
    "CRC_ATTR",
    "CRC_KEY",
    "check_uniform_rows",
    "read_column",
    "row_crcs",
    "chunk_exists",
    "chunk_rows",
    "damaged_index_error",
    "damaged_rows",
    "read_rows",
    "row_ranges",
    "rows_word",
    "structure_errors",
    "unchecked_chunks",
    "verify_archive",
]

# What h5py raises when a chunk cannot be read back: OSError for a failed checksum or
# filter, the others for a damaged chunk index.
_READ_ERRORS = (OSError, RuntimeError, KeyError, TypeError)
# Rows listed in a message before "... and N more".
_MAX_LISTED = 6


@contextlib.contextmanager
def structure_errors(path):
    """Turn what h5py raises on a damaged file structure (object headers, links, B-trees:
    ``KeyError``, ``RuntimeError``, ``OSError``, ``TypeError``) into
    :class:`DamagedDataError` naming the file. Only for blocks whose own look-ups are checked
    first (``key in f`` before ``f[key]``), so that these errors can only mean damage."""
    try:
        yield
    except DamagedDataError:
        raise
    except ValueError as error:
        if not _raised_by_h5py(error):  # skphotoz's own message about the archive
            raise
        raise DamagedDataError(
            f"{os.fspath(path)!r}: the HDF5 structure of the file is damaged (h5py: {error}); "
            f"restore it from a copy."
        ) from error
    except (KeyError, RuntimeError, OSError, TypeError, SystemError) as error:
        text = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise DamagedDataError(
            f"{os.fspath(path)!r}: the HDF5 structure of the file is damaged (h5py: {text}); "
            f"restore it from a copy."
        ) from error


#: The dataset of an archive's per-stamp CRC-32s, and the attribute holding a column's
#: CRC-32: Fletcher-32 sums a chunk overwritten with zeros (or 0xFF bytes, 0 modulo 65535)
#: to a matching 0, so such a chunk would read back as zeros (or NaN, -1: "unknown").
CRC_KEY = "images_crc32"
CRC_ATTR = "skphotoz_crc32"


def row_crcs(block: np.ndarray) -> np.ndarray:
    """The CRC-32 of each row of ``block`` as stored (C order), uint32 (n,)."""
    block = np.ascontiguousarray(block)
    return np.fromiter((zlib.crc32(row) for row in block), dtype=np.uint32, count=len(block))


def read_column(dataset: h5py.Dataset, *, path, what: str) -> np.ndarray:
    """A whole column, checked by Fletcher-32 (:func:`read_rows`) and, where the writer
    recorded one, by its CRC-32."""
    values = read_rows(dataset, (), path=path, what=what, first=0, stop=len(dataset))
    expected = dataset.attrs.get(CRC_ATTR)
    if expected is not None and zlib.crc32(np.ascontiguousarray(values)) != int(expected):
        raise DamagedDataError(
            f"{os.fspath(path)!r}: {what} (dataset {dataset.name!r}) is damaged: its CRC-32 "
            f"does not match the one written with it (its bytes were overwritten, e.g. with "
            f"zeros, which Fletcher-32 cannot see). Restore the file from a copy."
        )
    return values


def check_uniform_rows(dataset: h5py.Dataset, block: np.ndarray, first, *, path, what: str) -> None:
    """Refuse rows of ``block`` (rows ``first``.. of an archive's images, as stored, or the
    rows numbered by the integer array ``first``) that read as one repeated byte, 0x00 or
    0xFF, and are not what was written: a chunk overwritten so passes Fletcher-32. Checked
    against the per-stamp CRC-32s where the archive has them, else by whether the chunk is
    stored at all (a lost index entry reads as zeros). Costs a look at three bytes per row,
    and a full check only for such rows."""
    if not getattr(dataset, "fletcher32", False) or dataset.chunks is None or block.size == 0:
        return
    raw = np.ascontiguousarray(block).view(np.uint8).reshape(len(block), -1)
    head = raw[:, 0]
    maybe = ((head == 0) | (head == 255)) & (raw[:, -1] == head)
    maybe &= raw[:, raw.shape[1] // 2] == head
    candidates = np.flatnonzero(maybe)
    candidates = candidates[(raw[candidates] == head[candidates, None]).all(axis=1)]
    if candidates.size == 0:
        return
    rows = first + candidates if np.ndim(first) == 0 else np.asarray(first)[candidates]
    table = dataset.file.get(CRC_KEY) if dataset.name == "/images" else None
    if isinstance(table, h5py.Dataset) and len(table) == dataset.shape[0]:
        bad = []
        for row in rows:
            stored = read_rows(dataset, int(row), path=path, what=what, first=row, stop=row + 1)
            crc = read_rows(table, int(row), path=path, what="stamp CRC-32s", first=row,
                            stop=row + 1)  # fmt: skip
            if zlib.crc32(np.ascontiguousarray(stored)) != int(crc):
                bad.append(int(row))
        if bad:
            one = len(bad) == 1
            raise DamagedDataError(
                f"{os.fspath(path)!r}: {what} (dataset {dataset.name!r}): {rows_word(bad)} "
                f"{row_ranges(np.array(bad))} {'is' if one else 'are'} damaged: "
                f"{'it reads' if one else 'they read'} as repeated 0x00/0xFF bytes that do not "
                f"match the CRC-32 written with {'it' if one else 'them'} (a chunk overwritten "
                f"so passes Fletcher-32). Run `skphotoz verify {os.fspath(path)}` to list every "
                f"damaged row, then restore the file or leave those galaxies out."
            )
        return
    zero = rows[head[candidates] == 0]
    step = dataset.chunks[0]
    missing = sorted({int(r) // step for r in zero if not chunk_exists(dataset, int(r) // step)})
    if missing:
        raise damaged_index_error(dataset, path, what, missing)


#: File attribute of an archive written by skphotoz: the names of the datasets it holds, so
#: that a dataset whose link was damaged is missed loudly, not silently.
DATASETS_ATTR = "skphotoz_datasets"


def check_listed_datasets(f: h5py.File, path) -> None:
    """Refuse an archive that lacks a dataset its writer listed (:data:`DATASETS_ATTR`)."""
    listed = f.attrs.get(DATASETS_ATTR)
    if listed is None:
        return
    if isinstance(listed, bytes):
        listed = listed.decode()
    missing = [name for name in str(listed).split(",") if name and name not in f]
    if missing:
        raise DamagedDataError(
            f"{os.fspath(path)!r}: the datasets {missing} that the archive was written with "
            f"are missing (their links in the file are damaged; it holds {sorted(f)}); "
            f"restore it from a copy."
        )


def _raised_by_h5py(error: BaseException) -> bool:
    """Whether the innermost frame of ``error`` is h5py's (not skphotoz's own checks)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and "h5py" in tb.tb_frame.f_code.co_filename


def chunk_exists(dataset: h5py.Dataset, chunk: int) -> bool:
    """Whether HDF5's read path finds stored bytes for chunk ``chunk`` (along the first
    axis); a damaged chunk index can make a read return the fill value instead, silently."""
    coord = (int(chunk) * dataset.chunks[0],) + (0,) * (dataset.ndim - 1)
    try:
        dataset.id.read_direct_chunk(coord)
    except _READ_ERRORS:
        return False
    return True


def read_rows(dataset: h5py.Dataset, selection, *, path, what: str, first: int, stop: int):
    """``dataset[selection]``, or :class:`DamagedDataError` naming the damaged rows among
    ``first..stop-1`` (the rows that ``selection`` touches)."""
    try:
        return dataset[selection]
    except _READ_ERRORS as error:
        damaged = damaged_rows(dataset, first, stop)
        raise DamagedDataError(
            _message(dataset, path, what, damaged, first, stop, error)
        ) from error


def unchecked_chunks(dataset: h5py.Dataset, chunks, *, allocated: bool) -> list[int]:
    """The chunks (indices along the first axis) of a checksummed ``dataset`` whose index
    entry says they would be read without their checksum: marked as stored unfiltered, stored
    past the end of the file (read as zeros, which pass Fletcher-32), or (with ``allocated``:
    every chunk was written, as for an archive's images) missing, which HDF5 reads as the
    fill value. Damage to the chunk index is not caught by the checksums
    of the chunks themselves."""
    if not getattr(dataset, "fletcher32", False) or dataset.chunks is None:
        return []
    step = dataset.chunks[0]
    tail = (0,) * (dataset.ndim - 1)
    end = dataset.file.id.get_filesize()
    bad = []
    for chunk in chunks:
        try:
            info = dataset.id.get_chunk_info_by_coord((int(chunk) * step, *tail))
        except _READ_ERRORS:
            bad.append(int(chunk))
            continue
        if info.byte_offset is None:
            missing = allocated
        else:  # past the end of the file, HDF5 reads zeros, whose Fletcher-32 sum is 0
            missing = info.byte_offset + info.size > end
        if info.filter_mask != 0 or missing:
            bad.append(int(chunk))
    return bad


def sound_chunks(dataset: h5py.Dataset) -> np.ndarray | None:
    """Which chunks (indices along the first axis) of a checksummed ``dataset`` have a sound
    index entry, by :func:`unchecked_chunks`'s rules with ``allocated=True``, from one pass
    over the chunk index: about 4 µs a chunk, against about 100 µs for each chunk looked up
    alone. None where HDF5 or h5py cannot iterate over the chunks (HDF5 < 1.12.3)."""
    step = dataset.chunks[0]
    end = dataset.file.id.get_filesize()
    sound = np.zeros(-(-dataset.shape[0] // step), dtype=bool)

    def visit(info) -> None:
        offset = info.chunk_offset
        if any(offset[1:]) or info.byte_offset is None:
            return
        if info.filter_mask == 0 and info.byte_offset + info.size <= end:
            sound[offset[0] // step] = True

    try:
        dataset.id.chunk_iter(visit)
    except (AttributeError, NotImplementedError, *_READ_ERRORS):
        return None
    return sound


def chunk_rows(dataset: h5py.Dataset, chunks) -> np.ndarray:
    """The rows of the chunks ``chunks`` (indices along the first axis)."""
    step = dataset.chunks[0]
    n = dataset.shape[0]
    return np.concatenate(
        [np.arange(c * step, min((c + 1) * step, n)) for c in chunks] or [np.empty(0, np.int64)]
    )


def damaged_index_error(dataset, path, what: str, chunks) -> DamagedDataError:
    rows = chunk_rows(dataset, chunks)
    one = rows.size == 1
    return DamagedDataError(
        f"{os.fspath(path)!r}: {what} (dataset {dataset.name!r}): {rows_word(rows)} "
        f"{row_ranges(rows)} {'is' if one else 'are'} damaged: the file's index of "
        f"{'its' if one else 'their'} stored chunk is damaged (the chunk is missing, or marked "
        f"as stored without its checksum), so HDF5 would return other numbers. Run `skphotoz "
        f"verify {os.fspath(path)}` to list every damaged row, then restore the file or leave "
        f"those galaxies out."
    )


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
        except _READ_ERRORS:
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
    with open_hdf5(path) as f, structure_errors(path):

        def collect(name, item):  # (returning anything but None would stop the visit)
            if isinstance(item, h5py.Dataset):
                datasets[name] = item

        f.visititems(collect)
        check_listed_datasets(f, path)
        dangling = []
        for name in f:  # links to other files or paths, which a visit does not follow
            if isinstance(f.get(name, getlink=True), h5py.ExternalLink | h5py.SoftLink):
                try:
                    f[name]
                except (KeyError, OSError, RuntimeError):
                    dangling.append(name)
        if dangling:
            raise DamagedDataError(
                f"{os.fspath(path)!r}: the links {dangling} point to nothing (a file or "
                f"object that is missing); restore the file they need, or the archive from a "
                f"copy."
            )
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
        for name, dataset in sorted(datasets.items()):
            if dataset.ndim and dataset.chunks is not None and dataset.shape[0]:
                n_chunks = -(-dataset.shape[0] // dataset.chunks[0])
                bad = unchecked_chunks(dataset, range(n_chunks), allocated=name == "images")
                if bad:
                    damaged[name] = [chunk_rows(dataset, bad)]
        nonfinite = []
        crcs, column_crc = None, {}
        table = datasets.get(CRC_KEY)
        if (
            "images" in datasets
            and table is not None
            and table.shape[:1] == datasets["images"].shape[:1]
        ):
            try:  # (damage to the table itself is found in its own chunks below)
                crcs = table[()].astype(np.int64)
            except _READ_ERRORS:
                crcs = None
        if crcs is not None:
            # A chunk of the table overwritten with 0x00 or 0xFF bytes passes Fletcher-32 too;
            # real CRCs are all equal to 0 or 0xFFFFFFFF with odds of 2^-32 per stamp.
            step = table.chunks[0] if table.chunks else len(crcs)
            for a in range(0, len(crcs), step):
                part = crcs[a : a + step]
                if part.size and ((part == 0).all() or (part == 0xFFFFFFFF).all()):
                    damaged.setdefault(CRC_KEY, []).append(np.arange(a, a + part.size))
                    crcs[a : a + part.size] = -1  # not a CRC: those stamps checked otherwise
        steps = plan if progress is None else progress(plan, len(plan), "verifying")
        for name, a, b in steps:
            dataset = datasets[name]
            try:
                block = dataset[()] if dataset.ndim == 0 else dataset[a:b]
            except _READ_ERRORS:
                damaged.setdefault(name, []).append(np.arange(a, b))
                continue
            if name == "images" and crcs is not None and dataset.ndim and (crcs[a:b] >= 0).all():
                wrong = np.flatnonzero(row_crcs(block) != crcs[a:b])
                if wrong.size:
                    damaged.setdefault(name, []).append(a + wrong)
                    continue
            elif name == "images" and dataset.fletcher32 and dataset.chunks is not None:
                try:
                    check_uniform_rows(dataset, block, a, path=path, what=name)
                except DamagedDataError:
                    damaged.setdefault(name, []).append(np.arange(a, b))
                    continue
            expected = dataset.attrs.get(CRC_ATTR) if dataset.ndim else None
            if expected is not None:
                column_crc[name] = zlib.crc32(np.ascontiguousarray(block), column_crc.get(name, 0))
                if b == dataset.shape[0] and column_crc[name] != int(expected):
                    damaged.setdefault(name, []).append(np.arange(dataset.shape[0]))
            if name == "images" and block.ndim == 4 and np.issubdtype(block.dtype, np.floating):
                finite = np.isfinite(block).reshape(len(block), -1).all(axis=1)
                nonfinite.append(a + np.flatnonzero(~finite))
        return Bunch(
            damaged={name: np.unique(np.concatenate(rows)) for name, rows in damaged.items()},
            checksummed={name: bool(d.fletcher32) for name, d in datasets.items()},
            n_chunks=len(plan),
            nonfinite_rows=np.concatenate(nonfinite) if nonfinite else np.empty(0, np.int64),
        )
