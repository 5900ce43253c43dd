"""A lazy, picklable array-like over the images of an HDF5 archive."""

from __future__ import annotations

import numbers
import os
import warnings

import h5py
import numpy as np

from .._validation import StrOptions, integer, validated
from ..exceptions import DamagedDataError
from ._checksum import (
    check_listed_datasets,
    check_uniform_rows,
    damaged_index_error,
    read_column,
    read_rows,
    sound_chunks,
    structure_errors,
    unchecked_chunks,
)

__all__ = ["HDF5Images", "open_hdf5"]

# Rows closer than this (and than the rows of one stored chunk) are read in one contiguous
# slice: h5py point selections are slow, while reading a few unwanted neighbours from the same
# chunk costs almost nothing. Archives written by skphotoz hold one galaxy per chunk (each
# read whole to verify its checksum), so only adjacent rows are merged there.
_MAX_GAP = 8
# ``np.asarray(HDF5Images)`` reads this many galaxies at a time.
_READ_BLOCK = 512


#: Largest stamp side and band count an archive holds (writers refuse more; a reader meeting
#: more is reading damaged metadata, or not an archive of galaxy stamps).
MAX_STAMP_SIZE = 2048
MAX_BANDS = 16

#: File attributes of an archive being written by ArchiveWriter: present (True) until the
#: last galaxy is written, and the number of galaxies written so far.
INCOMPLETE_ATTR = "skphotoz_incomplete"
WRITTEN_ATTR = "skphotoz_n_written"
#: Lowest per-band extinction (mag) dereddening accepts: a dust map's noise can dip a little
#: below 0; below this a value is a missing-value code, which would zero the galaxy.
MIN_EXTINCTION = -0.25
#: Largest per-band extinction (mag) skphotoz accepts anywhere (archives, catalogues,
#: dereddening): above 10 times the largest R_b in use (E(B-V) <= 10, A_u/E(B-V) = 5.155 in
#: SFD98: 51.6 mag), so every E(B-V) accepted gives an extinction accepted here, and beyond the
#: ~50 mag of u-band extinction toward the Galactic centre, the most extincted sight line.
#: Beyond it a value is a missing-value code (99, 9999).
MAX_EXTINCTION = 60.0


def open_hdf5(path) -> h5py.File:
    """Open an HDF5 file read-only, with errors that say what is wrong with the path.

    Raises
    ------
    FileNotFoundError
        If nothing exists at ``path``.
    ValueError
        If ``path`` is a folder or a file that is not HDF5 (e.g. a ``.npy`` cube given where an
        archive was expected).
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(
            f"the archive must be given by its path (str or path-like); got {type(path).__name__}."
        )
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no archive at {path!r}: the file does not exist.")
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a folder; expected an HDF5 archive file.")
    if not h5py.is_hdf5(path):
        raise ValueError(
            f"{path!r} is not an HDF5 file; an archive is written by skphotoz.data.ingest "
            "or write_archive."
        )
    try:
        return h5py.File(path, "r")
    except (OSError, RuntimeError, KeyError) as exc:  # it is HDF5 (checked above): damaged
        raise DamagedDataError(
            f"could not open the HDF5 archive {path!r}, whose structure is damaged: {exc}"
        ) from exc


def available_memory() -> int | None:
    """Bytes of memory a process can still take without swapping, where the system says: the
    kernel's MemAvailable (free memory plus reclaimable page cache), capped by the memory
    limit of this process's cgroup (a container or a batch job); None elsewhere."""
    free = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None
    try:  # cgroup v2: the limit and what the group uses now
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        if limit != "max":
            free = min(free, max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return free


class HDF5Images:
    """Images of an HDF5 archive, read on demand.

    Behaves like a read-only ``(n_samples, n_bands, size, size)`` float array: ``shape``,
    ``dtype``, ``ndim``, ``len``, and integer, slice, boolean and integer-array indexing of the
    first axis (unsorted and repeated indices are returned in the order asked). Only what is
    indexed is read from disk, so it can stand for ``X`` wherever skphotoz accepts arrays;
    the rows of one read are read in increasing order, neighbouring rows (up to 8 apart) in
    one contiguous slice. The file is opened lazily, once per process: the object pickles
    without its handle (spawned DataLoader and joblib workers), and a forked worker that
    inherits an open handle opens the file again rather than share the parent's.

    Parameters
    ----------
    path : str or path-like
        HDF5 file.
    key : str, default="images"
        Dataset of shape (n_samples, n_bands, height, width).
    crop : int, optional
        Return the central ``crop × crop`` pixels (64 for the published 107-px stamps).
    deredden : bool, default=False
        Multiply band *b* by ``10**(0.4 A_b)`` with ``A_b`` read from ``extinction_key``.
        The column is checked when the object is made: a missing column, or NaN/infinite
        extinction in any row, raises a ValueError naming the rows, since those galaxies
        would otherwise come back as NaN images.
    extinction_key : str, default="e_bv"
        Dataset (n_samples, n_bands) of per-band extinction in magnitudes.
    cache : {None, "exact", "float16"}, default=None
        Keep each galaxy read in memory, so that later epochs read memory instead of the
        file (for an archive that fits in RAM: the first epoch reads the file, the others do
        not). ``"exact"`` keeps the stamps (after cropping) as stored; ``"float16"`` in half
        the memory of float32, rounded to float16's 11 significant bits (a relative error of
        at most 2**-11 for values above 6.1e-5, an absolute one of at most 3e-8 below: far
        below the pixel noise of survey stamps, see the docs' throughput page); a stamp with
        a value beyond float16's range (65,504) is not cached and is read from the file each
        time; every read of a cached stamp, the first included, returns the float16 values,
        so that a read never depends on what was read before. The memory is taken as
        galaxies are read; where all the galaxies' stamps would not fit in the memory
        available now, a warning says so when the object is made. It serves the process that
        holds it (and the thread that reads batches ahead in training): DataLoader worker
        processes (``num_workers``) each start without it, so use it with ``num_workers=0``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is not an HDF5 file, lacks ``key``, holds an empty or non-numeric image
        dataset, or (with ``deredden=True``) lacks finite extinction for every galaxy.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from skphotoz.data import write_archive
    >>> path = os.path.join(tempfile.mkdtemp(), "a.h5")
    >>> write_archive(path, np.arange(4 * 5 * 9 * 9, dtype=np.float32).reshape(4, 5, 9, 9))
    >>> X = HDF5Images(path, crop=3)
    >>> X.shape, X[[2, 0, 2]].shape
    ((4, 5, 3, 3), (3, 5, 3, 3))
    """

    @validated(
        {
            "key": [str],
            "crop": [integer(1), None],
            "deredden": ["boolean"],
            "extinction_key": [str],
            "cache": [StrOptions({"exact", "float16"}), None],
        }
    )
    def __init__(
        self, path, key="images", crop=None, deredden=False, extinction_key="e_bv", cache=None
    ):
        if not isinstance(path, str | os.PathLike):
            raise TypeError(
                "HDF5Images takes the archive's path (str or path-like); got "
                f"{type(path).__name__}."
            )
        self.path = os.fspath(path)
        self.key = key
        self.crop = crop
        self.deredden = deredden
        self.extinction_key = extinction_key
        self.cache = cache
        self._cached = None  # (stamps, which rows hold one), made at the first read
        self._file = None
        self._file_pid = None
        self._extinction = None
        self._index_checked = None
        self._index_passed = False
        with open_hdf5(self.path) as f, structure_errors(self.path):
            check_listed_datasets(f, self.path)
            if f.attrs.get(INCOMPLETE_ATTR, False):
                written = f.attrs.get(WRITTEN_ATTR, 0)
                total = f[key].shape[0] if key in f else "?"
                raise ValueError(
                    f"{self.path} is an incomplete archive: its writer stopped after "
                    f"{written} of {total} galaxies (interrupted, or fewer appended than "
                    f"n_samples), so the other rows are empty. Write it again."
                )
            if key not in f:
                raise ValueError(
                    f"{self.path} has no dataset {key!r} (the images); it holds {sorted(f)}."
                )
            self._check_written(f, key)
            if not isinstance(f[key], h5py.Dataset):
                raise ValueError(f"{key!r} in {self.path} is a group, not a dataset of images.")
            stored = f[key].shape
            self._stored_dtype = f[key].dtype
            self._chunk_rows = int(f[key].chunks[0]) if f[key].chunks else 1
            if len(stored) != 4:
                raise ValueError(
                    f"dataset {key!r} must be 4-D (n_samples, n_bands, height, width); "
                    f"got shape {stored}."
                )
            if stored[1] > MAX_BANDS or max(stored[2:]) > MAX_STAMP_SIZE:
                raise ValueError(
                    f"dataset {key!r} of {self.path} holds stamps of shape {stored[1:]}: more "
                    f"than {MAX_BANDS} bands or {MAX_STAMP_SIZE} px, which no archive holds "
                    f"(damaged metadata, or not galaxy stamps)."
                )
            if 0 in stored:
                raise ValueError(
                    f"dataset {key!r} of {self.path} is empty: shape {stored} "
                    "(n_samples, n_bands, height, width) has a zero-length axis."
                )
            if not np.issubdtype(self._stored_dtype, np.number) or np.issubdtype(
                self._stored_dtype, np.complexfloating
            ):
                raise ValueError(
                    f"dataset {key!r} of {self.path} must hold real numbers (fluxes); "
                    f"got dtype {self._stored_dtype}."
                )
            if deredden:
                self._check_extinction(f, stored)
        size = min(stored[2], stored[3])
        if crop is not None and crop > size:
            raise ValueError(f"crop must be at most the stamp size {size}; got {crop}.")
        self._stored_shape = stored
        if cache is not None:
            self._check_cache_fits()

    def _cache_dtype(self) -> np.dtype:
        return np.dtype(np.float16) if self.cache == "float16" else self._stored_dtype

    def _check_cache_fits(self) -> None:
        """Warn where a cache of every galaxy would not fit in the memory available now."""
        need = int(np.prod(self.shape, dtype=np.int64)) * self._cache_dtype().itemsize
        free = available_memory()
        if free is not None and need > free:
            warnings.warn(
                f"cache={self.cache!r}: the stamps of all {len(self)} galaxies of {self.path} "
                f"take {need / 2**30:.2f} GiB, more than the {free / 2**30:.2f} GiB of memory "
                f"available now. The cache fills as galaxies are read: a fit that reads them "
                f"all would run out of memory. Read the archive from disk (cache=None)"
                + (", or use cache='float16' (half the memory)." if self.cache == "exact" else ".")
                + " A fit of a subset of the galaxies caches that subset only.",
                UserWarning,
                stacklevel=3,
            )

    def _check_written(self, f: h5py.File, key: str) -> None:
        """An archive written by skphotoz records how many galaxies were written: images of
        another length mean its metadata was damaged."""
        written = f.attrs.get(WRITTEN_ATTR)
        if written is None or key != "images" or not isinstance(f[key], h5py.Dataset):
            return
        try:
            written = int(np.asarray(written).reshape(-1)[0])
        except (TypeError, ValueError, IndexError):
            written = None
        if written is None or written != f[key].shape[0]:
            raise DamagedDataError(
                f"{self.path!r}: the images dataset holds {f[key].shape[0]} rows, but the "
                f"archive was written with {written} galaxies: its metadata is damaged. "
                f"Restore it from a copy."
            )

    def _check_extinction(self, f: h5py.File, stored: tuple) -> None:
        """Refuse dereddening with a missing, misshapen or non-finite extinction column: a NaN
        there would turn every pixel of its galaxy into NaN on read."""
        key = self.extinction_key
        if key not in f:
            raise ValueError(
                f"deredden=True needs the per-band extinction dataset {key!r}, which "
                f"{self.path} lacks; open it with deredden=False or add the column."
            )
        expected = (stored[0], stored[1])
        if f[key].shape != expected:
            raise ValueError(
                f"deredden=True needs {key!r} of shape (n_samples, n_bands) = {expected} in "
                f"{self.path}; got shape {f[key].shape}."
            )
        if not np.issubdtype(f[key].dtype, np.number) or np.issubdtype(
            f[key].dtype, np.complexfloating
        ):
            raise ValueError(
                f"deredden=True needs real numbers in {key!r} of {self.path} (extinction in "
                f"magnitudes); got dtype {f[key].dtype}."
            )
        extinction = read_column(f[key], path=self.path, what="extinction").astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(extinction).all(axis=1))
        if bad.size:
            shown = ", ".join(map(str, bad[:5])) + (", ..." if bad.size > 5 else "")
            raise ValueError(
                f"deredden=True needs finite extinction, but {bad.size} of {stored[0]} "
                f"galaxies of {self.path} have NaN or infinite {key!r} (rows {shown}); fix "
                "those rows, drop them, or open the archive with deredden=False."
            )
        huge = np.flatnonzero((extinction > MAX_EXTINCTION).any(axis=1))
        if huge.size:
            shown = ", ".join(map(str, huge[:5])) + (", ..." if huge.size > 5 else "")
            raise ValueError(
                f"deredden=True needs extinction <= {MAX_EXTINCTION:g} mag, but {huge.size} of "
                f"{stored[0]} galaxies of {self.path} have higher {key!r} (rows {shown}; e.g. "
                f"{extinction[huge[0]].max():g}): a missing-value code? Write NaN there and drop "
                "those rows, or open the archive with deredden=False."
            )
        negative = np.flatnonzero((extinction < MIN_EXTINCTION).any(axis=1))
        if negative.size:  # a missing-value code such as -9999 would zero the galaxy
            shown = ", ".join(map(str, negative[:5])) + (", ..." if negative.size > 5 else "")
            raise ValueError(
                f"deredden=True needs extinction >= {MIN_EXTINCTION:g} mag, but {negative.size} "
                f"of {stored[0]} galaxies of {self.path} have lower {key!r} (rows {shown}; e.g. "
                f"{extinction[negative[0]].min():g}): a missing-value code? Write NaN there "
                "and drop those rows, or open the archive with deredden=False."
            )

    @property
    def shape(self) -> tuple[int, int, int, int]:
        n, c, h, w = self._stored_shape
        if self.crop is None:
            return (n, c, h, w)
        return (n, c, self.crop, self.crop)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32) if self.deredden else self._stored_dtype

    @property
    def ndim(self) -> int:
        return 4

    @property
    def chunk_rows(self) -> int:
        """Galaxies per stored chunk of the images (1 for an archive written by skphotoz,
        and for unchunked storage): the unit the file is read in, which a block-shuffled
        epoch keeps whole."""
        return getattr(self, "_chunk_rows", 1)

    def __len__(self) -> int:
        return self._stored_shape[0]

    def __repr__(self) -> str:
        cache = getattr(self, "cache", None)
        return (
            f"HDF5Images({self.path!r}, key={self.key!r}, crop={self.crop!r}, "
            f"deredden={self.deredden!r}"
            + ("" if cache is None else f", cache={cache!r}")
            + f") with shape {self.shape}"
        )

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"] = None
        state["_file_pid"] = None
        state["_extinction"] = None
        state["_cached"] = None  # another process starts without this one's stamps
        return state

    def _dataset(self) -> h5py.Dataset:
        if self._file is not None and self._file_pid != os.getpid():
            # Inherited through fork (a DataLoader worker): HDF5 handles must not be shared
            # between processes. Dropped, not closed: the parent keeps using its own.
            self._file = None
        with structure_errors(self.path):
            if self._file is None or not self._file.id.valid:
                self._file = h5py.File(self.path, "r")
                self._file_pid = os.getpid()
            return self._file[self.key]

    def close(self) -> None:
        """Close the file handle; the next read reopens it."""
        if self._file is not None:
            if getattr(self, "_file_pid", None) == os.getpid():
                self._file.close()
            self._file = None

    def _window(self) -> tuple[slice, slice]:
        _, _, h, w = self._stored_shape
        if self.crop is None:
            return slice(0, h), slice(0, w)
        top, left = (h - self.crop) // 2, (w - self.crop) // 2
        return slice(top, top + self.crop), slice(left, left + self.crop)

    def _read_sorted(self, rows: np.ndarray) -> np.ndarray:
        """Read strictly increasing rows, as few contiguous slices as the gaps allow.

        A run of consecutive rows is one HDF5 call, copied once into its place in the
        output, and the whole read is checked for rows of one repeated byte once, not once
        per run: on an archive of one galaxy per chunk, where a random batch is as many runs
        as rows, the per-run work used to cost more than HDF5's own reading.
        """
        dataset = self._dataset()
        ys, xs = self._window()
        out = np.empty((len(rows),) + self.shape[1:], dtype=self._stored_dtype)
        if len(rows) == 0:
            return out
        chunks = getattr(dataset, "chunks", None)
        gap = min(_MAX_GAP, chunks[0]) if chunks else _MAX_GAP
        breaks = np.flatnonzero(np.diff(rows) > gap) + 1
        starts = np.concatenate(([0], breaks)).tolist()
        stops = np.concatenate((breaks, [len(rows)])).tolist()
        self._check_chunk_index(dataset, rows)
        for a, b in zip(starts, stops, strict=True):
            first, last = int(rows[a]), int(rows[b - 1])
            block = read_rows(
                dataset,
                (slice(first, last + 1), slice(None), ys, xs),
                path=self.path,
                what="images",
                first=first,
                stop=last + 1,
            )
            out[a:b] = block if last - first + 1 == b - a else block[rows[a:b] - first]
        check_uniform_rows(dataset, out, rows, path=self.path, what="images")
        return out

    def _check_chunk_index(self, dataset: h5py.Dataset, rows: np.ndarray) -> None:
        """Refuse rows whose chunk the file's index says is missing or stored without its
        checksum (damage the checksums cannot see); each chunk is looked up once.

        Chunks are looked up one at a time (about 100 µs each) until the lookups add up to
        1/25 of the archive's chunks; then the whole index is read in one pass (about 4 µs a
        chunk), so that a first epoch over a large archive pays for the index once rather
        than a second read of every galaxy, while a few reads of a huge archive stay cheap.
        """
        if not getattr(dataset, "fletcher32", False) or dataset.chunks is None:
            return
        step = dataset.chunks[0]
        if getattr(self, "_index_checked", None) is None:
            self._index_checked = np.zeros(-(-self._stored_shape[0] // step), dtype=bool)
        chunks = np.unique(rows // step)
        todo = chunks[~self._index_checked[chunks]]
        if not todo.size:
            return
        self._index_lookups = getattr(self, "_index_lookups", 0) + todo.size
        passed = getattr(self, "_index_passed", False)
        if self._index_lookups > len(self._index_checked) // 25 and not passed:
            self._index_passed = True
            sound = sound_chunks(dataset)
            if sound is not None:
                self._index_checked |= sound
                todo = chunks[~self._index_checked[chunks]]
        if todo.size:  # unsound chunks, or no pass: the lookups say which and why
            bad = unchecked_chunks(dataset, todo, allocated=True)
            if bad:
                raise damaged_index_error(dataset, self.path, "images", bad)
            self._index_checked[todo] = True

    def _extinction_rows(self, rows: np.ndarray) -> np.ndarray:
        if self._extinction is None:
            self._dataset()
            with structure_errors(self.path):
                column = self._file[self.extinction_key]
            self._extinction = read_column(column, path=self.path, what="extinction").astype(
                np.float64
            )
        return self._extinction[rows]

    def _read_cached(self, rows: np.ndarray) -> np.ndarray:
        """Strictly increasing rows, from the cache where it holds them, else from the file
        (and then kept in the cache)."""
        if getattr(self, "_cached", None) is None:
            stamps = np.empty(self.shape, dtype=self._cache_dtype())  # pages taken on write
            self._cached = (stamps, np.zeros(len(self), dtype=bool))
        stamps, held = self._cached
        hit = held[rows]
        if hit.all():
            return stamps[rows].astype(self._stored_dtype, copy=False)
        out = np.empty((len(rows),) + self.shape[1:], dtype=self._stored_dtype)
        out[hit] = stamps[rows[hit]]
        missed = rows[~hit]
        fresh = self._read_sorted(missed)
        out[~hit] = fresh
        if stamps.dtype == np.float16:  # stamps beyond float16's range stay on disk
            fits = ~(np.isfinite(fresh) & (np.abs(fresh) > np.finfo(np.float16).max)).any(
                axis=tuple(range(1, fresh.ndim))
            )
            missed, fresh = missed[fits], fresh[fits]
        stamps[missed] = fresh
        held[missed] = True
        if stamps.dtype != out.dtype:
            # What is cached is what every read returns, the first included: a read must
            # not depend on whether the galaxy was read before (a second fit, a resumed one).
            out[np.searchsorted(rows, missed)] = stamps[missed]
        return out

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        unique, inverse = np.unique(rows, return_inverse=True)
        if getattr(self, "cache", None) is None:
            images = self._read_sorted(unique)
        else:
            images = self._read_cached(unique)
        if self.deredden:
            ext = self._extinction_rows(unique)
            images = (images * 10.0 ** (0.4 * ext[:, :, None, None])).astype(np.float32)
        if len(unique) == len(rows) and np.array_equal(unique, rows):
            return images
        return images[inverse.reshape(-1)]

    def _rows(self, index) -> np.ndarray | int:
        n = len(self)
        if isinstance(index, numbers.Integral) and not isinstance(index, bool):
            if not -n <= index < n:
                raise IndexError(f"index {index} is out of bounds for {n} images.")
            return int(index) % n
        if isinstance(index, slice):
            # (a range, not np.arange(n)[index]: a slice costs its own rows, not n of them)
            rows = range(n)[index]
            return np.arange(rows.start, rows.stop, rows.step, dtype=np.int64)
        index = np.asarray(index)
        if index.dtype == bool:
            if index.shape != (n,):
                raise IndexError(
                    f"a boolean index must have shape ({n},); got shape {index.shape}."
                )
            return np.flatnonzero(index)
        if not np.issubdtype(index.dtype, np.integer) and index.size:
            raise IndexError(f"images can be indexed by integers only; got dtype {index.dtype}.")
        index = index.astype(np.int64).reshape(-1)
        if index.size and (index.min() < -n or index.max() >= n):
            raise IndexError(f"indices must lie in [-{n}, {n}); got {index.min()}..{index.max()}.")
        return index % n if index.size else index

    def __getitem__(self, item) -> np.ndarray:
        key = item if isinstance(item, tuple) else (item,)
        if key == () or (len(key) == 1 and key[0] is Ellipsis):
            return self[:]
        if any(k is None or k is Ellipsis or isinstance(k, bool | np.bool_) for k in key):
            # numpy's other forms (new axes, ellipses, boolean scalars): on the whole array
            return np.asarray(self)[item]
        rest = ()
        if isinstance(item, tuple):
            item, rest = item[0], item[1:]
        rows = self._rows(item)
        if isinstance(rows, int):
            return self._read_rows(np.array([rows]))[0][rest]
        block = self._read_rows(rows)
        if isinstance(item, slice) or np.asarray(item).dtype == bool:
            return block[(slice(None),) + rest]
        # An integer index array: the rows read are indexed by their positions, shaped like
        # the index, so that numpy's rules apply to the whole key (a 0-d index drops the
        # axis; index arrays among the other axes pair with it).
        if not rest and np.ndim(item) == 1:  # the rows read are the answer, in order
            return block
        positions = np.arange(len(rows)).reshape(np.shape(item))
        return block[(positions,) + rest]

    def __iter__(self):
        for start in range(0, len(self), _READ_BLOCK):
            yield from self[start : start + _READ_BLOCK]

    def __array__(self, dtype=None, copy=None):
        out = np.empty(self.shape, dtype=self.dtype)
        for start in range(0, len(self), _READ_BLOCK):
            out[start : start + _READ_BLOCK] = self[start : start + _READ_BLOCK]
        return out if dtype is None else out.astype(dtype, copy=False)
