"""Similarity search over galaxy embeddings: exact top-k by blocked matrix products, or faiss.

A user picks one galaxy (a rare object, a lens candidate, an artefact) and asks for the most
similar ones among millions. Embeddings are L2-normalised (``metric="cosine"``) and compared by
inner product, the similarity of self-supervised photo-z work (Hayat et al. 2021; faiss
``IndexFlatIP`` in its large-survey follow-up, Stein et al. 2021).

Exact search multiplies blocks of queries by blocks of index rows and merges per-block top-k
lists, so memory stays bounded for any number of galaxies (the algorithm is described in
``_topk``).

The package: :class:`SimilaritySearch` (``_estimator``), the exact top-k kernels (``_topk``)
and the faiss adapter (``_faiss``). The figure of a query and its neighbours is
:func:`skphotoz.plotting.plot_neighbors`; importing this package does not import matplotlib.
"""

from ._estimator import SimilaritySearch

__all__ = ["SimilaritySearch"]
