"""Datasets: the SDSS galaxy simulator and the real SDSS catalogue it is anchored on."""

from ._catalog import load_sdss_catalog
from ._simulator import make_sdss_galaxies, write_sdss_galaxies

__all__ = ["load_sdss_catalog", "make_sdss_galaxies", "write_sdss_galaxies"]
