"""Image cubes in: :func:`read_cube` reads a ``.npy``/``.npz`` cube, channels-last
(n, H, W, bands) as in earlier CNN photo-z work or channels-first (n, bands, H, W), without
loading a ``.npy``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._validation import StrOptions, validated
from ._archive import MAX_BANDS

__all__ = ["read_cube"]

LAYOUTS = ("auto", "channels_first", "channels_last")


def _check_real(dtype: np.dtype, what: str) -> None:
    if dtype.kind not in "iuf":
        raise TypeError(f"{what} must hold real-valued fluxes; got dtype {dtype}.")


def channels_first(cube, layout: str, what: str) -> tuple[np.ndarray, str]:
    """A (n, bands, H, W) view of a 4-D cube in ``layout``, and the layout used."""
    if cube.ndim != 4:
        raise ValueError(
            f"{what} must be 4-D, (n, H, W, bands) or (n, bands, H, W); got shape {cube.shape}."
        )
    _check_real(cube.dtype, what)
    if 0 in cube.shape:
        raise ValueError(f"{what} is empty: shape {cube.shape} has a zero-length axis.")
    _, a, b, c = cube.shape
    if layout == "auto":
        last = c <= MAX_BANDS and a == b
        first = a <= MAX_BANDS and b == c
        if last == first:
            reason = "both" if last else "neither"
            raise ValueError(
                f"cannot tell the band axis of {what} of shape {cube.shape}: {reason} of "
                f"(n, H, W, bands) and (n, bands, H, W) fit (bands <= {MAX_BANDS}, square "
                "stamps); pass layout='channels_last' or layout='channels_first'."
            )
        layout = "channels_last" if last else "channels_first"
    out = cube.transpose(0, 3, 1, 2) if layout == "channels_last" else cube
    if out.shape[2] != out.shape[3]:
        raise ValueError(
            f"{what} read as {layout} gives stamps of {out.shape[2]}x{out.shape[3]} pixels; "
            "the archive needs square stamps on one pixel grid (check layout)."
        )
    return out, layout


def load_cube(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The raw cube of a .npy (memory-mapped) or .npz file, and the .npz ``labels``."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False), None
        except ValueError as exc:
            raise ValueError(f"{str(path)!r} is not a numeric .npy cube: {exc}") from exc
    if suffix != ".npz":
        hint = " (an HDF5 file is already an archive)" if suffix in (".h5", ".hdf5") else ""
        raise ValueError(f"a cube must be a .npy or .npz file; got {str(path)!r}{hint}.")
    with np.load(path, allow_pickle=False) as data:
        keys = list(data)
        if "cube" in keys:
            key = "cube"
        elif len([k for k in keys if k != "labels"]) == 1:
            key = next(k for k in keys if k != "labels")
        else:
            raise ValueError(
                f"{str(path)!r} holds {keys}; expected the key 'cube' or a single array."
            )
        labels = data["labels"] if "labels" in keys and key != "labels" else None
        return data[key], labels


@validated({"layout": [StrOptions(set(LAYOUTS))]})
def read_cube(path, layout="auto") -> np.ndarray:
    """Read a ``.npy`` or ``.npz`` image cube as channels-first images.

    Parameters
    ----------
    path : str or path-like
        A ``.npy`` file (memory-mapped: nothing is loaded until indexed) or a ``.npz`` file
        holding the key ``cube`` or a single array (loaded: ``.npz`` cannot be mapped).
    layout : {"auto", "channels_last", "channels_first"}, default="auto"
        Axis order of the stored cube: ``"channels_last"`` is (n, H, W, bands), as in earlier
        CNN photo-z work (Pasquet et al. 2019); ``"channels_first"`` is (n, bands, H, W).
        ``"auto"`` takes the order in which the band axis is small (at most 16) and the two
        pixel axes are equal, and refuses a cube for which both or neither fit.

    Returns
    -------
    images : ndarray of shape (n_samples, n_bands, height, width)
        A view of the stored cube (a transposed memory map for ``.npy``), in its own dtype;
        slice it to read galaxies.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no cube file at {str(path)!r}.")
    cube, _ = load_cube(path)
    return channels_first(cube, layout, f"the cube in {str(path)!r}")[0]
