"""Galaxy images as colour composites: a gallery, and a query with its neighbours."""

from __future__ import annotations

import numbers

import numpy as np

from .._inputs import as_numbers
from .._validation import finite, integer, validated

# At most this many panels in a gallery or a neighbour figure: more are unreadable, and
# matplotlib takes minutes to lay them out.
_MAX_PANELS = 1000


def plot_gallery(rgb, z):
    """One row of colour composites, each captioned with its redshift.

    Parameters
    ----------
    rgb : array-like of shape (n_galaxies, height, width, 3)
        Colour images, e.g. from :func:`skphotoz.data.to_rgb`.
    z : array-like of shape (n_galaxies,)
        Redshift of each image.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    rgb = np.asarray(rgb)
    if rgb.dtype.kind not in "biuf":
        raise TypeError(f"rgb must be an array of colour values; got dtype {rgb.dtype}.")
    z = as_numbers("z", z).reshape(-1)
    if rgb.ndim != 4 or not 1 <= rgb.shape[0] <= _MAX_PANELS or rgb.shape[-1] not in (3, 4):
        raise ValueError(
            f"rgb must hold at least one image (and at most {_MAX_PANELS}) of shape (height, "
            f"width, 3 or 4 channels); got shape {rgb.shape}."
        )
    if z.shape[0] != rgb.shape[0]:
        raise ValueError(f"z must have one value per image ({rgb.shape[0]}); got {z.shape[0]}.")
    fig, axes = plt.subplots(1, len(rgb), figsize=(1.6 * len(rgb), 1.9), squeeze=False)
    for ax, image, redshift in zip(axes[0], rgb, z, strict=True):
        ax.imshow(image, origin="lower")
        ax.set_title(f"z = {redshift:.3f}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


@validated(
    {
        "n_cols": [integer(1, _MAX_PANELS)],
        "panel_size": [finite(0, 100, "right")],
        "rgb_kwargs": [None, dict],
    }
)
def plot_neighbors(
    images,
    query,
    neighbors,
    similarities=None,
    *,
    redshift=None,
    n_cols: int = 6,
    panel_size: float = 1.8,
    rgb_kwargs: dict | None = None,
):
    """Show a query galaxy and its neighbours as g, r, i colour composites.

    Parameters
    ----------
    images : array-like of shape (n_samples, 5, height, width)
        ugriz images in nanomaggies, e.g. :class:`skphotoz.data.HDF5Images`; only the shown
        rows are read.
    query : int or array-like of shape (5, height, width)
        Row of ``images`` of the query, or an image outside it.
    neighbors : array-like of int of shape (n_neighbors,)
        Rows of ``images``, e.g. ``indices[0]`` from
        :meth:`skphotoz.search.SimilaritySearch.kneighbors`.
    similarities : array-like of shape (n_neighbors,), optional
        Shown in each neighbour's caption.
    redshift : array-like of shape (n_samples,), optional
        Redshifts of ``images``, shown in the captions.
    n_cols : int, default=6
        Panels per row.
    panel_size : float, default=1.8
        Width and height of one panel in inches.
    rgb_kwargs : dict, optional
        Passed to :func:`skphotoz.data.to_rgb`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from ..data import to_rgb

    if not hasattr(images, "shape"):  # lists; lazy arrays (HDF5Images) are read by row
        images = np.asarray(images)
    image_shape = tuple(images.shape)
    if len(image_shape) != 4:
        raise ValueError(
            f"images must be (n_samples, n_bands, height, width); got shape {image_shape}."
        )
    n_images = image_shape[0]
    neighbors = np.asarray(neighbors)
    if neighbors.size and neighbors.dtype.kind not in "iu":
        raise TypeError(
            f"neighbors must be integer rows of images; got an array of dtype {neighbors.dtype}."
        )
    neighbors = neighbors.astype(np.int64).reshape(-1)
    if neighbors.size + 1 > _MAX_PANELS:
        raise ValueError(
            f"plot_neighbors shows at most {_MAX_PANELS - 1} neighbours; got {neighbors.size}."
        )
    outside = neighbors[(neighbors < 0) | (neighbors >= n_images)]
    if outside.size:
        raise ValueError(
            f"neighbors must be rows of images, from 0 to {n_images - 1}; got "
            f"{outside[:5].tolist()}."
        )
    if similarities is not None:
        similarities = as_numbers("similarities", similarities).reshape(-1)
        if similarities.shape != neighbors.shape:
            raise ValueError(
                f"similarities must have one value per neighbour ({neighbors.size}); got "
                f"{similarities.size}."
            )
        if not np.isfinite(similarities).all():
            raise ValueError("similarities must be finite; got NaN or infinite values.")
    if redshift is not None:
        redshift = as_numbers("redshift", redshift).reshape(-1)
        if redshift.shape[0] != n_images:
            raise ValueError(
                f"redshift must have one value per row of images ({n_images}); got "
                f"{redshift.shape[0]}."
            )
    if isinstance(query, bool | np.bool_):
        raise TypeError("query must be a row of images (int) or an image; got a boolean.")
    query_is_row = isinstance(query, numbers.Integral)
    if query_is_row and not 0 <= query < n_images:
        raise ValueError(f"query must be a row of images, from 0 to {n_images - 1}; got {query}.")
    rows = np.concatenate([[query], neighbors]) if query_is_row else neighbors
    stamps = np.asarray(images[rows], dtype=np.float32)
    if not query_is_row:
        query_image = as_numbers("query", query).astype(np.float32)
        if query_image.shape != image_shape[1:]:
            raise ValueError(
                f"query must be a row of images or an image of their shape "
                f"{image_shape[1:]}; got shape {query_image.shape}."
            )
        stamps = np.concatenate([query_image[None], stamps])
    rgb = to_rgb(stamps, **(rgb_kwargs or {}))
    n_panels = len(rgb)
    n_rows = -(-n_panels // n_cols)
    fig, axes = plt.subplots(
        n_rows,
        min(n_cols, n_panels),
        figsize=(panel_size * min(n_cols, n_panels), (panel_size + 0.35) * n_rows),
        squeeze=False,
    )
    for position, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if position >= n_panels:
            continue
        ax.imshow(rgb[position], origin="lower", interpolation="nearest")
        if position == 0:
            caption = f"query #{query}" if query_is_row else "query"
        else:
            caption = f"#{neighbors[position - 1]}"
            if similarities is not None:
                caption += f"  s={similarities[position - 1]:.3f}"
        if redshift is not None and (position > 0 or query_is_row):
            row = rows[position] if query_is_row else neighbors[position - 1]
            caption += f"\nz={float(redshift[row]):.3f}"
        ax.set_title(caption, fontsize=8)
    fig.tight_layout()
    return fig
