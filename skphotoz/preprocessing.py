"""Photometry measured on the images: the inputs of the photometry-only photo-z baseline.

A random forest on colours is the reference a network on images must beat (on real SDSS
galaxies it reaches σ_MAD ≈ 0.013 with colours and r magnitude). Measuring the photometry on
the very images the networks see, in the same rows, makes the comparison fair and paired:
``make_pipeline(AperturePhotometry(), RandomForestRegressor())`` takes the same ``X`` as
:class:`~skphotoz.PhotoZRegressor`.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._inputs import rows_text, unmask
from ._validation import check_value, finite, fit_context, integer, positive, validated

#: SDSS pixel scale, arcsec per pixel.
SDSS_PIXEL_SCALE = 0.396


# Bounds: an arcsec-per-pixel scale of a degree, apertures of 3 degrees and a hundred of them
# are far beyond any survey; batches beyond 2**20 stamps only waste memory.
_MAX_PIXEL_SCALE = 3600.0
_MAX_RADIUS = 10_800.0
_MAX_RADII = 100
_MAX_BATCH = 2**20
# Largest stamp side: the archives' limit (a 2048 x 2048 stamp is 4 million pixels).
_MAX_SIDE = 2048


def _check_radii(radii) -> np.ndarray:
    """Aperture radii as a float64 array: 1 to 100 finite radii in (0, 10,800] arcsec."""
    try:
        array = np.asarray(radii, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"radii must be a sequence of numbers (arcsec); got {radii!r}.") from None
    if (
        array.ndim != 1
        or not 1 <= array.size <= _MAX_RADII
        or not np.all(np.isfinite(array) & (array > 0) & (array <= _MAX_RADIUS))
    ):
        raise ValueError(
            f"radii must be 1 to {_MAX_RADII} finite radii in (0, {_MAX_RADIUS:g}] arcsec; "
            f"got {radii!r}."
        )
    if np.any(np.diff(array) <= 0):
        raise ValueError(
            f"radii must increase (each aperture larger than the last: the features name "
            f"them in that order); got {radii!r}."
        )
    return array


def aperture_masks(shape, radii=(1.5, 3.0, 6.0), pixel_scale=SDSS_PIXEL_SCALE) -> np.ndarray:
    """Circular apertures centred on pixel ``(height // 2, width // 2)``: (n_radii, height, width).

    1.0 for pixels whose centre lies within the radius (arcsec), 0.0 elsewhere; the masks of
    :func:`aperture_fluxes` and of the networks' photometry layer.
    """
    radii = _check_radii(radii)
    height, width = shape
    check_value("aperture_masks", "shape", height, [integer(1, _MAX_SIDE)])
    check_value("aperture_masks", "shape", width, [integer(1, _MAX_SIDE)])
    yy, xx = np.mgrid[:height, :width]
    radius = np.hypot(yy - height // 2, xx - width // 2) * pixel_scale
    return np.stack([(radius < r).astype(np.float64) for r in radii])


@validated({"pixel_scale": [finite(0, _MAX_PIXEL_SCALE, "right")]})
def aperture_fluxes(images, radii=(1.5, 3.0, 6.0), pixel_scale=SDSS_PIXEL_SCALE) -> np.ndarray:
    """Flux inside circles centred on the stamp, per band, in float64: (n, n_radii, n_bands).

    Parameters
    ----------
    images : array-like of shape (n, n_bands, height, width)
        Fluxes per pixel (e.g. nanomaggies).
    radii : sequence of float, default=(1.5, 3.0, 6.0)
        Aperture radii in arcsec (pixels whose centre lies within the radius count).
    pixel_scale : float, default=0.396
        Arcsec per pixel (SDSS).
    """
    radii = _check_radii(radii)
    images = np.asarray(unmask(images))  # masked pixels are missing: NaN, refused below
    if images.dtype.kind not in "iuf":
        raise TypeError(f"images must be an array of numbers; got dtype {images.dtype}.")
    images = images.astype(np.float64, copy=False)
    if images.ndim != 4:
        raise ValueError(
            f"images must be 4-D (n_samples, n_bands, height, width); got shape {images.shape}."
        )
    bad = np.flatnonzero(~np.isfinite(images).reshape(len(images), -1).all(axis=1))
    if bad.size:
        raise ValueError(
            f"images hold NaN or infinite (or masked) pixels in stamps {rows_text(bad)}: their "
            f"aperture fluxes would be NaN. Repair or drop those stamps (e.g. fill masked "
            f"pixels with the sky level, 0 for sky-subtracted images)."
        )
    masks = aperture_masks(images.shape[-2:], radii, pixel_scale)
    return np.einsum("nbij,aij->nab", images, masks, optimize=True)


class AperturePhotometry(TransformerMixin, BaseEstimator):
    """Colours and magnitudes in circular apertures, measured on each stamp.

    The features (for 5 bands and three apertures, 11 of them): the colours of adjacent bands
    (u−g, g−r, ...) in the middle aperture, the ``reference_band`` magnitude in every
    aperture (brightness and concentration), and the colours in the smallest aperture (colour
    gradients). Magnitudes are ``22.5 − 2.5 log10(flux)`` (nanomaggies), with fluxes floored
    at ``flux_floor`` so that noise-dominated apertures stay finite. Give it dereddened
    images (``open_archive(..., deredden=True)``), since reddening changes colours.

    Parameters
    ----------
    radii : tuple of float, default=(1.5, 3.0, 6.0)
        Aperture radii in arcsec: about the PSF, the 3" SDSS fibre, and most of a galaxy at
        z ~ 0.1.
    pixel_scale : float, default=0.396
        Arcsec per pixel (SDSS).
    reference_band : int, default=2
        Band whose magnitude is given in every aperture (2: r).
    flux_floor : float, default=0.01
        Smallest flux (nanomaggies, magnitude 27.5) used in a magnitude.
    batch_size : int, default=512
        Stamps measured at a time (bounds the memory for lazy HDF5 input).

    Examples
    --------
    >>> import numpy as np
    >>> from skphotoz.preprocessing import AperturePhotometry
    >>> images = np.ones((2, 5, 16, 16), dtype=np.float32)
    >>> AperturePhotometry().fit_transform(images).shape
    (2, 11)
    """

    _parameter_constraints = {
        "radii": [tuple, list],
        "pixel_scale": [finite(0, _MAX_PIXEL_SCALE, "right")],
        "reference_band": [integer(0, 1023)],
        "flux_floor": [positive()],
        "batch_size": [integer(1, _MAX_BATCH)],
    }

    def __init__(
        self,
        radii=(1.5, 3.0, 6.0),
        *,
        pixel_scale=SDSS_PIXEL_SCALE,
        reference_band=2,
        flux_floor=0.01,
        batch_size=512,
    ):
        self.radii = radii
        self.pixel_scale = pixel_scale
        self.reference_band = reference_band
        self.flux_floor = flux_floor
        self.batch_size = batch_size

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the image shape (square stamps); nothing is learned."""
        shape = _image_shape(X, "X")
        if len(shape) != 4 or min(shape[2:]) < 1:
            raise ValueError(
                f"AperturePhotometry takes images (n_samples, n_bands, height, width) of at "
                f"least one pixel; got shape {shape}."
            )
        if shape[2] != shape[3]:
            hint = (
                " It looks channels-last: transpose it with X.transpose(0, 3, 1, 2)."
                if shape[1] == shape[2] and shape[3] < shape[1]
                else ""
            )
            raise ValueError(
                f"AperturePhotometry takes square stamps (n_samples, n_bands, size, size), "
                f"the apertures centred on the galaxy; got shape {shape}.{hint}"
            )
        self._check_settings(shape[1])
        self.n_bands_ = shape[1]
        self.image_shape_ = shape[1:]
        return self

    def _check_settings(self, n_bands: int) -> None:
        """The checks of the parameters beyond their constraints: the radii, and a reference
        band that X has."""
        radii = np.asarray(self.radii, dtype=np.float64) if _numbers(self.radii) else None
        if (
            radii is None
            or radii.ndim != 1
            or not 2 <= radii.size <= _MAX_RADII
            or not np.all(np.isfinite(radii) & (radii > 0) & (radii <= _MAX_RADIUS))
        ):
            raise ValueError(
                f"radii must be two or more positive radii (at most {_MAX_RADII}, each at most "
                f"{_MAX_RADIUS:g} arcsec); got {self.radii!r}."
            )
        if self.reference_band >= n_bands:
            raise ValueError(
                f"reference_band must be a band of X (0 to {n_bands - 1}); got "
                f"{self.reference_band}."
            )

    def transform(self, X) -> np.ndarray:
        """The aperture features of each stamp, float64 (n_samples, n_features_out)."""
        check_is_fitted(self, "n_bands_")
        # Parameters may have been changed with set_params since fit: check them again.
        self._validate_params()
        self._check_settings(self.n_bands_)
        shape = _image_shape(X, "X")
        if shape[1:] != tuple(self.image_shape_):
            raise ValueError(
                f"X has stamps of shape {shape[1:]}, but AperturePhotometry was fitted on "
                f"{tuple(self.image_shape_)}."
            )
        out = []
        for start in range(0, shape[0], self.batch_size):
            with np.errstate(over="ignore"):  # values beyond float32 become inf: reported
                block = unmask(X[start : start + self.batch_size])  # masked: NaN, reported
                images = np.asarray(block, dtype=np.float32)
            bad = np.flatnonzero(~np.isfinite(images).reshape(len(images), -1).all(axis=1))
            if bad.size:
                rows = ", ".join(str(start + i) for i in bad[:5]) + (
                    ", ..." if bad.size > 5 else ""
                )
                raise ValueError(
                    f"X holds NaN or infinite pixels (or masked ones, or values beyond float32) "
                    f"in stamps {rows}: aperture fluxes would be NaN. Repair or drop those stamps "
                    f"(e.g. fill masked pixels with the sky level, 0 for sky-subtracted images)."
                )
            out.append(self._features(images))
        return np.concatenate(out) if out else np.empty((0, self.n_features_out_))

    @property
    def n_features_out_(self) -> int:
        return 2 * (self.n_bands_ - 1) + len(self.radii)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the features: colours and magnitudes with their aperture."""
        check_is_fitted(self, "n_bands_")
        bands = "ugriz" if self.n_bands_ == 5 else [f"b{i}" for i in range(self.n_bands_)]
        colour = [f"{a}-{b}" for a, b in zip(bands[:-1], bands[1:], strict=True)]
        radii = list(self.radii)
        return np.array(
            [f'{c} ({radii[1]}")' for c in colour]
            + [f'{bands[self.reference_band]} ({r}")' for r in radii]
            + [f'{c} ({radii[0]}")' for c in colour]
        )

    def band_weights(self) -> np.ndarray:
        """Each feature as a sum of band magnitudes: ``W`` of shape (n_features_out, n_bands)
        with ``feature = W @ magnitudes`` up to the aperture (a colour u−g: +1 at u, −1 at g).

        A change of each band's magnitude by ``dm`` changes the features by ``W @ dm`` (where
        no flux is at ``flux_floor``): a brightness change moves only the magnitudes, a
        reddening by ``E(B-V)`` moves a colour a−b by ``(R_a − R_b) E(B-V)``. The embedder's
        photometry term uses it to follow its augmentations.
        """
        check_is_fitted(self, "n_bands_")
        n_colours = self.n_bands_ - 1
        colour = np.zeros((n_colours, self.n_bands_))
        colour[np.arange(n_colours), np.arange(n_colours)] = 1.0
        colour[np.arange(n_colours), np.arange(1, self.n_bands_)] = -1.0
        magnitude = np.zeros((len(self.radii), self.n_bands_))
        magnitude[:, self.reference_band] = 1.0
        return np.vstack([colour, magnitude, colour])

    def _features(self, images: np.ndarray) -> np.ndarray:
        flux = aperture_fluxes(images, self.radii, self.pixel_scale)
        mag = 22.5 - 2.5 * np.log10(np.clip(flux, self.flux_floor, None))
        colours = -np.diff(mag, axis=2)  # (n, n_radii, n_bands - 1): m_b - m_(b+1)
        return np.column_stack([colours[:, 1], mag[:, :, self.reference_band], colours[:, 0]])


def default_photometry(n_bands: int) -> AperturePhotometry:
    """``AperturePhotometry()`` for stamps of ``n_bands`` bands: r (band 2) as the reference
    band, or the reddest band when there are fewer than three."""
    return AperturePhotometry(reference_band=min(2, n_bands - 1))


def _numbers(value) -> bool:
    try:
        np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


def _image_shape(X, name: str) -> tuple:
    """The shape of an image array-like; a TypeError for None, strings or non-numeric arrays."""
    if X is None or isinstance(X, str | bytes | dict):
        raise TypeError(
            f"{name} must be images (n_samples, n_bands, height, width); got {type(X).__name__}."
        )
    if not hasattr(X, "shape"):
        X = np.asarray(X)
    dtype = getattr(X, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind not in "biuf":
        raise TypeError(f"{name} must hold numbers (pixel fluxes); got dtype {dtype}.")
    return tuple(X.shape)
