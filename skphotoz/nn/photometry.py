"""Aperture photometry inside the network: hybrid photo-z models of images and exact colours.

A network trained on a few hundred labels re-learns colours from pixels only approximately,
while a regressor on aperture colours gets them exactly (and on simulated SDSS galaxies wins).
These modules give the network the photometry as it is measured, in a fixed layer, so that the
image branch only has to add what photometry lacks (size, profile, morphology):

- :class:`AperturePhotometryLayer`: the features of
  :class:`skphotoz.preprocessing.AperturePhotometry` (adjacent-band colours in the middle
  aperture, the reference band's magnitude in every aperture, colours in the smallest), from
  the linear fluxes of whole stamps, standardised with training statistics; no parameters.
- :class:`HybridEncoder`: an image encoder on the central crop, a small learned bottleneck of
  its features, and the photometry of the whole stamp, joined (the hybrid photo-z network);
- :class:`PhotometryJoined`: a fitted embedding and the photometry, weighted and joined (the
  hybrid embedding of ``MoCoEmbedder(join_photometry=w)``).
"""

from __future__ import annotations

import torch
from torch import nn

from .engine import center_crop
from .scaling import MAX_STANDARD_SCORE

#: m_AB = 22.5 - 2.5 log10(flux in nanomaggies).
_ZEROPOINT = 22.5


class AperturePhotometryLayer(nn.Module):
    """Standardised aperture colours and magnitudes of centred stamps; nothing is learned.

    Computed in float32 (float64 for float64 input) outside autocast: bf16 fluxes would lose
    0.004 mag of precision, the size of the colour differences that carry redshift.

    Parameters
    ----------
    masks : tensor of shape (n_radii, height, width)
        1 inside each aperture, 0 outside (e.g. ``skphotoz.preprocessing.aperture_masks``),
        smallest aperture first.
    reference_band : int
        Band whose magnitude is given in every aperture.
    flux_floor : float
        Smallest flux used in a magnitude, so that empty apertures stay finite.
    mean, scale : sequence of float, optional
        Statistics of the features on the training stamps; features are returned as
        ``(feature - mean) / scale``. Unstandardised without them.
    """

    def __init__(self, masks, reference_band: int, flux_floor: float, mean=None, scale=None):
        super().__init__()
        masks = torch.as_tensor(masks, dtype=torch.float32)
        self.register_buffer("masks", masks)
        self.reference_band = int(reference_band)
        self.flux_floor = float(flux_floor)
        n_features = None
        if mean is not None:
            mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1)
            scale = torch.as_tensor(scale, dtype=torch.float32).reshape(1, -1)
            n_features = mean.shape[1]
        self.register_buffer("mean", mean)
        self.register_buffer("scale", scale)
        self.n_features = n_features

    def magnitudes(self, images: torch.Tensor) -> torch.Tensor:
        """AB magnitudes (n, n_radii, n_bands) of the fluxes inside each aperture."""
        dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
        with torch.autocast(images.device.type, enabled=False):
            flux = torch.einsum("nbij,aij->nab", images.to(dtype), self.masks.to(dtype))
            return _ZEROPOINT - 2.5 * torch.log10(flux.clamp_min(self.flux_floor))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != self.masks.shape[-2:]:
            raise ValueError(
                f"AperturePhotometryLayer measures stamps of {tuple(self.masks.shape[-2:])} "
                f"pixels; got {tuple(images.shape[-2:])}."
            )
        mag = self.magnitudes(images)
        colours = mag[:, :, :-1] - mag[:, :, 1:]
        features = torch.cat([colours[:, 1], mag[:, :, self.reference_band], colours[:, 0]], dim=1)
        if self.mean is None:
            return features
        score = torch.nan_to_num((features - self.mean) / self.scale, nan=0.0)
        return score.clamp(-MAX_STANDARD_SCORE, MAX_STANDARD_SCORE)


class PhotometryJoined(nn.Module):
    """``[weight * photometry / sqrt(n_features), embedding / |embedding|]`` of whole stamps.

    The embedding comes from ``module`` on the central ``crop`` pixels; with standardised
    photometry both parts have a typical squared length of about 1, so ``weight`` sets the
    photometry's share of a distance between two outputs.
    """

    def __init__(self, module: nn.Module, photometry: AperturePhotometryLayer, weight, crop):
        super().__init__()
        self.module = module
        self.photometry = photometry
        self.weight = float(weight)
        self.crop = crop

    def forward(self, stamps: torch.Tensor) -> torch.Tensor:
        embedding = nn.functional.normalize(self.module(center_crop(stamps, self.crop)), dim=1)
        factor = self.weight / self.photometry.n_features**0.5
        photometry = (self.photometry(stamps) * factor).to(embedding.dtype)
        return torch.cat([photometry, embedding], dim=1)


class HybridEncoder(nn.Module):
    """Image features through a bottleneck, joined to the exact photometry of the stamp.

    ``forward(stamps)`` takes whole stamps: the image encoder sees their central
    ``crop`` pixels, the photometry layer the whole stamp. In training, :meth:`join` takes the
    augmented views and the stamps they came from separately, so that the photometry is that
    of the galaxy, not of a shifted or rotated view.

    Parameters
    ----------
    image : nn.Module
        Image encoder (input scaling and backbone) with ``out_features``.
    photometry : AperturePhotometryLayer
        With its training statistics (``n_features`` set).
    bottleneck : int
        Width of the learned projection of the image features (Linear, BatchNorm, ReLU); small,
        so that the few labels of a fine-tuning do not spread over hundreds of image features
        next to a dozen photometric ones. 0 joins no image features (photometry only).
    crop : int or None
        Central crop of the stamps fed to the image encoder (its training view size).
    """

    def __init__(
        self, image: nn.Module, photometry: AperturePhotometryLayer, bottleneck: int, crop
    ):
        super().__init__()
        self.image = image
        self.photometry = photometry
        self.crop = crop
        self.bottleneck = nn.Sequential(
            nn.Linear(image.out_features, bottleneck),
            nn.BatchNorm1d(bottleneck),
            nn.ReLU(inplace=True),
        )
        self.out_features = bottleneck + photometry.n_features

    def join(self, views: torch.Tensor, stamps: torch.Tensor) -> torch.Tensor:
        """(n, out_features): the bottleneck of ``views``' features, then ``stamps``' photometry."""
        image_part = self.bottleneck(self.image(views))
        photometry = self.photometry(stamps).to(image_part.dtype)
        return torch.cat([image_part, photometry], dim=1)

    def forward(self, stamps: torch.Tensor) -> torch.Tensor:
        return self.join(center_crop(stamps, self.crop), stamps)
