"""skphotoz: self-supervised deep learning for multi-band galaxy images in scikit-learn.

The estimators are imported on first use (PEP 562), so that ``import skphotoz.metrics``, the
data layer and ``skphotoz --help`` do not pay for importing PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0.dev0"

# Public name -> module that defines it.
_LAZY = {
    "MOCO_PRESETS": ".embedder",
    "MoCoEmbedder": ".embedder",
    "PhotoZRegressor": ".regressor",
    "SimilaritySearch": ".search",
    "hybrid_gp": ".hybrid",
}

__all__ = [
    "MOCO_PRESETS",
    "MoCoEmbedder",
    "PhotoZRegressor",
    "SimilaritySearch",
    "__version__",
    "hybrid_gp",
]

if TYPE_CHECKING:  # pragma: no cover
    from .embedder import MOCO_PRESETS, MoCoEmbedder
    from .hybrid import hybrid_gp
    from .regressor import PhotoZRegressor
    from .search import SimilaritySearch


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
