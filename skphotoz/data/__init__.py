"""Galaxy image data: archive formats, lazy HDF5 arrays, readers of cubes, FITS cutouts and
catalogues (``ingest``), extinction and flux units."""

from ._archive import (
    ArchiveWriter,
    load_embeddings,
    load_npz_cube,
    open_archive,
    save_npz_cube,
    write_archive,
)
from ._catalog import read_catalog
from ._checksum import verify_archive
from ._cube import read_cube
from ._display import to_rgb
from ._fits import FITSCutouts, read_fits_cutouts
from ._ingest import ingest
from ._lazy import HDF5Images
from ._photometry import (
    BANDS,
    EXTINCTION_COEFFICIENTS,
    SFD98_EXTINCTION_COEFFICIENTS,
    deredden,
    extinction_from_ebv,
    mag_to_nanomaggies,
    nanomaggies_to_mag,
    redden,
)

__all__ = [
    "ArchiveWriter",
    "BANDS",
    "EXTINCTION_COEFFICIENTS",
    "FITSCutouts",
    "HDF5Images",
    "SFD98_EXTINCTION_COEFFICIENTS",
    "deredden",
    "extinction_from_ebv",
    "ingest",
    "load_embeddings",
    "load_npz_cube",
    "mag_to_nanomaggies",
    "nanomaggies_to_mag",
    "open_archive",
    "read_catalog",
    "read_cube",
    "read_fits_cutouts",
    "redden",
    "save_npz_cube",
    "to_rgb",
    "verify_archive",
    "write_archive",
]
