import numpy as np
import pytest

from skphotoz.data import open_archive, write_archive
from skphotoz.preprocessing import AperturePhotometry, aperture_fluxes


def test_aperture_fluxes_count_the_pixels_within_each_radius():
    images = np.ones((1, 2, 21, 21), dtype=np.float32)
    images[0, 1] *= 3.0
    flux = aperture_fluxes(images, radii=(1.0, 2.5), pixel_scale=1.0)
    # Pixels whose centre is closer than r to the centre pixel: 1 within 1, 21 within 2.5.
    np.testing.assert_allclose(flux[0], [[1.0, 3.0], [21.0, 63.0]])


def test_features_are_colours_magnitudes_and_inner_colours():
    rng = np.random.default_rng(0)
    images = rng.uniform(1.0, 2.0, size=(3, 5, 24, 24)).astype(np.float32)
    transformer = AperturePhotometry(radii=(1.5, 3.0, 6.0)).fit(images)
    features = transformer.transform(images)
    assert features.shape == (3, 11) and transformer.get_feature_names_out()[0] == 'u-g (3.0")'
    flux = aperture_fluxes(images, (1.5, 3.0, 6.0)).astype(np.float64)
    mag = 22.5 - 2.5 * np.log10(flux)
    np.testing.assert_allclose(features[:, 0], mag[:, 1, 0] - mag[:, 1, 1], rtol=1e-6)  # u-g, 3"
    np.testing.assert_allclose(features[:, 4:7], mag[:, :, 2], rtol=1e-6)  # r in each aperture
    np.testing.assert_allclose(features[:, 10], mag[:, 0, 3] - mag[:, 0, 4], rtol=1e-6)  # i-z
    # Batches do not change anything.
    batched = AperturePhotometry(batch_size=2).fit(images).transform(images)
    np.testing.assert_allclose(batched, features, rtol=1e-12)


@pytest.mark.parametrize("reference_band", [2, 4])
def test_band_weights_give_the_features_change_per_band(reference_band):
    rng = np.random.default_rng(1)
    images = rng.uniform(1.0, 2.0, size=(4, 5, 24, 24))
    transformer = AperturePhotometry(reference_band=reference_band).fit(images)
    weights = transformer.band_weights()
    assert weights.shape == (11, 5)
    assert weights[:4].sum(axis=1).tolist() == [0.0] * 4  # colours: +1 and -1
    assert (weights[4:7, reference_band] == 1).all() and weights[4:7].sum() == 3
    dm = np.array([0.3, -0.1, 0.05, 0.2, -0.4])
    dimmed = images * 10 ** (-0.4 * dm).reshape(1, 5, 1, 1)
    np.testing.assert_allclose(
        transformer.transform(dimmed), transformer.transform(images) + weights @ dm, atol=1e-9
    )


def test_lazy_input_and_errors(tmp_path):
    images = np.random.default_rng(1).uniform(1, 2, size=(6, 5, 16, 16)).astype(np.float32)
    path = tmp_path / "a.h5"
    write_archive(path, images)
    lazy = open_archive(path).images
    expected = AperturePhotometry().fit_transform(images)
    np.testing.assert_allclose(AperturePhotometry(batch_size=4).fit_transform(lazy), expected)
    with pytest.raises(ValueError, match="takes images"):
        AperturePhotometry().fit(images[:, 0])
    with pytest.raises(ValueError, match="reference_band must be a band of X"):
        AperturePhotometry(reference_band=5).fit(images)
    with pytest.raises(ValueError, match="'pixel_scale' parameter of AperturePhotometry"):
        AperturePhotometry(pixel_scale=0).fit(images)
    with pytest.raises(ValueError, match="radii must be two or more positive radii"):
        AperturePhotometry(radii=(1.0,)).fit(images)
    with pytest.raises(ValueError, match="was fitted on"):
        AperturePhotometry().fit(images).transform(images[:, :, :8, :8])


def test_aperture_photometry_refuses_channels_last_stamps():
    images = np.ones((3, 16, 16, 5), dtype=np.float32)
    with pytest.raises(ValueError, match=r"square stamps .* It looks channels-last"):
        AperturePhotometry().fit(images)
    with pytest.raises(ValueError, match=r"got shape \(3, 5, 16, 12\)\.$"):
        AperturePhotometry().fit(np.ones((3, 5, 16, 12)))


IMAGES = np.ones((2, 5, 16, 16), dtype=np.float32)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"radii": (1.0, np.inf)}, r"radii must be two or more positive radii"),
        ({"radii": (1.0, "a")}, r"radii must be two or more positive radii"),
        ({"radii": (1.0, 2e4)}, r"each at most 10800 arcsec"),
        ({"radii": "abc"}, r"'radii' parameter of AperturePhotometry"),
        ({"pixel_scale": np.inf}, r"'pixel_scale' parameter .* \(0.0, 3600.0\]"),
        ({"reference_band": True}, r"'reference_band' parameter .* Got True"),
        ({"reference_band": 9}, r"reference_band must be a band of X \(0 to 4\); got 9"),
        ({"flux_floor": np.inf}, r"'flux_floor' parameter"),
        ({"batch_size": 10**15}, r"'batch_size' parameter .* \[1, 1048576\]"),
    ],
)
def test_aperture_photometry_refuses_bad_parameters(params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        AperturePhotometry(**params).fit(IMAGES)


@pytest.mark.parametrize(
    "X, error, match",
    [
        (None, TypeError, r"X must be images \(n_samples, n_bands, height, width\); got NoneType"),
        ("images.h5", TypeError, r"X must be images .* got str"),
        (np.full((2, 5, 4, 4), "a"), TypeError, r"X must hold numbers .* dtype <U1"),
        (np.ones((2, 5, 0, 0)), ValueError, r"of at least one pixel; got shape \(2, 5, 0, 0\)"),
        (np.ones((5, 16, 16)), ValueError, r"takes images .*got shape \(5, 16, 16\)"),
    ],
)
def test_aperture_photometry_refuses_what_is_not_images(X, error, match):
    with pytest.raises(error, match=match):
        AperturePhotometry().fit(X)


def test_aperture_photometry_refuses_non_finite_pixels_naming_stamps():
    images = IMAGES.copy()
    images[1, 2, 3, 3] = np.nan
    model = AperturePhotometry().fit(IMAGES)
    with pytest.raises(ValueError, match=r"NaN or infinite pixels .* in stamps 1: aperture"):
        model.transform(images)
    with pytest.raises(ValueError, match=r"in stamps 0"):
        model.transform(np.full((1, 5, 16, 16), 1e39))  # beyond float32: inf
    assert np.isfinite(model.transform(IMAGES)).all()


def test_aperture_fluxes_checks_radii_and_images():
    with pytest.raises(ValueError, match=r"radii must be 1 to 100 finite radii in \(0, 10800\]"):
        aperture_fluxes(IMAGES, radii=(-1.0, 2.0))
    with pytest.raises(ValueError, match=r"radii must be 1 to 100 finite radii"):
        aperture_fluxes(IMAGES, radii=(np.nan,))
    with pytest.raises(TypeError, match=r"radii must be a sequence of numbers"):
        aperture_fluxes(IMAGES, radii="ab")
    with pytest.raises(TypeError, match=r"images must be an array of numbers"):
        aperture_fluxes(np.full((1, 5, 4, 4), "x"))
