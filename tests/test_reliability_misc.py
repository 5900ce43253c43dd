"""Bad input to the metrics, preprocessing, model selection, plotting and simulator functions:
a clear error naming the argument, never a NaN or a traceback from deep inside numpy."""

import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

from skphotoz import metrics
from skphotoz.preprocessing import AperturePhotometry, aperture_fluxes

Z = np.array([0.1, 0.2, 0.3])


def test_importing_metrics_does_not_import_torch():
    code = "import sys, skphotoz.metrics; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# -- metrics ------------------------------------------------------------------------------

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


class _Constant(RegressorMixin, BaseEstimator):
    def __init__(self, value=None):
        self.value = value

    def fit(self, X, y):
        return self

    def predict(self, X):
        return np.asarray(self.value, dtype=np.float64)


@pytest.mark.parametrize(
    "scorer", [metrics.sigma_mad_scorer, metrics.bias_scorer, metrics.outlier_fraction_scorer]
)
def test_scorers_refuse_non_finite_and_short_predictions(scorer):
    X = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"z_phot must be finite"):
        scorer(_Constant([0.1, np.nan, 0.2]).fit(X, Z), X, Z)
    with pytest.raises(ValueError, match=r"equal lengths; got 3 and 2"):
        scorer(_Constant([0.1, 0.2]).fit(X, Z), X, Z)
    assert np.isfinite(scorer(_Constant(Z + 0.01).fit(X, Z), X, Z))


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


# -- preprocessing ------------------------------------------------------------------------

IMAGES = np.ones((2, 5, 16, 16), dtype=np.float32)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"radii": (1.0, np.inf)}, r"radii must be two or more positive radii"),
        ({"radii": (1.0, "a")}, r"radii must be two or more positive radii"),
        ({"radii": (1.0, 2e4)}, r"each at most 10800 arcsec"),
        ({"radii": "abc"}, r"'radii' parameter of AperturePhotometry"),
        ({"pixel_scale": np.inf}, r"'pixel_scale' parameter .* \(0.0, 3600.0\]"),
        ({"reference_band": True}, r"'reference_band' parameter .* Got True"),
        ({"reference_band": 9}, r"reference_band must be a band of X \(0 to 4\); got 9"),
        ({"flux_floor": np.inf}, r"'flux_floor' parameter"),
        ({"batch_size": 10**15}, r"'batch_size' parameter .* \[1, 1048576\]"),
    ],
)
def test_aperture_photometry_refuses_bad_parameters(params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        AperturePhotometry(**params).fit(IMAGES)


@pytest.mark.parametrize(
    "X, error, match",
    [
        (None, TypeError, r"X must be images \(n_samples, n_bands, height, width\); got NoneType"),
        ("images.h5", TypeError, r"X must be images .* got str"),
        (np.full((2, 5, 4, 4), "a"), TypeError, r"X must hold numbers .* dtype <U1"),
        (np.ones((2, 5, 0, 0)), ValueError, r"of at least one pixel; got shape \(2, 5, 0, 0\)"),
        (np.ones((5, 16, 16)), ValueError, r"takes images .*got shape \(5, 16, 16\)"),
    ],
)
def test_aperture_photometry_refuses_what_is_not_images(X, error, match):
    with pytest.raises(error, match=match):
        AperturePhotometry().fit(X)


def test_aperture_photometry_refuses_non_finite_pixels_naming_stamps():
    images = IMAGES.copy()
    images[1, 2, 3, 3] = np.nan
    model = AperturePhotometry().fit(IMAGES)
    with pytest.raises(ValueError, match=r"NaN or infinite pixels .* in stamps 1: aperture"):
        model.transform(images)
    with pytest.raises(ValueError, match=r"in stamps 0"):
        model.transform(np.full((1, 5, 16, 16), 1e39))  # beyond float32: inf
    assert np.isfinite(model.transform(IMAGES)).all()


def test_aperture_fluxes_checks_radii_and_images():
    with pytest.raises(ValueError, match=r"radii must be 1 to 100 finite radii in \(0, 10800\]"):
        aperture_fluxes(IMAGES, radii=(-1.0, 2.0))
    with pytest.raises(ValueError, match=r"radii must be 1 to 100 finite radii"):
        aperture_fluxes(IMAGES, radii=(np.nan,))
    with pytest.raises(TypeError, match=r"radii must be a sequence of numbers"):
        aperture_fluxes(IMAGES, radii="ab")
    with pytest.raises(TypeError, match=r"images must be an array of numbers"):
        aperture_fluxes(np.full((1, 5, 4, 4), "x"))


# -- simulator ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 10**12}, r"'n_samples' parameter .* \[1, 1000000000\]"),
        ({"n_samples": True}, r"'n_samples' parameter .* Got True"),
        ({"stamp_size": 10**6}, r"'stamp_size' parameter .* \[8, 512\]"),
        ({"noise": "False"}, r"'noise' parameter .* Got 'False'"),
        ({"mask_fraction": np.nan}, r"'mask_fraction' parameter"),
        (
            {"n_samples": 10**6, "stamp_size": 512},
            r"n_samples=1000000 galaxies of stamp_size=512 take 4883.\d GiB, more than the 32 "
            r"GiB allowed; write them to disk .* write_sdss_galaxies",
        ),
    ],
)
def test_make_sdss_galaxies_bounds(kwargs, match):
    from skphotoz.datasets import make_sdss_galaxies

    with pytest.raises(ValueError, match=match):
        make_sdss_galaxies(**{"n_samples": 2, **kwargs})


def test_write_sdss_galaxies_checks_path_chunk_and_disk_before_writing(tmp_path, monkeypatch):
    import shutil

    from skphotoz.datasets import write_sdss_galaxies

    path = tmp_path / "sim.h5"
    with pytest.raises(ValueError, match=r"'path' parameter of write_sdss_galaxies .* Got None"):
        write_sdss_galaxies(None, 2)
    with pytest.raises(ValueError, match=r"path .* is a directory; give a file name"):
        write_sdss_galaxies(tmp_path, 2)
    with pytest.raises(ValueError, match=r"the directory of path .* does not exist"):
        write_sdss_galaxies(tmp_path / "missing" / "sim.h5", 2)
    with pytest.raises(ValueError, match=r"'chunk_size' parameter .* \[1, 1048576\]"):
        write_sdss_galaxies(path, 2, chunk_size=10**9)
    with pytest.raises(ValueError, match=r"chunk_size=1048576 galaxies .* lower chunk_size"):
        write_sdss_galaxies(path, 10**7, stamp_size=512, chunk_size=2**20)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=10**6))
    with pytest.raises(ValueError, match=r"needs 0.1 GiB, but .* has 0.0 GiB free"):
        write_sdss_galaxies(path, 1000, stamp_size=64)
    assert not path.exists()  # refused before anything was written
    write_sdss_galaxies(path, 2, stamp_size=16, random_state=0)  # 2 small stamps fit
    assert path.exists()


# -- model selection ----------------------------------------------------------------------


def _curve_inputs():
    from sklearn.neighbors import KNeighborsRegressor

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
    from skphotoz.model_selection import label_efficiency_curve

    estimator, X, y = _curve_inputs()
    kwargs = {"estimator": estimator, "X": X, "y": y, "label_counts": [5, 10], "cv": 3}
    kwargs.update(change)
    with pytest.raises(error, match=match):
        label_efficiency_curve(**kwargs)


def test_label_efficiency_curve_refuses_non_finite_predictions():
    from skphotoz.model_selection import label_efficiency_curve

    _, X, y = _curve_inputs()
    with pytest.raises(ValueError, match=r"predictions at repeat 0, split 0, 5 labels .* 1 NaN"):
        label_efficiency_curve(
            _Constant([0.1] * 19 + [np.nan]), X, y, label_counts=[5, 10], cv=3, random_state=0
        )


def test_curve_comparisons_refuse_what_is_not_a_curve():
    from skphotoz.model_selection import (
        LabelEfficiencyCurve,
        label_efficiency_curve,
        label_efficiency_factor,
        paired_difference,
    )

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


# -- plotting -----------------------------------------------------------------------------


@pytest.fixture
def pyplot():
    plt = pytest.importorskip("matplotlib.pyplot")
    yield plt
    plt.close("all")


def test_photoz_display_checks_its_arguments(pyplot):
    from skphotoz.plotting import PhotoZDisplay

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


def test_label_efficiency_display_refuses_what_is_not_curves(pyplot):
    from skphotoz.plotting import LabelEfficiencyDisplay

    with pytest.raises(TypeError, match=r"curves must be a LabelEfficiencyCurve or a list"):
        LabelEfficiencyDisplay.from_curves(None)


def test_plot_gallery_checks_shapes(pyplot):
    from skphotoz.plotting import plot_gallery

    with pytest.raises(ValueError, match=r"3 or 4 channels\); got shape \(3, 8, 8, 2\)"):
        plot_gallery(np.zeros((3, 8, 8, 2)), [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"at most 1000\)"):
        plot_gallery(np.zeros((1001, 2, 2, 3)), np.zeros(1001))
    with pytest.raises(TypeError, match=r"rgb must be an array of colour values"):
        plot_gallery("abc", [0.1])
    with pytest.raises(TypeError, match=r"z must be an array of numbers"):
        plot_gallery(np.zeros((1, 2, 2, 3)), ["a"])


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        (
            (0, [1, 30]),
            {},
            ValueError,
            r"neighbors must be rows of images, from 0 to 9; got \[30\]",
        ),
        ((0, [-1]), {}, ValueError, r"neighbors must be rows of images, from 0 to 9; got \[-1\]"),
        ((0, [1.5]), {}, TypeError, r"neighbors must be integer rows .*float64"),
        ((99, [1]), {}, ValueError, r"query must be a row of images, from 0 to 9; got 99"),
        ((True, [1]), {}, TypeError, r"query must be a row .* got a boolean"),
        ((np.zeros((5, 4, 4)), [1]), {}, ValueError, r"image of their shape \(5, 8, 8\)"),
        ((0, [1]), {"panel_size": 0}, ValueError, r"'panel_size' parameter .* \(0.0, 100.0\]"),
        ((0, [1]), {"n_cols": 10**9}, ValueError, r"'n_cols' parameter .* \[1, 1000\]"),
        ((0, [1, 5]), {"redshift": [0.1]}, ValueError, r"redshift must have one value per row"),
        ((0, [1], [np.nan]), {}, ValueError, r"similarities must be finite"),
        ((0, np.zeros(1000, int)), {}, ValueError, r"at most 999 neighbours; got 1000"),
    ],
)
def test_plot_neighbors_checks_its_arguments(pyplot, args, kwargs, error, match):
    from skphotoz.plotting import plot_neighbors

    images = np.random.default_rng(0).uniform(size=(10, 5, 8, 8)).astype(np.float32)
    with pytest.raises(error, match=match):
        plot_neighbors(images, *args, **kwargs)


def test_plot_neighbors_checks_the_images_shape(pyplot):
    from skphotoz.plotting import plot_neighbors

    with pytest.raises(ValueError, match=r"images must be \(n_samples, n_bands, height, width\)"):
        plot_neighbors(np.zeros((10, 8, 8)), 0, [1])
