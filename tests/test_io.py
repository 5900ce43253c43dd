"""Model files that cannot run code: skops by default, pickles only when trusted.

The hostile files here carry code that creates a marker file when it runs; each test checks
that the marker does not appear when the file is refused, and (so that the test can fail) that
it does appear when the same file is loaded as trusted.
"""

import io
import os
import pathlib
import zipfile
import zlib

import joblib
import numpy as np
import pytest
import skops.io
import torch
from sklearn.frozen import FrozenEstimator

from skphotoz import MoCoEmbedder, PhotoZRegressor
from skphotoz import io as skio
from skphotoz.baselines import photometry_baseline
from skphotoz.cli import main
from skphotoz.exceptions import UntrustedFileError
from skphotoz.nn.portable import CHECKSUM_KEY, MODULES_KEY, pack_modules, unpack_modules
from skphotoz.search import SimilaritySearch
from tests.helpers import TINY, make_features, make_images, write_h5_archive


class Touch:
    """Pickles to a call that creates ``path``: the code a hostile model file carries."""

    def __init__(self, path):
        self.path = pathlib.Path(path)

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


class Foreign:
    """A type of neither skphotoz nor scikit-learn."""

    def __init__(self):
        self.value = 1


@pytest.fixture(scope="module")
def features():
    return make_features(n=24, d=4)


@pytest.fixture(scope="module")
def embedder(features):
    X, _ = features
    return MoCoEmbedder(queue_size=16, **TINY).fit(X)


@pytest.fixture(scope="module")
def regressor(features, embedder):
    X, y = features
    return PhotoZRegressor(encoder=embedder, **TINY).fit(X, y)


def _same(a, b, X):
    for method in ("predict", "transform"):
        if hasattr(a, method):
            np.testing.assert_array_equal(getattr(b, method)(X), getattr(a, method)(X))
            return
    raise AssertionError(f"{a!r} neither predicts nor transforms")


# -------------------------------------------------------------------------- round trips
def test_skops_round_trip_of_each_model(tmp_path, features, embedder, regressor):
    X, y = features
    models = {
        "embedder": embedder,
        "fine-tuned": regressor,
        "gp": photometry_baseline("gp", n_restarts=0).fit(make_images(12, 8), y[:12]),
    }
    for name, model in models.items():
        path = tmp_path / f"{name}.skops"
        skio.dump(model, path)
        assert not os.path.exists(f"{path}.partial")
        assert skio.get_untrusted_types(path) == []
        loaded = skio.load(path)
        assert type(loaded) is type(model)
        _same(model, loaded, make_images(12, 8) if name == "gp" else X)


def test_the_networks_are_stored_as_numbers_that_only_name_network_layers(embedder, tmp_path):
    path = tmp_path / "e.skops"
    skio.dump(embedder, path)
    with zipfile.ZipFile(path) as archive:
        schema = archive.read("schema.json").decode()
    # No torch type for skops to build: a uint8 array instead.
    assert '"__module__": "torch' not in schema
    state = embedder.__getstate__()
    assert state[MODULES_KEY].dtype == np.uint8 and "moco_" not in state
    # One torch.save of all modules: the encoder stays the MoCo backbone after loading.
    loaded = skio.load(path)
    assert loaded.encoder_ is loaded.moco_.backbone


def test_a_fine_tuned_model_stores_its_encoder_once(tmp_path, regressor, embedder):
    skio.dump(embedder, tmp_path / "e.skops")
    skio.dump(regressor, tmp_path / "r.skops")
    embedder_size = os.path.getsize(tmp_path / "e.skops")
    own_networks = len(regressor.__getstate__()[MODULES_KEY])
    # Twice the embedder (encoder and embedder_) would be another embedder_size.
    assert os.path.getsize(tmp_path / "r.skops") < embedder_size + own_networks + 100_000
    loaded = skio.load(tmp_path / "r.skops")
    assert loaded.embedder_ is loaded.encoder


def test_similarity_search_round_trips_in_every_dtype(tmp_path, features, embedder):
    X, _ = features
    for dtype in ("float32", "bfloat16"):
        search = SimilaritySearch(n_neighbors=3, dtype=dtype, device=torch.device("cpu"))
        search.fit(embedder.transform(X))
        skio.dump(search, tmp_path / "s.skops")
        loaded = skio.load(tmp_path / "s.skops")
        assert loaded.index_.dtype == search.index_.dtype
        Z = embedder.transform(X[:5])
        for a, b in zip(search.kneighbors(Z), loaded.kneighbors(Z), strict=True):
            np.testing.assert_array_equal(a, b)
    with_embedder = SimilaritySearch(embedder=embedder, n_neighbors=2, device="cpu").fit(X)
    skio.dump(with_embedder, tmp_path / "se.skops")
    loaded = skio.load(tmp_path / "se.skops")
    np.testing.assert_array_equal(loaded.kneighbors(X[:3])[1], with_embedder.kneighbors(X[:3])[1])


def test_joblib_files_still_load_when_trusted(tmp_path, features, regressor):
    X, _ = features
    path = tmp_path / "r.joblib"
    joblib.dump(regressor, path)
    assert skio.is_pickle(path)
    _same(regressor, skio.load(path, trusted=True), X)
    _same(regressor, joblib.load(path), X)  # plain joblib too


def test_a_model_pickled_with_its_modules_in_place_still_loads(tmp_path, features, embedder):
    # What joblib wrote before the networks were packed: the modules in the state itself.
    X, _ = features
    state = dict(embedder.__dict__)
    restored = MoCoEmbedder.__new__(MoCoEmbedder)
    restored.__setstate__(state)
    _same(embedder, restored, X)


# ----------------------------------------------------------------------- hostile files
def test_a_pickle_that_runs_code_is_refused_everywhere(tmp_path, features):
    marker = tmp_path / "ran"
    path = tmp_path / "model.joblib"
    joblib.dump({"model": Touch(marker)}, path)
    archive = str(write_h5_archive(tmp_path, make_images(n=6, size=8)))
    out = str(tmp_path / "out.csv")

    with pytest.raises(UntrustedFileError, match="pickle.*trusted=True"):
        skio.load(path)
    X, y = features
    with pytest.raises(UntrustedFileError, match="pickle"):
        PhotoZRegressor(encoder=str(path), **TINY).fit(X, y)
    commands = [
        ["predict", str(path), archive, "--output", out],
        ["embed", str(path), archive, "--output", str(tmp_path / "e.npy")],
        ["search", archive, "0", "--model", str(path)],
        ["fit-photoz", archive, "--encoder", str(path), "--output", str(tmp_path / "m.skops")],
    ]
    for argv in commands:
        assert main(argv) == 1, argv
    assert not marker.exists()
    # The same file does run its code when trusted: the refusals above are what stopped it.
    skio.load(path, trusted=True)
    assert marker.exists()


def test_cli_refusal_says_why_and_how(tmp_path, capsys):
    path = tmp_path / "model.joblib"
    joblib.dump({"x": 1}, path)
    archive = str(write_h5_archive(tmp_path, make_images(n=6, size=8)))
    assert main(["predict", str(path), archive, "--output", str(tmp_path / "p.csv")]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "MODEL" in err and "pickle" in err and "runs any code" in err and "--trust" in err
    # With --trust it loads, then is refused for what it is (a dict, not a model).
    argv = ["predict", str(path), archive, "--output", str(tmp_path / "p.csv"), "--trust"]
    assert main(argv) == 1
    assert "holds a dict" in capsys.readouterr().err


def test_a_skops_file_naming_foreign_types_is_refused_by_name(tmp_path):
    path = tmp_path / "foreign.skops"
    skops.io.dump({"x": Foreign()}, path)
    name = f"{Foreign.__module__}.Foreign"
    assert skio.get_untrusted_types(path) == [name]
    with pytest.raises(UntrustedFileError, match=name.replace(".", r"\.")) as error:
        skio.load(path)
    assert error.value.types == [name]
    assert skio.load(path, trusted=[name])["x"].value == 1
    assert skio.load(path, trusted=True)["x"].value == 1
    archive = str(write_h5_archive(tmp_path, make_images(n=6, size=8)))
    assert main(["embed", str(path), archive, "--output", str(tmp_path / "e.npy")]) == 1


def test_networks_that_name_code_are_refused_before_it_runs(tmp_path, embedder, monkeypatch):
    marker = tmp_path / "ran"
    buffer = io.BytesIO()
    torch.save({"moco_": Touch(marker)}, buffer)
    state = embedder.__getstate__()
    state[MODULES_KEY] = np.frombuffer(buffer.getvalue(), dtype=np.uint8).copy()
    state[CHECKSUM_KEY] = zlib.crc32(state[MODULES_KEY])  # consistent: only the content is hostile
    monkeypatch.setattr(MoCoEmbedder, "__getstate__", lambda self: state)
    skio.dump(embedder, tmp_path / "evil.skops")
    joblib.dump(embedder, tmp_path / "evil.joblib")
    monkeypatch.undo()
    for path, trusted in ((tmp_path / "evil.skops", False), (tmp_path / "evil.skops", True)):
        with pytest.raises(UntrustedFileError, match=r"pathlib.*not network layers") as error:
            skio.load(path, trusted=trusted)
        assert any("pathlib" in name for name in error.value.types)
    # Even a trusted pickle reads its networks with torch.load(weights_only=True).
    with pytest.raises(UntrustedFileError, match="pathlib"):
        skio.load(tmp_path / "evil.joblib", trusted=True)
    assert not marker.exists()


def test_damaged_files_get_clear_errors(tmp_path, embedder):
    path = tmp_path / "e.skops"
    skio.dump(embedder, path)
    data = path.read_bytes()
    (tmp_path / "short.skops").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="could not be read as a skops model file"):
        skio.load(tmp_path / "short.skops")
    (tmp_path / "text.skops").write_text("hello")
    with pytest.raises(ValueError, match="not a model file"):
        skio.load(tmp_path / "text.skops")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        skio.load(tmp_path / "missing.skops")
    with pytest.raises(TypeError, match="trusted must be"):
        skio.load(path, trusted="yes")
    # Bytes of the stored networks overwritten.
    state = pack_modules(dict(embedder.__dict__))
    blob = state[MODULES_KEY].copy()
    blob[len(blob) // 2 : len(blob) // 2 + 4096] = 7
    with pytest.raises(ValueError, match="networks of this MoCoEmbedder are damaged: their CRC"):
        unpack_modules({**state, MODULES_KEY: blob}, "MoCoEmbedder")
    with pytest.raises(ValueError, match="expected a 1-D uint8 array"):
        unpack_modules({MODULES_KEY: blob.astype(np.float32)}, "MoCoEmbedder")


def test_commands_write_skops_unless_the_name_says_joblib(tmp_path, capsys):
    archive = tmp_path / "sim.h5"
    assert main(["simulate", str(archive), "--n", "16", "--stamp-size", "16"]) == 0
    common = ["--epochs", "1", "--batch-size", "8", "--device", "cpu", "--crop-size", "8"]
    for name in ("e.skops", "e.joblib"):
        assert main(["pretrain", str(archive), "--output", str(tmp_path / name), *common]) == 0
    assert not skio.is_pickle(tmp_path / "e.skops")
    assert skio.is_pickle(tmp_path / "e.joblib")
    assert isinstance(skio.load(tmp_path / "e.skops"), MoCoEmbedder)
    embed = ["embed", str(tmp_path / "e.joblib"), str(archive), "--output"]
    assert main([*embed, str(tmp_path / "a.npy")]) == 1
    assert main([*embed, str(tmp_path / "a.npy"), "--trust"]) == 0
    assert (
        main(
            ["embed", str(tmp_path / "e.skops"), str(archive), "--output", str(tmp_path / "b.npy")]
        )
        == 0
    )
    np.testing.assert_allclose(np.load(tmp_path / "a.npy").shape, np.load(tmp_path / "b.npy").shape)
    # fit-photoz takes the trusted pickle as its encoder, and saves a skops file.
    argv = ["fit-photoz", str(archive), "--encoder", str(tmp_path / "e.joblib"), "--trust"]
    assert (
        main([*argv, "--output", str(tmp_path / "m.skops"), *common[:-2], "--min-steps", "1"]) == 0
    )
    model = skio.load(tmp_path / "m.skops")
    assert isinstance(model.encoder, MoCoEmbedder) and model.embedder_ is model.encoder


def test_frozen_encoder_round_trip(tmp_path, features, embedder):
    X, y = features
    model = PhotoZRegressor(encoder=FrozenEstimator(embedder), **TINY).fit(X, y)
    skio.dump(model, tmp_path / "m.skops")
    loaded = skio.load(tmp_path / "m.skops")
    assert loaded.embedder_ is loaded.encoder.estimator
    _same(model, loaded, X)


def test_trust_follows_what_a_name_is_not_its_prefix(tmp_path):
    """A module of scikit-learn also holds what it imported (``sklearn.datasets._rcv1.remove``
    is ``os.remove``), and a stored function is called later (``FunctionTransformer``): such
    names are refused, as is any function, even one scikit-learn defines."""
    from sklearn.datasets import dump_svmlight_file
    from sklearn.preprocessing import FunctionTransformer

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    skops.io.dump(FunctionTransformer(func=os.remove), tmp_path / "ft.skops")
    with zipfile.ZipFile(tmp_path / "ft.skops") as source:
        files = {name: source.read(name) for name in source.namelist()}
    schema = files.pop("schema.json").decode()
    with zipfile.ZipFile(tmp_path / "evil.skops", "w") as out:
        out.writestr("schema.json", schema.replace('"posix"', '"sklearn.datasets._rcv1"'))
        for name, data in files.items():
            out.writestr(name, data)
    assert skio.get_untrusted_types(tmp_path / "evil.skops") == ["sklearn.datasets._rcv1.remove"]
    with pytest.raises(UntrustedFileError, match=r"sklearn\.datasets\._rcv1\.remove"):
        skio.load(tmp_path / "evil.skops")
    skops.io.dump(FunctionTransformer(func=dump_svmlight_file), tmp_path / "writer.skops")
    with pytest.raises(UntrustedFileError, match="dump_svmlight_file"):
        skio.load(tmp_path / "writer.skops")
    assert victim.read_text() == "keep me"
    for bad in (5, None):
        with pytest.raises(TypeError, match="file must be a path"):
            skio.get_untrusted_types(bad)


class _HugeLayer:
    """Pickles to a call of an allowed layer class with arguments of the file's choosing."""

    def __reduce__(self):
        return (torch.nn.Linear, (8000, 8000))


def test_stored_networks_that_call_a_layer_class_are_refused(embedder):
    buffer = io.BytesIO()
    torch.save({"moco_": _HugeLayer()}, buffer)
    blob = np.frombuffer(buffer.getvalue(), dtype=np.uint8).copy()
    state = {MODULES_KEY: blob, CHECKSUM_KEY: zlib.crc32(blob)}
    with pytest.raises(UntrustedFileError, match=r"call 'torch\.nn\.modules\.linear\.Linear'"):
        unpack_modules(state, "MoCoEmbedder")  # was: built a 256 MB layer (any size allowed)
    # A genuine model restores its layers without a call.
    restored = unpack_modules(pack_modules(dict(embedder.__dict__)), "MoCoEmbedder")
    assert isinstance(restored["moco_"], torch.nn.Module)


def test_importing_a_name_never_runs_a_command(tmp_path, monkeypatch):
    """A name in ``skphotoz.__main__`` would run the command line if its module were imported
    to look the name up (and exit the caller)."""
    import sys

    skops.io.dump({"x": Foreign()}, tmp_path / "f.skops")
    with zipfile.ZipFile(tmp_path / "f.skops") as source:
        files = {name: source.read(name) for name in source.namelist()}
    schema = files.pop("schema.json").decode().replace(Foreign.__module__, "skphotoz.__main__")
    with zipfile.ZipFile(tmp_path / "main.skops", "w") as out:
        out.writestr("schema.json", schema)
        for name, data in files.items():
            out.writestr(name, data)
    marker = tmp_path / "SIM.h5"
    monkeypatch.setattr(sys, "argv", ["x", "simulate", str(marker), "--n", "2"])
    with pytest.raises(UntrustedFileError, match=r"skphotoz\.__main__\.Foreign"):
        skio.load(tmp_path / "main.skops")
    assert skio.get_untrusted_types(tmp_path / "main.skops") == ["skphotoz.__main__.Foreign"]
    assert not marker.exists()
