import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.utils._param_validation import InvalidParameterError

import skphotoz
from skphotoz import MoCoEmbedder
from skphotoz.baselines import GaussianProcessPhotoZ
from skphotoz.datasets import make_sdss_galaxies
from skphotoz.hybrid import hybrid_gp
from skphotoz.metrics import sigma_mad
from skphotoz.preprocessing import AperturePhotometry


@pytest.fixture(scope="module")
def pool():
    sample = make_sdss_galaxies(160, random_state=3, stamp_size=32)
    X = sample.images.astype(np.float32)
    embedder = MoCoEmbedder(
        n_epochs=1, batch_size=32, queue_size=64, random_state=0, device="cpu"
    ).fit(X)
    return X, sample.redshift, embedder


def test_photometry_and_the_embeddings_principal_components_feed_the_gp(pool):
    X, z, embedder = pool
    model = hybrid_gp(embedder, n_components=3, random_state=0, n_restarts=0)
    assert skphotoz.hybrid_gp is hybrid_gp
    features, gp = model[0], model[-1]
    assert isinstance(gp, GaussianProcessPhotoZ) and gp.n_restarts == 0
    photometry, embedding = (step for _, step in features.transformer_list)
    assert isinstance(photometry, AperturePhotometry)
    assert embedding[0].estimator is embedder and embedding[1].n_components == 3

    before = embedder.transform(X[:8])
    model.fit(X[:120], z[:120])
    np.testing.assert_array_equal(embedder.transform(X[:8]), before)  # not refitted
    joined = features.transform(X[120:])
    assert joined.shape == (40, len(photometry.get_feature_names_out()) + 3)
    np.testing.assert_allclose(
        joined[:, -3:], embedding[1].transform(embedder.transform(X[120:])), rtol=1e-5
    )
    median = sigma_mad(z[120:], np.full(40, np.median(z[:120])))
    assert sigma_mad(z[120:], model.predict(X[120:])) < 0.8 * median


def test_cross_validation_clones_the_pipeline_but_not_the_embedder(pool):
    X, z, embedder = pool
    model = hybrid_gp(FrozenEstimator(embedder), n_components=2, random_state=0, n_restarts=0)
    copy = clone(model)
    assert copy[0].transformer_list[1][1][0].estimator is embedder
    predicted = cross_val_predict(model, X, z, cv=KFold(2, shuffle=True, random_state=0))
    assert predicted.shape == z.shape and np.isfinite(predicted).all()


def test_bad_arguments_name_themselves(pool):
    _, _, embedder = pool
    with pytest.raises(InvalidParameterError, match="n_components"):
        hybrid_gp(embedder, n_components=0)
    with pytest.raises(InvalidParameterError, match="random_state"):
        hybrid_gp(embedder, random_state=True)
    with pytest.raises(TypeError, match="embedder must be a fitted transformer.*got str"):
        hybrid_gp("moco")
    with pytest.raises(NotFittedError, match="embedder must be fitted: pretrain the MoCoEmbedder"):
        hybrid_gp(MoCoEmbedder())
    with pytest.raises(TypeError, match="n_restart"):
        hybrid_gp(embedder, n_restart=1)


def test_a_fitted_hybrid_gp_is_a_safe_model_file(pool, tmp_path):
    pytest.importorskip("skops")
    from skphotoz import io

    X, z, embedder = pool
    model = hybrid_gp(embedder, n_components=2, random_state=0, n_restarts=0).fit(X[:80], z[:80])
    path = tmp_path / "hybrid_gp.skops"
    io.dump(model, path)
    assert io.get_untrusted_types(path) == []
    loaded = io.load(path)
    np.testing.assert_allclose(loaded.predict(X[80:]), model.predict(X[80:]), rtol=1e-5)
