"""The real SDSS Main Galaxy Sample catalogue shipped with skphotoz, and the derived tables.

All tables are derived at build time by ``scripts/build_sdss_tables.py`` from the ``kcorrect``
package (BSD-3, Blanton & Roweis 2007, AJ 133, 734) and stored as gzipped CSV.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from importlib import resources

import numpy as np
from sklearn.utils import Bunch

from ..data._photometry import BANDS, SFD98_EXTINCTION_COEFFICIENTS

_DATA = resources.files("skphotoz.datasets") / "data"

_CATALOG_DESCR = """\
SDSS Main Galaxy Sample catalogue (10,000 galaxies)
---------------------------------------------------

Real photometry and spectroscopic redshifts of 10,000 galaxies of the SDSS Main Galaxy Sample
(Strauss et al. 2002, AJ 124, 1810), as shipped by the ``kcorrect`` package in
``kcorrect/data/test/gst_tests_small.fits`` (kcorrect: BSD-3-Clause, M. R. Blanton;
Blanton & Roweis 2007, AJ 133, 734). No images are included.

Arrays (n = 10,000; bands in the order u, g, r, i, z):

- ``ra``, ``dec`` : (n,) degrees, J2000.
- ``redshift`` : (n,) spectroscopic redshift (median 0.099).
- ``modelflux``, ``modelflux_ivar`` : (n, 5) model fluxes in nanomaggies and their inverse
  variances (nanomaggies^-2), not corrected for extinction.
- ``petroflux``, ``petroflux_ivar`` : (n, 5) Petrosian fluxes, same units.
- ``extinction`` : (n, 5) Galactic extinction in magnitudes (SFD98 with the SDSS archive's
  coefficients R = 5.155, 3.793, 2.751, 2.086, 1.479).
- ``ebv`` : (n,) E(B-V) = extinction_r / 2.751.
- ``band_names`` : ("u", "g", "r", "i", "z").

Dereddened fluxes are ``flux * 10**(0.4 * extinction)``; AB magnitudes are
``22.5 - 2.5 log10(flux)`` (the small SDSS-to-AB offsets, at most 0.04 mag in u, are ignored).
"""


def _read_csv_gz(name: str) -> dict[str, np.ndarray]:
    """Read one of the shipped ``.csv.gz`` tables into a dict of float64 columns."""
    # (gzip does not close a file object it is given: both are closed here)
    with _DATA.joinpath(name).open("rb") as raw, gzip.open(raw, "rt") as f:
        header = f.readline().strip().split(",")
        values = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    return {name: values[:, i] for i, name in enumerate(header)}


def _stack_bands(table: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    return np.stack([table[f"{prefix}_{band}"] for band in BANDS], axis=1)


@lru_cache(maxsize=1)
def catalog_arrays() -> dict[str, np.ndarray]:
    table = _read_csv_gz("sdss_catalog.csv.gz")
    arrays = {"ra": table["ra"], "dec": table["dec"], "redshift": table["z"]}
    for key in ("modelflux", "modelflux_ivar", "petroflux", "petroflux_ivar", "extinction"):
        arrays[key] = _stack_bands(table, key)
    arrays["ebv"] = arrays["extinction"][:, 2] / SFD98_EXTINCTION_COEFFICIENTS[2]
    for value in arrays.values():
        value.setflags(write=False)
    return arrays


def load_sdss_catalog() -> Bunch:
    """Load the real 10,000-galaxy SDSS Main Galaxy Sample catalogue.

    Photometry (model and Petrosian fluxes in nanomaggies, with inverse variances), Galactic
    extinction and spectroscopic redshifts of real SDSS galaxies, from the test data of the
    ``kcorrect`` package (BSD-3; Blanton & Roweis 2007). It anchors the simulator
    :func:`make_sdss_galaxies` and is the reference for photometry-only photo-z.

    Returns
    -------
    catalog : :class:`~sklearn.utils.Bunch`
        With arrays ``ra``, ``dec``, ``redshift`` (n,), ``modelflux``, ``modelflux_ivar``,
        ``petroflux``, ``petroflux_ivar``, ``extinction`` (n, 5), ``ebv`` (n,), and
        ``band_names`` and ``DESCR``. The arrays are copies; edit them freely.

    Examples
    --------
    >>> from skphotoz.datasets import load_sdss_catalog
    >>> cat = load_sdss_catalog()
    >>> cat.modelflux.shape
    (10000, 5)
    >>> round(float(np.median(cat.redshift)), 3)
    0.099
    """
    arrays = {key: value.copy() for key, value in catalog_arrays().items()}
    return Bunch(**arrays, band_names=BANDS, DESCR=_CATALOG_DESCR)


@lru_cache(maxsize=1)
def template_fluxes() -> tuple[np.ndarray, np.ndarray]:
    """Redshift grid (n_z,) and template AB maggies ``(n_z, n_bands, n_templates)``."""
    table = _read_csv_gz("sdss_template_fluxes.csv.gz")
    n_templates = (len(table) - 1) // len(BANDS)
    fluxes = np.stack(
        [np.stack([table[f"t{t}_{b}"] for t in range(n_templates)], axis=1) for b in BANDS],
        axis=1,
    )
    return table["z"], fluxes


@lru_cache(maxsize=1)
def population() -> dict[str, np.ndarray]:
    """Per real galaxy: catalogue row, template coefficients at 10 pc, Petrosian offset, and
    the redshift up to which it passes the Main Galaxy Sample cut."""
    table = _read_csv_gz("sdss_population.csv.gz")
    n_templates = sum(key.startswith("c") and key[1:].isdigit() for key in table)
    return {
        "catalog_row": table["catalog_row"].astype(np.int64),
        "redshift": table["z"],
        "petro_minus_model_r": table["petro_minus_model_r"],
        "z_max": table["z_max"],
        "coeffs": np.stack([table[f"c{t}"] for t in range(n_templates)], axis=1),
    }


@lru_cache(maxsize=1)
def sersic_mixtures() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Mixture-of-Gaussians (flux fractions, variances in r_e^2) of the n=4 and n=1 profiles."""
    mog = json.loads(_DATA.joinpath("sersic_mog.json").read_text())
    return {
        name: (np.asarray(mog[name]["amplitude"]), np.asarray(mog[name]["variance"]))
        for name in ("de_vaucouleurs", "exponential")
    }
