"""Derive the compact tables behind ``skphotoz.datasets`` from the ``kcorrect`` package.

Run once at build time (needs ``pip install kcorrect astropy``; the simulator itself needs
only numpy)::

    python scripts/build_sdss_tables.py

Writes to ``skphotoz/datasets/data/``:

``sdss_catalog.csv.gz``
    The 10,000 SDSS Main Galaxy Sample galaxies of ``kcorrect/data/test/gst_tests_small.fits``
    (RA, DEC, MODELFLUX, PETROFLUX with inverse variances, EXTINCTION, Z).
``sdss_template_fluxes.csv.gz``
    AB fluxes (maggies) of the five kcorrect NMF templates (``kcorrect-default-v4``) through
    the SDSS filter responses ``sdss_[ugriz]0`` on a fine redshift grid.
``sdss_population.csv.gz``
    Per catalogue galaxy: NNLS template coefficients fitted to its dereddened model fluxes
    at its spectroscopic redshift, Petrosian minus model r magnitude, and the redshift window
    in which it would pass the Main Galaxy Sample cut Petrosian r < 17.77.
``sersic_mog.json``
    Mixture-of-Gaussians approximations of the truncated de Vaucouleurs and exponential
    profiles (unit half-light radius, unit flux), fitted here.

kcorrect is BSD-3 licensed (Blanton & Roweis 2007, AJ 133, 734).
"""

from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path

import kcorrect
import kcorrect.kcorrect
import numpy as np
from astropy.io import fits
from scipy.optimize import least_squares, nnls

OUT = Path(__file__).resolve().parents[1] / "skphotoz" / "datasets" / "data"
KCORRECT_DATA = Path(os.path.dirname(kcorrect.__file__)) / "data"
BANDS = "ugriz"

#: Redshift grid of the template flux table (observed-frame, kcorrect "shift").
Z_GRID = np.round(np.arange(0.0, 0.7005, 0.001), 4)
#: Main Galaxy Sample flux limit, dereddened Petrosian r (Strauss et al. 2002, AJ 124, 1810).
PETRO_R_LIMIT = 17.77
#: Lowest redshift of the real catalogue (0.0101); simulated galaxies are not placed closer.
Z_MIN = 0.01
#: Magnitude error floors added in quadrature before fitting (SDSS calibration, ~1-3 per cent).
MAG_FLOOR = np.array([0.05, 0.02, 0.02, 0.02, 0.03])


def _write_csv_gz(path: Path, header: list[str], columns: list[np.ndarray], fmt: list[str]):
    # mtime=0 keeps the gzip header, and so the file, identical across rebuilds.
    with (
        gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as raw,
        io.TextIOWrapper(raw, encoding="ascii") as f,
    ):
        f.write(",".join(header) + "\n")
        for row in zip(*columns, strict=True):
            f.write(",".join(fm % v for fm, v in zip(fmt, row, strict=True)) + "\n")


def build_catalog() -> dict[str, np.ndarray]:
    table = fits.open(KCORRECT_DATA / "test" / "gst_tests_small.fits")[1].data
    cat = {
        "ra": np.asarray(table["RA"], np.float64),
        "dec": np.asarray(table["DEC"], np.float64),
        "redshift": np.asarray(table["Z"], np.float64),
    }
    header = ["ra", "dec", "z"]
    columns = [cat["ra"], cat["dec"], cat["redshift"]]
    fmt = ["%.6f", "%.6f", "%.6g"]
    for key in ("MODELFLUX", "MODELFLUX_IVAR", "PETROFLUX", "PETROFLUX_IVAR", "EXTINCTION"):
        values = np.asarray(table[key], np.float64)
        cat[key.lower()] = values
        for b, band in enumerate(BANDS):
            header.append(f"{key.lower()}_{band}")
            columns.append(values[:, b])
            fmt.append("%.4f" if key == "EXTINCTION" else "%.5g")
    _write_csv_gz(OUT / "sdss_catalog.csv.gz", header, columns, fmt)
    return cat


def build_templates() -> kcorrect.kcorrect.KcorrectSDSS:
    kc = kcorrect.kcorrect.KcorrectSDSS(redshift_range=[0.0, 0.75], nredshift=751)
    amatrix = kc.Amatrix(Z_GRID)  # (n_z, n_bands, n_templates), maggies per unit coefficient
    header = ["z"] + [f"t{t}_{b}" for t in range(amatrix.shape[2]) for b in BANDS]
    columns = [Z_GRID] + [amatrix[:, b, t] for t in range(amatrix.shape[2]) for b in range(5)]
    _write_csv_gz(OUT / "sdss_template_fluxes.csv.gz", header, columns, ["%.3f"] + ["%.6e"] * 25)
    return kc


def _luminosity_distance_mpc(z: np.ndarray) -> np.ndarray:
    # Flat LCDM, H0 = 70 km/s/Mpc, Om = 0.3 (the concordance cosmology), trapezoid on a fine grid.
    grid = np.linspace(0.0, 1.0, 20001)
    inv_e = 1.0 / np.sqrt(0.3 * (1 + grid) ** 3 + 0.7)
    dc = np.concatenate([[0.0], np.cumsum(0.5 * (inv_e[1:] + inv_e[:-1]) * np.diff(grid))])
    return (1 + z) * np.interp(z, grid, dc) * 299792.458 / 70.0


def build_population(cat: dict[str, np.ndarray], kc) -> None:
    z = cat["redshift"]
    dered = 10.0 ** (0.4 * cat["extinction"])
    maggies = cat["modelflux"] * 1e-9 * dered
    ivar = cat["modelflux_ivar"] * 1e18 / dered**2
    # Add calibration error floors in quadrature.
    sigma_floor = np.abs(maggies) * MAG_FLOOR * np.log(10) / 2.5
    ivar = np.where(ivar > 0, 1.0 / (1.0 / np.maximum(ivar, 1e-30) + sigma_floor**2), 0.0)
    coeffs = kc.fit_coeffs(redshift=z.astype(np.float32), maggies=maggies, ivar=ivar)
    coeffs = np.asarray(coeffs, np.float64)
    amatrix = kc.Amatrix(Z_GRID)
    fit_maggies = np.einsum("nbt,nt->nb", kc.Amatrix(z.astype(np.float32)), coeffs)
    fit_r = -2.5 * np.log10(fit_maggies[:, 2])
    petroflux_r = np.clip(cat["petroflux"][:, 2], 1e-3, None)
    petro_r = 22.5 - 2.5 * np.log10(petroflux_r) - cat["extinction"][:, 2]
    # Petrosian minus template-model r: the light a Petrosian aperture misses (profile-dependent).
    petro_offset = petro_r - fit_r
    # Petrosian r of the galaxy moved to every grid redshift: coefficients scale as D_L^-2.
    dl = _luminosity_distance_mpc(z)
    dl_grid = _luminosity_distance_mpc(np.maximum(Z_GRID, 1e-4))
    flux_r = np.einsum("gt,nt->ng", amatrix[:, 2, :], coeffs) * (dl[:, None] / dl_grid) ** 2
    petro_r_grid = -2.5 * np.log10(flux_r) + petro_offset[:, None]
    z_max = np.array(
        [
            Z_GRID[np.nonzero((Z_GRID > 0) & (row <= PETRO_R_LIMIT))[0].max()]
            if np.any(row <= PETRO_R_LIMIT)
            else 0.0
            for row in petro_r_grid
        ]
    )
    keep = (
        (petro_r <= PETRO_R_LIMIT)
        & np.all(coeffs >= 0, axis=1)
        & (coeffs.sum(axis=1) > 0)
        & (z_max > np.maximum(z, Z_MIN))
    )
    # Coefficients normalised to the galaxy at D_L = 10 pc (absolute scale): maggies at z are
    # A(z) @ coeffs_10pc * (10 pc / D_L(z))**2.
    coeffs_10pc = coeffs * (dl[:, None] * 1e5) ** 2
    header = ["catalog_row", "z", "petro_minus_model_r", "z_max"]
    header += [f"c{t}" for t in range(coeffs.shape[1])]
    columns = [np.nonzero(keep)[0], z[keep], petro_offset[keep], z_max[keep]]
    columns += [coeffs_10pc[keep, t] for t in range(coeffs.shape[1])]
    _write_csv_gz(
        OUT / "sdss_population.csv.gz",
        header,
        columns,
        ["%d", "%.5f", "%.4f", "%.3f"] + ["%.5e"] * coeffs.shape[1],
    )
    chi = (fit_maggies - maggies) * np.sqrt(ivar)
    print(
        f"population: kept {keep.sum()} of {keep.size}; median |chi| per band",
        np.median(np.abs(chi), axis=0),
    )


def _sersic_b(n: float) -> float:
    # Ciotti & Bertin (1999) asymptotic expansion of b_n.
    return 2 * n - 1 / 3 + 4 / (405 * n) + 46 / (25515 * n**2)


def _truncated_sersic(r: np.ndarray, n: float, r_in: float, r_out: float) -> np.ndarray:
    # SDSS-style smooth truncation between r_in and r_out half-light radii
    # (Stoughton et al. 2002 photo pipeline: deV 7-8 r_e, exp 3-4 r_e).
    profile = np.exp(-_sersic_b(n) * (r ** (1 / n) - 1))
    taper = np.clip((r_out - r) / (r_out - r_in), 0, 1)
    return profile * np.where(r < r_in, 1.0, (1 - (1 - taper) ** 2) ** 2)


def fit_mog(n: float, n_components: int, r_in: float, r_out: float) -> dict[str, list[float]]:
    """Fit circular Gaussians (flux a_j, variance v_j) to a truncated Sersic profile.

    Minimises the relative error of the surface brightness, weighted by the square root of the
    flux per logarithmic radius (r^2 I), from 1e-4 r_e to just inside the truncation.
    """
    r = np.geomspace(1e-4, r_in + 0.9 * (r_out - r_in), 800)
    target = _truncated_sersic(r, n, r_in, r_out)
    weight = np.sqrt(r**2 * target / (r**2 * target).max() + 1e-4) / target

    def design(var):
        return np.exp(-(r[:, None] ** 2) / (2 * var)) / (2 * np.pi * var)

    def residual(params):
        model = design(np.exp(params[n_components:])) @ np.exp(params[:n_components])
        return (model - target) * weight

    # Start from non-negative least squares on log-spaced variances.
    var0 = np.geomspace(1e-8 if n > 2 else 1e-4, r_out**2 / 3, n_components)
    amp0, _ = nnls(design(var0) * weight[:, None], target * weight)
    amp0 = np.maximum(amp0, 1e-6 * amp0.max())
    fit = least_squares(residual, np.log(np.concatenate([amp0, var0])), max_nfev=50000)
    amp = np.exp(fit.x[:n_components])
    var = np.exp(fit.x[n_components:])
    rel_err = np.abs(design(var) @ amp / target - 1)
    inner = (r > 0.01) & (r < 1.0)
    # Unit flux, and unit half-light radius of the mixture itself.
    amp /= amp.sum()
    radii = np.geomspace(1e-3, 10, 20001)
    enclosed = (amp * (1 - np.exp(-(radii[:, None] ** 2) / (2 * var)))).sum(axis=1)
    r_half = np.interp(0.5, enclosed, radii)
    var /= r_half**2
    print(
        f"Sersic n={n}: {n_components} Gaussians, max relative error {rel_err[inner].max():.4f} "
        f"in 0.01-1 r_e; half-light radius of the truncated profile {r_half:.4f} r_e"
    )
    order = np.argsort(var)
    return {"amplitude": amp[order].tolist(), "variance": var[order].tolist()}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    cat = build_catalog()
    kc = build_templates()
    build_population(cat, kc)
    mog = {
        "source": "fitted by scripts/build_sdss_tables.py to truncated Sersic profiles",
        "de_vaucouleurs": fit_mog(4.0, 10, 7.0, 8.0),
        "exponential": fit_mog(1.0, 8, 3.0, 4.0),
    }
    (OUT / "sersic_mog.json").write_text(json.dumps(mog, indent=1) + "\n")
    for path in sorted(OUT.iterdir()):
        print(f"{path.name}: {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
