import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.linear_model import LinearRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from skphotoz.baselines import (
    GaussianProcessPhotoZ,
    _gp_loo,
    _linear_loo_mse,
    photometry_baseline,
)
from skphotoz.datasets import make_sdss_galaxies
from skphotoz.metrics import sigma_mad


def _smooth(n=150, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    z = 0.1 + 0.03 * np.tanh(2 * X[:, 0]) + 0.01 * X[:, 1] ** 2 + 0.002 * rng.normal(size=n)
    return X, z


@parametrize_with_checks(
    [GaussianProcessPhotoZ(n_restarts=0, random_state=0)],
    expected_failed_checks=lambda estimator: {},
)
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def test_the_gp_beats_a_linear_fit_on_a_nonlinear_relation():
    X, z = _smooth(300)
    gp = GaussianProcessPhotoZ(n_restarts=1, random_state=0).fit(X[:200], z[:200])
    linear = LinearRegression().fit(X[:200], z[:200])
    gp_error = np.mean((gp.predict(X[200:]) - z[200:]) ** 2)
    linear_error = np.mean((linear.predict(X[200:]) - z[200:]) ** 2)
    assert gp_error < 0.2 * linear_error, (gp_error, linear_error)
    assert gp.loo_mse_ < gp.linear_loo_mse_
    # ARD: the irrelevant third feature gets the longest length scale.
    length = gp.kernel_.k1.k2.length_scale
    assert np.argmax(length) == 2, length
    mean, std = gp.predict(X[200:], return_std=True)
    assert mean.shape == std.shape == (100,) and np.all(std > 0)


def test_leave_one_out_errors_are_exact():
    X, z = _smooth(40, seed=1)
    kernel = ConstantKernel(0.5) * RBF([1.0, 2.0, 3.0]) + WhiteKernel(0.1)
    gp = GaussianProcessRegressor(kernel, optimizer=None, normalize_y=True).fit(X, z)
    brute, brute_variance = [], []
    for i in range(len(X)):
        keep = np.arange(len(X)) != i
        # The same kernel on the other rows, with the normalisation of all rows.
        scale, centre = gp._y_train_std, gp._y_train_mean
        fold = GaussianProcessRegressor(kernel, optimizer=None).fit(
            X[keep], (z[keep] - centre) / scale
        )
        mean, std = fold.predict(X[i : i + 1], return_std=True)
        brute.append((mean[0] * scale + centre - z[i]) ** 2)
        brute_variance.append((std[0] * scale) ** 2)
    residual, variance = _gp_loo(gp)
    assert np.mean(residual**2) == pytest.approx(np.mean(brute), rel=1e-6)
    np.testing.assert_allclose(residual**2, brute, rtol=1e-6)
    np.testing.assert_allclose(variance, brute_variance, rtol=1e-6)
    brute_linear = []
    for i in range(len(X)):
        keep = np.arange(len(X)) != i
        fit = LinearRegression().fit(X[keep], z[keep])
        brute_linear.append((fit.predict(X[i : i + 1])[0] - z[i]) ** 2)
    assert _linear_loo_mse(X, z) == pytest.approx(np.mean(brute_linear), rel=1e-9)


def _collapsed(Xs, y):
    """A GP stuck at the mean: every length scale at its upper bound."""
    kernel = ConstantKernel(1e-3) * RBF(np.full(Xs.shape[1], 1e3)) + WhiteKernel(1.0)
    return GaussianProcessRegressor(kernel, optimizer=None, normalize_y=True).fit(Xs, y)


def test_a_collapsed_fit_is_refitted_with_more_starts(monkeypatch):
    X, z = _smooth(120)
    calls = []
    original = GaussianProcessPhotoZ._fit_gp

    def first_collapses(Xs, y, n_restarts, rng):
        calls.append(n_restarts)
        return _collapsed(Xs, y) if len(calls) == 1 else original(Xs, y, n_restarts, rng)

    monkeypatch.setattr(GaussianProcessPhotoZ, "_fit_gp", staticmethod(first_collapses))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        gp = GaussianProcessPhotoZ(n_restarts=1, random_state=0).fit(X, z)
    assert calls == [1, 8]
    assert gp.loo_mse_ < gp.linear_loo_mse_


def test_a_fit_that_stays_collapsed_warns(monkeypatch):
    X, z = _smooth(120)
    monkeypatch.setattr(
        GaussianProcessPhotoZ, "_fit_gp", staticmethod(lambda Xs, y, n, rng: _collapsed(Xs, y))
    )
    with pytest.warns(ConvergenceWarning, match="leave-one-out error"):
        gp = GaussianProcessPhotoZ(n_restarts=0, random_state=0).fit(X, z)
    assert gp.loo_mse_ > gp.linear_loo_mse_


def test_more_rows_than_max_samples_fit_a_subset_with_a_warning():
    X, z = _smooth(80)
    with pytest.warns(UserWarning, match="random 50 of the 80 rows"):
        gp = GaussianProcessPhotoZ(n_restarts=0, max_samples=50, random_state=0).fit(X, z)
    assert gp.n_samples_fit_ == 50


@pytest.mark.parametrize("bad", [-1.0, -9999.0])
def test_missing_value_codes_are_refused(bad):
    X, z = _smooth(30)
    z[3] = bad
    with pytest.raises(ValueError, match=r"y must be > -1 .*missing-value code"):
        GaussianProcessPhotoZ(n_restarts=0).fit(X, z)


def test_photometry_baselines_on_images_beat_the_median():
    sample = make_sdss_galaxies(300, random_state=2, stamp_size=32)
    X, z = sample.images, sample.redshift
    median = sigma_mad(z[200:], np.full(100, np.median(z[:200])))
    for name in ("gp", "forest"):
        model = photometry_baseline(
            name, random_state=0, **({"n_restarts": 0} if name == "gp" else {})
        )
        model.fit(X[:200], z[:200])
        assert sigma_mad(z[200:], model.predict(X[200:])) < 0.7 * median, name
        clone(model)
    with pytest.raises(ValueError, match="'gp' or 'forest'; got 'knn'"):
        photometry_baseline("knn")


def test_a_well_specified_gps_uncertainties_match_its_leave_one_out_errors():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 2))
    z = 0.3 + 0.05 * np.tanh(X[:, 0]) + 0.01 * rng.normal(size=400)
    gp = GaussianProcessPhotoZ(n_restarts=0, random_state=0).fit(X, z)
    assert gp.std_calibration_ == pytest.approx(1.0, abs=0.15)
    residual, _ = _gp_loo(gp.gp_)
    assert gp.loo_mse_ == pytest.approx(np.mean(residual**2), rel=1e-12)


def test_predictions_in_chunks_are_those_of_one_call(monkeypatch):
    import skphotoz.baselines as baselines

    X, z = _smooth(120)
    gp = GaussianProcessPhotoZ(n_restarts=0, random_state=0).fit(X[:80], z[:80])
    whole = gp.predict(X, return_std=True)
    monkeypatch.setattr(baselines, "_PREDICT_CHUNK", 7)
    chunked = gp.predict(X, return_std=True)
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-10)
    np.testing.assert_allclose(chunked[1], whole[1], rtol=1e-10)
    np.testing.assert_allclose(gp.predict(X), whole[0], rtol=1e-10)
