"""The exceptions of skphotoz, in one place.

Every error skphotoz raises on purpose is a built-in exception (``ValueError``, ``TypeError``)
or one of these subclasses of them, so code that catches scikit-learn's errors catches ours:

- :class:`InvalidParameterError`: a parameter of an estimator or function is not allowed
  (scikit-learn's own class, a ``ValueError`` and a ``TypeError``).
- :class:`NonFiniteError`: training diverged, or a prediction would be NaN or infinite.
- :class:`CheckpointMismatchError`: a checkpoint file belongs to another fit.
- :class:`UntrustedFileError`: a model file would need code that skphotoz does not trust to be
  loaded (a pickle, or a skops file naming foreign types).
- :class:`DamagedDataError`: stored data failed its checksum; it is refused, never returned.
"""

from __future__ import annotations

from ._validation import InvalidParameterError

__all__ = [
    "CheckpointMismatchError",
    "DamagedDataError",
    "InvalidParameterError",
    "NonFiniteError",
    "UntrustedFileError",
]


class NonFiniteError(FloatingPointError, ValueError):
    """Training or prediction produced NaN or infinite numbers.

    Both a ``FloatingPointError`` (what it is) and a ``ValueError`` (what scikit-learn's
    callers catch for bad settings or data), with a message saying which setting or which
    input to change.
    """


class CheckpointMismatchError(ValueError):
    """A checkpoint file holds an unfinished run of another fit (other data, parameters or
    version): resuming it would silently mix two fits, so it is refused; use another
    ``checkpoint_dir`` or delete the file."""


class UntrustedFileError(ValueError):
    """Loading a file would run code that skphotoz does not trust.

    Raised for a pickle (joblib) file loaded without ``trusted=True`` (``--trust``), and for a
    skops file, or the networks stored inside a model, that name types other than
    skphotoz's, scikit-learn's and the standard ones. ``types`` lists those types (empty for a
    pickle, which can run anything).
    """

    def __init__(self, message: str, types=()):
        super().__init__(message)
        self.types = list(types)


class DamagedDataError(OSError, ValueError):
    """Stored data (an archive's chunks) failed its checksum: the bytes on disk are not the
    bytes written. The message names the file, the dataset and the rows; the values are
    never returned. An ``OSError`` (what h5py raises for it) and a ``ValueError``."""
