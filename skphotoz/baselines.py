"""Photometry-only photo-z baselines: the models a network on images has to beat.

Two regressors on the aperture photometry of :class:`~skphotoz.preprocessing.AperturePhotometry`
(colours and magnitudes measured on the same stamps as the networks see):

- :class:`GaussianProcessPhotoZ`: a Gaussian process with an ARD (one length scale per
  feature) RBF kernel plus white noise. With hundreds to a few thousand labels it is the
  strongest of the two on simulated SDSS galaxies (measured in ``docs/results.md``); its cost
  grows as n³, so it fits at most ``max_samples`` labelled rows.
- a random forest, the classic photometric baseline (Carliles et al. 2010): any number of
  labels, but it needs many more of them for the same accuracy.

:func:`photometry_baseline` builds either as a pipeline on images, so that it takes the same
``X`` as :class:`~skphotoz.PhotoZRegressor` and plugs into the same cross-validation.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ._inputs import check_redshifts, unmask, warn_implausible_redshifts
from ._validation import fit_context, integer, random_state

__all__ = ["GaussianProcessPhotoZ", "RedshiftForest", "photometry_baseline"]

# Length scales, in standard deviations of a feature: below 0.01 a feature would be noise
# fitted pixel by pixel; at 1,000 it is ignored (ARD's way of dropping a feature).
_LENGTH_SCALE_BOUNDS = (1e-2, 1e3)
_NOISE_BOUNDS = (1e-6, 1e1)
_AMPLITUDE_BOUNDS = (1e-3, 1e3)
# Rows predicted at once (the cross-kernel of a chunk against 4,000 fitted rows: 128 MB).
_PREDICT_CHUNK = 4096


class GaussianProcessPhotoZ(RegressorMixin, BaseEstimator):
    """Gaussian-process photo-z on a few features (aperture photometry, embeddings).

    The kernel is ``amplitude * RBF(length_scale per feature) + WhiteKernel``, fitted by
    maximising the marginal likelihood on standardised features and standardised redshifts,
    started once from unit length scales and ``n_restarts`` more times from random ones.
    Automatic relevance determination (one length scale per feature) lets the fit ignore
    features that carry no redshift, which is what makes it a strong baseline with few labels.

    A maximum-likelihood fit can end in a poor local optimum in which the GP predicts nearly
    the mean redshift (seen with a single start on 2,000 labels). Every fit is therefore
    checked: its leave-one-out error (exact and cheap for a GP) is compared with that of a
    linear least-squares fit on the same features, and a GP that does worse than the linear
    fit is refitted with ``4 * (n_restarts + 1)`` starts; if it still does worse, a
    ``ConvergenceWarning`` says so. The two errors are kept as ``loo_mse_`` and
    ``linear_loo_mse_``.

    Parameters
    ----------
    n_restarts : int, default=3
        Random restarts of the likelihood optimizer after the first start. More restarts cost
        time linearly and guard against poor optima.
    max_samples : int, default=4000
        Most labelled rows fitted. An exact GP costs O(n³) time and about ``8 n² (d + 4)``
        bytes for n rows and d features (1.4 GB at n=4,000, d=11: the gradient of every
        kernel parameter is an n x n matrix). Beyond it, a random subset of ``max_samples``
        rows is fitted, with a warning.
    random_state : int, RandomState instance or None, default=None
        Seeds the restarts and the subset.

    Attributes
    ----------
    gp_ : sklearn.gaussian_process.GaussianProcessRegressor
        The fitted GP (on standardised features).
    kernel_ : Kernel
        Its fitted kernel; ``kernel_.k1.k2.length_scale`` are the length scales of the
        features, in standard deviations.
    std_calibration_ : float
        The RMS of the leave-one-out errors on the training rows over the RMS of the
        leave-one-out predictive standard deviations: 1 for a GP whose uncertainties are
        right, above 1 for an overconfident one. Multiply ``predict``'s standard deviation
        by it for uncertainties calibrated on the labels.
    loo_mse_ : float
        Leave-one-out mean squared error of the GP on its training rows.
    linear_loo_mse_ : float
        The same for a linear least-squares fit.
    n_samples_fit_ : int
        Rows fitted (``max_samples`` at most).
    n_features_in_ : int

    See Also
    --------
    photometry_baseline : this GP or a forest on the aperture photometry of images.

    Examples
    --------
    >>> import numpy as np
    >>> from skphotoz.baselines import GaussianProcessPhotoZ
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> z = 0.1 + 0.03 * np.tanh(X[:, 0]) + 0.002 * rng.normal(size=200)
    >>> model = GaussianProcessPhotoZ(n_restarts=0, random_state=0).fit(X, z)
    >>> bool(model.score(X, z) > 0.9)
    True
    """

    _parameter_constraints = {
        "n_restarts": [integer(0, 1000)],
        "max_samples": [integer(2, 1_000_000)],
        "random_state": random_state(),
    }

    def __init__(self, *, n_restarts=3, max_samples=4000, random_state=None):
        self.n_restarts = n_restarts
        self.max_samples = max_samples
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Redshifts are > -1 and, for a photo-z, >= 0: scikit-learn's nearest tag, so that
        # its estimator checks draw valid redshifts (fit refuses values <= -1).
        tags.target_tags.positive_only = True
        return tags

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit the kernel and the GP on (a subset of at most ``max_samples`` of) X, y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Finite features, e.g. ``AperturePhotometry().fit_transform(images)``.
        y : array-like of shape (n_samples,)
            Redshifts: finite, greater than −1.

        Returns
        -------
        self
        """
        # Masked entries are missing (NaN): refused below, never used as numbers.
        if np.asarray(y).dtype == bool:
            raise TypeError("y must be an array of redshifts; got booleans.")
        X, y = validate_data(self, unmask(X), unmask(y), dtype=np.float64, y_numeric=True)
        check_redshifts(y)
        warn_implausible_redshifts(y, type(self).__name__)
        if len(X) < 2:
            raise ValueError(
                f"GaussianProcessPhotoZ needs at least 2 samples; got n_samples={len(X)}."
            )
        rng = check_random_state(self.random_state)
        if len(X) > self.max_samples:
            warnings.warn(
                f"GaussianProcessPhotoZ fits a random {self.max_samples} of the {len(X)} rows "
                f"(max_samples): an exact GP costs O(n^3) time and O(n^2 d) memory. Raise "
                f"max_samples if the machine allows, or use a forest for more labels.",
                UserWarning,
                stacklevel=3,
            )
            rows = np.sort(rng.choice(len(X), self.max_samples, replace=False))
            X, y = X[rows], y[rows]
        self.n_samples_fit_ = len(X)
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        Xs = (X - self.mean_) / self.scale_
        self.linear_loo_mse_ = _linear_loo_mse(Xs, y)
        self.gp_ = self._fit_gp(Xs, y, self.n_restarts, rng)
        residual, variance = _gp_loo(self.gp_)
        if np.mean(residual**2) > self.linear_loo_mse_:
            retry = self._fit_gp(Xs, y, 4 * (self.n_restarts + 1), rng)
            if retry.log_marginal_likelihood_value_ > self.gp_.log_marginal_likelihood_value_:
                self.gp_ = retry
                residual, variance = _gp_loo(retry)
        self.loo_mse_ = float(np.mean(residual**2))
        if self.loo_mse_ > self.linear_loo_mse_:
            warnings.warn(
                f"GaussianProcessPhotoZ: after {5 * (self.n_restarts + 1)} optimizer starts "
                f"the GP's leave-one-out error ({self.loo_mse_:.3g}) is still above a "
                f"linear fit's ({self.linear_loo_mse_:.3g}); it may be predicting little "
                f"more than the mean. Check the features (standardised, finite, related "
                f"to redshift).",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.kernel_ = self.gp_.kernel_
        self.std_calibration_ = float(np.sqrt(np.mean(residual**2) / np.mean(variance)))
        return self

    @staticmethod
    def _fit_gp(Xs: np.ndarray, y: np.ndarray, n_restarts: int, rng) -> GaussianProcessRegressor:
        kernel = ConstantKernel(1.0, _AMPLITUDE_BOUNDS) * RBF(
            np.ones(Xs.shape[1]), _LENGTH_SCALE_BOUNDS
        ) + WhiteKernel(1e-2, _NOISE_BOUNDS)
        gp = GaussianProcessRegressor(
            kernel,
            normalize_y=True,
            n_restarts_optimizer=n_restarts,
            random_state=rng.randint(2**31 - 1),
        )
        with warnings.catch_warnings():
            # ARD drops a feature by sending its length scale to the upper bound; scikit-learn
            # warns each time it does. The fit is checked on its leave-one-out error instead.
            warnings.filterwarnings(
                "ignore", message=".*close to the specified", category=ConvergenceWarning
            )
            return gp.fit(Xs, y)

    def predict(self, X, return_std: bool = False):
        """Posterior mean redshift (and its standard deviation, noise included).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_std : bool, default=False
            Also return the predictive standard deviation of each redshift.

        Returns
        -------
        z : ndarray of shape (n_samples,)
        std : ndarray of shape (n_samples,), if ``return_std``
        """
        check_is_fitted(self, "gp_")
        X = validate_data(self, unmask(X), dtype=np.float64, reset=False)
        Xs = (X - self.mean_) / self.scale_
        # In chunks: a prediction holds (rows x fitted rows) float64 matrices.
        chunks = [
            self.gp_.predict(Xs[start : start + _PREDICT_CHUNK], return_std=return_std)
            for start in range(0, max(len(Xs), 1), _PREDICT_CHUNK)
        ]
        if not return_std:
            return np.concatenate(chunks)
        return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])


def _gp_loo(gp: GaussianProcessRegressor) -> tuple[np.ndarray, np.ndarray]:
    """Exact leave-one-out residuals of a fitted GP and their predictive variances, in the
    units of y: residual_i = alpha_i / (K^-1)_ii, variance_i = 1 / (K^-1)_ii (Rasmussen &
    Williams 2006, eq. 5.12; K and alpha on the standardised redshifts)."""
    inverse_cholesky = np.linalg.inv(gp.L_)
    diagonal = np.einsum("ij,ij->j", inverse_cholesky, inverse_cholesky)
    spread = gp._y_train_std
    return gp.alpha_.ravel() / diagonal * spread, spread**2 / diagonal


def _linear_loo_mse(X: np.ndarray, y: np.ndarray) -> float:
    """Exact leave-one-out MSE of least squares with an intercept: residual_i / (1 - h_ii)."""
    design = np.column_stack([np.ones(len(X)), X])
    q, _ = np.linalg.qr(design)
    hat = np.einsum("ij,ij->i", q, q)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = (y - design @ coef) / np.clip(1.0 - hat, 1e-12, None)
    return float(np.mean(residual**2))


class RedshiftForest(RandomForestRegressor):
    """scikit-learn's random forest, fitted only on redshifts: ``y`` passes the one redshift
    rule of skphotoz (finite, > -1; masked entries are missing) before the trees are grown,
    so that -9999 and the like are refused, not learnt. Parameters as
    :class:`~sklearn.ensemble.RandomForestRegressor`."""

    def fit(self, X, y, sample_weight=None):
        y = np.asarray(unmask(y))
        if y.dtype == bool:
            raise TypeError("y must be an array of redshifts; got booleans.")
        if y.dtype.kind in "iuf":
            check_redshifts(np.asarray(y, dtype=np.float64).reshape(-1), "y")
            warn_implausible_redshifts(y, type(self).__name__)
        return super().fit(X, y, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True  # redshifts: see GaussianProcessPhotoZ
        return tags


def photometry_baseline(model: str = "gp", *, random_state=None, n_jobs=None, **params):
    """A photometry-only photo-z model on images: aperture photometry, then a regressor.

    ``photometry_baseline("gp")`` is ``make_pipeline(AperturePhotometry(),
    GaussianProcessPhotoZ())``, the strongest of the two with up to a few thousand labels;
    ``photometry_baseline("forest")`` uses a random forest (200 trees, leaves of at least 3
    galaxies, half the features per split) for any number of labels. Both take the images
    ``X`` that :class:`~skphotoz.PhotoZRegressor` takes (dereddened fluxes), so that a
    network and its baseline are cross-validated on the same rows.

    Parameters
    ----------
    model : {"gp", "forest"}, default="gp"
    random_state : int, RandomState instance or None, default=None
    n_jobs : int, optional
        Forest only: parallel trees.
    **params
        Further parameters of :class:`GaussianProcessPhotoZ` or
        :class:`~sklearn.ensemble.RandomForestRegressor`.

    Returns
    -------
    sklearn.pipeline.Pipeline
    """
    from sklearn.pipeline import make_pipeline

    from .preprocessing import AperturePhotometry

    if model == "gp":
        regressor = GaussianProcessPhotoZ(random_state=random_state, **params)
    elif model == "forest":
        settings = {"n_estimators": 200, "min_samples_leaf": 3, "max_features": 0.5, **params}
        regressor = RedshiftForest(random_state=random_state, n_jobs=n_jobs, **settings)
    else:
        raise ValueError(f"model must be 'gp' or 'forest'; got {model!r}.")
    return make_pipeline(AperturePhotometry(), regressor)
