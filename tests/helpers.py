"""Plain helpers shared by the test files: ``from tests.helpers import TINY, make_features``.

Fixtures live in ``tests/conftest.py``; constants, data makers and small estimators live here,
where a test file can import them (``pythonpath = ["."]`` in pyproject.toml makes ``tests``
importable however pytest is started).
"""

import h5py
import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

# The smallest training of the network estimators: one epoch of batches of 4 on the CPU.
# A test that needs other settings says so: ``dict(TINY, n_epochs=3, batch_size=16)``.
TINY = dict(n_epochs=1, batch_size=4, device="cpu", random_state=0)


def make_features(n=12, d=4, seed=0):
    """Gaussian float32 features and float64 redshifts in [0.15, 0.25] that depend on them."""
    X = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return X, 0.2 + 0.05 * np.tanh(X[:, 0]).astype(np.float64)


def make_images(n=6, size=8, seed=0):
    """Gaussian float32 images of 5 bands, ``(n, 5, size, size)``."""
    return np.random.default_rng(seed).normal(size=(n, 5, size, size)).astype(np.float32)


def write_h5_archive(tmp_path, images, name="a.h5", e_bv=0.0):
    """A bare HDF5 archive of ``images`` and a per-band E(B-V) of ``e_bv``; returns its path."""
    path = tmp_path / name
    with h5py.File(path, "w") as f:
        f["images"] = images
        f["e_bv"] = np.full((len(images), images.shape[1]), e_bv, dtype=np.float32)
    return path


class ConstantRegressor(RegressorMixin, BaseEstimator):
    """Predicts ``value`` whatever X is: a regressor whose predictions a test chooses."""

    def __init__(self, value=None):
        self.value = value

    def fit(self, X, y):
        return self

    def predict(self, X):
        return np.asarray(self.value, dtype=np.float64)


def explore_data(folder, n, seed):
    """For the explore page's tests: an archive of ``n`` simulated 32-px galaxies in
    ``folder``, embeddings that follow their colours (so that neighbours mean something), and a
    tiny photo-z network fitted on its first 64 galaxies. Returns (path, opened archive,
    embeddings, model)."""
    from skphotoz import PhotoZRegressor
    from skphotoz.data import open_archive
    from skphotoz.datasets import write_sdss_galaxies

    archive = folder / "galaxies.h5"
    write_sdss_galaxies(archive, n, random_state=seed, stamp_size=32)
    opened = open_archive(archive, deredden=True)
    X = np.asarray(opened.images[:])
    flux = X.sum(axis=(2, 3))
    colours = -2.5 * np.log10(np.clip(flux[:, 1:] / flux[:, :-1], 1e-3, None))
    noise = np.random.default_rng(seed).normal(size=(n, 4))
    embeddings = np.hstack([colours, noise]).astype(np.float32)
    model = PhotoZRegressor(n_epochs=1, batch_size=32, device="cpu", random_state=0)
    model.fit(X[:64], opened.redshift[:64])
    return archive, opened, embeddings, model
