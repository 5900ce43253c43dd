"""`skphotoz predict` and `embed` under torchrun: the galaxies split across 2 gloo processes,
each running its share of whole batches, rank 0 writing; the files equal one process's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist

from skphotoz.nn.distributed import share_of_rows

WORKER = Path(__file__).with_name("_inference_worker.py")


@pytest.mark.parametrize("world", [1, 2, 3, 5])
@pytest.mark.parametrize(("start", "stop", "step"), [(0, 70, 4), (30, 60, 4), (0, 3, 4), (5, 6, 1)])
def test_shares_are_whole_batches_that_join_into_the_block(world, start, stop, step):
    shares = [share_of_rows(start, stop, step, rank_=r, world=world) for r in range(world)]
    assert shares[0][0] == start and shares[-1][1] == stop
    for (_, b), (a, _) in zip(shares, shares[1:], strict=False):
        assert a == b  # contiguous, in rank order
    for a, b in shares:
        assert (a - start) % step == 0 and (b - start) % step == 0 or b == stop
    steps = [-(-(b - a) // step) for a, b in shares]
    assert max(steps) - min(steps) <= 1  # as even as whole batches allow


def _torchrun(*args, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         *args],
        env=env, capture_output=True, text=True, timeout=600, cwd=cwd,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def gloo():
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("this PyTorch build has no gloo backend")


def test_each_rank_computes_its_share_and_rank_0_gathers_them(gloo, tmp_path):
    _torchrun(str(WORKER), str(tmp_path), cwd=Path(__file__).parents[1])
    rank0, rank1 = (dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2))
    assert int(rank0["world"]) == 2
    np.testing.assert_array_equal(rank0["rows"], np.arange(70))
    np.testing.assert_array_equal(rank0["squares"], np.arange(70.0) ** 2)
    assert rank1["nothing"].all()
    # Blocks of 30, 30, 10 rows in batches of 4 (8, 8, 3 batches): rank 0 runs the first
    # 4, 4, 1 batches of each block, rank 1 the rest.
    first = np.r_[0:16, 30:46, 60:64]
    np.testing.assert_array_equal(rank0["computed"], first)
    np.testing.assert_array_equal(rank1["computed"], np.setdiff1d(np.arange(70), first))


def test_predict_and_embed_under_torchrun_write_what_one_process_writes(gloo, tmp_path):
    from skphotoz.cli import main

    archive = str(tmp_path / "a.h5")
    assert main(["simulate", archive, "--n", "600", "--stamp-size", "8", "--quiet"]) == 0
    model, embedder = str(tmp_path / "m.skops"), str(tmp_path / "e.skops")
    tiny = ["--epochs", "1", "--batch-size", "64", "--device", "cpu", "--quiet"]
    assert main(["fit-photoz", archive, "--output", model, "--min-steps", "1", *tiny]) == 0
    assert main(["pretrain", archive, "--output", embedder, *tiny]) == 0
    root = Path(__file__).parents[1]
    for command, source, out in (("predict", model, "z.csv"), ("embed", embedder, "e.npy")):
        # 600 galaxies in one block of 3 batches of 256: rank 0 runs one, rank 1 two.
        args = [command, source, archive, "--chunk-size", "600", "--quiet"]
        _torchrun("-m", "skphotoz.cli", *args, "--output", str(tmp_path / f"two-{out}"), cwd=root)
        assert main([*args, "--output", str(tmp_path / f"one-{out}")]) == 0
        two, one = (tmp_path / f"{n}-{out}" for n in ("two", "one"))
        if out.endswith(".csv"):
            assert two.read_text() == one.read_text()
        else:
            np.testing.assert_array_equal(np.load(two), np.load(one))
        assert not list(tmp_path.glob("*.partial"))
