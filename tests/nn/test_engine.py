import numpy as np
import pytest
import torch
from torch import nn

from skphotoz.nn import TrainConfig, fit_module, predict, resolve_device
from skphotoz.nn.loading import epoch_batches


class _Regression(nn.Module):
    """Least squares with a little noise from the generator, to exercise its seeding."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3, 1)

    def forward(self, x, y, generator=None):
        noise = 1e-3 * torch.randn(x.shape, generator=generator, device=x.device)
        return ((self.linear(x + noise).squeeze(1) - y) ** 2).mean()


def _data(n=96):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    return X, (X @ np.array([1.0, -2.0, 0.5]) + 0.3).astype(np.float32)


def test_epoch_batches_cover_each_sample_once_and_avoid_singletons():
    batches = epoch_batches(33, 8, seed=1, epoch=0)
    assert sorted(np.concatenate(batches).tolist()) == list(range(33))
    assert min(len(b) for b in batches) >= 8
    assert all(np.all(np.diff(b) > 0) for b in batches)
    again = epoch_batches(33, 8, seed=1, epoch=0)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    other = epoch_batches(33, 8, seed=1, epoch=1)
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other, strict=True))


def test_training_reduces_loss_and_follows_schedule():
    X, y = _data()
    config = TrainConfig(n_epochs=6, batch_size=16, lr=0.05, warmup_epochs=1, device="cpu")
    history = fit_module(_Regression(), (X, y), config)
    assert [h["epoch"] for h in history] == list(range(6))
    assert history[-1]["loss"] < 0.1 * history[0]["loss"]
    # Cosine decay ends at zero learning rate; the peak is reached after warm-up.
    assert history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert history[0]["lr"] == pytest.approx(0.05 * (0.5 * (1 + np.cos(np.pi * 0 / 30))))


def test_lr_scale_of_parameter_groups():
    X, y = _data()
    task = _Regression()
    groups = [
        {"params": [task.linear.weight], "lr_scale": 0.1},
        {"params": [task.linear.bias]},
    ]
    config = TrainConfig(n_epochs=1, batch_size=32, lr=0.2, warmup_epochs=0, device="cpu")
    captured = {}
    original = torch.optim.SGD.step

    def spy(self, *a, **k):
        captured.setdefault("lrs", [g["lr"] for g in self.param_groups])
        return original(self, *a, **k)

    torch.optim.SGD.step = spy
    try:
        fit_module(task, (X, y), config, param_groups=groups)
    finally:
        torch.optim.SGD.step = original
    assert captured["lrs"] == pytest.approx([0.02, 0.2])


def test_non_finite_loss_is_reported():
    X, y = _data()
    X[0, 0] = np.inf
    with pytest.raises(FloatingPointError, match="training loss became"):
        fit_module(_Regression(), (X, y), TrainConfig(n_epochs=1, batch_size=96, device="cpu"))


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(
            ValueError, match="device=.cuda. was asked for, but it is not available"
        ):
            resolve_device("cuda")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_predict_batches_returns_the_module_in_its_own_dtype(dtype):
    # Feature vectors on the CPU run through a float64 copy; the live module is never
    # changed (dtype, mode), and a row's output does not depend on its batch.
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2)).to(dtype)
    module.train()
    X = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    out = predict(module, X, batch_size=3, device="cpu")
    assert out.shape == (10, 2)
    assert {p.dtype for p in module.parameters()} == {dtype}
    assert module.training and module[1].training
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k]), k  # BatchNorm statistics untouched
    np.testing.assert_array_equal(out[:3], predict(module, X[:3], batch_size=8, device="cpu"))
    # In eval mode the output is that of the module itself (in float64).
    module.eval()
    expected = module.double()(torch.as_tensor(X, dtype=torch.float64)).detach().numpy()
    np.testing.assert_allclose(predict(module, X, batch_size=4, device="cpu"), expected, rtol=1e-6)


def test_predict_from_many_threads_agrees_with_one():
    from concurrent.futures import ThreadPoolExecutor

    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 2)).eval()
    X = np.random.default_rng(1).normal(size=(200, 4)).astype(np.float32)
    images = np.random.default_rng(2).normal(size=(20, 4)).astype(np.float32)
    expected = predict(module, X, batch_size=16, device="cpu")
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: predict(module, X, batch_size=16, device="cpu"), range(8)))
    for run in runs:
        np.testing.assert_array_equal(run, expected)
    assert {p.dtype for p in module.parameters()} == {torch.float32}
    assert predict(module, images, batch_size=7, device="cpu").shape == (20, 2)
