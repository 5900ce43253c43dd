"""Figures of skphotoz: galaxy galleries and similarity-search neighbours.

matplotlib (``pip install 'skphotoz[plot]'``) is imported when a figure is drawn, not with this
module. Functions return the :class:`matplotlib.figure.Figure`; saving and closing it is the
caller's.
"""

from __future__ import annotations

import numbers

import numpy as np

from ._validation import check_params, integer

__all__ = ["plot_gallery", "plot_neighbors"]


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
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    if rgb.ndim != 4 or rgb.shape[0] < 1:
        raise ValueError(
            f"rgb must hold at least one image of shape (height, width, channels); got shape "
            f"{rgb.shape}."
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

    from .data import to_rgb

    neighbors = np.asarray(neighbors, dtype=np.int64).reshape(-1)
    if similarities is not None:
        similarities = np.asarray(similarities, dtype=np.float64).reshape(-1)
        if similarities.shape != neighbors.shape:
            raise ValueError(
                f"similarities must have one value per neighbour ({neighbors.size}); got "
                f"{similarities.size}."
            )
    check_params("plot_neighbors", {"n_cols": [integer(1)]}, n_cols=n_cols)
    query_is_row = isinstance(query, numbers.Integral)
    rows = np.concatenate([[query], neighbors]) if query_is_row else neighbors
    stamps = np.asarray(images[rows], dtype=np.float32)
    if not query_is_row:
        stamps = np.concatenate([np.asarray(query, dtype=np.float32)[None], stamps])
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
