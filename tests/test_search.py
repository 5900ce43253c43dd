import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from skphotoz import MoCoEmbedder
from skphotoz.data import HDF5Images
from skphotoz.search import SimilaritySearch
from skphotoz.search._faiss import FaissIndex
from skphotoz.search._topk import bf16_prefiltered_top_k
from tests.helpers import TINY, make_images, write_h5_archive


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
    values, indices = bf16_prefiltered_top_k(queries, index, 10, 1024, max_norm)
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
    ref_similarities, ref_indices = _brute_force(X, X, 6)
    np.testing.assert_array_equal(indices, ref_indices[:, 1:])
    # The similarities are the neighbours' own, not the self-match's 1.0 shifted along.
    np.testing.assert_allclose(similarities, ref_similarities[:, 1:], rtol=0, atol=1e-5)


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
    [
        {},
        {"dtype": "bfloat16"},
        {"backend": "faiss"},
        {"backend": "faiss", "index": "hnsw"},
        {"backend": "faiss", "index": "ivf", "dtype": "float16"},
    ],
)
def test_pickle_round_trip(params):
    if params.get("backend") == "faiss":
        pytest.importorskip("faiss")
    X, Q = _embeddings(600), _embeddings(10, seed=9)
    search = SimilaritySearch(**params).fit(X)
    restored = pickle.loads(pickle.dumps(search))
    for a, b in zip(search.kneighbors(Q, 5), restored.kneighbors(Q, 5), strict=True):
        np.testing.assert_array_equal(a, b)
    # Searching the index itself reads its stored rows back (faiss: reconstruct, which an IVF
    # index can only do with the direct map built at fit).
    for a, b in zip(search.kneighbors(), restored.kneighbors(), strict=True):
        np.testing.assert_array_equal(a, b)


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


def _invalid(name, expected, given):
    """The message of scikit-learn's parameter validation, as a regular expression."""
    return rf"The '{name}' parameter of SimilaritySearch must be {expected}\. Got {given} instead"


@pytest.mark.parametrize(
    "params, match",
    [
        ({"metric": "euclidean"}, _invalid("metric", r"a str among \{.*'dot'.*\}", "'euclidean'")),
        ({"backend": "annoy"}, _invalid("backend", r"a str among \{.*'faiss'.*\}", "'annoy'")),
        ({"index": "hnsw"}, r"index='hnsw' .* needs backend='faiss'.*got backend='torch'"),
        ({"dtype": "int8"}, _invalid("dtype", r"a str among \{.*'bfloat16'.*\}", "'int8'")),
        (
            {"n_neighbors": 0},
            _invalid("n_neighbors", r"an int in the range \[1, 2147483647\]", "0"),
        ),
        (
            {"n_neighbors": True},
            _invalid("n_neighbors", r"an int in the range \[1, 2147483647\]", "True"),
        ),
        (
            {"index_block_size": 2.5},
            _invalid("index_block_size", r"None or an int in the range \[1, 1073741824\]", "2.5"),
        ),
        (
            {"query_block_size": 2**17},
            _invalid("query_block_size", r"None or an int in the range \[1, 65536\]", "131072"),
        ),
        (
            {"query_block_size": 2**16, "index_block_size": 2**20},
            r"query_block_size \* index_block_size .* at most 1073741824 .*65536.*1048576",
        ),
        (
            {"n_probe": 2**31},
            _invalid("n_probe", r"an int in the range \[1, 2147483647\]", "2147483648"),
        ),
        ({"hnsw_m": 1}, _invalid("hnsw_m", r"an int in the range \[2, 256\]", "1")),
        ({"hnsw_m": 10**6}, _invalid("hnsw_m", r"an int in the range \[2, 256\]", "1000000")),
        ({"ef_search": 0}, _invalid("ef_search", r"an int in the range \[1, 2147483647\]", "0")),
        (
            {"n_lists": -4},
            _invalid("n_lists", r"None or an int in the range \[1, 2147483647\]", "-4"),
        ),
        (
            {"device": 0},
            _invalid("device", r"an instance of 'str' or an instance of 'torch.device'", "0"),
        ),
        ({"device": "gpu0"}, r"device must be 'auto', 'cpu', .*got 'gpu0', which torch does not"),
        ({"device": "cuda:7"}, r"device='cuda:7' was asked for, but it is not available here"),
        ({"device": "mps"}, r"device='mps' was asked for, but it is not available here"),
        (
            {"embedder": object()},
            _invalid("embedder", r"None or an object implementing 'transform'", "<object .*>"),
        ),
    ],
)
def test_invalid_parameters_name_argument_expected_and_given(params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SimilaritySearch(**params).fit(_embeddings(20))


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu"), "auto"])
def test_any_torch_device_form_is_accepted(device):
    X = _embeddings(20)
    search = SimilaritySearch(device=device).fit(X)
    assert search.device_ == torch.device("cpu") or torch.cuda.is_available()
    _, rows = search.kneighbors(X[:2], n_neighbors=1)
    np.testing.assert_array_equal(rows[:, 0], [0, 1])


def test_hnsw_m_two_is_the_smallest_graph_faiss_builds():
    # faiss crashes the process with hnsw_m=1 (refused above); 2 works, even on a tiny index.
    pytest.importorskip("faiss")
    X = _embeddings(300)
    search = SimilaritySearch(backend="faiss", index="hnsw", hnsw_m=2, ef_search=300).fit(X)
    np.testing.assert_array_equal(search.kneighbors(X[:5], 3)[1][:, 0], np.arange(5))


def test_n_lists_beyond_the_number_of_samples_is_refused_before_faiss_trains():
    pytest.importorskip("faiss")
    search = SimilaritySearch(backend="faiss", index="ivf", n_lists=21)
    with pytest.raises(ValueError, match=r"n_lists must be at most .* \(20\).*got n_lists=21"):
        search.fit(_embeddings(20))


def test_invalid_search_arguments():
    search = SimilaritySearch().fit(_embeddings(20))
    with pytest.raises(ValueError, match=_invalid("n_neighbors", r"an int in .*", "0")):
        search.kneighbors(_embeddings(2), n_neighbors=0)
    with pytest.raises(ValueError, match=r"n_neighbors must be at most 20.*got n_neighbors=21"):
        search.kneighbors(_embeddings(2), n_neighbors=21)
    with pytest.raises(
        ValueError, match=r"at most 19, .* other than the query; got n_neighbors=20"
    ):
        search.kneighbors(n_neighbors=20)
    with pytest.raises(ValueError, match=r"X_query has 8 features, .* dimension 32"):
        search.kneighbors(_embeddings(2, d=8))
    with pytest.raises(ValueError, match=r"X has 8 features, .* dimension 32"):
        search.score_samples(_embeddings(2, d=8))
    with pytest.raises(
        ValueError, match=r"X_query must be 2-D embeddings .* got shape \(2, 5, 4, 4\)"
    ):
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
    X = _embeddings(50)
    assert search.fit(X) is search
    check_is_fitted(search)
    assert search.n_samples_fit_ == 50 and search.n_features_in_ == 32
    # A clone refitted on the same data finds the same neighbours.
    np.testing.assert_array_equal(
        clone(search).fit(X).kneighbors(n_neighbors=4)[1], search.kneighbors(n_neighbors=4)[1]
    )
    # Refitting replaces everything fit learnt: new size, new dimension, new neighbours.
    X_new = _embeddings(30, d=8, seed=14)
    search.fit(X_new)
    assert search.n_samples_fit_ == 30 and search.n_features_in_ == 8
    assert search.index_.shape == (30, 8)
    np.testing.assert_array_equal(
        search.kneighbors(X_new[:5], 4)[1], _brute_force(X_new, X_new[:5], 4)[1]
    )


# -- the faiss adapter ---------------------------------------------------------------------


def _clustered(n, d=16, n_centres=50, seed=15):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_centres, d))
    X = centres[rng.integers(n_centres, size=n)] + 0.3 * rng.normal(size=(n, d))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def test_faiss_index_builds_from_blocks_searches_and_pickles():
    pytest.importorskip("faiss")
    X, Q = _clustered(1000), _clustered(20, seed=16)
    index = FaissIndex.build(np.array_split(X, 7), n_samples=1000)
    assert (index.n_samples, index.dim, index.kind) == (1000, 16, "flat")
    similarities, rows = index.search(Q, 10)
    ref_similarities, ref_rows = _brute_force(X, Q, 10, "dot")
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_allclose(similarities, ref_similarities, rtol=0, atol=1e-5)
    assert similarities.dtype == np.float32 and rows.dtype == np.int64
    np.testing.assert_array_equal(index.reconstruct(100, 103), X[100:103])
    for restored in (
        FaissIndex.deserialize(index.serialize()),
        pickle.loads(pickle.dumps(index)),
    ):
        for a, b in zip(restored.search(Q, 10), (similarities, rows), strict=True):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"k must be in \[1, 1000\]; got 1001"):
        index.search(Q, 1001)
    with pytest.raises(ValueError, match=r"queries must have shape \(n_queries, 16\)"):
        index.search(Q[:, :8], 3)
    with pytest.raises(ValueError, match=r"blocks held 1000 rows; expected n_samples=999"):
        FaissIndex.build([X], n_samples=999)
    with pytest.raises(ValueError, match="kind='ivf' needs training_rows"):
        FaissIndex.build([X], n_samples=1000, kind="ivf")


def test_faiss_index_ivf_trains_on_rows_spread_over_the_index():
    pytest.importorskip("faiss")
    X = _clustered(2000)
    asked = []

    def training_rows(positions):
        asked.append(positions)
        return X[positions]

    index = FaissIndex.build(
        [X[:1000], X[1000:]], n_samples=2000, kind="ivf", n_lists=8, training_rows=training_rows
    )
    (positions,) = asked
    assert positions[0] == 0 and positions[-1] == 1999 and len(positions) == 8 * 64
    assert np.all(np.diff(positions) > 0)
    # All lists probed: exact.
    np.testing.assert_array_equal(
        index.search(X[:30], 5, n_probe=8)[1], _brute_force(X, X[:30], 5, "dot")[1]
    )


def test_faiss_index_ivf_searches_short_queries_again_instead_of_returning_minus_one():
    faiss = pytest.importorskip("faiss")
    # 64 lists for 300 rows: one probed list often holds fewer than 10 rows.
    X, Q = _clustered(300), _clustered(100, seed=17)
    index = FaissIndex.build(
        [X], n_samples=300, kind="ivf", n_lists=64, n_probe=1, training_rows=X.__getitem__
    )
    raw_values, raw_rows = index.index.search(Q, 10, params=faiss.SearchParametersIVF(nprobe=1))
    short = (raw_rows < 0).any(axis=1)
    assert 0 < short.sum() < len(Q)  # the situation under test does arise
    similarities, rows = index.search(Q, 10)
    assert np.all(rows >= 0) and np.all(rows < 300)
    assert all(len(np.unique(r)) == 10 for r in rows)
    np.testing.assert_allclose(similarities, np.einsum("qd,qkd->qk", Q, X[rows]), atol=1e-5)
    assert np.all(np.diff(similarities, axis=1) <= 0)
    # Queries that were complete keep their answer; only the short ones were searched again.
    np.testing.assert_array_equal(rows[~short], raw_rows[~short])
    np.testing.assert_array_equal(similarities[~short], raw_values[~short])


class _ShortIndex:
    """A stand-in faiss index that finds one row per query below ``complete_from`` candidates."""

    ntotal, d = 40, 4

    def __init__(self, complete_from):
        self.complete_from = complete_from
        self.ef_seen = []

    def search(self, queries, k, params=None):
        ef = params.efSearch
        self.ef_seen.append(ef)
        rows = np.tile(np.arange(k, dtype=np.int64), (len(queries), 1))
        values = np.tile(-np.arange(k, dtype=np.float32), (len(queries), 1))
        if ef < self.complete_from:
            rows[:, 1:] = -1
            values[:, 1:] = -np.finfo(np.float32).max
        return values, rows


def test_faiss_index_hnsw_widens_ef_search_up_to_the_index_size():
    pytest.importorskip("faiss")
    stub = _ShortIndex(complete_from=40)
    index = FaissIndex(stub, "hnsw", ef_search=5)
    _, rows = index.search(np.zeros((3, 4), np.float32), 6)
    assert stub.ef_seen == [6, 12, 24, 40]  # at least k, doubled, capped at the 40 rows
    np.testing.assert_array_equal(rows, np.tile(np.arange(6), (3, 1)))


def test_faiss_index_hnsw_still_short_searches_its_storage_exhaustively():
    pytest.importorskip("faiss")
    stub = _ShortIndex(complete_from=10**9)
    stub.storage = _ShortIndex(complete_from=0)  # the stored rows, searched exhaustively
    stub.storage.search = lambda q, k: _ShortIndex.search(stub.storage, q, k, _Ef(0))
    _, rows = FaissIndex(stub, "hnsw", ef_search=64).search(np.zeros((2, 4), np.float32), 3)
    np.testing.assert_array_equal(rows, np.tile(np.arange(3), (2, 1)))
    assert stub.ef_seen == [40]


def test_faiss_index_raises_when_even_the_widest_search_is_short():
    pytest.importorskip("faiss")
    stub = _ShortIndex(complete_from=10**9)  # no storage to search exhaustively
    match = r"fewer than k=3 neighbours for 2 of 2 queries .*ef_search=40\); use an exact index"
    with pytest.raises(RuntimeError, match=match):
        FaissIndex(stub, "hnsw", ef_search=64).search(np.zeros((2, 4), np.float32), 3)
    assert stub.ef_seen == [40]


class _Ef:
    def __init__(self, ef):
        self.efSearch = ef


def test_faiss_ivf_estimator_never_returns_minus_one():
    pytest.importorskip("faiss")
    X = _clustered(300)
    search = SimilaritySearch(backend="faiss", index="ivf", n_lists=64, n_probe=1).fit(X)
    for similarities, rows in (search.kneighbors(X[:100], 10), search.kneighbors()):
        assert np.all(rows >= 0) and np.all(similarities > -1.01)


def test_faiss_search_parameters_apply_without_refitting():
    pytest.importorskip("faiss")
    X, Q = _clustered(2000), _clustered(50, seed=18)
    search = SimilaritySearch(backend="faiss", index="ivf", n_lists=32, n_probe=1).fit(X)
    exact = _brute_force(X, Q, 10)[1]
    coarse = search.kneighbors(Q, 10)[1]
    assert not np.array_equal(coarse, exact)
    # All 32 lists probed (and more than there are lists, capped by the adapter): exact.
    for n_probe in (32, 2**31 - 1):
        np.testing.assert_array_equal(
            search.set_params(n_probe=n_probe).kneighbors(Q, 10)[1], exact
        )
    # An HNSW search with more candidates than rows is capped at the number of rows.
    hnsw = SimilaritySearch(backend="faiss", index="hnsw", ef_search=2**31 - 1).fit(X)
    np.testing.assert_array_equal(hnsw.kneighbors(Q, 10)[1], exact)


# -- bad input and edge cases (issue 15) ---------------------------------------------------


@pytest.mark.parametrize(
    "X, error, match",
    [
        (None, TypeError, r"X must be an array-like of shape \(n_samples, n_features\).*NoneType"),
        ("embeddings.npy", TypeError, r"X must be an array-like .*got str 'embeddings.npy'"),
        (5, TypeError, r"X must be an array-like .*got int 5"),
        ({"a": 1}, TypeError, r"X must be an array-like .*got dict"),
        (np.float32(3.0), TypeError, r"X must be an array-like .*got float32"),
        # (numpy < 1.24 reads a ragged list as an object array of lists: still refused)
        ([[1.0, 2.0], [3.0]], ValueError, r"X .*could not be read as an array|X must be 2-D"),
        (np.array([["a", "b"]]), TypeError, r"X must hold real numbers; got .*dtype <U1"),
        (np.array([[1.0, "a"]], dtype=object), TypeError, r"X must hold real numbers.*object"),
        (np.array([[1.0, None]], dtype=object), ValueError, r"X holds NaN or infinite values"),
        (np.array([[1 + 2j, 1.0]]), TypeError, r"X must hold real numbers.*complex128"),
        (np.empty((0, 3)), ValueError, r"X must hold at least one sample; got shape \(0, 3\)"),
        (np.empty((3, 0)), ValueError, r"X must have at least one feature"),
        (np.arange(5.0), ValueError, r"X must be 2-D .* got shape \(5,\).*reshape\(1, -1\)"),
    ],
)
def test_fit_refuses_what_is_not_embeddings(X, error, match):
    with pytest.raises(error, match=match):
        SimilaritySearch().fit(X)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_embeddings_are_refused_naming_rows(bad):
    X = _embeddings(20)
    X[[3, 7], 1] = bad
    with pytest.raises(ValueError, match=r"X holds NaN or infinite values in 2 rows \(3, 7\)"):
        SimilaritySearch().fit(X)
    search = SimilaritySearch().fit(_embeddings(20))
    with pytest.raises(ValueError, match=r"X_query holds NaN or infinite values in 2 rows"):
        search.kneighbors(X[[0, 3, 7]])


def test_non_finite_embedder_output_is_refused():
    class BrokenEmbedder:
        def transform(self, X):
            out = np.asarray(X, dtype=np.float32).reshape(len(X), -1).copy()
            out[0] = np.nan
            return out

    with pytest.raises(ValueError, match=r"the embedder's output for X holds NaN or infinite"):
        SimilaritySearch(embedder=BrokenEmbedder()).fit(np.ones((4, 2, 2, 2)))


def test_wrong_query_dimension_and_shape_are_refused():
    search = SimilaritySearch(n_neighbors=2).fit(_embeddings(20, d=8))
    with pytest.raises(ValueError, match=r"X_query has 3 features, .* dimension 8"):
        search.kneighbors(_embeddings(2, d=3))
    with pytest.raises(ValueError, match=r"X_query must be 2-D .*shape \(8,\)"):
        search.kneighbors(_embeddings(1, d=8)[0])
    with pytest.raises(TypeError, match=r"X_query must be an array-like"):
        search.kneighbors("query")


def test_kneighbors_return_distance_is_a_strict_boolean():
    search = SimilaritySearch(n_neighbors=2).fit(_embeddings(20))
    with pytest.raises(ValueError, match=r"'return_distance' parameter .* Got 'False' instead"):
        search.kneighbors(_embeddings(2), return_distance="False")
    indices = search.kneighbors(_embeddings(2), return_distance=np.False_)
    assert indices.shape == (2, 2) and indices.dtype == np.int64


@pytest.mark.parametrize("backend", ["torch", "faiss"])
@pytest.mark.parametrize("scale", [1e-40, 1e-20, 1e25, 1e300])
def test_cosine_is_right_at_tiny_and_huge_norms(backend, scale):
    if backend == "faiss":
        pytest.importorskip("faiss")
    X, Q = _embeddings(200, d=8).astype(np.float64), _embeddings(5, d=8, seed=1).astype(float)
    if scale < 1e-38:  # float32 subnormals: the rounded float32 values are the data
        X = (X * scale).astype(np.float32).astype(np.float64)
        Q = (Q * scale).astype(np.float32).astype(np.float64)
    else:
        X, Q = X * scale, Q * scale
    search = SimilaritySearch(n_neighbors=5, backend=backend).fit(X)
    similarities, indices = search.kneighbors(Q)
    # Rows rescaled (cosines unchanged) so that numpy's own norms neither overflow nor underflow.
    ref_similarities, ref_indices = _brute_force(
        X / np.abs(X).max(axis=1, keepdims=True), Q / np.abs(Q).max(axis=1, keepdims=True), 5
    )
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_allclose(similarities, ref_similarities, atol=1e-6)


def test_cosine_refuses_zero_vectors():
    X = _embeddings(10)
    X[4] = 0.0
    with pytest.raises(ValueError, match=r"X holds 1 zero vector \(row 4\);.*metric='dot'"):
        SimilaritySearch().fit(X)
    search = SimilaritySearch(n_neighbors=2).fit(_embeddings(10))
    with pytest.raises(ValueError, match=r"X_query holds 1 zero vector \(row 0\)"):
        search.kneighbors(np.zeros((1, 32)))
    # dot products of zero vectors are well defined
    SimilaritySearch(n_neighbors=2, metric="dot").fit(X)


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_dot_float16_refuses_values_beyond_float16(backend):
    if backend == "faiss":
        pytest.importorskip("faiss")
    X = _embeddings(20, d=4) * 1e5
    match = r"dtype.*\|value\| \d\.\d+e\+05, beyond the largest float16 number \(65504\)"
    with pytest.raises(ValueError, match=match):
        SimilaritySearch(metric="dot", dtype="float16", backend=backend).fit(X)
    # float32 and bfloat16 hold them, and no similarity is infinite.
    for dtype in ("float32", "bfloat16"):
        search = SimilaritySearch(metric="dot", dtype=dtype, backend=backend, n_neighbors=3)
        similarities, indices = search.fit(X).kneighbors(X[:4])
        assert np.isfinite(similarities).all()
        if dtype == "float32":
            np.testing.assert_array_equal(indices, _brute_force(X, X[:4], 3, "dot")[1])


def test_dot_refuses_embeddings_all_below_the_storage_range():
    X = _embeddings(20, d=4) * 1e-6
    with pytest.raises(ValueError, match=r"below the smallest normal float16 number"):
        SimilaritySearch(metric="dot", dtype="float16").fit(X)
    SimilaritySearch(metric="dot", dtype="float32").fit(X)


def test_dot_at_extreme_scales_finds_the_brute_force_neighbours_or_refuses():
    X, Q = _embeddings(300, d=8).astype(np.float64), _embeddings(4, d=8, seed=5)
    # Products that underflow / overflow float32 unless the queries are rescaled.
    for scale in (1e-30, 1e-17, 1e15):
        search = SimilaritySearch(metric="dot", n_neighbors=4).fit(X * scale)
        similarities, indices = search.kneighbors(Q * scale)
        ref_similarities, ref_indices = _brute_force(X * scale, Q * scale, 4, "dot")
        np.testing.assert_array_equal(indices, ref_indices)
        # Returned in float32: similarities of 1e-60 are rounded to 0.
        np.testing.assert_allclose(similarities, ref_similarities.astype(np.float32), rtol=1e-5)
    search = SimilaritySearch(metric="dot", n_neighbors=4).fit(X * 1e20)
    with pytest.raises(ValueError, match=r"exceed the float32 range .* metric='cosine'"):
        search.kneighbors(Q * 1e20)
    with pytest.raises(ValueError, match=r"X holds an embedding of norm .* could overflow"):
        SimilaritySearch(metric="dot").fit(X / np.abs(X).max() * 3e38)
    with pytest.raises(ValueError, match=r"dtype='float32' cannot store X.*\|value\| 3\.9e\+38"):
        SimilaritySearch(metric="dot").fit(X * 1e38)


def test_index_parameters_changed_after_fit_are_refused():
    search = SimilaritySearch(n_neighbors=2).fit(_embeddings(20))
    search.set_params(metric="dot")
    with pytest.raises(
        ValueError, match=r"metric='dot' was set after fitting, but .* fitted with metric='cosine'"
    ):
        search.kneighbors(_embeddings(2))
    search.set_params(metric="cosine", n_neighbors=0)
    with pytest.raises(ValueError, match=r"'n_neighbors' parameter of SimilaritySearch"):
        search.kneighbors(_embeddings(2))
    search.set_params(n_neighbors=3)
    assert search.kneighbors(_embeddings(2))[1].shape == (2, 3)


def test_hnsw_m_below_two_is_refused_before_faiss_sees_it():
    # faiss itself crashes (a division by log(1)) on HNSW1: the parameter check stops it.
    pytest.importorskip("faiss")
    for m in (0, 1):
        with pytest.raises(ValueError, match=r"'hnsw_m' parameter .* \[2, 256\]"):
            SimilaritySearch(backend="faiss", index="hnsw", hnsw_m=m).fit(_embeddings(50))


def test_ivf_with_one_probe_returns_k_real_neighbours():
    pytest.importorskip("faiss")
    X, Q = _clustered(600), _clustered(20, seed=3)
    search = SimilaritySearch(backend="faiss", index="ivf", n_lists=15, n_probe=1)
    similarities, indices = search.fit(X).kneighbors(Q, n_neighbors=100)
    assert (indices >= 0).all() and np.isfinite(similarities).all()
    assert (similarities > -1.01).all()
    assert all(len(set(row)) == 100 for row in indices.tolist())


def test_score_samples_of_large_dot_products_is_finite():
    X = _embeddings(50, d=4) * 1e18
    scores = SimilaritySearch(metric="dot", n_neighbors=5).fit(X).score_samples()
    assert np.isfinite(scores).all()


def test_embedder_returning_the_wrong_number_of_rows_is_refused():
    class DroppingEmbedder:
        def transform(self, X):
            return np.asarray(X, dtype=np.float32).reshape(len(X), -1)[1:]

    with pytest.raises(ValueError, match=r"has 3 rows; the embedder must return one embedding"):
        SimilaritySearch(embedder=DroppingEmbedder()).fit(np.ones((4, 2, 2, 2)))


def test_hnsw_graph_that_cannot_reach_every_row_falls_back_to_exhaustive_search():
    # Found by the property test: with duplicates and 2 links per node, even a full
    # candidate list misses a row, and faiss returns -1 for k = n.
    pytest.importorskip("faiss")
    X = np.random.default_rng(0).normal(size=(8, 3))
    X[[1, 2, 3, 4]] = X[0]
    search = SimilaritySearch(backend="faiss", index="hnsw", hnsw_m=2, ef_search=1).fit(X)
    similarities, indices = search.kneighbors(X[:2], n_neighbors=8)
    assert sorted(indices[0].tolist()) == list(range(8))
    assert np.isfinite(similarities).all()


def test_sparse_and_torch_embeddings_are_accepted():
    import scipy.sparse

    X = _embeddings(40, d=6)
    expected = SimilaritySearch(n_neighbors=3).fit(X).kneighbors(X[:4])[1]
    for as_input in (scipy.sparse.csr_matrix, lambda a: torch.from_numpy(a).requires_grad_()):
        search = SimilaritySearch(n_neighbors=3).fit(as_input(X))
        np.testing.assert_array_equal(search.kneighbors(as_input(X[:4]))[1], expected)


def test_dot_refuses_values_that_float32_would_flush_to_zero():
    # Found by the property test on the oldest numpy: 1e-48 becomes 0 when cast to float32.
    X = np.array([[0.0], [-1.32e-48]])
    with pytest.raises(ValueError, match=r"below the smallest normal float32 number"):
        SimilaritySearch(metric="dot", dtype="float32").fit(X)


def test_similarity_search_checks_the_embedder_preprocessing(tmp_path):
    # The index reads an archive in numpy blocks before the embedder sees them: an archive
    # read otherwise than the embedder's training images must be refused, as transform does.
    path = write_h5_archive(tmp_path, make_images(n=8, size=10), e_bv=0.01)
    embedder = MoCoEmbedder(**TINY).fit(HDF5Images(path))
    dereddened = HDF5Images(path, deredden=True)
    with pytest.raises(ValueError, match="preprocessing_"):
        SimilaritySearch(n_neighbors=2, embedder=embedder).fit(dereddened)
    search = SimilaritySearch(n_neighbors=2, embedder=embedder).fit(HDF5Images(path))
    with pytest.raises(ValueError, match="preprocessing_"):
        search.kneighbors(dereddened)
    assert search.kneighbors(HDF5Images(path)[:2])[1].shape == (2, 2)
