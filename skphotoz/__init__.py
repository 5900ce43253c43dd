"""skphotoz: self-supervised deep learning for multi-band galaxy images in scikit-learn."""

from .embedder import MOCO_PRESETS, MoCoEmbedder
from .regressor import PhotoZRegressor
from .search import SimilaritySearch

__version__ = "0.1.0.dev0"

__all__ = ["MOCO_PRESETS", "MoCoEmbedder", "PhotoZRegressor", "SimilaritySearch", "__version__"]
