"""The exceptions of skphotoz, in one place.

Every error skphotoz raises on purpose is a built-in exception (``ValueError``, ``TypeError``)
or one of these subclasses of them, so code that catches scikit-learn's errors catches ours:

- :class:`InvalidParameterError`: a parameter of an estimator or function is not allowed
  (scikit-learn's own class, a ``ValueError`` and a ``TypeError``).
- :class:`NonFiniteError`: training diverged, or a prediction would be NaN or infinite.
- :class:`CheckpointMismatchError`: a checkpoint file belongs to another fit.
"""

from __future__ import annotations

from ._validation import InvalidParameterError

__all__ = ["CheckpointMismatchError", "InvalidParameterError", "NonFiniteError"]


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
