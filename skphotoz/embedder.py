"""MoCo v2 self-supervised pretraining as a scikit-learn transformer."""

from __future__ import annotations

import os
import warnings

import numpy as np
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._base import NetworkEstimator, seeded
from ._inputs import (
    check_input,
    check_labels,
    check_numeric,
    check_redshifts,
    check_sample_shape,
    fill_input,
    input_shape,
    resolve_crop_size,
    rows_text,
)
from ._validation import (
    InvalidParameterError,
    Range,
    Real,
    StrOptions,
    finite,
    fit_context,
    integer,
)
from .metrics import MAD_TO_SIGMA
from .nn import MoCo, MoCoTask, TargetHead, ViewShift, distributed
from .nn.engine import predict
from .nn.photometry import PhotometryJoined
from .nn.scaling import photometry_layer
from .preprocessing import AperturePhotometry, default_photometry

_PUBLISHED = dict(
    backbone="resnet50",
    stem="published",
    projection_dim=128,
    batch_size=256,
    queue_size=65536,
    momentum=0.999,
    temperature=0.1,
    lr=0.03,
    n_epochs=200,
    jitter=7.0,
    crop_size=64,
    dust_ebv=0.5,
    scale=1.0,
    brightness=0.0,
)

#: GPU configurations. "published": the published configuration (Hayat et al. 2021), plain
#: MoCo v2 with ResNet50 and the stride-1 stem on 64x64 crops of 107x107 stamps, a 65,536-key
#: queue, batch 256. "published-photometry": the same scale with this package's photometry
#: term at its default weight (the redshift term stays off, as by default).
#: ``MoCoEmbedder(**MOCO_PRESETS["published"])``.
MOCO_PRESETS = {
    "published": {**_PUBLISHED, "photometry_weight": 0.0, "redshift_weight": 0.0},
    "published-photometry": {**_PUBLISHED, "photometry_weight": 1.0, "redshift_weight": 0.0},
}


# Upper bounds of the queue: its keys take queue_size x projection_dim floats.
_MAX_QUEUE = 1 << 20
_MAX_PROJECTION_DIM = 8192
_MAX_QUEUE_FLOATS = 1 << 28  # 1 GiB of float32


#: Width of the photometry head's bottleneck (Linear, ReLU, Linear); the redshift head's too.
_PHOTOMETRY_HIDDEN = 64
#: Most labelled rows the redshift term's photometric teacher (a GP) is fitted on.
_TEACHER_MAX_SAMPLES = 2000


def _target_head(in_features: int, values: np.ndarray, **kwargs) -> TargetHead:
    """A head whose targets are standardised by their median and MAD (robust to the odd
    aperture at the flux floor); columns without spread get a scale of 1. ``kwargs`` go to
    :class:`TargetHead` (its width and loss)."""
    values = values.reshape(len(values), -1).astype(np.float64)
    known = values[~np.isnan(values).any(axis=1)]
    if len(known) == 0:
        return TargetHead(
            in_features, np.zeros(values.shape[1]), np.ones(values.shape[1]), **kwargs
        )
    center = np.median(known, axis=0)
    scale = MAD_TO_SIGMA * np.median(np.abs(known - center), axis=0)
    spread = np.std(known, axis=0)
    scale = np.where(scale > 0, scale, np.where(spread > 0, spread, 1.0))
    return TargetHead(in_features, center, scale, **kwargs)


def view_photometry(n_bands: int, crop: int, jitter: float, scale: float) -> AperturePhotometry:
    """The aperture photometry that the photometry term predicts from views of ``crop``
    pixels: the radii of :func:`~skphotoz.preprocessing.default_photometry` whose aperture
    stays inside every view (radius and centre shift magnified by up to ``scale``), or its two
    smallest when fewer fit (they then reach beyond the view)."""
    photometry = default_photometry(n_bands)
    inside = [
        radius
        for radius in photometry.radii
        if (radius / photometry.pixel_scale + jitter) * max(scale, 1.0) <= crop / 2
    ]
    radii = tuple(inside) if len(inside) >= 2 else tuple(sorted(photometry.radii)[:2])
    return photometry.set_params(radii=radii)


class MoCoEmbedder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, NetworkEstimator):
    """Self-supervised image encoder trained with MoCo v2; ``transform`` returns embeddings.

    ``fit`` learns, without labels, an encoder under which two augmented views of the same
    galaxy (rotated, flipped, shifted, rescaled, blurred, noised, reddened) are close and views
    of different galaxies are apart (momentum contrast, He et al. 2020, with the MLP projection
    of Chen et al. 2020, as applied to SDSS images by Hayat et al. 2021).

    Parameters
    ----------
    backbone : {"auto", "resnet18", "resnet34", "resnet50", "mlp"}, default="auto"
        Encoder architecture; "auto" picks "resnet18" for images and "mlp" for 2-D input.
    stem : {"standard", "published"}, default="standard"
        ResNet stem: "standard" (stride 2 + max-pool) for CPUs, "published" (stride 1, no
        max-pool) as in Hayat et al. (2021), for GPUs: it keeps 16x the activations, so it
        is an order of magnitude slower (the docs' pretraining-throughput table).
    embedding : {"backbone", "projection"}, default="backbone"
        Output of ``transform``: the backbone representation (512-d for ResNet18/34,
        2048-d for ResNet50, 256-d for the MLP) or the ``projection_dim``-d projection.
    projection_dim : int, default=128
        Width of the MLP projection in which InfoNCE compares views (MoCo v2: 128).
    n_epochs : int, default=30
        Passes over X (timings per machine in ``docs/experiments/moco.md``). ``n_epochs=0``
        keeps the randomly initialised encoder: the baseline against which pretraining is
        judged.
    batch_size : int, default=128
        Galaxies per step; each brings two views, and its keys join the queue.
    queue_size : int or "auto", default="auto"
        Negative keys kept. "auto" keeps ``min(65536, n_samples // 2)``: a queue shorter than
        an epoch never holds an older key of the query's own galaxy, which would act as a
        false negative on small data sets. The published run uses 65,536.
    momentum : float, default=0.99
        Key-encoder momentum; shorter runs need a faster key encoder than the published 0.999.
    temperature : float, default=0.2
        InfoNCE softmax temperature: lower values weigh the hardest negatives more (MoCo v2:
        0.2; Hayat et al. 2021: 0.1).
    lr : float, default=0.06
        Peak SGD learning rate (momentum 0.9), reached after ``warmup_epochs`` and decayed
        with a cosine.
    weight_decay : float, default=1e-4
        L2 penalty of SGD.
    warmup_epochs : float, default=1.0
        Epochs of linear warm-up of the learning rate.
    rotation : bool, default=True
        Augmentation: rotation by a uniform angle in [0, 360).
    flip : bool, default=True
        Augmentation: mirror with probability 1/2.
    jitter : float, default=4.0
        Augmentation: largest shift of the centre in pixels.
    scale : float, default=1.3
        Augmentation: magnification log-uniform in [1/scale, scale].
    psf_fwhm : float, default=1.5
        Augmentation: largest extra Gaussian PSF blur, FWHM in pixels.
    noise : float, default=1.0
        Augmentation: largest added Gaussian noise in units of each band's sky noise (for
        2-D input, of each feature's standard deviation times 0.1).
    dust_ebv : float, default=0.05
        Augmentation: largest E(B-V) of the Galactic reddening applied to each view (5-band
        input only). The SDSS main sample has a median E(B-V) near 0.03; much stronger
        reddening teaches invariance to colour, the main redshift signal. For dereddened input
        (``open_archive(..., deredden=True)``) Hayat et al. (2021) draw up to 0.5.
    brightness : float, default=1.5
        Augmentation: largest change of total brightness in magnitudes, uniform, all bands
        alike (colours kept). Without it (and with mild ``scale``) the embeddings group
        galaxies mostly by brightness and size and lose colour, the main redshift signal
        (measured in ``docs/experiments/moco.md``).
    crop_size : int, optional
        Side of the views and of the centre crop in ``transform``. Defaults to half the stamp
        (32 px of a 64-px stamp, 12.7"): the galaxy body stays in (median half-light radius
        ~7 px), rotations and jitter expose few pixels from outside the stamp (those are
        reflected), and steps cost a fraction of those on the whole stamp.
    nan_policy : {"raise", "fill"}, default="raise"
        What NaN or infinite input values do. Real cutouts have them (masked pixels, stamp
        edges past the survey footprint), and one of them turns a whole batch, and the
        weights, into NaN. "raise": ``fit`` and ``transform`` raise a ValueError naming the
        rows (numpy input is checked up front; lazy input such as
        :class:`~skphotoz.data.HDF5Images` batch by batch as it is read, including the sample
        of the scaling statistics). "fill": such values are replaced by 0 after the fixed
        input scaling, i.e. by the sky level of (sky-subtracted) images and by the training
        mean of 2-D features, and the scaling statistics ignore them. Part of the checkpoint
        fingerprint, since it changes what is learned. Finite input values beyond ±1e30 are
        clipped to ±1e30 under either policy.
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
        Seeds weights, batches and augmentations: on the CPU equal seeds give equal embeddings.
    verbose : bool, default=False
        A progress bar over each epoch's batches and a table row per epoch (loss, learning
        rate, images/s, time).
    checkpoint_dir : str or path-like, optional
        Folder of ``moco.pt``, written after each epoch so that a long pretraining survives a
        crash. The file records a fingerprint of the run (the parameters that shape training,
        the input shape, a sample of the data, the seed and the initial weights): ``fit``
        resumes it only if it is an unfinished run of the same fit (which then ends with the
        weights of an uninterrupted run), restores it if that run had finished, replaces it
        if it is a finished run of another fit, and raises an error naming what differs if it
        is an unfinished run of another fit. Resuming needs an integer ``random_state``.
    callbacks : list of skphotoz.nn.callbacks.Callback, optional
        Your hooks into the training loop (e.g. logging); copies are used and kept in
        ``callbacks_``, with their state saved in the checkpoint.
    warm_start : bool, default=False
        ``fit`` continues training the fitted encoder for ``n_epochs`` more epochs (a new
        warm-up and cosine schedule) instead of starting afresh.
    contrastive_weight : float, default=1.0
        Weight of the InfoNCE term. 0 leaves only the photometry and redshift terms (then
        the views are still augmented, but not contrasted).
    photometry_weight : float, default=1.0
        Weight of the photometry term: a small MLP head (a 64-wide bottleneck) predicts the
        photometry of each augmented query view from its representation, under a mean
        squared error on robustly standardised targets. For images the targets are the
        colours and reference-band magnitudes of
        :class:`~skphotoz.preprocessing.AperturePhotometry` in the apertures that stay inside
        every view (``target_photometry_``; 1.5" and 3" for 32-pixel views, all three for
        64-pixel ones), measured on the stamp and moved by the brightness change and
        reddening drawn for the view, so each view is asked for what it shows: the apertures
        follow the galaxy through rotation, shift and magnification, and the photometry is
        that before noise and blur. Catalogue ``photometry`` given to ``fit``, or the features
        of 2-D input, are the targets of every view as they are (give quantities that the
        augmentations do not change). Contrastive learning alone separates galaxies by what
        survives the augmentations most clearly (brightness, size) and loses much of the
        colour that carries redshift; this term keeps it (measured in ``docs/results.md``).
        0 is plain MoCo v2.
    join_photometry : float, default=0.0
        Images only: weight of the stamps' aperture photometry joined to the embedding by
        ``transform``. 0 returns the image embedding alone. A weight w > 0 returns
        ``[w p / sqrt(n_p), e / |e|]``: the n_p features of
        :class:`~skphotoz.preprocessing.AperturePhotometry` measured exactly on the whole
        stamp and standardised with the training stamps' statistics (``p``), then the image
        embedding ``e`` scaled to unit length. Both parts then have a typical squared length
        of about 1, so w sets the photometry's share of a distance (w = 1: about half, the
        two on an equal footing; w = 2: about four fifths). Colours learned from pixels are
        noisier than measured ones, and a nearest-neighbour photo-z or a regressor on the
        embeddings gets them exactly this way. Can be changed after fitting.
    redshift_weight : float, default=0.0
        Weight of the redshift term of semi-supervised pretraining, used when ``fit`` gets
        ``y`` (NaN for unlabelled rows). A photometric teacher gives every row a target: a
        Gaussian process fitted on the labelled rows' photometry (catalogue ``photometry``
        if given, else the stamps' aperture photometry) predicts each unlabelled galaxy's
        redshift, weighted by the share of the redshift variance it explains there
        (calibrated on its leave-one-out errors); labelled rows keep their own redshift at
        weight 1. A small MLP head (a 64-wide bottleneck) predicts the targets from each query
        view under a weighted Huber loss, so that every row of a batch teaches the encoder,
        not only the few labelled ones. Off by default until it is shown to help
        (``docs/results.md``); with 0, or ``fit(X)`` alone, pretraining is unsupervised.

    Attributes
    ----------
    encoder_ : torch.nn.Module
        Input scaling and backbone (on the CPU).
    moco_ : skphotoz.nn.MoCo
        The trained MoCo module (query and key encoders, projection, queue).
    history_ : list of dict
        Per-epoch ``epoch``, ``loss``, ``lr``, ``images_per_s`` and ``time_s`` (and, with
        the photometry or redshift term, ``loss_contrastive``, ``loss_photometry``,
        ``loss_redshift``: the unweighted terms); warm starts append to it.
    heads_ : torch.nn.ModuleDict
        The pretraining heads used ("photometry", "redshift"); empty for plain MoCo.
        ``heads_["photometry"](transform(X))`` reads the photometry from the embeddings (of
        ``embedding="backbone"``), a check of the term that needs no labels.
    target_photometry_ : skphotoz.preprocessing.AperturePhotometry or None
        The fitted aperture photometry whose features the photometry head predicts (None
        without the term, for catalogue photometry or for 2-D input).
    callbacks_ : list
        The copies of ``callbacks`` used by the last fit.
    n_features_in_ : int
        Bands (images) or features (2-D input).
    input_shape_ : tuple of int
        Shape of one training sample.
    crop_size_ : int or None
        Side of the centre crop of images in ``transform`` (None for 2-D input).
    photometry_layer_ : skphotoz.nn.photometry.AperturePhotometryLayer or None
        The photometry joined by ``join_photometry`` (None for 2-D input).
    photometry_features_ : ndarray of str or None
        Its feature names.
    preprocessing_ : dict or None
        How the training images were read when ``fit`` got an
        :class:`~skphotoz.data.HDF5Images`: ``{"deredden": bool, "crop": int or None}``;
        ``transform`` refuses an archive read otherwise (the embeddings would silently
        differ). None for numpy input, whose preprocessing is unknown.

    See Also
    --------
    skphotoz.data.HDF5Images : out-of-core image input.

    Examples
    --------
    >>> import numpy as np
    >>> from skphotoz import MoCoEmbedder
    >>> X = np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32)
    >>> emb = MoCoEmbedder(n_epochs=2, batch_size=16, queue_size=64, random_state=0)
    >>> emb.fit_transform(X).shape
    (64, 256)
    """

    _parameter_constraints = {
        **NetworkEstimator._parameter_constraints,
        "embedding": [StrOptions({"backbone", "projection"})],
        "projection_dim": [integer(1, _MAX_PROJECTION_DIM)],
        "queue_size": [integer(1, _MAX_QUEUE), StrOptions({"auto"})],
        "momentum": [Range(Real, 0, 1, closed="neither")],
        "temperature": [finite(1e-3, 100, "both")],
        "warm_start": ["boolean"],
        "contrastive_weight": [finite(0.0, 1000, "both")],
        "photometry_weight": [finite(0.0, 1000, "both")],
        "redshift_weight": [finite(0.0, 1000, "both")],
        "join_photometry": [finite(0.0, 1000, "both")],
    }
    _fixed_after_fit = (*NetworkEstimator._fixed_after_fit, "projection_dim")
    # What transform joins to the embedding does not change what pretraining learns.
    _runtime_parameters = NetworkEstimator._runtime_parameters | {"join_photometry"}

    def __init__(
        self,
        backbone="auto",
        *,
        stem="standard",
        embedding="backbone",
        projection_dim=128,
        n_epochs=30,
        batch_size=128,
        queue_size="auto",
        momentum=0.99,
        temperature=0.2,
        lr=0.06,
        weight_decay=1e-4,
        warmup_epochs=1.0,
        rotation=True,
        flip=True,
        jitter=4.0,
        scale=1.3,
        psf_fwhm=1.5,
        noise=1.0,
        dust_ebv=0.05,
        brightness=1.5,
        crop_size=None,
        nan_policy="raise",
        device="auto",
        num_workers=0,
        shuffle_buffer=None,
        random_state=None,
        verbose=False,
        checkpoint_dir=None,
        callbacks=None,
        warm_start=False,
        contrastive_weight=1.0,
        photometry_weight=1.0,
        redshift_weight=0.0,
        join_photometry=0.0,
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
        self.embedding = embedding
        self.projection_dim = projection_dim
        self.queue_size = queue_size
        self.momentum = momentum
        self.temperature = temperature
        self.warm_start = warm_start
        self.contrastive_weight = contrastive_weight
        self.photometry_weight = photometry_weight
        self.redshift_weight = redshift_weight
        self.join_photometry = join_photometry

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, photometry=None):
        """Pretrain the encoder on X, with redshifts where ``y`` has them.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_bands, height, width) or (n_samples, n_features)
            Images (numpy or a lazy :class:`~skphotoz.data.HDF5Images`) or feature vectors.
        y : array-like of shape (n_samples,), optional
            Redshifts, NaN for unlabelled rows: semi-supervised pretraining with the
            redshift term on the labelled rows (``redshift_weight``). None (or all NaN):
            unsupervised. In a :class:`~sklearn.pipeline.Pipeline` the pipeline's ``y``
            arrives here.
        photometry : array-like of shape (n_samples, n_targets), optional
            Catalogue photometry of each galaxy (e.g. dereddened colours and magnitudes), the
            targets of the photometry term in place of the aperture photometry measured on
            the stamps.

        Returns
        -------
        self
        """
        continuing = self.warm_start and hasattr(self, "moco_")
        if continuing:
            self._check_fixed()
        X = check_input(self, X, reset=not continuing)
        if continuing:
            check_sample_shape(self, X)
        self._check_batch_memory(X, len(X))
        if len(X) < 2:
            raise ValueError(
                f"MoCoEmbedder needs at least 2 samples to contrast; got {len(X)} sample."
            )
        z = self._check_redshifts(y, len(X))
        if not continuing:
            self.input_shape_ = input_shape(X)
            self.crop_size_ = resolve_crop_size(self.crop_size, X)
        targets, measured = self._photometry_targets(X, photometry)
        if self.contrastive_weight == 0 and targets is None and z is None:
            raise ValueError(
                "contrastive_weight=0 leaves nothing to learn without the photometry term "
                "(photometry_weight > 0) or labels (y with redshift_weight > 0)."
            )
        seed = self._draw_seed()
        if z is not None:
            z, _ = self._redshift_targets(X, z, seed, photometry)
        if continuing:
            moco, heads = self.moco_, self.heads_
        else:
            with seeded(seed):
                moco = self._build_moco(X, seed)
            heads = nn.ModuleDict()
        X = fill_input(X, moco.backbone[0], self.nan_policy)
        if not continuing:
            self.photometry_layer_, self.photometry_features_ = None, None
            if len(self.input_shape_) == 3:
                self.photometry_layer_, self.photometry_features_ = photometry_layer(
                    X, default_photometry(self.input_shape_[0]), seed
                )
        width = moco.backbone.out_features
        arrays = [X]
        with seeded(seed + 1):
            for name, values in (("photometry", targets), ("redshift", z)):
                if values is None:
                    continue
                head = heads[name] if name in heads else None
                # The redshift targets come with their weights: (n, 2).
                column = values[:, :1] if name == "redshift" else values
                if head is None or head.center.numel() != column.reshape(len(X), -1).shape[1]:
                    # Huber for redshifts: a true label in the tail is not clipped.
                    loss = "mse" if name == "photometry" else "huber"
                    heads[name] = _target_head(width, column, hidden=_PHOTOMETRY_HIDDEN, loss=loss)
                arrays.append(values)
        task = MoCoTask(
            moco,
            self._build_augment(X, moco.backbone, self.crop_size_),
            photometry_head=heads["photometry"] if targets is not None else None,
            redshift_head=heads["redshift"] if z is not None else None,
            weights=(self.contrastive_weight, self.photometry_weight, self.redshift_weight),
            view_shift=None if measured is None else ViewShift(measured.band_weights()),
            redshift_weighted=True,
        )
        trainer = self._train(
            task, tuple(arrays), seed=seed, description="MoCo", checkpoint_name="moco.pt"
        )
        # A warm start continues the epoch count of the earlier fits.
        previous = self.history_ if continuing else []
        history = [{**entry, "epoch": entry["epoch"] + len(previous)} for entry in trainer.history]
        self.moco_ = moco.cpu().eval()
        self.heads_ = heads.cpu().eval()
        self.encoder_ = moco.backbone
        self.history_ = previous + history
        self._check_fitted((self.encoder_, self.moco_.query_encoder), X, len(X))
        self._remember_fixed()
        return self

    @property
    def _n_features_out(self) -> int:
        """Width of ``transform``'s output for the current ``embedding``."""
        width = (
            self.encoder_.out_features
            if self.embedding == "backbone"
            else self.moco_.query_encoder[1][-1].out_features
        )
        if self.join_photometry > 0:
            width += self._photometry_layer().n_features
        return width

    def _photometry_layer(self):
        """The photometry joined by ``join_photometry``, or a ValueError saying why none."""
        layer = getattr(self, "photometry_layer_", None)
        if layer is None:
            raise ValueError(
                f"join_photometry={self.join_photometry} joins aperture photometry measured on "
                f"images; this embedder was fitted on samples of shape "
                f"{tuple(self.input_shape_)}"
                + ("" if len(self.input_shape_) == 1 else " before photometry could be joined")
                + ". Set join_photometry=0."
            )
        return layer

    def _check_parameters(self) -> None:
        super()._check_parameters()
        if self.queue_size != "auto" and self.queue_size * self.projection_dim > _MAX_QUEUE_FLOATS:
            raise InvalidParameterError(
                f"queue_size x projection_dim must be at most {_MAX_QUEUE_FLOATS:,} floats "
                f"(1 GiB for the queue of keys); got queue_size={self.queue_size} x "
                f"projection_dim={self.projection_dim} = "
                f"{self.queue_size * self.projection_dim:,}."
            )

    def _check_redshifts(self, y, n_samples: int):
        """The labels as float32 (n_samples,), or None when the redshift term is off."""
        if y is None:
            return None
        y = check_labels(y, n_samples, type(self).__name__)
        if self.redshift_weight == 0 or np.isnan(y).all():
            return None
        check_redshifts(y, allow_nan=True)
        return y.astype(np.float32)

    def _redshift_targets(self, X, z, seed: int, photometry=None):
        """Targets of the redshift term, float32 (n_samples, 2): a redshift for every row and
        its weight, from a photometric teacher; and the teacher (None if every row is
        labelled).

        A :class:`~skphotoz.baselines.GaussianProcessPhotoZ` is fitted on the labelled rows'
        photometry (catalogue ``photometry`` if given, else the stamps' aperture photometry;
        the features themselves for 2-D input) and predicts every unlabelled galaxy's
        redshift. A labelled row keeps its own redshift with weight 1; an unlabelled one gets
        the teacher's, with weight ``1 − s² / Var(z)``: the share of the redshift variance the
        teacher explains there (s: its predictive standard deviation, scaled by
        ``std_calibration_`` so that it matches its leave-one-out errors on the labels; 0 for
        a teacher that knows nothing, or is confidently wrong). The teacher fits at most
        ``_TEACHER_MAX_SAMPLES`` labelled rows, a random subset beyond (an exact GP costs
        O(n³)). Under torchrun every rank takes rank 0's targets.
        """
        from .baselines import GaussianProcessPhotoZ

        labelled = ~np.isnan(z)
        if labelled.sum() < 2:
            raise ValueError(
                f"y must label at least 2 rows for the redshift term (its photometric teacher "
                f"is fitted on them); got {int(labelled.sum())} labelled row(s). Mark "
                f"unlabelled rows NaN, or set redshift_weight=0."
            )
        targets = np.stack([z.astype(np.float64), np.ones(len(z))], axis=1)
        if labelled.all():
            return targets.astype(np.float32), None
        if photometry is not None:
            features = np.asarray(photometry, dtype=np.float64).reshape(len(z), -1)
        elif len(input_shape(X)) == 1:
            features = np.asarray(X, dtype=np.float64)
        else:
            stamps = fill_input(X, None, self.nan_policy)
            features = default_photometry(input_shape(X)[0]).fit_transform(stamps)
        # Holes (2-D input under nan_policy="fill") take the labelled rows' median.
        median = np.nan_to_num(np.nanmedian(features[labelled], axis=0))
        features = np.where(np.isfinite(features), features, median)
        teacher = GaussianProcessPhotoZ(
            n_restarts=1, max_samples=_TEACHER_MAX_SAMPLES, random_state=seed
        )
        with warnings.catch_warnings():
            # Beyond max_samples labels the teacher fits a random subset: enough for a teacher.
            warnings.filterwarnings(
                "ignore", message="GaussianProcessPhotoZ fits a random", category=UserWarning
            )
            teacher.fit(features[labelled], z[labelled].astype(np.float64))
        mean, std = teacher.predict(features[~labelled], return_std=True)
        variance = np.var(z[labelled].astype(np.float64))
        explained = 1.0 - (teacher.std_calibration_ * std) ** 2 / max(variance, 1e-12)
        targets[~labelled] = np.stack([mean, np.clip(explained, 0.0, 1.0)], axis=1)
        return distributed.broadcast_object(targets.astype(np.float32)), teacher

    def _photometry_targets(self, X, photometry):
        """Targets of the photometry term, float32 (n_samples, n_targets), or None; and the
        fitted :class:`AperturePhotometry` that measured them on the stamps (None for
        catalogue photometry or 2-D input), also kept as ``target_photometry_``."""
        measured = None
        if self.photometry_weight == 0:
            self.target_photometry_ = None
            return None, None
        if photometry is not None:
            check_numeric(np.asarray(photometry), "photometry")
            values = np.asarray(photometry, dtype=np.float64)
            if values.ndim == 1:
                values = values.reshape(-1, 1)
            if values.ndim != 2 or values.shape[0] != len(X):
                raise ValueError(
                    f"photometry must have shape (n_samples, n_targets) with n_samples="
                    f"{len(X)}; got shape {values.shape}."
                )
            if not np.isfinite(values).all():
                rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
                raise ValueError(
                    f"photometry must be finite; it holds NaN or infinity in {len(rows)} rows "
                    f"(rows {rows_text(rows)})."
                )
        elif len(input_shape(X)) == 1:
            values = np.asarray(X, dtype=np.float64)
        else:
            # Measured on the stamps as the network sees them (holes filled with the sky), in
            # apertures that stay inside the views.
            stamps = fill_input(X, None, self.nan_policy)
            measured = view_photometry(input_shape(X)[0], self.crop_size_, self.jitter, self.scale)
            values = measured.fit_transform(stamps)
        self.target_photometry_ = measured
        # Rows with non-finite targets (holes in 2-D features under nan_policy="fill") do
        # not count in the photometry term.
        values = np.where(np.isfinite(values), values, np.nan)
        return np.clip(values, -1e30, 1e30).astype(np.float32), measured

    def transform(self, X):
        """Embed X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_bands, height, width) or (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_features_out) float32
        """
        check_is_fitted(self, "moco_")
        self._check_predict_call()
        X = check_input(self, X, reset=False)
        check_sample_shape(self, X)
        X = fill_input(X, self.encoder_[0], self.nan_policy)
        module = self.encoder_ if self.embedding == "backbone" else self.moco_.query_encoder
        crop = self.crop_size_
        if self.join_photometry > 0:
            module = PhotometryJoined(module, self._photometry_layer(), self.join_photometry, crop)
            crop = None  # the photometry is measured on the whole stamp
        out = predict(
            module, X, batch_size=self.inference_batch_size, device=self.device, crop=crop
        )
        return self._check_outputs(out, module, "transform")

    def _build_moco(self, X, seed: int) -> MoCo:
        encoder = self._build_encoder(X, seed)
        queue_size = (
            min(65536, max(1, len(X) // 2)) if self.queue_size == "auto" else self.queue_size
        )
        return MoCo(
            encoder,
            projection_dim=self.projection_dim,
            queue_size=queue_size,
            momentum=self.momentum,
            temperature=self.temperature,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


def fitted_embedder(encoder):
    """The fitted MoCoEmbedder inside ``encoder`` (frozen, or loaded from a skops file), else
    None: how :class:`~skphotoz.PhotoZRegressor` reads its ``encoder`` parameter.

    A path is loaded with :func:`skphotoz.io.load`, which refuses pickles (they run code when
    loaded): a trusted joblib file is loaded by the caller and given as the object.
    """
    if isinstance(encoder, str | os.PathLike):
        from .exceptions import UntrustedFileError
        from .io import load

        path = os.fspath(encoder)
        if not os.path.isfile(path):
            hint = (
                f" (a backbone name: did you mean backbone={path!r}?)"
                if path in ("resnet18", "resnet34", "resnet50", "mlp", "auto")
                else ""
            )
            raise FileNotFoundError(
                f"encoder={path!r} is not a file{hint}; encoder takes None, a "
                f"MoCoEmbedder, a FrozenEstimator of a fitted one, or the path of one saved "
                f"with skphotoz.io.dump (or `skphotoz pretrain`)."
            )
        try:
            encoder = load(path)
        except UntrustedFileError as error:
            if error.types:
                raise UntrustedFileError(f"encoder={path!r}: {error}", error.types) from None
            raise UntrustedFileError(
                f"encoder={path!r} is a pickle (joblib) file: a pickle runs any code it "
                f"carries when it is loaded, so skphotoz does not load one from a path. If you "
                f"trust whoever wrote it, pass the loaded embedder, frozen: "
                f"encoder=FrozenEstimator(skphotoz.io.load({path!r}, trusted=True)) "
                f"(sklearn.frozen)."
            ) from None
        except ValueError as error:
            raise ValueError(
                f"encoder={path!r} could not be loaded as a saved MoCoEmbedder: {error}"
            ) from error
    inner = getattr(encoder, "estimator", encoder)  # sklearn.frozen.FrozenEstimator
    if isinstance(inner, MoCoEmbedder) and hasattr(inner, "moco_"):
        return inner
    return None
