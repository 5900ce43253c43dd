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

:func:`plot_gallery` and :func:`plot_neighbors` draw galaxy images and return the
:class:`matplotlib.figure.Figure`.

matplotlib (``pip install 'skphotoz[plot]'``) is imported when a figure is drawn, not with this
module. Saving and closing figures is the caller's.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._validation import StrOptions, check_params, finite, integer, positive
from .metrics import (
    OUTLIER_THRESHOLD,
    _as_numbers,
    _check_redshifts,
    bias,
    outlier_fraction,
    pit,
    pit_calibration,
    sigma_mad,
)
from .model_selection import LabelEfficiencyCurve

__all__ = [
    "LabelEfficiencyDisplay",
    "PITDisplay",
    "PhotoZDisplay",
    "TrainingHistoryDisplay",
    "plot_gallery",
    "plot_neighbors",
]


def _pyplot(caller: str):
    """matplotlib.pyplot, or an ImportError saying what needs it and how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is a test dependency
        raise ImportError(
            f"{caller} needs matplotlib; install it with pip install 'skphotoz[plot]'."
        ) from exc
    return plt


def _axes(ax, caller: str, figsize=None):
    """``ax``, or the axes of a new figure."""
    plt = _pyplot(caller)
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
        return ax
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise TypeError(f"{caller}: ax must be None or matplotlib Axes; got {type(ax).__name__}.")
    return ax


def _style(defaults: dict, user: dict | None, artist) -> dict:
    """The user's style over the defaults, with matplotlib's aliases (``c``, ``lw``, ``ls``,
    ...) resolved first so that ``{"c": "red"}`` replaces a default ``color``."""
    from matplotlib.cbook import normalize_kwargs

    if user is not None and not isinstance(user, dict):
        raise TypeError(
            f"style arguments (the *_kw parameters) must be None or a dict of matplotlib "
            f"keywords; got {type(user).__name__} {user!r}."
        )
    return {**normalize_kwargs(defaults, artist), **normalize_kwargs(user or {}, artist)}


def _check_one_per_row(X, z_spec) -> None:
    """Raise unless ``z_spec`` has one value per row of ``X`` (before predicting on ``X``)."""
    z = np.asarray(z_spec)
    n_z = z.shape[0] if z.ndim else 1
    if n_z != len(X):
        raise ValueError(f"z_spec must have one redshift per row of X ({len(X)}); got {n_z}.")


class PhotoZDisplay:
    """Photometric against spectroscopic redshifts, with the photo-z quality measures.

    Draws the galaxies as a 2-D density (hexagonal bins, logarithmic colour scale), the 1:1
    line, the outlier bounds ``|Δz| = threshold (1 + z_spec)`` and a text box with σ_MAD, the
    bias and the outlier fraction η (:mod:`skphotoz.metrics`). Create it with
    :meth:`from_estimator` or :meth:`from_predictions`.

    Parameters
    ----------
    z_spec, z_phot : ndarray of shape (n_samples,)
        Spectroscopic and photometric redshifts.
    sigma_mad, bias, outlier_fraction : float
        The measures of ``z_phot`` against ``z_spec``.
    threshold : float, default=0.05
        The ``|Δz|`` of the outlier bounds (and of ``outlier_fraction``).
    name : str, optional
        Shown at the top of the text box.

    Attributes
    ----------
    density_ : matplotlib.collections.PolyCollection
        The hexagonal bins.
    colorbar_ : matplotlib.colorbar.Colorbar or None
        Colour scale of the bins (None with ``colorbar=False``).
    line_ : matplotlib.lines.Line2D
        The 1:1 line.
    bounds_ : list of two matplotlib.lines.Line2D
        Upper and lower outlier bounds.
    text_ : matplotlib.text.Text
        The text box of the measures.
    ax_ : matplotlib.axes.Axes
    figure_ : matplotlib.figure.Figure

    See Also
    --------
    skphotoz.metrics.photoz_report : the measures without a figure.

    Examples
    --------
    >>> import numpy as np
    >>> from skphotoz.plotting import PhotoZDisplay
    >>> rng = np.random.default_rng(0)
    >>> z_spec = rng.uniform(0.02, 0.3, 500)
    >>> z_phot = z_spec + 0.02 * (1 + z_spec) * rng.standard_normal(500)
    >>> display = PhotoZDisplay.from_predictions(z_spec, z_phot, name="toy")
    >>> print(f"{display.sigma_mad:.3f} {display.outlier_fraction:.3f}")
    0.018 0.008
    >>> display = display.plot(density_kw={"cmap": "magma"})  # restyled, not recomputed
    """

    def __init__(
        self,
        *,
        z_spec,
        z_phot,
        sigma_mad,
        bias,
        outlier_fraction,
        threshold=OUTLIER_THRESHOLD,
        name=None,
    ):
        self.z_spec = z_spec
        self.z_phot = z_phot
        self.sigma_mad = sigma_mad
        self.bias = bias
        self.outlier_fraction = outlier_fraction
        self.threshold = threshold
        self.name = name

    def plot(
        self,
        ax=None,
        *,
        name=None,
        colorbar=True,
        density_kw=None,
        line_kw=None,
        bounds_kw=None,
        text_kw=None,
    ):
        """Draw the stored redshifts and measures.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on; by default those of a new figure.
        name : str, optional
            Replaces ``self.name`` in the text box.
        colorbar : bool, default=True
            Add a colour bar of the galaxies per bin.
        density_kw : dict, optional
            Passed to :meth:`~matplotlib.axes.Axes.hexbin` (defaults: ``gridsize=40``,
            ``bins="log"``, ``mincnt=1``, ``cmap="viridis"``).
        line_kw, bounds_kw : dict, optional
            Passed to :meth:`~matplotlib.axes.Axes.plot` for the 1:1 line and the bounds.
        text_kw : dict, optional
            Passed to :meth:`~matplotlib.axes.Axes.text` for the measures.

        Returns
        -------
        PhotoZDisplay
        """
        from matplotlib.collections import PolyCollection
        from matplotlib.lines import Line2D
        from matplotlib.text import Text

        check_params(f"{type(self).__name__}.plot", {"colorbar": ["boolean"]}, colorbar=colorbar)
        ax = _axes(ax, f"{type(self).__name__}.plot", figsize=(5.6, 4.6))
        name = self.name if name is None else name
        z_spec = np.asarray(self.z_spec, dtype=np.float64).reshape(-1)
        z_phot = np.asarray(self.z_phot, dtype=np.float64).reshape(-1)
        lo = min(z_spec.min(), z_phot.min())
        hi = max(z_spec.max(), z_phot.max())
        pad = 0.02 * (hi - lo) if hi > lo else 0.05
        lo, hi = lo - pad, hi + pad

        density_kw = _style(
            {"gridsize": 40, "bins": "log", "mincnt": 1, "cmap": "viridis"},
            density_kw,
            PolyCollection,
        )
        density_kw.setdefault("extent", (lo, hi, lo, hi))
        self.density_ = ax.hexbin(z_spec, z_phot, **density_kw)
        self.colorbar_ = (
            ax.figure.colorbar(self.density_, ax=ax, label="galaxies per bin") if colorbar else None
        )

        z = np.array([lo, hi])
        line_kw = _style({"color": "black", "linewidth": 1.0, "label": "1:1"}, line_kw, Line2D)
        (self.line_,) = ax.plot(z, z, **line_kw)
        t = float(self.threshold)
        bounds_kw = _style(
            {
                "color": "tab:red",
                "linestyle": "--",
                "linewidth": 1.0,
                "label": f"|Δz| = {t:g} (1 + z)",
            },
            bounds_kw,
            Line2D,
        )
        upper = ax.plot(z, z + t * (1 + z), **bounds_kw)[0]
        lower = ax.plot(z, z - t * (1 + z), **{**bounds_kw, "label": "_nolegend_"})[0]
        self.bounds_ = [upper, lower]

        lines = [str(name)] if name else []
        lines += [
            f"N = {z_spec.size}",
            rf"$\sigma_\mathrm{{MAD}}$ = {self.sigma_mad:.4f}",
            f"bias = {self.bias:+.4f}",
            rf"$\eta$ = {self.outlier_fraction:.1%}",
        ]
        text_kw = _style(
            {
                "transform": ax.transAxes,
                "horizontalalignment": "left",
                "verticalalignment": "top",
                "fontsize": "small",
                "bbox": {"boxstyle": "round", "facecolor": "white", "alpha": 0.85},
            },
            text_kw,
            Text,
        )
        self.text_ = ax.text(0.04, 0.96, "\n".join(lines), **text_kw)

        ax.set(
            xlim=(lo, hi),
            ylim=(lo, hi),
            xlabel=r"$z_\mathrm{spec}$",
            ylabel=r"$z_\mathrm{phot}$",
        )
        ax.set_aspect("equal", adjustable="box")
        ax.legend(loc="lower right", fontsize="small")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_predictions(
        cls,
        z_spec,
        z_phot,
        *,
        threshold=OUTLIER_THRESHOLD,
        name=None,
        ax=None,
        colorbar=True,
        density_kw=None,
        line_kw=None,
        bounds_kw=None,
        text_kw=None,
    ):
        """Compute the measures of ``z_phot`` against ``z_spec`` and draw them.

        Parameters
        ----------
        z_spec, z_phot : array-like of shape (n_samples,)
            Spectroscopic and photometric redshifts.
        threshold : float, default=0.05
            Outlier limit on ``|Δz|``.
        name : str, optional
            Shown at the top of the text box.
        ax, colorbar, density_kw, line_kw, bounds_kw, text_kw
            See :meth:`plot`.

        Returns
        -------
        PhotoZDisplay
        """
        caller = f"{cls.__name__}.from_predictions"
        _pyplot(caller)
        check_params(caller, {"threshold": [positive()]}, threshold=threshold)
        z_spec, z_phot = _check_redshifts(z_spec, z_phot)
        display = cls(
            z_spec=z_spec,
            z_phot=z_phot,
            sigma_mad=sigma_mad(z_spec, z_phot),
            bias=bias(z_spec, z_phot),
            outlier_fraction=outlier_fraction(z_spec, z_phot, threshold),
            threshold=threshold,
            name=name,
        )
        return display.plot(
            ax,
            colorbar=colorbar,
            density_kw=density_kw,
            line_kw=line_kw,
            bounds_kw=bounds_kw,
            text_kw=text_kw,
        )

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        z_spec,
        *,
        threshold=OUTLIER_THRESHOLD,
        name=None,
        ax=None,
        colorbar=True,
        density_kw=None,
        line_kw=None,
        bounds_kw=None,
        text_kw=None,
    ):
        """Predict ``X`` with a fitted regressor and draw the predictions against ``z_spec``.

        Parameters
        ----------
        estimator : fitted regressor
            Its ``predict(X)`` gives the photometric redshifts.
        X : array-like of shape (n_samples, ...)
            Images or features.
        z_spec : array-like of shape (n_samples,)
            Spectroscopic redshifts of ``X``.
        threshold : float, default=0.05
            Outlier limit on ``|Δz|``.
        name : str, optional
            Shown at the top of the text box; by default the estimator's class name.
        ax, colorbar, density_kw, line_kw, bounds_kw, text_kw
            See :meth:`plot`.

        Returns
        -------
        PhotoZDisplay
        """
        caller = f"{cls.__name__}.from_estimator"
        _pyplot(caller)
        check_params(caller, {"threshold": [positive()]}, threshold=threshold)
        _check_one_per_row(X, z_spec)
        z_phot = estimator.predict(X)
        return cls.from_predictions(
            z_spec,
            z_phot,
            threshold=threshold,
            name=type(estimator).__name__ if name is None else name,
            ax=ax,
            colorbar=colorbar,
            density_kw=density_kw,
            line_kw=line_kw,
            bounds_kw=bounds_kw,
            text_kw=text_kw,
        )


_CALIBRATION_NAMES = {"ks": "KS", "cvm": "CvM"}


class PITDisplay:
    """Histogram of the probability integral transform (PIT) of redshift PDFs.

    The PIT of a galaxy is its PDF's cumulative probability at the true redshift
    (:func:`skphotoz.metrics.pit`): uniform on [0, 1] for calibrated PDFs, U-shaped for
    over-confident ones and peaked in the middle for under-confident ones. Drawn with the
    uniform expectation, its ±1σ Poisson band and, in the legend, the distance from uniform
    (:func:`skphotoz.metrics.pit_calibration`). Create it with :meth:`from_estimator` or
    :meth:`from_predictions`.

    Parameters
    ----------
    pit_values : ndarray of shape (n_samples,)
        PIT of each galaxy.
    counts : ndarray of shape (n_bins,)
        Galaxies per PIT bin.
    bin_edges : ndarray of shape (n_bins + 1,)
        Edges of the PIT bins, from 0 to 1.
    calibration : float
        ``pit_calibration(pit_values, calibration_method)``.
    calibration_method : {"ks", "cvm"}, default="ks"
    name : str, optional
        Legend label of the histogram.

    Attributes
    ----------
    hist_ : matplotlib.patches.StepPatch
        The histogram.
    expected_line_ : matplotlib.patches.StepPatch
        Galaxies per bin expected of uniform PIT values.
    band_ : matplotlib.patches.StepPatch
        The expectation ± the square root of it.
    ax_ : matplotlib.axes.Axes
    figure_ : matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from skphotoz.plotting import PITDisplay
    >>> edges = np.linspace(0.0, 0.4, 41)
    >>> centres = (edges[:-1] + edges[1:]) / 2
    >>> rng = np.random.default_rng(0)
    >>> z_spec = rng.uniform(0.05, 0.35, 400)
    >>> z_mean = z_spec + 0.02 * rng.standard_normal(400)
    >>> pdf = np.exp(-0.5 * ((centres - z_mean[:, None]) / 0.02) ** 2)  # calibrated
    >>> display = PITDisplay.from_predictions(z_spec, pdf, edges, bins=10)
    >>> display.counts.sum(), bool(display.calibration < 0.1)
    (np.int64(400), True)
    """

    def __init__(
        self, *, pit_values, counts, bin_edges, calibration, calibration_method="ks", name=None
    ):
        self.pit_values = pit_values
        self.counts = counts
        self.bin_edges = bin_edges
        self.calibration = calibration
        self.calibration_method = calibration_method
        self.name = name

    def plot(self, ax=None, *, name=None, hist_kw=None, expected_kw=None, band_kw=None):
        """Draw the stored histogram.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on; by default those of a new figure.
        name : str, optional
            Replaces ``self.name`` in the legend.
        hist_kw, expected_kw, band_kw : dict, optional
            Passed to :meth:`~matplotlib.axes.Axes.stairs` for the histogram, the uniform
            expectation and its band.

        Returns
        -------
        PITDisplay
        """
        from matplotlib.patches import StepPatch

        ax = _axes(ax, f"{type(self).__name__}.plot")
        name = self.name if name is None else name
        counts = np.asarray(self.counts, dtype=np.float64)
        edges = np.asarray(self.bin_edges, dtype=np.float64)
        expected = counts.sum() * np.diff(edges) / (edges[-1] - edges[0])
        spread = np.sqrt(expected)
        method = _CALIBRATION_NAMES.get(self.calibration_method, str(self.calibration_method))
        label = f"{name or 'PIT'} ({method} = {self.calibration:.3g})"

        hist_kw = _style(
            {"fill": True, "facecolor": "tab:blue", "alpha": 0.6, "label": label},
            hist_kw,
            StepPatch,
        )
        self.hist_ = ax.stairs(counts, edges, **hist_kw)
        band_kw = _style(
            {"fill": True, "color": "0.5", "alpha": 0.3, "label": "±1σ (Poisson)"},
            band_kw,
            StepPatch,
        )
        self.band_ = ax.stairs(expected + spread, edges, baseline=expected - spread, **band_kw)
        expected_kw = _style(
            {"edgecolor": "black", "linestyle": "--", "linewidth": 1.0, "label": "uniform"},
            expected_kw,
            StepPatch,
        )
        self.expected_line_ = ax.stairs(expected, edges, baseline=None, **expected_kw)

        ax.set(xlim=(edges[0], edges[-1]), xlabel="PIT", ylabel="galaxies per bin")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize="small")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_predictions(
        cls,
        z_spec,
        pdf,
        edges,
        *,
        bins=20,
        method="ks",
        name=None,
        ax=None,
        hist_kw=None,
        expected_kw=None,
        band_kw=None,
    ):
        """Compute the PIT of binned redshift PDFs and draw its histogram.

        Parameters
        ----------
        z_spec : array-like of shape (n_samples,)
            Spectroscopic redshifts.
        pdf : array-like of shape (n_samples, n_redshift_bins)
            Probability of each redshift bin (rows are normalised).
        edges : array-like of shape (n_redshift_bins + 1,)
            Edges of the redshift bins.
        bins : int, default=20
            Bins of the PIT histogram, of equal width on [0, 1].
        method : {"ks", "cvm"}, default="ks"
            Distance from uniform shown in the legend
            (see :func:`skphotoz.metrics.pit_calibration`).
        name : str, optional
            Legend label of the histogram.
        ax, hist_kw, expected_kw, band_kw
            See :meth:`plot`.

        Returns
        -------
        PITDisplay
        """
        _pyplot(f"{cls.__name__}.from_predictions")
        check_params(
            f"{cls.__name__}.from_predictions",
            {"bins": [integer(1, 100_000)], "method": [StrOptions({"ks", "cvm"})]},
            bins=bins,
            method=method,
        )
        # pit() can exceed 1 by a rounding error for galaxies above the last edge.
        pit_values = np.clip(pit(z_spec, pdf, edges), 0.0, 1.0)
        bin_edges = np.linspace(0.0, 1.0, bins + 1)
        counts, _ = np.histogram(pit_values, bins=bin_edges)
        display = cls(
            pit_values=pit_values,
            counts=counts,
            bin_edges=bin_edges,
            calibration=pit_calibration(pit_values, method),
            calibration_method=method,
            name=name,
        )
        return display.plot(ax, hist_kw=hist_kw, expected_kw=expected_kw, band_kw=band_kw)

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        z_spec,
        *,
        bins=20,
        method="ks",
        name=None,
        ax=None,
        hist_kw=None,
        expected_kw=None,
        band_kw=None,
    ):
        """Draw the PIT histogram of a fitted estimator's redshift PDFs.

        Parameters
        ----------
        estimator : fitted estimator with ``predict_pdf`` and ``redshift_bins_``
            E.g. a fitted :class:`~skphotoz.PhotoZRegressor`.
        X : array-like of shape (n_samples, ...)
            Images or features.
        z_spec : array-like of shape (n_samples,)
            Spectroscopic redshifts of ``X``.
        bins, method
            See :meth:`from_predictions`.
        name : str, optional
            Legend label; by default the estimator's class name.
        ax, hist_kw, expected_kw, band_kw
            See :meth:`plot`.

        Returns
        -------
        PITDisplay
        """
        _pyplot(f"{cls.__name__}.from_estimator")
        if not hasattr(estimator, "predict_pdf"):
            raise TypeError(
                f"estimator must have a predict_pdf method and a redshift_bins_ attribute (a "
                f"fitted PhotoZRegressor); got a {type(estimator).__name__} without "
                f"predict_pdf."
            )
        _check_one_per_row(X, z_spec)
        pdf = estimator.predict_pdf(X)
        edges = getattr(estimator, "redshift_bins_", None)
        if edges is None:
            raise TypeError(
                f"estimator must have a redshift_bins_ attribute, the edges of the bins of "
                f"predict_pdf; got a {type(estimator).__name__} without it."
            )
        return cls.from_predictions(
            z_spec,
            pdf,
            edges,
            bins=bins,
            method=method,
            name=type(estimator).__name__ if name is None else name,
            ax=ax,
            hist_kw=hist_kw,
            expected_kw=expected_kw,
            band_kw=band_kw,
        )


def _parse_history(history):
    """Epochs (1-based), losses and validation losses (NaN where missing; None if none is)."""
    if isinstance(history, Mapping | str | bytes) or not hasattr(history, "__iter__"):
        raise ValueError(
            f"history must be a list of per-epoch dicts (an estimator's history_); got a "
            f"{type(history).__name__}."
        )
    history = list(history)
    if not history:
        raise ValueError("history must hold at least one epoch; got an empty list.")
    for i, entry in enumerate(history):
        if not isinstance(entry, Mapping):
            raise ValueError(
                f"history must be a list of per-epoch dicts; entry {i} is a {type(entry).__name__}."
            )
        if "loss" not in entry:
            raise ValueError(
                f"history entries must have a 'loss' key; entry {i} has keys {sorted(entry)}."
            )
    epochs = np.array([int(entry.get("epoch", i)) + 1 for i, entry in enumerate(history)])
    loss = np.array([float(entry["loss"]) for entry in history])
    validation_loss = None
    if any("validation_loss" in entry for entry in history):
        validation_loss = np.array(
            [float(entry.get("validation_loss", np.nan)) for entry in history]
        )
    return epochs, loss, validation_loss


class TrainingHistoryDisplay:
    """Training loss per epoch of a fitted network, with the validation loss when there is one.

    Create it with :meth:`from_estimator` (a fitted :class:`~skphotoz.PhotoZRegressor` or
    :class:`~skphotoz.MoCoEmbedder`) or :meth:`from_history` (its ``history_``). For
    :class:`~skphotoz.MoCoEmbedder`, :meth:`from_estimator` also draws the chance level of the
    InfoNCE loss, ``ln(1 + queue_size)``: the loss of an encoder that cannot tell a galaxy's
    own key from the queue's.

    Parameters
    ----------
    epochs : ndarray of shape (n_epochs,)
        Epoch numbers, from 1.
    loss : ndarray of shape (n_epochs,)
        Training loss of each epoch.
    validation_loss : ndarray of shape (n_epochs,), optional
        Validation loss of each epoch (NaN where none was computed).
    chance_level : float, optional
        Height of a horizontal reference line.
    chance_label : str, optional
        Legend label of that line; by default ``"chance level = <value>"``.
    name : str, optional
        Prefix of the legend labels of the losses.

    Attributes
    ----------
    loss_line_ : matplotlib.lines.Line2D
    validation_line_ : matplotlib.lines.Line2D or None
    chance_line_ : matplotlib.lines.Line2D or None
    ax_ : matplotlib.axes.Axes
    figure_ : matplotlib.figure.Figure

    Examples
    --------
    >>> from skphotoz.plotting import TrainingHistoryDisplay
    >>> history = [{"epoch": 0, "loss": 2.1}, {"epoch": 1, "loss": 1.7}]
    >>> display = TrainingHistoryDisplay.from_history(history, chance_level=2.5)
    >>> display.epochs.tolist(), display.validation_loss is None
    ([1, 2], True)
    """

    def __init__(
        self, *, epochs, loss, validation_loss=None, chance_level=None, chance_label=None, name=None
    ):
        self.epochs = epochs
        self.loss = loss
        self.validation_loss = validation_loss
        self.chance_level = chance_level
        self.chance_label = chance_label
        self.name = name

    def plot(self, ax=None, *, name=None, loss_kw=None, validation_kw=None, chance_kw=None):
        """Draw the stored losses.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on; by default those of a new figure.
        name : str, optional
            Replaces ``self.name`` in the legend.
        loss_kw, validation_kw : dict, optional
            Passed to :meth:`~matplotlib.axes.Axes.plot` for the training and validation
            losses.
        chance_kw : dict, optional
            Passed to :meth:`~matplotlib.axes.Axes.axhline` for the chance level.

        Returns
        -------
        TrainingHistoryDisplay
        """
        from matplotlib.lines import Line2D
        from matplotlib.ticker import MaxNLocator

        ax = _axes(ax, f"{type(self).__name__}.plot")
        name = self.name if name is None else name
        prefix = f"{name}: " if name else ""
        loss_kw = _style(
            {"marker": "o", "markersize": 3, "label": f"{prefix}training loss"}, loss_kw, Line2D
        )
        (self.loss_line_,) = ax.plot(self.epochs, self.loss, **loss_kw)
        self.validation_line_ = None
        if self.validation_loss is not None:
            validation_kw = _style(
                {
                    "marker": "s",
                    "markersize": 3,
                    "linestyle": "--",
                    "label": f"{prefix}validation loss",
                },
                validation_kw,
                Line2D,
            )
            (self.validation_line_,) = ax.plot(self.epochs, self.validation_loss, **validation_kw)
        self.chance_line_ = None
        if self.chance_level is not None:
            label = self.chance_label
            if label is None:
                label = f"chance level = {self.chance_level:.3f}"
            chance_kw = _style(
                {"color": "0.4", "linestyle": ":", "linewidth": 1.2, "label": label},
                chance_kw,
                Line2D,
            )
            self.chance_line_ = ax.axhline(self.chance_level, **chance_kw)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel="epoch", ylabel="loss")
        ax.legend(fontsize="small")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_history(
        cls,
        history,
        *,
        chance_level=None,
        chance_label=None,
        name=None,
        ax=None,
        loss_kw=None,
        validation_kw=None,
        chance_kw=None,
    ):
        """Draw a network's ``history_``.

        Parameters
        ----------
        history : list of dict
            One dict per epoch with a ``"loss"``, and optionally ``"epoch"`` (0-based; the
            position in the list otherwise) and ``"validation_loss"``; other keys are ignored.
        chance_level : float, optional
            Draw a horizontal line at this loss.
        chance_label : str, optional
            Legend label of that line.
        name : str, optional
            Prefix of the legend labels of the losses.
        ax, loss_kw, validation_kw, chance_kw
            See :meth:`plot`.

        Returns
        -------
        TrainingHistoryDisplay
        """
        _pyplot(f"{cls.__name__}.from_history")
        check_params(
            f"{cls.__name__}.from_history",
            {"chance_level": [None, finite(None)], "chance_label": [None, str]},
            chance_level=chance_level,
            chance_label=chance_label,
        )
        epochs, loss, validation_loss = _parse_history(history)
        display = cls(
            epochs=epochs,
            loss=loss,
            validation_loss=validation_loss,
            chance_level=None if chance_level is None else float(chance_level),
            chance_label=chance_label,
            name=name,
        )
        return display.plot(ax, loss_kw=loss_kw, validation_kw=validation_kw, chance_kw=chance_kw)

    @classmethod
    def from_estimator(
        cls,
        estimator,
        *,
        chance_level="auto",
        name=None,
        ax=None,
        loss_kw=None,
        validation_kw=None,
        chance_kw=None,
    ):
        """Draw the ``history_`` of a fitted network.

        Parameters
        ----------
        estimator : fitted estimator with ``history_``
            E.g. a fitted :class:`~skphotoz.PhotoZRegressor` or :class:`~skphotoz.MoCoEmbedder`.
        chance_level : "auto", float or None, default="auto"
            "auto" draws the InfoNCE chance level ``ln(1 + queue_size)`` for a
            :class:`~skphotoz.MoCoEmbedder` (read from ``moco_.queue``) and no line for other
            estimators; a float draws a line there; None draws none. The first epoch of MoCo
            contrasts each galaxy against a queue of random keys, which are easy to tell
            from its own, so its loss starts below the chance level.
        name : str, optional
            Prefix of the legend labels; by default the estimator's class name.
        ax, loss_kw, validation_kw, chance_kw
            See :meth:`plot`.

        Returns
        -------
        TrainingHistoryDisplay
        """
        _pyplot(f"{cls.__name__}.from_estimator")
        check_params(
            f"{cls.__name__}.from_estimator",
            {"chance_level": [StrOptions({"auto"}), None, finite(None)]},
            chance_level=chance_level,
        )
        check_is_fitted(estimator, "history_")
        chance_label = None
        if isinstance(chance_level, str):
            chance_level = None
            queue = getattr(getattr(estimator, "moco_", None), "queue", None)
            if queue is not None:
                size = int(queue.shape[0])
                chance_level = float(np.log1p(size))
                chance_label = (
                    f"chance level ln(1 + {size}) = {chance_level:.3f}\n"
                    "(epoch 1 contrasts against a queue of\n"
                    "random keys, so its loss starts low)"
                )
        return cls.from_history(
            estimator.history_,
            chance_level=chance_level,
            chance_label=chance_label,
            name=type(estimator).__name__ if name is None else name,
            ax=ax,
            loss_kw=loss_kw,
            validation_kw=validation_kw,
            chance_kw=chance_kw,
        )


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
        check_params(
            caller,
            {
                "std_display_style": [StrOptions({"fill_between", "errorbar"}), None],
                "spread": [StrOptions({"minmax", "std"})],
            },
            std_display_style=std_display_style,
            spread=spread,
        )
        names = self.names if names is None else _check_names(names, len(self.curves))
        ax = _axes(ax, caller)
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
                kw = _style({"marker": "o", "capsize": 3, "label": label}, errorbar_kw, Line2D)
                yerr = np.clip(np.vstack([mean - low, high - mean]), 0.0, None)
                container = ax.errorbar(x, mean, yerr=yerr, **kw)
                self.errorbar_.append(container)
                self.lines_.append(container.lines[0])
                continue
            kw = _style({"marker": "o", "label": label}, line_kw, Line2D)
            (line,) = ax.plot(x, mean, **kw)
            self.lines_.append(line)
            if std_display_style == "fill_between":
                kw = _style(
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
        caller = f"{cls.__name__}.from_curves"
        _pyplot(caller)
        check_params(
            caller,
            {"metric": [StrOptions(set(_CURVE_METRICS)), callable]},
            metric=metric,
        )
        if isinstance(curves, LabelEfficiencyCurve):
            curves = [curves]
        if curves is None or isinstance(curves, str) or not hasattr(curves, "__iter__"):
            raise TypeError(
                f"curves must be a LabelEfficiencyCurve or a list of them; got "
                f"{type(curves).__name__}."
            )
        curves = list(curves)
        if not curves:
            raise ValueError("curves must hold at least one LabelEfficiencyCurve; got none.")
        for i, curve in enumerate(curves):
            if not isinstance(curve, LabelEfficiencyCurve):
                raise TypeError(
                    f"curves must be LabelEfficiencyCurve objects (from "
                    f"label_efficiency_curve); got a {type(curve).__name__} at position {i}."
                )
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
        from .model_selection import label_efficiency_curve

        _pyplot(f"{cls.__name__}.from_estimator")
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


# At most this many panels in a gallery or a neighbour figure: more are unreadable, and
# matplotlib takes minutes to lay them out.
_MAX_PANELS = 1000


def plot_gallery(rgb, z):
    """One row of colour composites, each captioned with its redshift.

    Parameters
    ----------
    rgb : array-like of shape (n_galaxies, height, width, 3)
        Colour images, e.g. from :func:`skphotoz.data.to_rgb`.
    z : array-like of shape (n_galaxies,)
        Redshift of each image.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    rgb = np.asarray(rgb)
    if rgb.dtype.kind not in "biuf":
        raise TypeError(f"rgb must be an array of colour values; got dtype {rgb.dtype}.")
    z = _as_numbers("z", z).reshape(-1)
    if rgb.ndim != 4 or not 1 <= rgb.shape[0] <= _MAX_PANELS or rgb.shape[-1] not in (3, 4):
        raise ValueError(
            f"rgb must hold at least one image (and at most {_MAX_PANELS}) of shape (height, "
            f"width, 3 or 4 channels); got shape {rgb.shape}."
        )
    if z.shape[0] != rgb.shape[0]:
        raise ValueError(f"z must have one value per image ({rgb.shape[0]}); got {z.shape[0]}.")
    fig, axes = plt.subplots(1, len(rgb), figsize=(1.6 * len(rgb), 1.9), squeeze=False)
    for ax, image, redshift in zip(axes[0], rgb, z, strict=True):
        ax.imshow(image, origin="lower")
        ax.set_title(f"z = {redshift:.3f}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_neighbors(
    images,
    query,
    neighbors,
    similarities=None,
    *,
    redshift=None,
    n_cols: int = 6,
    panel_size: float = 1.8,
    rgb_kwargs: dict | None = None,
):
    """Show a query galaxy and its neighbours as g, r, i colour composites.

    Parameters
    ----------
    images : array-like of shape (n_samples, 5, height, width)
        ugriz images in nanomaggies, e.g. :class:`skphotoz.data.HDF5Images`; only the shown
        rows are read.
    query : int or array-like of shape (5, height, width)
        Row of ``images`` of the query, or an image outside it.
    neighbors : array-like of int of shape (n_neighbors,)
        Rows of ``images``, e.g. ``indices[0]`` from
        :meth:`skphotoz.search.SimilaritySearch.kneighbors`.
    similarities : array-like of shape (n_neighbors,), optional
        Shown in each neighbour's caption.
    redshift : array-like of shape (n_samples,), optional
        Redshifts of ``images``, shown in the captions.
    n_cols : int, default=6
        Panels per row.
    panel_size : float, default=1.8
        Width and height of one panel in inches.
    rgb_kwargs : dict, optional
        Passed to :func:`skphotoz.data.to_rgb`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from .data import to_rgb

    check_params(
        "plot_neighbors",
        {
            "n_cols": [integer(1, _MAX_PANELS)],
            "panel_size": [finite(0, 100, "right")],
            "rgb_kwargs": [None, dict],
        },
        n_cols=n_cols,
        panel_size=panel_size,
        rgb_kwargs=rgb_kwargs,
    )
    if not hasattr(images, "shape"):  # lists; lazy arrays (HDF5Images) are read by row
        images = np.asarray(images)
    image_shape = tuple(images.shape)
    if len(image_shape) != 4:
        raise ValueError(
            f"images must be (n_samples, n_bands, height, width); got shape {image_shape}."
        )
    n_images = image_shape[0]
    neighbors = np.asarray(neighbors)
    if neighbors.size and neighbors.dtype.kind not in "iu":
        raise TypeError(
            f"neighbors must be integer rows of images; got an array of dtype {neighbors.dtype}."
        )
    neighbors = neighbors.astype(np.int64).reshape(-1)
    if neighbors.size + 1 > _MAX_PANELS:
        raise ValueError(
            f"plot_neighbors shows at most {_MAX_PANELS - 1} neighbours; got {neighbors.size}."
        )
    outside = neighbors[(neighbors < 0) | (neighbors >= n_images)]
    if outside.size:
        raise ValueError(
            f"neighbors must be rows of images, from 0 to {n_images - 1}; got "
            f"{outside[:5].tolist()}."
        )
    if similarities is not None:
        similarities = _as_numbers("similarities", similarities).reshape(-1)
        if similarities.shape != neighbors.shape:
            raise ValueError(
                f"similarities must have one value per neighbour ({neighbors.size}); got "
                f"{similarities.size}."
            )
        if not np.isfinite(similarities).all():
            raise ValueError("similarities must be finite; got NaN or infinite values.")
    if redshift is not None:
        redshift = _as_numbers("redshift", redshift).reshape(-1)
        if redshift.shape[0] != n_images:
            raise ValueError(
                f"redshift must have one value per row of images ({n_images}); got "
                f"{redshift.shape[0]}."
            )
    if isinstance(query, bool | np.bool_):
        raise TypeError("query must be a row of images (int) or an image; got a boolean.")
    query_is_row = isinstance(query, numbers.Integral)
    if query_is_row and not 0 <= query < n_images:
        raise ValueError(f"query must be a row of images, from 0 to {n_images - 1}; got {query}.")
    rows = np.concatenate([[query], neighbors]) if query_is_row else neighbors
    stamps = np.asarray(images[rows], dtype=np.float32)
    if not query_is_row:
        query_image = _as_numbers("query", query).astype(np.float32)
        if query_image.shape != image_shape[1:]:
            raise ValueError(
                f"query must be a row of images or an image of their shape "
                f"{image_shape[1:]}; got shape {query_image.shape}."
            )
        stamps = np.concatenate([query_image[None], stamps])
    rgb = to_rgb(stamps, **(rgb_kwargs or {}))
    n_panels = len(rgb)
    n_rows = -(-n_panels // n_cols)
    fig, axes = plt.subplots(
        n_rows,
        min(n_cols, n_panels),
        figsize=(panel_size * min(n_cols, n_panels), (panel_size + 0.35) * n_rows),
        squeeze=False,
    )
    for position, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if position >= n_panels:
            continue
        ax.imshow(rgb[position], origin="lower", interpolation="nearest")
        if position == 0:
            caption = f"query #{query}" if query_is_row else "query"
        else:
            caption = f"#{neighbors[position - 1]}"
            if similarities is not None:
                caption += f"  s={similarities[position - 1]:.3f}"
        if redshift is not None and (position > 0 or query_is_row):
            row = rows[position] if query_is_row else neighbors[position - 1]
            caption += f"\nz={float(redshift[row]):.3f}"
        ax.set_title(caption, fontsize=8)
    fig.tight_layout()
    return fig
