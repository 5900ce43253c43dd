"""skphotoz: self-supervised deep learning for multi-band galaxy images in scikit-learn."""

__version__ = "0.1.0.dev0"
