"""What the network estimators share: their base class, input checks, scaling statistics.

:class:`NetworkEstimator` owns the parameters that :class:`~skphotoz.MoCoEmbedder` and
:class:`~skphotoz.PhotoZRegressor` have in common (declared once, with their constraints,
checked once per ``fit``), builds the encoder, the augmentations and the training
configuration, and makes the one call into the training engine.
"""

from __future__ import annotations

import contextlib
import copy
import os

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import validate_data

from ._validation import StrOptions, finite, integer, positive, random_state
from .nn import AsinhScaling, Encoder, GalaxyAugment, Standardize, VectorAugment
from .nn.backbones import build_backbone
from .nn.callbacks import Checkpoint, CheckpointMismatchError, ProgressTable
from .nn.engine import TrainConfig, Trainer

# Scaling statistics are estimated on at most this many samples.
_N_STATS = 512
# Width of the border whose pixels estimate the sky noise of a stamp.
_BORDER = 4


def is_lazy_images(X) -> bool:
    """True for out-of-core 4-D array-likes (e.g. HDF5Images) that must not be loaded whole."""
    return not isinstance(X, np.ndarray) and getattr(X, "ndim", None) == 4 and hasattr(X, "shape")


def check_input(estimator, X, *, reset: bool):
    """Validate X: 2-D feature vectors, 4-D images (n, bands, H, W), or a lazy 4-D array-like.

    Lazy array-likes are checked by shape only and left on disk; everything else goes through
    scikit-learn's ``validate_data`` (finite float32).
    """
    if is_lazy_images(X):
        n, c, h, w = X.shape
        if reset:
            estimator.n_features_in_ = c
        elif c != estimator.n_features_in_:
            raise ValueError(
                f"X has {c} bands, but {type(estimator).__name__} is expecting "
                f"{estimator.n_features_in_} bands as input."
            )
        if n < 1:
            raise ValueError(f"X must hold at least one sample; got shape {X.shape}.")
        return X
    ndim = getattr(X, "ndim", None)
    if ndim is None:
        ndim = np.asarray(X).ndim
    if ndim == 3 or ndim > 4:
        raise ValueError(
            f"X must be 2-D (n_samples, n_features) feature vectors or 4-D "
            f"(n_samples, n_bands, height, width) images; got a {ndim}-D array."
        )
    X = validate_data(estimator, X, reset=reset, dtype=np.float32, allow_nd=True)
    return X


def input_shape(X) -> tuple[int, ...]:
    """Shape of one sample."""
    return tuple(X.shape[1:])


def check_sample_shape(estimator, X) -> None:
    """At predict time the samples must have the shape seen in fit."""
    if input_shape(X) != tuple(estimator.input_shape_):
        raise ValueError(
            f"X has samples of shape {input_shape(X)}, but {type(estimator).__name__} was "
            f"fitted on samples of shape {tuple(estimator.input_shape_)}."
        )


def _stats_rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(n, _N_STATS), replace=False))


def band_noise(X, seed: int = 0) -> np.ndarray:
    """Robust per-band pixel noise: 1.4826 MAD of the border pixels of up to 512 stamps."""
    sample = np.asarray(X[_stats_rows(len(X), seed)], dtype=np.float64)
    b = min(_BORDER, sample.shape[-1] // 4) or 1
    border = np.concatenate(
        [
            sample[:, :, :b, :].reshape(*sample.shape[:2], -1),
            sample[:, :, -b:, :].reshape(*sample.shape[:2], -1),
            sample[:, :, b:-b, :b].reshape(*sample.shape[:2], -1),
            sample[:, :, b:-b, -b:].reshape(*sample.shape[:2], -1),
        ],
        axis=2,
    )
    border = border.transpose(1, 0, 2).reshape(sample.shape[1], -1)
    mad = np.median(np.abs(border - np.median(border, axis=1, keepdims=True)), axis=1)
    sigma = 1.4826 * mad
    # Noise-free inputs (e.g. tests) fall back to a fraction of the typical flux.
    fallback = np.maximum(np.median(np.abs(sample), axis=(0, 2, 3)), 1e-12) * 0.1
    return np.where(sigma > 0, sigma, fallback).astype(np.float32)


def feature_stats(X) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (1 where constant) of 2-D features."""
    X = np.asarray(X, dtype=np.float64)
    scale = X.std(axis=0)
    return X.mean(axis=0).astype(np.float32), np.where(scale > 0, scale, 1.0).astype(np.float32)


def input_scaling(X, seed: int = 0):
    """The fixed first layer for X: asinh per band for images, standardisation for vectors."""
    if len(input_shape(X)) == 3:
        return AsinhScaling(band_noise(X, seed))
    return Standardize(*feature_stats(X))


class RowSubset:
    """Rows ``rows`` of an array-like, indexed lazily (for HDF5 input)."""

    def __init__(self, data, rows: np.ndarray):
        self.data = data
        self.rows = np.asarray(rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.data.shape[1:])

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, index):
        return self.data[self.rows[index]]


def take_rows(X, rows: np.ndarray):
    """``X[rows]``: a copy for in-memory arrays, a lazy view for out-of-core ones."""
    if isinstance(X, np.ndarray):
        return X[rows]
    return RowSubset(X, rows)


@contextlib.contextmanager
def seeded(seed: int):
    """Run a block with torch's global RNG seeded, restoring the RNG afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def resolve_crop_size(crop_size, X) -> int | None:
    """Side of the views: ``crop_size``, or half the stamp; None for vectors."""
    if len(input_shape(X)) != 3:
        return None
    size = input_shape(X)[-1]
    if crop_size is None:
        return max(1, size // 2)
    if not 1 <= crop_size <= size:
        raise ValueError(f"crop_size must be between 1 and the stamp size {size}; got {crop_size}.")
    return int(crop_size)


# Upper bounds that keep a typo from exhausting memory or running for days.
_MAX_EPOCHS = 100_000
_MAX_BATCH = 1 << 20


class NetworkEstimator(BaseEstimator):
    """Base of the network estimators: shared parameters, encoder, augmentations, training.

    Not public. Subclasses list every parameter in their own ``__init__`` signature (as
    scikit-learn requires), pass the shared ones to ``super().__init__``, extend
    ``_parameter_constraints`` and decorate ``fit`` with
    :func:`skphotoz._validation.fit_context`.
    """

    _parameter_constraints: dict = {
        "backbone": [StrOptions({"auto", "resnet18", "resnet34", "resnet50", "mlp"})],
        "stem": [StrOptions({"standard", "published"})],
        "n_epochs": [integer(0, _MAX_EPOCHS)],
        "batch_size": [integer(2, _MAX_BATCH)],
        "lr": [positive()],
        "weight_decay": [finite(0)],
        "warmup_epochs": [finite(0)],
        "rotation": ["boolean"],
        "flip": ["boolean"],
        "jitter": [finite(0)],
        "scale": [finite(1)],
        "psf_fwhm": [finite(0)],
        "noise": [finite(0)],
        "dust_ebv": [finite(0)],
        "brightness": [finite(0)],
        "crop_size": [integer(1), None],
        "device": [str, torch.device],
        "num_workers": [integer(0, 1024)],
        "random_state": random_state(),
        "verbose": ["boolean"],
        "checkpoint_dir": [str, os.PathLike, None],
        "callbacks": [list, tuple, None],
    }

    #: Parameters that change how a fit runs or what is read from it afterwards, not what it
    #: learns: left out of the checkpoint fingerprint.
    _runtime_parameters = frozenset(
        {"device", "num_workers", "verbose", "checkpoint_dir", "callbacks", "warm_start"}
        | {"random_state"}  # its seed is in the fingerprint
    )

    def __init__(
        self,
        backbone="auto",
        *,
        stem="standard",
        n_epochs=30,
        batch_size=128,
        lr=0.03,
        weight_decay=1e-4,
        warmup_epochs=1.0,
        rotation=True,
        flip=True,
        jitter=0.0,
        scale=1.0,
        psf_fwhm=0.0,
        noise=0.0,
        dust_ebv=0.0,
        brightness=0.0,
        crop_size=None,
        device="auto",
        num_workers=0,
        random_state=None,
        verbose=False,
        checkpoint_dir=None,
        callbacks=None,
    ):
        self.backbone = backbone
        self.stem = stem
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_epochs = warmup_epochs
        self.rotation = rotation
        self.flip = flip
        self.jitter = jitter
        self.scale = scale
        self.psf_fwhm = psf_fwhm
        self.noise = noise
        self.dust_ebv = dust_ebv
        self.brightness = brightness
        self.crop_size = crop_size
        self.device = device
        self.num_workers = num_workers
        self.random_state = random_state
        self.verbose = verbose
        self.checkpoint_dir = checkpoint_dir
        self.callbacks = callbacks

    # -- building ------------------------------------------------------------------------
    def _draw_seed(self, random_state=None) -> int:
        """The run's integer seed: weights, batches, augmentations and splits derive from it."""
        rng = check_random_state(self.random_state) if random_state is None else random_state
        return int(rng.randint(np.iinfo(np.int32).max))

    def _backbone_name(self, X) -> str:
        if self.backbone != "auto":
            return self.backbone
        return "resnet18" if len(input_shape(X)) == 3 else "mlp"

    def _build_encoder(self, X, seed: int) -> Encoder:
        """Input scaling (fixed, from X) then the backbone, initialised from torch's global RNG
        (callers seed it, see :func:`seeded`); ``seed`` picks the rows of the scaling
        statistics."""
        body = build_backbone(self._backbone_name(X), input_shape(X), stem=self.stem)
        return Encoder(input_scaling(X, seed), body)

    def _build_augment(self, X, encoder, crop: int | None):
        """Augmentations of the estimator's parameters for X, with noise in units of the
        encoder's input scaling (the band sky noise, or 0.1 of each feature's spread)."""
        scaling = encoder[0]
        if len(input_shape(X)) == 1:
            return VectorAugment(scaling.scale.reshape(-1) * 0.1, noise=self.noise)
        return GalaxyAugment(
            crop,
            rotation=self.rotation,
            flip=self.flip,
            jitter=self.jitter,
            scale=self.scale,
            psf_fwhm=self.psf_fwhm,
            noise=self.noise,
            noise_sigma=scaling.softening.reshape(-1).clone(),
            # Reddening is defined for the five SDSS bands only.
            dust_ebv=self.dust_ebv if input_shape(X)[0] == 5 else 0.0,
            brightness=self.brightness,
        )

    # -- training ------------------------------------------------------------------------
    def _train(
        self,
        task,
        arrays,
        *,
        seed: int,
        description: str,
        checkpoint_name: str,
        n_epochs: int | None = None,
        batch_size: int | None = None,
        param_groups=None,
        clip_grad_norm: float | None = None,
        callbacks=(),
    ) -> Trainer:
        """Train ``task`` through the engine with the estimator's settings and callbacks.

        The callbacks run in this order: the estimator's own (``callbacks``, e.g. early
        stopping), the user's (copied to ``callbacks_``), progress (``verbose``), and the
        checkpoint (``checkpoint_dir``) last, so that it saves what the others computed.
        """
        config = TrainConfig(
            n_epochs=self.n_epochs if n_epochs is None else n_epochs,
            batch_size=self.batch_size if batch_size is None else batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            warmup_epochs=self.warmup_epochs,
            clip_grad_norm=clip_grad_norm,
            device=self.device,
            num_workers=self.num_workers,
            seed=seed,
            description=description,
        )
        self.callbacks_ = copy.deepcopy(list(self.callbacks or []))
        chain = [*callbacks, *self.callbacks_]
        if self.verbose:
            chain.append(ProgressTable(description))
        if self.checkpoint_dir is not None:
            path = os.path.join(os.fspath(self.checkpoint_dir), checkpoint_name)
            chain.append(Checkpoint(path, self._run_parameters(), verbose=self.verbose))
        trainer = Trainer(task, arrays, config, param_groups, chain)
        try:
            trainer.fit()
        except CheckpointMismatchError as error:
            if self.random_state is None:
                raise CheckpointMismatchError(
                    f"{error} Note: random_state=None draws a new seed at every fit, so a fit "
                    f"can only resume its checkpoint with an integer random_state."
                ) from error
            raise
        return trainer

    def _run_parameters(self) -> dict[str, str]:
        """The parameters that shape what a fit learns, as strings for the fingerprint."""
        return {
            f"parameter {name}": repr(value)
            for name, value in sorted(self.get_params(deep=False).items())
            if name not in self._runtime_parameters
        }
