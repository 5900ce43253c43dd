"""Redshift heads: a binned PDF (classification over redshift bins) and a Gaussian; and the
PDFs and point redshifts read from their outputs."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..metrics import pdf_quantiles


def _mlp(in_features: int, hidden: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_features)
    )


def gaussian_over_bins(edges: torch.Tensor, mean: torch.Tensor, sigma) -> torch.Tensor:
    """Gaussians N(mean, sigma) integrated over the bins, renormalised within them: (n, n_bins).

    ``mean`` has shape (n, 1); ``sigma`` is a number or an (n, 1) tensor. A Gaussian entirely
    outside the bins puts its mass in the nearest end bin.
    """
    cdf = 0.5 * torch.erf((edges.reshape(1, -1) - mean) / (sigma * math.sqrt(2)))
    mass = torch.diff(cdf, dim=1).clamp_min(0.0)
    total = mass.sum(dim=1, keepdim=True)
    fallback = torch.zeros_like(mass)
    below = (mean[:, 0] < edges[0]).to(mass.dtype)
    fallback[:, 0] = below
    fallback[:, -1] = 1.0 - below
    return torch.where(total > 1e-12, mass / total.clamp_min(1e-12), fallback)


class BinnedRedshiftHead(nn.Module):
    """Logits over redshift bins, trained with cross-entropy (Pasquet et al. 2019).

    Parameters
    ----------
    in_features : int
    edges : sequence of float
        Increasing bin edges (``n_bins + 1`` values); labels outside are put in the end bins.
    target_sigma : float, default=0.0
        Width, in redshift, of the Gaussian that spreads each label over the bins in the
        cross-entropy target. 0 puts the whole target in the label's bin (one-hot). A width
        of a few bins tells the network that neighbouring bins are near in redshift, which
        one-hot targets leave it to learn from the labels alone.
    hidden : int, default=256
    """

    def __init__(self, in_features: int, edges, target_sigma: float = 0.0, hidden: int = 256):
        super().__init__()
        self.register_buffer("edges", torch.as_tensor(edges, dtype=torch.float32))
        self.target_sigma = float(target_sigma)
        self.mlp = _mlp(in_features, hidden, len(edges) - 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features)

    def target(self, z: torch.Tensor) -> torch.Tensor:
        """Target distribution over the bins, (n, n_bins): the labels' Gaussians integrated
        over each bin and renormalised within the bins (one-hot for ``target_sigma=0``)."""
        z = z.float().reshape(-1, 1)
        if self.target_sigma > 0:
            return gaussian_over_bins(self.edges, z, self.target_sigma)
        own_bin = torch.bucketize(z[:, 0].contiguous(), self.edges[1:-1].contiguous(), right=True)
        return F.one_hot(own_bin, len(self.edges) - 1).float()

    def loss(self, logits: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1)
        return -(self.target(z) * log_p).sum(dim=1).mean()

    def pdf(self, logits: torch.Tensor) -> torch.Tensor:
        """Probability of each bin, (n, n_bins)."""
        return torch.softmax(logits.float(), dim=1)


class GaussianRedshiftHead(nn.Module):
    """Mean and width of a Gaussian redshift.

    The mean is trained by least squares and the log width by the Gaussian likelihood of the
    residual of the (detached) mean, which keeps the mean's training as stable as a plain
    regression's while the width learns the scatter. Labels are standardised with
    ``z_center`` and ``z_scale`` (fitted on the training labels), so any label range works.
    """

    def __init__(self, in_features: int, edges, z_center: float, z_scale: float, hidden=256):
        super().__init__()
        self.register_buffer("edges", torch.as_tensor(edges, dtype=torch.float32))
        self.register_buffer("z_center", torch.tensor(float(z_center)))
        self.register_buffer("z_scale", torch.tensor(float(z_scale)))
        self.mean = _mlp(in_features, hidden, 1)
        self.log_width = _mlp(in_features, hidden, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(n, 2): the mean redshift and the log standard deviation."""
        mean = self.mean(features).float()[:, 0] * self.z_scale + self.z_center
        # The width sees detached features: its likelihood gradients, steep where the width
        # is small, never reach the encoder. A smooth floor of exp(-5) label standard
        # deviations keeps them finite.
        raw = self.log_width(features.detach()).float()[:, 0]
        log_sigma = F.softplus(raw + 5.0) - 5.0
        return torch.stack([mean, log_sigma + torch.log(self.z_scale)], dim=1)

    def loss(self, output: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        resid = (z.float() - output[:, 0]) / self.z_scale
        log_sigma = output[:, 1] - torch.log(self.z_scale)
        nll = 0.5 * (resid.detach() * torch.exp(-log_sigma)) ** 2 + log_sigma
        return (0.5 * resid**2 + nll).mean()

    def pdf(self, output: torch.Tensor) -> torch.Tensor:
        """The Gaussian integrated over each bin, renormalised within the bins."""
        mean, sigma = output[:, :1], torch.exp(output[:, 1:].clamp(-20.0, 5.0))
        return gaussian_over_bins(self.edges, mean, sigma)


class PhotoZTask(nn.Module):
    """One supervised step: augment, encode, head, loss. A frozen encoder stays in eval mode.

    With a :class:`~skphotoz.nn.photometry.HybridEncoder`, the augmented views go to its image
    encoder and the photometry is measured on the un-augmented stamps; ``frozen`` then freezes
    the image encoder only (its bottleneck learns with the head).
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, augment: nn.Module, frozen=False):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.augment = augment
        self.frozen = frozen
        if frozen:
            for p in self.backbone.parameters():
                p.requires_grad_(False)

    @property
    def backbone(self) -> nn.Module:
        """The pretrainable image (or feature) encoder: fine-tuned at the backbone's rate."""
        return getattr(self.encoder, "image", self.encoder)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    @property
    def predictor(self) -> nn.Sequential:
        """Encoder then head: images or features to the head's output."""
        return nn.Sequential(self.encoder, self.head)

    def forward(self, x, z, generator=None) -> torch.Tensor:
        views = self.augment(x, generator)
        if hasattr(self.encoder, "join"):
            features = self.encoder.join(views, x)
        else:
            features = self.encoder(views)
        return self.head.loss(self.head(features), z)


def pdf_of_outputs(head, outputs: np.ndarray) -> np.ndarray:
    """PDFs over the bins of a head's outputs; outputs over views give the mean of their PDFs."""
    flat = torch.as_tensor(outputs.reshape(-1, outputs.shape[-1]))
    with torch.no_grad():
        pdf = head.pdf(flat).double().numpy()
    pdf = pdf.reshape(*outputs.shape[:-1], -1)
    if pdf.ndim == 3:
        pdf = pdf.mean(axis=1)
    return pdf / pdf.sum(axis=1, keepdims=True)


def point_estimates(head, outputs: np.ndarray, edges: np.ndarray, point_estimate: str):
    """Point redshifts of a head's outputs: the Gaussian mean of a regression head (averaged
    over views), else the ``point_estimate`` statistic of the binned PDF."""
    if isinstance(head, GaussianRedshiftHead):
        means = outputs[..., 0].astype(np.float64)
        return means.mean(axis=1) if means.ndim == 2 else means
    pdf = pdf_of_outputs(head, outputs)
    centres = 0.5 * (edges[1:] + edges[:-1])
    if point_estimate == "mean":
        return pdf @ centres
    if point_estimate == "mode":
        return centres[np.argmax(pdf, axis=1)]
    return pdf_quantiles(pdf, edges, [0.5])[:, 0]
