import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import KFold, cross_val_score
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline

from skphotoz import MoCoEmbedder, PhotoZRegressor
from skphotoz.data import HDF5Images, write_archive
from skphotoz.datasets import make_sdss_galaxies
from skphotoz.embedder import view_photometry
from skphotoz.metrics import sigma_mad, sigma_mad_scorer
from skphotoz.preprocessing import default_photometry


@pytest.fixture(scope="module")
def galaxies():
    sample = make_sdss_galaxies(48, random_state=0, stamp_size=16)
    return sample.images, sample.redshift


def _tiny(**kw):
    params = dict(n_epochs=1, batch_size=16, queue_size=32, random_state=0, device="cpu")
    return MoCoEmbedder(**{**params, **kw})


def test_fit_transform_images(galaxies):
    X, _ = galaxies
    emb = _tiny().fit(X)
    Z = emb.transform(X)
    assert Z.shape == (48, 512) and Z.dtype == np.float32
    assert np.isfinite(Z).all()
    assert emb.n_features_in_ == 5 and emb.input_shape_ == (5, 16, 16)
    assert len(emb.get_feature_names_out()) == 512
    (entry,) = emb.history_
    assert entry["epoch"] == 0 and np.isfinite(entry["loss"])
    # Every image of the epoch was seen once: rate x time = 48 images.
    assert entry["images_per_s"] * entry["time_s"] == pytest.approx(48, rel=1e-6)


def test_same_seed_same_embeddings_and_other_seed_differs(galaxies):
    X, _ = galaxies
    a = _tiny().fit(X).transform(X)
    b = _tiny().fit(X).transform(X)
    c = _tiny(random_state=1).fit(X).transform(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_pickle_round_trip_is_identical_and_on_cpu(galaxies, tmp_path):
    X, _ = galaxies
    emb = _tiny(embedding="projection").fit(X)
    before = emb.transform(X)
    assert before.shape == (48, 128)
    path = tmp_path / "emb.joblib"
    joblib.dump(emb, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.transform(X), before)
    restored = pickle.loads(pickle.dumps(emb))
    tensors = list(restored.moco_.state_dict().values())
    assert tensors and all(t.device.type == "cpu" for t in tensors)


def test_lazy_hdf5_input_matches_in_memory(galaxies, tmp_path):
    X, _ = galaxies
    path = tmp_path / "g.h5"
    write_archive(path, X)
    lazy = HDF5Images(path)
    a = _tiny().fit(lazy).transform(lazy)
    b = _tiny().fit(X).transform(X)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_crop_size_and_sample_shape_check(galaxies):
    X, _ = galaxies
    emb = _tiny(crop_size=12).fit(X)
    assert emb.transform(X).shape == (48, 512)
    with pytest.raises(ValueError, match="fitted on samples of shape \\(5, 16, 16\\)"):
        emb.transform(X[:, :, :12, :12])
    with pytest.raises(ValueError, match="crop_size must be between 1 and the stamp size 16"):
        _tiny(crop_size=20).fit(X)


def test_pipeline_with_knn_in_cross_val_score(galaxies):
    X, z = galaxies
    pipe = make_pipeline(_tiny(), KNeighborsRegressor(n_neighbors=3))
    scores = cross_val_score(pipe, X, z, cv=KFold(3), scoring=sigma_mad_scorer)
    # Each fold's score is minus the σ_MAD of a pipeline fitted on the other folds alone.
    expected = [
        -sigma_mad(z[test], clone(pipe).fit(X[train], z[train]).predict(X[test]))
        for train, test in KFold(3).split(X)
    ]
    np.testing.assert_allclose(scores, expected, rtol=1e-12)


def test_warm_start_continues_training(galaxies):
    X, _ = galaxies
    emb = _tiny(warm_start=True).fit(X)
    first = emb.transform(X)
    weights = {k: v.clone() for k, v in emb.moco_.state_dict().items()}
    emb.fit(X)
    assert [h["epoch"] for h in emb.history_] == [0, 1]
    assert not np.allclose(emb.transform(X), first)
    changed = [not torch.equal(weights[k], v) for k, v in emb.moco_.state_dict().items()]
    assert any(changed)
    with pytest.raises(ValueError, match="fitted on samples of shape"):
        emb.fit(X[:, :, :8, :8])
    # Without warm_start a refit starts afresh and reproduces a single fit.
    fresh = clone(emb).set_params(warm_start=False).fit(X)
    np.testing.assert_array_equal(fresh.transform(X), first)


def test_checkpoint_of_the_same_finished_run_is_restored(galaxies, tmp_path, monkeypatch):
    X, _ = galaxies
    emb = _tiny(n_epochs=2, checkpoint_dir=tmp_path).fit(X)
    assert (tmp_path / "moco.pt").exists()
    # The same run, finished: its final state is restored without training.
    monkeypatch.setattr(
        "skphotoz.nn.engine.Trainer.run_epoch",
        lambda *a: pytest.fail("a finished run of the same fit was trained again"),
    )
    again = _tiny(n_epochs=2, checkpoint_dir=tmp_path).fit(X)
    np.testing.assert_array_equal(again.transform(X), emb.transform(X))
    assert again.history_ == emb.history_


def test_random_init_baseline_has_no_history(galaxies):
    X, _ = galaxies
    emb = _tiny(n_epochs=0).fit(X)
    assert emb.history_ == []
    assert emb.transform(X).shape == (48, 512)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"embedding": "pixels"}, "'embedding' parameter of MoCoEmbedder must be a str among"),
        ({"backbone": "vgg16"}, "'backbone' parameter of MoCoEmbedder must be a str among"),
        ({"stem": "tiny"}, "'stem' parameter of MoCoEmbedder must be a str among"),
        ({"batch_size": 1}, "'batch_size' parameter of MoCoEmbedder must be an int in the range"),
        ({"batch_size": True}, "'batch_size' parameter .* Got True instead"),
        ({"queue_size": 0}, "'queue_size' parameter of MoCoEmbedder must be"),
        ({"n_epochs": -1}, "'n_epochs' parameter of MoCoEmbedder must be an int in the range"),
        ({"momentum": 1.0}, "'momentum' parameter of MoCoEmbedder must be a float in the range"),
        ({"jitter": -2}, "'jitter' parameter of MoCoEmbedder must be a float in the range"),
        ({"scale": 0.5}, "'scale' parameter of MoCoEmbedder must be a float in the range"),
        ({"lr": float("inf")}, "'lr' parameter of MoCoEmbedder .* Got inf instead"),
        ({"dust_ebv": float("nan")}, "'dust_ebv' parameter of MoCoEmbedder"),
        ({"rotation": "False"}, "'rotation' parameter of MoCoEmbedder must be an instance of"),
        ({"crop_size": 2.5}, "'crop_size' parameter of MoCoEmbedder must be"),
        ({"callbacks": "log"}, "'callbacks' parameter of MoCoEmbedder must be"),
    ],
)
def test_parameter_errors(galaxies, params, match):
    X, _ = galaxies
    with pytest.raises(ValueError, match=match):
        _tiny(**params).fit(X)


def test_input_errors(galaxies):
    X, _ = galaxies
    with pytest.raises(ValueError, match="got a 3-D array"):
        _tiny().fit(X[:, 0])
    with pytest.raises(ValueError, match="at least 2 samples"):
        _tiny().fit(X[:1])
    with pytest.raises(ValueError, match="takes 4-D images"):
        _tiny(backbone="resnet18").fit(X.reshape(48, -1))


def test_infonce_loss_falls_on_simulated_galaxies():
    X = make_sdss_galaxies(512, random_state=0, stamp_size=24).images
    # The default brightness and size augmentations make the task hard enough that 64 steps
    # barely move the loss (it falls over longer runs: docs/experiments/moco.md); the mechanics are
    # tested with the milder augmentations of MoCo v2, and InfoNCE alone.
    emb = MoCoEmbedder(
        n_epochs=8, batch_size=64, crop_size=18, brightness=0.0, scale=1.1, random_state=0,
        device="cpu", photometry_weight=0.0,
    ).fit(X)  # fmt: skip
    losses = [h["loss"] for h in emb.history_]
    # Epoch 1 runs against a queue that starts with random keys (easy negatives); from epoch 2
    # the queue holds real keys and the loss must fall as the encoder learns.
    assert losses[-1] < losses[1] - 0.3, losses


# -- the photometry and redshift terms (colour-aware, semi-supervised pretraining) ---------
def test_plain_moco_is_unchanged_by_the_new_parameters_when_off(galaxies):
    X, z = galaxies
    plain = _tiny(photometry_weight=0.0).fit(X)
    unlabelled = _tiny(photometry_weight=0.0, redshift_weight=5.0).fit(X, np.full(48, np.nan))
    assert len(plain.heads_) == 0 and len(unlabelled.heads_) == 0
    assert "loss_contrastive" not in plain.history_[0]
    np.testing.assert_array_equal(plain.transform(X), unlabelled.transform(X))
    # A redshift term switched off ignores the labels.
    ignored = _tiny(photometry_weight=0.0, redshift_weight=0.0).fit(X, z)
    np.testing.assert_array_equal(plain.transform(X), ignored.transform(X))


def test_photometry_targets_are_the_aperture_photometry_of_the_stamps(galaxies):
    X, _ = galaxies
    emb = _tiny(photometry_weight=1.0)
    emb.crop_size_ = X.shape[-1]
    targets, measured = emb._photometry_targets(X, None)
    expected = view_photometry(X.shape[1], X.shape[-1], emb.jitter, emb.scale)
    np.testing.assert_allclose(targets, expected.fit_transform(X), rtol=1e-6)
    assert measured.radii == expected.radii and emb.target_photometry_ is measured
    # Feature vectors are their own targets; catalogue photometry replaces the measurement.
    V = X.reshape(48, -1)[:, :6]
    values, measured = emb._photometry_targets(V, None)
    np.testing.assert_array_equal(values, V)
    assert measured is None
    catalogue = np.arange(96.0).reshape(48, 2)
    values, measured = emb._photometry_targets(X, catalogue)
    np.testing.assert_array_equal(values, catalogue)
    assert measured is None and emb.target_photometry_ is None


def test_fit_records_every_term_and_the_heads(galaxies):
    X, z = galaxies
    y = z.copy()
    y[20:] = np.nan
    emb = _tiny(n_epochs=2, photometry_weight=2.0, redshift_weight=0.5).fit(X, y)
    assert set(emb.heads_) == {"photometry", "redshift"}
    for entry in emb.history_:
        terms = entry["loss_contrastive"], entry["loss_photometry"], entry["loss_redshift"]
        total = terms[0] + 2.0 * terms[1] + 0.5 * terms[2]
        assert entry["loss"] == pytest.approx(total, rel=1e-5)
    # The photometry head reads the photometry of the galaxies from their embeddings.
    predicted = emb.heads_["photometry"](torch.as_tensor(emb.transform(X))).detach().numpy()
    names = emb.target_photometry_.get_feature_names_out()
    assert predicted.shape == (48, len(names)) and np.isfinite(predicted).all()


def test_photometry_term_learns_the_photometry():
    # The mechanics: the term's loss falls as the encoder and head learn. (Whether the
    # embeddings then carry the colours better than InfoNCE alone is a question of scale,
    # measured by benchmarks/moco_quality.py on 4,000 galaxies: tiny runs cannot tell.)
    X = make_sdss_galaxies(128, random_state=1, stamp_size=16).images
    emb = MoCoEmbedder(
        n_epochs=6, batch_size=32, queue_size=64, random_state=0, crop_size=12,
        contrastive_weight=0.0,
    ).fit(X)  # fmt: skip
    losses = [h["loss_photometry"] for h in emb.history_]
    assert losses[-1] < 0.8 * losses[0], losses
    assert [h["loss"] for h in emb.history_] == losses  # InfoNCE weighed 0


def test_semi_supervised_redshift_term_learns_from_every_row(galaxies):
    # The mechanics: the labels change training, and every row gets a target (the labelled
    # ones their own redshift). Whether it helps is a question of scale: docs/results.md.
    X, z = galaxies
    y = z.copy()
    y[::2] = np.nan  # half labelled
    semi = _tiny(photometry_weight=0.0, redshift_weight=1.0, n_epochs=2).fit(X, y)
    alone = _tiny(photometry_weight=0.0, n_epochs=2).fit(X)
    assert all(np.isfinite(h["loss_redshift"]) for h in semi.history_)
    assert not np.array_equal(semi.transform(X), alone.transform(X))
    # The head is standardised on every row's target: the labels and the teacher's redshifts.
    targets, _ = semi._redshift_targets(X, y.astype(np.float32), semi._draw_seed())
    head = semi.heads_["redshift"]
    assert head.center.item() == pytest.approx(np.median(targets[:, 0]), rel=1e-5)
    assert isinstance(head.net, torch.nn.Sequential) and head.loss_name == "huber"


def test_the_photometric_teacher_labels_the_unlabelled_rows(galaxies):
    X, z = galaxies
    y = z.astype(np.float32)
    y[::2] = np.nan
    labelled = ~np.isnan(y)
    emb = _tiny(redshift_weight=1.0)
    targets, teacher = emb._redshift_targets(X, y, 0)
    assert targets.shape == (48, 2) and targets.dtype == np.float32
    features = default_photometry(5).fit_transform(X)
    assert teacher.n_samples_fit_ == 24
    mean, std = teacher.predict(features[~labelled], return_std=True)
    np.testing.assert_allclose(targets[~labelled, 0], mean, rtol=1e-5)
    explained = 1 - (teacher.std_calibration_ * std) ** 2 / np.var(z[labelled])
    np.testing.assert_allclose(targets[~labelled, 1], np.clip(explained, 0, 1), atol=1e-6)
    np.testing.assert_array_equal(targets[labelled], np.stack([y[labelled], np.ones(24)], 1))
    few = y.copy()
    few[:41] = np.nan
    few[42:] = np.nan
    with pytest.raises(ValueError, match="at least 2 rows .* got 1 labelled row"):
        emb._redshift_targets(X, few, 0)
    # Every row labelled: no teacher.
    targets, teacher = emb._redshift_targets(X, z.astype(np.float32), 0)
    assert teacher is None and (targets[:, 1] == 1).all()
    # Catalogue photometry, when given, is what the teacher learns from.
    catalogue = features[:, :4]
    _, teacher = emb._redshift_targets(X, y, 0, photometry=catalogue)
    assert teacher.n_features_in_ == 4


def test_the_teachers_weights_follow_what_it_knows():
    # Feature vectors are their own photometry. A teacher that knows the redshift well gives
    # weights near 1; one whose features say nothing gives weights near 0.
    rng = np.random.default_rng(0)
    V = rng.normal(size=(300, 2)).astype(np.float32)
    z = 0.2 + 0.05 * V[:, 0] + 0.005 * rng.normal(size=300)
    y = z.astype(np.float32)
    y[100:] = np.nan
    known, _ = _tiny(redshift_weight=1.0)._redshift_targets(V, y, 0)
    assert known[100:, 1].mean() > 0.9
    unrelated = y.copy()
    unrelated[:100] = rng.permutation(z[:100])
    blind, _ = _tiny(redshift_weight=1.0)._redshift_targets(V, unrelated, 0)
    assert blind[100:, 1].mean() < 0.2


def test_pipeline_and_regressor_hand_their_labels_to_the_embedder(galaxies):
    X, z = galaxies
    y = z.copy()
    y[::3] = np.nan
    pipe = make_pipeline(_tiny(redshift_weight=1.0), KNeighborsRegressor(3)).fit(X, z)
    assert set(pipe[0].heads_) == {"photometry", "redshift"}
    embedder = _tiny(redshift_weight=1.0)
    reg = PhotoZRegressor(embedder, n_epochs=1, batch_size=16, random_state=0).fit(X, y)
    assert set(reg.embedder_.heads_) == {"photometry", "redshift"}
    # ... and the same embedder pretrained on its own with the same labels is the one used.
    alone = _tiny(redshift_weight=1.0, random_state=reg.embedder_.random_state).fit(X, y)
    np.testing.assert_array_equal(alone.transform(X), reg.embedder_.transform(X))


def test_warm_start_keeps_the_heads(galaxies):
    X, z = galaxies
    emb = _tiny(warm_start=True).fit(X, z)
    head = emb.heads_["photometry"]
    emb.fit(X, z)
    assert emb.heads_["photometry"] is head and len(emb.history_) == 2


@pytest.mark.parametrize(
    ("params", "fit_kw", "match"),
    [
        ({"photometry_weight": -1.0}, {}, "'photometry_weight' parameter of MoCoEmbedder"),
        ({"redshift_weight": float("inf")}, {}, "'redshift_weight' parameter of MoCoEmbedder"),
        ({"contrastive_weight": float("nan")}, {}, "'contrastive_weight' parameter"),
        ({"contrastive_weight": 0.0, "photometry_weight": 0.0}, {}, "nothing to learn"),
        ({}, {"y": np.zeros(5)}, r"one redshift per sample of X \(48\); got shape \(5,\)"),
        ({}, {"y": np.full(48, np.inf)}, "y contains infinity; mark unlabelled rows with NaN"),
        ({}, {"photometry": np.zeros((47, 3))}, r"photometry must have shape .* \(47, 3\)"),
        ({}, {"photometry": np.full((48, 3), np.nan)}, "photometry must be finite"),
    ],
)
def test_errors(galaxies, params, fit_kw, match):
    X, _ = galaxies
    with pytest.raises(ValueError, match=match):
        _tiny(**params).fit(X, **fit_kw)


def test_presets_published_is_plain_moco_and_the_photometry_preset_adds_the_terms():
    from skphotoz import MOCO_PRESETS

    plain, colour = MOCO_PRESETS["published"], MOCO_PRESETS["published-photometry"]
    assert plain["photometry_weight"] == 0.0 and plain["redshift_weight"] == 0.0
    assert colour["photometry_weight"] > 0 and colour["redshift_weight"] == 0.0
    # Off by default: measured to make fine-tuned models worse (docs/results.md).
    assert MoCoEmbedder().redshift_weight == 0.0
    assert len(_tiny().fit(np.random.default_rng(0).normal(size=(20, 3)), np.ones(20)).heads_) == 1
    assert {k: v for k, v in colour.items() if not k.endswith("_weight")} == {
        k: v for k, v in plain.items() if not k.endswith("_weight")
    }
    MoCoEmbedder(**colour)._validate_params()


def test_semi_supervised_pretraining_refuses_missing_value_codes():
    # An archive written by another tool may hold -9999 for "no redshift": the redshift term
    # would learn it as a redshift.

    X = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
    y = np.full(16, np.nan)
    y[:4] = [0.1, -9999.0, 0.2, 0.05]
    embedder = MoCoEmbedder(n_epochs=1, batch_size=8, redshift_weight=1.0, random_state=0)
    with pytest.raises(
        ValueError, match=r"y must be > -1 .*1 row\(s\) are not, e.g. row 1 is -9999"
    ):
        embedder.fit(X, y)
    # With the redshift term off, y is not used as redshifts.
    MoCoEmbedder(n_epochs=1, batch_size=8, random_state=0).fit(X, y)


@pytest.mark.parametrize(
    "crop, jitter, scale, radii",
    [
        (32, 4.0, 1.3, (1.5, 3.0)),  # CPU default: the 6" aperture (15 px) leaves the view
        (64, 7.0, 1.0, (1.5, 3.0, 6.0)),  # the published crop keeps all three
        (8, 4.0, 1.3, (1.5, 3.0)),  # none fits: the two smallest
    ],
)
def test_photometry_term_keeps_the_apertures_inside_the_views(crop, jitter, scale, radii):
    assert view_photometry(5, crop, jitter, scale).radii == radii
    assert view_photometry(2, crop, jitter, scale).reference_band == 1


def test_photometry_term_follows_the_augmentations(galaxies):
    X, _ = galaxies
    emb = _tiny(photometry_weight=1.0, brightness=1.0, dust_ebv=0.2).fit(X)
    assert emb.target_photometry_.radii == (1.5, 3.0)
    # The head: a bottleneck MLP under a mean squared error.
    head = emb.heads_["photometry"]
    assert head.loss_name == "mse" and isinstance(head.net, torch.nn.Sequential)
    catalogue = _tiny(photometry_weight=1.0).fit(X, photometry=np.ones((48, 2)))
    assert catalogue.target_photometry_ is None
    # Other than 5 bands: no reddening, the brightness change still followed.
    three = _tiny(photometry_weight=1.0, brightness=1.0, dust_ebv=0.2).fit(X[:, :3])
    assert three.target_photometry_.band_weights().shape == (6, 3)
    assert np.isfinite(three.history_[-1]["loss_photometry"])
