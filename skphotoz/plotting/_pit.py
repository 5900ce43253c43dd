"""PITDisplay: histogram of the probability integral transform of redshift PDFs."""

from __future__ import annotations

import numpy as np

from .._validation import StrOptions, integer, validated
from ..metrics import pit, pit_calibration
from ._common import axes, check_one_per_row, pyplot, style

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

        ax = axes(ax, f"{type(self).__name__}.plot")
        name = self.name if name is None else name
        counts = np.asarray(self.counts, dtype=np.float64)
        edges = np.asarray(self.bin_edges, dtype=np.float64)
        expected = counts.sum() * np.diff(edges) / (edges[-1] - edges[0])
        spread = np.sqrt(expected)
        method = _CALIBRATION_NAMES.get(self.calibration_method, str(self.calibration_method))
        label = f"{name or 'PIT'} ({method} = {self.calibration:.3g})"

        hist_kw = style(
            {"fill": True, "facecolor": "tab:blue", "alpha": 0.6, "label": label},
            hist_kw,
            StepPatch,
        )
        self.hist_ = ax.stairs(counts, edges, **hist_kw)
        band_kw = style(
            {"fill": True, "color": "0.5", "alpha": 0.3, "label": "±1σ (Poisson)"},
            band_kw,
            StepPatch,
        )
        self.band_ = ax.stairs(expected + spread, edges, baseline=expected - spread, **band_kw)
        expected_kw = style(
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
    @validated({"bins": [integer(1, 100_000)], "method": [StrOptions({"ks", "cvm"})]})
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
        pyplot(f"{cls.__name__}.from_predictions")
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
        pyplot(f"{cls.__name__}.from_estimator")
        if not hasattr(estimator, "predict_pdf"):
            raise TypeError(
                f"estimator must have a predict_pdf method and a redshift_bins_ attribute (a "
                f"fitted PhotoZRegressor); got a {type(estimator).__name__} without "
                f"predict_pdf."
            )
        check_one_per_row(X, z_spec)
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
