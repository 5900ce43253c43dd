"""Simulated SDSS ugriz galaxy cutouts anchored on the real Main Galaxy Sample.

How a galaxy is made (details and validation in ``docs/experiments/simulator.md``):

1. *Population.* Draw a real SDSS galaxy; its kcorrect NMF template coefficients (fitted to its
   dereddened model fluxes, Blanton & Roweis 2007) are its SED and luminosity. Place it at a new
   redshift drawn uniformly in comoving volume between z = 0.01 and the redshift at which it
   would fall out of the Main Galaxy Sample (Petrosian r = 17.77), at a fraction of that
   comoving volume (V/V_max) borrowed from a real galaxy of similar luminosity: the real joint
   distribution of redshift, magnitude and colour is kept while every galaxy moves.
2. *Photometry.* Observed AB fluxes are the template fluxes through the SDSS filters at the new
   redshift (k-corrections included) scaled by the luminosity distance (flat LCDM, H0 = 70,
   Om = 0.3).
3. *Structure.* A de Vaucouleurs bulge and an exponential disk. The bulge fraction depends on
   the rest-frame colour; the bulge takes the reddest templates of the SED, the disk the rest,
   so the two components differ in colour while the total is the galaxy's SED. Sizes follow
   the SDSS size-luminosity relations of Shen et al. (2003), converted to angles with the
   angular-diameter distance, so (1+z)^4 surface-brightness dimming follows.
4. *Instrument.* 0.396" pixels; per-band double-Gaussian PSF with varying seeing; Galactic
   extinction with E(B-V) of a real SDSS sight line; sky and Poisson noise at SDSS depth.

Profiles are mixtures of Gaussians (fitted at build time to truncated Sersic profiles), so
the PSF-convolved, pixel-integrated image has an analytic Fourier transform: no sub-pixel
sampling error at steep n=4 centres, and one inverse FFT per band.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from functools import lru_cache

import numpy as np
import scipy.fft
from sklearn.utils import Bunch

from .._validation import finite, integer, validated
from ..data._photometry import (
    BANDS,
    EXTINCTION_COEFFICIENTS,
    SFD98_EXTINCTION_COEFFICIENTS,
    extinction_from_ebv,
    mag_to_nanomaggies,
    redden,
)
from ._catalog import catalog_arrays, population, sersic_mixtures, template_fluxes

#: SDSS pixel scale in arcsec (Gunn et al. 1998).
PIXEL_SCALE = 0.396
#: Flat LCDM (concordance cosmology): H0 in km/s/Mpc and Omega_matter.
H0, OMEGA_M = 70.0, 0.3
_C_KMS = 299792.458
#: Main Galaxy Sample limit, dereddened Petrosian r (Strauss et al. 2002).
PETRO_R_LIMIT = 17.77
#: Nearest redshift of the population (the real catalogue's minimum is 0.0101).
Z_MIN = 0.01
#: SDSS 95%-completeness point-source limits, ugriz (SDSS DR7 documentation, Abazajian+ 2009).
COMPLETENESS_LIMITS = np.array([22.0, 22.2, 22.2, 21.3, 20.5])
#: Median PSF FWHM in r (arcsec) and the band ratios from seeing ~ wavelength^-0.2 at the
#: SDSS effective wavelengths 3551, 4686, 6166, 7480, 8932 A (Fukugita et al. 1996).
MEDIAN_FWHM_R = 1.4
FWHM_BAND_RATIO = (np.array([3551.0, 4686.0, 6166.0, 7480.0, 8932.0]) / 6166.0) ** -0.2
#: Double-Gaussian PSF: a wing of twice the core width carrying this fraction of the flux
#: (a simple stand-in for the SDSS psField double Gaussian, Stoughton et al. 2002).
PSF_WING_FRACTION, PSF_WING_WIDTH = 0.1, 2.0
#: Photo-electrons per nanomaggy, ugriz: typical SDSS gains (1.6, 3.9, 4.7, 5.2, 4.8 e-/DN)
#: divided by typical DR8 nanomaggies per DN (0.010, 0.0039, 0.0048, 0.0064, 0.030); approximate.
ELECTRONS_PER_NANOMAGGY = np.array([160.0, 1000.0, 980.0, 810.0, 160.0])
#: Signal-to-noise of a point source at the completeness limit that sets the sky noise.
LIMIT_SNR = 5.0
#: Shen et al. (2003, MNRAS 343, 978), r-band Petrosian half-light radius in kpc vs M_r:
#: late types log R = -0.4 alpha M + (beta - alpha) log(1 + 10^(-0.4 (M - M0))) + gamma;
#: early types log R = -0.4 a M + b; scatter sigma_lnR = s2 + (s1 - s2) / (1 + 10^(-0.8 (M - M0))).
SHEN_LATE = {"alpha": 0.21, "beta": 0.53, "gamma": -1.31, "m0": -20.52, "s1": 0.48, "s2": 0.25}
SHEN_EARLY = {"a": 0.65, "b": -5.06, "m0": -20.52, "s1": 0.45, "s2": 0.27}
#: Intrinsic disk thickness (minimum axis ratio) for random inclinations (e.g. Padilla &
#: Strauss 2008 find 0.2 for SDSS spirals).
DISK_THICKNESS = 0.2

#: Galaxies per random block: every block has its own seed, so results do not depend on how
#: a run is chunked.
_BLOCK = 64
_ARCSEC_PER_RAD = 206264.806


def _fwhm_per_core_sigma() -> float:
    """FWHM of the double-Gaussian PSF in units of its core sigma (solved by bisection)."""
    w, s = PSF_WING_FRACTION, PSF_WING_WIDTH

    def profile(r):
        return (1 - w) * np.exp(-0.5 * r**2) + w / s**2 * np.exp(-0.5 * (r / s) ** 2)

    half = 0.5 * profile(0.0)
    lo, hi = 0.0, 10.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if profile(mid) > half else (lo, mid)
    return 2 * lo


_FWHM_PER_SIGMA = _fwhm_per_core_sigma()


def _sky_sigma() -> np.ndarray:
    """Per-pixel sky noise (nanomaggies) giving S/N = 5 at the completeness limits.

    Optimal PSF photometry of a point source in sky-limited noise has
    S/N = F / (sigma_pix sqrt(N_eff)) with N_eff = 1 / sum(psf^2) pixels; for the median seeing.
    """
    core = MEDIAN_FWHM_R * FWHM_BAND_RATIO / _FWHM_PER_SIGMA / PIXEL_SCALE
    w, s = PSF_WING_FRACTION, PSF_WING_WIDTH
    # sum(psf^2) of a two-Gaussian mixture with weights (1-w, w) and sigmas (c, s c).
    sum_sq = (
        (1 - w) ** 2 / (4 * np.pi * core**2)
        + w**2 / (4 * np.pi * (s * core) ** 2)
        + 2 * w * (1 - w) / (2 * np.pi * core**2 * (1 + s**2))
    )
    return mag_to_nanomaggies(COMPLETENESS_LIMITS) * np.sqrt(sum_sq) / LIMIT_SNR


SKY_SIGMA = _sky_sigma()


@lru_cache(maxsize=1)
def _distance_table() -> tuple[np.ndarray, np.ndarray]:
    """Redshift grid and comoving distance (Mpc) in flat LCDM, by the trapezoid rule."""
    z = np.linspace(0.0, 1.0, 10001)
    inv_e = 1.0 / np.sqrt(OMEGA_M * (1 + z) ** 3 + 1 - OMEGA_M)
    steps = 0.5 * (inv_e[1:] + inv_e[:-1]) * np.diff(z)
    return z, np.concatenate([[0.0], np.cumsum(steps)]) * _C_KMS / H0


def comoving_distance(z) -> np.ndarray:
    """Line-of-sight comoving distance in Mpc (flat LCDM, H0 = 70, Om = 0.3), 0 <= z <= 1."""
    grid, dc = _distance_table()
    return np.interp(z, grid, dc)


def _template_maggies(z: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """AB maggies (n, 5) of SEDs ``coeffs`` (n, n_templates) observed at redshifts ``z``."""
    grid, table = template_fluxes()
    pos = np.clip((z - grid[0]) / (grid[1] - grid[0]), 0, len(grid) - 1.000001)
    i = pos.astype(int)
    frac = (pos - i)[:, None, None]
    a = table[i] * (1 - frac) + table[i + 1] * frac
    return np.einsum("nbt,nt->nb", a, coeffs)


def _shen_radius_kpc(abs_mag_r, early, rng) -> np.ndarray:
    """Draw half-light radii (kpc) from the Shen et al. (2003) size-luminosity relations."""
    m = abs_mag_r
    lt, et = SHEN_LATE, SHEN_EARLY
    log_late = (
        -0.4 * lt["alpha"] * m
        + (lt["beta"] - lt["alpha"]) * np.log10(1 + 10 ** (-0.4 * (m - lt["m0"])))
        + lt["gamma"]
    )
    log_early = -0.4 * et["a"] * m + et["b"]
    p = np.where(early, 1, 0)
    s1 = np.where(p, et["s1"], lt["s1"])
    s2 = np.where(p, et["s2"], lt["s2"])
    m0 = np.where(p, et["m0"], lt["m0"])
    sigma_ln = s2 + (s1 - s2) / (1 + 10 ** (-0.8 * (m - m0)))
    log_r = np.where(early, log_early, log_late)
    return 10**log_r * np.exp(sigma_ln * rng.standard_normal(m.shape))


def _split_bulge_disk(coeffs, rest_r, bulge_fraction) -> tuple[np.ndarray, np.ndarray]:
    """Give the bulge the reddest templates until it holds ``bulge_fraction`` of rest-frame r.

    Returns bulge and disk coefficients that sum to ``coeffs``; the bulge is redder than (or as
    red as) the disk because the templates are filled in order of their rest-frame g - r.
    """
    order = _template_red_order()
    light = coeffs[:, order] * rest_r[order]  # r-band light per template, reddest first
    target = bulge_fraction * light.sum(axis=1)
    before = np.cumsum(light, axis=1) - light
    taken = np.clip(target[:, None] - before, 0, light)
    share = np.divide(taken, light, out=np.zeros_like(light), where=light > 0)
    bulge = np.zeros_like(coeffs)
    bulge[:, order] = coeffs[:, order] * share
    return bulge, coeffs - bulge


@lru_cache(maxsize=1)
def _template_red_order() -> np.ndarray:
    _, table = template_fluxes()
    rest_gr = -2.5 * np.log10(table[0, 1] / table[0, 2])
    return np.argsort(-rest_gr)


def _composite_half_light(bulge_fraction, r_bulge, r_disk) -> np.ndarray:
    """Half-light radius of a circular bulge + disk mixture of given radii (bisection)."""
    amp_b, var_b = sersic_mixtures()["de_vaucouleurs"]
    amp_d, var_d = sersic_mixtures()["exponential"]
    lo = np.minimum(r_bulge, r_disk) * 0.5
    hi = np.maximum(r_bulge, r_disk) * 2.0
    bf = bulge_fraction[:, None]
    for _ in range(24):
        mid = 0.5 * (lo + hi)
        r2 = (mid**2)[:, None]
        enclosed = (bf * amp_b * (1 - np.exp(-r2 / (2 * var_b * r_bulge[:, None] ** 2)))).sum(
            axis=1
        ) + ((1 - bf) * amp_d * (1 - np.exp(-r2 / (2 * var_d * r_disk[:, None] ** 2)))).sum(axis=1)
        below = enclosed < 0.5
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


#: V/V_max is borrowed from one of the 2 x 200 real galaxies nearest in z_max (luminosity).
_VMAX_NEIGHBOURS = 200


@lru_cache(maxsize=1)
def _volume_fractions() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """V/V_max of the real galaxies (where in its accessible volume each one was observed),
    the population sorted by z_max, and each galaxy's rank in that order."""
    pop = population()
    v_lo = comoving_distance(Z_MIN) ** 3
    v = comoving_distance(pop["redshift"]) ** 3 - v_lo
    fractions = np.clip(v / (comoving_distance(pop["z_max"]) ** 3 - v_lo), 0, 1)
    order = np.argsort(pop["z_max"], kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return fractions, order, rank


def _draw_redshifts(rng: np.random.Generator, source: np.ndarray) -> np.ndarray:
    """New redshifts between Z_MIN and z_max of the real galaxies ``source``.

    A complete flux-limited sample without evolution would have V/V_max uniform (mean 1/2);
    the real catalogue's mean is 0.36 (incompleteness near the limit, evolution, structure)
    and depends on luminosity. So V/V_max is borrowed from a real galaxy of similar z_max.
    """
    grid, dc = _distance_table()
    fractions, order, rank = _volume_fractions()
    step = rng.integers(-_VMAX_NEIGHBOURS, _VMAX_NEIGHBOURS + 1, size=source.shape)
    donor = order[np.clip(rank[source] + step, 0, len(order) - 1)]
    z_max = population()["z_max"][source]
    v_lo = comoving_distance(Z_MIN) ** 3
    v = v_lo + fractions[donor] * (comoving_distance(z_max) ** 3 - v_lo)
    return np.interp(np.cbrt(v), dc, grid)


def _draw_block(rng: np.random.Generator, stamp_size: int) -> dict[str, np.ndarray]:
    """Draw the parameters of ``_BLOCK`` galaxies."""
    n = _BLOCK
    pop = population()
    cat = catalog_arrays()
    _, table = template_fluxes()
    source = rng.integers(len(pop["redshift"]), size=n)
    coeffs = pop["coeffs"][source]
    petro_offset = pop["petro_minus_model_r"][source]

    z = _draw_redshifts(rng, source)
    # Rejection keeps the Petrosian cut exact where k-corrections make r(z) non-monotonic.
    for _ in range(20):
        dl = comoving_distance(z) * (1 + z)
        flux = _template_maggies(z, coeffs) * (1e-5 / dl[:, None]) ** 2 * 1e9
        petro_r = 22.5 - 2.5 * np.log10(flux[:, 2]) + petro_offset
        bad = petro_r > PETRO_R_LIMIT
        if not bad.any():
            break
        z[bad] = _draw_redshifts(rng, source[bad])

    rest = table[0][None] * coeffs[:, None, :]  # rest-frame maggies at 10 pc per template
    rest_flux = rest.sum(axis=2)
    abs_mag_r = -2.5 * np.log10(rest_flux[:, 2])
    rest_gr = -2.5 * np.log10(rest_flux[:, 1] / rest_flux[:, 2])

    # Bulge-to-total (rest-frame r) rises from ~0.15 in the blue cloud to ~0.6 on the red
    # sequence (g - r ~ 0.75); a Beta distribution of concentration 8 around that mean.
    mean_bt = 0.15 + 0.45 / (1 + np.exp(-(rest_gr - 0.65) / 0.05))
    bulge_fraction = rng.beta(8 * mean_bt, 8 * (1 - mean_bt))
    bulge_coeffs, disk_coeffs = _split_bulge_disk(coeffs, table[0, 2], bulge_fraction)
    scale = (1e-5 / dl[:, None]) ** 2 * 1e9
    bulge_flux = _template_maggies(z, bulge_coeffs) * scale
    disk_flux = _template_maggies(z, disk_coeffs) * scale

    radius_kpc = _shen_radius_kpc(abs_mag_r, bulge_fraction > 0.5, rng)
    d_a = dl / (1 + z) ** 2
    radius_arcsec = radius_kpc / (d_a * 1e3) * _ARCSEC_PER_RAD
    # Bulge half-light radius a fraction of the disk's (log-normal around 0.5).
    size_ratio = np.exp(np.log(0.5) + 0.3 * rng.standard_normal(n))
    unit = _composite_half_light(bulge_fraction, size_ratio, np.ones(n))
    r_disk = radius_arcsec / unit
    r_bulge = r_disk * size_ratio

    cos_i = rng.random(n)
    q_disk = np.sqrt((1 - DISK_THICKNESS**2) * cos_i**2 + DISK_THICKNESS**2)
    q_bulge = rng.uniform(0.5, 1.0, n)
    position_angle = rng.uniform(0, 180, n)

    # Seeing: log-normal around 1.4" in r, limited to 0.9-2.2"; per-band scatter of 3 per cent.
    fwhm_r = np.clip(MEDIAN_FWHM_R * np.exp(0.15 * rng.standard_normal(n)), 0.9, 2.2)
    psf_fwhm = fwhm_r[:, None] * FWHM_BAND_RATIO * np.exp(0.03 * rng.standard_normal((n, 5)))
    offset = rng.uniform(-0.5, 0.5, (n, 2))

    # A real SDSS sight line: position and SFD E(B-V) together.
    sight = rng.integers(len(cat["ra"]), size=n)
    ebv = cat["extinction"][sight, 2] / SFD98_EXTINCTION_COEFFICIENTS[2]
    ra = cat["ra"][sight]
    dec = cat["dec"][sight]
    redshift_err = np.exp(np.log(1.5e-5) + 0.5 * rng.standard_normal(n))

    total = bulge_flux + disk_flux
    return {
        "redshift": z,
        "redshift_err": redshift_err,
        "ebv": ebv,
        "ra": ra,
        "dec": dec,
        "flux": total,
        "bulge_flux": bulge_flux,
        "disk_flux": disk_flux,
        "petro_mag_r": 22.5 - 2.5 * np.log10(total[:, 2]) + petro_offset,
        "abs_mag_r": abs_mag_r,
        "rest_gr": rest_gr,
        "bulge_fraction": bulge_fraction,
        "half_light_radius": radius_arcsec,
        "half_light_radius_kpc": radius_kpc,
        "bulge_radius": r_bulge / np.sqrt(q_bulge),
        "disk_radius": r_disk / np.sqrt(q_disk),
        "bulge_axis_ratio": q_bulge,
        "disk_axis_ratio": q_disk,
        "position_angle": position_angle,
        "psf_fwhm": psf_fwhm,
        "offset": offset,
        "coeffs": coeffs,
        "source_index": pop["catalog_row"][source],
    }


@lru_cache(maxsize=8)
def _fourier_grid(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Angular frequencies (ky, kx) of an rfft2 grid and the pixel-box transfer function."""
    ky = (2 * np.pi * np.fft.fftfreq(size))[:, None]
    kx = (2 * np.pi * np.fft.rfftfreq(size))[None, :]
    pixel = np.sinc(ky / (2 * np.pi)) * np.sinc(kx / (2 * np.pi))
    return ky.astype(np.float32), kx.astype(np.float32), pixel.astype(np.float32)


def _profile_transform(ky, kx, radius, axis_ratio, angle, mixture) -> np.ndarray:
    """Fourier transform (n, H, W//2+1) of unit-flux elliptical Gaussian-mixture profiles.

    ``radius`` is the major-axis half-light radius in pixels, ``angle`` in radians.
    """
    cos = np.cos(angle).astype(np.float32)[:, None, None]
    sin = np.sin(angle).astype(np.float32)[:, None, None]
    k_major = kx * cos + ky * sin
    k_minor = -kx * sin + ky * cos
    quad = (radius.astype(np.float32) ** 2)[:, None, None] * (
        k_major**2 + (axis_ratio.astype(np.float32) ** 2)[:, None, None] * k_minor**2
    )
    amp, var = mixture
    out = np.zeros_like(quad)
    for a, v in zip(amp.astype(np.float32), (-0.5 * var).astype(np.float32), strict=True):
        out += a * np.exp(v * quad)
    return out


def _psf_transform(k2, fwhm_pixels) -> np.ndarray:
    """Optical transfer function (n, 5, H, W//2+1) of the double-Gaussian PSF."""
    core_var = (fwhm_pixels / _FWHM_PER_SIGMA).astype(np.float32)[:, :, None, None] ** 2
    core = np.exp(core_var * (-0.5 * k2))
    # The wing is PSF_WING_WIDTH = 2 times wider: its transfer function is core**4.
    wing = core * core
    wing *= wing
    core *= np.float32(1 - PSF_WING_FRACTION)
    wing *= np.float32(PSF_WING_FRACTION)
    core += wing
    return core


def _light_beyond(params: dict[str, np.ndarray], radius: float) -> np.ndarray:
    """Fraction of the r-band light beyond ``radius`` pixels (profiles circularised)."""
    mixtures = sersic_mixtures()
    bulge_share = params["bulge_flux"][:, 2] / (params["bulge_flux"] + params["disk_flux"])[:, 2]
    outside = np.zeros_like(bulge_share)
    for share, component, name in (
        (bulge_share, "bulge", "de_vaucouleurs"),
        (1 - bulge_share, "disk", "exponential"),
    ):
        amp, var = mixtures[name]
        r_e = params[f"{component}_radius"] * np.sqrt(params[f"{component}_axis_ratio"])
        r_e = r_e[:, None] / PIXEL_SCALE
        outside += share * (amp * np.exp(-(radius**2) / (2 * var * r_e**2))).sum(axis=1)
    return outside


def _render(params: dict[str, np.ndarray], stamp_size: int, psf: bool = True) -> np.ndarray:
    """Noiseless, extinction-free images (n, 5, S, S) in nanomaggies per pixel.

    The discrete Fourier transform makes the rendered field periodic, so light beyond the
    stamp's edge wraps back in at the opposite edge. Where that light, spread over the stamp,
    would exceed a tenth of the r-band sky noise per pixel, the galaxy is rendered on a field
    1.5 times as large instead.
    """
    wrapped = _light_beyond(params, stamp_size / 2) * params["bulge_flux"][:, 2]
    wrapped += _light_beyond(params, stamp_size / 2) * params["disk_flux"][:, 2]
    large = wrapped / stamp_size**2 > 0.1 * SKY_SIGMA[2]
    images = np.empty((len(large), len(BANDS), stamp_size, stamp_size), np.float32)
    big_field = 16 * -(-3 * stamp_size // 32)  # 1.5 S rounded up to a multiple of 16
    for mask, size in ((~large, stamp_size), (large, big_field)):
        if mask.any():
            subset = {key: value[mask] for key, value in params.items()}
            images[mask] = _render_on_field(subset, stamp_size, size, psf)
    return images


def _render_on_field(params, stamp_size: int, size: int, psf: bool) -> np.ndarray:
    """Render on a periodic ``size`` x ``size`` field and cut out the central stamp."""
    ky, kx, pixel = _fourier_grid(size)
    mixtures = sersic_mixtures()
    angle = np.deg2rad(params["position_angle"])
    bulge = _profile_transform(
        ky,
        kx,
        params["bulge_radius"] / PIXEL_SCALE,
        params["bulge_axis_ratio"],
        angle,
        mixtures["de_vaucouleurs"],
    )
    disk = _profile_transform(
        ky,
        kx,
        params["disk_radius"] / PIXEL_SCALE,
        params["disk_axis_ratio"],
        angle,
        mixtures["exponential"],
    )
    bulge_flux = params["bulge_flux"].astype(np.float32)[:, :, None, None]
    disk_flux = params["disk_flux"].astype(np.float32)[:, :, None, None]
    spectrum = bulge_flux * bulge[:, None]
    spectrum += disk_flux * disk[:, None]
    if psf:
        transfer = _psf_transform(ky**2 + kx**2, params["psf_fwhm"] / PIXEL_SCALE)
        transfer *= pixel
        spectrum *= transfer
    else:
        spectrum *= pixel
    # Galaxy centre at pixel S//2 + offset of the stamp cut from the field's centre: a
    # separable phase ramp exp(-i k.x0).
    start = (size - stamp_size) // 2
    centre = (start + stamp_size // 2 + params["offset"]).astype(np.float32)
    phase_y = _unit_phasor(ky[None] * centre[:, 1, None, None])
    phase_x = _unit_phasor(kx[None] * centre[:, 0, None, None])
    shifted = spectrum * (phase_y * phase_x)[:, None]
    images = scipy.fft.irfft2(shifted, s=(size, size), axes=(-2, -1), overwrite_x=True)
    return images[..., start : start + stamp_size, start : start + stamp_size]


def _unit_phasor(theta: np.ndarray) -> np.ndarray:
    """``exp(-1j * theta)`` as complex64 without a complex128 intermediate."""
    out = np.empty(theta.shape, np.complex64)
    out.real = np.cos(theta)
    out.imag = -np.sin(theta)
    return out


def _add_noise(images, rng: np.random.Generator) -> np.ndarray:
    """Sky noise plus Poisson noise of the source (Gaussian limit), in place."""
    sigma = np.maximum(images, 0)
    sigma *= (1 / ELECTRONS_PER_NANOMAGGY).astype(np.float32)[None, :, None, None]
    sigma += (SKY_SIGMA**2).astype(np.float32)[None, :, None, None]
    np.sqrt(sigma, out=sigma)
    sigma *= rng.standard_normal(images.shape, dtype=np.float32)
    images += sigma
    return images


def _root_seed(random_state) -> np.random.SeedSequence:
    """One SeedSequence from None, a non-negative int, a RandomState or a Generator (checked
    by the callers' :data:`_CONSTRAINTS`)."""
    if random_state is None:
        return np.random.SeedSequence()
    if isinstance(random_state, np.random.Generator):
        return np.random.SeedSequence(random_state.integers(2**32, size=4).tolist())
    if isinstance(random_state, np.random.RandomState):
        return np.random.SeedSequence(random_state.randint(2**32, size=4, dtype=np.uint64).tolist())
    return np.random.SeedSequence(int(random_state))


def _block_generator(root: np.random.SeedSequence, block: int, stream: int):
    seed = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, block, stream))
    return np.random.Generator(np.random.PCG64(seed))


# Bounds that keep a typo from exhausting memory or disk: a billion galaxies, stamps of 512
# pixels, 32 GiB of images in memory (make_sdss_galaxies; larger runs stream to disk with
# write_sdss_galaxies) and 8 GiB per chunk written.
_MAX_SAMPLES = 10**9
_MAX_STAMP = 512
_MAX_IN_MEMORY = 2**35
_MAX_CHUNK_BYTES = 2**33
# Bytes per galaxy besides its images: the catalogue columns of the archive or the Bunch.
_ROW_BYTES = 256


def _galaxy_bytes(stamp_size: int) -> int:
    return len(BANDS) * stamp_size * stamp_size * 4 + _ROW_BYTES


def _check_size(caller: str, name: str, n: int, stamp_size: int, limit: int, hint: str):
    needed = n * _galaxy_bytes(stamp_size)
    if needed > limit:
        raise ValueError(
            f"{caller}: {name}={n} galaxies of stamp_size={stamp_size} take "
            f"{needed / 2**30:.1f} GiB, more than the {limit / 2**30:.0f} GiB allowed; {hint}"
        )


def _check_disk(path, n_samples: int, stamp_size: int) -> None:
    """The directory of ``path`` exists, ``path`` is not a directory, and the disk holds the
    (uncompressed) archive."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise ValueError(f"write_sdss_galaxies: path {path!r} is a directory; give a file name.")
    if not os.path.isdir(folder):
        raise ValueError(
            f"write_sdss_galaxies: the directory of path {path!r} does not exist; create it first."
        )
    needed = n_samples * _galaxy_bytes(stamp_size)
    free = shutil.disk_usage(folder).free
    if os.path.isfile(path):  # overwritten: its space comes back
        free += os.path.getsize(path)
    if needed > free:
        raise ValueError(
            f"write_sdss_galaxies: the archive of n_samples={n_samples} galaxies of "
            f"stamp_size={stamp_size} needs {needed / 2**30:.1f} GiB, but {folder!r} has "
            f"{free / 2**30:.1f} GiB free."
        )


#: Argument constraints of :func:`make_sdss_galaxies` and :func:`write_sdss_galaxies`.
_CONSTRAINTS = {
    "n_samples": [integer(1, _MAX_SAMPLES)],
    "random_state": [integer(0, None), np.random.Generator, np.random.RandomState, None],
    # Below 8 pixels the PSF core alone (FWHM ~3.5 px) fills the stamp; a block of 64 stamps
    # of 512 pixels takes ~1.5 GB to render (and 4 times more per doubling).
    "stamp_size": [integer(8, _MAX_STAMP)],
    "noise": ["boolean"],
    "neighbour_fraction": [finite(0.0, 1.0, closed="both")],
    "star_fraction": [finite(0.0, 1.0, closed="both")],
    "mask_fraction": [finite(0.0, 1.0, closed="both")],
    "return_X_y": ["boolean"],
    "chunk_size": [integer(1, 2**20)],
    "path": [str, os.PathLike],
}


def _shifted(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Images (..., S, S) moved by whole pixels, zero-filled (light leaving the stamp is lost)."""
    out = np.zeros_like(images)
    size = images.shape[-1]
    ys, yd = (
        (slice(0, size - dy), slice(dy, size))
        if dy >= 0
        else (slice(-dy, size), slice(0, size + dy))
    )
    xs, xd = (
        (slice(0, size - dx), slice(dx, size))
        if dx >= 0
        else (slice(-dx, size), slice(0, size + dx))
    )
    out[..., yd, xd] = images[..., ys, xs]
    return out


def _add_neighbours(images, params, fraction: float, rng: np.random.Generator) -> None:
    """Add, to a ``fraction`` of the stamps, a fainter copy of another galaxy of the block.

    The neighbour (a different galaxy, at its own redshift) is 0.5-3 mag fainter and sits
    6-28 pixels from the centre; in place.
    """
    n = len(images)
    has = rng.random(n) < fraction
    partner = (np.arange(n) + 1 + rng.integers(n - 1, size=n)) % n
    dimming = 10 ** (-0.4 * rng.uniform(0.5, 3.0, n))
    radius = rng.uniform(6, 28, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    dy = np.rint(radius * np.sin(angle)).astype(int)
    dx = np.rint(radius * np.cos(angle)).astype(int)
    sources = images.copy()
    for i in np.nonzero(has)[0]:
        images[i] += dimming[i] * _shifted(sources[partner[i]], dy[i], dx[i])
    params["neighbour_index"] = np.where(has, partner, -1)
    params["neighbour_offset"] = np.where(has[:, None], np.stack([dx, dy], axis=1), 0)
    params["neighbour_flux"] = np.where(has[:, None], dimming[:, None] * params["flux"][partner], 0)


#: Rough stellar locus: colours u-g, r-i, i-z as functions of g-r along the main sequence
#: (piecewise-linear reading of Covey et al. 2007, AJ 134, 2398, Fig. 3).
_LOCUS_GR = np.array([0.2, 0.6, 1.0, 1.3, 1.5])
_LOCUS_UG = np.array([1.0, 1.45, 2.2, 2.6, 2.6])
_LOCUS_RI = np.array([0.05, 0.2, 0.4, 0.8, 1.5])
_LOCUS_IZ = np.array([0.0, 0.1, 0.2, 0.4, 0.8])


def _add_stars(images, params, fraction: float, rng: np.random.Generator) -> None:
    """Add a star (r = 15-21, colours on the stellar locus) to a ``fraction`` of the stamps.

    The star is the stamp's own PSF placed 5-30 pixels from the centre; in place.
    """
    n, _, size, _ = images.shape
    has = rng.random(n) < fraction
    mag_r = rng.uniform(15, 21, n)
    g_r = rng.uniform(_LOCUS_GR[0], _LOCUS_GR[-1], n)
    radius = rng.uniform(5, 30, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    r = mag_r
    g = r + g_r
    u = g + np.interp(g_r, _LOCUS_GR, _LOCUS_UG)
    i = r - np.interp(g_r, _LOCUS_GR, _LOCUS_RI)
    z = i - np.interp(g_r, _LOCUS_GR, _LOCUS_IZ)
    flux = mag_to_nanomaggies(np.stack([u, g, r, i, z], axis=1))
    centre = (
        size // 2
        + params["offset"]
        + np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    )
    index = np.nonzero(has)[0]
    if len(index):
        ky, kx, pixel = _fourier_grid(size)
        transfer = _psf_transform(ky**2 + kx**2, params["psf_fwhm"][index] / PIXEL_SCALE) * pixel
        centre_sel = centre[index].astype(np.float32)
        phase = _unit_phasor(ky[None] * centre_sel[:, 1, None, None]) * _unit_phasor(
            kx[None] * centre_sel[:, 0, None, None]
        )
        spectrum = flux[index].astype(np.float32)[:, :, None, None] * transfer * phase[:, None]
        images[index] += scipy.fft.irfft2(spectrum, s=(size, size), axes=(-2, -1))
    params["star_flux"] = np.where(has[:, None], flux, 0)
    params["star_position"] = np.where(has[:, None], centre, np.nan)


def _mask_columns(images, params, fraction: float, rng: np.random.Generator) -> None:
    """Zero a bad-column segment, in all bands, in a ``fraction`` of the stamps; in place."""
    n, _, size, _ = images.shape
    has = rng.random(n) < fraction
    column = rng.integers(size, size=n)
    y0 = rng.integers(size, size=n)
    length = rng.integers(size // 4, size + 1, size=n)
    stop = np.minimum(y0 + length, size)
    for i in np.nonzero(has)[0]:
        images[i, :, y0[i] : stop[i], column[i]] = 0
    params["masked_pixels"] = np.where(has, stop - y0, 0)


def _iter_galaxies(
    n_samples: int,
    root: np.random.SeedSequence,
    stamp_size: int,
    noise: bool,
    chunk_size: int,
    realism: dict[str, float],
) -> Iterator[dict[str, np.ndarray]]:
    """Yield consecutive chunks of at most ``chunk_size`` simulated galaxies.

    Galaxies are drawn and rendered in whole blocks with their own seeds (the last block is
    cut), so the output depends neither on ``chunk_size`` nor, for the first galaxies, on
    ``n_samples``.
    """
    pending: list[dict[str, np.ndarray]] = []
    n_pending = 0
    n_blocks = -(-n_samples // _BLOCK)
    for block in range(n_blocks):
        params = _draw_block(_block_generator(root, block, 0), stamp_size)
        images = _render(params, stamp_size)
        extra = _block_generator(root, block, 2)
        _add_neighbours(images, params, realism["neighbour_fraction"], extra)
        _add_stars(images, params, realism["star_fraction"], extra)
        images = redden(images, params["ebv"], EXTINCTION_COEFFICIENTS)
        if noise:
            images = _add_noise(images, _block_generator(root, block, 1))
        _mask_columns(images, params, realism["mask_fraction"], extra)
        params["images"] = images
        params["extinction"] = extinction_from_ebv(params["ebv"], EXTINCTION_COEFFICIENTS)
        keep = min(_BLOCK, n_samples - block * _BLOCK)
        pending.append({key: value[:keep] for key, value in params.items()})
        n_pending += keep
        while n_pending >= chunk_size or (block == n_blocks - 1 and n_pending):
            if len(pending) == 1:
                merged = pending[0]
            else:
                merged = {key: np.concatenate([p[key] for p in pending]) for key in pending[0]}
            take = min(chunk_size, n_pending)
            yield {key: value[:take] for key, value in merged.items()}
            pending = [{key: value[take:] for key, value in merged.items()}]
            n_pending -= take


_TRUTH_KEYS = (
    "petro_mag_r",
    "abs_mag_r",
    "rest_gr",
    "bulge_fraction",
    "half_light_radius",
    "half_light_radius_kpc",
    "bulge_radius",
    "disk_radius",
    "bulge_axis_ratio",
    "disk_axis_ratio",
    "position_angle",
    "psf_fwhm",
    "offset",
    "coeffs",
    "source_index",
    "neighbour_index",
    "neighbour_offset",
    "neighbour_flux",
    "star_flux",
    "star_position",
    "masked_pixels",
)

_DESCR = """\
Simulated SDSS ugriz galaxy cutouts
-----------------------------------

Images of galaxies of the SDSS Main Galaxy Sample as SDSS would observe them: fluxes in
nanomaggies per 0.396" pixel, bands u, g, r, i, z, reddened by Galactic dust, convolved with a
per-band PSF and with sky and Poisson noise at SDSS depth. Populations (redshift, luminosity,
SED) are resampled from 10,000 real SDSS galaxies (see ``load_sdss_catalog``) with kcorrect
NMF templates (Blanton & Roweis 2007) giving colours at any redshift; structure is a
de Vaucouleurs bulge plus an exponential disk of different colours with sizes from the
Shen et al. (2003) size-luminosity relations. Physics and validation: docs/experiments/simulator.md.

- ``images`` : (n, 5, S, S) float32, observed nanomaggies per pixel.
- ``redshift`` : (n,) spectroscopic (true) redshift; ``redshift_err`` its quoted error.
- ``ebv`` : (n,) E(B-V) of a real SDSS sight line; ``extinction`` : (n, 5) A_b = R_b E(B-V)
  with R = skphotoz.data.EXTINCTION_COEFFICIENTS; ``ra``, ``dec`` that sight line.
- ``truth`` : Bunch of per-galaxy truth: ``mag`` (n, 5) extinction-free model AB magnitudes,
  ``petro_mag_r``, ``abs_mag_r`` (rest-frame, H0 = 70), ``rest_gr``, ``bulge_fraction``
  (rest-frame r), ``bulge_flux_fraction`` (n, 5, observed), ``half_light_radius`` (arcsec,
  circularised) and ``half_light_radius_kpc``, ``bulge_radius`` and ``disk_radius``
  (major-axis arcsec), ``bulge_axis_ratio``, ``disk_axis_ratio``, ``position_angle``
  (degrees), ``psf_fwhm`` (n, 5, arcsec), ``offset`` (n, 2, pixels, x then y, from the stamp
  centre at pixel S//2), ``coeffs`` (template coefficients), ``source_index`` (row of
  ``load_sdss_catalog()`` of the real galaxy it was drawn from), ``sky_sigma`` (5,) per-pixel
  sky noise; and of the optional contaminants: ``neighbour_index`` (-1 if none; the position
  in the same block of 64 whose image was copied), ``neighbour_offset`` (n, 2, pixels),
  ``neighbour_flux`` (n, 5, extinction-free), ``star_flux`` (n, 5), ``star_position`` (n, 2,
  pixel x, y; NaN if none), ``masked_pixels`` (number of zeroed pixels per band).
"""


def _to_bunch(chunk: dict[str, np.ndarray], noise: bool) -> Bunch:
    truth = Bunch(**{key: chunk[key] for key in _TRUTH_KEYS})
    truth.mag = 22.5 - 2.5 * np.log10(chunk["flux"])
    truth.bulge_flux_fraction = chunk["bulge_flux"] / chunk["flux"]
    truth.sky_sigma = SKY_SIGMA.copy() if noise else np.zeros(len(BANDS))
    return Bunch(
        images=chunk["images"],
        redshift=chunk["redshift"],
        redshift_err=chunk["redshift_err"],
        ebv=chunk["ebv"],
        extinction=chunk["extinction"],
        ra=chunk["ra"],
        dec=chunk["dec"],
        truth=truth,
        band_names=BANDS,
        feature_names=[f"{band}_flux" for band in BANDS],
        DESCR=_DESCR,
    )


@validated(
    {
        name: _CONSTRAINTS[name]
        for name in (
            "n_samples",
            "random_state",
            "stamp_size",
            "noise",
            "return_X_y",
            "neighbour_fraction",
            "star_fraction",
            "mask_fraction",
        )
    }
)
def make_sdss_galaxies(
    n_samples: int = 1000,
    *,
    random_state=None,
    stamp_size: int = 64,
    noise: bool = True,
    neighbour_fraction: float = 0.0,
    star_fraction: float = 0.0,
    mask_fraction: float = 0.0,
    return_X_y: bool = False,
) -> Bunch | tuple[np.ndarray, np.ndarray]:
    """Simulate SDSS ugriz cutouts of Main Galaxy Sample galaxies.

    Galaxies are resampled from 10,000 real SDSS galaxies (redshift, luminosity and SED
    through kcorrect templates), given a de Vaucouleurs bulge and an exponential disk of
    different colours, reddened by Galactic dust, convolved with a per-band PSF and observed
    with SDSS noise. See ``docs/experiments/simulator.md`` for the physics and its validation.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of galaxies, at most 10**9 and at most 32 GiB of images (about 400,000 stamps
        of 64 pixels); write larger sets with :func:`write_sdss_galaxies`.
    random_state : non-negative int, numpy Generator or RandomState, default=None
        Seed of the simulation. The same seed gives the same galaxies, and the first ``k``
        galaxies of a larger run are those of a run of ``k``.
    stamp_size : int, default=64
        Height and width of the cutouts in pixels (0.396" each), from 8 to 512; the galaxy is
        centred on pixel ``stamp_size // 2`` within half a pixel.
    noise : bool, default=True
        Add sky and Poisson noise. With ``False`` the images are the noiseless, reddened,
        PSF-convolved expectation.
    neighbour_fraction : float, default=0.0
        Fraction of stamps with a neighbouring galaxy (0.5-3 mag fainter, 6-28 pixels away).
    star_fraction : float, default=0.0
        Fraction of stamps with a foreground star (r = 15-21, 5-30 pixels away).
    mask_fraction : float, default=0.0
        Fraction of stamps with a bad-column segment set to zero in all bands.
    return_X_y : bool, default=False
        Return ``(images, redshift)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``images`` (n, 5, S, S) float32 nanomaggies per pixel, ``redshift``, ``redshift_err``,
        ``ebv``, ``extinction`` (n, 5) magnitudes, ``ra``, ``dec``, ``truth`` (a Bunch of the
        true galaxy parameters), ``band_names``, ``feature_names`` and ``DESCR``.
    (images, redshift) : tuple of ndarray
        If ``return_X_y`` is True.

    See Also
    --------
    write_sdss_galaxies : stream a large simulation into an HDF5 archive.
    load_sdss_catalog : the real catalogue the populations are drawn from.

    Examples
    --------
    >>> from skphotoz.datasets import make_sdss_galaxies
    >>> data = make_sdss_galaxies(8, random_state=0)
    >>> data.images.shape, data.images.dtype
    ((8, 5, 64, 64), dtype('float32'))
    >>> X, y = make_sdss_galaxies(8, random_state=0, return_X_y=True)
    >>> bool((y == data.redshift).all())
    True
    """
    realism = {
        "neighbour_fraction": neighbour_fraction,
        "star_fraction": star_fraction,
        "mask_fraction": mask_fraction,
    }
    n_samples, stamp_size = int(n_samples), int(stamp_size)
    _check_size(
        "make_sdss_galaxies",
        "n_samples",
        n_samples,
        stamp_size,
        _MAX_IN_MEMORY,
        "write them to disk chunk by chunk with write_sdss_galaxies.",
    )
    root = _root_seed(random_state)
    # Fill preallocated arrays block by block: no concatenation copies of the images.
    out: dict[str, np.ndarray] = {}
    start = 0
    for chunk in _iter_galaxies(n_samples, root, stamp_size, bool(noise), _BLOCK, realism):
        stop = start + len(chunk["redshift"])
        for key, value in chunk.items():
            if key not in out:
                out[key] = np.empty((n_samples, *value.shape[1:]), value.dtype)
            out[key][start:stop] = value
        start = stop
    bunch = _to_bunch(out, bool(noise))
    if return_X_y:
        return bunch.images, bunch.redshift
    return bunch


@validated(
    {
        name: _CONSTRAINTS[name]
        for name in (
            "path",
            "n_samples",
            "random_state",
            "stamp_size",
            "noise",
            "chunk_size",
            "neighbour_fraction",
            "star_fraction",
            "mask_fraction",
        )
    }
)
def write_sdss_galaxies(
    path,
    n_samples: int,
    *,
    random_state=None,
    stamp_size: int = 64,
    noise: bool = True,
    neighbour_fraction: float = 0.0,
    star_fraction: float = 0.0,
    mask_fraction: float = 0.0,
    chunk_size: int = 1024,
) -> str:
    """Simulate galaxies chunk by chunk into an HDF5 archive of the SDSS photo-z format.

    Memory stays bounded by ``chunk_size`` galaxies whatever ``n_samples``. The archive has
    ``images`` (N, 5, S, S) float32, ``specz_redshift``, ``specz_redshift_err``, ``e_bv``
    (N, 5) per-band extinction in magnitudes, ``ra``, ``dec``, ``ObjID`` and ``specObjID``
    (running numbers; both are the galaxy index).

    Parameters
    ----------
    path : str or path-like
        HDF5 file to create (overwritten), in an existing directory with room for the
        archive (about ``n_samples * 5 * stamp_size**2 * 4`` bytes; checked first).
    n_samples : int
        Number of galaxies, at most 10**9.
    random_state : non-negative int, numpy Generator or RandomState, default=None
        Seed; the archive holds exactly ``make_sdss_galaxies(n_samples, random_state=...)``.
    stamp_size : int, default=64
        Height and width of the cutouts in pixels.
    noise : bool, default=True
        Add sky and Poisson noise.
    neighbour_fraction, star_fraction, mask_fraction : float, default=0.0
        Optional contaminants, as in :func:`make_sdss_galaxies`.
    chunk_size : int, default=1024
        Galaxies simulated and written at a time (at most 2**20 and 8 GiB of images); does
        not change the result.

    Returns
    -------
    path : str
        The path written.

    See Also
    --------
    make_sdss_galaxies : the same galaxies in memory, with their truth table.
    skphotoz.data.open_archive : read the archive back.
    """
    from ..data import ArchiveWriter

    realism = {
        "neighbour_fraction": neighbour_fraction,
        "star_fraction": star_fraction,
        "mask_fraction": mask_fraction,
    }
    n_samples, stamp_size, chunk_size = int(n_samples), int(stamp_size), int(chunk_size)
    _check_size(
        "write_sdss_galaxies",
        "chunk_size",
        min(chunk_size, n_samples),
        stamp_size,
        _MAX_CHUNK_BYTES,
        "lower chunk_size.",
    )
    _check_disk(path, n_samples, stamp_size)
    root = _root_seed(random_state)
    start = 0
    with ArchiveWriter(path, n_samples, stamp_size=stamp_size, n_bands=len(BANDS)) as writer:
        chunks = _iter_galaxies(n_samples, root, stamp_size, bool(noise), chunk_size, realism)
        for chunk in chunks:
            index = np.arange(start, start + len(chunk["redshift"]), dtype=np.int64)
            writer.append(
                images=chunk["images"],
                redshift=chunk["redshift"].astype(np.float32),
                redshift_err=chunk["redshift_err"].astype(np.float32),
                extinction=chunk["extinction"].astype(np.float32),
                ra=chunk["ra"],
                dec=chunk["dec"],
                objid=index,
                specobjid=index,
            )
            start += len(index)
    return str(path)
