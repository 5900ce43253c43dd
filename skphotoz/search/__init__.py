"""Similarity search over galaxy embeddings: exact top-k by blocked matrix products, or faiss.

A user picks one galaxy (a rare object, a lens candidate, an artefact) and asks for the most
similar ones among millions. Embeddings are L2-normalised (``metric="cosine"``) and compared by
inner product, the similarity of self-supervised photo-z work (Hayat et al. 2021; faiss
``IndexFlatIP`` in its large-survey follow-up, Stein et al. 2021).

The exact engine never forms the full query × index similarity matrix: it multiplies blocks of
queries by blocks of index rows, keeps each block's top-k and merges them into a running top-k,
so memory stays bounded for any number of galaxies. Within a block the top-k is found in two
steps: the index rows of the block are split into ``_N_GROUPS`` slabs, row ``r`` of every slab
forms group ``r``, the maximum of each group is taken (an element-wise reduction of the slabs),
and only the ``k`` groups with the largest maxima can hold the ``k`` largest similarities (any
other group is beaten by ``k`` larger values), so an exact top-k runs on ``_N_GROUPS * k``
candidates instead of the whole block; once a query's running top-k is good, only the groups
whose maximum beats its k-th best are gathered.

The package: :class:`SimilaritySearch` (``_estimator``), the exact top-k kernels (``_topk``)
and the faiss adapter (``_faiss``). :func:`plot_neighbors` lives in :mod:`skphotoz.plotting`
and is re-exported here for code written before it moved.
"""

from ..plotting import plot_neighbors
from ._estimator import SimilaritySearch

__all__ = ["SimilaritySearch", "plot_neighbors"]
