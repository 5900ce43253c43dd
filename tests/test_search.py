import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from skphotoz.search import (
    SimilaritySearch,
    _bf16_prefiltered_top_k,
    plot_neighbors,
    run_search_cli,
)


def _embeddings(n, d=32, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _brute_force(X, Q, k, metric="cosine"):
    X64, Q64 = X.astype(np.float64), Q.astype(np.float64)
    if metric == "cosine":
        X64 = X64 / np.linalg.norm(X64, axis=1, keepdims=True)
        Q64 = Q64 / np.linalg.norm(Q64, axis=1, keepdims=True)
    scores = Q64 @ X64.T
    order = np.argsort(-scores, axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


@pytest.mark.parametrize("metric", ["cosine", "dot"])
def test_exact_matches_numpy_brute_force(metric):
    X, Q = _embeddings(3000), _embeddings(50, seed=1)
    similarities, indices = SimilaritySearch(metric=metric).fit(X).kneighbors(Q, n_neighbors=10)
    ref_similarities, ref_indices = _brute_force(X, Q, 10, metric)
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_allclose(similarities, ref_similarities, atol=1e-5)
    assert similarities.dtype == np.float32 and indices.dtype == np.int64


def test_exact_matches_brute_force_with_grouped_blocks():
    # Blocks wide enough for the grouped pre-selection (16 groups of >= k columns) and a tail.
    X, Q = _embeddings(20_000, d=16), _embeddings(300, d=16, seed=1)
    search = SimilaritySearch(index_block_size=4096, query_block_size=128).fit(X)
    _, indices = search.kneighbors(Q, n_neighbors=20)
    np.testing.assert_array_equal(indices, _brute_force(X, Q, 20)[1])


@pytest.mark.parametrize("spread", [1.0, 0.002])
@pytest.mark.parametrize("metric", ["cosine", "dot"])
def test_bfloat16_preselection_is_exact(metric, spread):
    # Runs on any CPU (bfloat16 is emulated where not native). With spread=0.002 the rows
    # crowd within the bfloat16 rounding error of each other, so many queries cannot be
    # settled from the candidates and take the float32 fallback.
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(8, 24))
    X = (centres[rng.integers(8, size=5000)] + spread * rng.normal(size=(5000, 24))).astype(
        np.float32
    )
    Q = (centres[rng.integers(8, size=64)] + spread * rng.normal(size=(64, 24))).astype(np.float32)
    if metric == "cosine":
        Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
        Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    else:
        Xn, Qn = X, Q
    index, queries = torch.from_numpy(Xn), torch.from_numpy(Qn)
    max_norm = float(torch.linalg.vector_norm(index, dim=1).max())
    values, indices = _bf16_prefiltered_top_k(queries, index, 10, 1024, max_norm)
    ref_values, _ = _brute_force(Xn, Qn, 10, "dot")
    # Exact similarities, and indices whose exact similarities are the reference ones.
    np.testing.assert_allclose(values.numpy(), ref_values, rtol=0, atol=2e-5)
    exact_of_found = np.einsum("qd,qkd->qk", Qn.astype(np.float64), Xn[indices.numpy()])
    np.testing.assert_allclose(exact_of_found, ref_values, rtol=0, atol=2e-5)


def test_similarities_sorted_descending():
    X = _embeddings(2000)
    similarities, _ = SimilaritySearch().fit(X).kneighbors(_embeddings(40, seed=2), 25)
    assert np.all(np.diff(similarities, axis=1) <= 0)
    assert not np.all(np.diff(similarities, axis=1) == 0)


def test_cosine_and_dot_differ_by_norms():
    X = _embeddings(500) * np.random.default_rng(3).uniform(0.1, 10, size=(500, 1))
    Q = _embeddings(20, seed=4)
    cos_sim, cos_idx = SimilaritySearch(metric="cosine").fit(X).kneighbors(Q, 5)
    dot_sim, dot_idx = SimilaritySearch(metric="dot").fit(X).kneighbors(Q, 5)
    assert np.all(np.abs(cos_sim) <= 1 + 1e-6)
    assert dot_sim.max() > 1.5
    assert not np.array_equal(cos_idx, dot_idx)
    np.testing.assert_array_equal(dot_idx, _brute_force(X, Q, 5, "dot")[1])


def test_self_exclusion_when_queries_are_the_index():
    X = _embeddings(400)
    similarities, indices = SimilaritySearch().fit(X).kneighbors(n_neighbors=5)
    assert indices.shape == (400, 5)
    assert not np.any(indices == np.arange(400)[:, None])
    ref = _brute_force(X, X, 6)[1][:, 1:]
    np.testing.assert_array_equal(indices, ref)
    assert np.all(similarities < 0.999)


def test_self_exclusion_with_duplicate_rows():
    X = _embeddings(100)
    X[1] = X[0]
    indices = SimilaritySearch().fit(X).kneighbors(n_neighbors=3, return_distance=False)
    assert indices[0, 0] == 1 and indices[1, 0] == 0
    assert not np.any(indices == np.arange(100)[:, None])


@pytest.mark.parametrize("blocks", [(1, 1), (2, 3), (5, 64)])
def test_tiny_blocks_give_identical_results(blocks):
    X, Q = _embeddings(150), _embeddings(7, seed=5)
    full = SimilaritySearch().fit(X).kneighbors(Q, 10)
    query_block, index_block = blocks
    search = SimilaritySearch(query_block_size=query_block, index_block_size=index_block)
    blocked = search.fit(X).kneighbors(Q, 10)
    np.testing.assert_array_equal(blocked[1], full[1])
    np.testing.assert_allclose(blocked[0], full[0], rtol=0, atol=1e-6)
    self_search = SimilaritySearch(query_block_size=query_block + 20, index_block_size=index_block)
    self_indices = self_search.fit(X).kneighbors(n_neighbors=4)[1]
    np.testing.assert_array_equal(self_indices, _brute_force(X, X, 5)[1][:, 1:])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_storage_close_to_float32(dtype):
    X, Q = _embeddings(3000), _embeddings(100, seed=6)
    ref_sim, ref_idx = SimilaritySearch().fit(X).kneighbors(Q, 10)
    search = SimilaritySearch(dtype=dtype).fit(X)
    sim, idx = search.kneighbors(Q, 10)
    assert search.index_.element_size() == 2
    np.testing.assert_allclose(sim, ref_sim, atol=2e-2 if dtype == "bfloat16" else 2e-3)
    assert np.mean([len(np.intersect1d(a, b)) for a, b in zip(idx, ref_idx, strict=True)]) > 9


def test_faiss_exact_equals_torch_exact():
    pytest.importorskip("faiss")
    X, Q = _embeddings(3000), _embeddings(100, seed=7)
    torch_sim, torch_idx = SimilaritySearch().fit(X).kneighbors(Q, 10)
    faiss_search = SimilaritySearch(backend="faiss").fit(X)
    faiss_sim, faiss_idx = faiss_search.kneighbors(Q, 10)
    np.testing.assert_array_equal(faiss_idx, torch_idx)
    np.testing.assert_allclose(faiss_sim, torch_sim, atol=1e-5)
    np.testing.assert_array_equal(
        faiss_search.kneighbors(n_neighbors=3)[1], _brute_force(X, X, 4)[1][:, 1:]
    )


@pytest.mark.parametrize("index", ["hnsw", "ivf"])
def test_approximate_recall_at_10(index):
    pytest.importorskip("faiss")
    # Embeddings of galaxies cluster (by type, redshift); uniform noise would defeat any index.
    rng = np.random.default_rng(8)
    centres = rng.normal(size=(50, 32))
    X = (centres[rng.integers(50, size=5000)] + 0.5 * rng.normal(size=(5000, 32))).astype("f4")
    Q = (centres[rng.integers(50, size=200)] + 0.5 * rng.normal(size=(200, 32))).astype("f4")
    ref = _brute_force(X, Q, 10)[1]
    search = SimilaritySearch(backend="faiss", index=index, n_lists=32, n_probe=12).fit(X)
    _, indices = search.kneighbors(Q, 10)
    recall = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(indices, ref, strict=True)])
    assert recall >= 0.9
    assert np.all(np.diff(search.kneighbors(Q, 10)[0], axis=1) <= 0)


@pytest.mark.parametrize(
    "params",
    [{}, {"dtype": "bfloat16"}, {"backend": "faiss"}, {"backend": "faiss", "index": "hnsw"}],
)
def test_pickle_round_trip(params):
    if params.get("backend") == "faiss":
        pytest.importorskip("faiss")
    X, Q = _embeddings(600), _embeddings(10, seed=9)
    search = SimilaritySearch(**params).fit(X)
    restored = pickle.loads(pickle.dumps(search))
    for a, b in zip(search.kneighbors(Q, 5), restored.kneighbors(Q, 5), strict=True):
        np.testing.assert_array_equal(a, b)
    assert search.kneighbors(Q, 5)[0].shape == (10, 5)


def test_score_samples_ranks_injected_outlier_lowest():
    rng = np.random.default_rng(10)
    centres = rng.normal(size=(4, 32))
    X = (centres[rng.integers(4, size=800)] + 0.2 * rng.normal(size=(800, 32))).astype(np.float32)
    X[123] = rng.normal(size=32)
    search = SimilaritySearch(n_neighbors=5).fit(X)
    scores = search.score_samples()
    assert scores.shape == (800,)
    assert np.argmin(scores) == 123
    # New galaxies are scored against the whole index: a copy of an indexed one is typical.
    new = np.vstack([X[:1] + 0.01, rng.normal(size=(1, 32))])
    assert search.score_samples(new)[0] > search.score_samples(new)[1]


def test_embedder_is_applied_to_images():
    class FlattenEmbedder:
        def transform(self, X):
            return np.asarray(X).reshape(len(X), -1)[:, :24] + 1.0

    images = np.random.default_rng(11).normal(size=(200, 5, 4, 4)).astype(np.float32)
    search = SimilaritySearch(embedder=FlattenEmbedder()).fit(images)
    assert search.embedding_dim_ == 24 and not hasattr(search, "n_features_in_")
    _, indices = search.kneighbors(images[[3, 9]], 1)
    np.testing.assert_array_equal(indices[:, 0], [3, 9])


@pytest.mark.parametrize(
    "params, match",
    [
        ({"metric": "euclidean"}, r"metric must be one of \['cosine', 'dot'\]; got 'euclidean'"),
        ({"backend": "annoy"}, r"backend must be one of .*; got 'annoy'"),
        ({"index": "hnsw"}, r"index='hnsw' .* needs backend='faiss'.*got backend='torch'"),
        ({"dtype": "int8"}, r"dtype must be one of .*; got 'int8'"),
        ({"n_neighbors": 0}, r"n_neighbors must be a positive integer; got 0"),
        ({"index_block_size": 2.5}, r"index_block_size must be a positive integer; got 2.5"),
        ({"device": "tpu"}, r"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got 'tpu'"),
        ({"embedder": object()}, r"embedder must be a fitted transformer .*; got object"),
    ],
)
def test_invalid_parameters_name_argument_expected_and_given(params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SimilaritySearch(**params).fit(_embeddings(20))


def test_invalid_search_arguments():
    search = SimilaritySearch().fit(_embeddings(20))
    with pytest.raises(ValueError, match=r"n_neighbors must be at most 20.*got n_neighbors=21"):
        search.kneighbors(_embeddings(2), n_neighbors=21)
    with pytest.raises(
        ValueError, match=r"at most 19, .* other than the query; got n_neighbors=20"
    ):
        search.kneighbors(n_neighbors=20)
    with pytest.raises(ValueError, match=r"X has 8 features, .* dimension 32"):
        search.kneighbors(_embeddings(2, d=8))
    with pytest.raises(ValueError, match=r"X must be 2-D embeddings .* got shape \(2, 5, 4, 4\)"):
        search.kneighbors(np.zeros((2, 5, 4, 4), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        search.kneighbors(np.full((1, 32), np.nan, np.float32))


def test_faiss_missing_gives_clear_import_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(ImportError, match=r"backend='faiss' needs the faiss package: pip install"):
        SimilaritySearch(backend="faiss").fit(_embeddings(20))


def test_sklearn_conventions():
    search = SimilaritySearch(n_neighbors=4, dtype="float16")
    with pytest.raises(NotFittedError):
        check_is_fitted(search)
    with pytest.raises(NotFittedError):
        search.kneighbors(_embeddings(2))
    search.fit(_embeddings(50))
    check_is_fitted(search)
    copy = clone(search)
    assert copy.get_params() == search.get_params()
    assert not hasattr(copy, "index_")
    assert search.n_samples_fit_ == 50 and search.n_features_in_ == 32


def test_plot_neighbors_draws_query_and_neighbours():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    images = np.abs(np.random.default_rng(12).normal(size=(20, 5, 8, 8))).astype(np.float32)
    redshift = np.linspace(0.01, 0.3, 20)
    fig = plot_neighbors(images, 4, [7, 2, 9], [0.9, 0.8, 0.7], redshift=redshift, n_cols=2)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0].startswith("query #4") and "z=" in titles[0]
    assert titles[1] == f"#7  s=0.900\nz={redshift[7]:.3f}"
    assert len(titles) == 4 and len(fig.axes) == 4


def test_run_search_cli_on_archive(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from skphotoz.data import write_archive

    rng = np.random.default_rng(13)
    images = np.abs(rng.normal(size=(30, 5, 8, 8))).astype(np.float32)
    archive = tmp_path / "a.h5"
    write_archive(archive, images, redshift=np.linspace(0.01, 0.3, 30))
    embeddings = _embeddings(30)
    np.save(tmp_path / "e.npy", embeddings)
    result = run_search_cli(
        archive, 5, n_neighbors=4, embeddings_path=tmp_path / "e.npy", output_png=tmp_path / "n.png"
    )
    np.testing.assert_array_equal(result.indices, _brute_force(embeddings, embeddings, 5)[1][5, 1:])
    assert (tmp_path / "n.png").stat().st_size > 0
    assert "query #5" in capsys.readouterr().out
