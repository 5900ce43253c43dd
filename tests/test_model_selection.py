import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import KFold
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline

from skphotoz import MoCoEmbedder, PhotoZRegressor
from skphotoz.datasets import make_sdss_galaxies
from skphotoz.metrics import sigma_mad
from skphotoz.model_selection import (
    LabelEfficiencyCurve,
    label_efficiency_curve,
    label_efficiency_factor,
    paired_difference,
)
from skphotoz.preprocessing import AperturePhotometry
from tests.helpers import ConstantRegressor


def _features(n=240, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    z = 0.1 + 0.04 * np.tanh(X[:, 0]) + 0.01 * X[:, 1] + 0.002 * rng.normal(size=n)
    return X, z


def test_forest_curve_holds_every_split_and_budget_and_matches_a_refit():
    X, z = _features()
    forest = RandomForestRegressor(30, random_state=0)
    curve = label_efficiency_curve(
        forest, X, z, label_counts=[20, 50, 150], cv=4, random_state=1, return_estimators=True
    )
    assert curve.test_scores.shape == (3, 4) and curve.fit_times.shape == (3, 4)
    assert sorted(np.concatenate(curve.test_indices).tolist()) == list(range(240))
    for s, (train, test) in enumerate(zip(curve.train_indices, curve.test_indices, strict=True)):
        assert not set(train) & set(test)
        for b in range(len(curve.label_counts)):
            # The score is minus the σ_MAD of the kept predictions ...
            assert curve.test_scores[b, s] == pytest.approx(
                -sigma_mad(z[test], curve.predictions[s][b])
            )
        # ... which are those of the estimator fitted on the first n training rows alone.
        refit = RandomForestRegressor(30, random_state=0).fit(X[train[:50]], z[train[:50]])
        np.testing.assert_array_equal(curve.predictions[s][1], refit.predict(X[test]))
        kept = curve.estimators[s][1]
        np.testing.assert_array_equal(kept.predict(X[test]), curve.predictions[s][1])
    # More labels, less scatter.
    assert curve.sigma_mad()[2, 0] < curve.sigma_mad()[0, 0]


def test_repeats_draw_other_splits_and_parallel_fits_agree():
    X, z = _features(120)
    knn = KNeighborsRegressor(3)
    one = label_efficiency_curve(
        knn, X, z, label_counts=[10, 40], cv=3, n_repeats=2, random_state=0
    )
    two = label_efficiency_curve(
        knn, X, z, label_counts=[10, 40], cv=3, n_repeats=2, random_state=0, n_jobs=2
    )
    assert one.test_scores.shape == (2, 6) and one.repeats.tolist() == [0, 0, 0, 1, 1, 1]
    assert one.sigma_mad().shape == (2, 2)
    np.testing.assert_array_equal(one.test_scores, two.test_scores)
    assert not np.array_equal(one.test_indices[0], one.test_indices[3])


def test_networks_see_every_training_image_with_labels_beyond_the_budget_masked(monkeypatch):
    X, z = _features(90)
    z[:6] = np.nan  # rows without a spectroscopic redshift
    seen = []
    original = PhotoZRegressor.fit

    def spy(self, X, y):
        seen.append((len(X), int(np.count_nonzero(~np.isnan(y)))))
        return original(self, X, y)

    monkeypatch.setattr(PhotoZRegressor, "fit", spy)
    model = PhotoZRegressor(n_epochs=1, batch_size=16, random_state=0, device="cpu")
    curve = label_efficiency_curve(model, X, z, label_counts=[10, 30], cv=KFold(3), random_state=0)
    # 84 labelled rows: 56 train and 28 test per split; the 6 unlabelled rows train too.
    assert seen == [(62, 10), (62, 30)] * 3
    assert curve.test_scores.shape == (2, 3)
    assert not any(np.isin(np.arange(6), t).any() for t in curve.test_indices)


def test_fine_tuned_network_and_image_forest_on_the_same_galaxies():
    sample = make_sdss_galaxies(96, random_state=0, stamp_size=16)
    X, z = sample.images, sample.redshift
    embedder = MoCoEmbedder(n_epochs=1, batch_size=32, queue_size=32, random_state=0, device="cpu")
    tuned = PhotoZRegressor(
        FrozenEstimator(embedder.fit(X)), n_epochs=2, batch_size=16, random_state=0, device="cpu"
    )
    forest = make_pipeline(
        AperturePhotometry(radii=(1.0, 2.0)), RandomForestRegressor(20, random_state=0)
    )
    curves = [
        label_efficiency_curve(est, X, z, label_counts=[16, 48], cv=2, random_state=0)
        for est in (tuned, forest)
    ]
    for curve in curves:
        assert curve.test_scores.shape == (2, 2) and np.isfinite(curve.test_scores).all()
    assert curves[1].name == "AperturePhotometry + RandomForestRegressor"
    diff = paired_difference(*curves, n_bootstrap=50, random_state=0)
    assert diff.label_counts.tolist() == [16, 48]


def _synthetic_curve(counts, scale, n_test=3000, name="", noise_seed=0):
    """A curve whose normalised residuals at budget n are r * scale(n), for one fixed r."""
    rng = np.random.default_rng(0)
    z = rng.uniform(0.02, 0.3, size=n_test)
    r = np.random.default_rng(noise_seed + 1).normal(size=n_test)
    predictions = np.array([z + (1 + z) * r * scale(n) for n in counts])
    half = n_test // 2
    tests = [np.arange(half), np.arange(half, n_test)]
    return LabelEfficiencyCurve(
        label_counts=np.asarray(counts),
        test_scores=np.zeros((len(counts), 2)),
        predictions=[predictions[:, t] for t in tests],
        test_indices=tests,
        train_indices=[np.arange(0), np.arange(0)],
        y=z,
        repeats=np.array([0, 0]),
        fit_times=np.zeros((len(counts), 2)),
        name=name,
    )


def test_label_efficiency_factor_recovers_a_known_factor():
    # b needs four times the labels of a for the same scatter: sigma_b(4n) = sigma_a(n).
    a = _synthetic_curve([100, 200, 400, 1600], lambda n: 0.1 / np.sqrt(n))
    b = _synthetic_curve([100, 200, 400, 800, 1600, 3200], lambda n: 0.2 / np.sqrt(n))
    result = label_efficiency_factor(a, b, n_bootstrap=200, random_state=0)
    np.testing.assert_allclose(result.factor[:3], 4.0, rtol=1e-9)
    # The same residuals, rescaled: every resample gives the same factor.
    np.testing.assert_allclose(result.low[:3], 4.0, rtol=1e-9)
    np.testing.assert_allclose(result.high[:3], 4.0, rtol=1e-9)
    # At 1,600 labels a would need 6,400 of b, beyond its largest budget: a lower bound.
    assert result.censored.tolist() == [0, 0, 0, 1]
    assert result.factor[3] == pytest.approx(3200 / 1600)
    # With residuals of their own the factor is 4 up to noise, inside its interval.
    noisy = _synthetic_curve(
        [100, 200, 400, 800, 1600, 3200], lambda n: 0.2 / np.sqrt(n), noise_seed=7
    )
    result = label_efficiency_factor(a, noisy, n_bootstrap=300, random_state=0)
    assert np.all(np.abs(result.factor[:3] - 4) < 1)
    assert np.all(result.low[:3] < 4) and np.all(result.high[:3] > 4)
    assert np.all(result.high[:3] - result.low[:3] > 0.2)
    # Against itself the factor is 1.
    np.testing.assert_allclose(label_efficiency_factor(b, b, n_bootstrap=20).factor[:-1], 1.0)


def test_paired_difference_sign_and_probability():
    a = _synthetic_curve([100, 200], lambda n: 0.1 / np.sqrt(n))
    b = _synthetic_curve([100, 200, 400], lambda n: 0.12 / np.sqrt(n))
    diff = paired_difference(a, b, n_bootstrap=200, random_state=0)
    assert diff.label_counts.tolist() == [100, 200]
    expected = a.sigma_mad()[:, 0] - b.sigma_mad()[:2, 0]
    np.testing.assert_allclose(diff.difference, expected, rtol=1e-9)
    assert np.all(diff.high < 0) and np.all(diff.prob_a_better == 1.0)


def test_errors_name_the_argument():
    X, z = _features(60)
    knn = KNeighborsRegressor(3)
    with pytest.raises(ValueError, match="label_counts must not exceed the labelled training rows"):
        label_efficiency_curve(knn, X, z, label_counts=[10, 50], cv=3)
    with pytest.raises(ValueError, match="label_counts must be increasing integers >= 2"):
        label_efficiency_curve(knn, X, z, label_counts=[20, 10], cv=3)
    with pytest.raises(ValueError, match="label_counts must be a 1-D sequence of integers"):
        label_efficiency_curve(knn, X, z, label_counts=[2.5], cv=3)
    with pytest.raises(ValueError, match=r"y must have one redshift per row of X \(60\); got 59"):
        label_efficiency_curve(knn, X, z[:59], label_counts=[10], cv=3)
    with pytest.raises(ValueError, match="'n_repeats' parameter of label_efficiency_curve"):
        label_efficiency_curve(knn, X, z, label_counts=[10], cv=3, n_repeats=0)
    a = label_efficiency_curve(knn, X, z, label_counts=[10], cv=3, random_state=0)
    b = label_efficiency_curve(knn, X, z, label_counts=[10], cv=3, random_state=1)
    with pytest.raises(ValueError, match="must share their test galaxies"):
        label_efficiency_factor(a, b)
    # The same galaxies: y may differ by rounding (a curve saved by another numpy), not more.
    rounded = label_efficiency_curve(knn, X, z * (1 + 1e-15), label_counts=[10], cv=3,
                                     random_state=0)  # fmt: skip
    paired_difference(a, rounded, n_bootstrap=10)
    other = label_efficiency_curve(knn, X, z + 1e-4, label_counts=[10], cv=3, random_state=0)
    with pytest.raises(ValueError, match="have different y"):
        paired_difference(a, other, n_bootstrap=10)


def test_curves_of_several_data_sets_concatenate_into_repeats():
    a = _synthetic_curve([100, 200], lambda n: 0.1 / np.sqrt(n))
    b = _synthetic_curve([100, 200], lambda n: 0.1 / np.sqrt(n), noise_seed=3)
    both = LabelEfficiencyCurve.concatenate([a, b])
    assert both.n_repeats == 2 and len(both.y) == 6000
    np.testing.assert_allclose(both.sigma_mad(), np.column_stack([a.sigma_mad(), b.sigma_mad()]))
    with pytest.raises(ValueError, match="same label_counts"):
        LabelEfficiencyCurve.concatenate([a, _synthetic_curve([100], lambda n: 0.1)])


def test_select_keeps_some_budgets_of_the_same_splits():
    X, z = _features(120)
    curve = label_efficiency_curve(
        RandomForestRegressor(10, random_state=0), X, z, label_counts=[10, 30, 60], cv=3,
        random_state=0, return_estimators=True,
    )  # fmt: skip
    part = curve.select([60, 10])
    assert part.label_counts.tolist() == [10, 60]
    np.testing.assert_array_equal(part.test_scores, curve.test_scores[[0, 2]])
    np.testing.assert_array_equal(part.sigma_mad(), curve.sigma_mad()[[0, 2]])
    assert part.estimators[1][1] is curve.estimators[1][2]
    # Paired comparisons with a curve computed at those budgets only.
    fewer = label_efficiency_curve(
        KNeighborsRegressor(3), X, z, label_counts=[10, 60], cv=3, random_state=0
    )
    assert paired_difference(part, fewer, n_bootstrap=50, random_state=0).difference.shape == (2,)
    with pytest.raises(ValueError, match=r"budgets of the curve \(\[10, 30, 60\]\); got \[20\]"):
        curve.select([20])


def _curve_inputs():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    return KNeighborsRegressor(3), X, 0.1 + 0.02 * np.tanh(X[:, 0])


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"X": None}, TypeError, r"X must be an array-like with one row per galaxy .*NoneType"),
        ({"X": "images.h5"}, TypeError, r"X must be an array-like .* got str"),
        ({"y": None}, TypeError, r"y must be an array of redshifts .* got None"),
        ({"y": np.array(["a"] * 60)}, TypeError, r"y must be an array of redshifts .*<U1"),
        ({"y": np.full(60, np.nan)}, ValueError, r"y has no labelled row \(all NaN\)"),
        ({"estimator": None}, ValueError, r"'estimator' parameter .* 'fit' and 'predict'"),
        ({"cv": True}, ValueError, r"cv must be a number of folds from 2 to 10000.*cv=True"),
        ({"cv": 10**9}, ValueError, r"cv must be a number of folds .*cv=1000000000"),
        ({"n_jobs": 0}, ValueError, r"'n_jobs' parameter of label_efficiency_curve"),
        ({"random_state": -1}, ValueError, r"'random_state' parameter .* Got -1"),
        ({"random_state": True}, ValueError, r"'random_state' parameter .* Got True"),
        ({"verbose": 10**20}, ValueError, r"'verbose' parameter .* \[0, 1000\]"),
        ({"label_counts": [5, 10**12]}, ValueError, r"must not exceed the labelled training"),
    ],
)
def test_label_efficiency_curve_refuses_bad_arguments(change, error, match):
    estimator, X, y = _curve_inputs()
    kwargs = {"estimator": estimator, "X": X, "y": y, "label_counts": [5, 10], "cv": 3}
    kwargs.update(change)
    with pytest.raises(error, match=match):
        label_efficiency_curve(**kwargs)


def test_label_efficiency_curve_refuses_non_finite_predictions():
    _, X, y = _curve_inputs()
    with pytest.raises(ValueError, match=r"predictions at repeat 0, split 0, 5 labels .* 1 NaN"):
        label_efficiency_curve(
            ConstantRegressor([0.1] * 19 + [np.nan]),
            X,
            y,
            label_counts=[5, 10],
            cv=3,
            random_state=0,
        )


def test_curve_comparisons_refuse_what_is_not_a_curve():
    estimator, X, y = _curve_inputs()
    curve = label_efficiency_curve(estimator, X, y, label_counts=[5, 10], cv=3, random_state=0)
    with pytest.raises(TypeError, match=r"curve_b must be a LabelEfficiencyCurve .*NoneType"):
        label_efficiency_factor(curve, None)
    with pytest.raises(TypeError, match=r"curve_a must be a LabelEfficiencyCurve .*list"):
        paired_difference([curve], curve)
    with pytest.raises(ValueError, match=r"'random_state' parameter of paired_difference"):
        paired_difference(curve, curve, random_state="x")
    with pytest.raises(ValueError, match=r"'confidence' parameter .* Got nan"):
        label_efficiency_factor(curve, curve, confidence=np.nan)
    with pytest.raises(ValueError, match=r"curves must hold at least one LabelEfficiencyCurve"):
        LabelEfficiencyCurve.concatenate([])
    with pytest.raises(TypeError, match=r"curves must be LabelEfficiencyCurve results .*int"):
        LabelEfficiencyCurve.concatenate([curve, 3])
    with pytest.raises(ValueError, match=r"label_counts must be one or more budgets"):
        curve.select([5.5])
    with pytest.raises(TypeError, match=r"metric must be a callable"):
        curve.pooled("sigma_mad")
