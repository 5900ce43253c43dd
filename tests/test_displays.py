"""The Displays of skphotoz.plotting: computed values checked against independent formulas,
drawing on given axes, restyling without recomputing, and the errors of bad input."""

import ast
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn.exceptions import NotFittedError

import skphotoz.plotting as plotting
from skphotoz import MoCoEmbedder, PhotoZRegressor
from skphotoz.model_selection import LabelEfficiencyCurve
from skphotoz.plotting import (
    LabelEfficiencyDisplay,
    PhotoZDisplay,
    PITDisplay,
    TrainingHistoryDisplay,
)
from skphotoz.plotting import _history as history_module
from skphotoz.plotting import _photoz as photoz_module
from skphotoz.plotting import _pit as pit_module

pytest.importorskip("matplotlib").use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")
colors = pytest.importorskip("matplotlib.colors")


pytestmark = pytest.mark.usefixtures("pyplot")  # every figure closed after each test


# Independent reference formulas (not skphotoz.metrics).


def _measures(z_spec, z_phot, threshold=0.05):
    dz = (z_phot - z_spec) / (1 + z_spec)
    scatter = 1.4826 * np.median(np.abs(dz - np.median(dz)))
    return scatter, dz.mean(), np.mean(np.abs(dz) > threshold)


def _pit(z_spec, pdf, edges):
    """CDF at z_spec, linear within bins, by interpolation of the CDF at the edges."""
    out = np.empty(len(z_spec))
    for i, (z, p) in enumerate(zip(z_spec, pdf, strict=True)):
        cdf = np.concatenate([[0.0], np.cumsum(p) / np.sum(p)])
        out[i] = np.interp(z, edges, cdf)
    return out


def _legend_texts(ax):
    return [text.get_text() for text in ax.get_legend().get_texts()]


def _raise(*args, **kwargs):
    raise AssertionError("recomputed")


class _Predictor:
    """Counts predict calls."""

    def __init__(self, z_phot):
        self.z_phot = np.asarray(z_phot)
        self.calls = 0

    def predict(self, X):
        self.calls += 1
        return self.z_phot


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5)).astype(np.float32)
    return X, 0.1 + 0.05 * np.tanh(X[:, 0])


@pytest.fixture(scope="module")
def regressor(features):
    X, z = features
    return PhotoZRegressor(n_epochs=2, batch_size=16, random_state=0, device="cpu").fit(X, z)


@pytest.fixture(scope="module")
def embedder(features):
    X, _ = features
    return MoCoEmbedder(n_epochs=2, batch_size=16, queue_size=32, random_state=0, device="cpu").fit(
        X
    )


def test_module_imports_matplotlib_only_inside_functions():
    paths = sorted(Path(plotting.__file__).parent.glob("*.py"))
    assert len(paths) > 1
    top_level = [
        node
        for path in paths
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    names = [alias.name for node in top_level for alias in node.names]
    names += [node.module or "" for node in top_level if isinstance(node, ast.ImportFrom)]
    assert not [name for name in names if name.startswith("matplotlib")]
    assert set(plotting.__all__) == {
        "LabelEfficiencyDisplay",
        "PITDisplay",
        "PhotoZDisplay",
        "TrainingHistoryDisplay",
        "plot_gallery",
        "plot_neighbors",
        "plot_selection",
    }


# PhotoZDisplay


def _redshifts(n=60, n_outliers=3, seed=1):
    rng = np.random.default_rng(seed)
    z_spec = rng.uniform(0.02, 0.3, n)
    z_phot = z_spec + 0.01 * (1 + z_spec) * np.clip(rng.standard_normal(n), -2, 2)
    z_phot[:n_outliers] = z_spec[:n_outliers] + 0.2 * (1 + z_spec[:n_outliers])
    return z_spec, z_phot


def test_photoz_display_computes_the_measures_and_draws_on_the_given_axes():
    z_spec, z_phot = _redshifts()
    scatter, mean_dz, eta = _measures(z_spec, z_phot)
    assert eta == 3 / 60
    fig, ax = plt.subplots()
    display = PhotoZDisplay.from_predictions(z_spec, z_phot, name="toy", ax=ax)

    assert display.ax_ is ax and display.figure_ is fig
    np.testing.assert_array_equal(display.z_spec, z_spec)
    np.testing.assert_array_equal(display.z_phot, z_phot)
    assert display.sigma_mad == pytest.approx(scatter, rel=1e-12)
    assert display.bias == pytest.approx(mean_dz, rel=1e-12)
    assert display.outlier_fraction == pytest.approx(eta)
    # Every galaxy lands in one hexagon; the colour scale is logarithmic.
    assert display.density_ in ax.collections
    assert display.density_.get_array().sum() == 60
    assert isinstance(display.density_.norm, colors.LogNorm)
    assert display.colorbar_ is not None
    x = display.line_.get_xdata()
    np.testing.assert_allclose(display.line_.get_ydata(), x)
    upper, lower = display.bounds_
    np.testing.assert_allclose(upper.get_ydata(), x + 0.05 * (1 + x))
    np.testing.assert_allclose(lower.get_ydata(), x - 0.05 * (1 + x))
    text = display.text_.get_text()
    for part in ("toy", "N = 60", f"{scatter:.4f}", f"{mean_dz:+.4f}", "5.0%"):
        assert part in text
    assert "|Δz| = 0.05 (1 + z)" in _legend_texts(ax)


def test_photoz_display_threshold_moves_the_bounds_and_the_outlier_fraction():
    z_spec, z_phot = _redshifts()
    display = PhotoZDisplay.from_predictions(z_spec, z_phot, threshold=0.25)
    assert display.outlier_fraction == 0.0
    x = display.line_.get_xdata()
    np.testing.assert_allclose(display.bounds_[0].get_ydata(), x + 0.25 * (1 + x))
    assert "|Δz| = 0.25 (1 + z)" in _legend_texts(display.ax_)


def test_photoz_display_plot_restyles_without_recomputing(monkeypatch):
    z_spec, z_phot = _redshifts()
    predictor = _Predictor(z_phot)
    display = PhotoZDisplay.from_estimator(predictor, np.zeros((60, 2)), z_spec)
    first_figure, measures = display.figure_, (display.sigma_mad, display.outlier_fraction)
    for name in ("sigma_mad", "bias", "outlier_fraction", "check_redshift_pair"):
        monkeypatch.setattr(photoz_module, name, _raise)

    restyled = display.plot(
        name="restyled",
        colorbar=False,
        density_kw={"cmap": "magma", "gridsize": 10},
        line_kw={"c": "red"},
        bounds_kw={"ls": ":"},
    )
    assert restyled is display and display.figure_ is not first_figure
    assert predictor.calls == 1
    assert (display.sigma_mad, display.outlier_fraction) == measures
    assert display.density_.get_cmap().name == "magma"
    assert display.line_.get_color() == "red"
    assert display.bounds_[0].get_linestyle() == ":"
    assert display.colorbar_ is None
    assert display.text_.get_text().startswith("restyled\nN = 60")


def test_photoz_display_from_estimator(features, regressor):
    X, z = features
    display = PhotoZDisplay.from_estimator(regressor, X, z)
    z_phot = regressor.predict(X)
    np.testing.assert_allclose(display.z_phot, z_phot)
    scatter, mean_dz, eta = _measures(z, z_phot)
    assert display.sigma_mad == pytest.approx(scatter)
    assert display.bias == pytest.approx(mean_dz)
    assert display.outlier_fraction == pytest.approx(eta)
    assert display.text_.get_text().startswith("PhotoZRegressor\nN = 120")


def test_photoz_display_errors_name_the_argument():
    with pytest.raises(ValueError, match="z_spec and z_phot must have equal lengths; got 5 and 4"):
        PhotoZDisplay.from_predictions(np.full(5, 0.1), np.full(4, 0.1))
    predictor = _Predictor(np.full(9, 0.1))
    with pytest.raises(
        ValueError, match=r"z_spec must have one redshift per row of X \(10\); got 9"
    ):
        PhotoZDisplay.from_estimator(predictor, np.zeros((10, 2)), np.full(9, 0.1))
    assert predictor.calls == 0
    match = r"The 'threshold' parameter of PhotoZDisplay.from_predictions must be a float"
    with pytest.raises(ValueError, match=match):
        PhotoZDisplay.from_predictions(np.full(5, 0.1), np.full(5, 0.1), threshold=0)


# PITDisplay


def _pdfs(n=200, seed=2):
    rng = np.random.default_rng(seed)
    edges = np.linspace(0.0, 0.4, 21)
    centres = (edges[:-1] + edges[1:]) / 2
    z_spec = rng.uniform(0.02, 0.38, n)
    z_spec[:4] = [0.45, 0.5, -0.01, 0.4]  # beyond the edges: PIT 1, 1, 0 and 1
    z_mean = z_spec + 0.03 * rng.standard_normal(n)
    pdf = np.exp(-0.5 * ((centres - z_mean[:, None]) / 0.02) ** 2) + 1e-6  # over-confident
    return z_spec, pdf, edges


def test_pit_display_computes_pit_histogram_and_calibration():
    z_spec, pdf, edges = _pdfs()
    expected_pit = _pit(z_spec, pdf, edges)
    assert expected_pit[:4].tolist() == [1.0, 1.0, 0.0, 1.0]
    fig, ax = plt.subplots()
    display = PITDisplay.from_predictions(z_spec, pdf, edges, bins=10, name="toy", ax=ax)

    assert display.ax_ is ax and display.figure_ is fig
    np.testing.assert_allclose(display.pit_values, expected_pit, atol=1e-12)
    np.testing.assert_allclose(display.bin_edges, np.linspace(0, 1, 11))
    counts, _ = np.histogram(expected_pit, bins=np.linspace(0, 1, 11))
    np.testing.assert_array_equal(display.counts, counts)
    ks = stats.kstest(expected_pit, "uniform").statistic
    assert display.calibration == pytest.approx(ks, abs=1e-12)

    assert display.hist_ in ax.patches
    np.testing.assert_array_equal(display.hist_.get_data().values, counts)
    np.testing.assert_allclose(display.expected_line_.get_data().values, 20.0)
    band = display.band_.get_data()
    np.testing.assert_allclose(band.values, 20 + math.sqrt(20))
    np.testing.assert_allclose(band.baseline, 20 - math.sqrt(20))
    assert _legend_texts(ax) == [f"toy (KS = {ks:.3g})", "±1σ (Poisson)", "uniform"]


def test_pit_display_cramer_von_mises_calibration():
    z_spec, pdf, edges = _pdfs()
    expected_pit = _pit(z_spec, pdf, edges)
    display = PITDisplay.from_predictions(z_spec, pdf, edges, method="cvm")
    # scipy's statistic is n times the integral of (F_PIT(u) - u)^2.
    cvm = stats.cramervonmises(expected_pit, "uniform").statistic / len(expected_pit)
    assert display.calibration == pytest.approx(cvm, rel=1e-9)
    assert display.counts.shape == (20,) and display.counts.sum() == 200
    assert _legend_texts(display.ax_)[0] == f"PIT (CvM = {cvm:.3g})"


def test_pit_display_plot_restyles_without_recomputing(monkeypatch):
    z_spec, pdf, edges = _pdfs()
    display = PITDisplay.from_predictions(z_spec, pdf, edges, bins=10)
    first_figure, counts = display.figure_, display.counts.copy()
    monkeypatch.setattr(pit_module, "pit", _raise)
    monkeypatch.setattr(pit_module, "pit_calibration", _raise)
    fig, ax = plt.subplots()
    assert display.plot(ax, name="again", hist_kw={"fc": "red"}) is display
    assert display.ax_ is ax and display.figure_ is fig is not first_figure
    np.testing.assert_array_equal(display.hist_.get_data().values, counts)
    assert colors.same_color(display.hist_.get_facecolor()[:3], "red")
    assert _legend_texts(ax)[0] == f"again (KS = {display.calibration:.3g})"


def test_pit_display_from_estimator(features, regressor):
    X, z = features
    display = PITDisplay.from_estimator(regressor, X, z, bins=8)
    expected_pit = _pit(z, regressor.predict_pdf(X), regressor.redshift_bins_)
    np.testing.assert_allclose(display.pit_values, expected_pit, atol=1e-9)
    assert display.counts.sum() == 120 and display.counts.shape == (8,)
    assert _legend_texts(display.ax_)[0].startswith("PhotoZRegressor (KS = ")


def test_pit_display_errors_name_the_argument():
    z_spec, pdf, edges = _pdfs(n=50)
    with pytest.raises(ValueError, match=r"pdf must have shape \(n_samples, 20\) for 21 edges; "):
        PITDisplay.from_predictions(z_spec, pdf[:, :9], edges)
    with pytest.raises(ValueError, match=r"got \(50, 9\)"):
        PITDisplay.from_predictions(z_spec, pdf[:, :9], edges)
    with pytest.raises(ValueError, match="z_spec and pdf must have equal lengths; got 49 and 50"):
        PITDisplay.from_predictions(z_spec[:49], pdf, edges)
    match = r"The 'bins' parameter of PITDisplay.from_predictions must be an int .* Got 0"
    with pytest.raises(ValueError, match=match):
        PITDisplay.from_predictions(z_spec, pdf, edges, bins=0)
    with pytest.raises(TypeError, match="estimator must have a predict_pdf method .* got a _Pred"):
        PITDisplay.from_estimator(_Predictor(z_spec), np.zeros((50, 2)), z_spec)


# TrainingHistoryDisplay


HISTORY = [
    {"epoch": 0, "loss": 3.0, "validation_loss": 3.2, "lr": 0.1},
    {"epoch": 1, "loss": 2.0, "validation_loss": 2.5, "lr": 0.1},
    {"epoch": 2, "loss": 1.5, "lr": 0.05},
    {"epoch": 3, "loss": 1.2, "validation_loss": 2.1, "validation_sigma_mad": 0.02},
]


def test_history_display_from_history():
    fig, ax = plt.subplots()
    display = TrainingHistoryDisplay.from_history(HISTORY, chance_level=3.5, name="net", ax=ax)
    assert display.ax_ is ax and display.figure_ is fig
    np.testing.assert_array_equal(display.epochs, [1, 2, 3, 4])
    np.testing.assert_array_equal(display.loss, [3.0, 2.0, 1.5, 1.2])
    np.testing.assert_array_equal(display.validation_loss, [3.2, 2.5, np.nan, 2.1])
    np.testing.assert_array_equal(display.loss_line_.get_xdata(), [1, 2, 3, 4])
    np.testing.assert_array_equal(display.loss_line_.get_ydata(), [3.0, 2.0, 1.5, 1.2])
    np.testing.assert_array_equal(display.validation_line_.get_ydata(), display.validation_loss)
    np.testing.assert_array_equal(display.chance_line_.get_ydata(), [3.5, 3.5])
    assert _legend_texts(ax) == [
        "net: training loss",
        "net: validation loss",
        "chance level = 3.500",
    ]


def test_history_display_without_validation_or_epoch_keys():
    display = TrainingHistoryDisplay.from_history([{"loss": 1.0}, {"loss": 0.5}])
    np.testing.assert_array_equal(display.epochs, [1, 2])
    assert display.validation_loss is None and display.validation_line_ is None
    assert display.chance_line_ is None
    assert _legend_texts(display.ax_) == ["training loss"]


def test_history_display_of_moco_draws_the_infonce_chance_level(embedder):
    display = TrainingHistoryDisplay.from_estimator(embedder)
    np.testing.assert_array_equal(display.loss, [h["loss"] for h in embedder.history_])
    np.testing.assert_array_equal(display.epochs, [1, 2])
    chance = math.log(33)
    assert display.chance_level == pytest.approx(chance)
    np.testing.assert_allclose(display.chance_line_.get_ydata(), chance)
    loss_label, chance_label = _legend_texts(display.ax_)
    assert loss_label == "MoCoEmbedder: training loss"
    assert f"ln(1 + 32) = {chance:.3f}" in chance_label and "random keys" in chance_label

    assert TrainingHistoryDisplay.from_estimator(embedder, chance_level=None).chance_line_ is None
    display = TrainingHistoryDisplay.from_estimator(embedder, chance_level=2.0, name="moco")
    assert _legend_texts(display.ax_) == ["moco: training loss", "chance level = 2.000"]


def test_history_display_of_a_regressor(features, regressor):
    display = TrainingHistoryDisplay.from_estimator(regressor)
    np.testing.assert_array_equal(display.loss, [h["loss"] for h in regressor.history_])
    assert display.chance_line_ is None and display.validation_loss is None
    X, z = features
    stopped = PhotoZRegressor(
        n_epochs=3, batch_size=16, early_stopping=True, random_state=0, device="cpu"
    ).fit(X, z)
    display = TrainingHistoryDisplay.from_estimator(stopped)
    expected = [h["validation_loss"] for h in stopped.history_]
    np.testing.assert_array_equal(display.validation_loss, expected)


def test_history_display_plot_restyles_without_recomputing(monkeypatch):
    display = TrainingHistoryDisplay.from_history(HISTORY, chance_level=3.5)
    first_figure = display.figure_
    monkeypatch.setattr(history_module, "_parse_history", _raise)
    display.plot(name="again", loss_kw={"c": "k"}, chance_kw={"ls": "-."})
    assert display.figure_ is not first_figure
    assert display.loss_line_.get_color() == "k"
    assert display.chance_line_.get_linestyle() == "-."
    assert _legend_texts(display.ax_)[0] == "again: training loss"


def test_history_display_errors_name_the_argument():
    bad = [{"epoch": 0, "loss": 1.0}, {"epoch": 1, "lr": 0.1}]
    match = r"history entries must have a 'loss' key; entry 1 has keys \['epoch', 'lr'\]"
    with pytest.raises(ValueError, match=match):
        TrainingHistoryDisplay.from_history(bad)
    with pytest.raises(ValueError, match="history must hold at least one epoch; got an empty"):
        TrainingHistoryDisplay.from_history([])
    with pytest.raises(ValueError, match="history must be a list of per-epoch dicts .*got a dict"):
        TrainingHistoryDisplay.from_history({"loss": [1.0, 0.5]})
    with pytest.raises(ValueError, match="entry 0 is a float"):
        TrainingHistoryDisplay.from_history([1.0, 0.5])
    match = "The 'chance_level' parameter of TrainingHistoryDisplay.from_history must be"
    with pytest.raises(ValueError, match=match):
        TrainingHistoryDisplay.from_history(HISTORY, chance_level=float("nan"))
    with pytest.raises(NotFittedError):
        TrainingHistoryDisplay.from_estimator(MoCoEmbedder())


# LabelEfficiencyDisplay


def _curve(seed, name, noise, label_counts=(10, 30, 100), n=40, n_repeats=2, n_folds=2):
    """A hand-built curve: scatter noise / sqrt(labels), n_folds test folds per repeat."""
    rng = np.random.default_rng(seed)
    y = rng.uniform(0.05, 0.3, n)
    counts = np.asarray(label_counts)
    predictions, test_indices, train_indices, repeats = [], [], [], []
    for repeat in range(n_repeats):
        for fold in np.array_split(rng.permutation(n), n_folds):
            test = np.sort(fold)
            train_indices.append(rng.permutation(np.setdiff1d(np.arange(n), test)))
            scale = noise / np.sqrt(counts)[:, None] * (1 + y[test])
            predictions.append(y[test] + scale * rng.standard_normal((len(counts), len(test))))
            test_indices.append(test)
            repeats.append(repeat)
    n_splits = len(repeats)
    return LabelEfficiencyCurve(
        label_counts=counts,
        test_scores=np.zeros((len(counts), n_splits)),
        predictions=predictions,
        test_indices=test_indices,
        train_indices=train_indices,
        y=y,
        repeats=np.array(repeats),
        fit_times=np.zeros((len(counts), n_splits)),
        name=name,
    )


def _pooled(curve, index):
    """(n_budgets, n_repeats) of one of _measures' values (0 σ_MAD, 1 bias, 2 η)."""
    out = np.empty((len(curve.label_counts), int(curve.repeats.max()) + 1))
    for repeat in range(out.shape[1]):
        splits = [s for s, r in enumerate(curve.repeats) if r == repeat]
        z_spec = curve.y[np.concatenate([curve.test_indices[s] for s in splits])]
        for b in range(out.shape[0]):
            z_phot = np.concatenate([curve.predictions[s][b] for s in splits])
            out[b, repeat] = _measures(z_spec, z_phot)[index]
    return out


@pytest.fixture
def curves():
    return [_curve(3, "scratch", 0.3), _curve(4, "pretrained", 0.1)]


def _has_point(poly, x, y):
    vertices = poly.get_paths()[0].vertices
    return bool(np.any(np.isclose(vertices[:, 0], x) & np.isclose(vertices[:, 1], y)))


def test_label_efficiency_display_from_curves(curves):
    fig, ax = plt.subplots()
    display = LabelEfficiencyDisplay.from_curves(curves, ax=ax)
    assert display.ax_ is ax and display.figure_ is fig
    assert display.curves == curves and len(display.values) == 2
    assert ax.get_xscale() == "log"
    for curve, values, line, band in zip(
        curves, display.values, display.lines_, display.fill_between_, strict=True
    ):
        expected = _pooled(curve, 0)
        np.testing.assert_allclose(values, expected, rtol=1e-12)
        np.testing.assert_array_equal(line.get_xdata(), [10, 30, 100])
        np.testing.assert_allclose(line.get_ydata(), expected.mean(axis=1))
        for x, low, high in zip([10, 30, 100], expected.min(1), expected.max(1), strict=True):
            assert _has_point(band, x, low) and _has_point(band, x, high)
    assert display.errorbar_ is None
    assert _legend_texts(ax) == ["scratch", "pretrained"]
    assert ax.get_legend().get_title().get_text() == "mean over 2 repeats, min–max"
    assert "MAD" in ax.get_ylabel()


@pytest.mark.parametrize(
    ("metric", "index", "label"), [("bias", 1, "bias"), ("outlier_fraction", 2, "outlier")]
)
def test_label_efficiency_display_other_metrics(curves, metric, index, label):
    display = LabelEfficiencyDisplay.from_curves(curves, metric=metric, names=["a", "b"])
    for curve, values in zip(curves, display.values, strict=True):
        np.testing.assert_allclose(values, _pooled(curve, index), rtol=1e-12)
    assert label in display.ax_.get_ylabel()
    assert _legend_texts(display.ax_) == ["a", "b"]


def test_label_efficiency_display_callable_metric(curves):
    def max_abs_dz(z_spec, z_phot):
        return np.max(np.abs(z_phot - z_spec) / (1 + z_spec))

    display = LabelEfficiencyDisplay.from_curves(curves[0], metric=max_abs_dz)
    assert display.values[0].shape == (3, 2) and len(display.lines_) == 1
    assert display.ax_.get_ylabel() == "max_abs_dz"


def test_label_efficiency_display_spread_styles(curves):
    display = LabelEfficiencyDisplay.from_curves(curves, std_display_style="errorbar", spread="std")
    assert display.fill_between_ is None and len(display.errorbar_) == 2
    values = display.values[1]
    mean, std = values.mean(axis=1), values.std(axis=1)
    np.testing.assert_allclose(display.lines_[1].get_ydata(), mean)
    segments = display.errorbar_[1].lines[2][0].get_segments()
    np.testing.assert_allclose([s[0][1] for s in segments], mean - std)
    np.testing.assert_allclose([s[1][1] for s in segments], mean + std)
    assert display.ax_.get_legend().get_title().get_text() == "mean over 2 repeats, ± std"

    display.plot(std_display_style=None)
    assert display.fill_between_ is None and display.errorbar_ is None
    assert len(display.lines_) == 2
    assert display.ax_.get_legend().get_title().get_text() == "mean over 2 repeats"


def test_label_efficiency_display_plot_restyles_without_recomputing(curves, monkeypatch):
    display = LabelEfficiencyDisplay.from_curves(curves)
    first_figure, values = display.figure_, [v.copy() for v in display.values]
    monkeypatch.setattr(LabelEfficiencyCurve, "pooled", _raise)
    monkeypatch.setattr(LabelEfficiencyCurve, "sigma_mad", _raise)
    display.plot(names=["A", "B"], spread="std", line_kw={"ls": "--"})
    assert display.figure_ is not first_figure
    assert _legend_texts(display.ax_) == ["A", "B"]
    assert display.lines_[0].get_linestyle() == "--"
    for before, after in zip(values, display.values, strict=True):
        np.testing.assert_array_equal(before, after)


def test_label_efficiency_display_errors_name_the_argument(curves):
    with pytest.raises(ValueError, match=r"names must have one entry per curve \(2\); got 3"):
        LabelEfficiencyDisplay.from_curves(curves, names=["a", "b", "c"])
    with pytest.raises(TypeError, match="LabelEfficiencyCurve results .*got a dict at position 1"):
        LabelEfficiencyDisplay.from_curves([curves[0], {"label_counts": [1]}])
    with pytest.raises(ValueError, match="curves must hold at least one LabelEfficiencyCurve"):
        LabelEfficiencyDisplay.from_curves([])
    match = "The 'metric' parameter of LabelEfficiencyDisplay.from_curves must be .* Got 'rmse'"
    with pytest.raises(ValueError, match=match):
        LabelEfficiencyDisplay.from_curves(curves, metric="rmse")
    display = LabelEfficiencyDisplay.from_curves(curves)
    match = "The 'std_display_style' parameter of LabelEfficiencyDisplay.plot must be"
    with pytest.raises(ValueError, match=match):
        display.plot(std_display_style="band")
    with pytest.raises(ValueError, match="The 'spread' parameter .* Got 'iqr'"):
        display.plot(spread="iqr")


def test_label_efficiency_display_from_estimator():
    model_selection = pytest.importorskip("skphotoz.model_selection")
    if not hasattr(model_selection, "label_efficiency_curve"):
        pytest.skip("skphotoz.model_selection.label_efficiency_curve is not there yet")
    from sklearn.neighbors import KNeighborsRegressor

    rng = np.random.default_rng(5)
    X = rng.normal(size=(90, 3))
    y = 0.1 + 0.03 * np.tanh(X[:, 0]) + 0.002 * rng.normal(size=90)
    kwargs = {"label_counts": [10, 40], "cv": 3, "n_repeats": 2, "random_state": 0}
    display = LabelEfficiencyDisplay.from_estimator(KNeighborsRegressor(3), X, y, **kwargs)
    curve = model_selection.label_efficiency_curve(KNeighborsRegressor(3), X, y, **kwargs)
    assert display.values[0].shape == (2, 2)
    np.testing.assert_allclose(display.values[0], _pooled(curve, 0), rtol=1e-12)
    assert _legend_texts(display.ax_) == ["KNeighborsRegressor"]
    named = LabelEfficiencyDisplay.from_estimator(
        KNeighborsRegressor(3), X, y, name="kNN", metric="bias", **kwargs
    )
    np.testing.assert_allclose(named.values[0], _pooled(curve, 1), rtol=1e-12)
    assert _legend_texts(named.ax_) == ["kNN"]


def test_photoz_display_checks_its_arguments():
    z = np.linspace(0.05, 0.3, 20)
    with pytest.raises(ValueError, match=r"z_phot must be finite; got 20 NaN"):
        PhotoZDisplay.from_predictions(z, z * np.nan)
    with pytest.raises(ValueError, match=r"equal lengths; got 20 and 3"):
        PhotoZDisplay.from_predictions(z, z[:3])
    with pytest.raises(ValueError, match=r"'colorbar' parameter of PhotoZDisplay.plot .*'no'"):
        PhotoZDisplay.from_predictions(z, z, colorbar="no")
    with pytest.raises(TypeError, match=r"ax must be None or matplotlib Axes; got int"):
        PhotoZDisplay.from_predictions(z, z, ax=3)
    with pytest.raises(TypeError, match=r"style arguments .* must be None or a dict .*got int"):
        PhotoZDisplay.from_predictions(z, z, line_kw=3)


def test_label_efficiency_display_refuses_what_is_not_curves():
    with pytest.raises(TypeError, match=r"curves must be a LabelEfficiencyCurve or a list"):
        LabelEfficiencyDisplay.from_curves(None)
