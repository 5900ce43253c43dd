"""The photometry and redshift terms of MoCo pretraining (colour-aware, semi-supervised)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LinearRegression
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline

from skphotoz import MoCoEmbedder, PhotoZRegressor
from skphotoz.datasets import make_sdss_galaxies
from skphotoz.nn import GalaxyAugment, MoCo, MoCoTask, TargetHead
from skphotoz.preprocessing import AperturePhotometry


@pytest.fixture(scope="module")
def galaxies():
    sample = make_sdss_galaxies(48, random_state=0, stamp_size=16)
    return sample.images, sample.redshift


def _tiny(**kw):
    params = dict(n_epochs=1, batch_size=16, queue_size=32, random_state=0, device="cpu")
    return MoCoEmbedder(**{**params, **kw})


# ------------------------------------------------------------------ the pieces
def test_target_head_loss_is_huber_on_standardised_known_rows():
    torch.manual_seed(0)
    head = TargetHead(4, center=[1.0, -2.0], scale=[2.0, 0.5])
    features = torch.randn(5, 4)
    target = torch.tensor([[3.0, -2.0], [1.0, 1.0], [float("nan"), 0.0], [0.0, -1.0], [9, 9]])
    predicted = head.net(features)
    known = [0, 1, 3, 4]
    standard = (target[known] - torch.tensor([1.0, -2.0])) / torch.tensor([2.0, 0.5])
    expected = F.smooth_l1_loss(predicted[known], standard)
    assert head.loss(features, target).item() == pytest.approx(expected.item(), rel=1e-6)
    # forward gives the targets' own units.
    assert torch.allclose(head(features), predicted * torch.tensor([2.0, 0.5]) + torch.tensor(
        [1.0, -2.0]))  # fmt: skip


def test_target_head_without_known_rows_gives_zero_loss_and_zero_gradient():
    head = TargetHead(3, center=[0.0], scale=[1.0])
    loss = head.loss(torch.randn(4, 3), torch.full((4,), float("nan")))
    loss.backward()
    assert loss.item() == 0.0
    assert all(float(p.grad.abs().sum()) == 0.0 for p in head.parameters())


class _Flat(torch.nn.Module):
    out_features = 8

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(5 * 8 * 8, 8))

    def forward(self, x):
        return self.net(x)


def test_moco_task_weighs_its_terms():
    torch.manual_seed(0)
    images = torch.rand(6, 5, 12, 12)
    photometry, z = torch.randn(6, 3), torch.tensor([0.1, float("nan"), 0.2, 0.3, 0.1, 0.05])
    augment = GalaxyAugment(8, noise=0.0, psf_fwhm=0.0)
    losses = []
    for weights in ((1.0, 0.0, 0.0), (0.5, 2.0, 3.0), (0.0, 1.0, 0.0)):
        torch.manual_seed(1)
        moco = MoCo(_Flat(), projection_dim=4, queue_size=12)
        task = MoCoTask(
            moco,
            augment,
            TargetHead(8, torch.zeros(3), torch.ones(3)),
            TargetHead(8, [0.1], [0.1]),
            weights=weights,
        )
        loss = task(images, photometry, z, generator=torch.Generator().manual_seed(2))
        terms = task.loss_terms
        expected = sum(w * terms[k] for w, k in zip(weights, terms, strict=True))
        assert loss.item() == pytest.approx(float(expected), rel=1e-6)
        losses.append(terms)
    # Same seeds, same views: the unweighted terms do not depend on the weights.
    for name in ("contrastive", "photometry", "redshift"):
        assert losses[0][name].item() == pytest.approx(losses[1][name].item(), rel=1e-6)


# ------------------------------------------------------------------ the estimator
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
    targets = emb._photometry_targets(X, None)
    np.testing.assert_allclose(targets, AperturePhotometry().fit_transform(X), rtol=1e-6)
    # Feature vectors are their own targets; catalogue photometry replaces the measurement.
    V = X.reshape(48, -1)[:, :6]
    np.testing.assert_array_equal(emb._photometry_targets(V, None), V)
    catalogue = np.arange(96.0).reshape(48, 2)
    np.testing.assert_array_equal(emb._photometry_targets(X, catalogue), catalogue)


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
    assert predicted.shape == (48, 11) and np.isfinite(predicted).all()


def test_photometry_term_puts_the_photometry_into_the_embeddings():
    sample = make_sdss_galaxies(128, random_state=1, stamp_size=16)
    X = sample.images
    colours = AperturePhotometry().fit_transform(X)[:, :4]
    params = dict(n_epochs=6, batch_size=32, queue_size=64, random_state=0, crop_size=12)

    def held_out_r2(emb):
        Z = emb.fit(X[:96]).transform(X)
        return LinearRegression().fit(Z[:96], colours[:96]).score(Z[96:], colours[96:])

    # Contrastive only vs photometry only: the photometry term alone must teach the colours.
    plain = held_out_r2(MoCoEmbedder(photometry_weight=0.0, **params))
    colour = held_out_r2(MoCoEmbedder(contrastive_weight=0.0, photometry_weight=1.0, **params))
    assert colour > plain + 0.1, (colour, plain)


def test_semi_supervised_redshift_term_learns_the_labels():
    sample = make_sdss_galaxies(128, random_state=2, stamp_size=16)
    X, z = sample.images, sample.redshift
    y = z.copy()
    y[::2] = np.nan  # half labelled
    emb = MoCoEmbedder(
        n_epochs=8, batch_size=32, queue_size=64, random_state=0, crop_size=12,
        contrastive_weight=0.0, photometry_weight=0.0, redshift_weight=1.0,
    ).fit(X, y)  # fmt: skip
    losses = [h["loss_redshift"] for h in emb.history_]
    assert losses[-1] < 0.7 * losses[0], losses
    predicted = emb.heads_["redshift"](torch.as_tensor(emb.transform(X)))[:, 0].detach().numpy()
    labelled = ~np.isnan(y)
    # (eval-mode batch norm on centre crops after 8 epochs: a loose but real correlation)
    assert np.corrcoef(predicted[labelled], z[labelled])[0, 1] > 0.25


def test_pipeline_and_regressor_hand_their_labels_to_the_embedder(galaxies):
    X, z = galaxies
    y = z.copy()
    y[::3] = np.nan
    pipe = make_pipeline(_tiny(), KNeighborsRegressor(3)).fit(X, z)
    assert set(pipe[0].heads_) == {"photometry", "redshift"}
    reg = PhotoZRegressor(_tiny(), n_epochs=1, batch_size=16, random_state=0).fit(X, y)
    assert set(reg.embedder_.heads_) == {"photometry", "redshift"}
    # ... and the same embedder pretrained on its own with the same labels is the one used.
    alone = _tiny(random_state=reg.embedder_.random_state).fit(X, y)
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
    assert colour["photometry_weight"] > 0 and colour["redshift_weight"] > 0
    assert {k: v for k, v in colour.items() if not k.endswith("_weight")} == {
        k: v for k, v in plain.items() if not k.endswith("_weight")
    }
    MoCoEmbedder(**colour)._validate_params()
