"""PyTorch internals of skphotoz: backbones, MoCo, heads, augmentations and the training engine.

The estimators in :mod:`skphotoz` are thin faces over it; from scikit-learn it uses only the
parameter validation (through :mod:`skphotoz._validation`), so that its errors read like the
estimators'.
"""

from ..exceptions import CheckpointMismatchError, NonFiniteError
from . import distributed
from .augment import GalaxyAugment, VectorAugment
from .backbones import MLP, Encoder, build_backbone, resnet
from .callbacks import Callback, Checkpoint, EarlyStopping, ProgressTable
from .engine import TrainConfig, Trainer, fit_module, predict, resolve_device
from .moco import MoCo, MoCoTask, TargetHead, ViewShift, info_nce
from .scaling import AsinhScaling, Standardize

__all__ = [
    "AsinhScaling",
    "Callback",
    "Checkpoint",
    "CheckpointMismatchError",
    "EarlyStopping",
    "ProgressTable",
    "Trainer",
    "predict",
    "Encoder",
    "GalaxyAugment",
    "MLP",
    "MoCo",
    "MoCoTask",
    "NonFiniteError",
    "Standardize",
    "TargetHead",
    "TrainConfig",
    "VectorAugment",
    "ViewShift",
    "build_backbone",
    "distributed",
    "fit_module",
    "info_nce",
    "resnet",
    "resolve_device",
]
