"""Which galaxies to take spectra of: label selection from embeddings and photometry.

A survey with a budget of spectra does not have to draw its targets at random. C3R2 (Masters
et al. 2015, ApJ 813, 53) divides colour space into cells and sends spectrographs to the cells
that have no redshift yet; in machine learning, choosing *typical* points of the clusters of a
self-supervised embedding beats random picks at small budgets (TypiClust, Hacohen et al. 2022,
arXiv 2202.02794), and covering the feature space (k-center greedy, Sener & Savarese 2018)
helps once the budget grows.

Each strategy is a small scikit-learn estimator (``get_params``, ``clone``) with one method,
``select(X, n_select, labelled=None)``, that returns the rows of ``X`` to label next, best
first. ``X`` holds the features of the unlabelled pool (embeddings, standardised aperture
photometry, or both); ``labelled`` are rows that already have a redshift (an existing
spectroscopic sample), which the selection fills around. A numpy memmap of any size is read in
blocks, so an archive larger than RAM can be selected from.

:func:`skphotoz.model_selection.label_efficiency_curve` takes a strategy (``selection=``), so
that the curve of each strategy is cross-validated on the same random test galaxies as the
random curve and compared with :func:`~skphotoz.model_selection.paired_difference`.

The modules: the shared base (``_base``: input checks, k-means, :class:`LabelSelector`), the
strategies on features alone (``_strategies``) and uncertainty sampling (``_uncertainty``).
"""

from ._base import LabelSelector
from ._strategies import (
    CellSelection,
    CoverageSelection,
    MixedSelection,
    RandomSelection,
    TypicalSelection,
)
from ._uncertainty import UncertaintySelection, prediction_width

__all__ = [
    "CellSelection",
    "CoverageSelection",
    "LabelSelector",
    "MixedSelection",
    "RandomSelection",
    "TypicalSelection",
    "UncertaintySelection",
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "make_selection",
    "prediction_width",
]


#: The strategies by name (as ``skphotoz select --strategy`` takes them), with what they do.
STRATEGIES = {
    "random": "random galaxies (the control)",
    "typical": "typical galaxies of k-means clusters (TypiClust)",
    "cells": "a random galaxy from each of as many k-means cells as labels (C3R2-like)",
    "coverage": "k-center greedy coverage of feature space",
    "typical+coverage": "typical galaxies for half the budget, then coverage",
    "uncertainty": "the galaxies whose redshift PDF is widest, spread over k-means clusters",
}


def make_selection(name: str, *, random_state=None) -> LabelSelector:
    """The strategy called ``name`` in :data:`STRATEGIES`, with its default settings."""
    makers = {
        "random": RandomSelection,
        "typical": TypicalSelection,
        "cells": CellSelection,
        "coverage": CoverageSelection,
        "typical+coverage": MixedSelection,
        "uncertainty": UncertaintySelection,
    }
    if name not in makers:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}; got {name!r}.")
    return makers[name](random_state=random_state)


#: The strategy of ``skphotoz select`` and of the demo when none is named: chosen by the
#: measurements of ``benchmarks/label_selection.py`` (docs/selection.md).
DEFAULT_STRATEGY = "cells"
