"""Per-galaxy FITS cutouts read on demand (:func:`read_fits_cutouts`, :class:`FITSCutouts`),
and the astropy import that every FITS reader of :mod:`skphotoz.data` goes through.

FITS support needs astropy (``pip install skphotoz[fits]``).
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np

from ._photometry import BANDS

__all__ = ["FITSCutouts", "read_fits_cutouts"]

_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fits.fz")
_FITS_EXTRA = "FITS files need astropy: pip install skphotoz[fits] (or pip install astropy)."


def astropy_fits():
    try:
        from astropy.io import fits
    except ImportError as exc:
        raise ImportError(_FITS_EXTRA) from exc
    return fits


def is_fits(path: Path) -> bool:
    if path.name.lower().endswith(_FITS_SUFFIXES):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(9) == b"SIMPLE  ="
    except OSError:
        return False


# ----------------------------------------------------------------------------- FITS cutouts


def fits_name_stem(name: str) -> str | None:
    lowered = name.lower()
    for suffix in sorted(_FITS_SUFFIXES, key=len, reverse=True):
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _cutout_layout(fits, path: Path) -> tuple[list[int], tuple[int, int, int]]:
    """Which HDUs hold the bands of a cutout file, in band order, and its (bands, H, W)."""
    images = []
    try:
        with fits.open(path, memmap=False) as hdul:
            for index, hdu in enumerate(hdul):
                naxis = hdu.header.get("NAXIS", 0) if hdu.is_image else 0
                if naxis:
                    shape = tuple(int(hdu.header[f"NAXIS{k}"]) for k in range(naxis, 0, -1))
                    band = hdu.header.get("FILTER", hdu.header.get("BAND", ""))
                    images.append((index, shape, str(band).strip().lower()))
    except (OSError, TypeError, ValueError, KeyError, IndexError) as exc:
        raise ValueError(f"could not read the FITS file {str(path)!r}: {exc}") from exc
    if len(images) == 1 and len(images[0][1]) == 3:
        return [images[0][0]], images[0][1]
    if images and all(len(shape) == 2 for _, shape, _ in images):
        shapes = {shape for _, shape, _ in images}
        if len(shapes) > 1:
            raise ValueError(
                f"the band images of {str(path)!r} differ in shape ({sorted(shapes)}); every "
                "band must be on one pixel grid."
            )
        hdus = [index for index, _, _ in images]
        bands = [band for _, _, band in images]
        if sorted(bands) == sorted(BANDS):
            hdus = [hdus[bands.index(band)] for band in BANDS]
        return hdus, (len(hdus), *shapes.pop())
    found = [shape for _, shape, _ in images]
    raise ValueError(
        f"{str(path)!r} is not a cutout skphotoz can read: expected one 3-D image "
        f"(bands, H, W) or one 2-D image per band; found images of shapes {found}."
    )


class FITSCutouts:
    """Per-galaxy FITS cutouts of a folder, read on demand as one image array.

    Made by :func:`read_fits_cutouts`. Behaves like a read-only float32 array of shape
    ``(n_samples, n_bands, size, size)``: ``shape``, ``dtype``, ``ndim``, ``len`` and integer,
    slice, boolean and integer-array indexing of the first axis; only the files indexed are
    read.

    Attributes
    ----------
    paths : list of pathlib.Path
        One file per galaxy, in row order.
    """

    def __init__(self, paths, hdus, shape):
        self.paths = list(paths)
        self._hdus = list(hdus)
        self._shape = (len(self.paths), *shape)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @property
    def ndim(self) -> int:
        return 4

    def __len__(self) -> int:
        return self._shape[0]

    def __repr__(self) -> str:
        folder = self.paths[0].parent if self.paths else "?"
        return f"FITSCutouts({str(folder)!r}) with shape {self.shape}"

    def _read(self, row: int) -> np.ndarray:
        fits = astropy_fits()
        try:
            with fits.open(self.paths[row], memmap=False) as hdul:
                data = [np.asarray(hdul[i].data, dtype=np.float32) for i in self._hdus[row]]
        except (OSError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(
                f"could not read the FITS file {str(self.paths[row])!r}: {exc}"
            ) from exc
        stamp = data[0] if len(data) == 1 else np.stack(data)
        if stamp.shape != self._shape[1:]:
            raise ValueError(
                f"{str(self.paths[row])!r} changed: its image has shape {stamp.shape}, "
                f"not {self._shape[1:]}."
            )
        return stamp

    def __getitem__(self, item) -> np.ndarray:
        n = len(self)
        if isinstance(item, numbers.Integral) and not isinstance(item, bool):
            if not -n <= item < n:
                raise IndexError(f"index {item} is out of bounds for {n} cutouts.")
            return self._read(int(item) % n)
        if isinstance(item, slice):
            rows = np.arange(n)[item]
        else:
            rows = np.arange(n)[np.asarray(item)]
        out = np.empty((len(rows), *self._shape[1:]), dtype=np.float32)
        for i, row in enumerate(rows):
            out[i] = self._read(int(row))
        return out

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)


def _cutout_files(folder: Path, filenames) -> list[Path]:
    if filenames is None:
        paths = sorted(
            p for p in folder.iterdir() if p.is_file() and fits_name_stem(p.name) is not None
        )
        if not paths:
            raise ValueError(
                f"no FITS cutouts in {str(folder)!r}: expected files ending in "
                f"{', '.join(_FITS_SUFFIXES)}."
            )
        return paths
    by_stem = {}
    for p in folder.iterdir():
        stem = fits_name_stem(p.name)
        if stem is not None:
            by_stem.setdefault(stem, []).append(p)
    paths, missing = [], []
    for name in np.asarray(filenames).astype(str).reshape(-1):
        name = name.strip()
        if (folder / name).is_file():
            paths.append(folder / name)
        elif len(by_stem.get(name, ())) == 1:
            paths.append(by_stem[name][0])
        else:
            missing.append(name)
    if missing:
        shown = ", ".join(map(repr, missing[:5])) + (", ..." if len(missing) > 5 else "")
        raise ValueError(
            f"{len(missing)} of {len(paths) + len(missing)} cutouts named by the catalogue are "
            f"not in {str(folder)!r} (by file name, or name without the FITS suffix): {shown}."
        )
    if not paths:
        raise ValueError("filenames is empty: no cutouts to read.")
    return paths


def read_fits_cutouts(folder, *, filenames=None) -> FITSCutouts:
    """Read a folder of per-galaxy FITS cutouts, lazily, as one channels-first image array.

    Each file holds one galaxy, in either form:

    - one 3-D image (bands, H, W) — in the primary HDU or the first extension with data;
    - one 2-D image (H, W) per band, in the primary HDU and/or extensions, in ugriz order
      (or in any order if every band's header has ``FILTER`` or ``BAND`` = u, g, r, i, z).

    All bands of all files must be on one pixel grid, i.e. have one shape: resample and
    centre the cutouts first (see the docs page "From SDSS cutouts to skphotoz"). Pixel
    values are read as they are (fluxes in nanomaggies for skphotoz's models); blank (NaN)
    pixels are kept. Only the headers are read here; images are read when indexed.

    Parameters
    ----------
    folder : str or path-like
        Folder of cutouts: files ending in ``.fits``, ``.fit``, ``.fts`` (optionally ``.gz``)
        or ``.fits.fz``; other files are ignored.
    filenames : sequence of str, optional
        The files to read, in row order (e.g. a catalogue's ``filename`` column): each is a
        file name in ``folder``, or a name without its FITS suffix (``"1237648720693755918"``
        for ``1237648720693755918.fits``). Default: every cutout, sorted by file name.

    Returns
    -------
    FITSCutouts
        Lazy (n_samples, n_bands, size, size) float32 images; ``paths`` lists the files.
    """
    fits = astropy_fits()
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"no folder of FITS cutouts at {str(folder)!r}.")
    paths = _cutout_files(folder, filenames)
    hdus, first = [], None
    for path in paths:
        order, shape = _cutout_layout(fits, path)
        if first is None:
            first = (path, shape)
        elif shape != first[1]:
            raise ValueError(
                f"cutouts must all be on one pixel grid: {str(path)!r} has shape {shape} "
                f"(bands, H, W) but {str(first[0])!r} has {first[1]}."
            )
        hdus.append(order)
    if 0 in first[1]:
        raise ValueError(f"the cutouts are empty: shape {first[1]} (bands, H, W).")
    if first[1][1] != first[1][2]:
        raise ValueError(
            f"cutouts must be square; {str(first[0])!r} is {first[1][1]}x{first[1][2]} pixels."
        )
    return FITSCutouts(paths, hdus, first[1])
