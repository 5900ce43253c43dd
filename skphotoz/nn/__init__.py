"""PyTorch internals of skphotoz: backbones, MoCo, heads, augmentations and the training engine.

Nothing here imports scikit-learn; the estimators in :mod:`skphotoz` are thin faces over it.
"""

from .augment import GalaxyAugment, VectorAugment
from .backbones import MLP, AsinhScaling, Encoder, Standardize, build_backbone, resnet
from .callbacks import Callback, Checkpoint, EarlyStopping, ProgressTable
from .engine import TrainConfig, Trainer, fit_module, predict, resolve_device
from .moco import MoCo, MoCoTask, TargetHead, info_nce

__all__ = [
    "AsinhScaling",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "ProgressTable",
    "Trainer",
    "predict",
    "Encoder",
    "GalaxyAugment",
    "MLP",
    "MoCo",
    "MoCoTask",
    "Standardize",
    "TargetHead",
    "TrainConfig",
    "VectorAugment",
    "build_backbone",
    "fit_module",
    "info_nce",
    "resnet",
    "resolve_device",
]
