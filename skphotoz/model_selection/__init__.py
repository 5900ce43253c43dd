"""Label-efficiency curves: photo-z accuracy against the number of spectroscopic labels.

The question self-supervised photo-z answers is how many spectroscopic redshifts pretraining
saves. :func:`label_efficiency_curve` cross-validates an estimator at several label budgets —
the training rows keep their images, but the labels beyond the budget become NaN, so an
estimator that also learns from unlabelled rows sees every image — and keeps every
out-of-fold prediction, so that :func:`label_efficiency_factor` and :func:`paired_difference`
can compare two curves over the same test galaxies with a paired bootstrap.

The modules: the curves (``_curves``: :class:`LabelEfficiencyCurve`,
:func:`label_efficiency_curve`) and their paired comparisons (``_compare``:
:func:`label_efficiency_factor`, :func:`paired_difference` and their results).
"""

from ._compare import (
    LabelEfficiencyFactor,
    PairedDifference,
    label_efficiency_factor,
    paired_difference,
)
from ._curves import LabelEfficiencyCurve, label_efficiency_curve

__all__ = [
    "LabelEfficiencyCurve",
    "LabelEfficiencyFactor",
    "PairedDifference",
    "label_efficiency_curve",
    "label_efficiency_factor",
    "paired_difference",
]
