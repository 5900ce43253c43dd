"""Unusable checkpoint files (junk, empty, truncated, another program's torch file, code)
give one clear error naming the path and what to do, through the estimators as users fit
them."""

import os
import pickle

import numpy as np
import pytest
import torch

from skphotoz import MoCoEmbedder, PhotoZRegressor
from skphotoz.nn.callbacks import load_checkpoint

MATCH = (
    r"checkpoint '.*{name}' is not a readable skphotoz checkpoint: .*{why}"
    r".*Delete the file, or choose another checkpoint_dir"
)


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(24, 4)).astype(np.float32), rng.uniform(0.05, 0.3, 24)


def _regressor(tmp_path):
    return PhotoZRegressor(
        backbone="mlp", n_epochs=1, batch_size=8, checkpoint_dir=tmp_path, random_state=0
    )


def _embedder(tmp_path):
    return MoCoEmbedder(
        backbone="mlp", n_epochs=1, batch_size=8, checkpoint_dir=tmp_path, random_state=0
    )


class _Code:
    def __reduce__(self):
        return (os.getcwd, ())


BAD_FILES = {
    "junk": (lambda path: path.write_bytes(b"hello, not a checkpoint"), "cannot be read"),
    "empty": (lambda path: path.write_bytes(b""), "the file is empty"),
    "foreign": (
        lambda path: torch.save({"weights": torch.zeros(3)}, path),
        r"no training state or fingerprint; found \['weights'\]",
    ),
    "list": (lambda path: torch.save([1, 2], path), "no training state .*found list"),
    "code": (
        lambda path: path.write_bytes(pickle.dumps(_Code())),
        r"holds code .*refuses to load \(torch.load\(weights_only=True\)\)",
    ),
    "bad fingerprint": (
        lambda path: torch.save({"trainer": {}, "fingerprint": [1]}, path),
        "its fingerprint is not a mapping",
    ),
    "no trainer keys": (
        lambda path: torch.save({"trainer": {"x": 1}, "fingerprint": {}}, path),
        "its training state lacks task, optimizer",
    ),
}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("kind", sorted(BAD_FILES))
@pytest.mark.parametrize("make", [_regressor, _embedder])
def test_unusable_checkpoint_files_get_a_clear_error(tmp_path, kind, make):
    X, z = _data()
    name = "photoz.pt" if make is _regressor else "moco.pt"
    write, why = BAD_FILES[kind]
    write(tmp_path / name)
    with pytest.raises(ValueError, match=MATCH.format(name=name, why=why)):
        make(tmp_path).fit(X, z)
    # Deleting it, as the message says, lets the fit run.
    (tmp_path / name).unlink()
    make(tmp_path).fit(X, z)
    assert load_checkpoint(tmp_path / name)["finished"]


def test_truncated_checkpoint_gets_a_clear_error(tmp_path):
    X, z = _data()
    _regressor(tmp_path).fit(X, z)
    path = tmp_path / "photoz.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=MATCH.format(name="photoz.pt", why="cannot be read")):
        _regressor(tmp_path).fit(X, z)


def test_checkpoint_whose_weights_do_not_fit_gets_a_clear_error(tmp_path):
    # Same fingerprint, but the saved weights have other shapes (an edited or corrupted file).
    X, z = _data()
    _regressor(tmp_path).fit(X, z)
    path = tmp_path / "photoz.pt"
    state = torch.load(path, weights_only=True)
    state["finished"] = state["trainer"]["finished"] = False
    state["trainer"]["task"] = {name: torch.zeros(3) for name in state["trainer"]["task"]}
    torch.save(state, path)
    match = MATCH.format(name="photoz.pt", why="its saved training state does not fit this model")
    with pytest.raises(ValueError, match=match):
        _regressor(tmp_path).fit(X, z)


def test_checkpoints_still_load_weights_only(tmp_path, monkeypatch):
    X, z = _data()
    _regressor(tmp_path).fit(X, z)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_checkpoint(tmp_path / "photoz.pt")
    assert calls == [True]


def test_callbacks_check_their_arguments(tmp_path):
    from skphotoz.nn.callbacks import Checkpoint, EarlyStopping, ProgressTable

    with pytest.raises(ValueError, match=r"'patience' parameter of EarlyStopping .* Got 0"):
        EarlyStopping(lambda task: {}, patience=0)
    with pytest.raises(ValueError, match=r"'validate' parameter of EarlyStopping"):
        EarlyStopping("validation")
    with pytest.raises(ValueError, match=r"'verbose' parameter of EarlyStopping .* 'False'"):
        EarlyStopping(lambda task: {}, verbose="False")
    with pytest.raises(ValueError, match=r"'path' parameter of Checkpoint .* Got None"):
        Checkpoint(None)
    with pytest.raises(ValueError, match=r"'extra' parameter of Checkpoint"):
        Checkpoint(tmp_path / "a.pt", extra=[1])
    with pytest.raises(ValueError, match=r"'description' parameter of ProgressTable"):
        ProgressTable(3)
