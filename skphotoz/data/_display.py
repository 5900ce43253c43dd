"""Colour composites of multi-band galaxy images for display."""

from __future__ import annotations

import warnings
from numbers import Real

import numpy as np

from .._inputs import MAX_INPUT, as_array, check_numeric
from .._validation import Range, check_value, finite, integer, positive, validated

#: Pixel values beyond ±1e30 (MAX_INPUT: no real flux holds them) are shown as ±1e30, and the
#: scales (``stretch``, ``Q``, ``scales``) lie in [1e-30, 1e30] and ``minimum`` in
#: [-1e30, 1e30]: with these bounds every step of the stretch stays below ~1e120, far from
#: float64 overflow, so the output is always finite and within [0, 1].
_SCALE = Range(Real, 1e-30, MAX_INPUT, closed="both")


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
        Fluxes (nanomaggies) in the band order u, g, r, i, z; real numbers (complex refused).
        Values beyond ±1e30 are shown as ±1e30. A pixel that is NaN or infinite in any of the
        three bands shown is shown black (0), with a ``UserWarning`` counting such pixels; a
        masked array's masked pixels (missing values) are shown black without a warning.
    bands : tuple of 3 int, default=(3, 2, 1)
        Band indices shown as red, green, blue: i, r, g.
    scales : tuple of 3 float, default=(1.0, 1.1, 1.6)
        Multipliers of the red, green and blue bands, balancing the colours of typical
        galaxies; each in [1e-30, 1e30].
    stretch : float, default=0.5
        Linear range of the stretch, in the images' flux unit; in [1e-30, 1e30].
    Q : float, default=8.0
        Asinh softening: larger values compress bright regions more; in [1e-30, 1e30].
    minimum : float, default=0.0
        Flux shown as black; in [-1e30, 1e30]. (The bounds keep every step of the stretch
        finite, so that the output stays within [0, 1].)

    Returns
    -------
    ndarray of shape (n_samples, height, width, 3) or (height, width, 3), float in [0, 1].
    """
    for name, value in (("stretch", stretch), ("Q", Q)):
        check_value("to_rgb", name, value, [_SCALE])
    check_value("to_rgb", "minimum", minimum, [finite(-MAX_INPUT, MAX_INPUT, closed="both")])
    masked = np.ma.getmaskarray(images) if isinstance(images, np.ma.MaskedArray) else None
    images = as_array(images, "images")  # (masked pixels as NaN)
    check_numeric(images, "images")
    try:
        images = np.asarray(images, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"images must hold numbers (fluxes); got an array of dtype {images.dtype}."
        ) from None
    single = images.ndim == 3
    if single:
        images = images[np.newaxis]
        masked = None if masked is None else masked[np.newaxis]
    if images.ndim != 4:
        raise ValueError(
            f"images must have shape (n_samples, n_bands, height, width) or "
            f"(n_bands, height, width); got {images.shape}."
        )
    n_bands = images.shape[1]
    _check_triple("bands", bands, integer(-n_bands, n_bands - 1))
    _check_triple("scales", scales, _SCALE)
    shown = images[:, list(bands)]
    # Pixels missing in any band shown: black, as the colour of the others would be wrong.
    missing = ~np.isfinite(shown).all(axis=1, keepdims=True)
    n_bad = int(np.count_nonzero(missing))
    if masked is not None:
        n_bad -= int(np.count_nonzero(missing & masked[:, list(bands)].any(axis=1, keepdims=True)))
    if n_bad:
        warnings.warn(
            f"images hold {n_bad} pixel(s) that are NaN or infinite in the bands shown "
            f"{tuple(bands)}; they are shown black (0).",
            UserWarning,
            stacklevel=3,
        )
    rgb = (
        np.clip(shown, -MAX_INPUT, MAX_INPUT)
        * np.asarray(scales, dtype=np.float64)[None, :, None, None]
    )
    rgb = np.where(missing, minimum, rgb)  # (shown as 0 below)
    rgb = np.clip(rgb - minimum, 0.0, None)
    intensity = rgb.mean(axis=1, keepdims=True)
    # asinh(x) / x -> 1 as x -> 0: also where Q * I / stretch underflows to 0.
    x = Q * intensity / stretch
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(x > 0, np.arcsinh(x) / x, 1.0) / stretch
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
