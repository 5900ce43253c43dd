"""Property tests: any parameters and any tiny input give a clear error or a finite output.

Hypothesis draws parameters (valid and invalid: infinity, NaN, booleans, strings, huge
values) and tiny inputs (feature vectors of a few rows, small images of random shapes, NaN
and infinity sprinkled in, extreme magnitudes, wrong numbers of dimensions) and runs a fit
and a prediction with tiny settings. Each example must end in a ValueError or TypeError with
a message, or in outputs that are finite and of the right shape (redshifts of the binned
head within ``z_range``).
"""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from skphotoz import MoCoEmbedder, PhotoZRegressor

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

JUNK = st.sampled_from(
    [np.inf, -np.inf, np.nan, -1, 0, 0.0, 1e12, 10**9, True, False, "False", "auto", None, "x"]
)


def _param(valid):
    """A parameter value: mostly valid, sometimes junk."""
    return st.one_of(valid, valid, valid, JUNK)


COMMON = {
    "batch_size": _param(st.integers(2, 8)),
    "lr": _param(st.floats(1e-4, 1.0)),
    "weight_decay": _param(st.floats(0, 1e-2)),
    "warmup_epochs": _param(st.floats(0, 2)),
    "rotation": _param(st.booleans()),
    "flip": _param(st.booleans()),
    "jitter": _param(st.floats(0, 3)),
    "scale": _param(st.floats(1, 2)),
    "psf_fwhm": _param(st.floats(0, 2)),
    "noise": _param(st.floats(0, 2)),
    "dust_ebv": _param(st.floats(0, 0.5)),
    "brightness": _param(st.floats(0, 2)),
    "crop_size": _param(st.one_of(st.none(), st.integers(1, 10))),
    "nan_policy": _param(st.sampled_from(["raise", "fill"])),
    "backbone": _param(st.sampled_from(["auto", "mlp", "resnet18"])),
    "device": _param(st.sampled_from(["cpu", "auto", "cuda:3", "mps", "cpu:0"])),
    "shuffle_buffer": _param(st.one_of(st.none(), st.integers(1, 20))),
}
EMBEDDER = {
    **COMMON,
    "n_epochs": _param(st.integers(0, 2)),
    "embedding": _param(st.sampled_from(["backbone", "projection"])),
    "projection_dim": _param(st.integers(1, 64)),
    "queue_size": _param(st.one_of(st.just("auto"), st.integers(1, 64))),
    "momentum": _param(st.floats(0.5, 0.999)),
    "temperature": _param(st.floats(0.01, 1)),
    "contrastive_weight": _param(st.floats(0, 2)),
    "photometry_weight": _param(st.floats(0, 2)),
    "redshift_weight": _param(st.floats(0, 2)),
    "join_photometry": _param(st.floats(0, 3)),
}
REGRESSOR = {
    **COMMON,
    "n_epochs": _param(st.integers(1, 2)),
    "head": _param(st.sampled_from(["bins", "regression"])),
    "n_bins": _param(st.integers(2, 50)),
    "z_range": _param(
        st.one_of(
            st.tuples(st.floats(0, 0.5), st.floats(0.6, 3)),
            st.tuples(JUNK, JUNK),
            st.lists(st.floats(-1, 1), max_size=3),
        )
    ),
    "target_sigma": _param(st.floats(0, 0.1)),
    "backbone_lr_ratio": _param(st.floats(0.01, 1)),
    "photometry": _param(st.booleans()),
    "bottleneck": _param(st.integers(1, 8)),
    "freeze_backbone": _param(st.booleans()),
    "point_estimate": _param(st.sampled_from(["mean", "median", "mode"])),
    "test_time_augmentation": _param(st.booleans()),
    "early_stopping": _param(st.booleans()),
    "validation_fraction": _param(st.floats(0.1, 0.5)),
}


@st.composite
def parameters(draw, pool):
    names = draw(st.lists(st.sampled_from(sorted(pool)), max_size=3, unique=True))
    params = {"n_epochs": 1, "batch_size": 4, "device": "cpu", "random_state": 0}
    if draw(st.booleans()):
        params["nan_policy"] = "fill"
    params.update({name: draw(pool[name]) for name in names})
    return params


@st.composite
def changes(draw, pool):
    """A few parameters to set after fitting (any of them, valid or not)."""
    names = draw(st.lists(st.sampled_from(sorted(pool)), max_size=2, unique=True))
    return {name: draw(pool[name]) for name in names}


@st.composite
def holes(draw, X):
    """X, or a copy with NaN, infinity or huge values in a few places."""
    if X.dtype.kind != "f" or not draw(st.booleans()):
        return X
    X = X.copy()
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    X[rng.random(X.shape) < 0.1] = draw(st.sampled_from([np.nan, np.inf, 3e38, -1e30]))
    return X


@st.composite
def inputs(draw):
    """Tiny X: mostly feature vectors, sometimes images, sometimes a wrong shape."""
    kind = draw(st.sampled_from(["features"] * 6 + ["images"] * 2 + ["odd"]))
    n = draw(st.sampled_from([6, 4, 8, 3, 2, 1]))
    if kind == "features":
        shape = (n, draw(st.integers(1, 5)))
    elif kind == "images":
        size = draw(st.integers(4, 8))
        shape = (n, draw(st.integers(1, 5)), size, size)
    else:
        shape = draw(
            st.sampled_from(
                [(n,), (n, 3, 6), (n, 6, 6, 3), (n, 2, 5, 6), (n, 2, 3, 3), (n, 0), (0, 3),
                 (n, 1, 2, 3, 4), (n, 0, 6, 6)]
            )
        )  # fmt: skip
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    magnitude = draw(st.sampled_from([1.0, 1.0, 1e-30, 1e20, 3e38]))
    X = rng.normal(size=shape) * magnitude
    if X.size and draw(st.integers(0, 2)) == 0:
        holes = rng.random(shape) < draw(st.sampled_from([0.01, 0.2]))
        X[holes] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.float64, np.int64]))
    with np.errstate(over="ignore", invalid="ignore"):
        if dtype is np.int64:
            X = np.nan_to_num(np.clip(X, -1e6, 1e6)).astype(np.int64)
        else:
            X = X.astype(dtype)
    if X.ndim >= 2 and draw(st.integers(0, 4)) == 0:
        X = X[::-1]
    return X


@st.composite
def labels(draw, n):
    kind = draw(st.sampled_from(["ok"] * 6 + ["nan", "inf", "short", "huge", "none"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    y = rng.uniform(0.0, 0.6, size=n)
    if kind == "nan" and n:
        y[rng.random(n) < 0.5] = np.nan
    elif kind == "inf" and n:
        y[0] = np.inf
    elif kind == "short":
        y = y[: max(0, n - 1)]
    elif kind == "huge":
        y = y * 1e31
    elif kind == "none":
        return None
    return y


def _clear_error(error: BaseException) -> None:
    assert isinstance(error, ValueError | TypeError), f"{type(error).__name__}: {error}"
    assert str(error).strip(), f"{type(error).__name__} without a message"
    event(f"error: {str(error)[:40]}")


@SETTINGS
@given(params=parameters(EMBEDDER), X=inputs(), data=st.data())
def test_embedder_gives_a_clear_error_or_finite_embeddings(params, X, data):
    y = data.draw(st.one_of(st.none(), labels(len(X))))
    model = MoCoEmbedder(**params)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = model.fit(X, y).transform(X)
    except Exception as error:  # noqa: BLE001 - the property is about the exception type
        _clear_error(error)
        return
    event(f"fitted on {X.ndim}-D input")
    assert out.shape == (len(X), model._n_features_out)
    assert out.dtype == np.float32
    assert np.isfinite(out).all()
    # Parameters changed after fit, and new input: again a clear error or finite output.
    model.set_params(**data.draw(changes(EMBEDDER)))
    X_new = data.draw(holes(X))
    try:
        out = model.transform(X_new)
    except Exception as error:  # noqa: BLE001
        _clear_error(error)
        return
    event("transformed after set_params")
    assert out.shape == (len(X), model._n_features_out) and np.isfinite(out).all()


@SETTINGS
@given(params=parameters(REGRESSOR), X=inputs(), data=st.data())
def test_regressor_gives_a_clear_error_or_finite_redshifts(params, X, data):
    y = data.draw(labels(len(X)))
    model = PhotoZRegressor(**params)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, y)
            z = model.predict(X)
            pdf = model.predict_pdf(X)
            q = model.predict_quantiles(X)
    except Exception as error:  # noqa: BLE001 - the property is about the exception type
        _clear_error(error)
        return
    event(f"fitted on {X.ndim}-D input")
    low, high = model.redshift_bins_[0], model.redshift_bins_[-1]
    assert z.shape == (len(X),) and np.isfinite(z).all()
    assert pdf.shape == (len(X), model.n_bins) and np.isfinite(pdf).all()
    np.testing.assert_allclose(pdf.sum(axis=1), 1.0, rtol=1e-6)
    assert q.shape == (len(X), 3) and np.isfinite(q).all()
    assert ((q >= low - 1e-9) & (q <= high + 1e-9)).all()
    if model.head == "bins":
        assert ((z >= low - 1e-9) & (z <= high + 1e-9)).all()
    # Parameters changed after fit, and new input: again a clear error or finite output.
    model.set_params(**data.draw(changes(REGRESSOR)))
    X_new = data.draw(holes(X))
    try:
        z = model.predict(X_new)
        pdf = model.predict_pdf(X_new)
    except Exception as error:  # noqa: BLE001
        _clear_error(error)
        return
    event("predicted after set_params")
    assert z.shape == (len(X),) and np.isfinite(z).all() and np.isfinite(pdf).all()
    if model.head == "bins":
        assert ((z >= low - 1e-9) & (z <= high + 1e-9)).all()


@pytest.mark.parametrize("estimator", [MoCoEmbedder, PhotoZRegressor])
def test_parameter_pools_cover_every_numeric_parameter(estimator):
    # A parameter added later without a strategy here would go untested.
    pool = EMBEDDER if estimator is MoCoEmbedder else REGRESSOR
    untested = {"random_state", "verbose", "checkpoint_dir", "callbacks", "num_workers",
                "warm_start", "encoder", "stem", "min_steps", "n_iter_no_change"}  # fmt: skip
    assert set(estimator().get_params()) - untested == set(pool)
