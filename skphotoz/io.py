"""Save and load fitted skphotoz models in files that are safe to share.

A joblib (pickle) file runs whatever code it carries the moment it is loaded, before anything
can check what it holds; scikit-learn's documentation therefore recommends ``skops.io`` for
models that come from someone else. skphotoz saves models with skops by default:

- :func:`dump` writes a skops file (a zip archive of plain arrays and a description of the
  objects, written to ``FILE.partial`` and renamed when complete);
- :func:`load` reads it, building only the classes that skphotoz and scikit-learn define and
  the standard types that skops trusts (numpy arrays, containers); a name is judged by what it
  resolves to, and no function is trusted. A file that names anything else is refused with
  :class:`~skphotoz.exceptions.UntrustedFileError`, which lists the names; the torch
  networks inside are read with ``torch.load(weights_only=True)`` and may hold only network
  layers of torch, torchvision and skphotoz (:mod:`skphotoz.nn.portable`);
- a pickle or joblib file (what skphotoz wrote before, or ``joblib.dump``) loads only with
  ``trusted=True``: say so only for files whose writer you trust.

The trust model and what each file is safe for: ``docs/reliability.md``.
"""

from __future__ import annotations

import importlib
import os

from .exceptions import UntrustedFileError

__all__ = ["PICKLE_SUFFIXES", "dump", "get_untrusted_types", "is_pickle", "load"]

# The packages whose classes a skphotoz model file may name without ``trusted=True``.
_TRUSTED_PACKAGES = ("skphotoz", "sklearn")
# File names that say "pickle": commands write joblib for them, skops otherwise.
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
# First bytes of a pickle (protocol 2 and above) and of joblib's compressed pickles
# (zlib, gzip, bz2, xz, lzma, lz4).
_PICKLE_MAGIC = (
    b"\x80",
    b"\x78",
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ",
    b"\x5d\x00\x00",
    b"\x04\x22M\x18",
)

_WHY = (
    "a pickle runs any code it carries when it is loaded, so skphotoz loads one only when "
    "told that its writer is trusted"
)


def dump(model, file) -> None:
    """Save a fitted (or unfitted) skphotoz or scikit-learn model as a skops file.

    Parameters
    ----------
    model : estimator
        What to save: a :class:`~skphotoz.MoCoEmbedder`, :class:`~skphotoz.PhotoZRegressor`,
        :class:`~skphotoz.search.SimilaritySearch`, a baseline, a ``Pipeline`` of them, ...
    file : str or path-like
        Where to write; conventionally ``*.skops``. The file is written beside it as
        ``FILE.partial`` and renamed when complete, so an interrupted save never leaves a
        truncated model under the name.
    """
    import skops.io

    path = os.fspath(file)
    partial = path + ".partial"
    try:
        skops.io.dump(model, partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def is_pickle(file) -> bool:
    """Whether ``file`` is a pickle or joblib file (by its first bytes, not its name)."""
    return _kind(_existing_file(file)) == "pickle"


def get_untrusted_types(file) -> list[str]:
    """The types named in the skops file ``file`` that :func:`load` would refuse without
    ``trusted``: those outside skphotoz, scikit-learn and skops's own defaults."""
    import skops.io

    path = _existing_file(file)
    if _kind(path) != "skops":
        raise ValueError(f"{path!r} is not a skops file (written by skphotoz.io.dump).")
    try:
        names = skops.io.get_untrusted_types(file=path)
    except Exception as error:  # noqa: BLE001 - a damaged zip or schema fails in many ways
        raise ValueError(
            f"{path!r} could not be read as a skops model file ({type(error).__name__}: {error})."
        ) from error
    return [name for name in names if not _trusted(name)]


def _existing_file(file) -> str:
    if not isinstance(file, str | os.PathLike):
        raise TypeError(f"file must be a path (str or path-like); got {type(file).__name__}.")
    path = os.fspath(file)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file {path!r} does not exist or is not a file.")
    return path


def load(file, *, trusted=False):
    """Load a model saved with :func:`dump` (or, when trusted, with joblib).

    Parameters
    ----------
    file : str or path-like
        A skops file written by :func:`dump` or ``skphotoz pretrain``/``fit-photoz``, or a
        joblib/pickle file.
    trusted : bool or list of str, default=False
        False: load skops files that name only skphotoz's, scikit-learn's and the standard
        types; refuse pickles. A list of type names (as
        :class:`~skphotoz.exceptions.UntrustedFileError` lists them): trust those too. True:
        trust the file's writer completely; pickles load (they run their code), and a skops
        file may name any type. The networks inside a model are read with
        ``torch.load(weights_only=True)`` in every case.

    Returns
    -------
    model : the saved object

    Raises
    ------
    UntrustedFileError
        The file is a pickle and ``trusted`` is not True, or names types not trusted (listed
        in the message and in ``error.types``).
    ValueError
        The file is neither a skops nor a pickle file, or is damaged.
    """
    path = _existing_file(file)
    if not isinstance(trusted, bool):
        if not isinstance(trusted, list | tuple | set | frozenset) or not all(
            isinstance(name, str) for name in trusted
        ):
            raise TypeError(
                f"trusted must be True, False or a list of type names (str); got {trusted!r}."
            )
        trusted = list(trusted)
    kind = _kind(path)
    if kind == "pickle":
        if trusted is not True:
            raise UntrustedFileError(
                f"{path!r} is a pickle (joblib) file: {_WHY}. If you trust whoever wrote it, "
                f"load it with trusted=True (--trust on the command line), and save it again "
                f"with skphotoz.io.dump to share it safely."
            )
        import joblib

        try:
            return joblib.load(path)
        except UntrustedFileError:
            raise
        except Exception as error:  # noqa: BLE001 - a damaged pickle fails in many ways
            raise ValueError(
                f"{path!r} could not be loaded as a joblib model ({type(error).__name__}: {error})."
            ) from error
    if kind != "skops":
        raise ValueError(
            f"{path!r} is not a model file: neither a skops file (written by skphotoz.io.dump "
            f"or the skphotoz commands) nor a joblib pickle."
        )
    import skops.io

    try:
        types = skops.io.get_untrusted_types(file=path)
    except Exception as error:  # noqa: BLE001 - a damaged zip or schema fails in many ways
        raise ValueError(
            f"{path!r} could not be read as a skops model file ({type(error).__name__}: "
            f"{error}); it is damaged or was not written by skops."
        ) from error
    if trusted is not True:
        extra = set(trusted or ())
        refused = [name for name in types if not (_trusted(name) or name in extra)]
        if refused:
            raise UntrustedFileError(
                f"{path!r} names types that are not skphotoz's, scikit-learn's or standard: "
                f"{', '.join(refused)}. Loading would build them (and so could run their "
                f"code); if you trust whoever wrote the file, pass trusted=[...] with these "
                f"names or trusted=True (--trust on the command line).",
                types=refused,
            )
    try:
        return skops.io.load(path, trusted=types)
    except (UntrustedFileError, FileNotFoundError):
        raise
    except Exception as error:  # noqa: BLE001
        raise ValueError(
            f"{path!r} could not be loaded as a skops model file ({type(error).__name__}: "
            f"{error}); it is damaged or was written by an incompatible version."
        ) from error


def _trusted(name: str) -> bool:
    """Whether ``name`` (``module.qualname``, as skops lists it) is a class that skphotoz or
    scikit-learn defines. By what the name resolves to, not by its prefix: a module of a
    trusted package also holds what it imported (``sklearn.datasets._rcv1.remove`` is
    ``os.remove``), and a function, unlike a class, is stored to be called later
    (``FunctionTransformer(func=...)``), so no function is trusted without ``trusted``."""
    found = find_class(name, _TRUSTED_PACKAGES)
    return (
        isinstance(found, type)
        and found.__module__.split(".", 1)[0] in _TRUSTED_PACKAGES
        and f"{found.__module__}.{found.__qualname__}" == name
    )


def find_class(name: str, packages: tuple[str, ...]):
    """What ``name`` (``module.qualname``) is, looked up in ``packages`` only, else None.

    Only modules of those packages are imported, and never a ``__main__`` or test module
    (importing a command's ``__main__`` would run it); an import that fails in any way,
    even by exiting, gives None.
    """
    module_name, _, qualname = name.rpartition(".")
    parts = module_name.split(".")
    if parts[0] not in packages or any(
        part == "__main__" or part.startswith("test") or part == "conftest" for part in parts
    ):
        return None
    try:  # importing a module of these packages runs only their own code
        found = importlib.import_module(module_name)
    except (Exception, SystemExit):  # noqa: BLE001 - a failed import means "not trusted"
        return None
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found


def _kind(file) -> str:
    """ "skops" (a zip archive), "pickle" or "unknown", from the first bytes of ``file``.

    By the first bytes only: a joblib pickle of a skphotoz model ends with the zip archive of
    its networks, which ``zipfile.is_zipfile`` (reading the end of a file) would take for a
    skops file.
    """
    with open(os.fspath(file), "rb") as handle:
        head = handle.read(8)
    if head.startswith(_PICKLE_MAGIC):
        return "pickle"
    if head.startswith(b"PK\x03\x04"):
        return "skops"
    return "unknown"
