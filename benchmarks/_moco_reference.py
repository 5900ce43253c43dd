"""A MoCo input pipeline written the usual way, as a yardstick for skphotoz's engine.

Published MoCo code feeds the model from a ``torch.utils.data.Dataset`` whose ``__getitem__``
returns two augmented views of one sample, augmented one sample at a time by torchvision
transforms in ``DataLoader`` worker processes, and runs a plain loop over the loader (load,
move to the device, forward, backward, step, log the loss). This module is that pipeline, with
transforms chosen to match :class:`skphotoz.nn.GalaxyAugment` as closely as torchvision allows:

- reddening by ``E(B-V)`` uniform in ``[0, dust_ebv]`` and a brightness change uniform in
  ``[-brightness, brightness]`` magnitudes (small per-sample tensor transforms: torchvision
  has neither);
- a random horizontal flip, then one ``RandomAffine``: rotation uniform over 360 degrees,
  shift of up to ``jitter`` pixels per axis, magnification in ``[1/scale, scale]``
  (uniform, where GalaxyAugment draws it log-uniform), bilinear, outside pixels 0 (where
  GalaxyAugment reflects);
- ``CenterCrop`` to the view size;
- ``GaussianBlur`` with sigma uniform up to ``psf_fwhm / 2.355`` pixels;
- additive Gaussian noise of up to ``noise`` times each band's sky noise.

It is meant to be a fair, competent implementation: ``pin_memory`` on CUDA, persistent
workers, non-blocking copies, the same memory format and bf16 autocast as skphotoz uses on
CUDA, and the same MoCo module and optimiser settings.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torchvision.transforms import v2


class Redden:
    """Dim band b by ``10**(-0.4 R_b E(B-V))`` with E(B-V) uniform in [0, max_ebv]."""

    def __init__(self, coefficients, max_ebv: float):
        self.coefficients = torch.as_tensor(coefficients, dtype=torch.float32).reshape(-1, 1, 1)
        self.max_ebv = max_ebv

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        ebv = self.max_ebv * float(torch.rand(()))
        return x * 10.0 ** (-0.4 * ebv * self.coefficients)


class Brightness:
    """Multiply all bands by ``10**(-0.4 dm)``, dm uniform in [-max_mag, max_mag]."""

    def __init__(self, max_mag: float):
        self.max_mag = max_mag

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        dm = self.max_mag * (2.0 * float(torch.rand(())) - 1.0)
        return x * 10.0 ** (-0.4 * dm)


class SkyNoise:
    """Add Gaussian noise of ``u * sigma_b`` in band b, u uniform in [0, max_level]."""

    def __init__(self, sigma, max_level: float):
        self.sigma = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1, 1, 1)
        self.max_level = max_level

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        level = self.max_level * float(torch.rand(()))
        return x + torch.randn_like(x) * (level * self.sigma)


def galaxy_transform(augment, stamp_size: int) -> v2.Compose:
    """torchvision pipeline with the settings of a :class:`skphotoz.nn.GalaxyAugment`."""
    steps = []
    if augment.dust_ebv > 0:
        steps.append(Redden(augment.extinction_coefficients.cpu(), augment.dust_ebv))
    if augment.brightness > 0:
        steps.append(Brightness(augment.brightness))
    if augment.flip:
        steps.append(v2.RandomHorizontalFlip())
    shift = augment.jitter / stamp_size
    steps.append(
        v2.RandomAffine(
            degrees=180 if augment.rotation else 0,
            translate=(shift, shift) if shift > 0 else None,
            scale=(1 / augment.scale, augment.scale) if augment.scale > 1 else None,
            interpolation=v2.InterpolationMode.BILINEAR,
        )
    )
    steps.append(v2.CenterCrop(augment.output_size))
    if augment.psf_fwhm > 0:
        sigma = augment.psf_fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        radius = max(1, math.ceil(3 * sigma))
        steps.append(v2.GaussianBlur(2 * radius + 1, sigma=(1e-3, sigma)))
    if augment.noise > 0:
        steps.append(SkyNoise(augment.noise_sigma.cpu(), augment.noise))
    return v2.Compose(steps)


class TwoViews(torch.utils.data.Dataset):
    """Two independently augmented views of each image of an in-memory array."""

    def __init__(self, images: np.ndarray, transform):
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = torch.from_numpy(np.ascontiguousarray(self.images[index], dtype=np.float32))
        return self.transform(image), self.transform(image)


def make_loader(images, transform, batch_size: int, num_workers: int, device: torch.device):
    """The DataLoader of the usual loop: shuffled, pinned on CUDA, persistent workers."""
    return torch.utils.data.DataLoader(
        TwoViews(images, transform),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(0),
    )


def batches_forever(loader):
    """The loader's batches, epoch after epoch (a new shuffle each epoch)."""
    while True:
        yield from loader


def train_steps(moco, optimizer, batches, n_steps: int, device: torch.device, bf16: bool = True):
    """``n_steps`` steps of the usual MoCo loop on the next batches; (images seen, seconds).

    bf16 autocast on CUDA unless ``bf16`` is False (as skphotoz's engine does)."""
    cuda = device.type == "cuda"
    layout = torch.channels_last if cuda else torch.contiguous_format
    moco.train()
    n_seen, started = 0, time.perf_counter()
    for _ in range(n_steps):
        view_q, view_k = next(batches)
        view_q = view_q.to(device, non_blocking=True).contiguous(memory_format=layout)
        view_k = view_k.to(device, non_blocking=True).contiguous(memory_format=layout)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda and bf16):
            loss = moco(view_q, view_k)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()  # the loss is logged every step
        n_seen += view_q.shape[0]
    return n_seen, time.perf_counter() - started
