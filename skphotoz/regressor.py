"""Photometric redshifts from images or features: fine-tuning and fully supervised training."""

from __future__ import annotations

import copy
import os
import warnings

import numpy as np
import torch
from sklearn.base import RegressorMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._base import N_PROBE, NetworkEstimator, seeded
from ._inputs import (
    CheckedImages,
    check_input,
    check_labels,
    check_numeric,
    check_preprocessing,
    check_quantiles,
    check_redshifts,
    check_sample_shape,
    fill_input,
    input_shape,
    resolve_crop_size,
    rows_text,
    take_rows,
    unmask,
    warn_implausible_redshifts,
)
from ._validation import (
    HasMethods,
    InvalidParameterError,
    Range,
    Real,
    StrOptions,
    check_value,
    finite,
    fit_context,
    integer,
)
from .embedder import MoCoEmbedder, fitted_embedder
from .metrics import pdf_quantiles, sigma_mad
from .nn.augment import OverDihedralViews
from .nn.callbacks import EarlyStopping
from .nn.engine import predict
from .nn.heads import (
    BinnedRedshiftHead,
    GaussianRedshiftHead,
    PhotoZTask,
    pdf_of_outputs,
    point_estimates,
)
from .nn.photometry import HybridEncoder
from .nn.scaling import photometry_layer
from .preprocessing import AperturePhotometry, default_photometry

# Gradient-norm limit of fine-tuning: the first steps on a pretrained encoder with a fresh
# head can be large.
_CLIP_GRAD_NORM = 5.0
# n_epochs="auto" never trains for fewer epochs than this.
_AUTO_MIN_EPOCHS = 30
# Upper end of z_range.
_MAX_Z = 100.0

# What ``embedder_`` is stored as when it is the ``encoder`` given (see __getstate__).
_SAME_AS_ENCODER = "<the encoder parameter>"


class PhotoZRegressor(RegressorMixin, NetworkEstimator):
    """Redshift regressor over galaxy images or feature vectors, with redshift PDFs.

    Three ways to get the encoder:

    - ``encoder=None``: trained from scratch with the head — the fully supervised baseline;
    - ``encoder=MoCoEmbedder(...)`` not fitted: ``fit(X, y)`` first pretrains it on all rows of
      X, labelled or not (rows whose ``y`` is NaN are unlabelled; with the embedder's
      ``redshift_weight > 0`` its redshift term also learns from the labelled rows), then
      fine-tunes on the labelled rows;
    - a fitted embedder, wrapped in :class:`sklearn.frozen.FrozenEstimator` or given as the
      path of its skops file (:func:`skphotoz.io.dump`; a pickle is refused, since loading
      one runs its code: pass a trusted one as
      ``FrozenEstimator(skphotoz.io.load(path, trusted=True))``): a copy of its weights is
      fine-tuned; ``clone`` and cross-validation never pretrain it again, and the given
      embedder is never modified.
      (A fitted embedder passed bare is cloned, hence refitted, by scikit-learn's
      cross-validation: freeze it.)

    Fine-tuning trains a pretrained encoder with ``backbone_lr_ratio`` times the head's
    learning rate (0.1, as in Hayat et al. 2021); an encoder trained from scratch learns at
    the head's rate.

    With ``photometry=True`` the network is a hybrid: the aperture photometry of each stamp
    (the features of :class:`~skphotoz.preprocessing.AperturePhotometry`, measured exactly in
    a fixed layer on the linear fluxes and standardised with training statistics) is joined
    to a ``bottleneck`` of the image features before the head, so that the images only have
    to add what colours lack instead of re-learning the colours from pixels.

    Parameters
    ----------
    encoder : None, MoCoEmbedder, FrozenEstimator or path, default=None
        Where the encoder comes from (see above).
    backbone : {"auto", "resnet18", "resnet34", "resnet50", "mlp"}, default="auto"
        Architecture when ``encoder=None``: "resnet18" for images, "mlp" for 2-D input.
    stem : {"standard", "published"}, default="standard"
        ResNet stem of an encoder trained from scratch: "standard" (stride 2 + max-pool)
        for CPUs, "published" (stride 1, no max-pool) as in Hayat et al. (2021), for GPUs.
    head : {"bins", "regression"}, default="bins"
        "bins": softmax over ``n_bins`` redshift bins with cross-entropy (Pasquet et al.
        2019); "regression": a Gaussian mean and width trained by likelihood.
    n_bins : int, default=180
        Redshift bins of the PDF (180 over 0 < z < 0.4 as in Pasquet et al. 2019: bins of
        0.0022, finer than the expected scatter).
    z_range : tuple of float, default=(0, 0.4)
        Range of the bins, two finite numbers ``0 <= low < high <= 100``; labels outside
        are clipped into the end bins (with a warning).
    target_sigma : float, default=0.01
        ``head="bins"``: width, in redshift, of the Gaussian each label is spread over the
        bins in the cross-entropy target, so that near bins count as near; 0 trains on
        one-hot targets. About the photo-z scatter expected; measured effect in
        ``docs/experiments/moco.md``.
    photometry : bool or AperturePhotometry, default=False
        Images only: join the stamps' aperture photometry to the image features (see
        above). True uses ``AperturePhotometry()``'s apertures (1.5, 3 and 6 arcsec at
        0.396 arcsec per pixel); an (unfitted) ``AperturePhotometry`` sets others. The
        photometry is measured on the whole stamp given to ``fit`` and ``predict`` (not on
        the augmented, cropped views), so give dereddened fluxes in nanomaggies.
    bottleneck : int, default=16
        With ``photometry``: width of the learned projection (Linear, BatchNorm, ReLU) of the
        image features joined to the photometry. Small, so that a few hundred labels do not
        spread over hundreds of image features beside a dozen photometric ones.
    backbone_lr_ratio : float, default=0.1
        Learning rate of a pretrained encoder relative to the head's: a gentle rate keeps
        what pretraining learned while the fresh head settles (Hayat et al. 2021 use 0.1).
    freeze_backbone : bool, default=False
        Train the head only (a linear-probe-like protocol).
    n_epochs : int or "auto", default="auto"
        Passes over the labelled training rows. With few labels what counts is the number
        of optimizer steps, not of epochs, so "auto" trains for enough epochs to make at
        least ``min_steps`` steps (``n_train // batch_size`` per epoch), and never fewer than
        30 epochs; the number used is ``n_epochs_``. The measurements behind it are in
        ``docs/experiments/moco.md``.
    min_steps : int, default=1000
        Optimizer steps of ``n_epochs="auto"`` (the default is where the measurements of
        ``docs/experiments/moco.md`` stopped improving); fewer make a quicker, rougher fit.
    batch_size : int, default=128
        Labelled rows per step (fewer if there are fewer training rows).
    lr : float, default=0.3
        Peak SGD learning rate of the head (momentum 0.9, warm-up then cosine decay); a
        pretrained backbone gets ``backbone_lr_ratio`` of it, by default 0.03 (the published
        pretraining rate of Hayat et al. 2021).
    weight_decay : float, default=1e-4
        L2 penalty of SGD.
    warmup_epochs : float, default=1.0
        Epochs of linear warm-up of the learning rate, which keeps the first steps of a
        fresh head from wrecking a pretrained encoder.
    rotation, flip : bool, default=True
        Augmentations, on as in the published fine-tuning.
    jitter : float, default=2.0
    scale : float, default=1.0
    psf_fwhm : float, default=0.0
    noise : float, default=0.0
    dust_ebv : float, default=0.0
    brightness : float, default=0.0
        Further augmentations, off by default; see :class:`MoCoEmbedder`.
    crop_size : int, optional
        Half the stamp by default; a pretrained encoder's own crop otherwise.
    nan_policy : {"raise", "fill"}, default="raise"
        What NaN or infinite input values do. Real cutouts have them (masked pixels, stamp
        edges past the survey footprint), and one of them turns a batch, and the weights,
        into NaN. "raise": ``fit`` and the predictions raise a ValueError naming the rows
        (numpy input is checked up front; lazy input such as
        :class:`~skphotoz.data.HDF5Images` batch by batch as it is read). "fill": such values
        are replaced by 0 after the fixed input scaling, i.e. by the sky level of
        (sky-subtracted) images and by the training mean of 2-D features, and the scaling
        statistics ignore them. Part of the checkpoint fingerprint, since it changes what is
        learned. An embedder pretrained in ``fit`` with the default "raise" inherits "fill".
        NaN labels in ``y`` are not input values: they mark unlabelled rows.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the labelled rows, stop when their loss has not
        improved for ``n_iter_no_change`` epochs, and keep the best weights.
    validation_fraction : float, default=0.1
        Share of the labelled rows held out for early stopping.
    n_iter_no_change : int, default=5
        Epochs without a better validation loss before early stopping ends training.
    point_estimate : {"mean", "median", "mode"}, default="mean"
        Statistic of the PDF returned by ``predict``.
    test_time_augmentation : bool, default=False
        Images only: ``predict``, ``predict_pdf`` and the quantiles average the PDFs (for
        ``head="regression"``, ``predict`` averages the means) of the eight quarter-turn and
        mirror images of each stamp; 8x the prediction time. Like ``point_estimate`` it can be
        changed after fitting.
    device : str or torch.device, default="auto"
        "auto" (CUDA if available), or any torch device string ("cpu", "cuda", "cuda:1",
        "mps", ...); one this machine does not have raises a ValueError listing those it has.
    num_workers : int, default=0
        DataLoader worker processes reading the batches, started once per fit. With 0, a
        thread reads the next batches while the network computes, usually enough; workers
        pay where a batch costs more to read than a step (compressed archives, a GPU fed by
        many cores).
    shuffle_buffer : int, optional
        None: each epoch visits the galaxies in a uniformly random order. An integer: each
        epoch reads the archive in contiguous blocks of at least 64 galaxies, in random
        order, about this many at a time, shuffled within (for slow disks and network file
        systems; what it costs is measured in the docs' training and throughput pages).
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, batches, augmentations and the validation split: on the CPU equal
        seeds give equal models. Resuming a checkpoint needs an integer.
    verbose : bool, default=False
        A progress bar over each epoch's batches and a table row per epoch (loss, and with
        early stopping the validation loss and σ_MAD), and which epoch early stopping kept.
    checkpoint_dir : str or path-like, optional
        Folder of ``photoz.pt`` (and of ``moco.pt`` when an embedder is pretrained here),
        written after each epoch and resumed from if ``fit`` is run again after a crash.
        Only an unfinished run of the same fit is resumed (same parameters that shape
        training, data, seed and initial weights; see :class:`MoCoEmbedder`); a finished
        run of the same fit is restored, a finished run of another fit is replaced, and an
        unfinished run of another fit raises an error naming what differs. Fits running at
        the same time need folders of their own.
    callbacks : list of skphotoz.nn.callbacks.Callback, optional
        Your hooks into the training loop (e.g. logging); copies are used and kept in
        ``callbacks_``, with their state saved in the checkpoint.

    Attributes
    ----------
    model_ : skphotoz.nn.heads.PhotoZTask
        Encoder and head (on the CPU); with ``photometry`` the encoder is a
        :class:`skphotoz.nn.photometry.HybridEncoder`.
    photometry_features_ : ndarray of str or None
        With ``photometry``: names of the photometric features joined to the image features
        (after the ``bottleneck`` ones); None otherwise.
    embedder_ : MoCoEmbedder or None
        The embedder pretrained in ``fit``, or the given fitted one (not modified).
    redshift_bins_ : ndarray of shape (n_bins + 1,)
        Bin edges of ``predict_pdf``.
    history_ : list of dict
        Per epoch: ``loss``, learning rates (``lrs``: backbone then head), ``images_per_s``,
        ``time_s``, and with early stopping ``validation_loss`` and
        ``validation_sigma_mad``.
    n_epochs_ : int
        Epochs the fit was set to run (``n_epochs``, or what "auto" gave).
    best_epoch_ : int or None
        With early stopping, the (0-based) epoch whose weights were kept.
    callbacks_ : list
        The copies of ``callbacks`` used by the last fit.
    n_features_in_ : int
    input_shape_ : tuple of int
    preprocessing_ : dict or None
        How the training images were read when ``fit`` got an
        :class:`~skphotoz.data.HDF5Images`: ``{"deredden": bool, "crop": int or None}``;
        the predictions refuse an archive read otherwise (they would silently differ). None
        for numpy input, whose preprocessing is unknown.

    Examples
    --------
    >>> import numpy as np
    >>> from skphotoz import PhotoZRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 4)).astype(np.float32)
    >>> z = 0.2 + 0.05 * np.tanh(X[:, 0])
    >>> model = PhotoZRegressor(n_epochs=5, batch_size=32, random_state=0).fit(X, z)
    >>> model.predict_pdf(X[:2]).shape
    (2, 180)
    """

    _parameter_constraints = {
        **NetworkEstimator._parameter_constraints,
        "encoder": [None, str, os.PathLike, HasMethods(["fit", "transform"])],
        "head": [StrOptions({"bins", "regression"})],
        "n_bins": [integer(2, 10_000)],
        "z_range": [tuple, list],
        "target_sigma": [finite(0, 10, "both")],
        "photometry": ["boolean", HasMethods(["fit_transform", "get_feature_names_out"])],
        "bottleneck": [integer(1, 4096)],
        "backbone_lr_ratio": [finite(0, 10, "right")],
        "freeze_backbone": ["boolean"],
        "n_epochs": [integer(1, 100_000), StrOptions({"auto"})],
        "min_steps": [integer(1, 10_000_000)],
        "early_stopping": ["boolean"],
        "validation_fraction": [Range(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [integer(1, 100_000)],
        "point_estimate": [StrOptions({"mean", "median", "mode"})],
        "test_time_augmentation": ["boolean"],
    }
    #: A tag read by :func:`skphotoz.model_selection.label_efficiency_curve`: rows whose label
    #: is NaN are used (pretraining an unfitted encoder uses them), so the curve keeps them.
    accepts_unlabelled = True

    _fixed_after_fit = (
        *NetworkEstimator._fixed_after_fit,
        "head",
        "n_bins",
        "z_range",
        "photometry",
        "bottleneck",
    )
    _runtime_parameters = NetworkEstimator._runtime_parameters | {
        "point_estimate",
        "test_time_augmentation",
        "encoder",  # its weights are in the fingerprint's initial weights
    }

    def __init__(
        self,
        encoder=None,
        *,
        backbone="auto",
        stem="standard",
        head="bins",
        n_bins=180,
        z_range=(0.0, 0.4),
        target_sigma=0.01,
        photometry=False,
        bottleneck=16,
        backbone_lr_ratio=0.1,
        freeze_backbone=False,
        n_epochs="auto",
        min_steps=1000,
        batch_size=128,
        lr=0.3,
        weight_decay=1e-4,
        warmup_epochs=1.0,
        rotation=True,
        flip=True,
        jitter=2.0,
        scale=1.0,
        psf_fwhm=0.0,
        noise=0.0,
        dust_ebv=0.0,
        brightness=0.0,
        crop_size=None,
        nan_policy="raise",
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        point_estimate="mean",
        test_time_augmentation=False,
        device="auto",
        num_workers=0,
        shuffle_buffer=None,
        random_state=None,
        verbose=False,
        checkpoint_dir=None,
        callbacks=None,
    ):
        super().__init__(
            backbone,
            stem=stem,
            n_epochs=n_epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            warmup_epochs=warmup_epochs,
            rotation=rotation,
            flip=flip,
            jitter=jitter,
            scale=scale,
            psf_fwhm=psf_fwhm,
            noise=noise,
            dust_ebv=dust_ebv,
            brightness=brightness,
            crop_size=crop_size,
            nan_policy=nan_policy,
            device=device,
            num_workers=num_workers,
            shuffle_buffer=shuffle_buffer,
            random_state=random_state,
            verbose=verbose,
            checkpoint_dir=checkpoint_dir,
            callbacks=callbacks,
        )
        self.encoder = encoder
        self.head = head
        self.n_bins = n_bins
        self.z_range = z_range
        self.target_sigma = target_sigma
        self.photometry = photometry
        self.bottleneck = bottleneck
        self.backbone_lr_ratio = backbone_lr_ratio
        self.freeze_backbone = freeze_backbone
        self.min_steps = min_steps
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.point_estimate = point_estimate
        self.test_time_augmentation = test_time_augmentation

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Redshifts are > -1 (1 + z > 0), and every one that trains a photo-z is >= 0:
        # scikit-learn's nearest tag. Its estimator checks then draw valid redshifts instead
        # of targets around 0, which fit refuses (values <= -1 are missing-value codes).
        tags.target_tags.positive_only = True
        return tags

    # ------------------------------------------------------------ persistence
    def __getstate__(self) -> dict:
        # A fitted embedder given as ``encoder`` is also ``embedder_``: pickle stores it once,
        # skops would store it twice (two copies of its networks), so it is stored by name.
        state = super().__getstate__()
        embedder = state.get("embedder_")
        if embedder is not None and embedder is getattr(self.encoder, "estimator", self.encoder):
            state = {**state, "embedder_": _SAME_AS_ENCODER}
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state.get("embedder_"), str) and state["embedder_"] == _SAME_AS_ENCODER:
            encoder = state.get("encoder")
            state = {**state, "embedder_": getattr(encoder, "estimator", encoder)}
        super().__setstate__(state)

    # ------------------------------------------------------------------ fit
    @fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Pretrain (if asked) and train on the labelled rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_bands, height, width) or (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Spectroscopic redshifts; NaN marks unlabelled rows, which only pretraining uses.

        Returns
        -------
        self
        """
        X = check_input(self, X, reset=True)
        y = self._check_y(y, len(X))
        labelled = np.flatnonzero(~np.isnan(y))
        self._check_batch_memory(X, len(labelled))
        self.input_shape_ = input_shape(X)
        self._check_test_time_augmentation()
        random_state = check_random_state(self.random_state)
        seed = self._draw_seed(random_state)

        self.embedder_ = self._pretrained_embedder(X, y, seed)
        self.redshift_bins_ = np.linspace(self.z_range[0], self.z_range[1], self.n_bins + 1)
        z = y[labelled]
        self._warn_out_of_range(z)

        hybrid = self.photometry is not False
        self._check_photometry_input(X)
        with seeded(seed):
            if self.embedder_ is not None:
                encoder = copy.deepcopy(self.embedder_.encoder_)
                self.crop_size_ = self.embedder_.crop_size_
            else:
                encoder = self._build_encoder(X, seed)
                self.crop_size_ = resolve_crop_size(self.crop_size, X)
            if not hybrid:
                head = self._build_head(encoder.out_features, z)
        X = fill_input(X, encoder[0], self.nan_policy)
        augment = self._build_augment(X, encoder, self.crop_size_)
        self.photometry_features_ = None
        if hybrid:
            # Seeded apart from the encoder: the bottleneck and head are drawn after the
            # photometry statistics, which need the filled input.
            with seeded(seed + 1):
                encoder = self._build_hybrid(encoder, X, seed)
                head = self._build_head(encoder.out_features, z)
        task = PhotoZTask(encoder, head, augment, self.freeze_backbone)

        train_rows, val_rows = self._split(labelled, random_state)
        own_callbacks = []
        if val_rows is not None:
            validate = self._validator(take_rows(X, val_rows), y[val_rows])
            own_callbacks.append(EarlyStopping(validate, self.n_iter_no_change, self.verbose))
        # A pretrained backbone is fine-tuned gently; one trained from scratch learns at lr.
        ratio = self.backbone_lr_ratio if self.embedder_ is not None else 1.0
        # A hybrid's bottleneck is new: it learns at the head's rate.
        fresh = list(task.encoder.bottleneck.parameters()) if hybrid else []
        groups = [{"params": fresh + list(task.head.parameters())}]
        if not self.freeze_backbone:
            groups.insert(0, {"params": list(task.backbone.parameters()), "lr_scale": ratio})
        batch_size = min(self.batch_size, len(train_rows))
        self.n_epochs_ = self._resolve_n_epochs(len(train_rows), batch_size)
        trainer = self._train(
            task,
            (take_rows(X, train_rows), y[train_rows].astype(np.float32)),
            seed=seed,
            description="photo-z",
            checkpoint_name="photoz.pt",
            n_epochs=self.n_epochs_,
            batch_size=batch_size,
            param_groups=groups,
            clip_grad_norm=_CLIP_GRAD_NORM,
            callbacks=own_callbacks,
        )
        self.history_ = trainer.history
        self.best_epoch_ = own_callbacks[0].best_epoch if own_callbacks else None
        self.model_ = task.cpu().eval()
        probe = take_rows(X, train_rows[:N_PROBE])
        self._check_fitted((self.model_.predictor,), probe, len(train_rows))
        self._remember_fixed()
        return self

    def _check_photometry_input(self, X) -> None:
        if self.photometry is not False and len(input_shape(X)) != 3:
            raise ValueError(
                f"photometry={self.photometry!r} measures apertures on images (n_samples, "
                f"n_bands, height, width); got samples of shape {input_shape(X)}. For "
                f"feature vectors, put the photometry among the features instead."
            )

    def _photometry(self, n_bands: int) -> AperturePhotometry:
        """The (unfitted) AperturePhotometry whose features the hybrid joins."""
        if self.photometry is True:
            return default_photometry(n_bands)
        return clone(self.photometry)

    def _build_hybrid(self, encoder, X, seed: int) -> HybridEncoder:
        """The image encoder joined to the photometry layer, standardised on up to 512 rows."""
        photometry = self._photometry(input_shape(X)[0])
        layer, self.photometry_features_ = photometry_layer(X, photometry, seed)
        return HybridEncoder(encoder, layer, self.bottleneck, self.crop_size_)

    def _input_crop(self):
        # A hybrid crops the image branch's input itself: its photometry needs whole stamps.
        if getattr(self, "photometry_features_", None) is not None:
            return None
        return self.crop_size_

    def _resolve_n_epochs(self, n_train: int, batch_size: int) -> int:
        """``n_epochs``, or for "auto" enough epochs for ``min_steps`` optimizer steps (at
        least 30)."""
        if self.n_epochs != "auto":
            return self.n_epochs
        steps_per_epoch = max(1, n_train // batch_size)
        return max(_AUTO_MIN_EPOCHS, -(-self.min_steps // steps_per_epoch))

    def _check_y(self, y, n_samples: int) -> np.ndarray:
        y = check_labels(y, n_samples, type(self).__name__)
        # The one redshift rule (> -1): -9999 and the like are missing-value codes, which
        # would train the network on nonsense (the regression head follows them anywhere).
        check_redshifts(y, "y", allow_nan=True)
        warn_implausible_redshifts(y, type(self).__name__)
        n_labelled = int(np.count_nonzero(~np.isnan(y)))
        if n_labelled < 2:
            plural = "" if n_labelled == 1 else "s"
            raise ValueError(
                f"PhotoZRegressor needs at least 2 labelled rows; got {n_labelled} sample{plural} "
                f"with a label (y is NaN on unlabelled rows)."
            )
        return y

    def _warn_out_of_range(self, z: np.ndarray) -> None:
        if self.head != "bins":
            return
        outside = int(np.count_nonzero((z < self.z_range[0]) | (z >= self.z_range[1])))
        if outside:
            warnings.warn(
                f"{outside} of {len(z)} labels lie outside z_range={tuple(self.z_range)} and are "
                f"counted in the end bins; widen z_range to resolve them.",
                UserWarning,
                stacklevel=3,
            )

    def _pretrained_embedder(self, X, y, seed: int):
        if self.encoder is None:
            return None
        fitted = fitted_embedder(self.encoder)
        if fitted is not None:
            check_sample_shape(fitted, X)
            check_preprocessing(fitted, X.data if isinstance(X, CheckedImages) else X)
            return fitted
        if not isinstance(self.encoder, MoCoEmbedder):
            raise ValueError(
                f"encoder must be None, a MoCoEmbedder (fitted or not), a FrozenEstimator of a "
                f"fitted MoCoEmbedder, or the path of a saved one; got {self.encoder!r}."
            )
        embedder = clone(self.encoder)
        if embedder.random_state is None:
            embedder.set_params(random_state=seed)
        if embedder.verbose is False and self.verbose:
            embedder.set_params(verbose=True)
        if self.checkpoint_dir is not None and embedder.checkpoint_dir is None:
            embedder.set_params(checkpoint_dir=self.checkpoint_dir)
        if self.nan_policy == "fill" and embedder.nan_policy == "raise":
            # Holes the regressor is told to fill would stop the embedder's pretraining.
            embedder.set_params(nan_policy="fill")
        # The labelled rows reach the embedder's redshift term (if its redshift_weight > 0);
        # an archive goes in as given, so that the embedder records how it was read.
        return embedder.fit(X.data if isinstance(X, CheckedImages) else X, y)

    def _build_head(self, in_features: int, z: np.ndarray):
        if self.head == "bins":
            return BinnedRedshiftHead(in_features, self.redshift_bins_, self.target_sigma)
        scale = float(np.std(z)) or 1.0
        return GaussianRedshiftHead(in_features, self.redshift_bins_, float(np.mean(z)), scale)

    def _split(self, labelled: np.ndarray, random_state):
        if not self.early_stopping:
            return labelled, None
        n_val = max(1, int(round(self.validation_fraction * len(labelled))))
        if len(labelled) - n_val < 2:
            raise ValueError(
                f"early_stopping needs at least 2 training rows after holding out "
                f"validation_fraction={self.validation_fraction} of {len(labelled)} labelled rows."
            )
        shuffled = random_state.permutation(labelled)
        return np.sort(shuffled[n_val:]), np.sort(shuffled[:n_val])

    def _validator(self, X_val, z_val):
        """Scores of the task on the validation rows: the head's loss and σ_MAD."""
        z_tensor = torch.as_tensor(z_val, dtype=torch.float32)

        def validate(task) -> dict:
            outputs = predict(
                task.predictor, X_val, batch_size=self.inference_batch_size,
                device=self.device, crop=self._input_crop(),
            )  # fmt: skip
            loss = float(task.head.loss(torch.as_tensor(outputs), z_tensor))
            z_phot = point_estimates(task.head, outputs, self.redshift_bins_, self.point_estimate)
            return {"validation_loss": loss, "validation_sigma_mad": sigma_mad(z_val, z_phot)}

        return validate

    # -------------------------------------------------------------- predict
    def _outputs(self, X) -> np.ndarray:
        """Head outputs, (n, k); (n, 8, k) over the dihedral views with test-time augmentation."""
        check_is_fitted(self, "model_")
        # Parameters may be changed after fitting: check them at each use.
        self._check_predict_call()
        X = check_input(self, X, reset=False)
        check_sample_shape(self, X)
        self._check_test_time_augmentation()
        X = fill_input(X, self.model_.backbone[0], self.nan_policy)
        module = self.model_.predictor
        if self.test_time_augmentation:
            module = OverDihedralViews(module)
        outputs = predict(
            module,
            X,
            batch_size=self.inference_batch_size,
            device=self.device,
            crop=self._input_crop(),
        )
        return self._check_outputs(outputs, self.model_, "predict")

    def _check_test_time_augmentation(self) -> None:
        if self.test_time_augmentation and len(self.input_shape_) != 3:
            raise ValueError(
                f"test_time_augmentation needs images (n_samples, n_bands, height, width); this "
                f"model was fitted on samples of shape {tuple(self.input_shape_)}."
            )

    def predict_pdf(self, X) -> np.ndarray:
        """Redshift PDFs over the bins ``redshift_bins_``.

        Returns
        -------
        ndarray of shape (n_samples, n_bins)
            Probability of each bin; rows sum to 1.
        """
        outputs = self._outputs(X)  # first: it raises NotFittedError on an unfitted model
        pdf = pdf_of_outputs(self.model_.head, outputs)
        return self._check_outputs(pdf, self.model_, "predict_pdf")

    def predict(self, X, return_pdf: bool = False):
        """Point redshifts: the ``point_estimate`` of each PDF (the Gaussian mean for
        ``head="regression"``, not limited to ``z_range``).

        Parameters
        ----------
        X : array-like
        return_pdf : bool, default=False
            Also return the PDFs of :meth:`predict_pdf`, from the same pass of the network
            (half the work of calling both).

        Returns
        -------
        z : ndarray of shape (n_samples,)
        pdf : ndarray of shape (n_samples, n_bins)
            Only with ``return_pdf=True``.
        """
        if not isinstance(return_pdf, bool | np.bool_):
            raise TypeError(f"return_pdf must be True or False; got {return_pdf!r}.")
        outputs = self._outputs(X)
        z = point_estimates(self.model_.head, outputs, self.redshift_bins_, self.point_estimate)
        z = self._check_outputs(z, self.model_, "predict")
        if not return_pdf:
            return z
        pdf = pdf_of_outputs(self.model_.head, outputs)
        return z, self._check_outputs(pdf, self.model_, "predict_pdf")

    def score(self, X, y, sample_weight=None) -> float:
        """R² of :meth:`predict` against the true redshifts ``y`` (scikit-learn's regressor
        score); ``y`` must hold numbers (text gets a TypeError naming ``y``) and a redshift for
        every row: NaN, which marks an unlabelled galaxy in ``fit``, cannot be scored."""
        array = np.asarray(unmask(y))  # masked entries: unlabelled
        check_numeric(array, "y")
        if array.dtype.kind == "b":
            raise TypeError("y must be an array of redshifts; got booleans.")
        missing = np.flatnonzero(np.isnan(np.asarray(array, dtype=np.float64).reshape(-1)))
        if missing.size:
            raise ValueError(
                f"y holds NaN (or masked values) in {missing.size} row(s) {rows_text(missing)}: "
                f"they mark unlabelled galaxies, which cannot be scored; score the labelled "
                f"rows, e.g. X[mask], y[mask] with mask = ~np.isnan(y)."
            )
        check_redshifts(np.asarray(array, dtype=np.float64), "y")
        return super().score(X, array, sample_weight=sample_weight)

    def predict_quantiles(self, X, quantiles=(0.16, 0.5, 0.84)) -> np.ndarray:
        """Quantiles of each redshift PDF (linear within bins).

        Parameters
        ----------
        X : array-like
        quantiles : sequence of float in [0, 1], default=(0.16, 0.5, 0.84)

        Returns
        -------
        ndarray of shape (n_samples, n_quantiles)
        """
        q = check_quantiles(quantiles)  # before the network runs
        return pdf_quantiles(self.predict_pdf(X), self.redshift_bins_, q)

    def predict_interval(self, X, coverage: float = 0.68) -> tuple[np.ndarray, np.ndarray]:
        """Central credible interval of each PDF holding ``coverage`` of its probability.

        Parameters
        ----------
        X : array-like
        coverage : float in (0, 1), default=0.68
            Probability inside the interval: 0.68 gives the 16th and 84th percentiles.

        Returns
        -------
        low, high : ndarray of shape (n_samples,)
        """
        check_value(
            "PhotoZRegressor.predict_interval", "coverage", coverage, [finite(0, 1, "neither")]
        )
        bounds = self.predict_quantiles(X, [(1 - coverage) / 2, (1 + coverage) / 2])
        return bounds[:, 0], bounds[:, 1]

    # ------------------------------------------------------------ checking
    def _check_parameters(self) -> None:
        super()._check_parameters()
        self._check_z_range()

    def _check_z_range(self) -> None:
        values = list(self.z_range)
        numbers = all(isinstance(v, Real) and not isinstance(v, bool | np.bool_) for v in values)
        low, high = (float(v) for v in values) if numbers and len(values) == 2 else (np.nan,) * 2
        if (
            not (np.isfinite(low) and np.isfinite(high) and 0 <= low and high - low >= 1e-3)
            or high > _MAX_Z
        ):
            raise InvalidParameterError(
                f"z_range must be two finite numbers "
                f"(low, high) with 0 <= low < high <= {_MAX_Z:g} and high - low >= 0.001; got "
                f"{self.z_range!r}."
            )
