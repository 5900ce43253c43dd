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
