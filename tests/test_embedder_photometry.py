"""MoCoEmbedder(join_photometry=w): embeddings joined to the stamps' exact photometry."""

import numpy as np
import pytest

from skphotoz import MoCoEmbedder
from skphotoz.datasets import make_sdss_galaxies
from skphotoz.preprocessing import AperturePhotometry


@pytest.fixture(scope="module")
def fitted():
    X = make_sdss_galaxies(40, random_state=5, stamp_size=32).images.astype(np.float32)
    embedder = MoCoEmbedder(n_epochs=1, batch_size=16, queue_size=64, random_state=0, device="cpu")
    return embedder.fit(X), X


def test_joined_embedding_is_weighted_photometry_then_unit_image_part(fitted):
    embedder, X = fitted
    plain = embedder.transform(X)
    embedder.set_params(join_photometry=2.0)
    try:
        joined = embedder.transform(X)
        names = embedder.get_feature_names_out()
    finally:
        embedder.set_params(join_photometry=0.0)
    assert joined.shape == (40, 11 + plain.shape[1]) and len(names) == joined.shape[1]
    np.testing.assert_allclose(
        joined[:, 11:], plain / np.linalg.norm(plain, axis=1, keepdims=True), atol=1e-5
    )
    features = AperturePhotometry().fit_transform(X)
    layer = embedder.photometry_layer_
    expected = 2.0 / np.sqrt(11) * (features - layer.mean.numpy()) / layer.scale.numpy()
    np.testing.assert_allclose(joined[:, :11], expected, atol=1e-4)
    assert list(embedder.photometry_features_) == list(
        AperturePhotometry().fit(X).get_feature_names_out()
    )


def test_joining_does_not_change_the_checkpoint_fingerprint(fitted):
    embedder, _ = fitted
    assert (
        "parameter join_photometry"
        not in embedder.set_params(join_photometry=1.0)._run_parameters()
    )
    embedder.set_params(join_photometry=0.0)


def test_feature_vectors_have_no_photometry_to_join():
    X = np.random.default_rng(0).normal(size=(32, 6)).astype(np.float32)
    embedder = MoCoEmbedder(n_epochs=1, batch_size=16, queue_size=64, random_state=0, device="cpu")
    embedder.fit(X)
    assert embedder.photometry_layer_ is None
    with pytest.raises(
        ValueError, match=r"join_photometry=1.0 joins aperture photometry .* \(6,\)"
    ):
        embedder.set_params(join_photometry=1.0).transform(X)
