"""Label selection: what each strategy chooses, on data whose answer is known; the contract
all of them keep (distinct new rows, reproducible, labelled rows respected); the errors; and
the selection inside label_efficiency_curve."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.neighbors import KNeighborsRegressor

from skphotoz.baselines import GaussianProcessPhotoZ
from skphotoz.model_selection import (
    LabelEfficiencyCurve,
    label_efficiency_curve,
    paired_difference,
)
from skphotoz.selection import (
    STRATEGIES,
    CellSelection,
    CoverageSelection,
    LabelSelector,
    MixedSelection,
    RandomSelection,
    TypicalSelection,
    UncertaintySelection,
    make_selection,
    prediction_width,
)

ALL = [
    RandomSelection(random_state=0),
    TypicalSelection(random_state=0),
    CellSelection(random_state=0),
    CellSelection(n_cells=7, random_state=0),
    CoverageSelection(),
    MixedSelection(random_state=0),
]


def _blobs(n_per=(60, 60, 60, 60), spread=0.05, seed=0):
    """Well-separated blobs on a square of side 10; returns X and each row's blob."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [5, 5], [20, 20]], dtype=float)
    X = np.concatenate([centres[i] + spread * rng.normal(size=(n, 2)) for i, n in enumerate(n_per)])
    blob = np.repeat(np.arange(len(n_per)), n_per)
    return X.astype(np.float32), blob


@pytest.mark.parametrize("selector", ALL, ids=lambda s: repr(s))
def test_every_strategy_returns_distinct_new_rows_reproducibly(selector):
    X = np.random.default_rng(1).normal(size=(200, 3))
    labelled = np.array([0, 5, 9])
    rows = selector.select(X, 30, labelled=labelled)
    assert rows.dtype == np.int64 and rows.shape == (30,)
    assert len(np.unique(rows)) == 30 and not np.isin(rows, labelled).any()
    assert np.all((rows >= 0) & (rows < 200))
    np.testing.assert_array_equal(rows, clone(selector).select(X, 30, labelled=labelled))
    # All the unlabelled rows can be asked for.
    everything = selector.select(X, 197, labelled=labelled)
    np.testing.assert_array_equal(np.sort(everything), np.setdiff1d(np.arange(200), labelled))


def test_typical_points_take_one_galaxy_from_each_dense_blob():
    X, blob = _blobs()
    # A far-out stray galaxy of its own: typical points never spend a label on it.
    X = np.concatenate([X, [[40.0, -40.0]]]).astype(np.float32)
    rows = TypicalSelection(random_state=0).select(X, 4)
    assert sorted(blob[rows].tolist()) == [0, 1, 2, 3]
    # ... and within a blob the chosen galaxy is among the densest (nearest its centre).
    for row in rows:
        members = np.flatnonzero(blob == blob[row])
        centre = X[members].mean(axis=0)
        distance = np.linalg.norm(X[members] - centre, axis=1)
        assert np.linalg.norm(X[row] - centre) <= np.quantile(distance, 0.5)


def test_coverage_reaches_the_stray_galaxy_that_typical_points_skip():
    X, _ = _blobs()
    X = np.concatenate([X, [[40.0, -40.0]]]).astype(np.float32)
    stray = len(X) - 1
    assert stray in CoverageSelection().select(X, 3)
    assert stray not in TypicalSelection(random_state=0).select(X, 4)


def test_coverage_order_is_greedy_so_a_smaller_budget_is_a_prefix():
    X = np.random.default_rng(2).normal(size=(300, 4))
    long = CoverageSelection().select(X, 40)
    np.testing.assert_array_equal(CoverageSelection().select(X, 15), long[:15])
    # Each pick is the galaxy farthest from all those before it.
    for i in (1, 5, 20):
        before = X[long[:i]]
        d = np.min(np.linalg.norm(X[:, None, :] - before[None], axis=2), axis=1)
        assert d[long[i]] == pytest.approx(d.max(), rel=1e-4)


def test_labelled_rows_anchor_the_selection():
    X, blob = _blobs()
    # Blob 0 already has a redshift: the three new labels go to the three other blobs.
    labelled = np.flatnonzero(blob == 0)[:1]
    for selector in (TypicalSelection(random_state=0), CellSelection(random_state=0)):
        rows = selector.select(X, 3, labelled=labelled)
        assert sorted(blob[rows].tolist()) == [1, 2, 3], type(selector).__name__
    # Coverage starts from the labelled galaxy, not from the mean.
    assert blob[CoverageSelection().select(X, 1, labelled=labelled)[0]] == 3
    # A boolean mask is a labelled set too.
    mask = np.zeros(len(X), dtype=bool)
    mask[labelled] = True
    np.testing.assert_array_equal(
        TypicalSelection(random_state=0).select(X, 3, labelled=mask),
        TypicalSelection(random_state=0).select(X, 3, labelled=labelled),
    )


def test_cells_follow_the_galaxies_once_every_cell_has_a_label():
    # Two cells, one holding 9x the galaxies: after one label each, the big cell gets ~9x.
    X, blob = _blobs(n_per=(270, 30))
    rows = CellSelection(n_cells=2, random_state=0).select(X, 20)
    assert set(blob[rows[:2]].tolist()) == {0, 1}  # the empty cells first
    assert np.count_nonzero(blob[rows] == 0) == 18


def test_mixed_selection_is_typical_then_coverage():
    X, _ = _blobs()
    X = np.concatenate([X, [[40.0, -40.0]]]).astype(np.float32)
    rows = MixedSelection(random_state=0).select(X, 8)
    first = TypicalSelection(random_state=np.random.RandomState(0).randint(2**31 - 1))
    assert len(rows) == 8 and len(X) - 1 in rows[4:]
    assert len(set(rows[:4].tolist())) == 4 and first.n_neighbors == 20


def test_uncertainty_takes_the_widest_pdfs_spread_over_clusters():
    X, blob = _blobs(n_per=(60, 60, 60, 60))
    noise = np.random.default_rng(0).uniform(0, 0.01, len(X))
    width = np.where(blob < 2, 1.0, 0.1) + noise
    rows = UncertaintySelection(random_state=0).select(X, 4, uncertainty=width)
    # The widest are in blobs 0 and 1; a diverse batch takes from both, not only from the one
    # holding the single widest galaxy.
    assert set(blob[rows].tolist()) == {0, 1}
    assert np.all(np.diff(width[rows]) <= 0)  # the most uncertain first


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_uncertainty_in_rounds_refits_its_model_on_the_labels_so_far():
    rng = np.random.default_rng(3)
    X = rng.uniform(-2, 2, size=(300, 2))
    y = 0.3 + 0.1 * np.sin(2 * X[:, 0]) + 0.05 * X[:, 1]
    selector = UncertaintySelection(
        GaussianProcessPhotoZ(n_restarts=0, random_state=0), n_rounds=2, random_state=0
    )
    rows = selector.select(X, 20, y=y)
    assert len(np.unique(rows)) == 20
    # Without the redshifts of the rows it must fit on, it says what is missing.
    with pytest.raises(ValueError, match="needs their redshifts in y"):
        selector.select(X, 20)
    with pytest.raises(ValueError, match="needs a model"):
        UncertaintySelection().select(X, 5)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_prediction_width_reads_a_gp_and_a_pipeline():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(80, 2))
    y = 0.2 + 0.05 * X[:, 0]
    gp = GaussianProcessPhotoZ(n_restarts=0, random_state=0).fit(X, y)
    near, far = prediction_width(gp, np.array([[0.0, 0.0], [8.0, 8.0]]))
    assert 0 < near < far
    with pytest.raises(TypeError, match="predict_interval"):
        prediction_width(KNeighborsRegressor(3).fit(X, y), X)


def test_a_memmap_is_read_in_place(tmp_path):
    X = np.random.default_rng(5).normal(size=(500, 8)).astype(np.float32)
    path = tmp_path / "features.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    for selector in (CoverageSelection(), TypicalSelection(random_state=0)):
        np.testing.assert_array_equal(selector.select(mapped, 25), selector.select(X, 25))


@pytest.mark.parametrize(
    "X, n, labelled, message",
    [
        (np.ones((10, 2)), 11, None, "n_select must be an integer from 1 to the 10 rows"),
        (np.ones((10, 2)), 9, [0, 1], "from 1 to the 8 rows of X that are not labelled"),
        (np.ones((10, 2)), 0, None, "n_select must be"),
        (np.ones((10, 2)), True, None, "n_select must be"),
        (np.ones((10, 2)), 2.0, None, "n_select must be"),
        (np.ones(10), 2, None, "X must be 2-D"),
        (np.ones((10, 2)), 2, [3, 10], r"labelled must be rows of X \(0 to 9\)"),
        (np.ones((10, 2)), 2, [3, 3], "more than once"),
        (np.ones((10, 2)), 2, [0.5], "labelled must be row numbers"),
        (np.ones((10, 2)), 2, np.ones(3, dtype=bool), "one value per row"),
    ],
)
def test_bad_input_is_refused_by_name(X, n, labelled, message):
    with pytest.raises((ValueError, TypeError), match=message):
        TypicalSelection().select(X, n, labelled=labelled)


def test_non_finite_features_are_refused_naming_the_rows():
    X = np.random.default_rng(6).normal(size=(50, 3))
    X[[4, 17], 1] = np.nan
    X[30, 0] = np.inf
    with pytest.raises(ValueError, match=r"3 row\(s\) \(\[4, 17, 30\]\)"):
        CoverageSelection().select(X, 5)
    with pytest.raises(TypeError, match="must hold numbers"):
        CoverageSelection().select(np.array([["a", "b"]]), 1)
    with pytest.raises(TypeError, match="array of features"):
        CoverageSelection().select("features.npy", 1)


def test_parameters_are_checked_like_scikit_learn():
    X = np.ones((10, 2))
    with pytest.raises(ValueError, match="n_neighbors"):
        TypicalSelection(n_neighbors=0).select(X, 2)
    with pytest.raises(ValueError, match="initial_fraction"):
        UncertaintySelection(initial_fraction=1.5).select(X, 2, uncertainty=np.ones(10))
    message = r"uncertainty must be 1-D with one finite value per row of X \(10\); got shape \(9,\)"
    with pytest.raises(ValueError, match=message):
        UncertaintySelection().select(X, 2, uncertainty=np.ones(9))


def test_a_broken_strategy_fails_loudly():
    class Repeats(LabelSelector):
        _parameter_constraints: dict = {}
        random_state = None

        def _select(self, X, n_select, labelled, y, rng):
            return np.zeros(n_select, dtype=np.int64)

    with pytest.raises(RuntimeError, match="this is a bug"):
        Repeats().select(np.ones((10, 2)), 3)


def test_strategies_by_name_match_the_command_line():
    from skphotoz.cli._parser import DEFAULT_SELECTION, SELECTION_STRATEGIES

    assert list(SELECTION_STRATEGIES) == list(STRATEGIES)
    assert DEFAULT_SELECTION in STRATEGIES
    for name in STRATEGIES:
        assert isinstance(make_selection(name, random_state=0), LabelSelector)
    with pytest.raises(ValueError, match="strategy must be one of"):
        make_selection("best")


# ------------------------------------------------------------------ in label_efficiency_curve
def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    z = 0.2 + 0.05 * np.tanh(X[:, 0]) + 0.002 * rng.normal(size=n)
    return X, z


def test_a_curve_with_a_strategy_shares_the_random_curves_test_galaxies():
    X, z = _data()
    kwargs = dict(label_counts=[10, 40], cv=3, n_repeats=2, random_state=0)
    random = label_efficiency_curve(KNeighborsRegressor(3), X, z, **kwargs)
    chosen = label_efficiency_curve(
        KNeighborsRegressor(3), X, z, selection=CoverageSelection(), **kwargs
    )
    for a, b in zip(random.test_indices, chosen.test_indices, strict=True):
        np.testing.assert_array_equal(a, b)
    assert random.selection == "random" and chosen.selection == "CoverageSelection"
    # The labelled rows are the strategy's choice among the split's training rows.
    for s, train in enumerate(chosen.train_indices):
        pool = train[np.isfinite(z[train])]
        for b, n in enumerate(chosen.label_counts):
            rows = chosen.labelled_indices[s][b]
            np.testing.assert_array_equal(rows, pool[CoverageSelection().select(X[pool], n)])
            assert not np.isin(rows, chosen.test_indices[s]).any()
            np.testing.assert_array_equal(random.labelled_indices[s][b], train[:n])
    diff = paired_difference(chosen, random, n_bootstrap=50, random_state=0)
    assert diff.metric == "sigma_mad" and diff.label_counts.tolist() == [10, 40]


def test_a_strategy_without_random_state_is_seeded_by_the_curve():
    X, z = _data()
    kwargs = dict(label_counts=[10], cv=2, random_state=3, selection=TypicalSelection())
    a = label_efficiency_curve(KNeighborsRegressor(3), X, z, **kwargs)
    b = label_efficiency_curve(KNeighborsRegressor(3), X, z, **kwargs)
    np.testing.assert_array_equal(a.labelled_indices[0][0], b.labelled_indices[0][0])


def test_selection_features_are_checked():
    X, z = _data()
    images = np.zeros((len(z), 2, 4, 4))
    with pytest.raises(ValueError, match="pass selection_features"):
        label_efficiency_curve(
            KNeighborsRegressor(3), images, z, label_counts=[10], selection=TypicalSelection()
        )
    with pytest.raises(ValueError, match="one row per row of X"):
        label_efficiency_curve(
            KNeighborsRegressor(3), X, z, label_counts=[10], selection=TypicalSelection(),
            selection_features=X[:10],
        )  # fmt: skip
    with pytest.raises(ValueError, match="only read with a selection strategy"):
        label_efficiency_curve(
            KNeighborsRegressor(3), X, z, label_counts=[10], selection_features=X
        )


def test_paired_outlier_fraction_and_bias_are_those_of_the_predictions():
    X, z = _data(seed=1)
    z = z.copy()
    kwargs = dict(label_counts=[5, 50], cv=2, random_state=0)
    a = label_efficiency_curve(KNeighborsRegressor(1), X, z, **kwargs)
    b = label_efficiency_curve(KNeighborsRegressor(5), X, z, **kwargs)
    from skphotoz.metrics import bias, outlier_fraction

    for metric, function in (("outlier_fraction", outlier_fraction), ("bias", bias)):
        diff = paired_difference(a, b, n_bootstrap=50, random_state=0, metric=metric)
        expected = a.pooled(function).mean(axis=1) - b.pooled(function).mean(axis=1)
        np.testing.assert_allclose(diff.difference, expected, atol=1e-12)
        assert np.all(diff.low <= diff.difference + 1e-12)
        assert np.all(diff.difference <= diff.high + 1e-12)
    with pytest.raises(ValueError, match="metric"):
        paired_difference(a, b, metric="rmse")


def test_concatenate_and_select_keep_the_labelled_rows():
    X, z = _data()
    curves = [
        label_efficiency_curve(
            KNeighborsRegressor(3), X, z, label_counts=[10, 40], cv=2, random_state=seed,
            selection=CoverageSelection(),
        )
        for seed in (0, 1)
    ]  # fmt: skip
    both = LabelEfficiencyCurve.concatenate(curves)
    np.testing.assert_array_equal(
        both.labelled_indices[2][1], curves[1].labelled_indices[0][1] + len(z)
    )
    assert both.selection == "CoverageSelection"
    only = both.select([40])
    assert len(only.labelled_indices[0]) == 1
    np.testing.assert_array_equal(only.labelled_indices[0][0], both.labelled_indices[0][1])


def test_cells_take_a_random_galaxy_or_the_one_nearest_the_centre():
    X, _ = _blobs(n_per=(200,), spread=1.0)
    centre = X.mean(axis=0)
    nearest = int(np.argmin(np.linalg.norm(X - centre, axis=1)))
    assert CellSelection(n_cells=1, within="centre", random_state=0).select(X, 1)[0] == nearest
    picks = {int(CellSelection(n_cells=1, random_state=seed).select(X, 1)[0]) for seed in range(8)}
    assert len(picks) > 4  # random members, not always the same one
    with pytest.raises(ValueError, match="within"):
        CellSelection(within="middle").select(X, 1)


@pytest.mark.parametrize("transform", [lambda X: X * 1e19, lambda X: X * 1e-25, lambda X: X + 1e4])
def test_the_choice_does_not_depend_on_the_features_scale_or_offset(transform):
    # Squared norms of raw fluxes (1e-29) underflow in float32, of 1e19 overflow, and a large
    # offset cancels a distance's digits: features are rescaled first.
    X = np.random.default_rng(7).normal(size=(600, 3))
    np.testing.assert_array_equal(
        CoverageSelection().select(transform(X), 30), CoverageSelection().select(X, 30)
    )
    for selector in (TypicalSelection(random_state=0), CellSelection(random_state=0)):
        rows = selector.select(transform(X), 20)
        assert not np.array_equal(np.sort(rows), np.arange(20))  # not rows 0, 1, 2, ...
        # The same galaxies as for centred, unit-spread features.
        centred = (X - X.mean(axis=0)) / X.std()
        np.testing.assert_array_equal(np.sort(rows), np.sort(selector.select(centred, 20)))


def test_finite_values_beyond_float32_are_not_called_infinite():
    X = np.random.default_rng(8).normal(size=(100, 2)) * 1e39
    assert len(CellSelection(random_state=0).select(X, 5)) == 5


def test_uncertainty_checks_come_before_the_work():
    X = np.random.default_rng(9).normal(size=(100, 2))
    with pytest.raises(ValueError, match="got y=None"):
        UncertaintySelection(GaussianProcessPhotoZ()).select(X, 10)
    with pytest.raises(ValueError, match=r"got shape \(100, 2\)"):
        UncertaintySelection().select(X, 10, uncertainty=np.ones((100, 2)))

    class OneArray(KNeighborsRegressor):
        def predict(self, X, **kwargs):
            return super().predict(X)

    with pytest.raises(TypeError, match="returning \\(mean, std\\)"):
        prediction_width(OneArray(3).fit(X, X[:, 0]), X)


def test_a_curve_names_non_finite_selection_features_by_their_rows():
    X, z = _data()
    z = z.copy()
    z[[3, 8]] = np.nan
    features = X.copy()
    features[3] = np.nan  # unlabelled: never chosen, allowed
    curve = label_efficiency_curve(
        KNeighborsRegressor(3), X, z, label_counts=[10], cv=2, random_state=0,
        selection=CellSelection(), selection_features=features,
    )  # fmt: skip
    assert curve.labelled_indices[0][0].size == 10
    features[[5, 11]] = np.inf
    with pytest.raises(
        ValueError, match=r"selection_features holds .* 2 labelled row\(s\) \(\[5, 11\]\)"
    ):
        label_efficiency_curve(
            KNeighborsRegressor(3), X, z, label_counts=[10], cv=2, random_state=0,
            selection=CellSelection(), selection_features=features,
        )  # fmt: skip
    # 2-D features given as a list select like an array.
    listed = label_efficiency_curve(
        KNeighborsRegressor(3), X.tolist(), z, label_counts=[10], cv=2, random_state=0,
        selection=CoverageSelection(),
    )  # fmt: skip
    assert listed.selection == "CoverageSelection"


def test_curves_of_different_strategies_are_not_concatenated():
    X, z = _data()
    kwargs = dict(label_counts=[10], cv=2, random_state=0)
    a = label_efficiency_curve(KNeighborsRegressor(3), X, z, **kwargs)
    b = label_efficiency_curve(
        KNeighborsRegressor(3), X, z, selection=CoverageSelection(), **kwargs
    )
    with pytest.raises(ValueError, match="choose their labels the same way"):
        LabelEfficiencyCurve.concatenate([a, b])


def test_a_bias_is_better_the_closer_it_is_to_zero():
    X, z = _data(seed=2)
    kwargs = dict(label_counts=[50], cv=2, random_state=0)
    honest = label_efficiency_curve(KNeighborsRegressor(5), X, z, **kwargs)
    low = label_efficiency_curve(_Shifted(-0.05), X, z, **kwargs)
    diff = paired_difference(low, honest, metric="bias", n_bootstrap=100, random_state=0)
    assert diff.difference[0] < 0  # a's bias is lower (more negative) ...
    assert diff.prob_a_better[0] == 0.0  # ... and worse


class _Shifted(KNeighborsRegressor):
    """A kNN whose predictions are off by ``shift``."""

    def __init__(self, shift=0.0):
        super().__init__(5)
        self.shift = shift

    def predict(self, X):
        return super().predict(X) + self.shift
