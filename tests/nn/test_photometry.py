import numpy as np
import pytest
import torch

from skphotoz.datasets import make_sdss_galaxies
from skphotoz.nn import AsinhScaling, Encoder, resnet
from skphotoz.nn.engine import center_crop
from skphotoz.nn.photometry import AperturePhotometryLayer, HybridEncoder
from skphotoz.preprocessing import AperturePhotometry, aperture_masks


@pytest.fixture(scope="module")
def stamps():
    return make_sdss_galaxies(24, random_state=3, stamp_size=32).images.astype(np.float32)


def _layer(stamps, standardise=True):
    features = AperturePhotometry().fit_transform(stamps)
    stats = (features.mean(axis=0), features.std(axis=0)) if standardise else (None, None)
    return AperturePhotometryLayer(aperture_masks(stamps.shape[-2:]), 2, 0.01, *stats), features


def test_the_layer_measures_what_aperture_photometry_measures(stamps):
    layer, features = _layer(stamps, standardise=False)
    measured = layer(torch.as_tensor(stamps)).numpy()
    np.testing.assert_allclose(measured, features, atol=2e-4)
    layer, features = _layer(stamps)
    standardised = layer(torch.as_tensor(stamps)).numpy()
    np.testing.assert_allclose(standardised.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(standardised.std(axis=0), 1, atol=1e-3)


def test_the_layer_keeps_float32_under_bf16_autocast(stamps):
    layer, _ = _layer(stamps)
    x = torch.as_tensor(stamps)
    exact = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = layer(x)
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, exact)


def test_the_layer_refuses_stamps_of_another_size(stamps):
    layer, _ = _layer(stamps)
    with pytest.raises(ValueError, match=r"stamps of \(32, 32\) pixels; got \(16, 16\)"):
        layer(torch.as_tensor(stamps[:, :, 8:24, 8:24]))


def test_hybrid_joins_the_bottleneck_of_the_views_to_the_photometry_of_the_stamps(stamps):
    torch.manual_seed(0)
    layer, _ = _layer(stamps)
    image = Encoder(AsinhScaling([0.1] * 5), resnet(18, 5))
    hybrid = HybridEncoder(image, layer, bottleneck=6, crop=16).eval()
    x = torch.as_tensor(stamps)
    with torch.no_grad():
        whole = hybrid(x)
        assert whole.shape == (24, 6 + 11) and hybrid.out_features == 17
        # forward = the central crop for the images, the whole stamp for the photometry
        torch.testing.assert_close(whole, hybrid.join(center_crop(x, 16), x))
        torch.testing.assert_close(whole[:, 6:], layer(x))
        # other views change the image part only
        turned = hybrid.join(torch.rot90(center_crop(x, 16), 1, dims=(-2, -1)), x)
    torch.testing.assert_close(turned[:, 6:], whole[:, 6:])
    assert not torch.allclose(turned[:, :6], whole[:, :6])
