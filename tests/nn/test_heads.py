import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skphotoz.nn.heads import BinnedRedshiftHead, GaussianRedshiftHead

EDGES = np.linspace(0.0, 0.4, 181)


def test_one_hot_targets_give_plain_cross_entropy():
    head = BinnedRedshiftHead(4, EDGES)
    z = torch.tensor([0.0, 0.0999, 0.1, 0.25, 0.3999, 0.7, -0.2])
    logits = torch.randn(len(z), 180, generator=torch.Generator().manual_seed(0))
    bins = torch.tensor([0, 44, 45, 112, 179, 179, 0])
    expected = F.cross_entropy(logits, bins)
    assert float(head.loss(logits, z)) == pytest.approx(float(expected), rel=1e-6)


def test_gaussian_targets_are_centred_normalised_and_as_wide_as_asked():
    sigma = 0.01
    head = BinnedRedshiftHead(4, EDGES, target_sigma=sigma)
    z = torch.tensor([0.1, 0.2013, 0.3])
    target = head.target(z).double()
    np.testing.assert_allclose(target.sum(dim=1), 1.0, atol=1e-6)
    centres = torch.as_tensor(0.5 * (EDGES[1:] + EDGES[:-1]))
    mean = target @ centres
    np.testing.assert_allclose(mean, z.double(), atol=1e-5)
    std = torch.sqrt(target @ centres**2 - mean**2)
    # Binning adds width**2 / 12 to the variance.
    width = EDGES[1] - EDGES[0]
    np.testing.assert_allclose(std, np.sqrt(sigma**2 + width**2 / 12), rtol=1e-3)


def test_gaussian_targets_at_and_beyond_the_ends():
    head = BinnedRedshiftHead(4, EDGES, target_sigma=0.01)
    target = head.target(torch.tensor([0.0, 0.5, -1.0]))
    np.testing.assert_allclose(target.sum(dim=1), 1.0, atol=1e-6)
    # Truncated at z = 0: all of it in the bins, most of it near the label.
    assert float(target[0, :20].sum()) > 0.99
    # Far outside the bins: the end bin, as for one-hot targets.
    assert float(target[1, -1]) == 1.0 and float(target[2, 0]) == 1.0


def test_gaussian_targets_tell_near_misses_from_far_ones():
    z = torch.tensor([0.2])
    centre = int(np.searchsorted(EDGES, 0.2, side="right")) - 1

    def confident(offset):
        logits = torch.full((1, 180), -10.0)
        logits[0, centre + offset] = 10.0
        return logits

    near, far = confident(3), confident(60)  # 0.0067 and 0.13 off
    sharp = BinnedRedshiftHead(4, EDGES)
    assert float(sharp.loss(near, z)) == pytest.approx(float(sharp.loss(far, z)))
    smooth = BinnedRedshiftHead(4, EDGES, target_sigma=0.01)
    assert float(smooth.loss(near, z)) < 0.95 * float(smooth.loss(far, z))


def _binned_gaussian(mean, sigma, edges=EDGES):
    """N(mean, sigma) integrated over each bin with math.erf, renormalised within the bins."""
    cdf = np.array([0.5 * (1 + math.erf((e - mean) / (sigma * math.sqrt(2)))) for e in edges])
    mass = np.diff(cdf)
    return mass / mass.sum()


def test_gaussian_targets_are_the_gaussian_integrated_over_the_bins():
    sigma = 0.01
    head = BinnedRedshiftHead(4, EDGES, target_sigma=sigma)
    z = [0.1234, 0.005, 0.398]  # interior, cut by z = 0, cut by the last edge
    target = head.target(torch.tensor(z)).double().numpy()
    for row, label in zip(target, z, strict=True):
        np.testing.assert_allclose(row, _binned_gaussian(label, sigma), atol=2e-6)


def test_targets_put_their_mass_around_the_label():
    rng = np.random.default_rng(0)
    z = rng.uniform(0.0, 0.4, 200)
    sharp = BinnedRedshiftHead(4, EDGES).target(torch.tensor(z)).numpy()
    smooth = BinnedRedshiftHead(4, EDGES, target_sigma=0.01).target(torch.tensor(z)).numpy()
    centres = 0.5 * (EDGES[1:] + EDGES[:-1])
    for label, one_hot, spread in zip(z, sharp, smooth, strict=True):
        # One-hot: all of it in the bin that holds the label.
        (bin_,) = np.flatnonzero(one_hot)
        assert EDGES[bin_] <= label <= EDGES[bin_ + 1]
        # Gaussian: the label's bin is the most probable, and the mass within 3 sigma of the
        # label is that of the Gaussian (99.7 per cent, renormalised where cut by the ends).
        peak = int(np.argmax(spread))
        assert EDGES[peak] <= label <= EDGES[peak + 1]
        near = np.abs(centres - label) < 0.03
        assert spread[near].sum() > 0.99


def _constant_gaussian_head(mean_out, width_out, z_center, z_scale):
    """A Gaussian head whose networks output the constants ``mean_out`` and ``width_out``."""
    head = GaussianRedshiftHead(4, EDGES, z_center=z_center, z_scale=z_scale, hidden=8)
    with torch.no_grad():
        for mlp, value in ((head.mean, mean_out), (head.log_width, width_out)):
            mlp[-1].weight.zero_()
            mlp[-1].bias.fill_(value)
    return head


def test_gaussian_head_output_is_in_redshift_units():
    head = _constant_gaussian_head(mean_out=0.5, width_out=-1.0, z_center=0.15, z_scale=0.05)
    with torch.no_grad():
        out = head(torch.randn(3, 4)).double()
    # mean = 0.15 + 0.5 * 0.05; log sigma = softplus(-1 + 5) - 5 + log(0.05).
    np.testing.assert_allclose(out[:, 0], 0.175, rtol=1e-6)
    log_sigma = math.log1p(math.exp(4.0)) - 5.0 + math.log(0.05)
    np.testing.assert_allclose(out[:, 1], log_sigma, rtol=1e-6)


def test_gaussian_pdf_is_the_gaussian_integrated_over_the_bins():
    head = GaussianRedshiftHead(4, EDGES, z_center=0.15, z_scale=0.05, hidden=8)
    cases = [(0.1523, 0.02), (0.39, 0.05), (0.001, 0.004), (0.2, 0.0011)]
    output = torch.tensor([[m, math.log(s)] for m, s in cases])
    pdf = head.pdf(output).double().numpy()
    for row, (mean, sigma) in zip(pdf, cases, strict=True):
        np.testing.assert_allclose(row, _binned_gaussian(mean, sigma), atol=5e-6)
    # A Gaussian far beyond the bins puts everything in the nearest end bin.
    far = head.pdf(torch.tensor([[-1.0, math.log(0.01)], [2.0, math.log(0.01)]]))
    assert float(far[0, 0]) == 1.0 and float(far[1, -1]) == 1.0


def test_gaussian_loss_value_and_gradients():
    head = GaussianRedshiftHead(4, EDGES, z_center=0.15, z_scale=0.05, hidden=8)
    z = torch.tensor([0.10, 0.30])
    output = torch.tensor([[0.12, math.log(0.01)], [0.25, math.log(0.1)]], requires_grad=True)
    loss = head.loss(output, z)
    # 0.5 r^2 + 0.5 (r / s)^2 + log s in units of z_scale: r = (z - mean) / 0.05, s = sigma / 0.05.
    r = np.array([-0.02, 0.05]) / 0.05
    s = np.array([0.01, 0.1]) / 0.05
    expected = np.mean(0.5 * r**2 + 0.5 * (r / s) ** 2 + np.log(s))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    # The mean gets the plain least-squares gradient, whatever the width: -(z - mean) / scale^2 / n.
    np.testing.assert_allclose(
        output.grad[:, 0], -(np.array([-0.02, 0.05]) / 0.05**2) / 2, rtol=1e-5
    )
    # The width's gradient vanishes where sigma equals the residual.
    at_optimum = torch.tensor([[0.12, math.log(0.02)], [0.25, math.log(0.05)]], requires_grad=True)
    head.loss(at_optimum, z).backward()
    np.testing.assert_allclose(at_optimum.grad[:, 1], 0.0, atol=1e-6)


def test_gaussian_loss_is_lowest_at_the_labels_mean_and_training_finds_it():
    torch.manual_seed(0)
    head = GaussianRedshiftHead(4, EDGES, z_center=0.15, z_scale=0.05, hidden=16)
    generator = torch.Generator().manual_seed(0)
    z = 0.2 + 0.03 * torch.randn(512, generator=generator)
    features = torch.randn(512, 4, generator=generator)  # carry no information about z
    log_sigma = math.log(0.03)

    def loss_at(mean):
        return float(head.loss(torch.tensor([[mean, log_sigma]]).expand(len(z), 2), z))

    centre = float(z.mean())
    losses = [loss_at(centre + offset) for offset in (0.0, 0.01, 0.03, 0.1)]
    assert losses == sorted(losses) and losses[0] < losses[1]
    assert loss_at(centre - 0.01) > losses[0]

    optimiser = torch.optim.Adam(head.parameters(), lr=0.01)
    first = head.loss(head(features), z).item()
    for _ in range(300):
        optimiser.zero_grad()
        loss = head.loss(head(features), z)
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        out = head(features)
    assert float(head.loss(out, z)) < first
    # No information in the features: the best guess is the labels' mean and scatter.
    assert abs(float(out[:, 0].mean()) - centre) < 0.005
    sigma = float(torch.exp(out[:, 1]).mean())
    assert sigma == pytest.approx(float(z.std()), rel=0.25)
