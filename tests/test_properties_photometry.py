"""Property test of AperturePhotometry: any parameters and any tiny stamps give a clear error
or finite features of the right shape (the photometry baseline and the pretraining targets
both rest on it)."""

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from skphotoz.preprocessing import AperturePhotometry

JUNK = st.sampled_from([np.inf, -np.inf, np.nan, -1, 0, 0.0, 1e12, True, "x", None, (), [1.0]])


def _param(valid):
    """Mostly valid (7 in 8), sometimes junk (one_of would merge repeated branches)."""
    return st.integers(0, 7).flatmap(lambda i: JUNK if i == 3 else valid)


PARAMS = {
    "radii": _param(st.lists(st.floats(0.1, 12.0), min_size=2, max_size=4).map(tuple)),
    "pixel_scale": _param(st.floats(0.05, 2.0)),
    "reference_band": _param(st.integers(0, 6)),
    "flux_floor": _param(st.floats(1e-4, 1.0)),
    "batch_size": _param(st.integers(1, 8)),
}


@st.composite
def stamps(draw):
    n = draw(st.integers(0, 5))
    bands = draw(st.sampled_from([5, 5, 5, 0, 1, 2, 3, 6]))
    height = draw(st.integers(0, 9))
    width = draw(st.sampled_from([height] * 5 + [draw(st.integers(0, 9))]))
    ndim = draw(st.sampled_from([4] * 8 + [3, 2]))
    shape = (n, bands, height, width)[:ndim]
    scale = draw(st.sampled_from([1.0, 1e-30, 1e30, 3e38]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    with np.errstate(over="ignore"):  # 3e38 stamps overflow float32 to inf on purpose
        X = (rng.normal(size=shape) * scale).astype(dtype)
    if X.size and draw(st.integers(0, 3)) == 0:
        X.reshape(-1)[draw(st.integers(0, X.size - 1))] = draw(st.sampled_from([np.nan, np.inf]))
    if draw(st.integers(0, 9)) == 0:
        X = X.astype(str)
    return X


@settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.fixed_dictionaries(PARAMS), stamps(), st.fixed_dictionaries({}, optional=PARAMS))
def test_photometry_gives_a_clear_error_or_finite_features(params, X, changed):
    model = AperturePhotometry(**params)
    try:
        features = model.fit_transform(X)
    except (ValueError, TypeError) as error:
        _check_message(error)
        return
    event(f"features of stamps at scale {float(np.abs(X).max()) if X.size else 0:.0e}")
    _check_features(features, X, params)

    # Parameters changed after fit: checked again, never an IndexError or NaN features.
    model.set_params(**changed)
    try:
        features = model.transform(X)
    except (ValueError, TypeError) as error:
        _check_message(error)
        return
    _check_features(features, X, {**params, **changed})


def _check_message(error):
    message = str(error)
    assert len(message) > 20, message
    event(f"error: {type(error).__name__}")


def _check_features(features, X, params):
    n_bands = X.shape[1]
    n_radii = len(params["radii"])
    assert X.ndim == 4 and X.shape[2] == X.shape[3] >= 1
    assert features.shape == (X.shape[0], 2 * (n_bands - 1) + n_radii)
    assert features.dtype == np.float64
    assert np.isfinite(features).all()
