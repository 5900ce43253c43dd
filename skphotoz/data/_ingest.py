"""From the data an astronomer has to an skphotoz archive: image cubes, FITS cutouts and
catalogues in, one HDF5 archive out.

- :func:`~skphotoz.data.read_catalog` (``_catalog``) reads a CSV or FITS table and
  recognises the usual names of the per-galaxy columns (``z``, ``zErr``, ``objID``, ``ra``,
  ``dec``, ``E(B-V)``...);
- :func:`~skphotoz.data.read_cube` (``_cube``) reads a ``.npy``/``.npz`` image cube,
  channels-last (n, H, W, bands) as in earlier CNN photo-z work or channels-first
  (n, bands, H, W), without loading a ``.npy``;
- :func:`~skphotoz.data.read_fits_cutouts` (``_fits``) reads a folder of per-galaxy FITS
  cutouts on demand;
- :func:`ingest` (here) writes any of these with its catalogue to the HDF5 archive that
  :func:`~skphotoz.data.open_archive` and the estimators read, a chunk at a time.

FITS support needs astropy (``pip install skphotoz[fits]``); nothing else here does.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from .._validation import StrOptions, integer, validated
from ._archive import COLUMNS, MAX_CHUNK, ArchiveWriter
from ._catalog import INT_COLUMNS, read_catalog, recognise
from ._cube import LAYOUTS, channels_first, load_cube
from ._fits import FITSCutouts, fits_name_stem, read_fits_cutouts
from ._photometry import SFD98_EXTINCTION_COEFFICIENTS

__all__ = ["ingest"]


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
        stems = {fits_name_stem(p.name) for p in folder.iterdir() if p.is_file()}
        names = [str(int(o)) for o in table["objid"]]
        if any(name in stems for name in names):
            return read_fits_cutouts(folder, filenames=names), "objid"
    return read_fits_cutouts(folder), "order"


def _same_file(a: Path, b) -> bool:
    try:
        return b is not None and os.path.samefile(a, b)
    except OSError:
        return False


@validated(
    {
        "images": [str, os.PathLike, np.ndarray],
        "output": [str, os.PathLike],
        "catalog": [str, os.PathLike, dict, None],
        "columns": [dict, None],
        "layout": [StrOptions(set(LAYOUTS))],
        "chunk_size": [integer(1, MAX_CHUNK)],
        "overwrite": ["boolean"],
    }
)
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
        source, layout = channels_first(images, layout, "images")
    else:
        path = Path(images)
        if path.is_dir():
            source, matched_by = _match_cutouts(path, table)
            layout = "fits"
        elif path.is_file():
            cube, labels = load_cube(path)
            source, layout = channels_first(cube, layout, f"the cube in {str(path)!r}")
        else:
            raise FileNotFoundError(
                f"images {str(path)!r} does not exist; expected a .npy/.npz cube or a folder "
                "of FITS cutouts."
            )
    if table is None and labels is not None and labels.dtype.names:
        table = recognise(
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
        unknown = values == -1 if key in INT_COLUMNS else ~np.isfinite(values)
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
