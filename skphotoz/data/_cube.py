"""Image cubes in: :func:`read_cube` reads a ``.npy``/``.npz`` cube, channels-last
(n, H, W, bands) as in earlier CNN photo-z work or channels-first (n, bands, H, W), without
loading a ``.npy``."""

from __future__ import annotations

import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .._validation import StrOptions, validated
from ._archive import MAX_BANDS

__all__ = ["read_cube"]

LAYOUTS = ("auto", "channels_first", "channels_last")


def _check_real(dtype: np.dtype, what: str) -> None:
    """Real fluxes only: a complex cube is refused (not cast, which would drop the imaginary
    part with a mere ComplexWarning), as :func:`skphotoz._inputs.check_numeric` rules."""
    if dtype.kind == "c":
        raise ValueError(
            f"Complex data not supported: {what} must hold real-valued fluxes; got dtype {dtype}."
        )
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


#: The first bytes of a .npy file (np.save) and of a zip archive such as a .npz (np.savez).
_NPY_MAGIC = b"\x93NUMPY"
#: What numpy raises for a damaged .npy header (parsed as a Python literal), besides
#: ValueError and the EOFError or OSError of a truncated file.
_BAD_HEADER = (SyntaxError, TypeError, KeyError, tokenize.TokenError)
_PICKLES = (
    "holds arrays of Python objects (pickles), which skphotoz never loads since unpickling "
    "can run code; save the cube as numbers"
)


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(len(_NPY_MAGIC))


def _load_npy(path: Path) -> np.ndarray:
    """A memory map of the .npy cube at ``path``; a ValueError naming the file for what is
    not one (empty, not a .npy, a .npz, truncated, pickled objects)."""
    head = _head(path)
    if not head:
        reason = "the file is empty (0 bytes)"
    elif zipfile.is_zipfile(path):
        reason = "it is a zip archive (a .npz?); rename it .npz"
    elif head != _NPY_MAGIC:
        reason = f"it does not start with the .npy signature {_NPY_MAGIC!r} that np.save writes"
    else:
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            if "allow_pickle" in str(exc) or "Python objects" in str(exc):
                reason = f"it {_PICKLES}"
            elif "mmap length" in str(exc):
                reason = "the file is shorter than its header says (truncated?)"
            else:
                reason = str(exc)
        except (EOFError, OSError, *_BAD_HEADER) as exc:
            reason = f"its header is damaged or truncated ({type(exc).__name__}: {exc})"
    raise ValueError(f"{str(path)!r} is not a numeric .npy cube: {reason}.")


def _npz_member(data, key: str, path: Path) -> np.ndarray:
    """Member ``key`` of an open .npz, which must be a numeric .npy array."""
    try:
        value = data[key]
    except (ValueError, *_BAD_HEADER) as exc:
        if "allow_pickle" in str(exc):
            raise ValueError(f"{str(path)!r}: member {key!r} {_PICKLES}.") from None
        raise ValueError(f"{str(path)!r}: member {key!r} is not a readable array: {exc}") from None
    if not isinstance(value, np.ndarray):  # (np.load returns other members as raw bytes)
        raise ValueError(
            f"{str(path)!r}: member {key!r} is not a .npy array; a .npz cube is a zip of "
            f"arrays saved with np.savez."
        )
    return value


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The cube and ``labels`` of the .npz at ``path``; a ValueError naming the file for what
    is not a readable .npz cube (empty, truncated, damaged, not a zip of .npy arrays)."""
    if not zipfile.is_zipfile(path):
        if not _head(path):
            reason = "the file is empty (0 bytes)"
        elif _head(path) == _NPY_MAGIC:
            reason = "it is a single .npy array; rename it .npy"
        else:
            reason = "it is not a zip archive (truncated or damaged?)"
        raise ValueError(
            f"{str(path)!r} is not a .npz cube: {reason}; expected a zip of .npy arrays, as "
            f"np.savez writes."
        )
    try:
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
            cube = _npz_member(data, key, path)
            has_labels = "labels" in keys and key != "labels"
            labels = _npz_member(data, "labels", path) if has_labels else None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(
            f"{str(path)!r} could not be read as a .npz cube (damaged: "
            f"{type(exc).__name__}: {exc})."
        ) from None
    return cube, labels


def load_cube(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The raw cube of a .npy (memory-mapped) or .npz file, and the .npz ``labels``.

    Raises
    ------
    ValueError
        Naming the file, for any that is not a readable cube of numbers: empty, truncated,
        damaged, of the other format, or holding Python objects (never unpickled: that could
        run code).
    """
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _load_npy(path), None
    if suffix != ".npz":
        hint = " (an HDF5 file is already an archive)" if suffix in (".h5", ".hdf5") else ""
        raise ValueError(f"a cube must be a .npy or .npz file; got {str(path)!r}{hint}.")
    return _load_npz(path)


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

    Raises
    ------
    FileNotFoundError
        Nothing is at ``path``.
    ValueError
        Naming the file: it is not a readable cube (empty, truncated, damaged, a ``.npz``
        named ``.npy`` or the reverse, a zip member that is not a ``.npy`` array, arrays of
        Python objects, which are never unpickled since that could run code), or its cube is
        complex, misshapen or empty.
    TypeError
        The cube holds something other than numbers (text, booleans).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no cube file at {str(path)!r}.")
    cube, _ = load_cube(path)
    return channels_first(cube, layout, f"the cube in {str(path)!r}")[0]
