import math

import numpy as np
import pytest

from skphotoz.data import to_rgb


def test_asinh_stretch_hand_computed():
    # One pixel with ugriz fluxes 0, 0.1, 0.2, 0.3, 0: red = i, green = 1.1 r, blue = 1.6 g.
    image = np.array([0.0, 0.1, 0.2, 0.3, 0.0]).reshape(5, 1, 1)
    rgb = to_rgb(image)
    assert rgb.shape == (1, 1, 3)
    channels = np.array([0.3, 1.1 * 0.2, 1.6 * 0.1])
    intensity = channels.mean()
    factor = math.asinh(8.0 * intensity / 0.5) / (8.0 * intensity)
    np.testing.assert_allclose(rgb[0, 0], channels * factor, rtol=1e-12)


def test_minimum_is_black_and_bright_pixels_keep_their_hue():
    images = np.zeros((2, 5, 1, 2))
    images[0, :, 0, 0] = 0.05  # at the minimum: black
    images[1, 1:4, 0, 1] = [100.0, 200.0, 300.0]  # saturated
    rgb = to_rgb(images, minimum=0.05, bands=(3, 2, 1), scales=(1.0, 1.0, 1.0))
    assert rgb.shape == (2, 1, 2, 3)
    np.testing.assert_array_equal(rgb[0, 0, 0], 0.0)
    # Scaled down as a whole, not clipped per channel: the brightest channel is 1 and the
    # others keep their ratios to it (after the minimum is subtracted).
    bright = rgb[1, 0, 1]
    above_minimum = np.array([300.0, 200.0, 100.0]) - 0.05
    np.testing.assert_allclose(bright, above_minimum / above_minimum[0], rtol=1e-12)
    assert np.all((rgb >= 0) & (rgb <= 1))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stretch": 0}, r"'stretch' parameter of to_rgb must be a float in the range "
                         r"\(0\.0, inf\)\. Got 0 instead"),
        ({"stretch": np.inf}, r"'stretch' .* Got inf instead"),
        ({"Q": np.nan}, r"'Q' .* Got nan instead"),
        ({"Q": True}, r"'Q' .* Got True instead"),
        ({"minimum": np.inf}, r"'minimum' .* range \(-inf, inf\)\. Got inf instead"),
        ({"minimum": "0"}, r"'minimum' .* Got '0' instead"),
        ({"bands": (3, 2, 5)}, r"'bands\[2\]' parameter of to_rgb must be an int in the range "
                               r"\[-5, 4\]\. Got 5 instead"),
        ({"bands": (3, True, 1)}, r"'bands\[1\]' .* Got True instead"),
        ({"bands": (3.0, 2, 1)}, r"'bands\[0\]' .* Got 3.0 instead"),
        ({"bands": (3, 2)}, r"bands must be a sequence of three numbers; got \(3, 2\)"),
        ({"bands": "irg"}, r"bands must be a sequence of three numbers; got 'irg'"),
        ({"scales": (1.0, 0.0, 1.0)}, r"'scales\[1\]' .* Got 0.0 instead"),
        ({"scales": (1.0, 1.0, np.nan)}, r"'scales\[2\]' .* Got nan instead"),
    ],
)  # fmt: skip
def test_argument_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        to_rgb(np.ones((2, 5, 3, 3)), **kwargs)


def test_image_shape_is_checked():
    with pytest.raises(ValueError, match=r"images must have shape .* got \(5, 3\)"):
        to_rgb(np.ones((5, 3)))
