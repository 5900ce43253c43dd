"""Helpers shared by the figures: matplotlib on demand, axes, styles, input checks."""

from __future__ import annotations

import numpy as np


def pyplot(caller: str):
    """matplotlib.pyplot, or an ImportError saying what needs it and how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is a test dependency
        raise ImportError(
            f"{caller} needs matplotlib; install it with pip install 'skphotoz[plot]'."
        ) from exc
    return plt


def axes(ax, caller: str, figsize=None):
    """``ax``, or the axes of a new figure."""
    plt = pyplot(caller)
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
        return ax
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise TypeError(f"{caller}: ax must be None or matplotlib Axes; got {type(ax).__name__}.")
    return ax


def style(defaults: dict, user: dict | None, artist) -> dict:
    """The user's style over the defaults, with matplotlib's aliases (``c``, ``lw``, ``ls``,
    ...) resolved first so that ``{"c": "red"}`` replaces a default ``color``."""
    from matplotlib.cbook import normalize_kwargs

    if user is not None and not isinstance(user, dict):
        raise TypeError(
            f"style arguments (the *_kw parameters) must be None or a dict of matplotlib "
            f"keywords; got {type(user).__name__} {user!r}."
        )
    return {**normalize_kwargs(defaults, artist), **normalize_kwargs(user or {}, artist)}


def check_one_per_row(X, z_spec) -> None:
    """Raise unless ``z_spec`` has one value per row of ``X`` (before predicting on ``X``)."""
    z = np.asarray(z_spec)
    n_z = z.shape[0] if z.ndim else 1
    if n_z != len(X):
        raise ValueError(f"z_spec must have one redshift per row of X ({len(X)}); got {n_z}.")
