"""PhotoZDisplay: photometric against spectroscopic redshifts, with σ_MAD, bias and η."""

from __future__ import annotations

import numpy as np

from .._inputs import check_redshift_pair
from .._validation import positive, validated
from ..metrics import OUTLIER_THRESHOLD, bias, outlier_fraction, sigma_mad
from ._common import axes, check_one_per_row, pyplot, style


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

    @validated({"colorbar": ["boolean"]})
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

        ax = axes(ax, f"{type(self).__name__}.plot", figsize=(5.6, 4.6))
        name = self.name if name is None else name
        z_spec = np.asarray(self.z_spec, dtype=np.float64).reshape(-1)
        z_phot = np.asarray(self.z_phot, dtype=np.float64).reshape(-1)
        lo = min(z_spec.min(), z_phot.min())
        hi = max(z_spec.max(), z_phot.max())
        pad = 0.02 * (hi - lo) if hi > lo else 0.05
        lo, hi = lo - pad, hi + pad

        density_kw = style(
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
        line_kw = style({"color": "black", "linewidth": 1.0, "label": "1:1"}, line_kw, Line2D)
        (self.line_,) = ax.plot(z, z, **line_kw)
        t = float(self.threshold)
        bounds_kw = style(
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
        text_kw = style(
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
    @validated({"threshold": [positive()]})
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
        pyplot(f"{cls.__name__}.from_predictions")
        z_spec, z_phot = check_redshift_pair(z_spec, z_phot)
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
    @validated({"threshold": [positive()]})
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
        pyplot(f"{cls.__name__}.from_estimator")
        check_one_per_row(X, z_spec)
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
