import numpy as np
import pytest

from skphotoz.plotting import plot_gallery, plot_neighbors, plot_selection

pytest.importorskip("matplotlib")  # the whole file is skipped without matplotlib
pytestmark = pytest.mark.usefixtures("pyplot")  # Agg backend, every figure closed after each test


def test_plot_neighbors_draws_query_and_neighbours():
    images = np.abs(np.random.default_rng(12).normal(size=(20, 5, 8, 8))).astype(np.float32)
    redshift = np.linspace(0.01, 0.3, 20)
    fig = plot_neighbors(images, 4, [7, 2, 9], [0.9, 0.8, 0.7], redshift=redshift, n_cols=2)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0].startswith("query #4") and "z=" in titles[0]
    assert titles[1] == f"#7  s=0.900\nz={redshift[7]:.3f}"
    assert len(titles) == 4 and len(fig.axes) == 4


def test_plot_neighbors_of_an_outside_image():
    images = np.abs(np.random.default_rng(13).normal(size=(20, 5, 8, 8))).astype(np.float32)
    fig = plot_neighbors(images, images[3] * 2, [3, 5], redshift=np.linspace(0.01, 0.3, 20))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "query" and titles[1].startswith("#3\nz=")


def test_plot_neighbors_checks_its_arguments():
    images = np.ones((5, 5, 4, 4), np.float32)
    match = r"The 'n_cols' parameter of plot_neighbors must be an int in the range \[1, 1000\]"
    for n_cols in (0, 2.0, True):
        with pytest.raises(ValueError, match=match):
            plot_neighbors(images, 0, [1, 2], n_cols=n_cols)
    with pytest.raises(ValueError, match=r"similarities must have one value per neighbour \(2\)"):
        plot_neighbors(images, 0, [1, 2], [0.5])


def test_plot_neighbors_lives_in_skphotoz_plotting_only():
    import skphotoz.search

    assert not hasattr(skphotoz.search, "plot_neighbors")
    assert "plot_neighbors" not in skphotoz.search.__all__


@pytest.mark.parametrize("n", [1, 4])
def test_plot_gallery_captions_each_image_with_its_redshift(n):
    rgb = np.random.default_rng(14).uniform(size=(n, 6, 6, 3))
    z = np.linspace(0.05, 0.2, n)
    fig = plot_gallery(rgb, z)
    assert [ax.get_title() for ax in fig.axes] == [f"z = {value:.3f}" for value in z]
    np.testing.assert_array_equal(fig.axes[-1].get_images()[0].get_array(), rgb[-1])
    assert fig.get_size_inches()[0] == pytest.approx(1.6 * n)


def test_plot_gallery_checks_its_arguments():
    with pytest.raises(ValueError, match=r"z must have one value per image \(2\); got 3"):
        plot_gallery(np.zeros((2, 4, 4, 3)), [0.1, 0.2, 0.3])
    with pytest.raises(
        ValueError, match=r"rgb must hold at least one image .* got shape \(4, 4, 3\)"
    ):
        plot_gallery(np.zeros((4, 4, 3)), [0.1])


def test_plot_gallery_checks_shapes():
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
def test_plot_neighbors_checks_rows_query_and_options(args, kwargs, error, match):
    images = np.random.default_rng(0).uniform(size=(10, 5, 8, 8)).astype(np.float32)
    with pytest.raises(error, match=match):
        plot_neighbors(images, *args, **kwargs)


def test_plot_neighbors_checks_the_images_shape():
    with pytest.raises(ValueError, match=r"images must be \(n_samples, n_bands, height, width\)"):
        plot_neighbors(np.zeros((10, 8, 8)), 0, [1])


def test_plot_selection_draws_each_choice_over_the_pool():
    points = np.random.default_rng(14).normal(size=(50, 2))
    fig = plot_selection(points, {"typical": [1, 2, 3], "random": [4, 5]}, colour=points[:, 0])
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["typical (3)", "random (2)"]
    # The pool, then one layer per choice at the chosen points.
    np.testing.assert_allclose(ax.collections[1].get_offsets(), points[[1, 2, 3]])
    assert len(fig.axes) == 2  # the colour bar


@pytest.mark.parametrize(
    "points, selections, kwargs, message",
    [
        (np.ones((5, 3)), {"a": [0]}, {}, r"points must have shape \(n_galaxies, 2\)"),
        (np.ones((5, 2)), [0, 1], {}, "selections must be a dict"),
        (np.ones((5, 2)), {str(i): [0] for i in range(5)}, {}, "1 to 4 choices .* got 5"),
        (np.ones((5, 2)), {"a": [0, 5]}, {}, r"selections\['a'\] must be rows of points"),
        (np.ones((5, 2)), {"a": [0.5]}, {}, r"selections\['a'\] must be rows"),
        (np.ones((5, 2)), {"a": [0]}, {"colour": [1, 2]}, "one value per point"),
    ],
)
def test_plot_selection_checks_its_arguments(points, selections, kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        plot_selection(points, selections, **kwargs)
