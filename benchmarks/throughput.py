"""Throughput of skphotoz's training engine and inference, and where a MoCo step's time goes.

Every figure is measured on skphotoz's own code: the :class:`~skphotoz.nn.engine.Trainer` that
``MoCoEmbedder.fit`` or ``PhotoZRegressor.fit`` builds (captured by a callback just before its
first epoch, so the task, device placement, memory format, optimiser and schedule are exactly
the estimator's), driven through ``Trainer.run_epoch`` in blocks of steps. Sections
(``--sections``):

grid       images/s of pretraining steps (read the batch, two GalaxyAugment views on the
           device, query forward and backward, key forward, queue, optimiser), fine-tuning
           steps (PhotoZRegressor's) and inference (MoCoEmbedder.transform's and
           PhotoZRegressor.predict's network pass, ``engine.predict``), per backbone, stem and
           view size.
pipeline   the data pipeline's share of a MoCo step: reading the batch (numpy, HDF5 archive),
           the copy to the device, the two augmentations and the network part, timed apart;
           and whole epochs reading the archive with 0 and ``--loader-workers`` workers.
ratio      MoCo steps of the CPU defaults against bare forward + backward + SGD steps of the
           same backbone on one view of the same size and batch, interleaved in rounds so
           that machine noise hits both alike (ideal about 0.75: the key encoder adds a
           forward pass to the three of a forward + backward).
profile    the stages of one MoCo step of the defaults timed apart, and the ratio again with
           benchmark-local variants of the slowest stages.
reference  our MoCo steps against the same MoCo model and step fed the usual way: a torch
           Dataset returning two views per sample, augmented per sample by torchvision
           transforms in DataLoader workers (benchmarks/_moco_reference.py), interleaved.
layout     (CPU) channels-last against the default memory format for the default backbone.
compile    torch.compile of the backbones (``--compile``).

    python benchmarks/throughput.py --quick                   # < 1 min: does it run?
    python benchmarks/throughput.py --device cpu --threads 2  # full CPU run, a few minutes
    python benchmarks/throughput.py --device cuda             # adds the published preset

Writes benchmarks/results/throughput_<device>.csv (``--out`` to change), rewritten after each
row so that an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import dataclasses
import gc
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import skphotoz.nn.engine as engine
from skphotoz import MOCO_PRESETS, MoCoEmbedder, PhotoZRegressor
from skphotoz.data import HDF5Images, write_archive
from skphotoz.datasets import make_sdss_galaxies
from skphotoz.nn import Callback, GalaxyAugment, info_nce
from skphotoz.nn.augment import add_gaussian_noise, affine_resample, gaussian_blur
from skphotoz.nn.engine import center_crop, predict
from skphotoz.nn.loading import batch_loader, epoch_batches, to_device

sys.path.insert(0, str(Path(__file__).parent))
import _moco_reference as reference  # noqa: E402
from _output import write_rows  # noqa: E402

#: Queue of the measured MoCo runs: what queue_size="auto" keeps for 131,072 galaxies or more
#: (and the published preset's).
QUEUE = 65536
ALL_SECTIONS = ("grid", "pipeline", "ratio", "profile", "reference", "layout", "compile")


# ------------------------------------------------------------------------- settings
@dataclass
class Setup:
    """One configuration: MoCoEmbedder parameters and the stamp size of the data."""

    label: str
    params: dict
    stamp: int = 64

    @property
    def batch(self) -> int:
        return self.params["batch_size"]

    @property
    def view(self) -> int:
        return self.params["crop_size"]

    def describe(self) -> dict:
        p = self.params
        return dict(
            backbone=p["backbone"],
            stem=p["stem"],
            view_px=p["crop_size"],
            stamp_px=self.stamp,
            batch=p["batch_size"],
        )


def default_setup() -> Setup:
    """MoCoEmbedder's defaults on 64-px stamps (the queue as "auto" keeps it on large data)."""
    d = MoCoEmbedder().get_params()
    params = dict(
        backbone="resnet18" if d["backbone"] == "auto" else d["backbone"],
        stem=d["stem"],
        crop_size=32 if d["crop_size"] is None else d["crop_size"],  # half the 64-px stamp
        batch_size=d["batch_size"],
        queue_size=QUEUE if d["queue_size"] == "auto" else d["queue_size"],
    )
    return Setup("defaults", params)


def preset_setup() -> Setup:
    """MOCO_PRESETS["published"]: ResNet50, stride-1 stem, 64-px views of 107-px stamps."""
    params = {k: v for k, v in MOCO_PRESETS["published"].items() if k != "n_epochs"}
    return Setup("published preset", params, stamp=107)


def grid_setups(device: torch.device) -> list[Setup]:
    """Backbone x stem x view size. On CPUs the stride-1 stem runs ~40x slower: three of its
    configurations, with the batches of benchmarks/pretrain_throughput.py."""
    out = []
    base = default_setup().params
    if device.type == "cpu":
        for depth in (18, 34, 50):
            for view in (32, 48, 64):
                out.append((f"resnet{depth}", "standard", view, 128))
        out += [
            ("resnet18", "published", 32, 32),
            ("resnet18", "published", 64, 32),
            ("resnet50", "published", 64, 16),
        ]
    else:
        for stem in ("standard", "published"):
            for depth in (18, 34, 50):
                for view in (32, 48, 64):
                    out.append((f"resnet{depth}", stem, view, 256))
    return [
        Setup("grid", {**base, "backbone": b, "stem": s, "crop_size": v, "batch_size": n})
        for b, s, v, n in out
    ]


@dataclass
class Timing:
    """How long to measure: a warm-up, then blocks of about ``block_s`` seconds until
    ``min_blocks`` blocks and ``min_time`` seconds (at most ``max_blocks``)."""

    warmup_steps: int = 2
    block_s: float = 3.0
    min_blocks: int = 2
    max_blocks: int = 6
    min_time: float = 6.0
    max_steps: int = 8  # rows of the data = max_steps x batch
    rounds: int = 5  # interleaved rounds (ratio, reference, layout)


# ---------------------------------------------------------------- engine capture
class _Started(Exception):
    """Stops a fit once its Trainer is ready."""


class _Grab(Callback):
    """Keeps the Trainer of a fit at ``on_train_begin`` and stops the fit there."""

    trainers: list = []  # a class attribute: the estimators train with copies of callbacks

    def on_train_begin(self, trainer) -> None:
        _Grab.trainers.append(trainer)
        raise _Started


def engine_trainer(estimator, *fit_args):
    """The Trainer that ``estimator.fit(*fit_args)`` builds, stopped before its first epoch:
    the task on the device (channels-last on CUDA), the SGD optimiser and the schedule."""
    # The learning rate changes no work of a step; a small one keeps thousands of steps on
    # the same few galaxies from diverging (the engine raises on a NaN loss).
    estimator.set_params(callbacks=[_Grab()], n_epochs=1000, lr=1e-4, random_state=0, verbose=False)
    try:
        estimator.fit(*fit_args)
    except _Started:
        return _Grab.trainers.pop()
    raise RuntimeError(f"{type(estimator).__name__}.fit ended without starting to train")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def now(device: torch.device) -> float:
    sync(device)
    return time.perf_counter()


class _ToChannelsLast(torch.nn.Module):
    """Wraps an augmentation so that its views come out channels-last."""

    def __init__(self, augment):
        super().__init__()
        self.inner = augment

    def forward(self, images, generator=None):
        return self.inner(images, generator).contiguous(memory_format=torch.channels_last)


def channels_last_task(trainer) -> None:
    """Channels-last weights and views on the CPU (the engine does it on CUDA only)."""
    trainer.task.to(memory_format=torch.channels_last)
    trainer.task.augment = _ToChannelsLast(trainer.task.augment)


def compile_task(trainer) -> None:
    """torch.compile the encoders of a MoCo or photo-z task, in place."""
    task = trainer.task
    if hasattr(task, "moco"):
        task.moco.query_encoder[0].compile()
        task.moco.key_encoder[0].compile()
    else:
        task.encoder.compile()


class EngineBlocks:
    """Blocks of ``Trainer.run_epoch`` over the first ``steps x batch`` rows of the data."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.batch = trainer.config.batch_size
        self.max_steps = max(1, len(trainer.arrays[0]) // self.batch)
        self.epoch = 0

    def run(self, steps: int) -> tuple[float, float]:
        """(images/s, seconds) of ``steps`` steps."""
        self.trainer.n_samples = min(steps, self.max_steps) * self.batch
        entry = self.trainer.run_epoch(self.epoch)
        self.epoch += 1
        return entry["images_per_s"], entry["time_s"]


class BareSteps:
    """Forward + backward + optimiser step (the engine's optimiser and settings) of a copy of
    ``encoder`` on one fixed view batch."""

    def __init__(
        self, encoder, optimizer, images, batch: int, view: int, device, channels_last: bool
    ):
        self.device = device
        self.net = copy.deepcopy(encoder).to(device).train()
        layout = device.type == "cuda" or channels_last
        if layout:
            self.net.to(memory_format=torch.channels_last)
        # The engine's optimiser, with its settings (foreach, momentum, weight decay, lr).
        kind, defaults = type(optimizer), optimizer.defaults
        self.optimizer = kind(self.net.parameters(), **defaults)
        x = center_crop(torch.as_tensor(np.ascontiguousarray(images[:batch])), view)
        x = to_device(x.contiguous(), device)
        self.x = x.contiguous(memory_format=torch.channels_last) if layout else x
        self.batch = batch

    def run(self, steps: int) -> tuple[float, float]:
        started = now(self.device)
        for _ in range(steps):
            with engine.autocast(self.device):
                out = self.net(self.x)
            loss = out.float().square().mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss.item()
        elapsed = now(self.device) - started
        return steps * self.batch / elapsed, elapsed


def steps_for(block, batch: int, timing: Timing, max_steps: int) -> tuple[int, float]:
    """Warm ``block`` up; the steps of a block of about ``timing.block_s`` s, and the
    seconds the warm-up took."""
    started = time.perf_counter()
    block.run(1)  # the first step pays for allocations, kernel choices, worker starts
    rate, _ = block.run(timing.warmup_steps)
    steps = max(1, min(max_steps, math.ceil(timing.block_s * rate / batch)))
    return steps, time.perf_counter() - started


def metered(block, steps: int) -> tuple[float, float]:
    """``block.run(steps)``, noting in ``block.cpu_shares`` the share of its CPU threads that
    this process got: process CPU time / (wall time x threads). About 1 for compute on a quiet
    machine; well below 1 when other processes took the cores (DataLoader workers' time is
    not counted)."""
    cpu = time.process_time()
    rate, elapsed = block.run(steps)
    threads = min(torch.get_num_threads(), os.cpu_count() or 1)
    share = (time.process_time() - cpu) / (elapsed * threads)
    block.__dict__.setdefault("cpu_shares", []).append(share)
    return rate, elapsed


def measure_blocks(block, steps: int, timing: Timing) -> list[float]:
    rates, total = [], 0.0
    while len(rates) < timing.min_blocks or (
        total < timing.min_time and len(rates) < timing.max_blocks
    ):
        rate, elapsed = metered(block, steps)
        rates.append(rate)
        total += elapsed
    return rates


def interleaved(arms: dict, timing: Timing) -> dict[str, list[float]]:
    """Rates of each arm (name -> (block, steps)) over ``timing.rounds`` rounds, the arms
    taken in turn within each round (reversed every other round)."""
    rates = {name: [] for name in arms}
    names = list(arms)
    for r in range(timing.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            block, steps = arms[name]
            rates[name].append(metered(block, steps)[0])
    return rates


class PredictBlocks:
    """``engine.predict`` of a module over rows of X, as ``transform``/``predict`` call it
    (``batch_size`` rows at a time); a block's "steps" count ``unit`` rows each."""

    def __init__(self, module, X, batch_size: int, unit: int, device, crop: int):
        self.module = module.eval()
        self.X, self.batch, self.unit, self.device, self.crop = X, batch_size, unit, device, crop

    def run(self, steps: int) -> tuple[float, float]:
        rows = steps * self.unit
        started = now(self.device)
        done = 0
        while done < rows:
            part = self.X[: min(len(self.X), rows - done)]
            predict(self.module, part, batch_size=self.batch, device=self.device, crop=self.crop)
            done += len(part)
        elapsed = now(self.device) - started
        return done / elapsed, elapsed


class _Replay(torch.nn.Module):
    """Stands in for the augmentation: returns views computed beforehand, in turn."""

    def __init__(self, views):
        super().__init__()
        self.views = views
        self.i = 0

    def forward(self, images, generator=None):
        view = self.views[self.i % len(self.views)]
        self.i += 1
        return view


def engine_step(trainer, batch, generator) -> None:
    """One optimisation step as ``Trainer.run_epoch`` takes it, on a batch already read."""
    task, device, config = trainer.task, trainer.device, trainer.config
    batch = [to_device(t, device) for t in batch]
    with engine.autocast(device):
        loss = task(*batch, generator=generator)
    bool(torch.isfinite(loss))  # the engine's check (a synchronisation on CUDA)
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.clip_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(task.parameters(), config.clip_grad_norm)
    trainer.optimizer.step()
    trainer.scheduler.step()
    loss.item()
    for term in getattr(task, "loss_terms", {}).values():
        float(term)


def moco_stages(trainer, batch, generator) -> dict[str, float]:
    """Seconds of each stage of one MoCo step of a MoCoTask, in the order MoCoTask.forward,
    MoCo.forward and Trainer.run_epoch take them (the device synchronised in between)."""
    task, device = trainer.task, trainer.device
    moco, optimizer = task.moco, trainer.optimizer
    times: dict[str, float] = {}
    t = now(device)

    def stage(name):
        nonlocal t
        t2 = now(device)
        times[name] = times.get(name, 0.0) + t2 - t
        t = t2

    x, *targets = [to_device(b, device) for b in batch]
    stage("copy to device")
    view_q, view_k = task.augment(x, generator), task.augment(x, generator)
    stage("augment (2 views)")
    moco.momentum_update()
    stage("momentum update")
    with engine.autocast(device):
        features = moco.backbone(view_q)
        query = F.normalize(moco.query_encoder[1](features).float(), dim=1)
        stage("query forward")
        key, all_keys = _keys(moco, view_k, generator)
        stage("key forward (shuffle-BN)")
        negatives = moco.queue.clone().detach()
        stage("queue clone")
        loss = info_nce(query, key, negatives, moco.temperature)
        stage("InfoNCE (queue matmul, softmax)")
        _enqueue(moco, all_keys)
        stage("enqueue")
        if task.photometry_head is not None:
            weights = task.weights
            loss = weights[0] * loss + weights[1] * task.photometry_head.loss(features, targets[0])
            stage("photometry head")
    bool(torch.isfinite(loss))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    stage("backward")
    optimizer.step()
    trainer.scheduler.step()
    stage("optimizer step")
    loss.item()
    stage("loss.item")
    return times


def _keys(moco, views, generator):
    """This process's keys and the keys of all processes, as MoCo.forward gets them."""
    if hasattr(moco, "_encode_keys"):
        return moco._encode_keys(views, generator)
    keys = moco.encode_keys(views, generator)
    return keys, keys


def _enqueue(moco, all_keys) -> None:
    try:
        moco.enqueue(all_keys, gathered=True)
    except TypeError:  # an enqueue that gathers the keys itself
        moco.enqueue(all_keys)


def lean_moco_forward(self, view_q, view_k, generator=None, return_features=False):
    """MoCo.forward with the queue read without a copy: the keys of a step
    join the queue at the start of the next step (after its backward), which is when the
    current code's copy of the queue stops mattering; the queue a step sees is the same."""
    pending = self.__dict__.pop("_pending_keys", None)
    if pending is not None:
        _enqueue(self, pending)
    self.momentum_update()
    features = self.backbone(view_q)
    query = F.normalize(self.query_encoder[1](features).float(), dim=1)
    key, all_keys = _keys(self, view_k, generator)
    loss = info_nce(query, key, self.queue, self.temperature)
    self._pending_keys = all_keys
    return (loss, features) if return_features else loss


class GainAfterResample(GalaxyAugment):
    """GalaxyAugment with its per-band gains (reddening, brightness) applied once to the
    resampled view instead of in two passes over the whole stamp before it: the same random
    draws, in the same order, and the same views up to rounding (a gain per image and band
    commutes with the resampling, which is linear)."""

    def forward(self, images, generator=None):
        n, c = images.shape[:2]
        dev, dtype = images.device, images.dtype

        def uniform(low, high):
            return low + (high - low) * torch.rand(n, generator=generator, device=dev)

        gain = torch.ones(n, c, device=dev, dtype=dtype)
        if self.dust_ebv > 0:
            ebv = uniform(0.0, self.dust_ebv).to(dtype)
            gain = gain * 10.0 ** (-0.4 * ebv[:, None] * self.extinction_coefficients[None])
        if self.brightness > 0:
            gain = gain * (10.0 ** (-0.4 * uniform(-self.brightness, self.brightness)))[:, None]
        angle = uniform(0.0, 2.0 * math.pi) if self.rotation else torch.zeros(n, device=dev)
        flip = (
            torch.rand(n, generator=generator, device=dev) < 0.5
            if self.flip
            else torch.zeros(n, dtype=torch.bool, device=dev)
        )
        shift = (2.0 * torch.rand(n, 2, generator=generator, device=dev) - 1.0) * self.jitter
        log_scale = math.log(self.scale)
        scale = torch.exp(uniform(-log_scale, log_scale))
        views = affine_resample(
            images, angle, flip, shift.to(dtype), scale.to(dtype), self.output_size
        )
        views = views * gain.to(dtype).reshape(n, c, 1, 1)
        if self.psf_fwhm > 0:
            sigma = uniform(0.0, self.psf_fwhm) / (2.0 * math.sqrt(2.0 * math.log(2.0)))
            views = gaussian_blur(views, sigma.to(dtype))
        if self.noise > 0:
            level = uniform(0.0, self.noise).reshape(n, 1)
            views = add_gaussian_noise(views, level * self.noise_sigma.reshape(1, c), generator)
        return views


def gain_after_resample(augment) -> GalaxyAugment:
    """A GainAfterResample with the settings and buffers of ``augment``."""
    variant = copy.deepcopy(augment)
    variant.__class__ = GainAfterResample
    return variant


def fused_sgd_like(optimizer) -> torch.optim.SGD:
    """An SGD with ``optimizer``'s parameter groups, learning rates, momentum and weight
    decay, and fused=True (one kernel per step over all tensors, CPU and CUDA). The groups'
    own foreach/fused entries are left out: they would override the constructor's."""
    kept = ("params", "lr", "momentum", "weight_decay", "dampening", "nesterov", "maximize")
    groups = [{k: v for k, v in g.items() if k in kept} for g in optimizer.param_groups]
    return torch.optim.SGD(groups, fused=True)


def whole_matrix_moco_forward(self, view_q, view_k, generator=None, return_features=False):
    """MoCo.forward with the InfoNCE of one (n, K) logits matrix (``chunk_size=None``): the
    package's step before 7 December 2026, the baseline of the chunked loss."""
    self.momentum_update()
    features = self.backbone(view_q)
    query = F.normalize(self.query_encoder[1](features).float(), dim=1)
    key, all_keys = _keys(self, view_k, generator)
    loss = info_nce(query, key, self.queue.clone().detach(), self.temperature, None)
    _enqueue(self, all_keys)
    return (loss, features) if return_features else loss


def _whole_matrix(trainer) -> None:
    moco = trainer.task.moco
    moco.forward = types.MethodType(whole_matrix_moco_forward, moco)


def _fused_sgd(trainer) -> None:
    """The trainer's SGD rebuilt with fused=True."""
    trainer.optimizer = fused_sgd_like(trainer.optimizer)
    trainer.scheduler = torch.optim.lr_scheduler.LambdaLR(
        trainer.optimizer, trainer.scheduler.lr_lambdas[0]
    )


def _lean_forward(trainer) -> None:
    moco = trainer.task.moco
    moco.forward = types.MethodType(lean_moco_forward, moco)


def _gain_after(trainer) -> None:
    task = trainer.task
    inner = getattr(task.augment, "inner", None)
    if inner is not None:  # channels-last wrapper
        task.augment.inner = gain_after_resample(inner)
    else:
        task.augment = gain_after_resample(task.augment)


#: Benchmark-local variants of the MoCo step tried by the profile section.
VARIANTS = {
    "InfoNCE as one logits matrix (before)": _whole_matrix,
    "fused SGD": _fused_sgd,
    "queue not copied": lambda trainer: _lean_forward(trainer),
    "gains after the resampling": lambda trainer: _gain_after(trainer),
    "all three": lambda trainer: (
        _fused_sgd(trainer),
        _lean_forward(trainer),
        _gain_after(trainer),
    ),
}


def micro_benchmarks(trainer, reps: int) -> dict[str, tuple[float, float]]:
    """Median ms of each stage as the current code runs it and as its variant would, the two
    alternated ``reps`` times on the same tensors: (current, variant). The variants: fused
    SGD, chunked InfoNCE without the queue copy, gains after the resampling."""
    task, device = trainer.task, trainer.device
    moco = task.moco
    params = [p for g in trainer.optimizer.param_groups for p in g["params"]]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-6
    fused = fused_sgd_like(trainer.optimizer)
    batch = trainer.config.batch_size
    width = moco.queue.shape[1]
    query = F.normalize(torch.randn(batch, width, device=device), dim=1).requires_grad_()
    key = F.normalize(torch.randn(batch, width, device=device), dim=1)

    augment = getattr(task.augment, "inner", task.augment)
    variant_augment = gain_after_resample(augment)
    images = to_device(torch.as_tensor(np.ascontiguousarray(trainer.arrays[0][:batch])), device)
    generator = torch.Generator(device=device)
    generator.manual_seed(0)

    def whole_nce():  # the (n, K) logits at once, as skphotoz did before chunking
        info_nce(query, key, moco.queue.clone().detach(), moco.temperature, None).backward()

    def chunked_nce():  # skphotoz's InfoNCE now
        info_nce(query, key, moco.queue.clone().detach(), moco.temperature).backward()

    pairs = {
        "SGD step (the engine's vs fused)": (trainer.optimizer.step, fused.step),
        "InfoNCE forward+backward (whole vs chunked)": (whole_nce, chunked_nce),
        "augment (1 view)": (
            lambda: augment(images, generator),
            lambda: variant_augment(images, generator),
        ),
    }
    out = {}
    for name, (current, variant) in pairs.items():
        times = ([], [])
        for _ in range(reps):
            for i, fn in enumerate((current, variant)):
                start = now(device)
                fn()
                times[i].append(now(device) - start)
        out[name] = tuple(1e3 * statistics.median(t[1:]) for t in times)
    for p in params:
        p.grad = None
    return out


class ReferenceBlocks:
    """Steps of the usual MoCo loop (benchmarks/_moco_reference.py) on a batch stream."""

    def __init__(self, moco, optimizer, batches, device, bf16: bool):
        self.moco, self.optimizer, self.batches = moco, optimizer, batches
        self.device, self.bf16 = device, bf16

    def run(self, steps: int) -> tuple[float, float]:
        n, elapsed = reference.train_steps(
            self.moco, self.optimizer, self.batches, steps, self.device, self.bf16
        )
        sync(self.device)
        return n / elapsed, elapsed


# --------------------------------------------------------------------- results
FIELDS = (
    "section",
    "measure",
    "setup",
    "backbone",
    "stem",
    "view_px",
    "stamp_px",
    "batch",
    "images_per_s",
    "min_images_per_s",
    "max_images_per_s",
    "n_blocks",
    "steps_per_block",
    "ratio",
    "ms_per_batch",
    "share",
    "peak_gpu_gib",
    "cpu_share",
    "device",
    "threads",
    "precision",
    "channels_last",
    "compiled",
    "load_avg_1min",
    "run",
    "note",
)


def rate_fields(rates: list[float], block=None) -> dict:
    shares = getattr(block, "cpu_shares", [])[-len(rates) :]
    return dict(
        images_per_s=round(statistics.median(rates), 1),
        min_images_per_s=round(min(rates), 1),
        max_images_per_s=round(max(rates), 1),
        n_blocks=len(rates),
        cpu_share=round(statistics.median(shares), 2) if shares else "",
    )


def printer(title: str, columns: list[tuple[str, int]]):
    """Print a table's title and header; returns a function printing one row."""
    print(f"\n{title}")
    print(" ".join(f"{h:<{w}}" if i == 0 else f"{h:>{w}}" for i, (h, w) in enumerate(columns)))

    def line(*cells):
        text = []
        for i, (cell, (_, w)) in enumerate(zip(cells, columns, strict=True)):
            if isinstance(cell, float):
                cell = f"{cell:.3f}" if abs(cell) < 10 else f"{cell:.1f}"
            text.append(f"{cell!s:<{w}}" if i == 0 else f"{cell!s:>{w}}")
        print(" ".join(text), flush=True)

    return line


# ------------------------------------------------------------------------ bench
class Bench:
    def __init__(self, args):
        self.args = args
        self.device = engine.resolve_device(args.device)
        self.bf16 = self.device.type == "cuda" and not args.fp32
        self.timing = (
            Timing(
                warmup_steps=1,
                block_s=0.2,
                min_blocks=1,
                max_blocks=1,
                min_time=0.0,
                max_steps=2,
                rounds=2,
            )
            if args.quick
            else Timing()
            if self.device.type == "cpu"
            # GPUs are steadier and their time is scarcer: shorter blocks, fewer rounds.
            else Timing(block_s=1.0, min_time=2.0, max_blocks=4, rounds=3, max_steps=24)
        )
        # The grid's many rows are measured with shorter blocks on the CPU.
        self.grid_timing = (
            dataclasses.replace(self.timing, block_s=2.0, min_time=4.0)
            if self.device.type == "cpu" and not args.quick
            else self.timing
        )
        if args.rounds:
            self.timing = dataclasses.replace(self.timing, rounds=args.rounds)
        self.pools: dict[int, object] = {}
        self.rows: list[dict] = []
        if args.append and os.path.exists(args.out):
            with open(args.out, newline="") as f:
                self.rows = [dict.fromkeys(FIELDS, "") | row for row in csv.DictReader(f)]
        self.common = dict(
            device=self.device.type,
            threads=torch.get_num_threads(),
            precision="bf16" if self.bf16 else "fp32",
            channels_last=self.device.type == "cuda" or args.channels_last,
            compiled=args.compile,
            run=time.strftime("%Y-%m-%d %H:%M"),  # when this run started
        )
        main = [default_setup()]
        if "preset" in args.setups:
            main.append(preset_setup())
        if "defaults" not in args.setups:
            main = main[1:]
        self.main = [self.shrink(s) for s in main]

    # -- data and estimators -----------------------------------------------------------
    def shrink(self, setup: Setup) -> Setup:
        """--quick: batches of 16 (4 with the stride-1 stem) and a queue of 1024."""
        if not self.args.quick:
            return setup
        batch = 4 if setup.params["stem"] == "published" else 16
        return Setup(
            setup.label, {**setup.params, "batch_size": batch, "queue_size": 1024}, setup.stamp
        )

    def data(self, setup: Setup, rows: int | None = None):
        """Images (rows x 5 x stamp x stamp, float32) and redshifts, from a pool of simulated
        galaxies repeated (the network's speed does not depend on the pixels)."""
        if setup.stamp not in self.pools:
            n = 64 if self.args.quick else 1024
            self.pools[setup.stamp] = make_sdss_galaxies(n, random_state=0, stamp_size=setup.stamp)
        pool = self.pools[setup.stamp]
        rows = rows or setup.batch * self.timing.max_steps
        index = np.arange(rows) % len(pool.images)
        return pool.images[index], pool.redshift[index].astype(np.float32)

    def embedder(self, setup: Setup, **overrides) -> MoCoEmbedder:
        return MoCoEmbedder(**{**setup.params, **overrides}, device=self.args.device)

    def regressor(self, setup: Setup) -> PhotoZRegressor:
        p = setup.params
        return PhotoZRegressor(
            backbone=p["backbone"],
            stem=p["stem"],
            crop_size=p["crop_size"],
            batch_size=p["batch_size"],
            device=self.args.device,
        )

    def trainer(self, estimator, *fit_args, compiled=None):
        """The estimator's Trainer with --channels-last (CPU) and --compile applied."""
        trainer = engine_trainer(estimator, *fit_args)
        if self.args.channels_last and self.device.type == "cpu":
            channels_last_task(trainer)
        if self.args.compile if compiled is None else compiled:
            compile_task(trainer)
        return trainer

    def bare(self, trainer, X, setup: Setup, channels_last=None) -> BareSteps:
        layout = self.args.channels_last if channels_last is None else channels_last
        net = BareSteps(
            trainer.task.moco.backbone,
            trainer.optimizer,
            X,
            setup.batch,
            setup.view,
            self.device,
            layout,
        )
        if self.args.compile:
            net.net.compile()
        return net

    def warm(self, block, batch: int, max_steps: int | None = None, timing=None) -> int:
        timing = timing or self.timing
        steps, _ = steps_for(block, batch, timing, max_steps or timing.max_steps)
        return steps

    def add(self, **values) -> dict:
        row = dict.fromkeys(FIELDS, "")
        row.update(self.common)
        row["load_avg_1min"] = round(os.getloadavg()[0], 2)
        for key, value in values.items():
            if key not in row:
                raise KeyError(key)
            row[key] = value
        self.rows.append(row)
        with contextlib.redirect_stdout(None):
            write_rows(self.args.out, self.rows)
        return row

    def reset_peak(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak(self) -> float | str:
        if self.device.type != "cuda":
            return ""
        return round(torch.cuda.max_memory_allocated(self.device) / 2**30, 2)

    # -- sections ----------------------------------------------------------------------
    def grid(self) -> None:
        setups = list(self.main)
        if self.args.grid == "full":
            known = [s.params for s in setups]
            setups += [
                g for g in map(self.shrink, grid_setups(self.device)) if g.params not in known
            ]
        line = printer(
            "Throughput (images/s; median of blocks; peak GPU memory of pretraining)",
            [
                ("setup", 16),
                ("backbone", 9),
                ("stem", 9),
                ("view", 4),
                ("batch", 5),
                ("pretrain", 9),
                ("fine-tune", 9),
                ("transform", 9),
                ("predict", 9),
                ("peak GiB", 8),
            ],
        )
        for setup in setups:
            X, z = self.data(setup)
            d = dict(section="grid", setup=setup.label, **setup.describe())
            cells = {}
            try:
                self.reset_peak()
                trainer = self.trainer(self.embedder(setup), X)
                block = EngineBlocks(trainer)
                steps = self.warm(block, setup.batch, timing=self.grid_timing)
                rates = measure_blocks(block, steps, self.grid_timing)
                peak = self.peak()
                self.add(
                    measure="pretrain",
                    **d,
                    **rate_fields(rates, block),
                    steps_per_block=steps,
                    peak_gpu_gib=peak,
                )
                cells["pretrain"] = statistics.median(rates)
                cells["transform"] = self.inference(
                    trainer.task.moco.backbone, X, setup, d, "transform"
                )
                del trainer, block
                self.reset_peak()
                trainer = self.trainer(self.regressor(setup), X, z)
                block = EngineBlocks(trainer)
                steps = self.warm(block, setup.batch, timing=self.grid_timing)
                rates = measure_blocks(block, steps, self.grid_timing)
                self.add(
                    measure="fine-tune",
                    **d,
                    **rate_fields(rates, block),
                    steps_per_block=steps,
                    peak_gpu_gib=self.peak(),
                )
                cells["fine-tune"] = statistics.median(rates)
                cells["predict"] = self.inference(trainer.task.predictor, X, setup, d, "predict")
                del trainer, block
            except (RuntimeError, torch.OutOfMemoryError) as error:
                self.add(measure="error", **d, note=f"{type(error).__name__}: {error}"[:300])
                print(f"  {setup.label} {setup.describe()}: {type(error).__name__}: {error}")
                peak = ""
            line(
                setup.label,
                setup.params["backbone"],
                setup.params["stem"],
                setup.view,
                setup.batch,
                *(cells.get(k, "-") for k in ("pretrain", "fine-tune", "transform", "predict")),
                peak,
            )

    def inference(self, module, X, setup: Setup, d: dict, what: str) -> float:
        # As transform and predict call engine.predict (--quick: the training batch).
        batch = setup.batch if self.args.quick else max(setup.batch, 256)
        block = PredictBlocks(module, X, batch, setup.batch, self.device, setup.view)
        steps = self.warm(block, setup.batch, max_steps=256, timing=self.grid_timing)
        rates = measure_blocks(block, steps, self.grid_timing)
        self.add(
            measure=what,
            **{**d, "batch": batch},
            **rate_fields(rates, block),
            steps_per_block=steps,
        )
        return statistics.median(rates)

    def pipeline(self, setup: Setup) -> None:
        X, _ = self.data(setup)
        folder = tempfile.mkdtemp(prefix="skphotoz-throughput-")
        path = os.path.join(folder, "galaxies.h5")
        write_archive(path, X)
        trainer = self.trainer(self.embedder(setup), X)
        trainer_h5 = self.trainer(self.embedder(setup), HDF5Images(path))
        device, task = self.device, trainer.task
        d = dict(section="pipeline", setup=setup.label, **setup.describe())
        n_batches = 2 if self.args.quick else 4
        batches = epoch_batches(len(X), setup.batch, 0, 0)[:n_batches]
        generator = torch.Generator(device=device)
        generator.manual_seed(0)
        steps = EngineBlocks(trainer)
        self.warm(steps, setup.batch)
        pieces: dict[str, list[float]] = {}
        workers = max(1, self.args.loader_workers)

        def timed(name, fn):
            start = now(device)
            out = fn()
            pieces.setdefault(name, []).append(now(device) - start)
            return out

        for _ in range(self.timing.rounds):
            for source, arrays in (("numpy", trainer.arrays), ("HDF5", trainer_h5.arrays)):
                loader = iter(batch_loader(arrays, batches, device, 0))
                for _ in batches:
                    timed(f"read batch ({source})", lambda loader=loader: next(loader))
            # The first batch of a new DataLoader with workers waits for them to start: the
            # engine pays this once per fit (its workers persist across epochs).
            timed(
                "first batch of an epoch (HDF5, workers)",
                lambda: next(iter(batch_loader(trainer_h5.arrays, batches, device, workers))),
            )
            for batch in batch_loader(trainer.arrays, batches, device, 0):
                x = timed("copy to device", lambda batch=batch: to_device(batch[0], device))
                views = timed(
                    "augment (2 views)",
                    lambda x=x: [task.augment(x, generator), task.augment(x, generator)],
                )
                original = task.augment
                task.augment = _Replay(views)
                on_device = [x, *[to_device(t, device) for t in batch[1:]]]
                timed(
                    "network (forward, backward, step)",
                    lambda b=on_device: engine_step(trainer, b, generator),
                )
                task.augment = original
        ms = {name: 1e3 * statistics.median(values) for name, values in pieces.items()}
        line = printer(
            f"Data pipeline of a MoCo step, {setup.label} ({setup.describe()}): ms per batch "
            f"(median)",
            [("piece", 36), ("ms/batch", 9), ("share", 6)],
        )
        for source in ("numpy", "HDF5"):
            data_ms = ms[f"read batch ({source})"] + ms["copy to device"] + ms["augment (2 views)"]
            total = data_ms + ms["network (forward, backward, step)"]
            for name in (
                f"read batch ({source})",
                "copy to device",
                "augment (2 views)",
                "network (forward, backward, step)",
            ):
                line(name, ms[name], f"{ms[name] / total:.0%}")
                self.add(
                    measure=f"{name} [{source} step]",
                    **d,
                    ms_per_batch=round(ms[name], 2),
                    share=round(ms[name] / total, 3),
                )
            line(f"= data pipeline share ({source})", data_ms, f"{data_ms / total:.0%}")
            self.add(
                measure=f"data pipeline share [{source} step]",
                **d,
                ms_per_batch=round(data_ms, 2),
                share=round(data_ms / total, 3),
            )
        first = ms["first batch of an epoch (HDF5, workers)"]
        print(
            f"first batch from the archive of a new loader with {workers} DataLoader workers "
            f"(their start-up, once per fit): {first:.0f} ms"
        )
        self.add(
            measure=f"first batch of an epoch (HDF5, {workers} workers)",
            **d,
            ms_per_batch=round(first, 2),
            note="worker start-up included; once per fit (workers persist across epochs)",
        )
        # Whole epochs through the engine, from memory and from the archive, on data of
        # their own: --epoch-steps batches, so that an epoch's first batch (which no reading
        # ahead can hide) weighs what it weighs in a real epoch.
        X_epoch, _ = self.data(setup, rows=setup.batch * self.args.epoch_steps)
        epoch_path = os.path.join(folder, "epoch.h5")
        write_archive(epoch_path, X_epoch)

        def epoch_trainer(source, **config):
            clone = self.trainer(self.embedder(setup), source)
            for key, value in config.items():
                setattr(clone.config, key, value)
            return EngineBlocks(clone)

        arms = {
            "epoch, numpy": epoch_trainer(X_epoch),
            "epoch, HDF5, read in the step (prefetch=0)": epoch_trainer(
                HDF5Images(epoch_path), prefetch=0
            ),
            "epoch, HDF5, read ahead by a thread (default)": epoch_trainer(HDF5Images(epoch_path)),
            f"epoch, HDF5, block shuffle (shuffle_buffer={self.args.shuffle_buffer})": (
                epoch_trainer(HDF5Images(epoch_path), shuffle_buffer=self.args.shuffle_buffer)
            ),
        }
        if self.args.loader_workers:
            arms[f"epoch, HDF5, {self.args.loader_workers} persistent workers"] = epoch_trainer(
                HDF5Images(epoch_path), num_workers=self.args.loader_workers
            )
        for block in arms.values():
            block.run(1)  # allocations, kernel choices, worker starts
        arms = {name: (block, block.max_steps) for name, block in arms.items()}
        rates = interleaved(arms, self.timing)
        base = statistics.median(rates["epoch, numpy"])
        line = printer(
            f"Whole epochs of {self.args.epoch_steps} steps through Trainer.run_epoch "
            f"(images/s, median of {self.timing.rounds} interleaved rounds)",
            [("input", 56), ("images/s", 9), ("/ numpy", 8)],
        )
        for name, values in rates.items():
            pairs = zip(values, rates["epoch, numpy"], strict=True)
            paired = statistics.median(v / b for v, b in pairs)
            line(name, statistics.median(values), f"{paired:.3f}")
            self.add(
                measure=name,
                **d,
                **rate_fields(values, arms[name][0]),
                steps_per_block=arms[name][1],
                note=f"epoch / numpy epoch: median of paired rounds {paired:.3f}; "
                f"median rates {statistics.median(values) / base:.3f}",
            )
        for block, _ in arms.values():
            block.trainer.close()
        with contextlib.suppress(OSError):
            os.remove(path)
            os.remove(epoch_path)
            os.rmdir(folder)

    def ratio(self, setup: Setup) -> None:
        X, _ = self.data(setup)
        trainer = self.trainer(self.embedder(setup), X)
        plain = self.trainer(self.embedder(setup, photometry_weight=0.0), X)
        bare = self.bare(trainer, X, setup)
        arms = {
            "MoCo step (defaults, photometry head)": EngineBlocks(trainer),
            "MoCo step (plain MoCo)": EngineBlocks(plain),
            "bare forward+backward (1 view)": bare,
        }
        arms = {k: (b, self.warm(b, setup.batch)) for k, b in arms.items()}
        rates = interleaved(arms, self.timing)
        self.report_ratio("ratio", setup, rates, arms, "bare forward+backward (1 view)")

    def report_ratio(self, section, setup, rates, arms, baseline) -> None:
        d = dict(section=section, setup=setup.label, **setup.describe())
        line = printer(
            f"{section}: {setup.label} ({setup.describe()}), {self.timing.rounds} interleaved "
            f"rounds",
            [
                ("step", 44),
                ("images/s", 9),
                ("min", 8),
                ("max", 8),
                (f"/ {baseline[:10]}", 12),
                ("CPU share", 9),
            ],
        )
        for name, values in rates.items():
            ratios = [a / b for a, b in zip(values, rates[baseline], strict=True)]
            ratio = statistics.median(ratios)
            fields = rate_fields(values, arms[name][0])
            line(
                name,
                statistics.median(values),
                min(values),
                max(values),
                ratio,
                fields["cpu_share"],
            )
            self.add(
                measure=name,
                **d,
                **fields,
                steps_per_block=arms[name][1],
                ratio=round(ratio, 3),
                note=f"ratio to {baseline}, median of rounds",
            )

    def profile(self, setup: Setup) -> None:
        X, _ = self.data(setup)
        trainer = self.trainer(self.embedder(setup), X)
        self.warm(EngineBlocks(trainer), setup.batch)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(0)
        n_batches = 2 if self.args.quick else 4
        batches = epoch_batches(len(X), setup.batch, 0, 0)[:n_batches]
        totals: dict[str, list[float]] = {}
        for _ in range(self.timing.rounds):
            for batch in batch_loader(trainer.arrays, batches, self.device, 0):
                for name, seconds in moco_stages(trainer, batch, generator).items():
                    totals.setdefault(name, []).append(seconds)
        ms = {name: 1e3 * statistics.median(v) for name, v in totals.items()}
        total = sum(ms.values())
        d = dict(section="profile", setup=setup.label, **setup.describe())
        line = printer(
            f"Stages of one MoCo step, {setup.label}: ms (median of "
            f"{len(next(iter(totals.values())))} steps)",
            [("stage", 34), ("ms", 8), ("share", 6)],
        )
        for name, value in ms.items():
            line(name, value, f"{value / total:.0%}")
            self.add(
                measure=f"stage: {name}",
                **d,
                ms_per_batch=round(value, 2),
                share=round(value / total, 3),
            )
        line("total (synchronised stages)", total, "100%")
        if self.args.torch_profile:
            self.torch_profile(trainer, setup)
        line = printer(
            "Stages alone, current code vs benchmark-local variant (ms, median)",
            [("stage", 34), ("current", 8), ("variant", 8), ("saved", 8)],
        )
        for name, (current, variant) in micro_benchmarks(
            trainer, 5 if self.args.quick else 21
        ).items():
            line(name, current, variant, current - variant)
            self.add(measure=f"stage alone: {name}, current", **d, ms_per_batch=round(current, 2))
            self.add(measure=f"stage alone: {name}, variant", **d, ms_per_batch=round(variant, 2))
        # The variants, interleaved with the current code and the bare steps.
        arms = {"MoCo step (current)": EngineBlocks(trainer)}
        for name, apply in VARIANTS.items():
            variant = self.trainer(self.embedder(setup), X)
            apply(variant)
            arms[f"MoCo step ({name})"] = EngineBlocks(variant)
        if setup.params["queue_size"] > 4096:
            small = self.trainer(self.embedder(setup, queue_size=4096), X)
            arms["MoCo step (setting: queue of 4,096 keys)"] = EngineBlocks(small)
        arms["bare forward+backward (1 view)"] = self.bare(trainer, X, setup)
        arms = {k: (b, self.warm(b, setup.batch)) for k, b in arms.items()}
        rates = interleaved(arms, self.timing)
        self.report_ratio("profile", setup, rates, arms, "bare forward+backward (1 view)")

    def torch_profile(self, trainer, setup: Setup) -> None:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU]
        if self.device.type == "cuda":
            activities.append(ProfilerActivity.CUDA)
        block = EngineBlocks(trainer)
        with profile(activities=activities) as prof:
            block.run(2)
        key = "self_cuda_time_total" if self.device.type == "cuda" else "self_cpu_time_total"
        print(f"\ntorch.profiler, 2 MoCo steps of {setup.label} (top 20 by {key}):")
        print(prof.key_averages().table(sort_by=key, row_limit=20))

    def reference(self, setup: Setup) -> None:
        X, _ = self.data(setup)
        trainer = self.trainer(self.embedder(setup, photometry_weight=0.0), X)
        ours = EngineBlocks(trainer)
        ours_steps = self.warm(ours, setup.batch)
        moco, config = trainer.task.moco, trainer.config
        optimizer = torch.optim.SGD(
            [p for p in moco.parameters() if p.requires_grad],
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        augment = trainer.task.augment
        augment = getattr(augment, "inner", augment)
        transform = reference.galaxy_transform(augment, setup.stamp)
        for workers in self.args.workers:
            loader = reference.make_loader(X, transform, setup.batch, workers, self.device)
            stream = reference.batches_forever(loader)
            block = ReferenceBlocks(moco, optimizer, stream, self.device, self.bf16)
            ref_steps = self.warm(block, setup.batch, max_steps=10**6)
            arms = {
                "ours (GalaxyAugment on device)": (ours, ours_steps),
                f"reference, {workers} workers": (block, ref_steps),
            }
            rates = interleaved(arms, self.timing)
            self.report_ratio("reference", setup, rates, arms, f"reference, {workers} workers")
            stream.close()
            del loader, stream, block
            gc.collect()

    def layout(self, setup: Setup) -> None:
        X, _ = self.data(setup)
        first = self.trainer(self.embedder(setup), X)
        last = self.trainer(self.embedder(setup), X)
        if not self.args.channels_last:
            channels_last_task(last)
        arms = {
            "MoCo step, default layout": EngineBlocks(first),
            "MoCo step, channels-last": EngineBlocks(last),
            "bare, default layout": self.bare(first, X, setup, channels_last=False),
            "bare, channels-last": self.bare(first, X, setup, channels_last=True),
        }
        arms = {k: (b, self.warm(b, setup.batch)) for k, b in arms.items()}
        rates = interleaved(arms, self.timing)
        self.report_ratio("layout", setup, rates, arms, "MoCo step, default layout")

    def compiled(self, setup: Setup) -> None:
        X, _ = self.data(setup)
        d = dict(section="compile", setup=setup.label, **setup.describe())
        eager = self.trainer(self.embedder(setup), X, compiled=False)
        arms = {"MoCo step, eager": (EngineBlocks(eager), 0)}
        try:
            variant = self.trainer(self.embedder(setup), X, compiled=True)
            block = EngineBlocks(variant)
            steps, seconds = steps_for(block, setup.batch, self.timing, self.timing.max_steps)
            print(f"\ncompile: first steps (compilation included) took {seconds:.1f} s")
            self.add(measure="compile + warm-up seconds", **d, note=f"{seconds:.1f} s")
            arms["MoCo step, torch.compile"] = (block, steps)
        except Exception as error:  # noqa: BLE001 - report whatever the compiler raises
            message = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
            print(f"\ncompile: torch.compile failed: {message}")
            self.add(measure="torch.compile failed", **d, note=message)
            return
        arms["MoCo step, eager"] = (
            arms["MoCo step, eager"][0],
            self.warm(arms["MoCo step, eager"][0], setup.batch),
        )
        rates = interleaved(arms, self.timing)
        self.report_ratio("compile", setup, rates, arms, "MoCo step, eager")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="channels-last weights and views on the CPU too (the engine uses them on CUDA only)",
    )
    parser.add_argument(
        "--fp32", action="store_true", help="CUDA: turn the engine's bf16 autocast off"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the backbones (adds the compile section)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes (batch 16, queue 1024, one short block) to check that it runs",
    )
    parser.add_argument(
        "--sections",
        default=None,
        help=f"comma-separated, of {','.join(ALL_SECTIONS)} (default: all but "
        "compile; layout on the CPU only; compile with --compile)",
    )
    parser.add_argument(
        "--setups",
        default=None,
        help="defaults,preset: the configurations of the pipeline, ratio, "
        "profile and reference sections and the first rows of the grid "
        "(default: defaults on the CPU, defaults,preset on CUDA)",
    )
    parser.add_argument(
        "--grid",
        choices=["full", "main"],
        default=None,
        help="full: every backbone x stem x view; main: the setups only (default: full, "
        "main with --quick)",
    )
    parser.add_argument(
        "--workers",
        default=None,
        help="DataLoader workers of the reference loop, comma-separated "
        "(default: 0,1,2 on the CPU, 0,4,8 on CUDA)",
    )
    parser.add_argument(
        "--loader-workers",
        type=int,
        default=2,
        help="num_workers of the engine's reading of the HDF5 archive in the "
        "pipeline section (default: 2; 0 leaves that arm out)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved rounds of the pipeline, ratio, reference and layout sections "
        "(default: 5 on the CPU, 3 on CUDA)",
    )
    parser.add_argument(
        "--epoch-steps",
        type=int,
        default=None,
        help="steps of the whole epochs of the pipeline section (default: 16; 2 with --quick)",
    )
    parser.add_argument(
        "--shuffle-buffer",
        type=int,
        default=1024,
        help="shuffle_buffer of the pipeline section's block-shuffled epoch (default: 1024)",
    )
    parser.add_argument(
        "--torch-profile",
        action="store_true",
        help="profile section: also print torch.profiler's top operators",
    )
    parser.add_argument(
        "--append",
        action="store_true",
        help="keep the rows already in --out and add these (to run sections one at a time, "
        "e.g. when the machine is quiet)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="CSV (default: benchmarks/results/throughput_<device>[_quick].csv)",
    )
    args = parser.parse_args(argv)
    if args.epoch_steps is None:
        args.epoch_steps = 2 if args.quick else 16
    if args.threads:
        torch.set_num_threads(args.threads)
    device = engine.resolve_device(args.device)
    cuda = device.type == "cuda"
    if args.fp32:
        engine.autocast = lambda device: contextlib.nullcontext()
    sections = (
        args.sections.split(",")
        if args.sections
        else [s for s in ALL_SECTIONS if s != "compile" and (s != "layout" or not cuda)]
    )
    if args.compile and "compile" not in sections:
        sections.append("compile")
    unknown = set(sections) - set(ALL_SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {ALL_SECTIONS}")
    args.grid = args.grid or ("main" if args.quick else "full")
    args.setups = (args.setups or ("defaults,preset" if cuda else "defaults")).split(",")
    args.workers = [int(w) for w in (args.workers or ("0,4,8" if cuda else "0,1,2")).split(",")]
    suffix = "_quick" if args.quick else ""
    args.out = args.out or str(
        Path(__file__).parent / "results" / f"throughput_{device.type}{suffix}.csv"
    )

    bench = Bench(args)
    started = time.perf_counter()
    print(
        f"skphotoz throughput, {time.strftime('%Y-%m-%d %H:%M')}, device={device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"precision {bench.common['precision']}, channels-last "
        f"{bench.common['channels_last']}, load average {os.getloadavg()[0]:.2f}"
    )
    if cuda:
        print(f"GPU: {torch.cuda.get_device_name(device)}")
    for setup in bench.main:
        print(f"setup {setup.label!r}: stamps {setup.stamp} px, {setup.params}")
    for section in sections:
        for setup in bench.main if section not in ("grid",) else [None]:
            if section == "layout" and cuda:
                continue
            if section == "grid":
                bench.grid()
            elif section == "compile":
                bench.compiled(setup)
            else:
                getattr(bench, section)(setup)
            gc.collect()
    print(
        f"\n{len(bench.rows)} rows written to {args.out}; {time.perf_counter() - started:.0f} s; "
        f"load average now {os.getloadavg()[0]:.2f} (1 min), {os.getloadavg()[1]:.2f} (5 min)"
    )


if __name__ == "__main__":
    main()
