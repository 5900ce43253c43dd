import subprocess
import sys

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, cross_val_predict, cross_val_score, cross_validate

from skphotoz import metrics
from skphotoz.metrics import (
    PHOTOZ_SCORING,
    bias,
    delta_z,
    outlier_fraction,
    photoz_report,
    sigma_mad,
    sigma_mad_scorer,
)
from tests.helpers import ConstantRegressor


def test_delta_z_hand_computed():
    dz = delta_z([0.0, 0.1, 0.25], [0.0, 0.122, 0.2])
    np.testing.assert_allclose(dz, [0.0, 0.02, -0.04], atol=1e-15)


def test_sigma_mad_hand_computed():
    # dz = [0, 0.01, 0.03, -0.02, 0.1]; median 0.01; |dz - med| = [.01, 0, .02, .03, .09]
    z_spec = np.zeros(5)
    z_phot = np.array([0.0, 0.01, 0.03, -0.02, 0.1])
    assert sigma_mad(z_spec, z_phot) == pytest.approx(1.4826 * 0.02, abs=1e-12)


def test_sigma_mad_matches_definition_random():
    rng = np.random.default_rng(0)
    z_spec = rng.uniform(0, 0.4, 1001)
    z_phot = z_spec + rng.normal(0, 0.02, 1001)
    dz = (z_phot - z_spec) / (1 + z_spec)
    expected = 1.4826 * np.median(np.abs(dz - np.median(dz)))
    assert abs(sigma_mad(z_spec, z_phot) - expected) < 1e-12


def test_sigma_mad_of_gaussian_is_its_sigma():
    rng = np.random.default_rng(1)
    z_spec = np.zeros(200_000)
    assert sigma_mad(z_spec, rng.normal(0, 0.015, z_spec.size)) == pytest.approx(0.015, rel=0.01)


def test_bias_and_outliers_hand_computed():
    z_spec = np.array([0.0, 0.0, 1.0, 1.0])
    z_phot = np.array([0.01, 0.06, 1.0, 0.8])  # dz = .01, .06, 0, -.1
    assert bias(z_spec, z_phot) == pytest.approx((0.01 + 0.06 + 0.0 - 0.1) / 4, abs=1e-15)
    assert outlier_fraction(z_spec, z_phot) == 0.5
    assert outlier_fraction(z_spec, z_phot, threshold=0.08) == 0.25
    # A residual exactly at the threshold is not an outlier (strict inequality).
    assert outlier_fraction([0.0], [0.05]) == 0.0


def test_photoz_report_collects_all():
    z_spec = np.array([0.1, 0.2, 0.3, 0.15])
    z_phot = np.array([0.11, 0.19, 0.42, 0.15])
    report = photoz_report(z_spec, z_phot)
    # dz = 0.01/1.1, -0.01/1.2, 0.12/1.3, 0: median (0 + 0.01/1.1) / 2; the absolute
    # deviations sort as d, d, 0.01/1.2 + d, 0.12/1.3 - d with d = 0.01/2.2.
    d = 0.01 / 2.2
    assert set(report) == {"n", "sigma_mad", "bias", "outlier_fraction"}
    assert report["n"] == 4
    assert report["sigma_mad"] == pytest.approx(1.4826 * (d + 0.01 / 1.2 + d) / 2, abs=1e-15)
    assert report["bias"] == pytest.approx((0.01 / 1.1 - 0.01 / 1.2 + 0.12 / 1.3) / 4, abs=1e-15)
    assert report["outlier_fraction"] == 0.25
    assert photoz_report(z_spec, z_phot, threshold=0.1)["outlier_fraction"] == 0.0


@pytest.mark.parametrize(
    ("z_spec", "z_phot", "match"),
    [
        ([0.1, 0.2], [0.1], "equal lengths; got 2 and 1"),
        ([0.1, np.nan], [0.1, 0.2], "z_spec must be finite; got 1 NaN"),
        ([0.1, 0.2], [np.inf, 0.2], "z_phot must be finite"),
        ([-1.0, 0.2], [0.1, 0.2], "z_spec must be > -1"),
        ([], [], "at least one galaxy"),
        (np.zeros((2, 2)), np.zeros((2, 2)), "1-D array of redshifts; got shape"),
    ],
)
def test_invalid_input_messages(z_spec, z_phot, match):
    with pytest.raises(ValueError, match=match):
        sigma_mad(z_spec, z_phot)


@pytest.mark.parametrize("threshold", [0, -0.1, np.nan, np.inf, "0.05", True])
def test_invalid_threshold(threshold):
    with pytest.raises(ValueError, match="'threshold' parameter of outlier_fraction must be"):
        outlier_fraction([0.1], [0.1], threshold=threshold)


def _regression_data(n=300, seed=0, outliers=0.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = np.clip(0.1 + X @ [0.03, -0.02, 0.01, 0.0] + rng.normal(0, 0.01, n), 0.0, 0.4)
    # Labels no linear model can follow: catastrophic outliers of the fit.
    y = np.where(rng.random(n) < outliers, y + 0.3, y)
    return X, y


def _hand_metrics(z_spec, z_phot):
    """sigma_MAD, bias and outlier fraction written out from their definitions."""
    dz = (z_phot - z_spec) / (1 + z_spec)
    return {
        "sigma_mad": 1.4826 * np.median(np.abs(dz - np.median(dz))),
        "bias": dz.mean(),
        "outlier_fraction": np.count_nonzero(np.abs(dz) > 0.05) / len(dz),
    }


def test_sigma_mad_scorer_in_cross_val_score():
    X, y = _regression_data()
    cv = KFold(5, shuffle=True, random_state=0)
    scores = cross_val_score(Ridge(), X, y, cv=cv, scoring=sigma_mad_scorer)
    expected = []
    for train, test in cv.split(X):
        model = Ridge().fit(X[train], y[train])
        expected.append(_hand_metrics(y[test], model.predict(X[test]))["sigma_mad"])
    # The scorer is minus sigma_MAD (greater is better), fold by fold.
    np.testing.assert_allclose(scores, -np.array(expected), rtol=0, atol=1e-12)
    assert np.all(np.array(expected) > 0.005)


def test_photoz_scoring_in_cross_validate():
    X, y = _regression_data(outliers=0.1)
    cv = KFold(3, shuffle=True, random_state=0)
    result = cross_validate(Ridge(), X, y, cv=cv, scoring=PHOTOZ_SCORING)
    assert set(PHOTOZ_SCORING) == {"neg_sigma_mad", "neg_outlier_fraction", "neg_abs_bias"}
    pred = cross_val_predict(Ridge(), X, y, cv=cv)
    for i, (_, test) in enumerate(cv.split(X)):
        hand = _hand_metrics(y[test], pred[test])
        # The outliers make every measure non-trivial: a wrong sign or swap would show.
        assert hand["outlier_fraction"] > 0.05 and abs(hand["bias"]) > 1e-4
        assert result["test_neg_sigma_mad"][i] == pytest.approx(-hand["sigma_mad"], abs=1e-12)
        assert result["test_neg_outlier_fraction"][i] == pytest.approx(
            -hand["outlier_fraction"], abs=1e-12
        )
        assert result["test_neg_abs_bias"][i] == pytest.approx(-abs(hand["bias"]), abs=1e-12)


def test_scorer_prefers_better_model():
    X, y = _regression_data()
    good = Ridge(alpha=1e-3).fit(X, y)
    bad = Ridge(alpha=1e5).fit(X, y)
    assert sigma_mad_scorer(good, X, y) > sigma_mad_scorer(bad, X, y)


def test_pit_and_crps_hand_computed():
    from skphotoz.metrics import crps, pit

    edges = [0.0, 0.25, 0.5, 0.75, 1.0]
    uniform = [[1, 1, 1, 1]] * 3
    np.testing.assert_allclose(pit([0.1, 0.5, 2.0], uniform, edges), [0.1, 0.5, 1.0])
    # Uniform on [0, 1], truth at 0.5: ∫0^.5 z² dz + ∫.5^1 (1 - z)² dz = 1/12.
    assert crps([0.5], [[1, 1, 1, 1]], edges) == pytest.approx(1 / 12, abs=1e-12)
    # Truth 0.5 below the bins [1, 2]: CRPS = 0.5 (outside) + ∫1^2 (1 - (z - 1))² dz = 0.5 + 1/3.
    assert crps([0.5], [[1.0]], [1.0, 2.0]) == pytest.approx(0.5 + 1 / 3, abs=1e-12)
    # A sharp PDF at the truth scores better than a broad one.
    fine = np.linspace(0, 1, 101)
    sharp = np.zeros((1, 100))
    sharp[0, 50] = 1
    assert crps([0.505], sharp, fine) < crps([0.505], np.ones((1, 100)), fine) / 10


def test_pit_calibration():
    from skphotoz.metrics import pit_calibration

    rng = np.random.default_rng(0)
    calibrated = rng.uniform(size=5000)
    overconfident = np.clip(rng.normal(0.5, 0.5, 5000), 0, 1)  # piles up at 0 and 1
    assert pit_calibration(calibrated) < 0.03
    assert pit_calibration(overconfident) > 0.1
    assert pit_calibration(calibrated, "cvm") < pit_calibration(overconfident, "cvm")
    assert pit_calibration([0.5]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="method must be 'ks' or 'cvm'"):
        pit_calibration(calibrated, "ad")


def test_pdf_metric_errors():
    from skphotoz.metrics import crps, pit

    with pytest.raises(ValueError, match="pdf must have shape \\(n_samples, 2\\)"):
        pit([0.1], [[1, 1, 1]], [0, 0.5, 1])
    with pytest.raises(ValueError, match="edges must be increasing"):
        crps([0.1], [[1, 1]], [0, 0.5, 0.5])
    with pytest.raises(ValueError, match="equal lengths; got 2 and 1"):
        crps([0.1, 0.2], [[1, 1]], [0, 0.5, 1])


def test_pit_above_the_last_edge_is_exactly_one_and_calibration_accepts_it():
    from skphotoz.metrics import pit, pit_calibration

    rng = np.random.default_rng(0)
    pdf = rng.uniform(size=(200, 180))
    edges = np.linspace(0, 0.4, 181)
    values = pit(np.full(200, 0.5), pdf, edges)
    assert np.all(values <= 1.0) and np.allclose(values, 1.0)
    assert np.isfinite(pit_calibration(values))


def test_pdf_quantiles_hand_computed():
    from skphotoz.metrics import pdf_quantiles

    # Uniform on [0, 0.4] in four bins: the CDF is linear, so the quantile q is 0.4 q.
    uniform = np.full((1, 4), 0.25)
    edges = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    got = pdf_quantiles(uniform, edges, [0.0, 0.125, 0.5, 0.9, 1.0])
    np.testing.assert_allclose(got, [[0.0, 0.05, 0.2, 0.36, 0.4]], atol=1e-12)
    # All mass in the second bin (0.1 to 0.2): quantiles spread across it, whatever the empty
    # bins either side; a second row is computed on its own.
    peaked = np.array([[0.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.5]])
    got = pdf_quantiles(peaked, edges, [0.25, 0.5, 0.75])
    np.testing.assert_allclose(got, [[0.125, 0.15, 0.175], [0.05, 0.1, 0.35]], atol=1e-12)
    with pytest.raises(ValueError, match=r"edges shape \(n_bins \+ 1,\)"):
        pdf_quantiles(uniform, edges[:-1], [0.5])
    with pytest.raises(ValueError, match=r"quantiles must be numbers in \[0, 1\]"):
        pdf_quantiles(uniform, edges, [1.5])


# -- bad input: a clear error naming the argument, never a NaN ----------------------


def test_importing_metrics_does_not_import_torch():
    code = "import sys, skphotoz.metrics; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


Z = np.array([0.1, 0.2, 0.3])

POINT_METRICS = [metrics.delta_z, metrics.sigma_mad, metrics.bias, metrics.outlier_fraction]


@pytest.mark.parametrize("metric", [*POINT_METRICS, metrics.photoz_report])
@pytest.mark.parametrize(
    "z_spec, z_phot, error, match",
    [
        (Z, [0.1, np.nan, 0.2], ValueError, r"z_phot must be finite; got 1 NaN or infinite"),
        (Z, [0.1, np.inf, 0.2], ValueError, r"z_phot must be finite; got 1 NaN or infinite"),
        ([np.nan, 0.1, 0.2], Z, ValueError, r"z_spec must be finite"),
        (Z, Z[:2], ValueError, r"z_spec and z_phot must have equal lengths; got 3 and 2"),
        (Z, ["a", "b", "c"], TypeError, r"z_phot must be an array of numbers; got .*dtype <U1"),
        (None, Z, TypeError, r"z_spec must be an array of numbers; got None"),
        ([], [], ValueError, r"must hold at least one galaxy"),
        (np.ones((3, 2)), Z, ValueError, r"z_spec must be a 1-D array of redshifts"),
        ([-1.0, 0.1, 0.2], Z, ValueError, r"z_spec must be > -1"),
    ],
)
def test_point_metrics_refuse_bad_redshifts(metric, z_spec, z_phot, error, match):
    with pytest.raises(error, match=match):
        metric(z_spec, z_phot)


@pytest.mark.parametrize("threshold", [np.inf, np.nan, 0, -0.1, True, "0.05"])
def test_outlier_threshold_is_a_finite_positive_number(threshold):
    with pytest.raises(ValueError, match=r"'threshold' parameter of outlier_fraction"):
        metrics.outlier_fraction(Z, Z, threshold=threshold)


@pytest.mark.parametrize(
    "scorer", [metrics.sigma_mad_scorer, metrics.bias_scorer, metrics.outlier_fraction_scorer]
)
def test_scorers_refuse_non_finite_and_short_predictions(scorer):
    X = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"z_phot must be finite"):
        scorer(ConstantRegressor([0.1, np.nan, 0.2]).fit(X, Z), X, Z)
    with pytest.raises(ValueError, match=r"equal lengths; got 3 and 2"):
        scorer(ConstantRegressor([0.1, 0.2]).fit(X, Z), X, Z)
    assert np.isfinite(scorer(ConstantRegressor(Z + 0.01).fit(X, Z), X, Z))


def test_pdf_metrics_refuse_bad_edges_and_pdfs():
    pdf, edges = np.ones((3, 4)), np.linspace(0, 1, 5)
    with pytest.raises(ValueError, match=r"edges must be increasing, finite bin edges"):
        metrics.crps(Z, pdf, [0, np.nan, 0.5, 0.7, 1])
    with pytest.raises(ValueError, match=r"edges must be 1-D with at least 2"):
        metrics.pit(Z, np.ones((3, 0)), [0.5])
    with pytest.raises(ValueError, match=r"pdf must be finite"):
        metrics.pit(Z, np.full((3, 4), np.inf), edges)
    with pytest.raises(ValueError, match=r"rows \[1\] are all zero"):
        metrics.crps(Z, np.array([[1.0] * 4, [0.0] * 4, [1.0] * 4]), edges)
    with pytest.raises(TypeError, match=r"pdf must be an array of numbers"):
        metrics.crps(Z, "pdf", edges)
    with pytest.raises(ValueError, match=r"at least one galaxy"):
        metrics.crps([], np.ones((0, 4)), edges)
    # Huge but finite densities are normalised without overflowing.
    huge = np.full((3, 4), 1e308)
    np.testing.assert_allclose(metrics.crps(Z, huge, edges), metrics.crps(Z, pdf, edges))


def test_pit_calibration_refuses_bad_values_and_methods():
    with pytest.raises(ValueError, match=r"pit_values must be a non-empty array of numbers"):
        metrics.pit_calibration([0.1, np.nan])
    with pytest.raises(TypeError, match=r"pit_values must be an array of numbers"):
        metrics.pit_calibration(["a"])
    with pytest.raises(ValueError, match=r"method must be 'ks' or 'cvm'; got 3"):
        metrics.pit_calibration([0.1, 0.5], method=3)


# -- missing-value codes, masked entries and unchecked PDFs -------------------------

EDGES4 = [0.0, 0.25, 0.5, 0.75, 1.0]


def test_pdf_quantiles_normalises_rows_like_pit_and_crps():
    # An unnormalised uniform row has its median in the middle, as pit/crps read it.
    got = metrics.pdf_quantiles([[10, 10, 10, 10]], EDGES4, [0.5])
    np.testing.assert_allclose(got, [[0.5]], atol=1e-12)
    assert metrics.pit([0.5], [[10, 10, 10, 10]], EDGES4)[0] == pytest.approx(0.5)
    # Rows that already sum to 1 (the model's own PDFs) are unchanged to rounding.
    rng = np.random.default_rng(0)
    pdf = rng.uniform(size=(50, 180))
    pdf /= pdf.sum(axis=1, keepdims=True)
    edges = np.linspace(0, 0.4, 181)
    cdf = np.concatenate([np.zeros((50, 1)), np.cumsum(pdf, axis=1)], axis=1)
    got = metrics.pdf_quantiles(pdf, edges, [0.16, 0.5, 0.84])
    for k, q in enumerate([0.16, 0.5, 0.84]):
        np.testing.assert_allclose(got[:, k], [np.interp(q, c, edges) for c in cdf], atol=1e-12)
    # Tiny densities are normalised too, not read as an empty row.
    np.testing.assert_allclose(metrics.pdf_quantiles([[5e-324, 0.0]], [0, 0.5, 1], [0.5]), 0.25)


@pytest.mark.parametrize(
    "pdf, edges, error, match",
    [
        ([[np.nan, 1, 1, 1]], EDGES4, ValueError, r"pdf must be finite; got 1 NaN or infinite"),
        ([[np.inf, 1, 1, 1]], EDGES4, ValueError, r"pdf must be finite; got 1 NaN or infinite"),
        ([[0, 0, 0, 0]], EDGES4, ValueError, r"positive sum; rows \[0\] are all zero"),
        ([[-1, 1, 1, 1]], EDGES4, ValueError, r"pdf must be non-negative .* pdf\[0, 0\]=-1.0"),
        ([[1, 1, 1, 1]], EDGES4[::-1], ValueError, r"edges must be increasing.*edges\[0\]=1.0"),
        ([[1, 1, 1, 1]], [0, 0.25, 0.25, 0.75, 1], ValueError, r"edges must be increasing"),
        ([[1, 1, 1, 1]], [0, np.nan, 0.5, 0.75, 1], ValueError, r"edges must be increasing, fin"),
        ([[1, 1]], [-1e308, 1e308, 1.5e308], ValueError, r"bin widths within the float64"),
        (np.array([[1 + 1j, 1, 1, 1]]), EDGES4, TypeError, r"pdf must be an array of numbers"),
        ([[True, False]], [0, 0.5, 1], TypeError, r"pdf must be an array of numbers; got bool"),
        (None, EDGES4, TypeError, r"pdf must be an array of numbers; got None"),
        (np.ones((1, 0)), [0.0], ValueError, r"edges must be 1-D with at least 2 bin edges"),
        ([[1, 1]], [[0, 0.5, 1]], ValueError, r"edges must be 1-D with at least 2 bin edges"),
        ([1, 1, 1, 1], EDGES4, ValueError, r"pdf must have shape \(n_samples, 4\) for 5 edges"),
        (
            np.ma.masked_array([[5.0, 1, 1, 1]], mask=[[1, 0, 0, 0]]),
            EDGES4,
            ValueError,
            r"pdf must be finite; got 1 NaN or infinite values \(1 of them masked\)",
        ),
    ],
)
def test_pdf_quantiles_refuses_what_pit_and_crps_refuse(pdf, edges, error, match):
    with pytest.raises(error, match=match):
        metrics.pdf_quantiles(pdf, edges, [0.5])
    z = [0.5] * (len(pdf) if pdf is not None and np.ndim(pdf) == 2 else 1)
    for measure in (metrics.pit, metrics.crps):
        with pytest.raises(error):
            measure(z, pdf, edges)


def test_pdf_quantiles_near_the_float64_limit_stays_finite():
    got = metrics.pdf_quantiles([[1, 1]], [-1e308, 0, 1e308], [0.0, 0.2, 1.0])
    np.testing.assert_allclose(got, [[-1e308, -6e307, 1e308]])


@pytest.mark.parametrize("metric", [*POINT_METRICS, metrics.photoz_report])
@pytest.mark.parametrize("code", [-9999.0, -99.0, -1.0])
def test_point_metrics_refuse_missing_value_codes_in_z_phot(metric, code):
    with pytest.raises(ValueError, match=r"z_phot must be > -1 .*missing-value code or a broken"):
        metric([0.1, 0.2, 0.3, 0.4], [code, 0.2, 0.3, 0.4])


@pytest.mark.parametrize("scorer", [metrics.sigma_mad_scorer, metrics.bias_scorer])
def test_scorers_refuse_missing_value_codes_in_predictions(scorer):
    X = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"z_phot must be > -1"):
        scorer(ConstantRegressor([0.1, -9999.0, 0.2]).fit(X, Z), X, Z)


@pytest.mark.parametrize("measure", [metrics.pit, metrics.crps])
@pytest.mark.parametrize("code", [-9999.0, -1.0])
def test_pdf_measures_refuse_missing_value_codes_in_z_spec(measure, code):
    with pytest.raises(ValueError, match=r"z_spec must be > -1 .*missing-value code"):
        measure([code, 0.5], [[1, 1, 1, 1]] * 2, EDGES4)


@pytest.mark.parametrize("metric", [*POINT_METRICS, metrics.photoz_report])
def test_point_metrics_refuse_masked_redshifts(metric):
    z_spec = np.array([0.2, 0.2, 0.3, 0.4])
    z_phot = np.ma.masked_array([5.0, 0.19, 0.35, 0.41], mask=[1, 0, 0, 0])
    match = r"z_phot must be finite; got 1 NaN .*\(1 of them masked\).*remove those galaxies"
    with pytest.raises(ValueError, match=match):
        metric(z_spec, z_phot)
    masked_spec = np.ma.masked_array([-9999.0, 0.2, 0.3, 0.4], mask=[1, 0, 0, 0])
    with pytest.raises(ValueError, match=r"z_spec must be finite; .*\(1 of them masked\)"):
        metric(masked_spec, z_phot.data)
    # A mask with nothing masked is just the data.
    unmasked = np.ma.masked_array(z_phot.data, mask=False)
    assert np.all(np.isfinite(metrics.delta_z(z_spec, unmasked)))


@pytest.mark.parametrize("measure", [metrics.pit, metrics.crps])
def test_pdf_measures_refuse_masked_entries(measure):
    pdf = np.ones((2, 4))
    masked_spec = np.ma.masked_array([-9999.0, 0.5], mask=[1, 0])
    with pytest.raises(ValueError, match=r"z_spec must be finite; .*\(1 of them masked\)"):
        measure(masked_spec, pdf, EDGES4)
    masked_pdf = np.ma.masked_array([[50.0, 1, 1, 1]] * 2, mask=[[1, 0, 0, 0]] * 2)
    with pytest.raises(ValueError, match=r"pdf must be finite; .*\(2 of them masked\)"):
        measure([0.5, 0.5], masked_pdf, EDGES4)
    masked_edges = np.ma.masked_array(EDGES4, mask=[0, 0, 1, 0, 0])
    with pytest.raises(ValueError, match=r"edges must be increasing, finite .*\(1 of them mask"):
        measure([0.5, 0.5], pdf, masked_edges)


@pytest.mark.parametrize("measure", [metrics.pit, metrics.crps])
def test_pdf_measures_refuse_z_spec_of_the_wrong_shape(measure):
    # Four redshifts in a 2x2 array are not the four galaxies of the pdf rows.
    with pytest.raises(ValueError, match=r"z_spec must be a 1-D array of redshifts; got shape"):
        measure(np.full((2, 2), 0.5), np.ones((4, 4)), EDGES4)
    # A column is one redshift per row.
    assert np.isfinite(measure(np.full((2, 1), 0.5), np.ones((2, 4)), EDGES4)).all()


def test_crps_of_bins_near_the_float64_limit_is_finite():
    # F = 1 over the second bin, below the truth: CRPS ~ its width + a third of the first.
    got = metrics.crps([0.5], [[1.0, 0.0]], [-1.7e308, -1.6e308, 1.0])
    assert got == pytest.approx(1.6e308 + 0.1e308 / 3, rel=1e-12)


@pytest.mark.parametrize(
    "values, error, match",
    [
        (np.full((2, 2), 0.5), ValueError, r"of shape \(n_samples,\) .*got shape \(2, 2\)"),
        ([], ValueError, r"non-empty array of numbers in \[0, 1\]; got none"),
        ([0.5, 1.5], ValueError, r"in \[0, 1\]; got 1 outside, from 0.5 to 1.5"),
        ([0.5, np.inf], ValueError, r"in \[0, 1\]; got 1 NaN or infinite"),
        (np.ma.masked_array([0.5, 0.2], mask=[0, 1]), ValueError, r"\(1 of them masked\)"),
        ([True, False], TypeError, r"pit_values must be an array of numbers; got booleans"),
        (np.array([0.5 + 0j]), TypeError, r"pit_values must be an array of numbers; got .*compl"),
        (None, TypeError, r"pit_values must be an array of numbers; got None"),
    ],
)
def test_pit_calibration_refuses_bad_pit_values(values, error, match):
    with pytest.raises(error, match=match):
        metrics.pit_calibration(values)


def test_pit_calibration_takes_a_column():
    values = np.array([0.1, 0.4, 0.8])
    assert metrics.pit_calibration(values[:, None]) == metrics.pit_calibration(values)


@pytest.mark.parametrize("threshold", [0, -0.1, np.nan, "0.05", True])
def test_photoz_report_names_itself_for_a_bad_threshold(threshold):
    with pytest.raises(ValueError, match=r"'threshold' parameter of photoz_report must be"):
        metrics.photoz_report(Z, Z, threshold=threshold)
