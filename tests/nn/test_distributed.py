"""Training under torchrun: 2 gloo processes on the CPU against one process.

The 2-process run (tests/nn/_distributed_worker.py) must leave the same weights on both
ranks, and match a single process: exactly (to rounding) for a network without BatchNorm,
closely for an MLP with BatchNorm (each rank normalises its half of the batch), and in its
losses for MoCo (whose augmentations each rank draws itself).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist

from skphotoz.nn import distributed
from skphotoz.nn.callbacks import Checkpoint, ProgressTable
from skphotoz.nn.engine import TrainConfig, Trainer
from skphotoz.nn.loading import epoch_batches, rank_batches

WORKER = Path(__file__).with_name("_distributed_worker.py")


def _cosine(a, b) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _run(args, out: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, *args, str(WORKER), str(out)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("this PyTorch build has no gloo backend")
    multi = tmp_path_factory.mktemp("two_processes")
    single = tmp_path_factory.mktemp("one_process")
    _run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], multi)
    _run([], single)
    ranks = [dict(np.load(multi / f"rank{r}.npz")) for r in range(2)]
    return ranks, dict(np.load(single / "rank0.npz")), multi


def test_ranks_end_identical(runs):
    (rank0, rank1), _, _ = runs
    assert int(rank0["world_size"]) == 2
    for name in rank0:
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=name)


def test_engine_matches_one_process(runs):
    # Each rank computes half of every batch; the averaged gradient is the batch's gradient.
    (rank0, _), single, _ = runs
    np.testing.assert_allclose(rank0["plain_update"], single["plain_update"], atol=1e-5)
    np.testing.assert_allclose(rank0["plain_loss"], single["plain_loss"], rtol=1e-5)


def test_regressor_matches_one_process(runs):
    (rank0, _), single, _ = runs
    assert _cosine(rank0["photoz_update"], single["photoz_update"]) > 0.9
    np.testing.assert_allclose(rank0["photoz_loss"], single["photoz_loss"], rtol=0.01)
    assert int(rank0["photoz_epochs"]) == int(single["photoz_epochs"])
    spread = np.std(single["z_pred"])
    assert np.sqrt(np.mean((rank0["z_pred"] - single["z_pred"]) ** 2)) < 0.25 * spread


def test_moco_queue_shared_and_loss_matches(runs):
    (rank0, _), single, multi = runs
    # The queue of 96 keys holds the 32-key batches of both ranks (identical on both, see
    # test_ranks_end_identical): without gathering each rank would enqueue its own 16.
    np.testing.assert_allclose(np.linalg.norm(rank0["queue"], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(rank0["moco_loss"], single["moco_loss"], rtol=0.05)
    assert bool(rank0["moco_repeatable"]) and bool(single["moco_repeatable"])
    # Rank 0 wrote the checkpoints of both fits.
    assert sorted(p.name for p in (multi / "checkpoints").iterdir()) == ["moco.pt", "photoz.pt"]


def test_rank_batches_deal_out_each_batch():
    for n, batch_size, world in [(100, 32, 2), (103, 10, 3), (64, 64, 4)]:
        single = epoch_batches(n, batch_size, seed=3, epoch=1)
        shares = [rank_batches(n, batch_size, 3, 1, r, world) for r in range(world)]
        assert all(len(s) == len(single) for s in shares)
        for step, batch in enumerate(single):
            parts = [s[step] for s in shares]
            assert len({len(p) for p in parts}) == 1  # equal shares
            union = np.concatenate(parts)
            assert len(np.unique(union)) == len(union)  # disjoint
            assert set(union) <= set(batch) and len(batch) - len(union) < world
    assert all(
        np.array_equal(a, b)
        for a, b in zip(rank_batches(50, 8, 0, 2, 0, 1), epoch_batches(50, 8, 0, 2), strict=True)
    )


def test_batch_too_small_for_the_processes(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 4)
    X = np.zeros((64, 3), np.float32)
    with pytest.raises(ValueError, match=r"batch_size=6 .* 4 processes.*batch_size >= 8"):
        Trainer(object(), [X], TrainConfig(batch_size=6, device="cpu"))


def test_other_ranks_neither_write_nor_print(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")
    assert not distributed.is_main_process()
    X = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    from torch import nn

    class Task(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(4, 1)

        def forward(self, x, generator=None):
            return self.net(x).pow(2).mean()

    path = tmp_path / "run.pt"
    config = TrainConfig(n_epochs=1, batch_size=16, device="cpu")
    Trainer(Task(), [X], config, callbacks=[ProgressTable(), Checkpoint(path)]).fit()
    assert not path.exists()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    monkeypatch.setenv("RANK", "0")
    Trainer(Task(), [X], config, callbacks=[ProgressTable(), Checkpoint(path)]).fit()
    assert path.exists() and "1/1" in capsys.readouterr().out
