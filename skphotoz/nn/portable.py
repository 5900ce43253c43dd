"""The torch modules of a fitted estimator, stored so that loading them cannot run code.

A fitted :class:`~skphotoz.MoCoEmbedder` or :class:`~skphotoz.PhotoZRegressor` holds torch
modules (``moco_``, ``model_``, ...). When the estimator is pickled (joblib) or saved with
:func:`skphotoz.io.dump` (skops), :func:`pack_modules` replaces them by one ``uint8`` array: the
bytes of ``torch.save`` of all of them together, so that modules shared between attributes (an
embedder's ``encoder_`` is its ``moco_.backbone``) stay shared. :func:`unpack_modules` reads the
array back with ``torch.load(weights_only=True)``, which builds nothing but tensors, plain
containers and the classes it is allowed; the classes allowed are exactly the network layers of
torch (``torch.nn``), torchvision's models and skphotoz's own, so a file that names any other
class (``os.system``, a class of its own) is refused before anything is built.

The array is plain numbers either way: skops stores it as a ``.npy`` entry (read with
``allow_pickle=False``), and a skops file of an estimator therefore names no torch type at all.
"""

from __future__ import annotations

import io
import zlib

import numpy as np
import torch
from torch import nn

from ..exceptions import UntrustedFileError

__all__ = [
    "CHECKSUM_KEY",
    "MODULES_KEY",
    "allowed_module_classes",
    "pack_modules",
    "unpack_modules",
]

# The key of the packed modules in an estimator's pickled state, and of their CRC-32:
# torch's own reader does not check the checksums of its zip entries, so overwritten weights
# would load as other numbers.
MODULES_KEY = "_torch_modules"
CHECKSUM_KEY = "_torch_modules_crc32"
# Where the classes of a stored network may come from.
_TRUSTED_PREFIXES = ("torch.nn.", "torchvision.models.", "skphotoz.")


def pack_modules(state: dict) -> dict:
    """``state`` (an estimator's ``__dict__``) with its torch modules replaced by one
    ``uint8`` array under :data:`MODULES_KEY`; ``state`` itself is not changed."""
    names = [name for name, value in state.items() if isinstance(value, nn.Module)]
    if not names:
        return state
    buffer = io.BytesIO()
    torch.save({name: state[name] for name in names}, buffer)
    packed = {name: value for name, value in state.items() if name not in names}
    packed[MODULES_KEY] = np.frombuffer(buffer.getbuffer(), dtype=np.uint8).copy()
    packed[CHECKSUM_KEY] = zlib.crc32(packed[MODULES_KEY])
    return packed


def unpack_modules(state: dict, owner: str = "model") -> dict:
    """Inverse of :func:`pack_modules` (in place): the modules read back on the CPU.

    A state without packed modules (a pickle written before they were packed) is returned as
    it is. Raises :class:`~skphotoz.exceptions.UntrustedFileError` when the stored modules
    name a class other than a torch, torchvision or skphotoz network layer, and ``ValueError``
    when the bytes are damaged; ``owner`` names the estimator in these messages.
    """
    blob = state.pop(MODULES_KEY, None)
    checksum = state.pop(CHECKSUM_KEY, None)
    if blob is None:
        return state
    if not (isinstance(blob, np.ndarray) and blob.dtype == np.uint8 and blob.ndim == 1):
        raise ValueError(
            f"the stored networks of this {owner} are damaged: expected a 1-D uint8 array "
            f"under {MODULES_KEY!r}, got {type(blob).__name__}"
            + (f" of dtype {blob.dtype} and shape {blob.shape}" if hasattr(blob, "dtype") else "")
            + "."
        )
    if checksum is not None and zlib.crc32(blob) != checksum:
        raise ValueError(
            f"the stored networks of this {owner} are damaged: their CRC-32 is "
            f"{zlib.crc32(blob):#010x}, not the {checksum:#010x} written with them. The file "
            f"was changed after it was saved; save the model again from its source."
        )
    data = io.BytesIO(blob.tobytes())
    try:
        allowed = allowed_module_classes(data, owner)
        data.seek(0)
        with torch.serialization.safe_globals(allowed):
            modules = torch.load(data, map_location="cpu", weights_only=True)
    except UntrustedFileError:
        raise
    except Exception as error:  # noqa: BLE001 - a damaged zip or pickle fails in many ways
        raise ValueError(
            f"the stored networks of this {owner} could not be read ({type(error).__name__}: "
            f"{error}); the file is damaged or was not written by skphotoz."
        ) from error
    if not (
        isinstance(modules, dict)
        and all(isinstance(k, str) and isinstance(v, nn.Module) for k, v in modules.items())
    ):
        raise ValueError(
            f"the stored networks of this {owner} are not a dictionary of torch modules; the "
            f"file was not written by skphotoz."
        )
    state.update(modules)
    return state


def allowed_module_classes(data, owner: str = "model") -> list[type]:
    """The classes that the ``torch.save`` file ``data`` needs beyond tensors and plain
    containers, each checked to be a network layer of torch, torchvision or skphotoz.

    Names are only looked up, in those packages, never imported from anywhere else; any other
    name raises :class:`~skphotoz.exceptions.UntrustedFileError` listing every such name.
    """
    names = torch.serialization.get_unsafe_globals_in_checkpoint(data)
    allowed, refused = [], []
    for name in sorted(names):
        found = _network_class(name)
        if found is None:
            refused.append(name)
        else:
            allowed.append(found)
    if not refused:
        _refuse_constructor_calls(
            data, {f"{c.__module__}.{c.__qualname__}" for c in allowed}, owner
        )
    if refused:
        raise UntrustedFileError(
            f"the stored networks of this {owner} name "
            f"{', '.join(repr(name) for name in refused)}, which "
            f"{'is not a' if len(refused) == 1 else 'are not'} network layer"
            f"{'' if len(refused) == 1 else 's'} of torch, torchvision or skphotoz; skphotoz "
            f"refuses to build {'it' if len(refused) == 1 else 'them'}, since building an "
            f"unknown class can run code.",
            types=refused,
        )
    return allowed


class _Stub:
    """What a dry run of the pickle builds in place of every object: takes any state."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


class _Called(Exception):
    pass


def _refuse_constructor_calls(data, module_classes: set[str], owner: str) -> None:
    """Refuse a stored network whose pickle calls a layer class (``Linear(70000, 70000)``)
    instead of restoring one: ``torch.load(weights_only=True)`` lets an allowed class be
    called with arguments from the file, which could allocate any amount of memory. A real
    module is restored without a call (``__new__``, then its state); the dry run here builds
    nothing but stubs, and no tensor."""
    import pickle
    import zipfile

    data.seek(0)
    try:
        with zipfile.ZipFile(data) as archive:
            names = [n for n in archive.namelist() if n.endswith("data.pkl")]
            stream = archive.read(names[0]) if names else None
    except (zipfile.BadZipFile, OSError, KeyError):
        stream = None
    finally:
        data.seek(0)
    if stream is None:
        return  # torch.load below reports what is wrong with it

    class Forbidden(_Stub):
        def __init__(self, *args, **kwargs):  # REDUCE calls the class; NEWOBJ does not
            raise _Called(self.name)

    class DryRun(pickle.Unpickler):
        def find_class(self, module, name):
            qualified = f"{module}.{name}"
            if qualified in module_classes:
                return type(name, (Forbidden,), {"name": qualified})
            return _Stub

        def persistent_load(self, pid):
            return None

    try:
        DryRun(io.BytesIO(stream)).load()
    except _Called as called:
        raise UntrustedFileError(
            f"the stored networks of this {owner} call {called.args[0]!r} with arguments "
            f"from the file instead of restoring a layer; skphotoz refuses them (a call can "
            f"allocate any amount of memory).",
            types=[called.args[0]],
        ) from None
    except Exception:  # noqa: BLE001 - malformed: torch.load below says what is wrong
        return


def _network_class(name: str) -> type | None:
    """The ``torch.nn.Module`` subclass called ``name`` in a trusted package, else None."""
    if not name.startswith(_TRUSTED_PREFIXES):
        return None
    from ..io import find_class

    found = find_class(name, ("torch", "torchvision", "skphotoz"))
    if (
        isinstance(found, type)
        and issubclass(found, nn.Module)
        and f"{found.__module__}.{found.__qualname__}" == name
        and found.__module__.startswith(_TRUSTED_PREFIXES)
    ):
        return found
    return None
