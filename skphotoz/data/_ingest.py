"""From the data an astronomer has to an skphotoz archive: image cubes, FITS cutouts and
catalogues in, one HDF5 archive out.

- :func:`read_catalog` reads a CSV or FITS table and recognises the usual names of the
  per-galaxy columns (``z``, ``zErr``, ``objID``, ``ra``, ``dec``, ``E(B-V)``...);
- :func:`read_cube` reads a ``.npy``/``.npz`` image cube, channels-last (n, H, W, bands) as in
  earlier CNN photo-z work or channels-first (n, bands, H, W), without loading a ``.npy``;
- :func:`read_fits_cutouts` reads a folder of per-galaxy FITS cutouts on demand;
- :func:`ingest` writes any of these with its catalogue to the HDF5 archive that
  :func:`~skphotoz.data.open_archive` and the estimators read, a chunk at a time.

FITS support needs astropy (``pip install skphotoz[fits]``); nothing else here does.
"""

from __future__ import annotations

import csv
import numbers
import os
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from .._validation import StrOptions, check_params, integer
from ._archive import COLUMNS, MAX_BANDS, MAX_CHUNK, ArchiveWriter
from ._photometry import (
    BANDS,
    EXTINCTION_COEFFICIENTS,
    SFD98_EXTINCTION_COEFFICIENTS,
    extinction_from_ebv,
)

__all__ = ["FITSCutouts", "ingest", "read_catalog", "read_cube", "read_fits_cutouts"]

#: Recognised catalogue column names (compared case-insensitively), most specific first.
CATALOG_ALIASES = {
    "redshift": (
        "redshift", "specz_redshift", "z_spec", "zspec", "spec_z", "specz", "z",
    ),
    "redshift_err": (
        "redshift_err", "specz_redshift_err", "z_err", "zerr", "z_spec_err", "zspec_err",
        "spec_z_err", "specz_err",
    ),
    "ra": ("ra", "ra_deg", "raj2000"),
    "dec": ("dec", "dec_deg", "dej2000", "decj2000"),
    "objid": ("objid", "obj_id", "object_id", "objectid"),
    "specobjid": ("specobjid", "spec_obj_id", "specobj_id"),
    "ebv": ("ebv", "e_bv", "e(b-v)", "ebv_sfd", "sfd_ebv"),
    "extinction": ("extinction",),
    "filename": ("filename", "file_name", "file", "fits_file", "cutout"),
}  # fmt: skip
#: Per-band extinction columns: ``extinction_u`` ... or ``a_u`` ... (case-insensitive).
BAND_EXTINCTION_PREFIXES = ("extinction_", "a_")

_CATALOG_KEYS = (*COLUMNS, "ebv", "filename")
_INT_COLUMNS = {"objid", "specobjid"}
_MISSING = {"", "nan", "na", "n/a", "null", "none", "--"}
_EBV_COEFFICIENTS = {"sfd98": SFD98_EXTINCTION_COEFFICIENTS, "sf11": EXTINCTION_COEFFICIENTS}

_LAYOUTS = ("auto", "channels_first", "channels_last")
_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fits.fz")
_FITS_EXTRA = "FITS files need astropy: pip install skphotoz[fits] (or pip install astropy)."


def _astropy_fits():
    try:
        from astropy.io import fits
    except ImportError as exc:
        raise ImportError(_FITS_EXTRA) from exc
    return fits


def _is_fits(path: Path) -> bool:
    if path.name.lower().endswith(_FITS_SUFFIXES):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(9) == b"SIMPLE  ="
    except OSError:
        return False


# ----------------------------------------------------------------------------- catalogues


def _read_csv(path: Path) -> tuple[list[str], callable]:
    """Header and a reader of named columns (as string arrays) of a delimited text file."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        lines = (line for line in f if line.strip() and not line.lstrip().startswith("#"))
        header_line = next(lines, None)
        if header_line is None:
            raise ValueError(f"catalogue {str(path)!r} is empty: expected a header row.")
        try:
            dialect = csv.Sniffer().sniff(header_line, delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel
        header = [name.strip() for name in next(csv.reader([header_line], dialect))]
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if repeated:  # columns= could not say which one is meant
        raise ValueError(
            f"catalogue {str(path)!r} has several columns named {repeated}; rename them so "
            f"that each column name is unique."
        )

    def columns(names: list[str]) -> dict[str, np.ndarray]:
        index = [header.index(name) for name in names]
        values = [[] for _ in names]
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = csv.reader(
                (line for line in f if line.strip() and not line.lstrip().startswith("#")),
                dialect,
            )
            next(rows)
            for number, row in enumerate(rows, start=2):
                if len(row) != len(header):
                    raise ValueError(
                        f"catalogue {str(path)!r}: data row {number - 1} has {len(row)} fields "
                        f"but the header has {len(header)}."
                    )
                for out, i in zip(values, index, strict=True):
                    out.append(row[i].strip())
        return {name: np.array(v, dtype=str) for name, v in zip(names, values, strict=True)}

    return header, columns


def _read_fits_table(path: Path) -> tuple[list[str], callable]:
    fits = _astropy_fits()
    with fits.open(path, memmap=False) as hdul:
        tables = [hdu for hdu in hdul if not hdu.is_image and hdu.data is not None]
        if not tables:
            raise ValueError(f"catalogue {str(path)!r} has no table extension.")
        data = tables[0].data
        arrays = {}
        for name in data.columns.names:
            array = np.asarray(data[name])
            arrays[name] = array.astype(array.dtype.newbyteorder("="), copy=True)
    header = list(arrays)
    return header, lambda names: {name: arrays[name] for name in names}


#: The lowest value a catalogue column can hold: below it, a value is a missing-value code
#: (SDSS writes -9999), not a measurement. 1 + z must be positive; E(B-V) and extinction
#: are positive (a dust map's noise can dip slightly below 0).
_LOWEST = {"redshift": -1.0, "ebv": -0.05, "extinction": -0.25}


def _check_lowest(values: np.ndarray, name: str, source, low: float) -> None:
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(
            (values <= low if name == "redshift" else values < low)
            .reshape(len(values), -1)
            .any(axis=1)
        )
    if bad.size:
        row = int(bad[0])
        shown = np.asarray(values[row]).reshape(-1)
        raise ValueError(
            f"catalogue column {source!r} ({name}) must be "
            f"{'> ' if name == 'redshift' else '>= '}{low:g}; {bad.size} row(s) are not, e.g. "
            f"row {row} is {shown.min():g}: a missing-value code? Leave those cells empty (or "
            f"NaN) to mark the value unknown."
        )


def _to_float(values: np.ndarray, name: str, source: str) -> np.ndarray:
    if values.dtype.kind in "US":
        out = np.empty(values.shape, dtype=np.float64)
        flat = out.reshape(-1)
        for row, text in enumerate(values.reshape(-1).astype(str).tolist()):
            if text.strip().lower() in _MISSING:
                flat[row] = np.nan
                continue
            try:
                flat[row] = float(text)
            except ValueError:
                raise ValueError(
                    f"catalogue column {source!r} ({name}) must hold numbers; row {row} is "
                    f"{text!r}."
                ) from None
        return out
    if values.dtype.kind not in "iuf":
        raise TypeError(
            f"catalogue column {source!r} ({name}) must hold numbers; got dtype {values.dtype}."
        )
    return values.astype(np.float64)


def _to_int(values: np.ndarray, name: str, source: str) -> np.ndarray:
    if values.dtype.kind in "US":
        out = np.empty(len(values), dtype=np.int64)
        for row, text in enumerate(values.astype(str).tolist()):
            if text.strip().lower() in _MISSING:
                out[row] = -1
                continue
            try:
                out[row] = int(text)
            except (ValueError, OverflowError):
                raise ValueError(
                    f"catalogue column {source!r} ({name}) must hold integer identifiers; row "
                    f"{row} is {text!r} (an SDSS ObjID written as a float has lost digits)."
                ) from None
        return out
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    raise TypeError(
        f"catalogue column {source!r} ({name}) must hold integer identifiers; got dtype "
        f"{values.dtype} (an SDSS ObjID stored as a float has lost its last digits)."
    )


def _find(header: list[str], aliases: tuple[str, ...], name: str) -> str | None:
    lowered = {}
    for column in header:
        lowered.setdefault(column.strip().lower(), []).append(column)
    found = [column for alias in aliases for column in lowered.get(alias, [])]
    if len(found) > 1:
        raise ValueError(
            f"the catalogue has several columns that could be {name}: {found}; say which with "
            f"columns={{{name!r}: {found[0]!r}}}."
        )
    return found[0] if found else None


def _band_columns(header: list[str]) -> list[str] | None:
    lowered = {column.strip().lower(): column for column in header}
    for prefix in BAND_EXTINCTION_PREFIXES:
        present = [lowered.get(prefix + band) for band in BANDS]
        if all(present):
            return present
        if any(present):
            missing = [prefix + b for b, c in zip(BANDS, present, strict=True) if c is None]
            raise ValueError(
                f"the catalogue has per-band extinction columns {prefix}* but lacks {missing}; "
                "give all five bands, an E(B-V) column, or columns={'extinction': None}."
            )
    return None


def _resolve(header: list[str], columns: dict | None) -> dict[str, str | list[str]]:
    """Public name -> source column(s) of a table with ``header``."""
    columns = {} if columns is None else dict(columns)
    unknown = sorted(set(columns) - set(_CATALOG_KEYS))
    if unknown:
        raise ValueError(
            f"columns has unknown keys {unknown}; expected any of {list(_CATALOG_KEYS)}."
        )
    chosen = {}
    for key, source in columns.items():
        if source is None:
            continue
        if key != "extinction" and not isinstance(source, str):
            raise TypeError(f"columns[{key!r}] must be a column name (str); got {source!r}.")
        is_list = isinstance(source, list | tuple) and all(isinstance(s, str) for s in source)
        if not isinstance(source, str) and not (is_list and len(source) == len(BANDS)):
            raise ValueError(
                f"columns['extinction'] must name one vector column or {len(BANDS)} per-band "
                f"columns (ugriz); got {source!r}."
            )
        sources = [source] if isinstance(source, str) else list(source)
        missing = [s for s in sources if s not in header]
        if missing:
            raise ValueError(
                f"columns[{key!r}] names {missing}, not in the catalogue; its columns are {header}."
            )
        chosen[key] = source
    for key in _CATALOG_KEYS:
        if key in columns:
            continue
        if key == "extinction":
            bands = _band_columns(header)
            if bands is not None:
                chosen[key] = bands
                continue
        found = _find(header, CATALOG_ALIASES[key], key)
        if found is None:
            continue
        if key == "redshift" and found.lower() == "z" and "redshift" not in columns:
            lowered = {c.strip().lower() for c in header}
            if {"u", "g", "r", "i"} <= lowered:
                raise ValueError(
                    "the catalogue's column 'z' could be the redshift or the z-band magnitude "
                    "(it also has u, g, r, i columns); say which with "
                    "columns={'redshift': 'z'} or columns={'redshift': None}."
                )
        chosen[key] = found
    if (
        "ebv" in chosen
        and "ebv" not in columns
        and ("extinction" in chosen or "extinction" in columns)
    ):
        # The survey's own per-band values win over E(B-V) times R_b, and
        # ``columns={"extinction": None}`` means no extinction at all.
        del chosen["ebv"]
    return chosen


def _recognise(header, read, columns, ebv_coefficients, source: str) -> dict[str, np.ndarray]:
    chosen = _resolve(header, columns)
    if not chosen and not columns:
        shown = header if len(header) <= 12 else [*header[:12], "..."]
        raise ValueError(
            f"{source} has none of the recognised columns (e.g. z, redshift, ra, dec, objid, "
            f"e_bv); its header row is {shown}. If the file has no header row, add one; else "
            f"name the columns with columns={{'redshift': NAME, ...}} (--column redshift=NAME)."
        )
    needed = sorted({c for v in chosen.values() for c in ([v] if isinstance(v, str) else v)})
    raw = read(needed) if needed else {}
    out = {}
    for key, src in chosen.items():
        if key == "filename":
            out[key] = np.asarray(raw[src]).astype(str)
        elif key in _INT_COLUMNS:
            out[key] = _to_int(np.asarray(raw[src]), key, src)
        elif key == "extinction" and not isinstance(src, str):
            out[key] = np.stack([_to_float(np.asarray(raw[s]), key, s) for s in src], axis=1)
        else:
            values = _to_float(np.asarray(raw[src]), key, src)
            if values.ndim == 2 and key == "ebv" and values.shape[1] == len(BANDS):
                out["extinction"] = values  # the published archive's per-band ``e_bv``
                continue
            expected = 2 if key == "extinction" else 1
            if values.ndim != expected:
                raise ValueError(
                    f"catalogue column {src!r} ({key}) must be "
                    f"{'a vector of one value per band' if expected == 2 else 'one value'} per "
                    f"row; got shape {values.shape}."
                )
            out[key] = values
    for key, low in _LOWEST.items():
        if key in out:
            # (a per-band ``ebv`` vector column is read as the extinction)
            _check_lowest(out[key], key, chosen.get(key, chosen.get("ebv")), low)
    if "ebv" in out:
        ebv = out.pop("ebv")
        extinction = np.full((len(ebv), len(BANDS)), np.nan)
        finite = np.isfinite(ebv)
        if finite.any():
            extinction[finite] = extinction_from_ebv(ebv[finite], ebv_coefficients)
        out.setdefault("extinction", extinction)
    lengths = {key: len(values) for key, values in out.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"the columns of {source} have different lengths: {lengths}.")
    return out


def _ebv_coefficients(value) -> np.ndarray:
    if isinstance(value, str):
        if value not in _EBV_COEFFICIENTS:
            raise ValueError(
                f"ebv_coefficients must be one of {sorted(_EBV_COEFFICIENTS)} or an array of "
                f"{len(BANDS)} values; got {value!r}."
            )
        return _EBV_COEFFICIENTS[value]
    coefficients = np.asarray(value, dtype=np.float64)
    if coefficients.shape != (len(BANDS),) or not np.isfinite(coefficients).all():
        raise ValueError(
            f"ebv_coefficients must hold {len(BANDS)} finite values (ugriz); got {value!r}."
        )
    return coefficients


def read_catalog(path, columns=None, *, ebv_coefficients="sfd98") -> dict[str, np.ndarray]:
    """Read a galaxy catalogue (CSV or FITS table) into skphotoz's public column names.

    Parameters
    ----------
    path : str or path-like
        A delimited text file (comma, semicolon, tab or ``|``; a header row; lines starting
        with ``#`` are skipped; empty, ``nan``, ``NA`` and ``null`` cells are missing values)
        or a FITS file whose first table extension holds the catalogue (needs astropy:
        ``pip install skphotoz[fits]``).
    columns : dict, optional
        Public name -> column name of the file, overriding the recognised names below (e.g.
        ``{"redshift": "Z_BEST"}``); ``None`` as the column name skips that quantity. Keys:
        ``redshift, redshift_err, extinction, ra, dec, objid, specobjid, ebv, filename``;
        ``extinction`` may name one vector column or a list of five per-band columns (ugriz).
    ebv_coefficients : {"sfd98", "sf11"} or array-like of shape (5,), default="sfd98"
        R_b = A_b / E(B-V) that turn an E(B-V) column into per-band extinction:
        ``"sfd98"`` gives the values of SDSS's own ``extinction_*`` columns and of the
        published archive (Schlegel, Finkbeiner & Davis 1998), so archives from either
        source agree; ``"sf11"`` the recalibration of Schlafly & Finkbeiner (2011).

    Returns
    -------
    dict of str to ndarray
        Those of ``redshift``, ``redshift_err``, ``ra``, ``dec`` (float64, shape (n,)),
        ``extinction`` (float64, (n, 5), magnitudes), ``objid``, ``specobjid`` (int64; a
        missing cell is -1) and ``filename`` (str) that the catalogue holds. Missing numbers
        are NaN.

    Notes
    -----
    Recognised names, compared case-insensitively (other columns are ignored):

    - redshift: ``redshift``, ``specz_redshift``, ``z_spec``, ``zspec``, ``spec_z``,
      ``specz``, ``z`` (a ``z`` next to ``u, g, r, i`` columns may be a magnitude: refused
      unless named in ``columns``);
    - redshift_err: ``redshift_err``, ``specz_redshift_err``, ``z_err``, ``zerr``,
      ``z_spec_err``, ``zspec_err``, ``spec_z_err``, ``specz_err``;
    - ra: ``ra``, ``ra_deg``, ``raj2000``; dec: ``dec``, ``dec_deg``, ``dej2000``,
      ``decj2000``;
    - objid: ``objid``, ``obj_id``, ``object_id``, ``objectid``; specobjid: ``specobjid``,
      ``spec_obj_id``, ``specobj_id``;
    - extinction in magnitudes: ``extinction_u`` ... ``extinction_z`` or ``a_u`` ... ``a_z``,
      or one vector column ``extinction`` (FITS);
    - E(B-V): ``ebv``, ``e_bv``, ``E(B-V)``, ``ebv_sfd``, ``sfd_ebv``, turned into
      ``extinction = E(B-V) * R_b`` with ``ebv_coefficients`` (an ``e_bv`` vector column of
      five values per row is taken as per-band extinction, as in the published archive);
      per-band columns win when both are present;
    - filename: ``filename``, ``file_name``, ``file``, ``fits_file``, ``cutout`` (used by
      :func:`ingest` to match FITS cutouts to rows).

    Two columns that both match one quantity (``z`` and ``redshift``) are refused; name the
    one to use in ``columns``.
    """
    check_params("read_catalog", {"columns": [dict, None]}, columns=columns)
    coefficients = _ebv_coefficients(ebv_coefficients)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no catalogue file at {str(path)!r}.")
    try:
        header, read = _read_fits_table(path) if _is_fits(path) else _read_csv(path)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"catalogue {str(path)!r} is neither UTF-8 text (CSV) nor a FITS table: it holds "
            f"the byte {exc.object[exc.start : exc.start + 1]!r}, which is not UTF-8. Save a CSV "
            f"as UTF-8 (e.g. from Latin-1: iconv -f latin1 -t utf-8)."
        ) from None
    except (OSError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(f"could not read the catalogue {str(path)!r}: {exc}") from exc
    return _recognise(header, read, columns, coefficients, f"catalogue {str(path)!r}")


# ----------------------------------------------------------------------------- image cubes


def _check_real(dtype: np.dtype, what: str) -> None:
    if dtype.kind not in "iuf":
        raise TypeError(f"{what} must hold real-valued fluxes; got dtype {dtype}.")


def _channels_first(cube, layout: str, what: str) -> tuple[np.ndarray, str]:
    """A (n, bands, H, W) view of a 4-D cube in ``layout``, and the layout used."""
    if cube.ndim != 4:
        raise ValueError(
            f"{what} must be 4-D, (n, H, W, bands) or (n, bands, H, W); got shape {cube.shape}."
        )
    _check_real(cube.dtype, what)
    if 0 in cube.shape:
        raise ValueError(f"{what} is empty: shape {cube.shape} has a zero-length axis.")
    _, a, b, c = cube.shape
    if layout == "auto":
        last = c <= MAX_BANDS and a == b
        first = a <= MAX_BANDS and b == c
        if last == first:
            reason = "both" if last else "neither"
            raise ValueError(
                f"cannot tell the band axis of {what} of shape {cube.shape}: {reason} of "
                f"(n, H, W, bands) and (n, bands, H, W) fit (bands <= {MAX_BANDS}, square "
                "stamps); pass layout='channels_last' or layout='channels_first'."
            )
        layout = "channels_last" if last else "channels_first"
    out = cube.transpose(0, 3, 1, 2) if layout == "channels_last" else cube
    if out.shape[2] != out.shape[3]:
        raise ValueError(
            f"{what} read as {layout} gives stamps of {out.shape[2]}x{out.shape[3]} pixels; "
            "the archive needs square stamps on one pixel grid (check layout)."
        )
    return out, layout


def _load_cube(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The raw cube of a .npy (memory-mapped) or .npz file, and the .npz ``labels``."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False), None
        except ValueError as exc:
            raise ValueError(f"{str(path)!r} is not a numeric .npy cube: {exc}") from exc
    if suffix != ".npz":
        hint = " (an HDF5 file is already an archive)" if suffix in (".h5", ".hdf5") else ""
        raise ValueError(f"a cube must be a .npy or .npz file; got {str(path)!r}{hint}.")
    with np.load(path, allow_pickle=False) as data:
        keys = list(data)
        if "cube" in keys:
            key = "cube"
        elif len([k for k in keys if k != "labels"]) == 1:
            key = next(k for k in keys if k != "labels")
        else:
            raise ValueError(
                f"{str(path)!r} holds {keys}; expected the key 'cube' or a single array."
            )
        labels = data["labels"] if "labels" in keys and key != "labels" else None
        return data[key], labels


def read_cube(path, layout="auto") -> np.ndarray:
    """Read a ``.npy`` or ``.npz`` image cube as channels-first images.

    Parameters
    ----------
    path : str or path-like
        A ``.npy`` file (memory-mapped: nothing is loaded until indexed) or a ``.npz`` file
        holding the key ``cube`` or a single array (loaded: ``.npz`` cannot be mapped).
    layout : {"auto", "channels_last", "channels_first"}, default="auto"
        Axis order of the stored cube: ``"channels_last"`` is (n, H, W, bands), as in earlier
        CNN photo-z work (Pasquet et al. 2019); ``"channels_first"`` is (n, bands, H, W).
        ``"auto"`` takes the order in which the band axis is small (at most 16) and the two
        pixel axes are equal, and refuses a cube for which both or neither fit.

    Returns
    -------
    images : ndarray of shape (n_samples, n_bands, height, width)
        A view of the stored cube (a transposed memory map for ``.npy``), in its own dtype;
        slice it to read galaxies.
    """
    check_params("read_cube", {"layout": [StrOptions(set(_LAYOUTS))]}, layout=layout)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no cube file at {str(path)!r}.")
    cube, _ = _load_cube(path)
    return _channels_first(cube, layout, f"the cube in {str(path)!r}")[0]


# ----------------------------------------------------------------------------- FITS cutouts


def _fits_name_stem(name: str) -> str | None:
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
        fits = _astropy_fits()
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
            p for p in folder.iterdir() if p.is_file() and _fits_name_stem(p.name) is not None
        )
        if not paths:
            raise ValueError(
                f"no FITS cutouts in {str(folder)!r}: expected files ending in "
                f"{', '.join(_FITS_SUFFIXES)}."
            )
        return paths
    by_stem = {}
    for p in folder.iterdir():
        stem = _fits_name_stem(p.name)
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
    fits = _astropy_fits()
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


# ----------------------------------------------------------------------------- ingest


def _catalog_from_mapping(catalog: dict) -> dict[str, np.ndarray]:
    unknown = sorted(set(catalog) - {*COLUMNS, "filename"})
    if unknown:
        raise ValueError(
            f"catalog has unknown keys {unknown}; expected any of {[*COLUMNS, 'filename']} "
            "(read a file with read_catalog to map other names)."
        )
    table = {key: np.asarray(values) for key, values in catalog.items() if values is not None}
    for key, values in table.items():
        if values.ndim == 0:
            raise ValueError(f"catalog[{key!r}] must have one row per image; got a scalar.")
    return table


def _match_cutouts(folder: Path, table: dict | None) -> tuple[FITSCutouts, str]:
    if table is not None and "filename" in table:
        return read_fits_cutouts(folder, filenames=table["filename"]), "filename"
    if table is not None and "objid" in table:
        stems = {_fits_name_stem(p.name) for p in folder.iterdir() if p.is_file()}
        names = [str(int(o)) for o in table["objid"]]
        if any(name in stems for name in names):
            return read_fits_cutouts(folder, filenames=names), "objid"
    return read_fits_cutouts(folder), "order"


def _same_file(a: Path, b) -> bool:
    try:
        return b is not None and os.path.samefile(a, b)
    except OSError:
        return False


def ingest(
    images,
    output,
    *,
    catalog=None,
    columns=None,
    layout="auto",
    chunk_size=1024,
    overwrite=False,
) -> Bunch:
    """Write an image cube or a folder of FITS cutouts, with its catalogue, to an archive.

    The archive is the HDF5 format of :func:`~skphotoz.data.open_archive` (the published
    one's keys), ready for the estimators and the ``skphotoz`` command line. Images are copied
    ``chunk_size`` galaxies at a time, so a memory-mapped ``.npy`` cube or a folder of
    cutouts larger than memory can be ingested. The archive is written under a temporary name
    and renamed when complete: a failure leaves no half-written archive.

    Parameters
    ----------
    images : str, path-like or ndarray
        A ``.npy``/``.npz`` cube (see :func:`read_cube`), a folder of per-galaxy FITS
        cutouts (see :func:`read_fits_cutouts`), or a 4-D array. Fluxes in nanomaggies, bands
        in ugriz order, all on one pixel grid with the galaxy centred.
    output : str or path-like
        The HDF5 archive to write.
    catalog : str, path-like or dict, optional
        One row per galaxy, in image order: a CSV or FITS table read with
        :func:`read_catalog`, or a dict of public column names to arrays. Without it, the
        ``labels`` of a ``.npz`` cube (field ``z`` the redshift, ``ebv`` the E(B-V)) are used
        if present. For a folder of cutouts, rows are matched to files by the catalogue's
        ``filename`` column if it has one; else by ``objid`` if the files are named by
        ObjID (``<objid>.fits``); else files are taken sorted by name.
    columns : dict, optional
        Column names of the catalogue that :func:`read_catalog` does not recognise, e.g.
        ``{"redshift": "Z_BEST"}``.
    layout : {"auto", "channels_last", "channels_first"}, default="auto"
        Axis order of a cube (see :func:`read_cube`); ignored for FITS cutouts.
    chunk_size : int, default=1024
        Galaxies read and written at a time, in [1, 65536]: bounds the memory used
        (1024 stamps of 5×107×107 float32 are 230 MB).
    overwrite : bool, default=False
        Replace ``output`` if it exists; by default an existing file is an error, so that no
        archive is lost to a typo.

    Returns
    -------
    summary : Bunch
        ``path``, ``n_samples``, ``n_bands``, ``stamp_size``, ``columns`` (the public names of
        the columns written), ``missing`` (per column, the galaxies whose value is unknown:
        NaN, or -1 for identifiers), ``layout`` (of the cube, or ``"fits"``), ``matched_by``
        (``"filename"``, ``"objid"``, ``"order"``, or None without a catalogue),
        ``n_nonfinite`` (galaxies with NaN or infinite pixels; they are written as they are:
        the estimators' ``nan_policy`` decides what happens to them) and ``nonfinite_rows``.

    Raises
    ------
    FileExistsError
        If ``output`` exists and ``overwrite`` is False.
    ValueError
        If the catalogue's number of rows differs from the number of images, cutouts are on
        different pixel grids, or the cube's layout cannot be told.
    """
    check_params(
        "ingest",
        {
            "images": [str, os.PathLike, np.ndarray],
            "output": [str, os.PathLike],
            "catalog": [str, os.PathLike, dict, None],
            "columns": [dict, None],
            "layout": [StrOptions(set(_LAYOUTS))],
            "chunk_size": [integer(1, MAX_CHUNK)],
            "overwrite": ["boolean"],
        },
        images=images,
        output=output,
        catalog=catalog,
        columns=columns,
        layout=layout,
        chunk_size=chunk_size,
        overwrite=overwrite,
    )
    output = Path(output)
    if output.is_dir():
        raise ValueError(f"output {str(output)!r} is a folder; give the archive's file name.")
    if not output.parent.is_dir():
        raise FileNotFoundError(f"the folder of output {str(output)!r} does not exist.")
    if output.exists() and not overwrite:
        raise FileExistsError(
            f"output {str(output)!r} exists; pass overwrite=True (--overwrite) to replace it."
        )
    for name, source in (("images", images), ("catalog", catalog)):
        if isinstance(source, str | os.PathLike) and _same_file(output, source):
            raise ValueError(f"output {str(output)!r} is the {name} file itself.")
    if columns is not None and catalog is None and not isinstance(images, str | os.PathLike):
        raise ValueError("columns names catalogue columns, but no catalog was given.")

    labels = None
    if isinstance(catalog, dict):
        if columns is not None:
            raise ValueError(
                "columns maps the names of a catalogue file; a dict catalog is already keyed "
                "by the public names, so leave columns out."
            )
        table = _catalog_from_mapping(catalog)
    elif catalog is not None:
        table = read_catalog(catalog, columns)
    else:
        table = None

    matched_by = None if table is None else "order"
    if isinstance(images, np.ndarray):
        source, layout = _channels_first(images, layout, "images")
    else:
        path = Path(images)
        if path.is_dir():
            source, matched_by = _match_cutouts(path, table)
            layout = "fits"
        elif path.is_file():
            cube, labels = _load_cube(path)
            source, layout = _channels_first(cube, layout, f"the cube in {str(path)!r}")
        else:
            raise FileNotFoundError(
                f"images {str(path)!r} does not exist; expected a .npy/.npz cube or a folder "
                "of FITS cutouts."
            )
    if table is None and labels is not None and labels.dtype.names:
        table = _recognise(
            list(labels.dtype.names),
            lambda names: {name: labels[name] for name in names},
            columns,
            SFD98_EXTINCTION_COEFFICIENTS,
            f"the labels of {str(images)!r}",
        )
        matched_by = "order"
    elif table is None and columns is not None:
        raise ValueError("columns names catalogue columns, but no catalog was given.")

    n, n_bands, size, _ = source.shape
    table = dict(table or {})
    for key, values in table.items():
        if len(values) != n:
            raise ValueError(
                f"the catalogue has {len(values)} rows ({key!r}) but there are {n} images; "
                "it needs one row per image, in image order."
            )
    if "extinction" in table and table["extinction"].shape[1:] != (n_bands,):
        raise ValueError(
            f"extinction has {table['extinction'].shape[1:]} values per galaxy but the images "
            f"have {n_bands} bands."
        )
    written = {key: values for key, values in table.items() if key in COLUMNS}

    partial = output.with_name(f".{output.name}.partial-{os.getpid()}")
    nonfinite = []
    try:
        with ArchiveWriter(partial, n, stamp_size=size, n_bands=n_bands) as writer:
            for start in range(0, n, chunk_size):
                stop = min(start + chunk_size, n)
                block = np.asarray(source[start:stop], dtype=np.float32)
                bad = ~np.isfinite(block).all(axis=(1, 2, 3))
                nonfinite.append(np.flatnonzero(bad) + start)
                writer.append(
                    images=block, **{key: values[start:stop] for key, values in written.items()}
                )
        os.replace(partial, output)
    finally:
        if partial.exists():
            partial.unlink()
    nonfinite_rows = np.concatenate(nonfinite) if nonfinite else np.empty(0, np.int64)
    missing = {}
    for key, values in written.items():
        unknown = values == -1 if key in _INT_COLUMNS else ~np.isfinite(values)
        missing[key] = int(np.count_nonzero(unknown.reshape(n, -1).any(axis=1)))
    return Bunch(
        path=str(output),
        n_samples=int(n),
        n_bands=int(n_bands),
        stamp_size=int(size),
        columns=[key for key in COLUMNS if key in written],
        missing=missing,
        layout=layout,
        matched_by=matched_by,
        n_nonfinite=int(nonfinite_rows.size),
        nonfinite_rows=nonfinite_rows,
    )
