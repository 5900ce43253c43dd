"""Colour composites of multi-band galaxy images for display."""

from __future__ import annotations

import numpy as np

from .._validation import check_value, finite, integer, positive, validated


@validated(
    {
        "stretch": [positive()],
        "Q": [positive()],
        "minimum": [finite(-np.inf, closed="neither")],
    }
)
def to_rgb(
    images,
    bands: tuple[int, int, int] = (3, 2, 1),
    *,
    scales: tuple[float, float, float] = (1.0, 1.1, 1.6),
    stretch: float = 0.5,
    Q: float = 8.0,
    minimum: float = 0.0,
) -> np.ndarray:
    """Asinh colour composite after Lupton et al. (2004, PASP 116, 133).

    The mean intensity ``I`` of the three bands is mapped through
    ``asinh(Q (I - minimum) / stretch) / Q``, and each band keeps its share of ``I`` so that
    colours are preserved where the brightest pixels saturate.

    Parameters
    ----------
    images : array-like of shape (n_samples, n_bands, height, width) or (n_bands, height, width)
        Fluxes (nanomaggies) in the band order u, g, r, i, z.
    bands : tuple of 3 int, default=(3, 2, 1)
        Band indices shown as red, green, blue: i, r, g.
    scales : tuple of 3 float, default=(1.0, 1.1, 1.6)
        Multipliers of the red, green and blue bands, balancing the colours of typical galaxies.
    stretch : float, default=0.5
        Linear range of the stretch, in the images' flux unit.
    Q : float, default=8.0
        Asinh softening: larger values compress bright regions more.
    minimum : float, default=0.0
        Flux shown as black.

    Returns
    -------
    ndarray of shape (n_samples, height, width, 3) or (height, width, 3), float in [0, 1].
    """
    images = np.asarray(images, dtype=np.float64)
    single = images.ndim == 3
    if single:
        images = images[np.newaxis]
    if images.ndim != 4:
        raise ValueError(
            f"images must have shape (n_samples, n_bands, height, width) or "
            f"(n_bands, height, width); got {images.shape}."
        )
    n_bands = images.shape[1]
    _check_triple("bands", bands, integer(-n_bands, n_bands - 1))
    _check_triple("scales", scales, positive())
    rgb = images[:, list(bands)] * np.asarray(scales, dtype=np.float64)[None, :, None, None]
    rgb = np.clip(rgb - minimum, 0.0, None)
    intensity = rgb.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.arcsinh(Q * intensity / stretch) / (Q * intensity)
    factor = np.where(intensity > 0, factor, 0.0)
    rgb = rgb * factor
    # Scale saturated pixels down as a whole so that their hue survives the clip.
    peak = np.maximum(rgb.max(axis=1, keepdims=True), 1.0)
    rgb = (rgb / peak).transpose(0, 2, 3, 1)
    return rgb[0] if single else rgb


def _check_triple(name: str, values, constraint) -> None:
    """``values`` must be three numbers, each satisfying ``constraint`` (named ``name[i]``)."""
    if isinstance(values, str | bytes) or not hasattr(values, "__len__") or len(values) != 3:
        raise ValueError(f"{name} must be a sequence of three numbers; got {values!r}.")
    for i, value in enumerate(values):
        check_value("to_rgb", f"{name}[{i}]", value, [constraint])
