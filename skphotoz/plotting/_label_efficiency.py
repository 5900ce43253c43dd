"""LabelEfficiencyDisplay: photo-z accuracy against the number of labelled galaxies.

:mod:`skphotoz.model_selection` is imported when a curve is drawn, not with this module.
"""

from __future__ import annotations

import numpy as np

from .._validation import StrOptions, validated
from ..metrics import bias, outlier_fraction, sigma_mad
from ._common import axes, pyplot, style

#: Metrics of :class:`LabelEfficiencyDisplay`: function and axis label.
_CURVE_METRICS = {
    "sigma_mad": (sigma_mad, r"$\sigma_\mathrm{MAD}$"),
    "outlier_fraction": (outlier_fraction, r"outlier fraction $\eta$"),
    "bias": (bias, "bias (mean Δz)"),
}


class LabelEfficiencyDisplay:
    """Photo-z accuracy against the number of labelled training galaxies, one line per curve.

    Each line is the mean over the repeats of a
    :class:`~skphotoz.model_selection.LabelEfficiencyCurve` of a measure of its pooled
    out-of-fold predictions (σ_MAD by default), with the spread over the repeats as a band or
    error bars, on a logarithmic axis of label counts. Create it with :meth:`from_curves` or
    :meth:`from_estimator`.

    Parameters
    ----------
    curves : list of LabelEfficiencyCurve
    values : list of ndarray of shape (n_budgets, n_repeats)
        The measure of each curve at each budget and repeat.
    names : list of str
        Legend label of each curve.
    metric_name : str, default="σ_MAD"
        Label of the y axis.

    Attributes
    ----------
    lines_ : list of matplotlib.lines.Line2D
        The mean of each curve.
    fill_between_ : list of matplotlib.collections.PolyCollection or None
        The bands, with ``std_display_style="fill_between"``.
    errorbar_ : list of matplotlib.container.ErrorbarContainer or None
        The error bars, with ``std_display_style="errorbar"``.
    ax_ : matplotlib.axes.Axes
    figure_ : matplotlib.figure.Figure

    See Also
    --------
    skphotoz.model_selection.label_efficiency_curve : computes the curves.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.neighbors import KNeighborsRegressor
    >>> from skphotoz.plotting import LabelEfficiencyDisplay
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 4))
    >>> z = 0.1 + 0.03 * np.tanh(X[:, 0]) + 0.002 * rng.normal(size=300)
    >>> display = LabelEfficiencyDisplay.from_estimator(
    ...     KNeighborsRegressor(5), X, z, label_counts=[20, 60, 200], cv=3, n_repeats=2,
    ...     random_state=0,
    ... )
    >>> display.values[0].shape  # budgets x repeats
    (3, 2)
    """

    def __init__(self, *, curves, values, names, metric_name=r"$\sigma_\mathrm{MAD}$"):
        self.curves = curves
        self.values = values
        self.names = names
        self.metric_name = metric_name

    @validated(
        {
            "std_display_style": [StrOptions({"fill_between", "errorbar"}), None],
            "spread": [StrOptions({"minmax", "std"})],
        }
    )
    def plot(
        self,
        ax=None,
        *,
        names=None,
        std_display_style="fill_between",
        spread="minmax",
        line_kw=None,
        fill_between_kw=None,
        errorbar_kw=None,
    ):
        """Draw the stored values.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on; by default those of a new figure.
        names : list of str, optional
            Replace ``self.names`` in the legend.
        std_display_style : {"fill_between", "errorbar"} or None, default="fill_between"
            How the spread over the repeats is drawn: a band, error bars, or not at all.
        spread : {"minmax", "std"}, default="minmax"
            The spread: from the smallest to the largest value over the repeats, or the mean
            ± the standard deviation over the repeats.
        line_kw : dict, optional
            Passed to :meth:`~matplotlib.axes.Axes.plot` for each mean.
        fill_between_kw : dict, optional
            Passed to :meth:`~matplotlib.axes.Axes.fill_between` for each band.
        errorbar_kw : dict, optional
            Passed to :meth:`~matplotlib.axes.Axes.errorbar`.

        Returns
        -------
        LabelEfficiencyDisplay
        """
        from matplotlib.collections import PolyCollection
        from matplotlib.lines import Line2D
        from matplotlib.ticker import NullLocator

        caller = f"{type(self).__name__}.plot"
        names = self.names if names is None else _check_names(names, len(self.curves))
        ax = axes(ax, caller)
        self.lines_ = []
        self.fill_between_ = [] if std_display_style == "fill_between" else None
        self.errorbar_ = [] if std_display_style == "errorbar" else None
        for curve, values, label in zip(self.curves, self.values, names, strict=True):
            x = np.asarray(curve.label_counts, dtype=np.float64)
            values = np.asarray(values, dtype=np.float64)
            mean = values.mean(axis=1)
            if spread == "std":
                low, high = mean - values.std(axis=1), mean + values.std(axis=1)
            else:
                low, high = values.min(axis=1), values.max(axis=1)
            if std_display_style == "errorbar":
                kw = style({"marker": "o", "capsize": 3, "label": label}, errorbar_kw, Line2D)
                yerr = np.clip(np.vstack([mean - low, high - mean]), 0.0, None)
                container = ax.errorbar(x, mean, yerr=yerr, **kw)
                self.errorbar_.append(container)
                self.lines_.append(container.lines[0])
                continue
            kw = style({"marker": "o", "label": label}, line_kw, Line2D)
            (line,) = ax.plot(x, mean, **kw)
            self.lines_.append(line)
            if std_display_style == "fill_between":
                kw = style(
                    {"color": line.get_color(), "alpha": 0.25, "linewidth": 0},
                    fill_between_kw,
                    PolyCollection,
                )
                self.fill_between_.append(ax.fill_between(x, low, high, **kw))

        ax.set_xscale("log")
        counts = np.unique(np.concatenate([np.asarray(c.label_counts) for c in self.curves]))
        if counts.size <= 12:
            ax.set_xticks(counts, [str(int(c)) for c in counts])
            ax.xaxis.set_minor_locator(NullLocator())
        repeats = {int(np.asarray(v).shape[1]) for v in self.values}
        over = f"{repeats.pop()} repeats" if len(repeats) == 1 else "repeats"
        title = f"mean over {over}"
        if std_display_style is not None:
            title += ", min–max" if spread == "minmax" else ", ± std"
        ax.set(xlabel="labelled training galaxies", ylabel=self.metric_name)
        ax.legend(title=title, fontsize="small", title_fontsize="small")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    @validated({"metric": [StrOptions(set(_CURVE_METRICS)), callable]})
    def from_curves(
        cls,
        curves,
        *,
        names=None,
        metric="sigma_mad",
        ax=None,
        std_display_style="fill_between",
        spread="minmax",
        line_kw=None,
        fill_between_kw=None,
        errorbar_kw=None,
    ):
        """Draw computed label-efficiency curves.

        Parameters
        ----------
        curves : LabelEfficiencyCurve or list of LabelEfficiencyCurve
            From :func:`skphotoz.model_selection.label_efficiency_curve`; one line each.
        names : list of str, optional
            Legend labels; by default each curve's ``name``.
        metric : {"sigma_mad", "outlier_fraction", "bias"} or callable, default="sigma_mad"
            Measure of the pooled out-of-fold predictions of each repeat; a callable is
            called as ``metric(z_spec, z_phot)``.
        ax, std_display_style, spread, line_kw, fill_between_kw, errorbar_kw
            See :meth:`plot`.

        Returns
        -------
        LabelEfficiencyDisplay
        """
        from ..model_selection import LabelEfficiencyCurve

        caller = f"{cls.__name__}.from_curves"
        pyplot(caller)
        curves = LabelEfficiencyCurve.as_list(curves)
        if names is None:
            names = [curve.name or f"curve {i + 1}" for i, curve in enumerate(curves)]
        else:
            names = _check_names(names, len(curves))
        if callable(metric):
            function, metric_name = metric, getattr(metric, "__name__", "score")
        else:
            function, metric_name = _CURVE_METRICS[metric]
        values = [
            curve.sigma_mad() if function is sigma_mad else curve.pooled(function)
            for curve in curves
        ]
        display = cls(curves=curves, values=values, names=names, metric_name=metric_name)
        return display.plot(
            ax,
            std_display_style=std_display_style,
            spread=spread,
            line_kw=line_kw,
            fill_between_kw=fill_between_kw,
            errorbar_kw=errorbar_kw,
        )

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y,
        *,
        label_counts,
        cv=5,
        n_repeats=1,
        random_state=None,
        n_jobs=None,
        name=None,
        metric="sigma_mad",
        ax=None,
        std_display_style="fill_between",
        spread="minmax",
        line_kw=None,
        fill_between_kw=None,
        errorbar_kw=None,
    ):
        """Compute a label-efficiency curve and draw it.

        Parameters
        ----------
        estimator : regressor
            Cloned for each fit.
        X : array-like of shape (n_samples, ...)
            Images or features.
        y : array-like of shape (n_samples,)
            Spectroscopic redshifts; NaN marks rows without one.
        label_counts, cv, n_repeats, random_state, n_jobs
            See :func:`skphotoz.model_selection.label_efficiency_curve`.
        name : str, optional
            Legend label; by default the curve's name (the estimator's class).
        metric, ax, std_display_style, spread, line_kw, fill_between_kw, errorbar_kw
            See :meth:`from_curves` and :meth:`plot`.

        Returns
        -------
        LabelEfficiencyDisplay
        """
        from ..model_selection import label_efficiency_curve

        pyplot(f"{cls.__name__}.from_estimator")
        curve = label_efficiency_curve(
            estimator,
            X,
            y,
            label_counts=label_counts,
            cv=cv,
            n_repeats=n_repeats,
            n_jobs=n_jobs,
            random_state=random_state,
        )
        return cls.from_curves(
            [curve],
            names=None if name is None else [name],
            metric=metric,
            ax=ax,
            std_display_style=std_display_style,
            spread=spread,
            line_kw=line_kw,
            fill_between_kw=fill_between_kw,
            errorbar_kw=errorbar_kw,
        )


def _check_names(names, n_curves: int) -> list:
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if len(names) != n_curves:
        raise ValueError(f"names must have one entry per curve ({n_curves}); got {len(names)}.")
    return [str(name) for name in names]
