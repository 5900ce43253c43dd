"""MoCo v2: momentum contrast with an MLP projection head (He et al. 2020; Chen et al. 2020).

A query encoder is trained to pick, among the key of the same galaxy (another augmented view,
encoded by a slowly moving copy of the query encoder) and a queue of keys of earlier batches,
the one that belongs to its galaxy.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed

#: Keys of the queue per block of the InfoNCE log-sum-exp: large enough that each block is
#: one efficient matrix product, small enough that a block of logits (queries x 4,096) stays
#: in cache rather than the whole (queries x queue) matrix going through memory.
INFO_NCE_CHUNK = 4096

#: Standardised targets of a mean-squared-error head are clipped at this many units.
_MSE_CLIP = 5.0


class _QueueLogSumExp(torch.autograd.Function):
    """Row-wise log-sum-exp of ``query @ negatives.T``, taken ``chunk`` keys at a time.

    Forward: a running ``logaddexp`` of each block's ``logsumexp``. Backward: each block's
    logits are formed again and ``softmax x grad`` times the block's keys is added to the
    queries' gradient. The (n, K) logits are never stored: one more matrix product, far less
    memory traffic (on a 2-core CPU with 65,536 keys, about half the time of the loss).
    ``negatives`` gets no gradient (the queue is a buffer).
    """

    @staticmethod
    def forward(ctx, query, negatives, chunk):
        lse = None
        for start in range(0, negatives.shape[0], chunk):
            block = torch.logsumexp(query @ negatives[start : start + chunk].T, dim=1)
            lse = block if lse is None else torch.logaddexp(lse, block)
        ctx.save_for_backward(query, negatives, lse)
        ctx.chunk = chunk
        return lse

    @staticmethod
    def backward(ctx, grad):
        query, negatives, lse = ctx.saved_tensors
        grad_query = torch.zeros_like(query)
        for start in range(0, negatives.shape[0], ctx.chunk):
            keys = negatives[start : start + ctx.chunk]
            softmax = torch.exp(torch.addmm(-lse[:, None], query, keys.T))
            grad_query.addmm_(softmax.mul_(grad[:, None]), keys)
        return grad_query, None, None


def info_nce(
    query: torch.Tensor,
    key: torch.Tensor,
    negatives: torch.Tensor,
    temperature: float,
    chunk_size: int | None = INFO_NCE_CHUNK,
) -> torch.Tensor:
    """InfoNCE loss of normalised queries against their positive keys and shared negatives.

    Parameters
    ----------
    query, key : tensors of shape (n, d)
        L2-normalised; row i of ``key`` is the positive of row i of ``query``.
    negatives : tensor of shape (K, d)
        L2-normalised negative keys (the queue).
    temperature : float
    chunk_size : int or None, default=4096
        The log-sum-exp over the negatives is taken this many keys at a time, without storing
        the (n, K) logits (the same loss and gradients up to float rounding). None, or
        negatives that need a gradient: one (n, K) matrix, through plain autograd.

    Returns
    -------
    Scalar tensor: mean over the batch of ``-log softmax`` of the positive logit among
    ``[q.k+, q.k-_1, ..., q.k-_K] / temperature``.
    """
    # The cross-entropy of the positive among [positive, negatives], without building the
    # (n, 1 + K) logits: the temperature divides the n queries rather than the n x K logits,
    # and the log-sum-exp of the negatives joins the positive's.
    scaled = query / temperature
    positive = (scaled * key).sum(dim=1)
    if chunk_size is None or negatives.requires_grad or negatives.shape[0] <= chunk_size:
        negative = torch.logsumexp(scaled @ negatives.T, dim=1)
    else:
        negative = _QueueLogSumExp.apply(scaled, negatives.to(scaled.dtype), int(chunk_size))
    normaliser = torch.logaddexp(positive, negative)
    return (normaliser - positive).mean()


def projection_head(in_features: int, out_features: int = 128) -> nn.Sequential:
    """MoCo v2's 2-layer MLP projection (Chen et al. 2020)."""
    return nn.Sequential(
        nn.Linear(in_features, in_features),
        nn.ReLU(inplace=True),
        nn.Linear(in_features, out_features),
    )


class MoCo(nn.Module):
    """Query encoder, momentum key encoder and queue of MoCo v2.

    Parameters
    ----------
    encoder : nn.Module
        Backbone with an ``out_features`` attribute; the key encoder is a copy of it.
    projection_dim : int, default=128
    queue_size : int, default=65536
        Number of negative keys kept; need not be a multiple of the batch size.
    momentum : float, default=0.999
        Key encoder update ``theta_k <- m theta_k + (1 - m) theta_q``.
    temperature : float, default=0.2
    bn_groups : int, default=2
        Shuffle-BN on one device: keys are encoded in this many random sub-batches, so the
        BatchNorm statistics of a key never come from the sub-batch of its own query, which
        would let the network cheat (He et al. 2020, §3.3). Under torchrun the key views of
        all ranks are gathered and shuffled together instead, and each rank encodes one
        sub-batch of that global batch; the keys of all ranks then enter the queue, so the
        queue is the same on every rank.
    """

    def __init__(
        self,
        encoder: nn.Module,
        projection_dim: int = 128,
        queue_size: int = 65536,
        momentum: float = 0.999,
        temperature: float = 0.2,
        bn_groups: int = 2,
    ):
        super().__init__()
        self.momentum = momentum
        self.temperature = temperature
        self.bn_groups = bn_groups
        self.query_encoder = nn.Sequential(
            encoder, projection_head(encoder.out_features, projection_dim)
        )
        self.key_encoder = copy.deepcopy(self.query_encoder)
        for param in self.key_encoder.parameters():
            param.requires_grad_(False)
        queue = F.normalize(torch.randn(queue_size, projection_dim), dim=1)
        self.register_buffer("queue", queue)
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @property
    def backbone(self) -> nn.Module:
        """The query encoder without its projection: the representation to keep."""
        return self.query_encoder[0]

    @torch.no_grad()
    def momentum_update(self) -> None:
        """Move the key encoder's parameters towards the query encoder's."""
        keys = list(self.key_encoder.parameters())
        queries = [p.detach() for p in self.query_encoder.parameters()]
        # theta_k + (1 - m)(theta_q - theta_k), all tensors in one call.
        torch._foreach_lerp_(keys, queries, 1.0 - self.momentum)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, gathered: bool = False) -> None:
        """Replace the oldest keys of the queue by ``keys``, wrapping around its end.

        Under torchrun the keys of all ranks are gathered first (in rank order), unless
        ``gathered`` says they already are.
        """
        if not gathered:
            keys = distributed.all_gather(keys)
        size = self.queue.shape[0]
        keys = keys[-size:]
        slots = (self.queue_ptr + torch.arange(keys.shape[0], device=keys.device)) % size
        self.queue[slots] = keys.to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + keys.shape[0]) % size)

    @torch.no_grad()
    def encode_keys(self, images: torch.Tensor, generator: torch.Generator | None = None):
        """Normalised keys, encoded in shuffled sub-batches (shuffle-BN)."""
        return self._encode_keys(images, generator)[0]

    @torch.no_grad()
    def _encode_keys(self, images: torch.Tensor, generator: torch.Generator | None = None):
        """This rank's keys and the keys of all ranks (the same tensor on one process)."""
        if distributed.world_size() > 1:
            return self._encode_keys_across_ranks(images, generator)
        n = images.shape[0]
        groups = max(1, min(self.bn_groups, n // 2))
        order = torch.randperm(n, generator=generator, device=images.device)
        keys = torch.cat([self.key_encoder(chunk) for chunk in images[order].chunk(groups)])
        restored = torch.empty_like(keys)
        restored[order] = keys
        keys = F.normalize(restored.float(), dim=1)
        return keys, keys

    def _encode_keys_across_ranks(self, images: torch.Tensor, generator=None):
        # Every rank holds n views; rank 0 draws one permutation of the n * world views of
        # all ranks, each rank encodes its n-view slice of the permuted batch, and the keys
        # are gathered and put back in the original order.
        n, world, rank = images.shape[0], distributed.world_size(), distributed.rank()
        everything = distributed.all_gather(images)
        # Drawn from the step's generator on every rank (its stream stays a function of the
        # seed, the epoch and the rank); rank 0's permutation is the one used.
        order = torch.randperm(n * world, generator=generator, device=images.device)
        order = distributed.broadcast_tensor(order)
        mine = order[rank * n : (rank + 1) * n]
        keys = F.normalize(self.key_encoder(everything[mine]).float(), dim=1)
        gathered = distributed.all_gather(keys)
        restored = torch.empty_like(gathered)
        restored[order] = gathered
        return restored[rank * n : (rank + 1) * n], restored

    def forward(
        self,
        view_q: torch.Tensor,
        view_k: torch.Tensor,
        generator=None,
        return_features: bool = False,
    ):
        """InfoNCE loss of one step; updates the key encoder first and the queue after.

        With ``return_features`` also returns the backbone representation of the queries
        (before the projection), on which the pretraining heads of :class:`MoCoTask` work.
        """
        self.momentum_update()
        features = self.backbone(view_q)
        query = F.normalize(self.query_encoder[1](features).float(), dim=1)
        key, all_keys = self._encode_keys(view_k, generator)
        loss = info_nce(query, key, self.queue.clone().detach(), self.temperature)
        self.enqueue(all_keys, gathered=True)
        return (loss, features) if return_features else loss


class TargetHead(nn.Module):
    """Predicts standardised per-galaxy targets (photometry, redshift) from a representation.

    Targets are standardised with fixed ``center`` and ``scale`` (from the training data).
    Rows whose target is NaN (unlabelled galaxies) do not count.

    Parameters
    ----------
    in_features : int
    center, scale : sequence of float
        One value per target column.
    hidden : int, default=0
        0: a linear head, so that the targets must be linearly readable from the
        representation. Otherwise an MLP through a ``hidden``-wide bottleneck (Linear, ReLU,
        Linear), which lets the representation hold the targets in any smooth form.
    loss : {"huber", "mse"}, default="huber"
        Huber (smooth L1, transition at one standard unit: a few extreme targets, e.g. a
        catastrophic redshift, do not dominate), or the mean squared error (for targets that
        the view determines, where every unit of error counts), with the standardised
        targets clipped at ±5 (an aperture at the flux floor is noise, not a colour).
    """

    def __init__(self, in_features: int, center, scale, hidden: int = 0, loss: str = "huber"):
        super().__init__()
        if loss not in ("huber", "mse"):
            raise ValueError(f"loss must be 'huber' or 'mse'; got {loss!r}.")
        center = torch.as_tensor(center, dtype=torch.float32).reshape(-1)
        scale = torch.as_tensor(scale, dtype=torch.float32).reshape(-1)
        self.register_buffer("center", center)
        self.register_buffer("scale", scale)
        self.loss_name = loss
        if hidden:
            self.net = nn.Sequential(
                nn.Linear(in_features, hidden),
                nn.ReLU(inplace=True),
                nn.Linear(hidden, center.numel()),
            )
        else:
            self.net = nn.Linear(in_features, center.numel())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Predicted targets in their own units, (n, n_targets)."""
        return self.net(features).float() * self.scale + self.center

    def loss(
        self, features: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean loss over the rows with a target; 0 (with gradient) if there are none.

        ``weight`` (n,), optional: each row's weight (e.g. a soft target's confidence, at
        most 1); a row's loss is multiplied by it and the sum divided by the number of rows
        with a target, so that a row pulls as hard whatever else its batch holds.
        """
        target = target.float().reshape(features.shape[0], -1)
        known = ~torch.isnan(target).any(dim=1)
        predicted = self.net(features).float()
        if not bool(known.any()):
            return predicted.sum() * 0.0
        standard = (target[known] - self.center) / self.scale
        if self.loss_name == "mse":
            errors = F.mse_loss(
                predicted[known], standard.clamp(-_MSE_CLIP, _MSE_CLIP), reduction="none"
            )
        else:
            errors = F.smooth_l1_loss(predicted[known], standard, reduction="none")
        if weight is None:
            return errors.mean()
        return (errors.mean(dim=1) * weight.float().reshape(-1)[known]).mean()


class ViewShift(nn.Module):
    """How the photometry of an augmented view differs from its stamp's.

    A view's band magnitudes are its stamp's plus the ``"magnitude_change"`` that
    :meth:`GalaxyAugment.forward` (``return_draws=True``) drew for it (brightness and
    reddening), so a feature ``W @ magnitudes`` moves by ``W`` times that. Added to the
    stamp's photometry it gives the view's own, exactly: the apertures follow the galaxy
    through rotation, shift and magnification (flux is kept), and the photometry is of the
    view before noise and blur.

    Parameters
    ----------
    band_weights : array of shape (n_targets, n_bands)
        :meth:`skphotoz.preprocessing.AperturePhotometry.band_weights`.
    """

    def __init__(self, band_weights):
        super().__init__()
        self.register_buffer("band_weights", torch.as_tensor(band_weights, dtype=torch.float32))

    def forward(self, draws: dict) -> torch.Tensor:
        """The change of each target, (n, n_targets)."""
        return draws["magnitude_change"].float() @ self.band_weights.T


class MoCoTask(nn.Module):
    """One pretraining step: two random views of each sample, the InfoNCE loss, and optional
    photometry and redshift terms on the query view's representation.

    ``forward(x, [photometry], [z], generator=...)`` takes the targets of the heads present,
    in that order: ``photometry`` of the galaxy, measured on the un-augmented stamp, and
    ``z`` (NaN where unknown; with ``redshift_weighted``, shape (n, 2): each row's redshift
    target and its weight in the term). With ``view_shift`` (a :class:`ViewShift`) the photometry
    target of each query view is moved by the brightness and reddening drawn for that view,
    so that the head predicts what the view shows; without it, the stamp's photometry is the
    target of every view (catalogue quantities that the augmentations do not change). The loss is
    ``weights[0] * InfoNCE + weights[1] * photometry + weights[2] * redshift``; the terms of
    the last step are kept in :attr:`loss_terms`.
    """

    def __init__(
        self,
        moco: MoCo,
        augment: nn.Module,
        photometry_head: TargetHead | None = None,
        redshift_head: TargetHead | None = None,
        weights=(1.0, 0.0, 0.0),
        view_shift: ViewShift | None = None,
        redshift_weighted: bool = False,
    ):
        super().__init__()
        self.redshift_weighted = bool(redshift_weighted)
        self.moco = moco
        self.augment = augment
        self.view_shift = view_shift if photometry_head is not None else None
        self.photometry_head = photometry_head
        self.redshift_head = redshift_head
        self.weights = tuple(float(w) for w in weights)
        self.loss_terms: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor, *targets, generator: torch.Generator | None = None):
        if self.view_shift is not None:
            view_q, draws = self.augment(x, generator, return_draws=True)
        else:
            view_q = self.augment(x, generator)
        view_k = self.augment(x, generator)
        if self.photometry_head is None and self.redshift_head is None:
            return self.moco(view_q, view_k, generator)
        contrastive, features = self.moco(view_q, view_k, generator, return_features=True)
        targets = list(targets)
        terms = {"contrastive": contrastive}
        if self.photometry_head is not None:
            photometry = targets.pop(0)
            if self.view_shift is not None:
                photometry = photometry.float() + self.view_shift(draws)
            terms["photometry"] = self.photometry_head.loss(features, photometry)
        if self.redshift_head is not None:
            z = targets.pop(0)
            weight = None
            if self.redshift_weighted:
                z, weight = z[:, 0], z[:, 1]
            terms["redshift"] = self.redshift_head.loss(features, z, weight)
        self.loss_terms = {name: value.detach() for name, value in terms.items()}
        weights = dict(zip(("contrastive", "photometry", "redshift"), self.weights, strict=True))
        return sum(weights[name] * value for name, value in terms.items())
