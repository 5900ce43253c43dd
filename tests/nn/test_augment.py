import math

import numpy as np
import pytest
import torch

from skphotoz.nn import GalaxyAugment, VectorAugment
from skphotoz.nn.augment import (
    SDSS_EXTINCTION_COEFFICIENTS,
    add_gaussian_noise,
    affine_resample,
    gaussian_blur,
    redden_images,
)


def _galaxies(n=4, size=48):
    y, x = torch.meshgrid(
        torch.arange(size) - (size - 1) / 2, torch.arange(size) - (size - 1) / 2, indexing="ij"
    )
    profile = torch.exp(-0.5 * (x**2 / 16.0 + y**2 / 6.0))  # elongated, centred
    fluxes = torch.tensor([1.0, 2.0, 3.0, 3.5, 4.0]).reshape(1, 5, 1, 1)
    return (profile * fluxes).expand(n, 5, size, size).clone()


def test_rotation_by_any_angle_preserves_total_flux():
    images = _galaxies()
    angles = torch.tensor([0.1, 1.0, 2.5, 5.9])
    out = affine_resample(
        images, angles, torch.zeros(4, dtype=torch.bool), torch.zeros(4, 2), torch.ones(4), 48
    )
    torch.testing.assert_close(out.sum((2, 3)), images.sum((2, 3)), rtol=1e-3, atol=0)
    # The elongated galaxy really turned: the image changed.
    assert (out[1] - images[1]).abs().max() > 0.1


def test_quarter_turn_and_flip_are_exact_on_the_grid():
    images = torch.rand(2, 5, 16, 16)
    none = torch.zeros(2, dtype=torch.bool)
    turned = affine_resample(
        images, torch.full((2,), math.pi / 2), none, torch.zeros(2, 2), torch.ones(2), 16
    )
    rot_a, rot_b = images.rot90(1, (2, 3)), images.rot90(-1, (2, 3))
    assert torch.allclose(turned, rot_a, atol=1e-5) or torch.allclose(turned, rot_b, atol=1e-5)
    flipped = affine_resample(images, torch.zeros(2), ~none, torch.zeros(2, 2), torch.ones(2), 16)
    torch.testing.assert_close(flipped, images.flip(-1), atol=1e-5, rtol=0)


def test_shift_and_crop():
    images = torch.rand(1, 5, 20, 20)
    out = affine_resample(
        images, torch.zeros(1), torch.zeros(1, dtype=torch.bool), torch.tensor([[2.0, -3.0]]),
        torch.ones(1), 10,
    )  # fmt: skip
    # Output centre moves 2 px right and 3 px up: rows 2..12, columns 7..17.
    torch.testing.assert_close(out, images[:, :, 2:12, 7:17], atol=1e-5, rtol=0)


def _second_moments(images):
    """Flux-weighted variances (along x, along y) about the stamp centre, per image and band."""
    size = images.shape[-1]
    offset = torch.arange(size, dtype=images.dtype) - (size - 1) / 2
    flux = images.sum((2, 3))
    var_x = (images * offset.reshape(1, 1, 1, -1) ** 2).sum((2, 3)) / flux
    var_y = (images * offset.reshape(1, 1, -1, 1) ** 2).sum((2, 3)) / flux
    return var_x, var_y


def test_scaling_preserves_flux_and_magnifies():
    images = _galaxies(n=2)
    scale = torch.tensor([0.9, 1.1])
    out = affine_resample(
        images, torch.zeros(2), torch.zeros(2, dtype=torch.bool), torch.zeros(2, 2), scale, 48
    )
    # Bilinear resampling of the peak loses under 1.5% of the flux.
    torch.testing.assert_close(out.sum((2, 3)), images.sum((2, 3)), rtol=0.015, atol=0)
    # The galaxy is `scale` times larger: its variances (16 and 6 px^2) change by scale^2
    # (0.81 and 1.21), up to the ~1/6 px^2 that bilinear interpolation adds.
    expected = (scale**2).reshape(2, 1).expand(2, 5)
    for before, after in zip(_second_moments(images), _second_moments(out), strict=True):
        torch.testing.assert_close(after / before, expected, rtol=0.05, atol=0)


def test_blur_preserves_flux_and_adds_its_variance():
    images = _galaxies(n=2)
    out = gaussian_blur(images, torch.tensor([0.0, 2.0]))
    torch.testing.assert_close(out[0], images[0])
    torch.testing.assert_close(out.sum((2, 3)), images.sum((2, 3)), rtol=1e-4, atol=0)
    # Convolving Gaussians adds variances: 16 + 2^2 along x, 6 + 2^2 along y.
    var_x, var_y = _second_moments(out)
    torch.testing.assert_close(var_x[1], torch.full((5,), 20.0), rtol=0.02, atol=0)
    torch.testing.assert_close(var_y[1], torch.full((5,), 10.0), rtol=0.02, atol=0)
    # ... about the same centre.
    offset = torch.arange(48.0) - 23.5
    centroid_x = (out[1] * offset).sum((1, 2)) / out[1].sum((1, 2))
    torch.testing.assert_close(centroid_x, torch.zeros(5), rtol=0, atol=1e-3)


def test_reddening_then_dereddening_restores():
    images = torch.rand(3, 5, 8, 8) + 0.1
    ebv = torch.tensor([0.0, 0.2, 0.5])
    red = redden_images(images, ebv, SDSS_EXTINCTION_COEFFICIENTS)
    r = torch.tensor(SDSS_EXTINCTION_COEFFICIENTS).reshape(1, 5, 1, 1)
    restored = red * 10 ** (0.4 * ebv.reshape(-1, 1, 1, 1) * r)
    torch.testing.assert_close(restored, images, rtol=1e-5, atol=0)
    # u dims most: the u/z flux ratio falls with E(B-V).
    ratio = red[:, 0].mean((1, 2)) / red[:, 4].mean((1, 2))
    assert ratio[0] > ratio[1] > ratio[2]


def test_noise_has_the_asked_variance():
    images = torch.zeros(64, 5, 32, 32)
    std = torch.tensor([0.5, 0.1, 0.05, 0.2, 1.0])
    out = add_gaussian_noise(images, std, torch.Generator().manual_seed(0))
    measured = out.transpose(0, 1).reshape(5, -1).std(dim=1)
    torch.testing.assert_close(measured, std, rtol=0.02, atol=0)


def test_augment_pipeline_is_seeded_and_sized():
    images = _galaxies(n=6)
    augment = GalaxyAugment(32, noise_sigma=[0.01] * 5, dust_ebv=0.3)
    a = augment(images, torch.Generator().manual_seed(5))
    b = augment(images, torch.Generator().manual_seed(5))
    c = augment(images, torch.Generator().manual_seed(6))
    assert a.shape == (6, 5, 32, 32)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_augment_needs_noise_level():
    with pytest.raises(ValueError, match="noise > 0 needs the per-band noise level"):
        GalaxyAugment(32, noise=1.0)


def test_vector_augment_noise_scale():
    x = torch.zeros(20000, 3)
    out = VectorAugment(torch.tensor([1.0, 10.0, 0.0]), noise=0.3)(
        x, torch.Generator().manual_seed(0)
    )
    std = out.std(dim=0)
    # level ~ U(0, 0.3): E[level^2] = 0.03, so std = sqrt(0.03) * scale.
    torch.testing.assert_close(
        std, torch.tensor([1.0, 10.0, 0.0]) * 0.03**0.5, rtol=0.05, atol=1e-6
    )


def test_brightness_keeps_colours_and_stays_within_its_range():
    images = _galaxies(n=200, size=24)
    augment = GalaxyAugment(
        24, rotation=False, flip=False, jitter=0.0, scale=1.0, psf_fwhm=0.0, noise=0.0,
        brightness=0.4,
    )  # fmt: skip
    out = augment(images, torch.Generator().manual_seed(1))
    flux_in, flux_out = images.sum((2, 3)), out.sum((2, 3))
    delta_mag = -2.5 * torch.log10(flux_out / flux_in)
    # One factor for all bands: colours unchanged, the magnitude shift shared by the bands.
    torch.testing.assert_close(delta_mag, delta_mag[:, :1].expand(-1, 5), rtol=0, atol=1e-4)
    assert delta_mag.abs().max() <= 0.4 + 1e-4
    assert delta_mag.min() < -0.3 and delta_mag.max() > 0.3


# -- parameter checks (issue 15) -----------------------------------------------------------


@pytest.mark.parametrize(
    "params, match",
    [
        (
            {"rotation": "False"},
            r"'rotation' parameter of GalaxyAugment must be .*'bool'.*Got 'False'",
        ),
        ({"flip": 1}, r"'flip' parameter of GalaxyAugment must be .*'bool'.*Got 1 instead"),
        ({"rotation": None}, r"'rotation' parameter of GalaxyAugment"),
        ({"jitter": float("inf")}, r"'jitter' parameter .* range \[0.0, 10000.0\]. Got inf"),
        ({"scale": 0.5}, r"'scale' parameter .* range \[1.0, 100.0\]. Got 0.5"),
        ({"psf_fwhm": -1.0}, r"'psf_fwhm' parameter .* range \[0.0, 1024.0\]. Got -1.0"),
        ({"noise": float("nan")}, r"'noise' parameter .* range \[0.0, 1000.0\]. Got nan"),
        ({"dust_ebv": 11.0}, r"'dust_ebv' parameter .* range \[0.0, 10.0\]. Got 11.0"),
        ({"brightness": 1e10}, r"'brightness' parameter .* range \[0.0, 20.0\]"),
        ({"output_size": 0}, r"'output_size' parameter .* range \[1, 8192\]. Got 0"),
        ({"output_size": True}, r"'output_size' parameter .* Got True"),
        ({"noise_sigma": [1.0, float("nan")]}, r"noise_sigma must hold finite numbers"),
        ({"noise_sigma": "abc"}, r"noise_sigma must be a sequence of numbers"),
        ({"extinction_coefficients": [[1.0]]}, r"extinction_coefficients must be a 1-D"),
    ],
)
def test_galaxy_augment_refuses_bad_parameters(params, match):
    kwargs = {"output_size": 8, "noise_sigma": [1.0] * 5, **params}
    output_size = kwargs.pop("output_size")
    with pytest.raises((ValueError, TypeError), match=match):
        GalaxyAugment(output_size, **kwargs)


def test_galaxy_augment_takes_numpy_booleans_and_false_turns_rotation_off():
    images = torch.rand(4, 5, 16, 16)
    augment = GalaxyAugment(
        16, rotation=np.False_, flip=False, jitter=0.0, scale=1.0, psf_fwhm=0.0, noise=0.0
    )
    torch.testing.assert_close(augment(images), images)


def test_galaxy_augment_checks_images_against_its_noise_levels():
    augment = GalaxyAugment(8, noise=1.0, noise_sigma=[1.0, 1.0])
    with pytest.raises(ValueError, match=r"one noise_sigma per band: 5 bands, 2 noise levels"):
        augment(torch.rand(2, 5, 16, 16))
    with pytest.raises(ValueError, match=r"images \(n, n_bands, height, width\); got shape"):
        augment(torch.rand(5, 16, 16))


def test_vector_augment_refuses_bad_parameters():
    with pytest.raises(ValueError, match=r"'noise' parameter of VectorAugment .* Got inf"):
        VectorAugment(np.ones(3), noise=float("inf"))
    with pytest.raises(ValueError, match=r"feature_scale must hold finite numbers"):
        VectorAugment(np.array([np.nan, 1.0]))


def test_augment_takes_its_noise_levels_and_scales_as_tensors():
    sigma = torch.ones(5, requires_grad=True)
    augment = GalaxyAugment(8, noise=1.0, noise_sigma=sigma)
    assert augment(torch.rand(2, 5, 16, 16)).shape == (2, 5, 8, 8)
    assert VectorAugment(torch.ones(3) * 0.1)(torch.zeros(4, 3)).shape == (4, 3)


def test_galaxy_augment_checks_its_input_tensor():
    augment = GalaxyAugment(8, noise=0.0)
    with pytest.raises(TypeError, match=r"floating-point torch tensor; got torch.int32"):
        augment(torch.ones(2, 5, 16, 16, dtype=torch.int32))
    with pytest.raises(TypeError, match=r"floating-point torch tensor; got ndarray"):
        augment(np.ones((2, 5, 16, 16), np.float32))
    assert augment(torch.ones(0, 5, 16, 16)).shape == (0, 5, 8, 8)


def test_returned_draws_give_each_views_photometry():
    # Brightness and reddening move every band's magnitude by delta_mag + R_b E(B-V), so the
    # view's features are the stamp's plus band_weights x that. (Geometry off: an even stamp
    # is flipped about its middle, half a pixel from the apertures' centre pixel.)
    from skphotoz.datasets import make_sdss_galaxies
    from skphotoz.preprocessing import AperturePhotometry

    stamps = make_sdss_galaxies(30, random_state=3, stamp_size=24).images.astype(np.float64)
    images = torch.as_tensor(stamps)
    augment = GalaxyAugment(
        24, rotation=False, flip=False, jitter=0.0, scale=1.0, psf_fwhm=0.0, noise=0.0,
        brightness=1.0, dust_ebv=0.4,
    ).double()  # fmt: skip
    views, draws = augment(images, torch.Generator().manual_seed(4), return_draws=True)
    same = augment(images, torch.Generator().manual_seed(4))
    torch.testing.assert_close(views, same)  # the draws do not change the views
    assert set(draws) == {"ebv", "delta_mag", "magnitude_change"} and draws["ebv"].max() > 0.2
    photometry = AperturePhotometry(radii=(1.5, 3.0)).fit(stamps)
    change = draws["delta_mag"][:, None] + draws["ebv"][:, None] * augment.extinction_coefficients
    torch.testing.assert_close(draws["magnitude_change"], change)
    expected = photometry.transform(stamps) + change.numpy() @ photometry.band_weights().T
    np.testing.assert_allclose(photometry.transform(views.numpy()), expected, atol=1e-6)


def test_draws_are_zero_where_the_augmentation_is_off():
    images = _galaxies(n=4, size=16)
    augment = GalaxyAugment(8, noise=0.0)
    views, draws = augment(images, torch.Generator().manual_seed(0), return_draws=True)
    assert views.shape == (4, 5, 8, 8)
    assert not draws["ebv"].any() and not draws["delta_mag"].any()
    assert draws["magnitude_change"].shape == (4, 5) and not draws["magnitude_change"].any()
    empty, draws = augment(images[:0], return_draws=True)
    assert empty.shape == (0, 5, 8, 8) and draws["ebv"].shape == (0,)
