"""Fits run by tests/nn/test_distributed.py: under torchrun on several processes, or alone.

    python -m torch.distributed.run --standalone --nproc_per_node=2 _distributed_worker.py OUT
    python _distributed_worker.py OUT [SEED]

Writes OUT/rank<r>.npz with what the test compares: the weight updates of a plain network
trained by the engine, of a PhotoZRegressor (MLP on feature vectors, early stopping) and of a
MoCoEmbedder (images, shuffle-BN across ranks), their losses, predictions and MoCo queue.
Both estimators checkpoint into OUT/checkpoints.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from skphotoz import MoCoEmbedder, PhotoZRegressor
from skphotoz.datasets import make_sdss_galaxies
from skphotoz.nn import distributed
from skphotoz.nn.callbacks import Callback
from skphotoz.nn.engine import TrainConfig, Trainer


def _flat(module) -> np.ndarray:
    return torch.cat([p.detach().cpu().reshape(-1) for p in module.parameters()]).numpy()


class InitialWeights(Callback):
    """Keeps the trained network's weights (MoCo: the backbone's) at the start of training."""

    def on_train_begin(self, trainer):
        task = trainer.task
        self.initial = _flat(task.moco.backbone if hasattr(task, "moco") else task)


class LeastSquares(nn.Module):
    """A network without BatchNorm: N processes must compute what one does, to rounding."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x, y, generator=None):
        return ((self.net(x)[:, 0] - y) ** 2).mean()


def main(out: Path, seed: int = 0) -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(192, 8)).astype(np.float32)
    target = np.tanh(features[:, :3].sum(axis=1)).astype(np.float32)

    # The engine alone.
    torch.manual_seed(seed)
    plain = LeastSquares()
    start = _flat(plain)
    config = TrainConfig(n_epochs=2, batch_size=32, lr=0.05, device="cpu", seed=seed)
    trainer = Trainer(plain, [features, target], config)
    trainer.fit()

    # A regressor on feature vectors (an MLP with BatchNorm), with early stopping.
    z = 0.05 + 0.3 / (1.0 + np.exp(-features[:, 0] - features[:, 1]))
    regressor = PhotoZRegressor(
        backbone="mlp", n_epochs=4, batch_size=32, lr=0.01, early_stopping=True,
        validation_fraction=0.25, n_iter_no_change=2, noise=0.0, device="cpu",
        random_state=seed, checkpoint_dir=out / "checkpoints", callbacks=[InitialWeights()],
    )  # fmt: skip
    z_pred = regressor.fit(features, z).predict(features)

    # MoCo on images.
    images = make_sdss_galaxies(96, stamp_size=16, random_state=0).images
    embedder = MoCoEmbedder(
        n_epochs=2, batch_size=32, queue_size=96, crop_size=16, device="cpu",
        random_state=seed, checkpoint_dir=out / "checkpoints", callbacks=[InitialWeights()],
    )  # fmt: skip
    embeddings = embedder.fit(images).transform(images)
    # The same fit again, after the global random state has moved on: a run is a function of
    # its seed (no draw may come from torch's global generator).
    again = MoCoEmbedder(**{**embedder.get_params(), "checkpoint_dir": None, "callbacks": None})
    torch.manual_seed(12345 + distributed.rank())
    repeatable = bool(np.array_equal(again.fit(images).transform(images), embeddings))

    np.savez(
        out / f"rank{distributed.rank()}.npz",
        world_size=distributed.world_size(),
        plain_update=_flat(plain) - start,
        plain_loss=[entry["loss"] for entry in trainer.history],
        photoz_update=_flat(regressor.model_) - regressor.callbacks_[0].initial,
        photoz_loss=[entry["loss"] for entry in regressor.history_],
        photoz_epochs=len(regressor.history_),
        z_pred=z_pred,
        moco_update=_flat(embedder.moco_.backbone) - embedder.callbacks_[0].initial,
        moco_loss=[entry["loss"] for entry in embedder.history_],
        queue=embedder.moco_.queue.numpy(),
        embeddings=embeddings,
        moco_repeatable=repeatable,
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0)
