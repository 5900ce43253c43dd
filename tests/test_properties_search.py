"""Property test of SimilaritySearch: random parameters (valid and invalid) and random
embeddings (tiny and huge norms, duplicates, zero rows, NaN sprinkles, half precision, cosine
and dot, torch and faiss) give either a clear error where the documented rules call for one,
or the neighbours of a float64 brute force within the rounding of the storage precision."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from skphotoz.search import SimilaritySearch

try:
    import faiss  # noqa: F401

    BACKENDS = ["torch", "faiss"]
except ImportError:  # faiss is optional: the torch backend is tested alone
    BACKENDS = ["torch"]

F32_MAX = float(np.finfo(np.float32).max)
# Storage precision: unit roundoff, largest number, smallest normal number.
STORAGE = {
    "float32": (2.0**-24, F32_MAX, float(np.finfo(np.float32).tiny)),
    "bfloat16": (2.0**-8, 3.3895e38, float(np.finfo(np.float32).tiny)),
    "float16": (2.0**-11, 65504.0, 2.0**-14),
}
VALID_DTYPES = list(STORAGE)


def _norms(X):
    largest = np.abs(X).max(axis=1)
    scale = np.where(largest > 0, largest, 1.0)
    return np.linalg.norm(X / scale[:, None], axis=1) * largest


@st.composite
def cases(draw):
    n = draw(st.integers(1, 30))
    d = draw(st.integers(1, 6))
    source_dtype = draw(st.sampled_from([np.float64, np.float32]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    exponent = draw(st.sampled_from([-44, -30, -20, -5, 0, 0, 0, 3, 5, 20, 25, 36, 40, 200]))
    if source_dtype is np.float32:
        exponent = min(exponent, 36)
    X = rng.normal(size=(n, d)) * 10.0**exponent
    if draw(st.booleans()):  # per-row spread of norms
        X *= 10.0 ** rng.integers(-3, 4, size=(n, 1))
    if n > 1 and draw(st.booleans()):  # duplicates
        X[rng.integers(n, size=n // 2)] = X[0]
    if draw(st.integers(0, 9)) == 0:  # a zero row
        X[rng.integers(n)] = 0.0
    if draw(st.integers(0, 9)) == 0:  # a NaN or inf sprinkle
        X[rng.integers(n), rng.integers(d)] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    with np.errstate(over="ignore"):  # float32 overflow makes inf rows: must be refused
        X = X.astype(source_dtype)
    queries = None
    if draw(st.booleans()):
        n_queries = draw(st.integers(1, 5))
        queries = rng.normal(size=(n_queries, d)) * 10.0 ** draw(st.sampled_from([-30, 0, 20]))
        if draw(st.integers(0, 9)) == 0:
            queries[0, 0] = np.nan
    params = {
        "metric": draw(st.sampled_from(["cosine", "dot"])),
        "dtype": draw(st.sampled_from(VALID_DTYPES)),
        "backend": draw(st.sampled_from(BACKENDS)),
        "query_block_size": draw(st.sampled_from([None, None, 1, 3])),
        "index_block_size": draw(st.sampled_from([None, None, 1, 5, 32])),
    }
    if draw(st.integers(0, 4)) == 0:  # one invalid parameter
        name, value = draw(
            st.sampled_from(
                [
                    ("metric", "euclidean"),
                    ("dtype", "float64"),
                    ("query_block_size", 0),
                    ("query_block_size", 2**20),
                    ("index_block_size", -2),
                    ("index_block_size", True),
                    ("n_probe", 0),
                    ("hnsw_m", 1),
                ]
            )
        )
        params[name] = value
    if draw(st.integers(0, 4)) == 0:  # an invalid or out-of-range n_neighbors
        k = draw(st.sampled_from(["fit", n, n + 3, 0, -1, True, 2.5, "3"]))
    else:
        k = draw(st.integers(1, max(1, n - 1)))
    return X, queries, params, k


def _valid_params(params) -> bool:
    return (
        params["metric"] in ("cosine", "dot")
        and params["dtype"] in STORAGE
        and params["query_block_size"] in (None, 1, 3)
        and params["index_block_size"] in (None, 1, 5, 32)
        and params["index_block_size"] is not True
        and params.get("n_probe", 1) >= 1
        and params.get("hnsw_m", 2) >= 2
    )


@settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(cases())
def test_search_gives_a_clear_error_or_the_brute_force_neighbours(case):
    X, queries, params, k = case
    X64 = X.astype(np.float64)
    n = len(X)
    exclude_self = queries is None
    Q64 = X64 if exclude_self else queries
    u, dtype_max, dtype_tiny = STORAGE.get(params["dtype"], (None, None, None))
    n_neighbors = 10 if k == "fit" else k
    available = n - int(exclude_self)

    must_raise = (
        not _valid_params(params)
        or not np.isfinite(X64).all()
        or not np.isfinite(Q64).all()
        or isinstance(n_neighbors, bool | str | float)
        or not 1 <= n_neighbors <= available
    )
    may_raise = False
    if not must_raise and params["metric"] == "cosine":
        must_raise = bool((_norms(X64) == 0).any() or (_norms(Q64) == 0).any())
    elif not must_raise:
        largest = float(np.abs(X64).max())
        must_raise = (
            largest > min(dtype_max, F32_MAX)
            or 0 < largest < dtype_tiny
            or _norms(X64).max() > F32_MAX / 2
        )
        true = Q64 @ X64.T
        # Inner products near or beyond the float32 range in which they are returned.
        top = np.abs(true).max()
        must_raise = must_raise or (not exclude_self and top > 1.01 * F32_MAX)
        may_raise = top > 0.5 * F32_MAX

    search = SimilaritySearch(**params)
    try:
        search.fit(X)
        if exclude_self:
            result = search.kneighbors(n_neighbors=None if k == "fit" else k)
        else:
            result = search.kneighbors(queries, n_neighbors=None if k == "fit" else k)
    except (ValueError, TypeError) as error:
        message = str(error)
        assert len(message) > 20, message
        assert must_raise or may_raise, f"unexpected error: {message}"
        event(f"error: {type(error).__name__}: {message[:60]}")
        return
    assert not must_raise, "an invalid case gave no error"
    event(f"neighbours: {params['metric']} {params['dtype']} {params['backend']}")
    similarities, indices = result
    assert similarities.shape == indices.shape == (len(Q64), n_neighbors)
    assert indices.dtype == np.int64 and similarities.dtype == np.float32
    assert ((indices >= 0) & (indices < n)).all()
    assert np.isfinite(similarities).all()
    assert (np.diff(similarities.astype(np.float64), axis=1) <= 0).all()
    for row in indices:
        assert len(set(row.tolist())) == n_neighbors
    if exclude_self:
        assert not (indices == np.arange(n)[:, None]).any()

    if params["metric"] == "cosine":
        Xn = X64 / _norms(X64)[:, None]
        Qn = Q64 / _norms(Q64)[:, None]
        scale = np.ones(len(Qn))
    else:
        Xn, Qn = X64, Q64
        scale = _norms(Q64) * _norms(X64).max()
    true = Qn @ Xn.T
    if exclude_self:
        np.fill_diagonal(true, -np.inf)
    reference = -np.sort(-true, axis=1)[:, :n_neighbors]
    found = np.take_along_axis(true, indices, axis=1)
    d = X.shape[1]
    # Storage rounding (relative u per element, plus subnormals below the smallest normal),
    # float32 products, and the float32 rounding of the returned values.
    tolerance = scale[:, None] * (4 * u * np.sqrt(d) + d * 2.0**-22) + 2 * 1.5e-45
    tolerance = tolerance + 2.0**-23 * np.abs(reference)
    assert (np.abs(found - reference) <= tolerance).all(), (found, reference, tolerance)
    assert (np.abs(similarities - found) <= tolerance).all(), (similarities, found, tolerance)


@pytest.mark.parametrize("backend", BACKENDS)
def test_property_test_finds_huge_and_tiny_cases(backend):
    """The property test's tolerance is not vacuous: at norms 1e-20 and 1e25 the cosine
    neighbours are the brute-force ones, to 1e-6."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4))
    for scale in (1e-20, 1e25):
        search = SimilaritySearch(n_neighbors=3, backend=backend).fit(X * scale)
        similarities, indices = search.kneighbors(X[:5] * scale)
        Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
        true = Xn[:5] @ Xn.T
        np.testing.assert_array_equal(indices, np.argsort(-true, axis=1)[:, :3])
        np.testing.assert_allclose(similarities, -np.sort(-true, axis=1)[:, :3], atol=1e-6)


@pytest.mark.skipif("faiss" not in BACKENDS, reason="faiss is not installed")
@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    n=st.integers(8, 60),
    d=st.integers(2, 6),
    index=st.sampled_from(["hnsw", "ivf"]),
    n_lists=st.integers(1, 8),
    n_probe=st.integers(1, 3),
    hnsw_m=st.sampled_from([2, 3, 8]),
    ef_search=st.sampled_from([1, 2, 16]),
    duplicates=st.booleans(),
    k_fraction=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_approximate_faiss_search_returns_k_real_neighbours(
    n, d, index, n_lists, n_probe, hnsw_m, ef_search, duplicates, k_fraction, seed
):
    """Approximate indexes may miss the best neighbours, but never return -1 rows, repeated
    rows, or similarities other than those of the rows they return."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    if duplicates:
        X[rng.integers(n, size=n // 2)] = X[0]
    Q = rng.normal(size=(3, d))
    k = max(1, int(k_fraction * n))
    search = SimilaritySearch(
        n_neighbors=k,
        backend="faiss",
        index=index,
        n_lists=min(n_lists, n),
        n_probe=n_probe,
        hnsw_m=hnsw_m,
        ef_search=ef_search,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # faiss: few training points per list
        similarities, indices = search.fit(X).kneighbors(Q)
    assert ((indices >= 0) & (indices < n)).all()
    assert all(len(set(row)) == k for row in indices.tolist())
    assert np.isfinite(similarities).all()
    assert (np.diff(similarities.astype(np.float64), axis=1) <= 0).all()
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    true = np.take_along_axis(Qn @ Xn.T, indices, axis=1)
    np.testing.assert_allclose(similarities, true, atol=1e-5)
