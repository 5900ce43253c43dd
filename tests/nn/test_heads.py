import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skphotoz.nn.heads import BinnedRedshiftHead

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
