"""Look at the galaxies: a local web page over an archive, its embeddings and a photo-z model.

``skphotoz explore ARCHIVE --embeddings emb.npy [--model photoz.skops]`` serves one page: a
2-D map of the embeddings coloured by redshift (pan with the mouse, zoom with the wheel); click
a galaxy, or type its row or ObjID, to see its colour composite, its nearest neighbours with
their similarities, its catalogue values and its redshift PDF; a gallery of the most unusual
galaxies; and a gallery of a pasted list of ObjIDs.

The package: :class:`Explorer` (``_data``: everything the page shows, computed and cached at
start-up, no web library), :func:`create_app`, :class:`Server` and :func:`serve` (``_app``: the
Flask application) and the page itself (``static/``: HTML, CSS and plain JavaScript, no
third-party scripts, nothing loaded from the network).
"""

from ._app import Server, create_app, serve
from ._data import ExploreError, Explorer

__all__ = ["Explorer", "ExploreError", "Server", "create_app", "serve"]
