"""PhotoZRegressor(photometry=...): the photometry-exact hybrid network."""

import copy

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator

from skphotoz import MoCoEmbedder, PhotoZRegressor
from skphotoz.datasets import make_sdss_galaxies
from skphotoz.nn.engine import center_crop
from skphotoz.nn.photometry import HybridEncoder
from skphotoz.preprocessing import AperturePhotometry


@pytest.fixture(scope="module")
def galaxies():
    sample = make_sdss_galaxies(48, random_state=4, stamp_size=32)
    return sample.images.astype(np.float32), sample.redshift


def _hybrid(**kw):
    params = dict(photometry=True, bottleneck=4, n_epochs=2, batch_size=16, random_state=0)
    return PhotoZRegressor(**{**params, "device": "cpu", **kw})


@pytest.fixture(scope="module")
def fitted(galaxies):
    X, z = galaxies
    return _hybrid().fit(X, z)


def test_the_head_sees_the_bottleneck_and_the_photometry(fitted, galaxies):
    X, _ = galaxies
    encoder = fitted.model_.encoder
    assert isinstance(encoder, HybridEncoder)
    assert encoder.out_features == 4 + 11
    assert list(fitted.photometry_features_) == list(
        AperturePhotometry().fit(X).get_feature_names_out()
    )
    # predict takes whole stamps: the image branch crops them itself, the photometry does not.
    assert fitted._input_crop() is None and encoder.crop == fitted.crop_size_ == 16
    network = copy.deepcopy(fitted.model_).double().eval()
    x = torch.as_tensor(X[:8], dtype=torch.float64)
    with torch.no_grad():
        features = torch.cat(
            [network.encoder.bottleneck(network.encoder.image(center_crop(x, 16))),
             network.encoder.photometry(x)],
            dim=1,
        )  # fmt: skip
        pdf = torch.softmax(network.head(features), dim=1).numpy()
    np.testing.assert_allclose(fitted.predict_pdf(X[:8]), pdf, atol=1e-4)


def test_the_photometry_is_standardised_on_the_training_stamps(fitted, galaxies):
    X, _ = galaxies
    layer = fitted.model_.encoder.photometry
    features = AperturePhotometry().fit_transform(X)
    np.testing.assert_allclose(layer.mean.numpy()[0], features.mean(axis=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.scale.numpy()[0], features.std(axis=0), rtol=1e-3)


def test_training_measures_the_photometry_on_the_unaugmented_stamps(fitted, galaxies):
    X, z = galaxies
    task = copy.deepcopy(fitted.model_).train()
    seen = []
    task.encoder.photometry.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    task(torch.as_tensor(X[:16]), torch.as_tensor(z[:16], dtype=torch.float32))
    torch.testing.assert_close(seen[0], torch.as_tensor(X[:16]))


def test_freezing_the_backbone_trains_the_bottleneck_and_head_only(galaxies):
    X, z = galaxies
    # Same seed, so the same initial weights: one epoch more changes only what trains.
    before = _hybrid(freeze_backbone=True, n_epochs=1).fit(X, z).model_
    after = _hybrid(freeze_backbone=True, n_epochs=2).fit(X, z).model_
    for name, weight in before.encoder.image.state_dict().items():
        torch.testing.assert_close(after.encoder.image.state_dict()[name], weight, msg=name)
    changed = after.encoder.bottleneck[0].weight != before.encoder.bottleneck[0].weight
    assert bool(changed.any())


def test_fine_tuning_a_pretrained_encoder_with_photometry(galaxies):
    X, z = galaxies
    embedder = MoCoEmbedder(
        n_epochs=1, batch_size=16, queue_size=64, random_state=0, device="cpu"
    ).fit(X)
    model = _hybrid(encoder=FrozenEstimator(embedder)).fit(X, z)
    lrs = model.history_[0]["lrs"]
    assert lrs[0] == pytest.approx(0.1 * lrs[1])  # backbone at 0.1x; bottleneck with the head
    assert model.model_.encoder.image is not embedder.encoder_
    assert np.isfinite(model.predict(X)).all()


def test_other_apertures(galaxies):
    X, z = galaxies
    model = _hybrid(photometry=AperturePhotometry(radii=(1.0, 2.0))).fit(X, z)
    assert model.model_.encoder.out_features == 4 + 2 * 4 + 2
    assert model.photometry_features_[4] == 'r (1.0")'


def test_saved_and_cloned(fitted, galaxies, tmp_path):
    X, _ = galaxies
    path = tmp_path / "hybrid.joblib"
    joblib.dump(fitted, path)
    np.testing.assert_array_equal(joblib.load(path).predict(X), fitted.predict(X))
    assert clone(fitted).get_params()["photometry"] is True
    tta = clone(fitted).set_params(test_time_augmentation=True)
    tta.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    assert tta.predict(X[:4]).shape == (4,)


def test_photometry_needs_images(galaxies):
    X, z = galaxies
    with pytest.raises(ValueError, match="photometry=True measures apertures on images"):
        _hybrid().fit(np.random.default_rng(0).normal(size=(40, 5)), z[:40])
    with pytest.raises(ValueError, match="'photometry' parameter"):
        _hybrid(photometry="yes").fit(X, z)
    with pytest.raises(ValueError, match="'bottleneck' parameter"):
        _hybrid(bottleneck=0).fit(X, z)


def test_structure_changed_after_fit_is_refused(fitted, galaxies):
    X, _ = galaxies
    model = copy.deepcopy(fitted).set_params(photometry=False)
    with pytest.raises(ValueError, match="photometry"):
        model.predict(X)
