"""What training-state safety costs per fit and per epoch: fingerprint, snapshot, checkpoint.

For the MoCo task of each backbone (the largest state skphotoz trains: query and key encoders,
projection, queue, SGD momentum), times the run fingerprint (once per fit), the in-memory copy
of the weights that Ctrl-C rolls back to (once per epoch) and the atomic checkpoint write
(once per epoch), and the checkpoint's size. Compare with the epoch times of
``benchmarks/pretrain_throughput.py``.

    python benchmarks/checkpoint_overhead.py [--backbones resnet18 resnet50] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from skphotoz import MoCoEmbedder
from skphotoz.nn import MoCoTask, TrainConfig, Trainer
from skphotoz.nn.callbacks import Checkpoint, save_atomically

sys.path.insert(0, str(Path(__file__).parent))
from _output import write_rows  # noqa: E402


def _best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(backbone: str, stem: str, n_images: int = 512) -> dict:
    X = np.random.default_rng(0).normal(size=(n_images, 5, 64, 64)).astype(np.float32)
    embedder = MoCoEmbedder(backbone=backbone, stem=stem, crop_size=64, random_state=0)
    moco = embedder._build_moco(X, seed=0)
    task = MoCoTask(moco, embedder._build_augment(X, moco.backbone, 64))
    trainer = Trainer(task, (X,), TrainConfig(n_epochs=1, device="cpu"))
    trainer.build_optimizer()
    # SGD momentum buffers exist after a first step; fill them as a step would.
    for group in trainer.optimizer.param_groups:
        for p in group["params"]:
            trainer.optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "moco.pt")
        checkpoint = Checkpoint(path)
        fingerprint_s = _best_of(3, lambda: checkpoint.on_train_begin(trainer))
        snapshot_s = _best_of(3, trainer._snapshot_weights)
        state = {"fingerprint": checkpoint.fingerprint, "trainer": trainer.state_dict()}
        save_s = _best_of(3, lambda: save_atomically(state, path))
        size_mb = os.path.getsize(path) / 2**20
        load_s = _best_of(3, lambda: torch.load(path, weights_only=True))
    n_params = sum(p.numel() for p in moco.parameters())
    return {
        "backbone": backbone,
        "stem": stem,
        "parameters_millions": round(n_params / 1e6, 2),
        "fingerprint_s": round(fingerprint_s, 3),
        "snapshot_s": round(snapshot_s, 3),
        "save_s": round(save_s, 3),
        "load_s": round(load_s, 3),
        "checkpoint_mb": round(size_mb, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["resnet18", "resnet50"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="docs/checkpoint_overhead.csv", help="CSV of the table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(name, "standard") for name in args.backbones]
    columns = list(rows[0])
    print(" ".join(f"{c:>20}" for c in columns))
    for row in rows:
        print(" ".join(f"{row[c]!s:>20}" for c in columns))
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
