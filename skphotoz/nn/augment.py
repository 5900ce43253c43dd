"""Batched augmentations of galaxy images, run on the training device.

Each transformation draws its parameters per image from a ``torch.Generator`` on the images'
device, so a whole batch is augmented in a few tensor operations with no per-image Python.
The defaults follow the self-supervised photo-z work on SDSS (Hayat et al. 2021): rotation by a
uniform angle, flips, centre jitter, PSF blur, additive Gaussian noise and Galactic reddening.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import finite, integer, validated

#: A_b / E(B-V) for ugriz, Schlafly & Finkbeiner (2011).
SDSS_EXTINCTION_COEFFICIENTS = (4.239, 3.303, 2.285, 1.698, 1.263)

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

# Bounds of the augmentation parameters: far beyond any useful value (a stamp is at most a
# few hundred pixels, E(B-V) of the sky at most a few, 20 magnitudes a factor 1e8), but finite,
# so that a typo cannot fill the views with NaN, zeros or infinities.
_CONSTRAINTS = {
    "output_size": [integer(1, 8192)],
    "rotation": ["boolean"],
    "flip": ["boolean"],
    "jitter": [finite(0, 10_000, closed="both")],
    "scale": [finite(1, 100, closed="both")],
    "psf_fwhm": [finite(0, 1024, closed="both")],
    "noise": [finite(0, 1000, closed="both")],
    "dust_ebv": [finite(0, 10, closed="both")],
    "brightness": [finite(0, 20, closed="both")],
}


def _finite_vector(caller: str, name: str, value, allow_empty: bool = False) -> torch.Tensor:
    """A 1-D float32 tensor of finite non-negative numbers, or a ValueError naming ``name``."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{caller}: {name} must be a sequence of numbers; got {value!r}.") from None
    if array.ndim != 1 or (array.size == 0 and not allow_empty):
        raise ValueError(
            f"{caller}: {name} must be a 1-D sequence of numbers, one per band or feature; "
            f"got shape {array.shape}."
        )
    if not np.all(np.isfinite(array)) or np.any(array < 0) or np.any(array > 1e30):
        raise ValueError(
            f"{caller}: {name} must hold finite numbers in [0, 1e30]; got {array.tolist()}."
        )
    return torch.as_tensor(array, dtype=torch.float32)


def _uniform(n: int, low: float, high: float, generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def affine_resample(
    images: torch.Tensor,
    angle: torch.Tensor,
    flip: torch.Tensor,
    shift: torch.Tensor,
    scale: torch.Tensor,
    output_size: int,
) -> torch.Tensor:
    """Rotate, flip, shift and scale square images in one bilinear resampling.

    Parameters
    ----------
    images : tensor of shape (n, C, S, S)
    angle : tensor of shape (n,)
        Counter-clockwise rotation in radians.
    flip : bool tensor of shape (n,)
        Mirror the horizontal axis before rotating.
    shift : tensor of shape (n, 2)
        Offset of the output centre from the input centre, in input pixels (x, y).
    scale : tensor of shape (n,)
        Magnification: the galaxy appears ``scale`` times larger. Fluxes are divided by
        ``scale**2`` so that the total flux is preserved.
    output_size : int
        Side of the output, centred on the (shifted) input centre. Pixels that come from
        outside the input are reflected from inside it, so corners show sky, not zeros.
    """
    n, _, height, width = images.shape
    if height != width:
        raise ValueError(f"images must be square; got {height}x{width}.")
    cos, sin = torch.cos(angle), torch.sin(angle)
    mirror = torch.where(flip, -1.0, 1.0).to(images.dtype)
    # theta maps output coordinates (normalised to [-1, 1]) to input coordinates.
    ratio = output_size / width / scale
    theta = torch.zeros(n, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = ratio * cos * mirror
    theta[:, 0, 1] = -ratio * sin
    theta[:, 1, 0] = ratio * sin * mirror
    theta[:, 1, 1] = ratio * cos
    theta[:, :, 2] = 2.0 * shift / width
    grid = F.affine_grid(theta, (n, images.shape[1], output_size, output_size), align_corners=False)
    out = F.grid_sample(
        images, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    return out / (scale**2).reshape(n, 1, 1, 1)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Convolve each image with a normalised circular Gaussian of its own ``sigma`` (pixels).

    Parameters
    ----------
    images : tensor of shape (n, C, H, W)
    sigma : tensor of shape (n,)
        Standard deviation in pixels; 0 leaves an image unchanged.
    """
    n, c, h, w = images.shape
    radius = max(1, int(math.ceil(3.0 * float(sigma.max()))))
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    safe = sigma.clamp_min(1e-6).reshape(n, 1)
    kernel = torch.exp(-0.5 * (offsets.reshape(1, -1) / safe) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    kernel = kernel.repeat_interleave(c, dim=0)  # one kernel per (image, band)
    flat = images.reshape(1, n * c, h, w)
    flat = F.conv2d(flat, kernel.reshape(n * c, 1, 1, -1), padding=(0, radius), groups=n * c)
    flat = F.conv2d(flat, kernel.reshape(n * c, 1, -1, 1), padding=(radius, 0), groups=n * c)
    return flat.reshape(n, c, h, w)


def add_gaussian_noise(
    images: torch.Tensor, std: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add white Gaussian noise of standard deviation ``std`` (shape (n, C) or (C,))."""
    std = std.reshape(-1, images.shape[1], 1, 1) if std.ndim == 2 else std.reshape(1, -1, 1, 1)
    noise = torch.randn(images.shape, generator=generator, device=images.device)
    return images + noise.to(images.dtype) * std


def redden_images(images: torch.Tensor, ebv: torch.Tensor, coefficients) -> torch.Tensor:
    """Dim band *b* by ``10**(-0.4 R_b E(B-V))``; ``ebv`` has shape (n,)."""
    r = torch.as_tensor(coefficients, dtype=images.dtype, device=images.device)
    return images * 10.0 ** (-0.4 * ebv.reshape(-1, 1, 1, 1) * r.reshape(1, -1, 1, 1))


class GalaxyAugment(nn.Module):
    """Random views of multi-band galaxy images for contrastive learning and fine-tuning.

    Applied in the order: reddening, brightness, one affine resampling (rotation, flip,
    jitter, scaling, crop), PSF blur, noise.

    Parameters
    ----------
    output_size : int
        Side of the returned views, cut around the (jittered) centre; smaller than the input
        stamp to avoid empty corners after rotation and jitter.
    rotation : bool, default=True
        Rotate by an angle uniform in [0, 2 pi).
    flip : bool, default=True
        Mirror with probability 1/2.
    jitter : float, default=4.0
        Largest shift of the centre, in pixels, uniform per axis.
    scale : float, default=1.1
        Magnify by a factor log-uniform in [1/scale, scale], flux preserved; 1 disables.
    psf_fwhm : float, default=1.5
        Largest extra Gaussian blur, FWHM in pixels (0.396"/px), uniform from 0.
    noise : float, default=1.0
        Largest added Gaussian noise as a multiple of each band's noise level
        ``noise_sigma``, uniform from 0.
    noise_sigma : sequence of float, optional
        Per-band pixel noise of the data (e.g. the MAD of the sky); required for ``noise > 0``.
    dust_ebv : float, default=0.0
        Largest E(B-V) of the reddening, uniform from 0; for dereddened input, Hayat et al.
        (2021) use 0.5.
    brightness : float, default=0.0
        Largest change of the total brightness in magnitudes, uniform in [-brightness,
        brightness], the same factor in every band so colours are kept. A contrastive encoder
        otherwise tells galaxies apart mostly by brightness and size, which carry less redshift
        information than colours.
    extinction_coefficients : sequence of float, default=SDSS ugriz
        R_b = A_b / E(B-V) per band.
    """

    @validated(_CONSTRAINTS)
    def __init__(
        self,
        output_size: int,
        *,
        rotation: bool = True,
        flip: bool = True,
        jitter: float = 4.0,
        scale: float = 1.1,
        psf_fwhm: float = 1.5,
        noise: float = 1.0,
        noise_sigma=None,
        dust_ebv: float = 0.0,
        brightness: float = 0.0,
        extinction_coefficients=SDSS_EXTINCTION_COEFFICIENTS,
    ):
        super().__init__()
        self.output_size = output_size
        self.rotation = rotation
        self.flip = flip
        self.jitter = jitter
        self.scale = scale
        self.psf_fwhm = psf_fwhm
        self.noise = noise
        self.dust_ebv = dust_ebv
        self.brightness = brightness
        if noise > 0 and noise_sigma is None:
            raise ValueError("noise > 0 needs the per-band noise level noise_sigma.")
        sigma = _finite_vector(
            "GalaxyAugment", "noise_sigma", [] if noise_sigma is None else noise_sigma, True
        )
        self.register_buffer("noise_sigma", sigma)
        self.register_buffer(
            "extinction_coefficients",
            _finite_vector("GalaxyAugment", "extinction_coefficients", extinction_coefficients),
        )

    def forward(
        self,
        images: torch.Tensor,
        generator: torch.Generator | None = None,
        return_draws: bool = False,
    ):
        """Views of ``images`` (n, n_bands, output_size, output_size).

        With ``return_draws`` also a dict of the photometric changes drawn for each view:
        ``"ebv"`` (n,), the E(B-V) of the reddening, ``"delta_mag"`` (n,), the brightness
        change in magnitudes (zeros where off), and ``"magnitude_change"`` (n, n_bands),
        ``delta_mag + R_b ebv``: every band's magnitude in the view is its stamp's plus that
        (the aperture following the galaxy, before noise and blur), what the photometry term
        of pretraining follows.
        """
        if not isinstance(images, torch.Tensor) or not images.is_floating_point():
            what = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
            raise TypeError(f"GalaxyAugment takes a floating-point torch tensor; got {what}.")
        if images.ndim != 4:
            raise ValueError(
                f"GalaxyAugment takes images (n, n_bands, height, width); got shape "
                f"{tuple(images.shape)}."
            )
        n, c, size, _ = images.shape
        dev = images.device
        draws = {
            "ebv": torch.zeros(n, device=dev),
            "delta_mag": torch.zeros(n, device=dev),
            "magnitude_change": torch.zeros(n, c, device=dev),
        }
        if n == 0:
            views = images.new_empty((0, c, self.output_size, self.output_size))
            return (views, draws) if return_draws else views
        if self.noise > 0 and len(self.noise_sigma) != c:
            raise ValueError(
                f"noise needs one noise_sigma per band: {c} bands, {len(self.noise_sigma)} "
                f"noise levels."
            )
        if self.dust_ebv > 0:
            if c != len(self.extinction_coefficients):
                raise ValueError(
                    f"dust reddening needs one extinction coefficient per band: {c} bands, "
                    f"{len(self.extinction_coefficients)} coefficients."
                )
            ebv = _uniform(n, 0.0, self.dust_ebv, generator, dev)
            images = redden_images(images, ebv, self.extinction_coefficients)
            draws["ebv"] = ebv
            draws["magnitude_change"] = ebv[:, None] * self.extinction_coefficients[None, :]
        if self.brightness > 0:
            delta_mag = _uniform(n, -self.brightness, self.brightness, generator, dev)
            draws["delta_mag"] = delta_mag
            draws["magnitude_change"] = draws["magnitude_change"] + delta_mag[:, None]
            images = images * (10.0 ** (-0.4 * delta_mag)).to(images.dtype).reshape(n, 1, 1, 1)
        angle = (
            _uniform(n, 0.0, 2.0 * math.pi, generator, dev)
            if self.rotation
            else torch.zeros(n, device=dev)
        )
        flip = (
            torch.rand(n, generator=generator, device=dev) < 0.5
            if self.flip
            else torch.zeros(n, dtype=torch.bool, device=dev)
        )
        shift = (2.0 * torch.rand(n, 2, generator=generator, device=dev) - 1.0) * self.jitter
        log_scale = math.log(self.scale)
        scale = torch.exp(_uniform(n, -log_scale, log_scale, generator, dev))
        views = affine_resample(
            images, angle, flip, shift.to(images.dtype), scale.to(images.dtype), self.output_size
        )
        if self.psf_fwhm > 0:
            sigma = _uniform(n, 0.0, self.psf_fwhm, generator, dev) / _FWHM_PER_SIGMA
            views = gaussian_blur(views, sigma.to(images.dtype))
        if self.noise > 0:
            level = _uniform(n, 0.0, self.noise, generator, dev).reshape(n, 1)
            views = add_gaussian_noise(views, level * self.noise_sigma.reshape(1, c), generator)
        return (views, draws) if return_draws else views


class VectorAugment(nn.Module):
    """Views of feature vectors: Gaussian noise of up to ``noise`` times each feature's scale."""

    @validated({"noise": _CONSTRAINTS["noise"]})
    def __init__(self, feature_scale, noise: float = 0.1):
        super().__init__()
        self.noise = noise
        self.register_buffer(
            "feature_scale", _finite_vector("VectorAugment", "feature_scale", feature_scale)
        )

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.noise <= 0:
            return x
        level = self.noise * torch.rand(x.shape[0], 1, generator=generator, device=x.device)
        eps = torch.randn(x.shape, generator=generator, device=x.device)
        return x + level * eps * self.feature_scale.reshape(1, -1)


def dihedral_views(images: torch.Tensor) -> list[torch.Tensor]:
    """The eight quarter-turn and mirror images of a batch (identity first)."""
    views = []
    for turns in range(4):
        turned = torch.rot90(images, turns, dims=(-2, -1))
        views += [turned, torch.flip(turned, dims=(-1,))]
    return views


class OverDihedralViews(nn.Module):
    """Apply ``module`` to the eight dihedral views of each image: (n, 8, ...) outputs.

    Galaxies have no preferred orientation, so a model's outputs over these views are eight
    equally valid estimates (test-time augmentation).
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.module(view) for view in dihedral_views(images)], dim=1)
