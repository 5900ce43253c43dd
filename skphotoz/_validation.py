"""The one family of argument checks of skphotoz.

Built on scikit-learn's own parameter validation, so that skphotoz errors read like scikit-learn's
("The 'lr' parameter of PhotoZRegressor must be a float in the range (0.0, inf). Got inf
instead."): estimators declare ``_parameter_constraints`` on the class and check them once per
``fit`` through :func:`fit_context`; plain functions (the data layer, the simulator) are
decorated with :func:`validated`, which names each argument once, and a value computed inside
a function is checked with :func:`check_value`.

The errors are :class:`InvalidParameterError`, a subclass of both ``ValueError`` and
``TypeError``.

It also holds the one mechanism for parameters that are fixed once a model is fitted
(:class:`FixedAfterFit`): changing one with ``set_params`` after ``fit`` is refused at the next
prediction rather than silently ignored.

scikit-learn's constraint classes and ``_fit_context`` are private API; ``pyproject.toml``
bounds scikit-learn to the versions on which they are tested.
"""

from __future__ import annotations

import functools
import inspect
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
    "FixedAfterFit",
    "check_value",
    "normalise",
    "validated",
    "fit_context",
    "finite",
    "integer",
    "positive",
    "random_state",
]


def validated(constraints: dict, *, caller: str | None = None):
    """Decorator: check a function's arguments against ``constraints`` on every call.

    The constraints are scikit-learn's (``{name: [constraint, ...]}``, a value must satisfy
    one of them); each argument is named once, in ``constraints``, and read from the call
    with its default filled in. Decorating ``__init__`` names the class in the error.

    Parameters
    ----------
    constraints : dict
        ``{argument name: [constraint, ...]}``; every name must be an argument of the
        function (checked when it is decorated).
    caller : str, optional
        Name shown in the error; default: the function's (the class's, for ``__init__``).

    Raises
    ------
    InvalidParameterError
        At call time, naming the argument, what it must be and what it was.
    """

    def decorate(func):
        signature = inspect.signature(func)
        unknown = sorted(set(constraints) - set(signature.parameters))
        if unknown:
            raise TypeError(f"{func.__qualname__} has no argument(s) {unknown} to validate.")
        name = caller or func.__qualname__.removesuffix(".__init__")

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            values = {key: bound.arguments[key] for key in constraints}
            validate_parameter_constraints(constraints, values, caller_name=name)
            return func(*args, **kwargs)

        return wrapper

    return decorate


def check_value(caller: str, name: str, value, constraints: list) -> None:
    """Check one value computed inside a function (e.g. an option resolved from a default)
    against scikit-learn's ``constraints``; for arguments as given, use :func:`validated`.

    Raises
    ------
    InvalidParameterError
        Naming ``name`` in ``caller``, what it must be and what it was.
    """
    validate_parameter_constraints({name: constraints}, {name: value}, caller_name=caller)


def normalise(value):
    """A parameter value in a form that compares by value (tuples for sequences)."""
    if isinstance(value, list | tuple | np.ndarray):
        return tuple(normalise(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


class FixedAfterFit:
    """Mixin for estimators with parameters that a fitted model cannot follow.

    A subclass lists them in ``_fixed_after_fit`` and says why in ``_fixed_after_fit_reason``;
    ``fit`` calls :meth:`_remember_fixed` and every later use calls :meth:`_check_fixed`,
    which refuses a value changed with ``set_params`` since (a new fit is needed).
    """

    _fixed_after_fit: tuple[str, ...] = ()
    _fixed_after_fit_reason = "the fitted model cannot follow it"

    def _remember_fixed(self) -> None:
        self._fitted_with = {name: normalise(getattr(self, name)) for name in self._fixed_after_fit}

    def _check_fixed(self) -> None:
        for name, fitted in getattr(self, "_fitted_with", {}).items():
            value = getattr(self, name)
            if normalise(value) != fitted:
                raise ValueError(
                    f"{name}={value!r} was set after fitting, but this {type(self).__name__} "
                    f"was fitted with {name}={fitted!r}; {self._fixed_after_fit_reason}. Refit "
                    f"the model (call fit again), or set {name} back to {fitted!r}."
                )


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
