"""The base class of the network estimators and the glue to torch that they share.

:class:`NetworkEstimator` owns the parameters that :class:`~skphotoz.MoCoEmbedder` and
:class:`~skphotoz.PhotoZRegressor` have in common (declared once, with their constraints,
checked once per ``fit``), builds the encoder, the augmentations and the training
configuration, and makes the one call into the training engine. The input rules it applies
live in :mod:`skphotoz._inputs` (numpy only); the scaling statistics in
:mod:`skphotoz.nn.scaling`.
"""

from __future__ import annotations

import contextlib
import copy
import os

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from ._inputs import NAN_POLICIES, input_shape, rows_text, take_rows
from ._validation import (
    FixedAfterFit,
    InvalidParameterError,
    StrOptions,
    finite,
    integer,
    random_state,
)
from .exceptions import CheckpointMismatchError, NonFiniteError
from .nn import Encoder, GalaxyAugment, VectorAugment, distributed
from .nn.backbones import build_backbone
from .nn.callbacks import Checkpoint, ProgressTable
from .nn.engine import TrainConfig, Trainer, predict, resolve_device
from .nn.portable import pack_modules, unpack_modules
from .nn.scaling import input_scaling

# What the training loop calls on each callback.
_CALLBACK_HOOKS = (
    "on_train_begin",
    "on_epoch_begin",
    "on_batch_end",
    "on_epoch_end",
    "on_train_end",
    "state_dict",
    "load_state_dict",
)
# Training rows on which a fitted network must give finite outputs.
N_PROBE = 16


@contextlib.contextmanager
def seeded(seed: int):
    """Run a block with torch's global RNG seeded, restoring the RNG afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# Upper bounds that keep a typo from exhausting memory or running for days.
_MAX_EPOCHS = 100_000
_MAX_BATCH = 1 << 16
_MAX_BATCH_FLOATS = 1 << 29  # 2 GiB of float32 input per batch


class NetworkEstimator(FixedAfterFit, BaseEstimator):
    """Base of the network estimators: shared parameters, encoder, augmentations, training.

    Not public. Subclasses list every parameter in their own ``__init__`` signature (as
    scikit-learn requires), pass the shared ones to ``super().__init__``, extend
    ``_parameter_constraints`` and decorate ``fit`` with
    :func:`skphotoz._validation.fit_context`.

    What it guarantees to both estimators:

    - input: :func:`check_input` refuses what is not an array of samples (paths, dicts,
      text, complex, channels-last or non-square images, images under 4x4 pixels) with a
      message saying what to do, and applies ``nan_policy`` ("raise" names the rows; "fill"
      puts the value that the input scaling maps to 0 in place of NaN and infinity, since a
      single NaN would turn the batch and then the weights into NaN); finite values beyond
      ±1e30 are clipped there;
    - parameters: checked by ``fit`` and again by every prediction (``set_params`` after
      fitting); the structural ones (``_fixed_after_fit``) must still be what the
      model was fitted with;
    - outputs: ``fit`` raises :class:`~skphotoz.nn.engine.NonFiniteError` (a ValueError) if
      training diverged, and predictions raise it rather than return NaN or infinity.
    """

    _parameter_constraints: dict = {
        "backbone": [StrOptions({"auto", "resnet18", "resnet34", "resnet50", "mlp"})],
        "stem": [StrOptions({"standard", "published"})],
        "n_epochs": [integer(0, _MAX_EPOCHS)],
        "batch_size": [integer(2, _MAX_BATCH)],
        "lr": [finite(0, 100, "right")],
        "weight_decay": [finite(0, 10, "both")],
        "warmup_epochs": [finite(0, _MAX_EPOCHS, "both")],
        "rotation": ["boolean"],
        "flip": ["boolean"],
        "jitter": [finite(0, 10_000, "both")],
        "scale": [finite(1, 100, "both")],
        "psf_fwhm": [finite(0, 50, "both")],
        "noise": [finite(0, 1000, "both")],
        "dust_ebv": [finite(0, 1, "both")],
        "brightness": [finite(0, 5, "both")],
        "crop_size": [integer(1, 1 << 16), None],
        "nan_policy": [StrOptions(set(NAN_POLICIES))],
        "device": [str, torch.device],
        "num_workers": [integer(0, 128)],
        "shuffle_buffer": [integer(1), None],
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

    # No defaults here: each subclass declares its own (scikit-learn reads them from its
    # signature), so there is one default per estimator and parameter.
    def __init__(
        self,
        backbone,
        *,
        stem,
        n_epochs,
        batch_size,
        lr,
        weight_decay,
        warmup_epochs,
        rotation,
        flip,
        jitter,
        scale,
        psf_fwhm,
        noise,
        dust_ebv,
        brightness,
        crop_size,
        nan_policy,
        device,
        num_workers,
        shuffle_buffer,
        random_state,
        verbose,
        checkpoint_dir,
        callbacks,
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
        self.nan_policy = nan_policy
        self.device = device
        self.num_workers = num_workers
        self.shuffle_buffer = shuffle_buffer
        self.random_state = random_state
        self.verbose = verbose
        self.checkpoint_dir = checkpoint_dir
        self.callbacks = callbacks

    #: Parameters that fix the shape of the fitted network: changing one after ``fit`` needs a
    #: new fit (prediction refuses it rather than silently ignoring it).
    _fixed_after_fit: tuple[str, ...] = ("backbone", "stem", "crop_size")
    _fixed_after_fit_reason = "the fitted network cannot follow it"

    # -- checking ------------------------------------------------------------------------
    def _validate_params(self):
        """All parameters against their constraints, plus the checks across parameters
        (:meth:`_check_parameters`); run by ``fit`` and again by every prediction, since
        parameters may be changed with ``set_params`` after fitting."""
        super()._validate_params()
        self._check_parameters()

    def _check_parameters(self) -> None:
        """Checks that the constraint language cannot express (subclasses extend): here,
        that ``device`` exists on this machine and that each callback has the hooks."""
        resolve_device(self.device)
        for callback in self.callbacks or ():
            missing = [
                hook for hook in _CALLBACK_HOOKS if not callable(getattr(callback, hook, None))
            ]
            if missing:
                raise InvalidParameterError(
                    f"callbacks must be skphotoz.nn.callbacks.Callback objects (with the hooks "
                    f"{', '.join(_CALLBACK_HOOKS)}); got {callback!r}, which lacks "
                    f"{', '.join(missing)}."
                )

    def _check_batch_memory(self, X, n_rows: int) -> None:
        """A batch (at most the rows there are) must fit in 2 GiB of float32 input: a
        ``batch_size`` typo must not exhaust the memory of the machine."""
        per_sample = int(np.prod(input_shape(X)))
        rows = min(self.batch_size, n_rows)
        if rows * per_sample > _MAX_BATCH_FLOATS:
            raise ValueError(
                f"batch_size={self.batch_size} gives batches of {rows} samples of shape "
                f"{input_shape(X)}, {rows * per_sample * 4 / 2**30:.1f} GiB of input (the "
                f"activations take many times more); batches are limited to 2 GiB of input, "
                f"i.e. batch_size <= {_MAX_BATCH_FLOATS // per_sample} for these samples."
            )

    def _check_predict_call(self) -> None:
        """Parameters valid and unchanged where they must be, and the device present."""
        self._validate_params()
        self._check_fixed()

    def _check_fitted(self, modules, X, n_samples: int) -> None:
        """Raise :class:`NonFiniteError` if training diverged: a weight is NaN or infinite,
        or the fitted network gives NaN or infinite outputs on a few training rows (weights
        can blow up to huge finite values). The engine checks the weights each epoch; this
        also covers what a last step or a restored checkpoint left."""
        advice = (
            f"training diverged. Lower lr (now {self.lr}), raise batch_size (now "
            f"{self.batch_size}) or give more samples (now {n_samples})."
        )
        probe = take_rows(X, np.arange(min(len(X), N_PROBE)))
        for module in modules:
            for name, tensor in module.state_dict().items():
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    raise NonFiniteError(
                        f"{type(self).__name__}: the fitted weights are NaN or infinite (first: "
                        f"{name}); {advice}"
                    )
            out = predict(
                module, probe, batch_size=N_PROBE, device=self.device, crop=self._input_crop()
            )
            if not np.isfinite(out).all():
                raise NonFiniteError(
                    f"{type(self).__name__}: the fitted network gives NaN or infinite outputs "
                    f"on its own training samples; {advice}"
                )

    def _check_outputs(self, outputs: np.ndarray, module, what: str) -> np.ndarray:
        """Prediction outputs must be finite: raise naming the rows and the likely cause."""
        finite = np.isfinite(outputs)
        if finite.all():
            return outputs
        rows = np.flatnonzero(~finite.reshape(len(outputs), -1).all(axis=1))
        broken = [
            name
            for name, tensor in module.state_dict().items()
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
        ]
        if broken:
            cause = (
                f"the model is at fault: its weights hold NaN or infinite values (first: "
                f"{broken[0]}); refit it"
            )
        else:
            cause = (
                "the model gave finite outputs on its training samples when it was fitted, "
                "so the input is at fault: those samples hold values far outside the range of "
                "the training data; check them"
            )
        raise NonFiniteError(
            f"{type(self).__name__}.{what} produced NaN or infinite values for "
            f"{len(rows)} of {len(outputs)} samples (rows {rows_text(rows)}): {cause}."
        )

    # -- building ------------------------------------------------------------------------
    def _draw_seed(self, random_state=None) -> int:
        """The run's integer seed: weights, batches, augmentations and splits derive from it.

        Under torchrun this starts the process group, and every rank takes rank 0's seed
        (with ``random_state=None`` each process would draw its own)."""
        rng = check_random_state(self.random_state) if random_state is None else random_state
        seed = int(rng.randint(np.iinfo(np.int32).max))
        distributed.init_from_env(resolve_device(self.device))
        return int(distributed.broadcast_object(seed))

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

    @property
    def inference_batch_size(self) -> int:
        """Rows per forward pass of ``predict``/``transform``: ``batch_size``, at least 256
        (inference keeps no gradients, and larger batches run faster). Inference under
        ``torchrun`` is split across ranks in whole such batches, so that each batch holds the
        rows it holds in one process."""
        return max(self.batch_size, 256)

    def _input_crop(self) -> int | None:
        """Central crop of the input before the predicting module (None: no crop)."""
        return self.crop_size_

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
            shuffle_buffer=self.shuffle_buffer,
            seed=seed,
            description=description,
        )
        self.callbacks_ = copy.deepcopy(list(self.callbacks or []))
        chain = [*callbacks, *self.callbacks_]
        if self.verbose:
            chain.append(ProgressTable(description))
        if self.checkpoint_dir is not None:
            folder = os.fspath(self.checkpoint_dir)
            if os.path.exists(folder) and not os.path.isdir(folder):
                raise NotADirectoryError(
                    f"checkpoint_dir must be a folder (created if missing); got {folder!r}, "
                    f"which is a file."
                )
            path = os.path.join(folder, checkpoint_name)
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

    # -- persistence -----------------------------------------------------------------------
    def __getstate__(self) -> dict:
        """The state that pickle, joblib and skops store: the torch modules as one array of
        bytes that only network layers can be read from (:mod:`skphotoz.nn.portable`), a
        ``torch.device`` parameter as its name."""
        state = dict(super().__getstate__())  # a copy: BaseEstimator may give __dict__
        if isinstance(state.get("device"), torch.device):
            state["device"] = str(state["device"])
        return pack_modules(state)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(unpack_modules(dict(state), type(self).__name__))

    def _run_parameters(self) -> dict[str, str]:
        """The parameters that shape what a fit learns, as strings for the fingerprint."""
        return {
            f"parameter {name}": repr(value)
            for name, value in sorted(self.get_params(deep=False).items())
            if name not in self._runtime_parameters
        }
