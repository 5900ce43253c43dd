"""The one family of argument checks of skphotoz.

Built on scikit-learn's own parameter validation, so that skphotoz errors read like scikit-learn's
("The 'lr' parameter of PhotoZRegressor must be a float in the range (0.0, inf). Got inf
instead."): estimators declare ``_parameter_constraints`` on the class and check them once per
``fit`` through :func:`fit_context`; plain functions (the data layer, the simulator) call
:func:`check_params` with the same kind of constraints.

The errors are :class:`InvalidParameterError`, a subclass of both ``ValueError`` and
``TypeError``.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context as fit_context
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_parameter_constraints,
)

__all__ = [
    "HasMethods",
    "Integral",
    "Interval",
    "InvalidParameterError",
    "Options",
    "Range",
    "Real",
    "StrOptions",
    "check_params",
    "fit_context",
    "finite",
    "integer",
    "positive",
    "random_state",
]


def check_params(caller: str, constraints: dict, **values) -> None:
    """Check ``values`` against ``constraints`` (scikit-learn's constraint language).

    Parameters
    ----------
    caller : str
        Name shown in the error, e.g. ``"make_sdss_galaxies"``.
    constraints : dict
        ``{name: [constraint, ...]}``; a value must satisfy one of its constraints.
    **values
        The arguments to check, by name.

    Raises
    ------
    InvalidParameterError
        Naming the argument, what it must be and what it was.
    """
    validate_parameter_constraints(constraints, values, caller_name=caller)


class Range(Interval):
    """scikit-learn's ``Interval`` that refuses booleans: ``True`` is not a batch size."""

    def is_satisfied_by(self, val) -> bool:
        if isinstance(val, bool | np.bool_):
            return False
        return super().is_satisfied_by(val)


def integer(low: int | None = 1, high: int | None = None) -> Interval:
    """Integers in ``[low, high]`` (``None``: unbounded); booleans are refused."""
    closed = {(False, False): "both", (True, False): "right", (False, True): "left"}
    return Range(Integral, low, high, closed=closed.get((low is None, high is None), "neither"))


def positive() -> Interval:
    """Finite real numbers ``> 0``."""
    return Range(Real, 0, np.inf, closed="neither")


def finite(low: float | None = 0.0, high: float | None = None, closed: str = "left") -> Interval:
    """Finite real numbers between ``low`` and ``high`` (``None``: unbounded on that side);
    infinity and NaN are always refused."""
    low = -np.inf if low is None else low
    high = np.inf if high is None else high
    if (np.isinf(low) and closed in ("left", "both")) or (
        np.isinf(high) and closed in ("right", "both")
    ):
        closed = {
            (True, True): "neither",
            (True, False): "right" if closed in ("right", "both") else "neither",
            (False, True): "left" if closed in ("left", "both") else "neither",
        }[(bool(np.isinf(low)), bool(np.isinf(high)))]
    return Range(Real, low, high, closed=closed)


def random_state() -> list:
    """What ``check_random_state`` takes: None, a seed in [0, 2**32 - 1] or a RandomState
    (booleans refused, unlike scikit-learn's own ``"random_state"`` constraint)."""
    return [None, integer(0, 2**32 - 1), np.random.RandomState]
