import h5py
import numpy as np
import pytest

from skphotoz.data import EXTINCTION_COEFFICIENTS, deredden
from skphotoz.datasets import make_sdss_galaxies, write_sdss_galaxies
from skphotoz.datasets._catalog import sersic_mixtures
from skphotoz.datasets._simulator import (
    _FWHM_PER_SIGMA,
    PIXEL_SCALE,
    PSF_WING_FRACTION,
    PSF_WING_WIDTH,
    _block_generator,
    _draw_block,
    _render,
    _root_seed,
)


@pytest.fixture(scope="module")
def galaxies():
    return make_sdss_galaxies(1000, random_state=0)


@pytest.fixture(scope="module")
def noiseless():
    return make_sdss_galaxies(200, random_state=3, noise=False)


def test_bunch_shapes_and_dtypes(galaxies):
    n = 1000
    assert galaxies.images.shape == (n, 5, 64, 64)
    assert galaxies.images.dtype == np.float32
    for key in ("redshift", "redshift_err", "ebv", "ra", "dec"):
        assert galaxies[key].shape == (n,)
    assert galaxies.extinction.shape == (n, 5)
    assert galaxies.truth.mag.shape == (n, 5)
    assert galaxies.truth.psf_fwhm.shape == (n, 5)
    for key in ("half_light_radius", "bulge_fraction", "disk_axis_ratio", "position_angle"):
        assert galaxies.truth[key].shape == (n,)
    assert galaxies.band_names == ("u", "g", "r", "i", "z")
    assert "nanomaggies" in galaxies.DESCR
    assert np.all(np.isfinite(galaxies.images))


def test_return_X_y_and_stamp_size():
    X, y = make_sdss_galaxies(5, random_state=1, return_X_y=True, stamp_size=32)
    assert X.shape == (5, 5, 32, 32)
    np.testing.assert_array_equal(y, make_sdss_galaxies(5, random_state=1).redshift)


def test_same_seed_same_galaxies_and_prefix():
    a = make_sdss_galaxies(70, random_state=7)
    b = make_sdss_galaxies(70, random_state=7)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.redshift, b.redshift)
    # The first galaxies of a larger run are those of a smaller one (blocks have own seeds).
    c = make_sdss_galaxies(130, random_state=7)
    np.testing.assert_array_equal(a.images, c.images[:70])
    d = make_sdss_galaxies(70, random_state=8)
    assert not np.array_equal(a.redshift, d.redshift)


def test_generator_random_state_is_reproducible():
    a = make_sdss_galaxies(3, random_state=np.random.default_rng(5))
    b = make_sdss_galaxies(3, random_state=np.random.default_rng(5))
    np.testing.assert_array_equal(a.images, b.images)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"n_samples": 0},
            r"The 'n_samples' parameter of make_sdss_galaxies must be an int in the range "
            r"\[1, 1000000000\]\. Got 0 instead",
        ),
        ({"n_samples": 2.5}, r"'n_samples' .* Got 2.5 instead"),
        ({"n_samples": 2.0}, r"'n_samples' .* Got 2.0 instead"),
        ({"n_samples": True}, r"'n_samples' .* Got True instead"),
        ({"n_samples": 2, "stamp_size": 4}, r"'stamp_size' .* range \[8, 512\]\. Got 4"),
        ({"n_samples": 2, "stamp_size": 32.0}, r"'stamp_size' .* Got 32.0 instead"),
        ({"n_samples": 2, "noise": "yes"}, r"'noise' parameter .* instance of 'bool'"),
        ({"n_samples": 2, "noise": 1}, r"'noise' .* Got 1 instead"),
        ({"n_samples": 2, "return_X_y": 1}, r"'return_X_y' .* instance of 'bool'.* Got 1"),
        ({"n_samples": 2, "random_state": -3}, r"'random_state' .* Got -3 instead"),
        ({"n_samples": 2, "random_state": True}, r"'random_state' .* Got True instead"),
        ({"n_samples": 2, "random_state": 1.5}, r"'random_state' .* Got 1.5 instead"),
        ({"n_samples": 2, "random_state": "x"}, r"'random_state' .* or None\. Got 'x'"),
        (
            {"n_samples": 2, "star_fraction": 1.5},
            r"'star_fraction' parameter of make_sdss_galaxies must be a float in the range "
            r"\[0\.0, 1\.0\]\. Got 1.5 instead",
        ),
        ({"n_samples": 2, "mask_fraction": -0.1}, r"'mask_fraction' .* Got -0.1 instead"),
        ({"n_samples": 2, "neighbour_fraction": np.nan}, r"'neighbour_fraction' .* Got nan"),
        ({"n_samples": 2, "star_fraction": np.inf}, r"'star_fraction' .* Got inf instead"),
        ({"n_samples": 2, "mask_fraction": True}, r"'mask_fraction' .* Got True instead"),
        ({"n_samples": 2, "mask_fraction": "0.1"}, r"'mask_fraction' .* Got '0.1' instead"),
    ],
)
def test_argument_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_sdss_galaxies(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"chunk_size": 0},
            r"The 'chunk_size' parameter of write_sdss_galaxies must be an int in the range "
            r"\[1, 1048576\]\. Got 0 instead",
        ),
        ({"chunk_size": True}, r"'chunk_size' .* Got True instead"),
        ({"chunk_size": 16.0}, r"'chunk_size' .* Got 16.0 instead"),
        ({"n_samples": 0}, r"'n_samples' parameter of write_sdss_galaxies .* Got 0 instead"),
        ({"noise": None}, r"'noise' parameter of write_sdss_galaxies .* Got None instead"),
        ({"star_fraction": np.inf}, r"'star_fraction' .* Got inf instead"),
        ({"random_state": -1}, r"'random_state' parameter of write_sdss_galaxies"),
    ],
)
def test_writer_argument_validation(tmp_path, kwargs, match):
    kwargs = {"n_samples": 3, **kwargs}
    path = tmp_path / "a.h5"
    with pytest.raises(ValueError, match=match):
        write_sdss_galaxies(path, **kwargs)
    assert not path.exists()


def test_numpy_scalars_are_accepted():
    a = make_sdss_galaxies(
        np.int64(3),
        random_state=np.uint32(4),
        stamp_size=np.int16(16),
        noise=np.bool_(False),
        star_fraction=np.float32(0.5),
        return_X_y=np.bool_(True),
    )
    b = make_sdss_galaxies(
        3, random_state=4, stamp_size=16, noise=False, star_fraction=0.5, return_X_y=True
    )
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_writer_round_trip_independent_of_chunk_size(tmp_path):
    n = 70
    ref = make_sdss_galaxies(n, random_state=11)
    paths = [tmp_path / "a.h5", tmp_path / "b.h5"]
    write_sdss_galaxies(paths[0], n, random_state=11, chunk_size=16)
    write_sdss_galaxies(paths[1], n, random_state=11, chunk_size=1000)
    with h5py.File(paths[0], "r") as a, h5py.File(paths[1], "r") as b:
        for key in (
            "images",
            "specz_redshift",
            "specz_redshift_err",
            "e_bv",
            "ra",
            "dec",
            "ObjID",
            "specObjID",
        ):
            np.testing.assert_array_equal(a[key][...], b[key][...])
        assert a["images"].shape == (n, 5, 64, 64)
        assert a["e_bv"].shape == (n, 5)
        np.testing.assert_array_equal(a["images"][...], ref.images)
        np.testing.assert_allclose(a["specz_redshift"][...], ref.redshift, rtol=1e-6)
        np.testing.assert_allclose(a["e_bv"][...], ref.extinction, rtol=1e-6)
        np.testing.assert_array_equal(a["ObjID"][...], np.arange(n))


def test_redshift_and_magnitude_distribution(galaxies):
    z = galaxies.redshift
    assert 0.08 < np.median(z) < 0.12
    assert z.min() >= 0.01 and z.max() < 0.6
    assert np.mean(z < 0.3) > 0.97
    # The Main Galaxy Sample cut holds for every galaxy.
    assert np.all(galaxies.truth.petro_mag_r <= 17.77 + 1e-6)
    g_r = galaxies.truth.mag[:, 1] - galaxies.truth.mag[:, 2]
    assert 0.8 < np.median(g_r) < 1.0


def test_u_and_z_noisier_than_r(galaxies):
    border = np.concatenate(
        [
            galaxies.images[:, :, :4, :].reshape(1000, 5, -1),
            galaxies.images[:, :, -4:, :].reshape(1000, 5, -1),
        ],
        axis=2,
    )
    mad = 1.4826 * np.median(np.abs(border - np.median(border, axis=2, keepdims=True)), axis=(0, 2))
    assert mad[0] > mad[2] and mad[4] > mad[2] and mad[4] > mad[0]
    # Signal-to-noise of the galaxy light in u is far below r.
    flux = galaxies.images.sum(axis=(2, 3))
    snr = np.median(flux / (mad * 64), axis=0)
    assert snr[0] < 0.5 * snr[2]


def test_extinction_recorded_and_applied(noiseless):
    np.testing.assert_allclose(
        noiseless.extinction, noiseless.ebv[:, None] * EXTINCTION_COEFFICIENTS
    )
    compact = noiseless.truth.half_light_radius < 2.0
    assert compact.sum() > 20
    observed = noiseless.images.sum(axis=(2, 3))[compact]
    true_flux = 10 ** (-0.4 * (noiseless.truth.mag[compact] - 22.5))
    ratio = observed / true_flux
    expected = 10 ** (-0.4 * noiseless.extinction[compact])
    np.testing.assert_allclose(ratio / expected, 1, atol=0.04)
    dered = deredden(noiseless.images, noiseless.extinction).sum(axis=(2, 3))[compact]
    np.testing.assert_allclose(dered / true_flux, 1, atol=0.04)


def test_flux_conservation_of_render():
    params = _draw_block(_block_generator(_root_seed(4), 0, 0), 64)
    images = _render(params, 64)
    compact = params["half_light_radius"] < 2.0
    ratio = images.sum(axis=(2, 3))[compact] / params["flux"][compact]
    np.testing.assert_allclose(ratio, 1, atol=0.03)
    # Bulge and disk are both there and have different colours (bulge redder in g - r).
    has_both = (params["bulge_fraction"] > 0.2) & (params["bulge_fraction"] < 0.8)
    gr = -2.5 * np.log10(params["bulge_flux"][:, 1] / params["bulge_flux"][:, 2])
    gr_disk = -2.5 * np.log10(params["disk_flux"][:, 1] / params["disk_flux"][:, 2])
    assert np.all(gr[has_both] >= gr_disk[has_both] - 1e-9)
    assert np.mean(gr[has_both] > gr_disk[has_both] + 0.02) > 0.5


def _truncated_de_vaucouleurs(r):
    """Sersic n=4 with SDSS's smooth truncation between 7 and 8 r_e (the reference profile)."""
    b = 7.669
    taper = np.clip((8 - r) / 1.0, 0, 1)
    return np.exp(-b * (r**0.25 - 1)) * np.where(r < 7, 1.0, (1 - (1 - taper) ** 2) ** 2)


def test_de_vaucouleurs_centre_matches_oversampled_reference():
    # An even oversampling keeps fine samples off the singular centre of the n=4 cusp.
    size, over = 32, 40
    r_e_arcsec, fwhm_arcsec = 0.8, 1.0
    params = _draw_block(_block_generator(_root_seed(0), 0, 0), size)
    params = {key: value[:1].copy() for key, value in params.items()}
    params["bulge_flux"][:] = 100.0
    params["disk_flux"][:] = 0.0
    params["bulge_radius"][:] = r_e_arcsec
    params["bulge_axis_ratio"][:] = 1.0
    params["psf_fwhm"][:] = fwhm_arcsec
    params["offset"][:] = 0.0
    image = _render(params, size)[0, 2]

    # Reference: the truncated profile (rescaled to unit half-light radius, like the
    # mixture) sampled 40x40 per pixel, convolved with the PSF on the fine grid, then binned.
    radii = np.linspace(0, 8, 200001)
    cumulative = np.cumsum(_truncated_de_vaucouleurs(radii) * radii)
    r_half = np.interp(0.5, cumulative / cumulative[-1], radii)
    fine = (np.arange(size * over) + 0.5) / over - 0.5 - size // 2
    yy, xx = np.meshgrid(fine, fine, indexing="ij")
    r_e_pix = r_e_arcsec / PIXEL_SCALE
    galaxy = _truncated_de_vaucouleurs(np.hypot(yy, xx) / r_e_pix * r_half)
    galaxy *= 100.0 / galaxy.sum()
    sigma = fwhm_arcsec / PIXEL_SCALE / _FWHM_PER_SIGMA
    w, s = PSF_WING_FRACTION, PSF_WING_WIDTH
    k2 = (2 * np.pi * np.fft.fftfreq(size * over, 1 / over))[:, None] ** 2 + (
        2 * np.pi * np.fft.rfftfreq(size * over, 1 / over)
    )[None, :] ** 2
    otf = (1 - w) * np.exp(-0.5 * sigma**2 * k2) + w * np.exp(-0.5 * (s * sigma) ** 2 * k2)
    shift = np.fft.ifftshift(galaxy)
    blurred = np.fft.fftshift(np.fft.irfft2(np.fft.rfft2(shift) * otf, s=shift.shape))
    reference = blurred.reshape(size, over, size, over).sum(axis=(1, 3))
    centre = size // 2
    np.testing.assert_allclose(image[centre, centre], reference[centre, centre], rtol=0.01)
    np.testing.assert_allclose(
        image[centre - 2 : centre + 3, centre - 2 : centre + 3],
        reference[centre - 2 : centre + 3, centre - 2 : centre + 3],
        rtol=0.01,
    )


def test_mixtures_have_unit_flux():
    for amp, var in sersic_mixtures().values():
        assert abs(amp.sum() - 1) < 1e-9
        assert np.all(var > 0)


def test_realism_knobs_add_contaminants():
    plain = make_sdss_galaxies(64, random_state=9, noise=False)
    busy = make_sdss_galaxies(
        64,
        random_state=9,
        noise=False,
        neighbour_fraction=0.5,
        star_fraction=0.5,
        mask_fraction=0.5,
    )
    # Same galaxies underneath; contaminants only where the truth table says so.
    np.testing.assert_array_equal(plain.redshift, busy.redshift)
    truth = busy.truth
    neighbour = truth.neighbour_index >= 0
    star = np.isfinite(truth.star_position[:, 0])
    masked = truth.masked_pixels > 0
    assert 15 < neighbour.sum() < 50 and 15 < star.sum() < 50 and 15 < masked.sum() < 50
    untouched = ~neighbour & ~star & ~masked
    np.testing.assert_allclose(busy.images[untouched], plain.images[untouched], atol=1e-6)
    extra = busy.images.sum(axis=(2, 3)) - plain.images.sum(axis=(2, 3))
    assert np.all(extra[(neighbour | star) & ~masked, 2] > 0)
    assert np.all((busy.images == 0).sum(axis=(2, 3))[masked, 2] >= truth.masked_pixels[masked])
    assert plain.truth.masked_pixels.sum() == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 10**12}, r"'n_samples' parameter .* \[1, 1000000000\]"),
        ({"n_samples": True}, r"'n_samples' parameter .* Got True"),
        ({"stamp_size": 10**6}, r"'stamp_size' parameter .* \[8, 512\]"),
        ({"noise": "False"}, r"'noise' parameter .* Got 'False'"),
        ({"mask_fraction": np.nan}, r"'mask_fraction' parameter"),
        (
            {"n_samples": 10**6, "stamp_size": 512},
            r"n_samples=1000000 galaxies of stamp_size=512 take 4883.\d GiB, more than the 32 "
            r"GiB allowed; write them to disk .* write_sdss_galaxies",
        ),
    ],
)
def test_make_sdss_galaxies_bounds(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_sdss_galaxies(**{"n_samples": 2, **kwargs})


def test_write_sdss_galaxies_checks_path_chunk_and_disk_before_writing(tmp_path, monkeypatch):
    import shutil

    path = tmp_path / "sim.h5"
    with pytest.raises(ValueError, match=r"'path' parameter of write_sdss_galaxies .* Got None"):
        write_sdss_galaxies(None, 2)
    with pytest.raises(ValueError, match=r"path .* is a directory; give a file name"):
        write_sdss_galaxies(tmp_path, 2)
    with pytest.raises(ValueError, match=r"the directory of path .* does not exist"):
        write_sdss_galaxies(tmp_path / "missing" / "sim.h5", 2)
    with pytest.raises(ValueError, match=r"'chunk_size' parameter .* \[1, 1048576\]"):
        write_sdss_galaxies(path, 2, chunk_size=10**9)
    with pytest.raises(ValueError, match=r"chunk_size=1048576 galaxies .* lower chunk_size"):
        write_sdss_galaxies(path, 10**7, stamp_size=512, chunk_size=2**20)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=10**6))
    with pytest.raises(ValueError, match=r"needs 0.1 GiB, but .* has 0.0 GiB free"):
        write_sdss_galaxies(path, 1000, stamp_size=64)
    assert not path.exists()  # refused before anything was written
    write_sdss_galaxies(path, 2, stamp_size=16, random_state=0)  # 2 small stamps fit
    assert path.exists()
