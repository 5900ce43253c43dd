"""A Gaussian process on photometry and a pretrained embedding: images at the GP's price.

:func:`hybrid_gp` joins two descriptions of each stamp, then fits
:class:`~skphotoz.baselines.GaussianProcessPhotoZ` on them:

- the stamp's aperture photometry (:class:`~skphotoz.preprocessing.AperturePhotometry`, the
  strongest photometry baseline's features), exact;
- the first ``n_components`` principal components of a pretrained
  :class:`~skphotoz.MoCoEmbedder`'s embedding: what the images say beyond the apertures
  (size, shape, surroundings), compressed to a few dimensions so that the GP's ARD kernel can
  learn a length scale for each from a few hundred labels.

The embedder is pretrained first, without labels, on every image at hand; the pipeline fits
only the PCA and the GP on the labelled rows. Its figures against the photometry GP and the
forest are in ``docs/results.md``.
"""

from __future__ import annotations

from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline, make_pipeline, make_union
from sklearn.utils.validation import check_is_fitted

from ._validation import integer, random_state, validated

__all__ = ["hybrid_gp"]


@validated({"n_components": [integer(1)], "random_state": random_state()})
def hybrid_gp(
    embedder, *, n_components: int = 4, photometry=None, random_state=None, **params
) -> Pipeline:
    """The Gaussian process on aperture photometry joined to a pretrained embedding's PCA.

    Parameters
    ----------
    embedder : fitted MoCoEmbedder (or another fitted transformer of the same images)
        Pretrained on all the images, labelled or not, before this call: its unsupervised
        view of the pool is what the labels alone cannot give. It is wrapped in
        :class:`~sklearn.frozen.FrozenEstimator`, so fitting, cloning and cross-validating the
        pipeline never refit it. An embedder pretrained with the photometry term
        (``MoCoEmbedder`` defaults) learns colour; ``docs/results.md`` compares it with plain
        MoCo here.
    n_components : int, default=4
        Principal components of the embedding given to the GP. Few, because the GP's ARD
        kernel fits one length scale per feature from the labelled rows alone: with 250
        labels, 4 components beside the 11 photometry features is what ``docs/results.md``
        measured.
    photometry : AperturePhotometry, optional
        The photometry features (default: ``AperturePhotometry()``, 11 features for ugriz).
    random_state : int, RandomState instance or None, default=None
        Seeds the PCA's solver and the GP's optimizer restarts.
    **params
        Further parameters of :class:`~skphotoz.baselines.GaussianProcessPhotoZ`
        (``n_restarts``, ``max_samples``).

    Returns
    -------
    sklearn.pipeline.Pipeline
        ``make_pipeline(make_union(photometry, make_pipeline(FrozenEstimator(embedder),
        PCA(n_components))), GaussianProcessPhotoZ())``, taking the images ``X`` that the
        embedder takes.

    Examples
    --------
    >>> from skphotoz import MoCoEmbedder
    >>> from skphotoz.hybrid import hybrid_gp
    >>> embedder = MoCoEmbedder().fit(X_all)            # doctest: +SKIP
    >>> model = hybrid_gp(embedder).fit(X_labelled, z)  # doctest: +SKIP
    """
    from sklearn.decomposition import PCA

    from .baselines import GaussianProcessPhotoZ
    from .preprocessing import AperturePhotometry

    if not hasattr(embedder, "transform"):
        raise TypeError(
            f"embedder must be a fitted transformer of images (e.g. a MoCoEmbedder); got "
            f"{type(embedder).__name__}, which has no transform method."
        )
    frozen = embedder if isinstance(embedder, FrozenEstimator) else FrozenEstimator(embedder)
    check_is_fitted(
        frozen.estimator,
        msg=(
            f"embedder must be fitted: pretrain the {type(frozen.estimator).__name__} on all "
            "your images (labelled or not) with fit(X) first; hybrid_gp fits only the PCA and "
            "the GP on the labelled rows."
        ),
    )
    if photometry is None:
        photometry = AperturePhotometry()
    features = make_union(
        photometry, make_pipeline(frozen, PCA(n_components, random_state=random_state))
    )
    return make_pipeline(features, GaussianProcessPhotoZ(random_state=random_state, **params))
