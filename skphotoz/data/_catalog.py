"""Catalogues in: :func:`read_catalog` reads a CSV or FITS table and recognises the usual
names of the per-galaxy columns (``z``, ``zErr``, ``objID``, ``ra``, ``dec``, ``E(B-V)``...),
refusing missing-value codes (SDSS writes -9999) where a measurement should be.

A FITS table needs astropy (``pip install skphotoz[fits]``); a CSV does not.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .._inputs import check_numeric, check_redshifts
from .._validation import validated
from ._archive import COLUMNS
from ._fits import astropy_fits, is_fits
from ._lazy import MIN_EXTINCTION
from ._photometry import (
    BANDS,
    EXTINCTION_COEFFICIENTS,
    MAX_EBV,
    MAX_EXTINCTION,
    MIN_EBV,
    SFD98_EXTINCTION_COEFFICIENTS,
    extinction_from_ebv,
)

__all__ = ["read_catalog"]

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
INT_COLUMNS = {"objid", "specobjid"}
_MISSING = {"", "nan", "na", "n/a", "null", "none", "--"}
_EBV_COEFFICIENTS = {"sfd98": SFD98_EXTINCTION_COEFFICIENTS, "sf11": EXTINCTION_COEFFICIENTS}


def _content_lines(f, where: dict):
    """The lines of ``f`` that hold data (not blank, not ``#`` comments), recording the
    number of the last one read in ``where["line"]`` (for errors)."""
    for number, line in enumerate(f, start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            where["line"] = number
            yield line


def _csv_error(path: Path, where: dict, error: csv.Error) -> ValueError:
    """The csv module's error (e.g. a field over its 131,072-character limit) naming the file
    and the line."""
    return ValueError(
        f"catalogue {str(path)!r} could not be read as delimited text at line "
        f"{where.get('line', 1)}: {error}. A catalogue holds one galaxy per line, with short "
        f"fields; check that the file is the catalogue (not an image or a binary file)."
    )


def _read_csv(path: Path) -> tuple[list[str], callable]:
    """Header and a reader of named columns (as string arrays) of a delimited text file."""
    where = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        lines = _content_lines(f, where)
        header_line = next(lines, None)
        if header_line is None:
            raise ValueError(f"catalogue {str(path)!r} is empty: expected a header row.")
        try:
            dialect = csv.Sniffer().sniff(header_line, delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel
        try:
            header = [name.strip() for name in next(csv.reader([header_line], dialect))]
        except csv.Error as error:
            raise _csv_error(path, where, error) from None
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if repeated:  # columns= could not say which one is meant
        raise ValueError(
            f"catalogue {str(path)!r} has several columns named {repeated}; rename them so "
            f"that each column name is unique."
        )

    def columns(names: list[str]) -> dict[str, np.ndarray]:
        index = [header.index(name) for name in names]
        values = [[] for _ in names]
        where = {}
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = csv.reader(_content_lines(f, where), dialect)
            try:
                next(rows)
                for number, row in enumerate(rows, start=2):
                    if len(row) != len(header):
                        raise ValueError(
                            f"catalogue {str(path)!r}: data row {number - 1} has {len(row)} "
                            f"fields but the header has {len(header)}."
                        )
                    for out, i in zip(values, index, strict=True):
                        out.append(row[i].strip())
            except csv.Error as error:
                raise _csv_error(path, where, error) from None
        return {name: np.array(v, dtype=str) for name, v in zip(names, values, strict=True)}

    return header, columns


def _read_fits_table(path: Path) -> tuple[list[str], callable]:
    fits = astropy_fits()
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


#: The range of values a catalogue column can hold. Below it, a value is a missing-value code
#: (SDSS writes -9999), not a measurement: E(B-V) and extinction are positive (a dust map's
#: noise can dip slightly below 0); the redshift follows the package's rule
#: (:func:`skphotoz._inputs.check_redshifts`: 1 + z must be positive). Above it, no galaxy is
#: seen through the dust (E(B-V) = 10 is A_V = 31 mag; see ``MAX_EBV`` and ``MAX_EXTINCTION``
#: in :mod:`skphotoz.data._photometry`), and dereddening would refuse the value.
_RANGES = {"ebv": (MIN_EBV, MAX_EBV), "extinction": (MIN_EXTINCTION, MAX_EXTINCTION)}
#: Largest R_b = A_b / E(B-V) accepted in ``ebv_coefficients``: the ugriz values of every
#: published calibration lie within 1.2-5.2 (SFD98: 5.155 in u); with E(B-V) <= MAX_EBV it
#: keeps the extinction within MAX_EXTINCTION.
MAX_EBV_COEFFICIENT = MAX_EXTINCTION / MAX_EBV
_UNKNOWN_ADVICE = "Leave those cells empty (or NaN) to mark the value unknown."


def _check_range(values: np.ndarray, name: str, source, low: float, high: float) -> None:
    """Every value of the column within [low, high] (NaN, an unknown value, passes): the
    error names the column, how many rows break the rule and the first of them."""
    per_row = values.reshape(len(values), -1)
    with np.errstate(invalid="ignore"):
        below, above = per_row < low, per_row > high
    for bad, rule in ((below, f">= {low:g}"), (above, f"<= {high:g}")):
        rows = np.flatnonzero(bad.any(axis=1))
        if rows.size:
            row = int(rows[0])
            value = float(per_row[row][bad[row]][0])
            raise ValueError(
                f"catalogue column {source!r} ({name}) must be {rule}; {rows.size} row(s) are "
                f"not, e.g. row {row} is {value:g}: a missing-value code? {_UNKNOWN_ADVICE}"
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


def recognise(header, read, columns, ebv_coefficients, source: str) -> dict[str, np.ndarray]:
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
        elif key in INT_COLUMNS:
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
    if "redshift" in out:
        check_redshifts(
            out["redshift"],
            f"catalogue column {chosen['redshift']!r} (redshift)",
            allow_nan=True,
            advice=_UNKNOWN_ADVICE,
        )
    for key, (low, high) in _RANGES.items():
        if key in out:
            # (a per-band ``ebv`` vector column is read as the extinction)
            _check_range(out[key], key, chosen.get(key, chosen.get("ebv")), low, high)
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
    try:
        check_numeric(np.asarray(value), "ebv_coefficients")
        coefficients = np.asarray(value, dtype=np.float64)
    except TypeError:
        coefficients = None
    if (
        coefficients is None
        or coefficients.shape != (len(BANDS),)
        or not np.isfinite(coefficients).all()
        or not ((coefficients > 0) & (coefficients <= MAX_EBV_COEFFICIENT)).all()
    ):
        raise ValueError(
            f"ebv_coefficients must hold {len(BANDS)} finite values (ugriz) in (0, "
            f"{MAX_EBV_COEFFICIENT:g}]: R_b = A_b / E(B-V) is positive (dust dims every band) "
            f"and at most 5.2 for ugriz in published calibrations; got {value!r}."
        )
    return coefficients


@validated({"columns": [dict, None]})
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
        source agree; ``"sf11"`` the recalibration of Schlafly & Finkbeiner (2011). Given
        as numbers, each must lie in (0, 6]: R_b is positive and at most 5.2 for ugriz, and
        the bound keeps the extinction of E(B-V) <= 10 within 60 mag.

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

    Values that no measurement takes are refused, naming the column, the row and the value:
    a redshift <= -1, E(B-V) outside [-0.05, 10] and extinction outside [-0.25, 60] mag
    (missing-value codes such as -9999, or no galaxy seen through the dust). An empty or NaN
    cell is an unknown value and passes.
    """
    coefficients = _ebv_coefficients(ebv_coefficients)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no catalogue file at {str(path)!r}.")
    try:
        header, read = _read_fits_table(path) if is_fits(path) else _read_csv(path)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"catalogue {str(path)!r} is neither UTF-8 text (CSV) nor a FITS table: it holds "
            f"the byte {exc.object[exc.start : exc.start + 1]!r}, which is not UTF-8. Save a CSV "
            f"as UTF-8 (e.g. from Latin-1: iconv -f latin1 -t utf-8)."
        ) from None
    except (OSError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(f"could not read the catalogue {str(path)!r}: {exc}") from exc
    return recognise(header, read, columns, coefficients, f"catalogue {str(path)!r}")
