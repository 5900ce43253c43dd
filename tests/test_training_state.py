"""Training state you can trust: checkpoints, resuming, interruption, warm starts, callbacks."""

import os
import pathlib
import re
import stat
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from sklearn.frozen import FrozenEstimator

import skphotoz
from skphotoz import MoCoEmbedder, PhotoZRegressor
from skphotoz.metrics import sigma_mad
from skphotoz.nn import Callback
from skphotoz.nn.callbacks import CheckpointMismatchError


def _features(n=192, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    z = 0.12 + 0.05 * np.tanh(X[:, 0]) + 0.02 * X[:, 1] * (X[:, 2] > 0)
    return X, z


def _regressor(**kw):
    params = dict(n_epochs=6, batch_size=32, random_state=0, device="cpu", lr=0.1)
    return PhotoZRegressor(**{**params, **kw})


def _embedder(**kw):
    params = dict(n_epochs=3, batch_size=32, queue_size=64, random_state=0, device="cpu")
    return MoCoEmbedder(**{**params, **kw})


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class _InterruptAt(Callback):
    """Raises KeyboardInterrupt (as Ctrl-C does) at a given batch of a given epoch."""

    def __init__(self, epoch, batch):
        self.at = (epoch, batch)

    def on_epoch_begin(self, trainer, epoch, n_batches):
        self.epoch, self.batch = epoch, 0

    def on_batch_end(self, trainer, loss, batch_size):
        self.batch += 1
        if (self.epoch, self.batch) == self.at:
            raise KeyboardInterrupt


class _Snapshots(Callback):
    """Keeps a copy of the weights at the end of every epoch."""

    def on_train_begin(self, trainer):
        self.weights = []

    def on_epoch_end(self, trainer, entry):
        self.weights.append({k: v.clone() for k, v in trainer.task.state_dict().items()})


# ------------------------------------------------------------- the three reported uses
def test_warm_start_with_a_checkpoint_trains_further(tmp_path):
    X, _ = _features()
    emb = _embedder(n_epochs=2, warm_start=True, checkpoint_dir=tmp_path).fit(X)
    before = {k: v.clone() for k, v in emb.moco_.state_dict().items()}
    emb.fit(X)
    assert not _same_weights_dict(before, emb.moco_.state_dict())
    assert [h["epoch"] for h in emb.history_] == [0, 1, 2, 3]
    # The second fit trained from the first fit's weights, as a fit without checkpoints does.
    plain = _embedder(n_epochs=2, warm_start=True).fit(X).fit(X)
    assert _same_weights(plain.moco_, emb.moco_)


def _same_weights_dict(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping_refit_with_a_checkpoint_is_as_good_as_the_first(tmp_path):
    X, z = _features(400)
    model = _regressor(
        n_epochs=12, early_stopping=True, n_iter_no_change=2, checkpoint_dir=tmp_path
    )
    first = model.fit(X[:300], z[:300]).predict(X[300:])
    second = model.fit(X[:300], z[:300]).predict(X[300:])
    np.testing.assert_array_equal(second, first)
    assert sigma_mad(z[300:], first) < 0.5 * sigma_mad(z[300:], np.full(100, np.median(z)))
    # Another data set in the same folder: trained on it, as without a checkpoint.
    other = _regressor(n_epochs=12, early_stopping=True, n_iter_no_change=2)
    expected = other.fit(X[100:], z[100:]).predict(X[:100])
    got = model.fit(X[100:], z[100:]).predict(X[:100])
    np.testing.assert_array_equal(got, expected)


def test_pretrain_command_never_returns_the_model_of_another_archive(tmp_path):
    import joblib

    from skphotoz.cli import main
    from skphotoz.datasets import write_sdss_galaxies

    for name, seed in (("a.h5", 0), ("b.h5", 1)):
        write_sdss_galaxies(tmp_path / name, 24, random_state=seed, stamp_size=16)
    common = ["--epochs", "1", "--batch-size", "8", "--device", "cpu", "--crop-size", "8"]
    ckpt = str(tmp_path / "ckpt")
    out = {name: str(tmp_path / f"{name}.joblib") for name in ("a", "b", "b-alone")}
    assert (
        main(
            [
                "pretrain",
                str(tmp_path / "a.h5"),
                "--output",
                out["a"],
                "--checkpoint-dir",
                ckpt,
                *common,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "pretrain",
                str(tmp_path / "b.h5"),
                "--output",
                out["b"],
                "--checkpoint-dir",
                ckpt,
                *common,
            ]
        )
        == 0
    )
    assert main(["pretrain", str(tmp_path / "b.h5"), "--output", out["b-alone"], *common]) == 0
    a, b, alone = (joblib.load(out[k]) for k in ("a", "b", "b-alone"))
    assert _same_weights(b.moco_, alone.moco_)
    assert not _same_weights(b.moco_, a.moco_)


# ---------------------------------------------------------------------- checkpoints
def test_an_unfinished_checkpoint_of_another_run_is_refused_by_name(tmp_path):
    X, z = _features()
    with pytest.warns(UserWarning, match="training interrupted"):
        _regressor(checkpoint_dir=tmp_path, callbacks=[_InterruptAt(2, 1)]).fit(X, z)
    with pytest.raises(CheckpointMismatchError, match=r"unfinished run of another fit.*data"):
        _regressor(checkpoint_dir=tmp_path).fit(X[:150], z[:150])
    with pytest.raises(
        CheckpointMismatchError, match=r"parameter lr \(0\.1 in the checkpoint, 0\.2"
    ):
        _regressor(checkpoint_dir=tmp_path, lr=0.2).fit(X, z)
    with pytest.raises(CheckpointMismatchError, match="random_state=None draws a new seed"):
        _regressor(checkpoint_dir=tmp_path, random_state=None).fit(X, z)
    # The checkpoint is still that run's: it resumes and ends as an uninterrupted run.
    resumed = _regressor(checkpoint_dir=tmp_path).fit(X, z)
    assert _same_weights(resumed.model_, _regressor().fit(X, z).model_)


def test_junk_and_truncated_checkpoints_get_a_clear_error(tmp_path):
    X, z = _features()
    path = tmp_path / "photoz.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="is not a readable skphotoz checkpoint"):
        _regressor(checkpoint_dir=tmp_path).fit(X, z)
    path.unlink()
    _regressor(n_epochs=1, checkpoint_dir=tmp_path).fit(X, z)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="is not a readable skphotoz checkpoint"):
        _regressor(n_epochs=1, checkpoint_dir=tmp_path).fit(X, z)


def test_checkpoints_load_weights_only_and_have_ordinary_permissions(tmp_path):
    X, z = _features()
    _regressor(n_epochs=2, checkpoint_dir=tmp_path).fit(X, z)
    path = tmp_path / "photoz.pt"
    saved = torch.load(path, weights_only=True)
    assert saved["finished"] is True and saved["trainer"]["epoch"] == 1
    assert "parameter lr" in saved["fingerprint"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photoz.pt"]  # no partial file left


def test_no_unsafe_torch_load_in_the_package():
    root = pathlib.Path(skphotoz.__file__).parent
    loads = []
    for source in root.rglob("*.py"):
        for call in re.findall(r"torch\.load\([^)]*\)", source.read_text()):
            loads.append((source.name, call))
    assert loads, "the package loads checkpoints somewhere"
    for name, call in loads:
        assert "weights_only=True" in call, (name, call)


_KILL_SCRIPT = textwrap.dedent(
    """
    import io, os, signal, sys
    import numpy as np, torch
    torch.set_num_threads(1)
    from sklearn.frozen import FrozenEstimator
    from skphotoz import MoCoEmbedder, PhotoZRegressor
    from skphotoz.nn import Callback

    out, ckpt, kill = sys.argv[1], sys.argv[2], sys.argv[3]

    class Kill(Callback):
        def __init__(self, epoch, batch):
            self.at = (epoch, batch)
        def on_epoch_begin(self, trainer, epoch, n_batches):
            self.epoch, self.batch = epoch, 0
        def on_batch_end(self, trainer, loss, batch_size):
            self.batch += 1
            if (self.epoch, self.batch) == self.at:
                os.kill(os.getpid(), signal.SIGKILL)

    if kill.startswith("save:"):  # killed in the middle of the n-th checkpoint write
        n_th, original, calls = int(kill[5:]), torch.save, []
        def torn_save(obj, f, *args, **kwargs):
            calls.append(1)
            if len(calls) == n_th:
                buffer = io.BytesIO()
                original(obj, buffer, *args, **kwargs)
                f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return original(obj, f, *args, **kwargs)
        torch.save = torn_save

    def callbacks(who):
        if kill.startswith(who + ":"):
            return [Kill(*map(int, kill.split(":")[1:]))]
        return None

    rng = np.random.default_rng(0)
    X = rng.normal(size=(160, 5)).astype(np.float32)
    z = 0.12 + 0.05 * np.tanh(X[:, 0])
    ckpt = None if ckpt == "-" else ckpt
    emb = MoCoEmbedder(
        n_epochs=3, batch_size=32, queue_size=64, random_state=0, device="cpu",
        checkpoint_dir=ckpt and os.path.join(ckpt, "moco"), callbacks=callbacks("moco"),
    ).fit(X)
    model = PhotoZRegressor(
        FrozenEstimator(emb), n_epochs=5, batch_size=32, random_state=0, device="cpu",
        early_stopping=True, n_iter_no_change=2, checkpoint_dir=ckpt,
        callbacks=callbacks("photoz"),
    ).fit(X, z)
    torch.save({"moco": emb.moco_.state_dict(), "photoz": model.model_.state_dict(),
                "history": [h["loss"] for h in model.history_]}, out)
    """
)


def _run_script(tmp_path, *args, killed=False):
    script = tmp_path / "fit.py"
    script.write_text(_KILL_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True)
    if killed:
        assert done.returncode == -9, done.stderr.decode()[-2000:]
    else:
        assert done.returncode == 0, done.stderr.decode()[-2000:]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    _run_script(tmp_path, str(tmp_path / "out.pt"), "-", "none")
    return torch.load(tmp_path / "out.pt", weights_only=True)


@pytest.mark.parametrize(
    "kill",
    [
        "moco:1:2",  # SIGKILL in the middle of the second pretraining epoch
        "photoz:2:3",  # SIGKILL in the third fine-tuning epoch (early stopping under way)
        "save:3",  # SIGKILL while the third checkpoint is being written
    ],
)
def test_a_killed_fit_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path, uninterrupted, kill):
    ckpt = tmp_path / "ckpt"
    _run_script(tmp_path, str(tmp_path / "out.pt"), str(ckpt), kill, killed=True)
    assert not (tmp_path / "out.pt").exists()
    _run_script(tmp_path, str(tmp_path / "out.pt"), str(ckpt), "none")
    resumed = torch.load(tmp_path / "out.pt", weights_only=True)
    for part in ("moco", "photoz"):
        assert _same_weights_dict(resumed[part], uninterrupted[part]), part
    assert resumed["history"] == uninterrupted["history"]


# --------------------------------------------------------------------- interruption
def test_ctrl_c_leaves_the_model_at_its_last_complete_epoch_and_says_so(tmp_path):
    X, z = _features()
    snapshots = _Snapshots()
    model = _regressor(callbacks=[snapshots, _InterruptAt(3, 2)], checkpoint_dir=tmp_path)
    with pytest.warns(UserWarning, match=r"interrupted; the model keeps .* epoch \(3 of 6\)"):
        model.fit(X, z)
    assert len(model.history_) == 3
    kept = model.callbacks_[0].weights[-1]
    assert _same_weights_dict(model.model_.state_dict(), kept)
    assert np.isfinite(model.predict(X[:5])).all()
    # The checkpoint holds epoch 3, unfinished: fitting again completes the same run.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resumed = _regressor(checkpoint_dir=tmp_path).fit(X, z)
    assert _same_weights(resumed.model_, _regressor().fit(X, z).model_)


def test_ctrl_c_in_the_first_epoch_propagates():
    X, z = _features()
    with pytest.raises(KeyboardInterrupt):
        _regressor(callbacks=[_InterruptAt(0, 1)]).fit(X, z)


# ------------------------------------------------------------------------ callbacks
def test_user_callbacks_see_every_epoch_and_are_copied():
    X, z = _features()

    class Losses(Callback):
        def on_train_begin(self, trainer):
            self.losses = []

        def on_epoch_end(self, trainer, entry):
            self.losses.append(entry["loss"])
            if len(self.losses) == 4:
                trainer.stop = True

    given = Losses()
    model = _regressor(callbacks=[given]).fit(X, z)
    assert not hasattr(given, "losses")  # the parameter is not modified
    assert model.callbacks_[0].losses == [h["loss"] for h in model.history_]
    assert len(model.history_) == 4


def test_verbose_prints_an_epoch_table_with_validation_scores(capsys):
    X, z = _features()
    _regressor(n_epochs=8, early_stopping=True, n_iter_no_change=2, verbose=True).fit(X, z)
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "val σ_MAD" in line)
    assert "loss" in header and "val loss" in header and "img/s" in header
    rows = re.findall(r"photo-z:\s+(\d+)/8\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", out)
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1)) and len(rows) >= 3
    kept = re.search(r"kept epoch (\d+) \(validation loss ([\d.]+)\)", out)
    assert kept is not None
    val_losses = [float(r[2]) for r in rows]
    assert int(kept.group(1)) == int(np.argmin(val_losses)) + 1


def test_early_stopping_restores_the_best_epoch():
    X, z = _features()
    snapshots = _Snapshots()
    model = _regressor(
        n_epochs=30, lr=0.5, early_stopping=True, n_iter_no_change=2, callbacks=[snapshots]
    ).fit(X, z)
    losses = [h["validation_loss"] for h in model.history_]
    assert model.best_epoch_ == int(np.argmin(losses))
    best = model.callbacks_[0].weights[model.best_epoch_]
    assert _same_weights_dict(model.model_.state_dict(), best)
    assert all("validation_sigma_mad" in h for h in model.history_)


# ---------------------------------------------------------------- estimator features
def test_n_epochs_auto_is_set_by_optimizer_steps(monkeypatch):
    import skphotoz.regressor as regressor_module

    # The defaults: 1,000 steps, at least 30 epochs.
    assert PhotoZRegressor()._resolve_n_epochs(667, 128) == 200  # 5 steps per epoch
    assert PhotoZRegressor()._resolve_n_epochs(100, 128) == 1000  # one batch of 100
    assert PhotoZRegressor()._resolve_n_epochs(100_000, 128) == 30  # 781 steps per epoch
    assert PhotoZRegressor(n_epochs=7)._resolve_n_epochs(667, 128) == 7
    assert PhotoZRegressor(min_steps=3000)._resolve_n_epochs(667, 128) == 600
    # And fit trains for that many (with a smaller step target, to keep the test short).
    monkeypatch.setattr(regressor_module, "_AUTO_MIN_EPOCHS", 5)
    X, z = _features(64)
    model = _regressor(n_epochs="auto", min_steps=40).fit(X, z)
    assert model.n_epochs_ == 20 and len(model.history_) == 20  # 2 steps per epoch


def test_freeze_backbone_trains_the_head_only():
    X, z = _features()
    emb = _embedder().fit(X)
    model = _regressor(encoder=FrozenEstimator(emb), freeze_backbone=True).fit(X, z)
    assert _same_weights(model.model_.encoder, emb.encoder_)
    head = _regressor(encoder=FrozenEstimator(emb)).fit(X, z)
    assert not _same_weights(head.model_.encoder, emb.encoder_)
    assert len(model.history_[0]["lrs"]) == 1  # one parameter group: the head


def test_num_workers_and_lazy_hdf5_input_give_the_same_model(tmp_path):
    from skphotoz.data import open_archive, write_archive
    from skphotoz.datasets import make_sdss_galaxies

    sample = make_sdss_galaxies(48, random_state=3, stamp_size=16)
    path = tmp_path / "g.h5"
    write_archive(path, sample.images, redshift=sample.redshift)
    lazy = open_archive(path).images
    params = dict(backbone="resnet18", n_epochs=2, batch_size=16, crop_size=8)
    in_memory = _regressor(**params).fit(sample.images, sample.redshift)
    from_disk = _regressor(**params, num_workers=1).fit(lazy, sample.redshift)
    assert _same_weights(in_memory.model_, from_disk.model_)
    np.testing.assert_array_equal(from_disk.predict(lazy), in_memory.predict(sample.images))
    emb = _embedder(n_epochs=1, batch_size=16, crop_size=8, num_workers=1).fit(lazy)
    assert _same_weights(
        emb.moco_, _embedder(n_epochs=1, batch_size=16, crop_size=8).fit(sample.images).moco_
    )


def test_published_preset_is_the_published_architecture():
    from skphotoz import MOCO_PRESETS
    from skphotoz._validation import fit_context  # noqa: F401  (the preset passes validation)

    emb = MoCoEmbedder(**MOCO_PRESETS["published"])
    emb._validate_params()
    X = np.zeros((2, 5, 64, 64), dtype=np.float32)
    with torch.no_grad():
        moco = emb._build_moco(X, seed=0)
    body = moco.backbone
    convs = [m for m in body.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].in_channels == 5 and convs[0].kernel_size == (7, 7)
    assert convs[0].stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in body.modules())
    assert body.out_features == 2048
    assert moco.queue.shape == (65536, 128)
    assert emb.batch_size == 256 and emb.crop_size == 64
