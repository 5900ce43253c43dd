"""The rules' one home: argument validation, fixed-after-fit parameters, the redshift rule and
the exceptions module."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator

from skphotoz import exceptions
from skphotoz._inputs import check_quantiles, check_redshifts
from skphotoz._validation import (
    FixedAfterFit,
    InvalidParameterError,
    StrOptions,
    check_value,
    integer,
    validated,
)


@validated({"n": [integer(1, 10)], "kind": [StrOptions({"a", "b"})]})
def _draw(n, kind="a", *, other=None):
    return n, kind, other


class _Thing:
    @validated({"size": [integer(1)]})
    def __init__(self, size=3):
        self.size = size


def test_validated_checks_each_named_argument_with_its_default_filled_in():
    assert _draw(3) == (3, "a", None)
    assert _draw(n=10, kind="b", other=object())[:2] == (10, "b")
    with pytest.raises(InvalidParameterError, match=r"The 'n' parameter of _draw must be .*Got 0"):
        _draw(0)
    with pytest.raises(InvalidParameterError, match=r"The 'kind' parameter of _draw .*Got 'c'"):
        _draw(2, "c")
    # An __init__ names its class; booleans are not integers.
    with pytest.raises(InvalidParameterError, match=r"The 'size' parameter of _Thing must be"):
        _Thing(True)
    assert _Thing().size == 3


def test_validated_refuses_constraints_on_arguments_the_function_lacks():
    with pytest.raises(TypeError, match=r"has no argument\(s\) \['m'\] to validate"):
        validated({"m": [integer()]})(lambda n: n)


def test_check_value_names_the_value_and_the_caller():
    check_value("f", "k", 5, [integer(1)])
    with pytest.raises(InvalidParameterError, match=r"The 'k' parameter of f must be .*Got -1"):
        check_value("f", "k", -1, [integer(1)])


class _Model(FixedAfterFit, BaseEstimator):
    _fixed_after_fit = ("size", "shape")
    _fixed_after_fit_reason = "the fitted table has that size"

    def __init__(self, size=2, shape=(1, 2), free=0):
        self.size = size
        self.shape = shape
        self.free = free

    def fit(self):
        self._remember_fixed()
        return self


def test_fixed_after_fit_refuses_a_changed_structure_and_allows_the_rest():
    model = _Model().fit()
    model.set_params(free=5, shape=[1, 2])  # a list equal to the tuple is no change
    model._check_fixed()
    model.set_params(size=3)
    with pytest.raises(
        ValueError,
        match=r"size=3 was set after fitting, but this _Model was fitted with size=2; the "
        r"fitted table has that size\. Refit the model \(call fit again\), or set size back to 2",
    ):
        model._check_fixed()
    _Model(size=9)._check_fixed()  # never fitted: nothing to compare


@pytest.mark.parametrize(
    "z, allow_nan, match",
    [
        (
            [0.1, -1.0],
            False,
            r"y must be > -1 \(1 \+ z > 0\); 1 row\(s\) are not, e.g. row 1 is -1",
        ),
        ([0.1, np.nan], False, r"y must be finite; got 1 NaN or infinite values"),
        ([np.inf, 0.1], True, r"or NaN for unlabelled galaxies; 1 row\(s\) are not, e.g. row 0"),
        ([-9999.0, np.nan, -5], True, r"2 row\(s\) are not, e.g. row 0 is -9999.*Mark unknown"),
    ],
)
def test_the_redshift_rule(z, allow_nan, match):
    with pytest.raises(ValueError, match=match):
        check_redshifts(np.array(z), allow_nan=allow_nan)


def test_the_redshift_rule_passes_redshifts_and_unlabelled_rows():
    z = np.array([0.0, 0.1, -0.5, np.nan])
    assert check_redshifts(z, allow_nan=True) is z
    assert check_redshifts(z[:3]) is not None


def test_every_caller_applies_the_redshift_rule():
    # One rule, one message: the metrics and the GP baseline refuse -9999.
    from skphotoz.baselines import GaussianProcessPhotoZ
    from skphotoz.metrics import sigma_mad

    with pytest.raises(ValueError, match=r"z_spec must be > -1 \(1 \+ z > 0\)"):
        sigma_mad([0.1, -9999.0], [0.1, 0.2])
    X = np.random.default_rng(0).normal(size=(6, 3))
    y = np.array([0.1, 0.2, -9999.0, 0.3, 0.1, 0.2])
    with pytest.raises(ValueError, match=r"y must be > -1 .*row 2 is -9999"):
        GaussianProcessPhotoZ(n_restarts=0).fit(X, y)


def test_check_quantiles():
    np.testing.assert_array_equal(check_quantiles((0.5, 0, 1)), [0.5, 0.0, 1.0])
    with pytest.raises(TypeError, match=r"quantiles must be numbers in \[0, 1\]; got '0.5'"):
        check_quantiles("0.5")
    for bad in ([], [1.5], [np.nan]):
        with pytest.raises(ValueError, match=r"quantiles must be numbers in \[0, 1\]"):
            check_quantiles(bad)


def test_exceptions_module_holds_every_exception_class():
    import skphotoz.nn as nn

    assert set(exceptions.__all__) == {
        "CheckpointMismatchError",
        "DamagedDataError",
        "InvalidParameterError",
        "NonFiniteError",
        "UntrustedFileError",
    }
    for name in exceptions.__all__:
        assert issubclass(getattr(exceptions, name), ValueError), name
    assert issubclass(exceptions.NonFiniteError, FloatingPointError)
    assert issubclass(exceptions.DamagedDataError, OSError)  # what h5py raises for it
    assert nn.NonFiniteError is exceptions.NonFiniteError
    assert nn.CheckpointMismatchError is exceptions.CheckpointMismatchError
    assert {"NonFiniteError", "CheckpointMismatchError"} <= set(nn.__all__)
