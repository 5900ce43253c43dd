"""Encoders for N-band galaxy images (ResNets) and for feature vectors (MLP).

The ResNets are torchvision's, with a first convolution for any number of bands and one of two
stems:

- ``"published"``: 7x7 convolution with stride 1 and no max-pool, as in the self-supervised
  photo-z work on SDSS (Hayat et al. 2021), which keeps the full 64x64 resolution in the first
  stage. Accurate but ~40x slower than the standard stem on CPUs (measured in
  docs/experiments/pretrain_throughput.csv); a GPU configuration.
- ``"standard"``: torchvision's 7x7 stride-2 convolution and 3x3 stride-2 max-pool; the
  CPU-friendly default.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet as tv_resnet

RESNET_DEPTHS = {18: tv_resnet.resnet18, 34: tv_resnet.resnet34, 50: tv_resnet.resnet50}
STEMS = ("standard", "published")


def resnet(depth: int = 18, in_channels: int = 5, stem: str = "standard") -> nn.Module:
    """A torchvision ResNet without its classifier, for ``in_channels``-band images.

    Parameters
    ----------
    depth : {18, 34, 50}, default=18
    in_channels : int, default=5
    stem : {"standard", "published"}, default="standard"
        See the module docstring.

    Returns
    -------
    nn.Module
        Maps (n, in_channels, H, W) to (n, d) with ``d = module.out_features`` (512 for
        ResNet18/34, 2048 for ResNet50).
    """
    if depth not in RESNET_DEPTHS:
        raise ValueError(f"depth must be one of {sorted(RESNET_DEPTHS)}; got {depth!r}.")
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {STEMS}; got {stem!r}.")
    model = RESNET_DEPTHS[depth](weights=None)
    stride = 1 if stem == "published" else 2
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=stride, padding=3, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    if stem == "published":
        model.maxpool = nn.Identity()
    model.out_features = model.fc.in_features
    model.fc = nn.Identity()
    return model


class MLP(nn.Module):
    """Fully connected encoder for feature vectors (photometry, embeddings).

    Parameters
    ----------
    in_features : int
    hidden : tuple of int, default=(256, 256)
        Widths of the hidden layers, each Linear -> BatchNorm -> ReLU; the last width is the
        representation size ``out_features``.
    """

    def __init__(self, in_features: int, hidden: tuple[int, ...] = (256, 256)):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for out in hidden:
            layers += [nn.Linear(width, out), nn.BatchNorm1d(out), nn.ReLU(inplace=True)]
            width = out
        self.layers = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def build_backbone(name: str, input_shape: tuple[int, ...], stem: str = "standard") -> nn.Module:
    """Build the encoder named ``name`` for samples of ``input_shape`` (without the batch axis).

    ``"resnet18"``, ``"resnet34"``, ``"resnet50"`` take images ``(C, H, W)``; ``"mlp"`` takes
    vectors ``(d,)``. The module has an ``out_features`` attribute.
    """
    if name == "mlp":
        if len(input_shape) != 1:
            raise ValueError(
                f"backbone='mlp' takes 2-D input (n_samples, n_features); got samples of shape "
                f"{input_shape}."
            )
        return MLP(input_shape[0])
    if name.startswith("resnet") and name[6:].isdigit():
        if len(input_shape) != 3:
            raise ValueError(
                f"backbone={name!r} takes 4-D images (n_samples, n_bands, height, width); got "
                f"samples of shape {input_shape}. Use backbone='mlp' for feature vectors."
            )
        return resnet(int(name[6:]), in_channels=input_shape[0], stem=stem)
    raise ValueError(
        f"backbone must be one of 'resnet18', 'resnet34', 'resnet50', 'mlp'; got {name!r}."
    )


class Encoder(nn.Sequential):
    """Input scaling followed by a backbone; ``out_features`` is the representation size."""

    def __init__(self, scaling: nn.Module, body: nn.Module):
        super().__init__(scaling, body)
        self.out_features = body.out_features
