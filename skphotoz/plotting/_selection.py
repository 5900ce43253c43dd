"""A map of the pool with the galaxies chosen for labelling."""

from __future__ import annotations

import numpy as np

from .._inputs import as_numbers

# Marker and colour of each selection drawn, in order.
_STYLES = (("o", "tab:red"), ("s", "tab:blue"), ("^", "tab:green"), ("D", "tab:purple"))


def plot_selection(points, selections: dict, *, colour=None, colour_label: str = "redshift"):
    """The pool on a 2-D map (e.g. the first two principal components of its embeddings or
    photometry), each galaxy a small dot coloured by ``colour``, and the galaxies of each
    selection drawn over it, so that where a strategy spends its labels can be compared with
    random picks.

    Parameters
    ----------
    points : array-like of shape (n_galaxies, 2)
        Map coordinates of every galaxy of the pool.
    selections : dict of str to array-like of int
        Rows of ``points`` chosen by each strategy, by the name shown in the legend (at most
        four).
    colour : array-like of shape (n_galaxies,), optional
        Value of each galaxy for the background dots' colour (e.g. redshift); grey if None.
    colour_label : str, default="redshift"
        Label of the colour bar.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    points = as_numbers("points", points)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
        raise ValueError(f"points must have shape (n_galaxies, 2); got {points.shape}.")
    if not isinstance(selections, dict):
        raise TypeError(
            f"selections must be a dict of name: rows; got {type(selections).__name__}."
        )
    if not 1 <= len(selections) <= len(_STYLES):
        raise ValueError(
            f"selections must hold 1 to {len(_STYLES)} choices (more are unreadable on one "
            f"map); got {len(selections)}."
        )
    checked = {}
    for name, rows in selections.items():
        rows = np.asarray(rows)
        if rows.size == 0:
            rows = np.empty(0, dtype=np.int64)  # an empty choice draws nothing
        if (
            rows.ndim != 1
            or rows.dtype.kind not in "iu"
            or np.any((rows < 0) | (rows >= len(points)))
        ):
            raise ValueError(
                f"selections[{name!r}] must be rows of points (integers from 0 to "
                f"{len(points) - 1})."
            )
        checked[str(name)] = rows
    fig, ax = plt.subplots(figsize=(6.2, 5.0))
    if colour is None:
        ax.scatter(points[:, 0], points[:, 1], s=3, c="0.75", lw=0)
    else:
        colour = as_numbers("colour", colour).reshape(-1)
        if len(colour) != len(points):
            raise ValueError(
                f"colour must have one value per point ({len(points)}); got {len(colour)}."
            )
        dots = ax.scatter(points[:, 0], points[:, 1], s=3, c=colour, cmap="viridis", lw=0)
        fig.colorbar(dots, ax=ax, label=colour_label)
    for (name, rows), (marker, edge) in zip(checked.items(), _STYLES, strict=False):
        ax.scatter(
            points[rows, 0], points[rows, 1], s=28, marker=marker, facecolors="none",
            edgecolors=edge, linewidths=1.2, label=f"{name} ({len(rows)})",
        )  # fmt: skip
    ax.set_xlabel("map axis 1")
    ax.set_ylabel("map axis 2")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig
