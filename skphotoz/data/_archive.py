"""Readers and writers of the galaxy-cutout archive formats.

Two formats are in use for SDSS photo-z images:

- the HDF5 archive of the self-supervised photo-z work (Hayat et al. 2021): ``images``
  (N, 5, 107, 107) float32 nanomaggies, ``specz_redshift``, ``specz_redshift_err``, ``e_bv``
  (N, 5) per-band Galactic extinction in magnitudes, ``ra``, ``dec``, ``ObjID``, ``specObjID``;
- the channels-last ``.npz`` cube of the earlier CNN work (Pasquet et al. 2019): ``cube``
  (N, 64, 64, 5) and a structured ``labels`` array holding at least the field ``z``.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
import zlib
from pathlib import Path

import h5py
import numpy as np
from sklearn.utils import Bunch

from .._inputs import as_numbers, check_numeric, check_redshifts, unmask
from .._validation import StrOptions, check_value, integer, validated
from ._checksum import (
    CRC_ATTR,
    CRC_KEY,
    DATASETS_ATTR,
    read_column,
    read_rows,
    row_crcs,
    structure_errors,
)
from ._lazy import (
    INCOMPLETE_ATTR,
    MAX_BANDS,
    MAX_EXTINCTION,
    MAX_STAMP_SIZE,
    MIN_EXTINCTION,
    WRITTEN_ATTR,
    HDF5Images,
    open_hdf5,
)

#: Per-galaxy columns of the HDF5 archive, their dtype and shape after the sample axis.
ARCHIVE_COLUMNS = {
    "specz_redshift": (np.float32, ()),
    "specz_redshift_err": (np.float32, ()),
    "e_bv": (np.float32, (None,)),
    "ra": (np.float64, ()),
    "dec": (np.float64, ()),
    "ObjID": (np.int64, ()),
    "specObjID": (np.int64, ()),
}

# Archive key on disk -> the public name used everywhere in skphotoz: the keyword of
# ``write_archive`` and ``ArchiveWriter.append`` and the Bunch key of ``open_archive``.
_COLUMN_ALIASES = {
    "specz_redshift": "redshift",
    "specz_redshift_err": "redshift_err",
    "e_bv": "extinction",
    "ra": "ra",
    "dec": "dec",
    "ObjID": "objid",
    "specObjID": "specobjid",
}

#: The public column names, in order; their archive keys are ``_ARCHIVE_KEYS[name]``.
COLUMNS = tuple(_COLUMN_ALIASES.values())
_ARCHIVE_KEYS = {alias: key for key, alias in _COLUMN_ALIASES.items()}

_IMAGES_KEY = "images"
#: Largest stamp side and band count an archive takes.
#: Most galaxies copied per write: larger chunks gain nothing and risk memory (1024 stamps of
#: 5 x 107 x 107 float32 are 230 MB).
MAX_CHUNK = 65536
# One stored chunk holds one galaxy's full stamp: a checksummed chunk is read and verified
# whole, so a random batch reads exactly its galaxies (8 per chunk made random reads 3x slower
# with checksums; benchmarks/archive_checksums.py).
_GALAXIES_PER_CHUNK = 1
# Rows per chunk of a catalogue column (64 KiB of float64): checksummed chunks need chunking.
_ROWS_PER_COLUMN_CHUNK = 8192


class ArchiveWriter:
    """Stream galaxies into a new HDF5 archive without holding them all in memory.

    Parameters
    ----------
    path : str or path-like
        File to create (replaced if present). It is written as ``path + ".partial"`` and
        renamed when the last galaxy is written, so a file at ``path`` (even the archive being
        copied) stays whole until then, and a failed write leaves it as it was; a partial file
        left by a killed process is marked incomplete and refused on open.
    n_samples : int
        Number of galaxies the archive will hold.
    stamp_size : int, default=107
        Height and width of the stored stamps, at most 2048.
    n_bands : int, default=5
        Number of bands (ugriz), at most 16.
    compression : {None, "gzip", "lzf"}, default=None
        HDF5 filter for the images; none by default because float noise compresses poorly
        and reads are faster without.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.h5")
    >>> with ArchiveWriter(path, n_samples=2, stamp_size=8) as w:
    ...     w.append(images=np.ones((2, 5, 8, 8), np.float32), redshift=[0.1, 0.2])
    >>> open_archive(path).images.shape
    (2, 5, 8, 8)
    """

    @validated(
        {
            "n_samples": [integer(1)],
            # An HDF5 chunk (one stamp) must stay under its 4 GiB limit.
            "stamp_size": [integer(1, MAX_STAMP_SIZE)],
            "n_bands": [integer(1, MAX_BANDS)],
            "compression": [StrOptions({"gzip", "lzf"}), None],
        }
    )
    def __init__(self, path, n_samples, stamp_size=107, n_bands=5, compression=None):
        self.path = path
        self.n_samples = n_samples
        self.stamp_size = stamp_size
        self.n_bands = n_bands
        self.compression = compression
        self._file = None
        self._n_written = 0
        self._used = False

    def __enter__(self) -> ArchiveWriter:
        if self._used:
            raise ValueError(
                "an ArchiveWriter writes one archive, once: entering it again would empty "
                f"{os.fspath(self.path)!r}; create a new ArchiveWriter to write another."
            )
        self._used = True
        folder = os.path.dirname(os.path.abspath(os.fspath(self.path)))
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                f"cannot write the archive {os.fspath(self.path)!r}: the folder {folder!r} "
                f"does not exist."
            )
        # Written beside the target and renamed when complete: the file at ``path`` (perhaps
        # the archive the images are read from) stays whole until the new one is.
        self._partial = os.fspath(self.path) + ".partial"
        self._file = h5py.File(self._partial, "w")
        shape = (self.n_samples, self.n_bands, self.stamp_size, self.stamp_size)
        self._file.create_dataset(
            _IMAGES_KEY,
            shape=shape,
            dtype=np.float32,
            chunks=(min(_GALAXIES_PER_CHUNK, self.n_samples),) + shape[1:],
            compression=self.compression,
            fletcher32=True,  # damaged bytes are refused on read, not returned as numbers
        )
        for key, (dtype, tail) in ARCHIVE_COLUMNS.items():
            tail = tuple(self.n_bands if t is None else t for t in tail)
            # Unknown values stay NaN (floats) or -1 (identifiers) when a column is never given;
            # a fill value costs neither memory nor writes, whatever n_samples.
            fill = np.nan if np.issubdtype(dtype, np.floating) else -1
            self._file.create_dataset(
                key,
                shape=(self.n_samples,) + tail,
                dtype=dtype,
                fillvalue=fill,
                chunks=(min(_ROWS_PER_COLUMN_CHUNK, self.n_samples),) + tail,
                fletcher32=True,
            )
        # A CRC-32 of each stored stamp: Fletcher-32 takes a chunk overwritten with zeros
        # (or 0xFF) for a valid one, since such a chunk sums to 0; the CRC does not.
        self._file.create_dataset(
            CRC_KEY,
            shape=(self.n_samples,),
            dtype=np.uint32,
            chunks=(min(_ROWS_PER_COLUMN_CHUNK, self.n_samples),),
            fletcher32=True,
        )
        self._file.attrs[DATASETS_ATTR] = ",".join(sorted(self._file))
        self._file.attrs["bands"] = "ugriz"
        self._file.attrs["flux_unit"] = "nanomaggies"
        # Until the last galaxy is written, readers refuse the file: an interrupted or
        # under-filled write would otherwise read as all-zero images with NaN labels.
        self._file.attrs[INCOMPLETE_ATTR] = True
        return self

    def append(
        self,
        images,
        *,
        redshift=None,
        redshift_err=None,
        extinction=None,
        ra=None,
        dec=None,
        objid=None,
        specobjid=None,
        **unexpected,
    ) -> None:
        """Write the next batch of galaxies.

        The columns take the public names that :func:`open_archive` returns; they are stored
        under the published archive's keys (``redshift`` as ``specz_redshift``,
        ``extinction`` as ``e_bv``, ``objid`` as ``ObjID``...). A column left out stays
        unknown for this batch: NaN for floats, -1 for identifiers.

        Parameters
        ----------
        images : array-like of shape (n_batch, n_bands, stamp_size, stamp_size)
            Fluxes in nanomaggies, stored as float32.
        redshift, redshift_err : array-like of shape (n_batch,), optional
            Spectroscopic redshift and its error.
        extinction : array-like of shape (n_batch, n_bands), optional
            Per-band Galactic extinction A_b in magnitudes.
        ra, dec : array-like of shape (n_batch,), optional
            Sky position in degrees.
        objid, specobjid : array-like of int of shape (n_batch,), optional
            SDSS photometric and spectroscopic object identifiers.
        """
        _refuse_unknown_columns("ArchiveWriter.append", unexpected)
        columns = {
            "redshift": redshift,
            "redshift_err": redshift_err,
            "extinction": extinction,
            "ra": ra,
            "dec": dec,
            "objid": objid,
            "specobjid": specobjid,
        }
        if self._file is None:
            raise RuntimeError("ArchiveWriter.append must be called inside a `with` block.")
        images = _as_float_images(images)
        expected = (self.n_bands, self.stamp_size, self.stamp_size)
        if images.ndim != 4 or images.shape[1:] != expected:
            raise ValueError(
                f"images must have shape (n_batch, {', '.join(map(str, expected))}); "
                f"got {images.shape}."
            )
        n = images.shape[0]
        start, stop = self._n_written, self._n_written + n
        if stop > self.n_samples:
            raise ValueError(
                f"append would write galaxies {start}..{stop - 1} but the archive was created "
                f"for n_samples={self.n_samples}."
            )
        arrays = {}
        for name, values in columns.items():
            if values is None:
                continue
            dataset = self._file[_ARCHIVE_KEYS[name]]
            arrays[dataset.name] = _as_column(values, dataset.dtype, name)
            if arrays[dataset.name].shape != (n,) + dataset.shape[1:]:
                raise ValueError(
                    f"{name} must have shape {(n,) + dataset.shape[1:]} for a batch of {n} "
                    f"images; got {arrays[dataset.name].shape}."
                )
        self._file[_IMAGES_KEY][start:stop] = images
        self._file[CRC_KEY][start:stop] = row_crcs(images)
        for key, values in arrays.items():
            self._file[key][start:stop] = values
        self._n_written = stop
        self._file.attrs[WRITTEN_ATTR] = stop

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and self._n_written != self.n_samples:
                raise ValueError(
                    f"the archive was created for n_samples={self.n_samples} but "
                    f"{self._n_written} galaxies were written."
                )
            if exc_type is None:
                for key in ARCHIVE_COLUMNS:  # their CRC-32, as stored (see CRC_KEY)
                    column = np.ascontiguousarray(self._file[key][...])
                    self._file[key].attrs[CRC_ATTR] = np.uint32(zlib.crc32(column))
                del self._file.attrs[INCOMPLETE_ATTR]
        except BaseException:
            self._file.close()
            self._file = None
            with contextlib.suppress(OSError):
                os.remove(self._partial)
            raise
        self._file.close()
        self._file = None
        if exc_type is None:
            os.replace(self._partial, self.path)
        else:  # the archive at ``path``, if any, is left as it was
            with contextlib.suppress(OSError):
                os.remove(self._partial)


def _refuse_unknown_columns(caller: str, unexpected: dict) -> None:
    """A TypeError for keyword arguments that are not columns, naming the public name of an
    archive key given by mistake (``e_bv=`` for ``extinction=``)."""
    if not unexpected:
        return
    renamed = {k: _COLUMN_ALIASES[k] for k in unexpected if k in _COLUMN_ALIASES}
    if renamed:
        hints = ", ".join(f"{old}= -> {new}=" for old, new in renamed.items())
        raise TypeError(
            f"{caller} takes the public column names, not the archive's keys on disk: use {hints}."
        )
    raise TypeError(
        f"{caller} got unknown columns {sorted(unexpected)}; expected any of {list(COLUMNS)}."
    )


def write_archive(
    path,
    images,
    redshift=None,
    *,
    redshift_err=None,
    extinction=None,
    ra=None,
    dec=None,
    objid=None,
    specobjid=None,
    chunk_size: int = 1024,
    **unexpected,
) -> None:
    """Write galaxies to an HDF5 archive in the published format.

    Parameters
    ----------
    path : str or path-like
    images : array-like of shape (n_samples, n_bands, height, width)
        Any array-like with ``shape`` and slicing (e.g. :class:`HDF5Images`): it is copied
        ``chunk_size`` galaxies at a time.
    redshift, redshift_err : array-like of shape (n_samples,), optional
        Spectroscopic redshift and its error (stored as ``specz_redshift`` and
        ``specz_redshift_err``).
    extinction : array-like of shape (n_samples, n_bands), optional
        Per-band Galactic extinction in magnitudes (stored as ``e_bv``).
    ra, dec : array-like of shape (n_samples,), optional
        Sky position in degrees.
    objid, specobjid : array-like of int of shape (n_samples,), optional
        SDSS identifiers (stored as ``ObjID`` and ``specObjID``).
    chunk_size : int, default=1024
        Galaxies copied per write, at most 65536: bounds the memory used when ``images`` is
        lazy.

    See Also
    --------
    skphotoz.data.ingest : write an archive from a cube or FITS cutouts and a catalogue.
    """
    _refuse_unknown_columns("write_archive", unexpected)
    shape = getattr(images, "shape", None)
    if shape is None:
        images = _as_float_images(images)
        shape = images.shape
    if len(shape) != 4 or shape[2] != shape[3] or 0 in tuple(shape):
        raise ValueError(
            "images must have shape (n_samples, n_bands, size, size) with no empty axis; "
            f"got {tuple(shape)}."
        )
    check_value("write_archive", "chunk_size", chunk_size, [integer(1, MAX_CHUNK)])
    source = getattr(images, "path", None)  # a lazy array-like reading a file (HDF5Images)
    if isinstance(source, str | os.PathLike) and os.path.exists(path):
        try:
            same = os.path.samefile(path, source)
        except OSError:
            same = False
        if same:
            raise ValueError(
                f"path {os.fspath(path)!r} is the archive the images are read from; writing it "
                f"would destroy them before they are copied. Write to another file."
            )
    columns = {
        "redshift": redshift,
        "redshift_err": redshift_err,
        "extinction": extinction,
        "ra": ra,
        "dec": dec,
        "objid": objid,
        "specobjid": specobjid,
    }
    # (masks kept: each batch reaches ArchiveWriter.append, which reads them as unknown)
    columns = {k: np.asanyarray(v) for k, v in columns.items() if v is not None}
    for name, values in columns.items():
        if values.ndim == 0 or values.shape[0] != shape[0]:
            rows = "a scalar" if values.ndim == 0 else values.shape[0]
            raise ValueError(f"{name} must have {shape[0]} rows (one per image); got {rows}.")
    with ArchiveWriter(path, shape[0], stamp_size=shape[2], n_bands=shape[1]) as writer:
        for start in range(0, shape[0], chunk_size):
            stop = min(start + chunk_size, shape[0])
            writer.append(
                images=images[start:stop],
                **{k: v[start:stop] for k, v in columns.items()},
            )


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _as_float_images(images) -> np.ndarray:
    """Images as float32, refusing what is not real numbers (booleans, strings, complex,
    objects) and finite values beyond float32, which would be stored as infinity. Masked
    pixels of a masked array are stored as NaN (missing)."""
    array = np.asarray(unmask(images))
    if array.dtype == bool or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(f"images must be real-valued fluxes; got dtype {array.dtype}.")
    _check_float32_range(array, "images")
    return array.astype(np.float32, copy=False)


def _check_float32_range(array: np.ndarray, name: str) -> None:
    # Integers (even int64) and float32 fit; for wider floats two reductions without
    # temporaries decide (as _inputs._clip_huge does), and only an array holding a value
    # beyond the range, or infinity, is searched element by element.
    if array.dtype.kind != "f" or array.dtype.itemsize <= 4 or array.size == 0:
        return
    high, low = np.fmax.reduce(array, axis=None), np.fmin.reduce(array, axis=None)
    if not (float(high) > _FLOAT32_MAX or float(low) < -_FLOAT32_MAX):  # (all NaN too)
        return
    with np.errstate(invalid="ignore"):
        big = np.abs(array.astype(np.float64, copy=False)) > _FLOAT32_MAX
    big &= np.isfinite(array)
    if big.any():
        first = int(np.flatnonzero(big.reshape(-1))[0])
        raise ValueError(
            f"{name} holds finite values beyond the float32 range in which archives store them "
            f"(±{_FLOAT32_MAX:.3g}), e.g. {float(array.reshape(-1)[first]):g}; they would be "
            f"stored as infinity."
        )


# Allowed range of each float column (NaN always means unknown): values outside are
# missing-value codes such as -9999, or not what the column holds.
_COLUMN_RANGES = {
    "redshift_err": (0.0, None),
    "extinction": (MIN_EXTINCTION, MAX_EXTINCTION),
    "ra": (0.0, 360.0),
    "dec": (-90.0, 90.0),
}
_INT64_MAX = np.iinfo(np.int64).max


def _as_column(values, dtype: np.dtype, name: str) -> np.ndarray:
    """A column converted to its stored dtype; identifiers must be integers (an SDSS ObjID
    does not survive a trip through float64) that int64 holds, with -1 for unknown; floats
    must be real numbers in the column's range (the redshift rule for redshifts), NaN for
    unknown. Masked entries of a masked array are unknown."""
    if np.issubdtype(dtype, np.integer):
        array = np.asarray(unmask(values, fill=-1))
        if not np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
            raise TypeError(
                f"{name} must be integer identifiers; got dtype {array.dtype} (an SDSS ObjID "
                "needs 64-bit integers: floats lose its last digits)."
            )
        if array.size and array.dtype.kind == "u" and int(array.max()) > _INT64_MAX:
            raise ValueError(
                f"{name} holds identifiers up to {int(array.max())}, beyond the int64 range in "
                f"which archives store them (at most {_INT64_MAX})."
            )
        if array.size and int(array.min()) < -1:
            raise ValueError(
                f"{name} must be identifiers >= 0, or -1 for unknown; got {int(array.min())}."
            )
        return array.astype(dtype, copy=False)
    array = np.asarray(unmask(values))
    if array.dtype == bool or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(f"{name} must be real numbers; got dtype {array.dtype}.")
    column = array.astype(np.float64, copy=False)
    if np.isinf(column).any():
        raise ValueError(f"{name} must be finite, or NaN for unknown; got infinity.")
    if name == "redshift":
        check_redshifts(column, "redshift", allow_nan=True)
    low, high = _COLUMN_RANGES.get(name, (None, None))
    with np.errstate(invalid="ignore"):
        outside = np.flatnonzero(
            ((column < low) if low is not None else False)
            | ((column > high) if high is not None else False)
        )
    if outside.size:
        bounds = f"[{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        raise ValueError(
            f"{name} must lie in {bounds}, or be NaN for unknown; {outside.size} value(s) do "
            f"not, e.g. {column.reshape(-1)[outside[0]]:g} (a missing-value code?)."
        )
    if np.dtype(dtype).itemsize <= 4:
        _check_float32_range(column, name)
    return array.astype(dtype, copy=False)


@validated({"crop": [integer(1), None], "deredden": ["boolean"]})
def open_archive(
    path, *, crop: int | None = None, deredden: bool = False, cache: str | None = None
) -> Bunch:
    """Open an HDF5 archive: images stay on disk, per-galaxy columns are loaded.

    Parameters
    ----------
    path : str or path-like
    crop : int, optional
        Centre-crop the stamps to ``crop × crop`` on read (64 for the published 107-px
        archive).
    deredden : bool, default=False
        Correct the images for Galactic extinction with the ``e_bv`` column on read
        (refused if any galaxy's extinction is NaN or infinite).
    cache : {None, "exact", "float16"}, default=None
        Keep the stamps read in memory, so that later epochs do not read the file again
        (see :class:`HDF5Images`).

    Returns
    -------
    Bunch
        ``images`` (:class:`HDF5Images`, lazy), ``redshift``, ``redshift_err``,
        ``extinction`` (n, n_bands), ``ra``, ``dec``, ``objid``, ``specobjid`` (those present
        in the file).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is not an HDF5 file, has no ``images`` dataset or an empty one, is an
        incomplete archive (an :class:`ArchiveWriter` that stopped before its last galaxy),
        or a column has a different number of rows than there are images.
    """
    images = HDF5Images(path, crop=crop, deredden=deredden, cache=cache)
    n_samples, n_bands = len(images), images.shape[1]
    bunch = Bunch(images=images)
    with open_hdf5(path) as f, structure_errors(path):
        for key, alias in _COLUMN_ALIASES.items():
            if key not in f:
                continue
            column = f[key]
            if not isinstance(column, h5py.Dataset) or column.ndim == 0:
                raise ValueError(
                    f"{os.fspath(path)!r}: column {alias!r} (key {key!r}) must be a dataset "
                    f"with one row per image; got {column!r}."
                )
            if column.shape[0] != n_samples:
                raise ValueError(
                    f"{os.fspath(path)!r}: column {alias!r} (key {key!r}) has "
                    f"{column.shape[0]} rows but the archive has {n_samples} images; every "
                    "column needs one row per image."
                )
            if key == "e_bv" and column.shape[1:] != (n_bands,):
                raise ValueError(
                    f"{os.fspath(path)!r}: column 'extinction' (key 'e_bv') must have shape "
                    f"(n_samples, n_bands) = {(n_samples, n_bands)}; got {column.shape}."
                )
            bunch[alias] = read_column(column, path=path, what=f"column {alias!r}")
    return bunch


def load_embeddings(path) -> np.ndarray:
    """The embeddings written by ``skphotoz embed``: a .npy array (memory-mapped), or the
    dataset ``embeddings`` of an HDF5 file (its checksums verified); a one-line error naming
    the file otherwise. Used by ``skphotoz search``, ``select`` and ``explore``."""

    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            if "embeddings" not in f:
                raise ValueError(
                    f"embeddings {os.fspath(path)!r} is an HDF5 file without a dataset "
                    f"'embeddings' (it holds {sorted(f)}); write one with `skphotoz embed`."
                )
            dataset = f["embeddings"]
            return read_rows(dataset, (), path=path, what="embeddings", first=0, stop=len(dataset))
    try:
        loaded = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        # (numpy's own text can advise allow_pickle=True, which could run code: not shown)
        detail = "" if "pickle" in str(exc) else f"; numpy says: {exc}"
        raise ValueError(
            f"embeddings {os.fspath(path)!r} is neither a .npy array of numbers nor an HDF5 "
            f"file with a dataset 'embeddings' (as `skphotoz embed` writes){detail}"
        ) from exc
    if not isinstance(loaded, np.ndarray):  # an .npz archive of several arrays
        loaded.close()
        raise ValueError(
            f"embeddings {os.fspath(path)!r} is a .npz archive; give the .npy array or the "
            f"HDF5 file that `skphotoz embed` writes."
        )
    return loaded


def save_npz_cube(path, images, redshift, **labels) -> None:
    """Write the channels-last ``.npz`` cube format of earlier CNN work.

    Parameters
    ----------
    path : str or path-like
    images : array-like of shape (n_samples, n_bands, height, width)
        Stored transposed as ``cube`` (n_samples, height, width, n_bands).
    redshift : array-like of shape (n_samples,)
        Stored as field ``z`` of the structured array ``labels``.
    **labels : array-like of shape (n_samples,)
        Further per-galaxy fields of ``labels`` (e.g. ``ebv``).
    """
    images = _as_float_images(images)  # real, within float32; masked pixels as NaN
    if images.ndim != 4:
        raise ValueError(
            f"images must have shape (n_samples, n_bands, height, width); got {images.shape}."
        )
    if "z" in labels:
        raise TypeError(
            "save_npz_cube got a label named 'z', which is where redshift is stored; pass the "
            "redshifts as redshift= (or rename the label)."
        )
    z = as_numbers("redshift", redshift)
    check_redshifts(z.reshape(-1), "redshift", allow_nan=True)
    fields = {"z": z}
    for name, values in labels.items():
        values = np.asarray(unmask(values))
        check_numeric(values, f"label {name!r}")
        fields[name] = values
    for name, values in fields.items():
        if values.shape[:1] != (images.shape[0],):
            raise ValueError(
                f"label {name!r} must have {images.shape[0]} rows; got shape {values.shape}."
            )
    table = np.empty(images.shape[0], dtype=[(k, v.dtype, v.shape[1:]) for k, v in fields.items()])
    for name, values in fields.items():
        table[name] = values
    with open(os.fspath(path), "wb") as f:
        np.savez(f, cube=np.ascontiguousarray(images.transpose(0, 2, 3, 1)), labels=table)


def load_npz_cube(path) -> Bunch:
    """Read a channels-last ``.npz`` cube as channels-first images.

    Returns
    -------
    Bunch
        ``images`` (n, n_bands, height, width) float32, ``redshift`` and every other field of
        ``labels`` as its own array.

    Raises
    ------
    FileNotFoundError
        Nothing is at ``path``.
    ValueError
        The file is not a ``.npz`` archive, is damaged, holds Python objects (which are never
        unpickled: that could run code), or its arrays are not a cube and one label per image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no .npz cube at {os.fspath(path)!r}: not a file.")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{os.fspath(path)!r} is not a .npz archive (a zip of .npy arrays, as "
            f"save_npz_cube and np.savez write)."
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            names = list(data)
            if "cube" not in names:
                raise ValueError(
                    f"{os.fspath(path)!r} is not a cube archive: expected the key 'cube', "
                    f"found {names}."
                )
            arrays = {name: data[name] for name in ("cube", "labels", "z") if name in names}
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise ValueError(
                f"{os.fspath(path)!r} holds arrays of Python objects (pickles), which skphotoz "
                f"never loads since unpickling can run code; store the cube and labels as "
                f"numbers."
            ) from None
        if "cube archive" in str(error):
            raise
        raise ValueError(f"{os.fspath(path)!r} could not be read as a .npz cube: {error}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{os.fspath(path)!r} could not be read as a .npz cube (damaged: "
            f"{type(error).__name__}: {error})."
        ) from None
    cube = arrays["cube"]
    check_numeric(cube, f"'cube' in {os.fspath(path)!r}")
    if cube.ndim != 4 or 0 in cube.shape:
        raise ValueError(
            f"'cube' in {os.fspath(path)!r} must be 4-D (n, H, W, bands) with no empty axis; got "
            f"shape {cube.shape}."
        )
    if cube.shape[1] != cube.shape[2]:
        hint = (
            " It looks channels-first (n, bands, H, W); store it channels-last, as "
            "save_npz_cube does."
            if cube.shape[2] == cube.shape[3]
            else ""
        )
        raise ValueError(
            f"'cube' in {os.fspath(path)!r} must be (n, H, W, bands) with square stamps; got "
            f"shape {cube.shape}.{hint}"
        )
    bunch = Bunch(images=np.ascontiguousarray(cube.transpose(0, 3, 1, 2), dtype=np.float32))
    n = len(cube)
    if "labels" in arrays:
        table = arrays["labels"]
        if table.dtype.names is None or table.ndim != 1:
            raise ValueError(
                f"'labels' in {os.fspath(path)!r} must be a 1-D structured array with one "
                f"named field per label (e.g. 'z'); got dtype {table.dtype} and shape "
                f"{table.shape}."
            )
        columns = {("redshift" if name == "z" else name): table[name] for name in table.dtype.names}
    elif "z" in arrays:
        columns = {"redshift": arrays["z"]}
    else:
        columns = {}
    for name, values in columns.items():
        values = np.asarray(values)
        if values.shape[:1] != (n,):
            raise ValueError(
                f"{os.fspath(path)!r}: label {name!r} has shape {values.shape}, but the cube "
                f"holds {n} images; every label needs one value per image."
            )
        bunch[name] = values
    return bunch
