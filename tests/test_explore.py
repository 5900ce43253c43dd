"""skphotoz.explore without a browser: the Explorer's answers, the JSON API through Flask's
test client, bad requests, the cache, and the `explore` command (the page itself is tested in
a real browser in test_explore_browser.py)."""

import hashlib
import io
import sys
import types

import numpy as np
import pytest

pytest.importorskip("flask")

from skphotoz import PhotoZRegressor  # noqa: E402
from skphotoz.cli import main  # noqa: E402
from skphotoz.data import open_archive  # noqa: E402
from skphotoz.explore import ExploreError, Explorer, create_app  # noqa: E402
from skphotoz.io import dump  # noqa: E402
from skphotoz.search import SimilaritySearch  # noqa: E402
from tests.helpers import explore_data  # noqa: E402

N = 120


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """An archive of N simulated galaxies, embeddings that follow their colours, and a tiny
    fitted photo-z network saved as a skops file."""
    folder = tmp_path_factory.mktemp("explore")
    archive, opened, embeddings, model = explore_data(folder, N, seed=3)
    np.save(folder / "emb.npy", embeddings)
    dump(model, folder / "photoz.skops")
    return {
        "folder": folder,
        "archive": archive,
        "embeddings": embeddings,
        "model": model,
        "objid": np.asarray(opened.objid),
    }


@pytest.fixture(scope="module")
def explorer(files, tmp_path_factory):
    return Explorer(
        files["archive"], embeddings=files["embeddings"], model=files["model"], deredden=True,
        cache_dir=tmp_path_factory.mktemp("cache"), progress=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def client(explorer):
    return create_app(explorer).test_client()


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- answers ---------------------------------------------------------------------------------


def test_neighbours_are_the_similarity_search_neighbours(files, explorer, client):
    reference = SimilaritySearch(n_neighbors=8).fit(files["embeddings"])
    similarities, indices = reference.kneighbors()
    for row in (0, 17, N - 1):
        answer = client.get(f"/api/galaxy/{row}").get_json()
        shown = answer["neighbours"]
        assert [n["row"] for n in shown] == indices[row].tolist()
        np.testing.assert_allclose([n["similarity"] for n in shown], similarities[row], atol=1e-5)
        # ObjIDs as strings: SDSS's 19 digits do not survive JavaScript's numbers.
        assert [n["objid"] for n in shown] == [str(i) for i in files["objid"][indices[row]]]
        assert answer["catalogue"]["row"] == row
        assert answer["catalogue"]["objid"] == str(files["objid"][row])


def test_pdf_is_the_models_pdf_as_a_density(files, explorer, client):
    row = 5
    pdf = client.get(f"/api/galaxy/{row}").get_json()["pdf"]
    X = np.asarray(open_archive(files["archive"], deredden=True).images[row : row + 1])
    expected = files["model"].predict_pdf(X)[0]
    edges = files["model"].redshift_bins_
    np.testing.assert_allclose(np.asarray(pdf["density"]) * np.diff(edges), expected, atol=1e-5)
    assert np.trapezoid(pdf["density"], pdf["z"]) == pytest.approx(1, abs=0.05)
    assert pdf["z_phot"] == pytest.approx(files["model"].predict(X)[0], abs=1e-6)
    low, high = pdf["interval_68"]
    assert low <= pdf["z_phot"] <= high


def test_anomalies_are_the_lowest_scores_first(files, explorer, client):
    scores = SimilaritySearch(n_neighbors=8).fit(files["embeddings"]).score_samples()
    shown = client.get("/api/anomalies?n=10").get_json()["galaxies"]
    assert [g["row"] for g in shown] == np.argsort(scores, kind="stable")[:10].tolist()
    np.testing.assert_allclose([g["score"] for g in shown], np.sort(scores)[:10], atol=1e-5)
    assert explorer.catalogue(shown[0]["row"])["anomaly_rank"] == 1


def test_map_is_the_pca_of_the_unit_embeddings_with_both_redshifts(files, explorer, client):
    payload = client.get("/api/map").get_json()
    assert payload["n"] == N and payload["method"] == "pca"
    unit = files["embeddings"] / np.linalg.norm(files["embeddings"], axis=1, keepdims=True)
    centred = unit - unit.mean(axis=0)
    first = np.linalg.svd(centred, full_matrices=False)[2][0]
    # The first map axis is the first principal component (up to its sign).
    correlation = np.corrcoef(payload["x"], centred @ first)[0, 1]
    assert abs(correlation) > 0.999
    z_spec = open_archive(files["archive"]).redshift
    np.testing.assert_allclose(payload["z_spec"], z_spec, atol=1e-4)
    assert len(payload["z_phot"]) == N and explorer.z_phot_ is not None


def test_objid_lookup_and_pasted_lists(files, client):
    objid = int(files["objid"][42])
    assert client.get(f"/api/objid/{objid}").get_json() == {"row": 42}
    text = f"{files['objid'][3]}, {files['objid'][7]}\n999999999 row:11 row:{N} abc"
    answer = client.post("/api/lookup", json={"objids": text}).get_json()
    assert [g["row"] for g in answer["galaxies"]] == [3, 7, 11]
    errors = [e["error"] for e in answer["errors"]]
    assert len(errors) == 3
    assert "objid 999999999 is not in galaxies.h5" in errors[0]
    assert f"row {N} is out of range" in errors[1]
    assert "'abc'" in errors[2]


def test_stamps_are_pngs_of_the_composite(files, client):
    from PIL import Image

    from skphotoz.data import to_rgb

    response = client.get("/stamp/9.png")
    assert response.status_code == 200 and response.mimetype == "image/png"
    image = np.asarray(Image.open(io.BytesIO(response.data)))
    stamp = np.asarray(open_archive(files["archive"], deredden=True).images[9])
    expected = np.round(to_rgb(stamp) * 255).astype(np.uint8)
    np.testing.assert_array_equal(image, expected)
    assert client.get("/stamp/9.png").data == response.data  # from the cache


def test_the_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and b'<canvas id="map"' in page.data
    for name in ("explore.js", "explore.css"):
        assert client.get(f"/static/{name}").status_code == 200
    info = client.get("/api/info").get_json()
    assert info["n_galaxies"] == N and info["has_pdf"] and info["has_objid"]


# -- bad requests ----------------------------------------------------------------------------

BAD = [
    ("/api/galaxy/999999", 404, "row 999999 is out of range: galaxies.h5 holds 120 galaxies"),
    ("/api/galaxy/-1", 400, "row must be a whole number ≥ 0; got '-1'"),
    ("/api/galaxy/1e3", 400, "row must be a whole number ≥ 0; got '1e3'"),
    ("/api/objid/123", 404, "objid 123 is not in galaxies.h5"),
    ("/api/objid/12x", 400, "an objid is a whole number; got '12x'"),
    ("/api/anomalies?n=0", 400, "n must be a whole number from 1 to 500; got '0'"),
    ("/api/anomalies?n=all", 400, "n must be a whole number from 1 to 500; got 'all'"),
    ("/stamp/../../etc/passwd", 404, "a stamp is /stamp/<row>.png; got '../../etc/passwd'"),
    ("/stamp/../../etc/passwd.png", 400, "row must be a whole number ≥ 0; got '../../etc/passwd'"),
    ("/stamp/..%2F..%2Fetc%2Fpasswd", 404, "a stamp is /stamp/<row>.png"),
    ("/stamp/3.jpg", 404, "a stamp is /stamp/<row>.png; got '3.jpg'"),
    ("/static/../_data.py", 404, "no such page or resource"),
    ("/static/..%2F_data.py", 404, "no such page or resource"),
    ("/api/nothing", 404, "no such page or resource: '/api/nothing'"),
    ("/api/galaxy/" + "9" * 5000, 404, "row 99999999999999999999… is out of range"),
    ("/stamp/" + "9" * 5000 + ".png", 404, "is out of range"),
    ("/api/galaxy/١٢", 400, "row must be a whole number ≥ 0; got '١٢'"),
    ("/api/galaxy/%201", 400, "row must be a whole number ≥ 0; got ' 1'"),
    ("/api/anomalies?n=²", 400, "n must be a whole number from 1 to 500; got '²'"),
    ("/api/anomalies?n=" + "9" * 5000, 400, "n must be a whole number from 1 to 500"),
    ("/api/objid/" + "9" * 5000, 404, "is not in galaxies.h5"),
    ("/api/objid/1_0", 400, "an objid is a whole number; got '1_0'"),
    ("/api/objid/-1", 404, "objid -1 is not in galaxies.h5"),
    ("/api//info", 404, "no such page or resource: '/api//info'"),
]


@pytest.mark.parametrize(("url", "status", "message"), BAD)
def test_bad_requests_get_a_clear_json_error(client, url, status, message):
    response = client.get(url)
    assert response.status_code == status
    body = response.get_json()
    assert set(body) == {"error"} and message in body["error"]
    assert "Traceback" not in response.get_data(as_text=True)


def test_bad_lookup_bodies_and_methods(client):
    for body in ({"objids": 5}, [1, 2], None):
        response = client.post("/api/lookup", json=body)
        assert response.status_code == 400
        assert 'the body must be JSON {"objids"' in response.get_json()["error"]
    empty = client.post("/api/lookup", json={"objids": " , \n"})
    assert empty.status_code == 400 and "the list is empty" in empty.get_json()["error"]
    many = client.post("/api/lookup", json={"objids": " ".join(["1"] * 501)})
    assert "at most 500 galaxies per list; got 501" in many.get_json()["error"]
    huge = client.post("/api/lookup", data=b"x" * 70_000, content_type="application/json")
    assert huge.status_code == 413 and "too large" in huge.get_json()["error"]
    wrong = client.post("/api/galaxy/1")
    assert wrong.status_code == 405 and "POST is not allowed" in wrong.get_json()["error"]
    assert "GET" in wrong.headers["Allow"]
    nested = "[" * 30000 + "]" * 30000  # deeper than Python's JSON parser goes
    deep = client.post("/api/lookup", data=nested, content_type="application/json")
    assert deep.status_code == 400 and 'the body must be JSON {"objids"' in deep.get_json()["error"]
    long_row = client.post("/api/lookup", json={"objids": "row:" + "1" * 4301 + " row:2"})
    found = long_row.get_json()
    assert [g["row"] for g in found["galaxies"]] == [2] and "out of range" in found["errors"][0][
        "error"
    ]


def test_a_failure_of_the_server_is_a_json_error_without_traceback(explorer, monkeypatch):
    app = create_app(explorer)
    monkeypatch.setattr(explorer, "anomalies", lambda n: 1 / 0)
    response = app.test_client().get("/api/anomalies?n=3")
    assert response.status_code == 500
    assert response.get_json() == {
        "error": "the server failed on this request: ZeroDivisionError: division by zero"
    }


def test_check_row_refuses_what_is_not_a_row(explorer):
    for bad in (True, 1.5, None):
        with pytest.raises(ExploreError, match="row must be a whole number"):
            explorer.check_row(bad)
    with pytest.raises(ExploreError, match="out of range") as caught:
        explorer.check_row(N)
    assert caught.value.status == 404


# -- start-up, cache, read-only --------------------------------------------------------------


def test_the_archive_is_only_read(files, tmp_path):
    before = digest(files["archive"]), files["archive"].stat().st_mtime_ns
    explorer = Explorer(
        files["archive"], embeddings=files["embeddings"], cache_dir=tmp_path, progress=False
    )
    client = create_app(explorer).test_client()
    for url in ("/api/galaxy/4", "/stamp/4.png", "/api/anomalies?n=5", "/api/map"):
        assert client.get(url).status_code == 200
    assert (digest(files["archive"]), files["archive"].stat().st_mtime_ns) == before


def test_a_second_start_reads_the_cache_and_new_embeddings_do_not(files, tmp_path, monkeypatch):
    first = Explorer(
        files["archive"], embeddings=files["embeddings"], cache_dir=tmp_path, progress=False
    )
    assert len(list(tmp_path.glob("*.npy"))) == 2  # map and scores

    def fail(self):
        raise AssertionError("recomputed")

    monkeypatch.setattr(Explorer, "_fit_map", fail)
    monkeypatch.setattr(Explorer, "_score", fail)
    again = Explorer(
        files["archive"], embeddings=files["embeddings"], cache_dir=tmp_path, progress=False
    )
    np.testing.assert_array_equal(again.map_, first.map_)
    np.testing.assert_array_equal(again.scores_, first.scores_)
    with pytest.raises(AssertionError, match="recomputed"):
        Explorer(
            files["archive"], embeddings=files["embeddings"][::-1].copy(), cache_dir=tmp_path,
            progress=False,
        )  # fmt: skip


def test_the_default_cache_sits_beside_the_archive(files, tmp_path):
    archive = tmp_path / "copy.h5"
    archive.write_bytes(files["archive"].read_bytes())
    Explorer(archive, embeddings=files["embeddings"], progress=False)
    assert len(list((tmp_path / "copy.h5.explore").glob("*.npy"))) == 2


def test_an_unwritable_cache_folder_warns_and_caches_nothing(files, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.warns(UserWarning, match="cannot be written"):
        explorer = Explorer(
            files["archive"], embeddings=files["embeddings"], cache_dir=blocker / "sub",
            progress=False,
        )  # fmt: skip
    assert explorer.map_.shape == (N, 2)


def test_a_damaged_cache_file_is_recomputed(files, tmp_path):
    first = Explorer(
        files["archive"], embeddings=files["embeddings"], cache_dir=tmp_path, progress=False
    )
    for path in tmp_path.glob("map-*.npy"):
        path.write_bytes(b"not numpy")
    again = Explorer(
        files["archive"], embeddings=files["embeddings"], cache_dir=tmp_path, progress=False
    )
    np.testing.assert_allclose(again.map_, first.map_)


def test_an_embedder_embeds_the_archive_once(files, tmp_path, monkeypatch):
    from skphotoz import MoCoEmbedder

    X = np.asarray(open_archive(files["archive"], deredden=True).images[:])
    embedder = MoCoEmbedder(n_epochs=1, batch_size=32, device="cpu", random_state=0).fit(X)
    explorer = Explorer(
        files["archive"], embedder=embedder, deredden=True, cache_dir=tmp_path, progress=False
    )
    np.testing.assert_allclose(explorer.embeddings_, embedder.transform(X), atol=1e-5)
    assert len(list(tmp_path.glob("embeddings-*.npy"))) == 1

    def fail(self, X):
        raise AssertionError("embedded again")

    monkeypatch.setattr(MoCoEmbedder, "transform", fail)  # a second start reads the cache
    again = Explorer(
        files["archive"], embedder=embedder, deredden=True, cache_dir=tmp_path, progress=False
    )
    np.testing.assert_array_equal(again.embeddings_, explorer.embeddings_)


def test_umap_is_used_where_installed(files, monkeypatch):
    calls = []

    class FakeUMAP:
        def __init__(self, n_components, random_state):
            calls.append((n_components, random_state))

        def fit_transform(self, X):
            return X[:, :2] * 2

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    explorer = Explorer(
        files["archive"], embeddings=files["embeddings"], cache_dir=None, progress=False
    )
    assert explorer.map_method_ == "umap" and calls == [(2, 0)]
    monkeypatch.setitem(sys.modules, "umap", None)  # not installed
    assert Explorer(
        files["archive"], embeddings=files["embeddings"], cache_dir=None, progress=False
    ).map_method_ == "pca"  # fmt: skip
    with pytest.raises(
        ImportError, match=r"map_method='umap' \(--map umap\) needs the package umap-learn"
    ):
        Explorer(
            files["archive"], embeddings=files["embeddings"], map_method="umap", cache_dir=None,
            progress=False,
        )  # fmt: skip
    # Installed but broken (a dependency missing): PCA, with a warning saying why.
    monkeypatch.setattr(
        "builtins.__import__",
        _failing_import("umap", ImportError("No package metadata was found for pynndescent")),
    )
    with pytest.warns(UserWarning, match="umap-learn is installed but cannot be imported .No pack"):
        explorer = Explorer(
            files["archive"], embeddings=files["embeddings"], cache_dir=None, progress=False
        )
    assert explorer.map_method_ == "pca"


def _failing_import(name, error):
    import builtins

    real = builtins.__import__

    def fake(module, *args, **kwargs):
        if module == name:
            raise error
        return real(module, *args, **kwargs)

    return fake


def test_an_hnsw_index_finds_the_exact_neighbours_on_a_small_archive(files):
    pytest.importorskip("faiss")
    explorer = Explorer(
        files["archive"], embeddings=files["embeddings"], index="hnsw", cache_dir=None,
        progress=False,
    )  # fmt: skip
    assert explorer.index_ == "hnsw" and explorer.info()["index"] == "hnsw"
    _, exact = SimilaritySearch(n_neighbors=8).fit(files["embeddings"]).kneighbors()
    found = [[n["row"] for n in explorer.neighbours(row)] for row in range(20)]
    recall = np.mean([len(set(f) & set(e)) / 8 for f, e in zip(found, exact[:20], strict=True)])
    assert recall > 0.95


def test_without_flask_the_app_says_what_to_install(explorer, monkeypatch):
    monkeypatch.setitem(sys.modules, "flask", None)
    with pytest.raises(ImportError, match=r"pip install 'skphotoz\[explore\]'"):
        create_app(explorer)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, ValueError, "exactly one of embeddings and embedder"),
        ({"embeddings": np.zeros((N - 1, 4))}, ValueError, r"shape \(120, d\).*got shape"),
        ({"embeddings": np.zeros(N)}, ValueError, "one row of at least 2 numbers"),
        ({"embeddings": np.full((N, 3), np.nan)}, ValueError, "NaN or infinite values in 120"),
        ({"embeddings": np.zeros((N, 3)), "n_neighbors": 0}, ValueError, "n_neighbors"),
        ({"embeddings": np.zeros((N, 3)), "map_method": "tsne"}, ValueError, "map_method"),
        ({"embeddings": np.zeros((N, 3)), "index": "ivf"}, ValueError, "index"),
        ({"embeddings": "missing.npy"}, FileNotFoundError, "embeddings: no such file"),
    ],
)
def test_bad_explorer_arguments(files, kwargs, error, message):
    with pytest.raises(error, match=message):
        Explorer(files["archive"], cache_dir=None, progress=False, **kwargs)


# -- odd archives, models and cache files ---------------------------------------------------


def odd_archive(tmp_path, n=12, objid=None, nan_row=None):
    import h5py

    rng = np.random.default_rng(0)
    images = rng.gamma(2.0, 0.05, size=(n, 5, 16, 16)).astype(np.float32)
    if nan_row is not None:
        images[nan_row, 2, 3, 3] = np.nan
    path = tmp_path / "odd.h5"
    with h5py.File(path, "w") as f:
        f["images"] = images
        f["e_bv"] = np.zeros((n, 5), dtype=np.float32)
        if objid is not None:
            f["ObjID"] = np.asarray(objid, dtype=np.int64)
    return path, images


def test_sdss_objids_are_exact_and_absent_ones_are_not_shown(tmp_path):
    ids = [1237648720693755918 + i for i in range(10)] + [-1, -1]
    path, _ = odd_archive(tmp_path, objid=ids)
    explorer = Explorer(path, embeddings=np.eye(12, 4) + 0.1, cache_dir=None, progress=False)
    client = create_app(explorer).test_client()
    assert client.get("/api/objid/1237648720693755925").get_json() == {"row": 7}
    body = client.get("/api/galaxy/7").get_data(as_text=True)
    assert '"objid":"1237648720693755925"' in body  # a string: exact in JavaScript too
    assert "objid" not in client.get("/api/galaxy/11").get_json()["catalogue"]
    assert client.get("/api/objid/-1").status_code == 404


def test_small_archives_score_against_all_other_galaxies(tmp_path):
    path, _ = odd_archive(tmp_path, n=5)
    X = np.random.default_rng(2).normal(size=(5, 3))
    explorer = Explorer(path, embeddings=X, n_neighbors=8, cache_dir=None, progress=False)
    expected = SimilaritySearch(n_neighbors=4).fit(X).score_samples()
    np.testing.assert_allclose(explorer.scores_, expected, atol=1e-6)
    assert len(explorer.neighbours(0)) == 4
    (tmp_path / "one").mkdir()
    one, _ = odd_archive(tmp_path / "one", n=1)
    with pytest.raises(ValueError, match="holds 1 galaxy; exploring needs at least 2"):
        Explorer(one, embeddings=np.ones((1, 3)), cache_dir=None, progress=False)


def test_zero_embeddings_and_hdf5_embeddings(tmp_path, files):
    import h5py

    X = files["embeddings"].copy()
    X[7] = 0
    with pytest.raises(ValueError, match="1 row.s. of zeros, e.g. row 7: they have no direction"):
        Explorer(files["archive"], embeddings=X, cache_dir=None, progress=False)
    with h5py.File(tmp_path / "emb.h5", "w") as f:
        f["embeddings"] = files["embeddings"]
    explorer = Explorer(
        files["archive"], embeddings=tmp_path / "emb.h5", cache_dir=None, progress=False
    )
    np.testing.assert_array_equal(explorer.embeddings_, files["embeddings"])
    (tmp_path / "text.npy").write_text("not numbers")
    with pytest.raises(ValueError, match="neither a .npy array of numbers nor an HDF5") as e:
        Explorer(files["archive"], embeddings=tmp_path / "text.npy", cache_dir=None)
    assert "allow_pickle" not in str(e.value)


class NaNModel:
    """A model whose predictions are NaN for every third galaxy."""

    def predict(self, X):
        return np.where(np.arange(len(X)) % 3 == 0, np.nan, 0.1)


class WrongShapeModel:
    def predict(self, X):
        return np.zeros((len(X), 2))


def test_predictions_that_are_nan_are_null_in_json(files):
    explorer = Explorer(
        files["archive"], embeddings=files["embeddings"], model=NaNModel(), cache_dir=None,
        progress=False,
    )  # fmt: skip
    client = create_app(explorer).test_client()
    for url in ("/api/galaxy/0", "/api/anomalies?n=50", "/api/map"):
        text = client.get(url).get_data(as_text=True)
        assert "NaN" not in text
    assert client.get("/api/galaxy/0").get_json()["catalogue"]["z_phot"] is None
    with pytest.raises(TypeError, match=r"one redshift per galaxy, shape \(120,\); .*\(120, 2\)"):
        Explorer(
            files["archive"], embeddings=files["embeddings"], model=WrongShapeModel(),
            cache_dir=None, progress=False,
        )  # fmt: skip


def test_a_stamp_the_model_refuses_leaves_the_others(tmp_path, files):
    path, images = odd_archive(tmp_path, n=12, nan_row=4)
    model = PhotoZRegressor(n_epochs=1, batch_size=4, device="cpu", random_state=0)
    model.fit(np.nan_to_num(images), np.linspace(0.05, 0.3, 12))
    with pytest.warns(UserWarning, match="cannot predict 1 galaxy.ies., e.g. row 4"):
        explorer = Explorer(
            path, embeddings=np.eye(12, 5) + 0.1, model=model, cache_dir=None, progress=False
        )
    assert np.isnan(explorer.z_phot_[4]) and np.isfinite(np.delete(explorer.z_phot_, 4)).all()
    galaxy = create_app(explorer).test_client().get("/api/galaxy/4").get_json()
    assert galaxy["pdf"]["error"].startswith("the model cannot predict this galaxy")
    assert "density" in explorer.galaxy(5)["pdf"]


def test_empty_or_wrong_cache_files_are_recomputed(files, tmp_path):
    first = Explorer(
        files["archive"], embeddings=files["embeddings"], cache_dir=tmp_path, progress=False
    )
    maps, scores = list(tmp_path.glob("map-*.npy")), list(tmp_path.glob("scores-*.npy"))
    maps[0].write_bytes(b"")  # a crash after the rename, before the data reached the disk
    np.save(scores[0], np.zeros(3))  # a file of another shape
    again = Explorer(
        files["archive"], embeddings=files["embeddings"], cache_dir=tmp_path, progress=False
    )
    np.testing.assert_allclose(again.map_, first.map_)
    np.testing.assert_allclose(again.scores_, first.scores_)
    assert not list(tmp_path.glob("*.partial"))


def test_a_read_only_cache_is_read(files, tmp_path, monkeypatch):
    from pathlib import Path

    Explorer(files["archive"], embeddings=files["embeddings"], cache_dir=tmp_path, progress=False)

    def read_only(self, data):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(Path, "write_bytes", read_only)
    monkeypatch.setattr(Explorer, "_fit_map", lambda self: 1 / 0)  # must come from the cache
    with pytest.warns(UserWarning, match="the cache files already there are read"):
        explorer = Explorer(
            files["archive"], embeddings=files["embeddings"], cache_dir=tmp_path, progress=False
        )
    assert explorer.map_.shape == (N, 2)


def test_the_server_listens_where_asked_or_says_why_not(explorer):
    import urllib.request

    from skphotoz.explore import Server
    from skphotoz.explore._app import _url

    assert _url("::1", 8000) == "http://[::1]:8000/"
    with Server(explorer) as server:
        with urllib.request.urlopen(server.url + "api/info") as response:
            assert response.status == 200
        with pytest.raises(
            OSError, match=f"cannot listen on 127.0.0.1 port {server.port}: .*in use"
        ):
            Server(explorer, port=server.port)


# -- the command -----------------------------------------------------------------------------


def test_explore_check_answers_every_kind_of_request(files, tmp_path, capsys):
    folder = files["folder"]
    argv = [
        "explore", str(files["archive"]), "--embeddings", str(folder / "emb.npy"),
        "--model", str(folder / "photoz.skops"), "--deredden", "--cache-dir", str(tmp_path),
        "--check",
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "ready in" in out and "120 galaxies, PCA map, exact index" in out
    for name in ("info", "map", "galaxy (neighbours, PDF)", "stamp", "anomalies", "page"):
        assert f"  {name}" in out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f, t: ["explore", str(t / "none.h5"), "--embeddings", str(f / "emb.npy")],
         r"archive '.*none.h5' does not exist"),
        (lambda f, t: ["explore", str(f / "galaxies.h5"), "--embeddings", str(t / "short.npy")],
         r"shape \(120, d\) for .*got shape \(7, 3\)"),
        (lambda f, t: ["explore", str(f / "galaxies.h5"), "--embeddings", str(f / "emb.npy"),
                       "--model", str(t / "model.joblib")], "is a pickle"),
    ],
)  # fmt: skip
def test_explore_command_errors_are_one_line(files, tmp_path, capsys, change, message):
    import joblib

    np.save(tmp_path / "short.npy", np.zeros((7, 3), dtype=np.float32))
    joblib.dump(files["model"], tmp_path / "model.joblib")
    assert main([*change(files["folder"], tmp_path), "--check", "--no-cache"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("skphotoz explore: error:") and len(err.splitlines()) == 1
    assert __import__("re").search(message, err)


def test_explore_needs_one_source_of_embeddings(files, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["explore", str(files["archive"])])
    assert caught.value.code == 2
    assert "one of the arguments --embeddings --embedder is required" in capsys.readouterr().err
    for option, message in (
        (["--port", "70000"], "argument --port: expected an integer from 0 to 65535; got 70000"),
        (["-k", "501"], "argument -k/--n-neighbors: expected an integer from 1 to 500; got 501"),
    ):
        with pytest.raises(SystemExit) as caught:
            main(["explore", str(files["archive"]), "--embeddings", "e.npy", *option])
        assert caught.value.code == 2 and message in capsys.readouterr().err


def test_explore_refuses_a_model_fitted_on_other_stamps(files, tmp_path, capsys):
    path, _ = odd_archive(tmp_path, n=12)  # 16-px stamps; the model was fitted on 32-px ones
    np.save(tmp_path / "e.npy", np.eye(12, 4) + 0.1)
    argv = [
        "explore", str(path), "--embeddings", str(tmp_path / "e.npy"), "--model",
        str(files["folder"] / "photoz.skops"), "--check", "--no-cache",
    ]  # fmt: skip
    assert main(argv) == 1
    assert "was fitted on stamps of shape (5, 32, 32)" in capsys.readouterr().err
