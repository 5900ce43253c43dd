import numpy as np
import pytest

from skphotoz.data import (
    EXTINCTION_COEFFICIENTS,
    deredden,
    extinction_from_ebv,
    mag_to_nanomaggies,
    nanomaggies_to_mag,
    redden,
)


def test_redden_then_deredden_is_identity():
    rng = np.random.default_rng(0)
    images = rng.lognormal(size=(6, 5, 8, 8)).astype(np.float64)
    ebv = rng.uniform(0, 0.5, 6)
    reddened = redden(images, ebv)
    restored = deredden(reddened, extinction_from_ebv(ebv))
    np.testing.assert_allclose(restored, images, rtol=1e-12)
    assert np.all(reddened < images)


def test_redden_uses_sdss_coefficients():
    images = np.ones((1, 5, 2, 2))
    out = redden(images, 0.1)
    expected = 10 ** (-0.4 * 0.1 * np.array([4.239, 3.303, 2.285, 1.698, 1.263]))
    np.testing.assert_allclose(out[0, :, 0, 0], expected, rtol=1e-12)
    # u is the most extincted band, z the least.
    assert out[0, 0, 0, 0] < out[0, 4, 0, 0]


def test_deredden_multiplies_by_extinction_factor():
    images = np.full((2, 5, 3, 3), 2.0, dtype=np.float32)
    ext = np.array([[0.5, 0.4, 0.3, 0.2, 0.1], [0.0] * 5])
    out = deredden(images, ext)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, 1, 1], 2.0 * 10 ** (0.4 * ext[0]), rtol=1e-6)
    np.testing.assert_allclose(out[1], 2.0)


def test_extinction_from_ebv_shape():
    ext = extinction_from_ebv([0.1, 0.2])
    assert ext.shape == (2, 5)
    np.testing.assert_allclose(ext[1], 0.2 * EXTINCTION_COEFFICIENTS)


@pytest.mark.parametrize(
    ("images", "ext", "match"),
    [
        (np.ones((2, 5, 4)), np.zeros((2, 5)), "images must be a 4-D array"),
        (np.ones((2, 5, 4, 4)), np.zeros((2, 4)), "extinction has 4 bands but images have 5"),
        (np.ones((2, 5, 4, 4)), np.zeros((3, 5)), "one row per image \\(2\\)"),
        (
            np.ones((2, 5, 4, 4)),
            np.array([[0.1] * 5, [0.1, np.inf, 0.1, np.nan, 0.1]]),
            r"extinction must be finite; got 2 NaN or infinite value\(s\) of 10",
        ),
    ],
)
def test_deredden_errors(images, ext, match):
    with pytest.raises(ValueError, match=match):
        deredden(images, ext)


def test_redden_rejects_wrong_ebv_count():
    with pytest.raises(ValueError, match="ebv must be a scalar or have one value per image"):
        redden(np.ones((2, 5, 4, 4)), [0.1, 0.2, 0.3])


@pytest.mark.parametrize(
    ("ebv", "coefficients", "match"),
    [
        (np.inf, EXTINCTION_COEFFICIENTS, r"ebv must be finite; got 1 NaN or infinite value"),
        ([0.1, np.nan], EXTINCTION_COEFFICIENTS, r"ebv must be finite; got 1 NaN"),
        ([[0.1]], EXTINCTION_COEFFICIENTS, r"ebv must be a scalar or 1-D array; got shape"),
        (0.1, [4.2, np.nan, 2.3, 1.7, 1.3], r"coefficients must be finite; got 1 NaN"),
        (0.1, [[4.2, 3.3]], r"coefficients must be a 1-D array \(n_bands,\); got shape \(1, 2\)"),
    ],
)
def test_extinction_from_ebv_refuses_non_finite_or_misshapen(ebv, coefficients, match):
    with pytest.raises(ValueError, match=match):
        extinction_from_ebv(ebv, coefficients)
    with pytest.raises(ValueError, match=match):
        redden(np.ones((2, 5, 4, 4)), ebv, coefficients)


def test_magnitude_round_trip():
    mags = np.array([14.0, 17.77, 22.5, 25.0])
    np.testing.assert_allclose(nanomaggies_to_mag(mag_to_nanomaggies(mags)), mags, rtol=1e-12)
    assert mag_to_nanomaggies(22.5) == pytest.approx(1.0)
    assert mag_to_nanomaggies(20.0) == pytest.approx(10.0)
    assert np.isinf(nanomaggies_to_mag([0.0, -1.0])).all()
