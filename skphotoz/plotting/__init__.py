"""Figures of skphotoz: photo-z diagnostics in scikit-learn's Display style, galaxy galleries
and similarity-search neighbours.

The Displays follow :class:`sklearn.metrics.PredictionErrorDisplay` and
:class:`sklearn.model_selection.LearningCurveDisplay`: a class method (``from_estimator``,
``from_predictions``, ...) computes what is shown, keeps it as attributes and draws it; ``plot``
draws the kept values again, on given axes (``ax=``) or on a new figure, and returns the
Display, so that a figure is restyled without recomputing anything. After drawing, ``ax_`` and
``figure_`` are the axes and the figure, and further attributes ending in ``_`` hold the drawn
artists.

- :class:`PhotoZDisplay`: photometric against spectroscopic redshifts, with σ_MAD, bias and
  the outlier fraction η.
- :class:`PITDisplay`: histogram of the probability integral transform of redshift PDFs.
- :class:`TrainingHistoryDisplay`: loss per epoch of a fitted network.
- :class:`LabelEfficiencyDisplay`: photo-z accuracy against the number of labels.

:func:`plot_gallery` and :func:`plot_neighbors` draw galaxy images, and
:func:`plot_selection` the galaxies chosen for labelling on a map of the pool; they return the
:class:`matplotlib.figure.Figure`.

matplotlib (``pip install 'skphotoz[plot]'``) is imported when a figure is drawn, not with this
module. Saving and closing figures is the caller's.

The modules: the helpers shared by the figures (``_common``), :class:`PhotoZDisplay`
(``_photoz``), :class:`PITDisplay` (``_pit``), :class:`TrainingHistoryDisplay` (``_history``),
:class:`LabelEfficiencyDisplay` (``_label_efficiency``), and :func:`plot_gallery` and
:func:`plot_neighbors` (``_galleries``), and :func:`plot_selection` (``_selection``).
"""

from ._galleries import plot_gallery, plot_neighbors
from ._history import TrainingHistoryDisplay
from ._label_efficiency import LabelEfficiencyDisplay
from ._photoz import PhotoZDisplay
from ._pit import PITDisplay
from ._selection import plot_selection

__all__ = [
    "LabelEfficiencyDisplay",
    "PITDisplay",
    "PhotoZDisplay",
    "TrainingHistoryDisplay",
    "plot_gallery",
    "plot_neighbors",
    "plot_selection",
]
