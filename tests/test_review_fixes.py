"""Regressions found by the review of the robustness work (issue #15)."""

import h5py
import numpy as np
import pytest
import torch

from skphotoz import MoCoEmbedder
from skphotoz._base import CheckedImages, preprocessing_of, take_rows
from skphotoz.data import HDF5Images

TINY = dict(n_epochs=1, batch_size=4, device="cpu", random_state=0)


def _archive(tmp_path, n=8, size=10):
    images = np.random.default_rng(0).normal(size=(n, 5, size, size)).astype(np.float32)
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        f["images"] = images
        f["e_bv"] = np.full((n, 5), 0.01, dtype=np.float32)
    return path


def test_preprocessing_is_seen_through_row_views(tmp_path):
    # A cross-validation split (take_rows) of an archive is read as the archive is: fitting
    # on it must remember deredden/crop, not "unknown", so that predictions are checked.
    images = HDF5Images(_archive(tmp_path), deredden=True, crop=8)
    expected = {"deredden": True, "crop": 8}
    view = take_rows(images, np.arange(6))
    assert preprocessing_of(view) == expected
    assert preprocessing_of(CheckedImages(take_rows(view, np.arange(3)), "raise")) == expected
    assert preprocessing_of(take_rows(np.zeros((4, 5, 8, 8)), np.arange(2))) is None

    model = MoCoEmbedder(**TINY).fit(view)
    assert model.preprocessing_ == expected
    with pytest.raises(ValueError, match="preprocessing_"):
        model.transform(HDF5Images(images.path, deredden=False, crop=8))


def test_checkpoint_of_a_fit_before_nan_policy_resumes(tmp_path):
    # A checkpoint written before nan_policy existed has no entry for it: with the default
    # (which reads input as those versions did) it must resume, not be refused as another fit.
    X = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    params = dict(TINY, n_epochs=2, checkpoint_dir=tmp_path, photometry_weight=0)
    MoCoEmbedder(**params).fit(X)
    path = tmp_path / "moco.pt"
    state = torch.load(path, weights_only=False)
    assert "parameter nan_policy" not in state["fingerprint"]
    state["finished"] = state["trainer"]["finished"] = False
    torch.save(state, path)
    MoCoEmbedder(**params).fit(X)  # resumes: no CheckpointMismatchError

    # A non-default policy is still recorded, so that a resume with another one is noticed.
    assert MoCoEmbedder(nan_policy="fill")._run_parameters()["parameter nan_policy"] == "'fill'"


def test_similarity_search_checks_the_embedder_preprocessing(tmp_path):
    # The index reads an archive in numpy blocks before the embedder sees them: an archive
    # read otherwise than the embedder's training images must be refused, as transform does.
    from skphotoz.search import SimilaritySearch

    path = _archive(tmp_path)
    embedder = MoCoEmbedder(**TINY).fit(HDF5Images(path))
    dereddened = HDF5Images(path, deredden=True)
    with pytest.raises(ValueError, match="preprocessing_"):
        SimilaritySearch(n_neighbors=2, embedder=embedder).fit(dereddened)
    search = SimilaritySearch(n_neighbors=2, embedder=embedder).fit(HDF5Images(path))
    with pytest.raises(ValueError, match="preprocessing_"):
        search.kneighbors(dereddened)
    assert search.kneighbors(HDF5Images(path)[:2])[1].shape == (2, 2)


def test_semi_supervised_pretraining_refuses_missing_value_codes():
    # An archive written by another tool may hold -9999 for "no redshift": the redshift term
    # would learn it as a redshift.

    X = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
    y = np.full(16, np.nan)
    y[:4] = [0.1, -9999.0, 0.2, 0.05]
    embedder = MoCoEmbedder(n_epochs=1, batch_size=8, redshift_weight=1.0, random_state=0)
    with pytest.raises(ValueError, match=r"redshifts > -1 .*1 rows .*-9999 in row 1"):
        embedder.fit(X, y)
    # With the redshift term off, y is not used as redshifts.
    MoCoEmbedder(n_epochs=1, batch_size=8, random_state=0).fit(X, y)
