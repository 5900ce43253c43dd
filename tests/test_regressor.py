import copy
import math

import joblib
import numpy as np
import pytest
import torch
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, cross_validate
from sklearn.preprocessing import StandardScaler

from skphotoz import MoCoEmbedder, PhotoZRegressor
from skphotoz import io as skio
from skphotoz.datasets import load_sdss_catalog, make_sdss_galaxies
from skphotoz.exceptions import UntrustedFileError
from skphotoz.metrics import PHOTOZ_SCORING, sigma_mad, sigma_mad_scorer


@pytest.fixture(scope="module")
def photometry():
    """Dereddened colours and r magnitude of the real SDSS catalogue."""
    cat = load_sdss_catalog()
    mags = 22.5 - 2.5 * np.log10(np.clip(cat.modelflux, 1e-3, None)) - cat.extinction
    X = np.column_stack([mags[:, :-1] - mags[:, 1:], mags[:, 2]]).astype(np.float32)
    return X[:3000], cat.redshift[:3000]


@pytest.fixture(scope="module")
def images():
    sample = make_sdss_galaxies(40, random_state=1, stamp_size=16)
    return sample.images, sample.redshift


def _fast(**kw):
    params = dict(n_epochs=2, batch_size=16, random_state=0, device="cpu")
    return PhotoZRegressor(**{**params, **kw})


@pytest.fixture(scope="module")
def frozen_embedder(photometry):
    X, _ = photometry
    return MoCoEmbedder(n_epochs=1, batch_size=64, random_state=0, device="cpu").fit(X[:500])


def test_from_scratch_learns_far_better_than_the_median(photometry):
    X, z = photometry
    model = PhotoZRegressor(n_epochs=15, batch_size=64, lr=0.05, random_state=0, device="cpu")
    model.fit(X[:2500], z[:2500])
    learned = sigma_mad(z[2500:], model.predict(X[2500:]))
    median_only = sigma_mad(z[2500:], np.full(500, np.median(z[:2500])))
    assert learned < 0.5 * median_only, (learned, median_only)


def test_pdf_quantiles_and_point_estimates(photometry):
    X, z = photometry
    model = _fast(n_epochs=4, batch_size=64).fit(X[:1000], z[:1000])
    pdf = model.predict_pdf(X[:50])
    assert pdf.shape == (50, 180) and model.redshift_bins_.shape == (181,)
    np.testing.assert_allclose(model.redshift_bins_, np.linspace(0, 0.4, 181))
    # The PDF is the softmax of the network's logits, computed here independently.
    network = copy.deepcopy(model.model_.predictor).double()
    logits = network(torch.as_tensor(X[:50], dtype=torch.float64)).detach().numpy()
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(pdf, expected / expected.sum(axis=1, keepdims=True), rtol=1e-6)
    centres = 0.5 * (model.redshift_bins_[1:] + model.redshift_bins_[:-1])
    np.testing.assert_allclose(model.predict(X[:50]), pdf @ centres, atol=1e-9)
    q = model.predict_quantiles(X[:50], [0.1, 0.5, 0.9])
    assert np.all(np.diff(q, axis=1) >= 0)
    median = model.set_params(point_estimate="median").predict(X[:50])
    np.testing.assert_allclose(median, q[:, 1], atol=1e-9)
    mode = model.set_params(point_estimate="mode").predict(X[:50])
    np.testing.assert_allclose(mode, centres[np.argmax(pdf, axis=1)])
    low, high = model.predict_interval(X[:50], 0.8)
    np.testing.assert_allclose(low, q[:, 0], atol=1e-9)
    np.testing.assert_allclose(high, q[:, 2], atol=1e-9)


@pytest.mark.parametrize("head", ["bins", "regression"])
def test_predict_returns_the_pdf_of_the_same_pass(photometry, head):
    X, z = photometry
    model = _fast(head=head).fit(X[:200], z[:200])
    point, pdf = model.predict(X[:30], return_pdf=True)
    np.testing.assert_array_equal(point, model.predict(X[:30]))
    np.testing.assert_array_equal(pdf, model.predict_pdf(X[:30]))
    with pytest.raises(TypeError, match="return_pdf must be True or False; got 'yes'"):
        model.predict(X[:2], return_pdf="yes")


def test_regression_head_predicts_gaussian_mean_and_pdf(photometry):
    X, z = photometry
    model = _fast(head="regression", n_epochs=4, batch_size=64).fit(X[:1000], z[:1000])
    pdf = model.predict_pdf(X[:20])
    network = copy.deepcopy(model.model_.predictor).double()
    mean, log_sigma = network(torch.as_tensor(X[:20], dtype=torch.float64)).detach().numpy().T
    np.testing.assert_allclose(model.predict(X[:20]), mean, rtol=1e-6)
    # The PDF is the Gaussian integrated over each bin, renormalised within the bins.
    edges = model.redshift_bins_
    cdf = np.array(
        [[0.5 * math.erf((e - m) / (s * math.sqrt(2))) for e in edges] for m, s in zip(
            mean, np.exp(log_sigma), strict=True
        )]
    )  # fmt: skip
    mass = np.diff(cdf, axis=1)
    np.testing.assert_allclose(pdf, mass / mass.sum(axis=1, keepdims=True), atol=1e-6)
    assert sigma_mad(z[1000:1200], model.predict(X[1000:1200])) < 0.05


def test_backbone_learning_rate_is_ratio_of_head(photometry, frozen_embedder):
    X, z = photometry
    model = _fast(encoder=FrozenEstimator(frozen_embedder), backbone_lr_ratio=0.25, lr=0.04)
    model.fit(X[:200], z[:200])
    for entry in model.history_:
        backbone_lr, head_lr = entry["lrs"]
        assert backbone_lr == pytest.approx(0.25 * head_lr, rel=1e-12)
    assert model.history_[0]["lrs"][1] > 0
    # From scratch, the whole network learns at the head's rate.
    scratch = _fast().fit(X[:200], z[:200])
    assert scratch.history_[0]["lrs"][0] == scratch.history_[0]["lrs"][1]


def test_frozen_embedder_is_bit_identical_and_never_refitted(
    photometry, frozen_embedder, monkeypatch
):
    X, z = photometry
    before = {k: v.clone() for k, v in frozen_embedder.moco_.state_dict().items()}

    def no_pretraining(*args, **kwargs):
        raise AssertionError("the frozen embedder was fitted again")

    monkeypatch.setattr(MoCoEmbedder, "fit", no_pretraining)
    scores = cross_val_score(
        _fast(encoder=FrozenEstimator(frozen_embedder)),
        X[:300], z[:300], cv=3, scoring=sigma_mad_scorer,
    )  # fmt: skip
    expected = [
        -sigma_mad(
            z[test],
            _fast(encoder=FrozenEstimator(frozen_embedder))
            .fit(X[train], z[train])
            .predict(X[test]),
        )
        for train, test in KFold(3).split(X[:300])
    ]
    np.testing.assert_allclose(scores, expected, rtol=1e-12)
    after = frozen_embedder.moco_.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_fine_tuning_changes_a_copy(photometry, frozen_embedder):
    X, z = photometry
    model = _fast(encoder=FrozenEstimator(frozen_embedder)).fit(X[:300], z[:300])
    tuned = model.model_.encoder.state_dict()
    original = frozen_embedder.encoder_.state_dict()
    assert any(not torch.equal(tuned[k], original[k]) for k in original)
    assert model.embedder_ is frozen_embedder


def test_nan_labelled_rows_reach_pretraining_only(photometry, monkeypatch):
    X, z = photometry
    X, y = X[:120], z[:120].copy()
    y[::3] = np.nan
    seen = {}
    original_fit = MoCoEmbedder.fit
    original_train = PhotoZRegressor._train

    def spy_pretrain(self, X, y=None):
        seen["pretrain"] = len(X)
        return original_fit(self, X, y)

    def spy_finetune(self, task, arrays, **kwargs):
        seen["finetune"] = len(arrays[0])
        seen["labels"] = np.asarray(arrays[1])
        return original_train(self, task, arrays, **kwargs)

    monkeypatch.setattr(MoCoEmbedder, "fit", spy_pretrain)
    monkeypatch.setattr(PhotoZRegressor, "_train", spy_finetune)
    encoder = MoCoEmbedder(n_epochs=1, batch_size=32, device="cpu")
    model = _fast(encoder=encoder).fit(X, y)
    assert seen["pretrain"] == 120
    assert seen["finetune"] == 80 and np.isfinite(seen["labels"]).all()
    assert model.embedder_ is not encoder and not hasattr(encoder, "moco_")
    assert model.embedder_.random_state is not None


def test_encoder_from_a_saved_embedder(photometry, frozen_embedder, tmp_path):
    X, z = photometry
    path = tmp_path / "embedder.skops"
    skio.dump(frozen_embedder, path)
    model = _fast(encoder=str(path)).fit(X[:100], z[:100])
    assert model.predict(X[:5]).shape == (5,)
    # A pickle runs code when loaded: refused from a path, with the way to load a trusted one.
    pickled = tmp_path / "embedder.joblib"
    joblib.dump(frozen_embedder, pickled)
    with pytest.raises(UntrustedFileError, match=r"pickle.*FrozenEstimator\(skphotoz\.io\.load"):
        _fast(encoder=str(pickled)).fit(X[:100], z[:100])
    trusted = FrozenEstimator(skio.load(pickled, trusted=True))
    model = _fast(encoder=trusted).fit(X[:100], z[:100])
    assert model.predict(X[:5]).shape == (5,)


def test_images_from_scratch_and_pickle(images, tmp_path):
    X, z = images
    model = _fast(crop_size=12).fit(X, z)
    pred = model.predict(X)
    assert pred.shape == (40,) and np.all((pred >= 0) & (pred <= 0.4))
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    np.testing.assert_array_equal(joblib.load(path).predict(X), pred)
    np.testing.assert_array_equal(joblib.load(path).predict_pdf(X), model.predict_pdf(X))
    with pytest.raises(ValueError, match="fitted on samples of shape \\(5, 16, 16\\)"):
        model.predict(X[:, :, :8, :8])


@pytest.mark.parametrize("head", ["bins", "regression"])
def test_test_time_augmentation_averages_the_dihedral_views(images, head):
    X, z = images
    model = _fast(crop_size=8, head=head, target_sigma=0.01).fit(X, z)
    views = [np.rot90(X, k, axes=(2, 3)) for k in range(4)]
    views = [np.ascontiguousarray(v) for r in views for v in (r, r[..., ::-1])]
    expected_pdf = np.mean([model.predict_pdf(v) for v in views], axis=0)
    expected_z = np.mean([model.predict(v) for v in views], axis=0)
    plain = model.predict(X)
    model.set_params(test_time_augmentation=True)
    np.testing.assert_allclose(model.predict_pdf(X), expected_pdf, atol=1e-5)
    if head == "regression":
        np.testing.assert_allclose(model.predict(X), expected_z, atol=1e-5)
    # The same eight views of a turned galaxy: the same answer; without TTA, not quite.
    turned = np.ascontiguousarray(np.rot90(X, 1, axes=(2, 3)))
    np.testing.assert_allclose(model.predict(turned), model.predict(X), atol=1e-5)
    assert not np.allclose(plain, model.predict(X), atol=1e-5)
    with pytest.raises(ValueError, match="'test_time_augmentation' parameter .* Got 1 instead"):
        model.set_params(test_time_augmentation=1).predict(X)


def test_a_rows_prediction_does_not_depend_on_its_batch(photometry):
    # In float32 the matrix products round differently with the number of rows (3e-8 here).
    X, z = photometry
    model = _fast(head="regression", n_epochs=3, batch_size=64).fit(X[:500], z[:500])
    together = model.predict(X[:294])
    np.testing.assert_array_equal(
        np.concatenate([model.predict(X[i : i + 7]) for i in range(0, 294, 7)]), together
    )
    np.testing.assert_array_equal(
        np.concatenate([model.predict(X[i : i + 1]) for i in range(50)]), together[:50]
    )


def test_test_time_augmentation_needs_images(photometry):
    X, z = photometry
    with pytest.raises(ValueError, match="test_time_augmentation needs images"):
        _fast(test_time_augmentation=True).fit(X[:50], z[:50])


def test_grid_search_and_cross_validate(photometry):
    X, z = photometry
    X, z = X[:240], z[:240]
    cv = KFold(2)
    search = GridSearchCV(_fast(), {"lr": [0.01, 0.2]}, scoring=sigma_mad_scorer, cv=cv)
    search.fit(X, z)
    # The scores of each setting, computed by hand on the same folds.
    by_hand = {
        lr: np.mean(
            [
                -sigma_mad(z[test], _fast(lr=lr).fit(X[train], z[train]).predict(X[test]))
                for train, test in cv.split(X)
            ]
        )
        for lr in (0.01, 0.2)
    }
    assert search.best_params_["lr"] == max(by_hand, key=by_hand.get)
    assert search.best_score_ == pytest.approx(max(by_hand.values()), rel=1e-12)
    result = cross_validate(_fast(), X, z, cv=cv, scoring=PHOTOZ_SCORING)
    for k, (train, test) in enumerate(cv.split(X)):
        z_phot = _fast().fit(X[train], z[train]).predict(X[test])
        assert result["test_neg_sigma_mad"][k] == pytest.approx(-sigma_mad(z[test], z_phot))


def test_early_stopping_keeps_best_weights(photometry):
    X, z = photometry
    model = _fast(n_epochs=40, early_stopping=True, n_iter_no_change=2, lr=0.2)
    model.fit(X[:400], z[:400])
    losses = [h["validation_loss"] for h in model.history_]
    assert len(losses) < 40
    best = int(np.argmin(losses))
    assert len(losses) - 1 - best == 2  # stopped after 2 epochs without improvement


def test_out_of_range_labels_warn(photometry):
    X, z = photometry
    z = z[:100].copy()
    z[:3] = 0.6
    with pytest.warns(UserWarning, match="3 of 100 labels lie outside z_range"):
        _fast(n_epochs=1).fit(X[:100], z)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"head": "mixture"}, "'head' parameter of PhotoZRegressor must be a str among"),
        ({"z_range": (0.4, 0.0)}, "z_range must be two finite numbers"),
        ({"n_bins": 1}, "'n_bins' parameter of PhotoZRegressor must be an int in the range"),
        ({"backbone_lr_ratio": 0}, "'backbone_lr_ratio' parameter of PhotoZRegressor must be"),
        ({"target_sigma": -0.01}, "'target_sigma' parameter of PhotoZRegressor must be"),
        ({"validation_fraction": 1.5}, "'validation_fraction' parameter of PhotoZRegressor"),
        ({"point_estimate": "max"}, "'point_estimate' parameter of PhotoZRegressor must be"),
        ({"n_epochs": "many"}, "'n_epochs' parameter of PhotoZRegressor must be"),
        ({"freeze_backbone": 1}, "'freeze_backbone' parameter of PhotoZRegressor must be"),
        ({"encoder": "not-an-embedder"}, "No such file|not-an-embedder"),
        ({"encoder": 3}, "'encoder' parameter of PhotoZRegressor must be"),
        ({"encoder": StandardScaler()}, "encoder must be None, a MoCoEmbedder"),
    ],
)
def test_parameter_errors(photometry, params, match):
    X, z = photometry
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        _fast(**params).fit(X[:50], z[:50])


def test_label_errors(photometry):
    X, z = photometry
    with pytest.raises(ValueError, match="y must be a 1-D array of 50 redshifts"):
        _fast().fit(X[:50], z[:49])
    with pytest.raises(ValueError, match="got 0 samples with a label"):
        _fast().fit(X[:50], np.full(50, np.nan))
    with pytest.raises(ValueError, match="y contains infinity"):
        _fast().fit(X[:50], np.full(50, np.inf))


def test_pipeline_probe_on_embeddings(images):
    from sklearn.pipeline import make_pipeline

    X, z = images
    probe = make_pipeline(
        MoCoEmbedder(n_epochs=1, batch_size=16, random_state=0, device="cpu"), _fast()
    )
    probe.fit(X, z)
    assert probe[-1].input_shape_ == (512,)  # the regressor sees 512-d embeddings
    assert probe.predict(X).shape == (40,)
