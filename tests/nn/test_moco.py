import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from skphotoz.nn import GalaxyAugment, MoCo, MoCoTask, TargetHead, ViewShift, info_nce


class _Linear(nn.Module):
    def __init__(self, d_in=6, d_out=8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, d_out), nn.BatchNorm1d(d_out))
        self.out_features = d_out

    def forward(self, x):
        return self.net(x)


def _moco(queue_size=10, momentum=0.9, **kw):
    torch.manual_seed(0)
    return MoCo(_Linear(), projection_dim=4, queue_size=queue_size, momentum=momentum, **kw)


def test_info_nce_matches_hand_computation():
    torch.manual_seed(1)
    q = F.normalize(torch.randn(3, 4), dim=1)
    k = F.normalize(torch.randn(3, 4), dim=1)
    queue = F.normalize(torch.randn(5, 4), dim=1)
    t = 0.2
    expected = 0.0
    for i in range(3):
        pos = torch.exp(q[i] @ k[i] / t)
        neg = sum(torch.exp(q[i] @ queue[j] / t) for j in range(5))
        expected += -torch.log(pos / (pos + neg))
    expected /= 3
    assert info_nce(q, k, queue, t).item() == pytest.approx(expected.item(), rel=1e-5)


def test_info_nce_is_low_when_positive_dominates():
    q = torch.eye(4)[:2]
    good = info_nce(q, q.clone(), torch.eye(4)[2:], 0.1)
    bad = info_nce(q, torch.eye(4)[2:], q.clone(), 0.1)
    assert good < 0.01 < bad


def test_enqueue_wraps_around():
    moco = _moco(queue_size=10)
    first = torch.arange(7 * 4, dtype=torch.float32).reshape(7, 4)
    moco.enqueue(first)
    assert moco.queue_ptr.item() == 7
    torch.testing.assert_close(moco.queue[:7], first)
    second = -torch.arange(1, 6 * 4 + 1, dtype=torch.float32).reshape(6, 4)
    old_slot_3 = moco.queue[3].clone()
    moco.enqueue(second)
    # Keys 7, 8, 9 then wrap to 0, 1, 2; slot 3 keeps its key from the first batch.
    torch.testing.assert_close(moco.queue[7:10], second[:3])
    torch.testing.assert_close(moco.queue[0:3], second[3:])
    torch.testing.assert_close(moco.queue[3], old_slot_3)
    assert moco.queue_ptr.item() == 3


def test_enqueue_batch_larger_than_queue_keeps_newest():
    moco = _moco(queue_size=4)
    keys = torch.arange(6 * 4, dtype=torch.float32).reshape(6, 4)
    moco.enqueue(keys)
    assert sorted(moco.queue[:, 0].tolist()) == sorted(keys[2:, 0].tolist())


def test_key_encoder_gets_no_gradient_and_follows_momentum_rule():
    moco = _moco(momentum=0.9)
    assert all(not p.requires_grad for p in moco.key_encoder.parameters())
    # Make the encoders differ, then check one step against the rule by hand.
    with torch.no_grad():
        for p in moco.query_encoder.parameters():
            p.add_(torch.randn_like(p))
    key_before = copy.deepcopy(moco.key_encoder.state_dict())
    query_before = copy.deepcopy(moco.query_encoder.state_dict())
    loss = moco(torch.randn(8, 6), torch.randn(8, 6))
    loss.backward()
    for name, p in moco.key_encoder.named_parameters():
        assert p.grad is None
        expected = 0.9 * key_before[name] + 0.1 * query_before[name]
        torch.testing.assert_close(p, expected, rtol=0, atol=1e-6)
    assert any(p.grad is not None for p in moco.query_encoder.parameters())


def test_forward_enqueues_normalised_keys():
    moco = _moco(queue_size=16)
    moco(torch.randn(8, 6), torch.randn(8, 6))
    assert moco.queue_ptr.item() == 8
    torch.testing.assert_close(moco.queue[:8].norm(dim=1), torch.ones(8))


def test_shuffle_bn_restores_order():
    moco = _moco(bn_groups=2)
    moco.train()
    x = torch.randn(8, 6)
    gen = torch.Generator().manual_seed(3)
    keys = moco.encode_keys(x, gen)
    # Re-run the same shuffled groups by hand and unshuffle.
    order = torch.randperm(8, generator=torch.Generator().manual_seed(3))
    by_hand = torch.cat([moco.key_encoder(c) for c in x[order].chunk(2)])
    expected = torch.empty_like(by_hand)
    expected[order] = by_hand
    torch.testing.assert_close(keys, F.normalize(expected, dim=1))
    # BatchNorm statistics of a sub-batch differ from the full batch's: groups matter.
    whole = F.normalize(moco.key_encoder(x), dim=1)
    assert not torch.allclose(keys, whole, atol=1e-4)


# -- the photometry and redshift terms of pretraining ------------------------------------
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


@pytest.mark.parametrize("loss", ["huber", "mse"])
def test_target_head_weighted_loss_weighs_each_row_and_counts_the_rows_with_a_target(loss):
    torch.manual_seed(0)
    head = TargetHead(4, center=[0.2], scale=[0.1], hidden=6, loss=loss)
    features = torch.randn(5, 4)
    target = torch.tensor([0.1, 0.3, float("nan"), 0.25, 0.2])
    weight = torch.tensor([1.0, 0.5, 1.0, 0.0, 2.0])
    predicted = head.net(features)[:, 0]
    standard = (target - 0.2) / 0.1
    rows = torch.tensor([0, 1, 3, 4])  # the rows with a target
    if loss == "mse":
        errors = (predicted[rows] - standard[rows]) ** 2
    else:
        errors = F.smooth_l1_loss(predicted[rows], standard[rows], reduction="none")
    expected = (errors * weight[rows]).sum() / 4
    assert head.loss(features, target, weight).item() == pytest.approx(expected.item(), rel=1e-6)
    # Equal weights give the plain mean.
    ones = torch.ones(5)
    assert head.loss(features, target, ones).item() == pytest.approx(
        head.loss(features, target).item(), rel=1e-6
    )


def test_moco_task_splits_weighted_redshift_targets():
    images = torch.rand(4, 5, 12, 12, generator=torch.Generator().manual_seed(0))
    z = torch.tensor([0.1, 0.2, 0.3, 0.15])
    nan = float("nan")

    def redshift_term(targets, weighted):
        torch.manual_seed(1)
        moco = MoCo(_Flat(), projection_dim=4, queue_size=8)
        head = TargetHead(8, [0.2], [0.1])
        task = MoCoTask(moco, GalaxyAugment(8, noise=0.0), redshift_head=head,
                        weights=(1.0, 0.0, 1.0), redshift_weighted=weighted)  # fmt: skip
        task(images, targets, generator=torch.Generator().manual_seed(2))
        return task.loss_terms["redshift"].item()

    # Weights of 1 are the unweighted term; a row of weight 0 adds nothing but still counts
    # in the mean, so that a row pulls as hard whatever else its batch holds.
    ones, first = torch.ones(4), torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert redshift_term(torch.stack([z, ones], 1), True) == pytest.approx(
        redshift_term(z, False), rel=1e-6
    )
    only_first = torch.tensor([0.1, nan, nan, nan])
    assert redshift_term(torch.stack([z, first], 1), True) == pytest.approx(
        redshift_term(only_first, False) / 4, rel=1e-6
    )
    assert redshift_term(z, False) != pytest.approx(redshift_term(only_first, False), rel=1e-3)


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


@pytest.mark.parametrize("n_keys", [10_000, 4096, 100])
def test_info_nce_in_chunks_matches_one_matrix(n_keys):
    """The chunked log-sum-exp gives the loss and the gradients of the whole logits matrix."""
    gen = torch.Generator().manual_seed(0)

    def unit(*shape):
        return torch.nn.functional.normalize(torch.randn(*shape, generator=gen), dim=1)

    q, k, queue = unit(32, 16), unit(32, 16), unit(n_keys, 16)
    grads = []
    losses = []
    for chunk in (None, 4096, 1000):
        query, key = q.clone().requires_grad_(), k.clone().requires_grad_()
        loss = info_nce(query, key, queue, 0.07, chunk_size=chunk)
        loss.backward()
        losses.append(loss.item())
        grads.append((query.grad, key.grad))
    for loss, (gq, gk) in zip(losses[1:], grads[1:], strict=True):
        assert loss == pytest.approx(losses[0], rel=1e-6)
        torch.testing.assert_close(gq, grads[0][0], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(gk, grads[0][1], rtol=1e-5, atol=1e-7)


def test_info_nce_gives_negatives_that_need_it_their_gradient():
    q = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    queue = torch.nn.functional.normalize(torch.randn(50, 8), dim=1).requires_grad_()
    info_nce(q, q.clone(), queue, 0.1, chunk_size=16).backward()
    assert queue.grad is not None and queue.grad.abs().sum() > 0


def test_target_head_mlp_with_mse_clips_far_targets():
    torch.manual_seed(0)
    head = TargetHead(4, center=[0.0, 1.0], scale=[1.0, 2.0], hidden=3, loss="mse")
    assert [type(m).__name__ for m in head.net] == ["Linear", "ReLU", "Linear"]
    assert head.net[0].out_features == 3
    features = torch.randn(3, 4)
    target = torch.tensor([[0.5, 1.0], [40.0, 3.0], [-1.0, -99.0]])
    standard = torch.tensor([[0.5, 0.0], [5.0, 1.0], [-1.0, -5.0]])  # clipped at +-5 units
    expected = F.mse_loss(head.net(features), standard)
    assert head.loss(features, target).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="loss must be 'huber' or 'mse'; got 'l1'"):
        TargetHead(4, [0.0], [1.0], loss="l1")


def test_view_shift_moves_each_feature_by_its_bands():
    weights = torch.tensor([[1.0, -1.0, 0.0], [0.0, 1.0, 0.0]])  # a colour, a magnitude
    shift = ViewShift(weights)
    # Brightness 0.7 and -0.2 mag; the second view also reddened by E(B-V) = 0.1 with
    # R = (5, 3, 2).
    draws = {"magnitude_change": torch.tensor([[0.7, 0.7, 0.7], [0.3, 0.1, 0.0]])}
    # Brightness moves magnitudes only; reddening moves a-b by (R_a - R_b) E(B-V).
    expected = torch.tensor([[0.0, 0.7], [0.2, -0.2 + 0.3]])
    torch.testing.assert_close(shift(draws), expected)


def test_moco_task_asks_each_query_view_for_its_own_photometry():
    # The target the head gets is the stamp's photometry moved by the brightness and
    # reddening drawn for that query view, which are the draws of the first augment call.
    torch.manual_seed(0)
    images = torch.rand(6, 5, 12, 12)
    photometry = torch.randn(6, 11)
    augment = GalaxyAugment(8, noise=0.0, psf_fwhm=0.0, brightness=1.0, dust_ebv=0.3)
    weights = torch.randn(11, 5)
    seen = []

    class Recording(TargetHead):
        def loss(self, features, target):
            seen.append(target.clone())
            return super().loss(features, target)

    head = Recording(8, torch.zeros(11), torch.ones(11))
    task = MoCoTask(
        MoCo(_Flat(), projection_dim=4, queue_size=12),
        augment,
        head,
        weights=(1.0, 1.0, 0.0),
        view_shift=ViewShift(weights),
    )
    task(images, photometry, generator=torch.Generator().manual_seed(3))
    _, draws = augment(images, torch.Generator().manual_seed(3), return_draws=True)
    assert draws["delta_mag"].abs().max() > 0.1 and draws["ebv"].max() > 0.05
    extinction = augment.extinction_coefficients
    magnitude_change = draws["delta_mag"][:, None] + draws["ebv"][:, None] * extinction
    torch.testing.assert_close(seen[0], photometry + magnitude_change @ weights.T)
