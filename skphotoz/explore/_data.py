"""What the exploration page shows, without the web server: :class:`Explorer`.

Everything that costs more than a click is computed once when the explorer starts (the
embeddings when an embedder is given, the search index, the 2-D map, the anomaly scores, the
predicted redshifts when a model is given) and cached in a folder beside the archive, keyed by
what it was computed from, so that the next start on the same files is quick. The archive is
only read.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import secrets
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .._inputs import check_numeric
from .._validation import StrOptions, check_value, integer

#: Columns of the archive shown in the galaxy panel, in order, with the label shown.
CATALOGUE = (
    ("objid", "ObjID"),
    ("specobjid", "SpecObjID"),
    ("ra", "RA (deg)"),
    ("dec", "Dec (deg)"),
    ("redshift", "spectroscopic z"),
    ("redshift_err", "σ(z) spectroscopic"),
)
#: Most galaxies in a pasted objid list, and most neighbours or anomalies per request: bounds
#: the work one request can ask for.
MAX_LIST = 500
#: Rows of the archive read and embedded (or predicted) at a time at start-up.
CHUNK = 1024
#: The 2-D map is fitted on at most this many galaxies (then applied to all).
MAP_FIT_ROWS = 200_000
# Bumped when what is cached changes meaning, so that old cache files are not reused.
_CACHE_VERSION = 1


class ExploreError(Exception):
    """A request the explorer cannot answer: ``status`` is the HTTP status to answer with
    (400 for a malformed request, 404 for a galaxy that does not exist)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


_ROW = re.compile(r"[0-9]+")  # ASCII digits only: no signs, spaces, "_" or other scripts
_OBJID = re.compile(r"-?[0-9]+")
_IDS = ("objid", "specobjid")


def _finite(value, digits: int | None = None):
    """A JSON number: None for NaN or infinity (JSON has neither), rounded to ``digits``."""
    value = float(value)
    if not math.isfinite(value):
        return None
    return value if digits is None else round(value, digits)


def _file_key(path) -> str:
    """Identity of a file for the cache: its absolute path, size and modification time (the
    archive may be terabytes, so its bytes are not hashed)."""
    stat = os.stat(path)
    return f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}"


def _digest(*parts) -> str:
    h = hashlib.sha256(str(_CACHE_VERSION).encode())
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str((part.dtype, part.shape)).encode())
            h.update(np.ascontiguousarray(part).view(np.uint8).data)
        else:
            h.update(repr(part).encode())
    return h.hexdigest()[:20]


def _model_key(model) -> str:
    """A hash of a fitted model's state (joblib hashes its pickle, torch tensors included)."""
    import joblib

    return joblib.hash(model)


class _Cache:
    """``.npy`` files in ``folder`` named by a key. A folder that cannot be written (a
    read-only disk) is still read; nothing is read or written when ``folder`` is None."""

    def __init__(self, folder):
        self.folder = None if folder is None else Path(folder)
        self.writable = self.folder is not None
        if self.folder is not None:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                probe = self.folder / f".write-test-{os.getpid()}-{secrets.token_hex(4)}"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as error:
                self.writable = False
                found = self.folder.is_dir()
                warnings.warn(
                    f"cache_dir {os.fspath(folder)!r} cannot be written ({error.strerror}); "
                    + ("the cache files already there are read, but nothing new is kept. "
                       if found else "the map, scores and embeddings are recomputed at every "
                       "start. ")
                    + "Give another cache_dir (--cache-dir) to keep them.",
                    UserWarning,
                    stacklevel=3,
                )  # fmt: skip
                if not found:
                    self.folder = None

    def get(self, name: str, key: str, shape: tuple):
        """The cached array, or None if absent, unreadable or not of ``shape`` (None in
        ``shape``: any length on that axis): a damaged file is recomputed."""
        if self.folder is None:
            return None
        path = self.folder / f"{name}-{key}.npy"
        if not path.is_file():
            return None
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception:  # noqa: BLE001 (truncated, empty or foreign: recompute)
            return None
        if not isinstance(array, np.ndarray) or array.ndim != len(shape):
            return None
        if any(
            want is not None and got != want for got, want in zip(array.shape, shape, strict=True)
        ):
            return None
        if not np.issubdtype(array.dtype, np.floating):
            return None
        return array

    def put(self, name: str, key: str, array: np.ndarray) -> None:
        if not self.writable:
            return
        path = self.folder / f"{name}-{key}.npy"
        # A name of its own per writer: two explorers starting on one cache do not collide.
        partial = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
        try:
            with open(partial, "wb") as f:
                np.save(f, array)
            os.replace(partial, path)
        except OSError as error:
            warnings.warn(
                f"could not write the cache file {os.fspath(path)!r} ({error}).",
                UserWarning,
                stacklevel=3,
            )
            partial.unlink(missing_ok=True)


def _progress(iterable, total: int, description: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=description, unit="block", disable=not enabled)


class Explorer:
    """The data behind ``skphotoz explore``: an archive, its embeddings, a 2-D map, a
    similarity-search index, anomaly scores and (optionally) a photo-z model.

    Parameters
    ----------
    archive : str or path-like
        HDF5 archive (see :func:`skphotoz.data.open_archive`); only read.
    embeddings : array-like of shape (n_galaxies, d), str or path-like, optional
        One embedding per archive galaxy, or a ``.npy`` file of them (memory-mapped), as
        ``skphotoz embed`` writes. Exactly one of ``embeddings`` and ``embedder`` is needed.
    embedder : fitted estimator with ``transform``, optional
        Embeds the archive's stamps at start-up (e.g. a fitted :class:`skphotoz.MoCoEmbedder`);
        the embeddings are cached.
    model : fitted regressor, optional
        Photo-z model of the archive's stamps. With ``predict_pdf`` and ``redshift_bins_`` (a
        :class:`skphotoz.PhotoZRegressor`), the page shows each galaxy's redshift PDF; the
        map can be coloured by its predicted redshifts, computed at start-up and cached.
    deredden : bool, default=False
        Correct the stamps for Galactic extinction on read (as the embedder and model were
        fitted), for the models and the colour composites alike.
    crop : int, optional
        Centre-crop of the stamps given to the embedder and the model (the composites show
        the whole stamp).
    n_neighbors : int, default=8
        Neighbours shown per galaxy, and averaged by the anomaly score.
    map_method : {"auto", "pca", "umap"}, default="auto"
        2-D map of the embeddings. PCA is exact, fast and always available; UMAP (package
        ``umap-learn``) separates clusters better but is far slower (it is fitted on at most
        200,000 galaxies and cached). "auto": UMAP where its package is installed, else PCA.
    index : {"auto", "exact", "hnsw"}, default="auto"
        Similarity-search index: exact (blocked matrix products; a query costs one pass over
        all the embeddings, which stays interactive up to about a million galaxies), or faiss
        HNSW (approximate; a query visits a few hundred galaxies whatever the size; needs
        ``faiss``). "auto": HNSW above 10^6 galaxies where faiss is installed, else exact.
        The anomaly scores search every galaxy's neighbours once at start-up, which costs
        n² with the exact index. Measurements: docs/explore.md.
    cache_dir : str or path-like or None, default="auto"
        Folder of the cached embeddings, map, scores and predictions: "auto" puts it beside
        the archive (``ARCHIVE.explore``); None caches nothing.
    progress : bool, default=True
        Show progress bars while starting.

    Attributes
    ----------
    n_galaxies : int
    embeddings_ : ndarray of shape (n_galaxies, d)
    map_ : ndarray of shape (n_galaxies, 2), float32
    map_method_ : str
    scores_ : ndarray of shape (n_galaxies,)
        Mean similarity to the ``n_neighbors`` nearest galaxies (all the others in an archive
        of fewer); the lowest are the most unusual
        (:meth:`skphotoz.search.SimilaritySearch.score_samples`).
    search_ : SimilaritySearch
    z_phot_ : ndarray of shape (n_galaxies,) or None
        Predicted redshifts when a model is given.
    """

    def __init__(
        self,
        archive,
        *,
        embeddings=None,
        embedder=None,
        model=None,
        deredden: bool = False,
        crop: int | None = None,
        n_neighbors: int = 8,
        map_method: str = "auto",
        index: str = "auto",
        cache_dir="auto",
        progress: bool = True,
    ):
        check_value("Explorer", "n_neighbors", n_neighbors, [integer(1, MAX_LIST)])
        check_value("Explorer", "map_method", map_method, [StrOptions({"auto", "pca", "umap"})])
        check_value("Explorer", "index", index, [StrOptions({"auto", "exact", "hnsw"})])
        check_value("Explorer", "deredden", deredden, ["boolean"])
        if (embeddings is None) == (embedder is None):
            raise ValueError(
                "Explorer needs exactly one of embeddings and embedder; got "
                f"embeddings={'None' if embeddings is None else type(embeddings).__name__}, "
                f"embedder={'None' if embedder is None else type(embedder).__name__}."
            )
        from ..data import open_archive

        self.archive_path = Path(archive)
        self.n_neighbors = n_neighbors
        self.progress = progress
        self.model = model
        # Composites show the whole stamp; the models see it as they were fitted.
        self._display = open_archive(archive, deredden=deredden)
        self._images = (
            self._display.images
            if crop is None
            else open_archive(archive, deredden=deredden, crop=crop).images
        )
        self.n_galaxies = len(self._display.images)
        if self.n_galaxies < 2:
            raise ValueError(
                f"archive {os.fspath(archive)!r} holds {self.n_galaxies} galaxy; exploring "
                "needs at least 2 (a galaxy and a neighbour)."
            )
        self._columns: dict = {}  # see _column
        self._lock = threading.Lock()  # HDF5 reads and model calls, one at a time
        self._stamps: OrderedDict[int, bytes] = OrderedDict()
        self._archive_key = (_file_key(archive), bool(deredden), crop)
        if cache_dir == "auto":
            cache_dir = self.archive_path.with_name(self.archive_path.name + ".explore")
        self._cache = _Cache(cache_dir)

        self.embeddings_ = self._embeddings(embeddings, embedder)
        key = _digest(self.embeddings_)
        self.search_ = self._index(index)
        self.map_method_ = self._resolve_map(map_method)
        n = self.n_galaxies
        self.map_ = self._cached(
            "map", _digest(key, self.map_method_), self._fit_map, (n, 2)
        ).astype(np.float32)
        self.scores_ = self._cached(
            "scores", _digest(key, self.index_, n_neighbors), self._score, (n,)
        ).astype(np.float32)
        self.z_phot_ = None
        if model is not None:
            self.z_phot_ = self._cached(
                "zphot", _digest(self._archive_key, _model_key(model)), self._predict_all, (n,)
            )
        self._ids = self._objid_rows()
        self._rank()  # the anomaly order, once
        self._map_json = self._map_payload()

    # -- start-up --------------------------------------------------------------------------

    def _cached(self, name, key, compute, shape):
        found = self._cache.get(name, key, shape)
        if found is not None:
            return np.asarray(found)
        value = compute()
        self._cache.put(name, key, value)
        return value

    def _embeddings(self, embeddings, embedder) -> np.ndarray:
        if embedder is not None:
            key = _digest(self._archive_key, _model_key(embedder))
            found = self._cache.get("embeddings", key, (self.n_galaxies, None))
            if found is not None:
                return np.asarray(found, dtype=np.float32)
            spans = [(a, min(a + CHUNK, self.n_galaxies)) for a in range(0, self.n_galaxies, CHUNK)]
            blocks = [
                np.asarray(embedder.transform(np.asarray(self._images[a:b])), dtype=np.float32)
                for a, b in _progress(spans, len(spans), "embedding", self.progress)
            ]
            X = np.concatenate(blocks)
            self._cache.put("embeddings", key, X)
        elif isinstance(embeddings, str | os.PathLike):
            from ..data import load_embeddings

            if not os.path.isfile(embeddings):
                raise FileNotFoundError(f"embeddings: no such file {os.fspath(embeddings)!r}.")
            X = load_embeddings(embeddings)
        else:
            X = np.asarray(embeddings)
        if X.ndim != 2 or X.shape[0] != self.n_galaxies or X.shape[1] < 2:
            raise ValueError(
                f"embeddings must hold one row of at least 2 numbers per archive galaxy, shape "
                f"({self.n_galaxies}, d) for {os.fspath(self.archive_path)!r}; got shape "
                f"{X.shape}. Were they computed from another archive?"
            )
        check_numeric(X, "embeddings")
        X = np.asarray(X, dtype=np.float32)
        if not np.isfinite(X).all():
            bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
            raise ValueError(
                f"embeddings hold NaN or infinite values in {bad.size} row(s), e.g. row "
                f"{int(bad[0])}; embed those galaxies again."
            )
        zero = np.flatnonzero(~np.any(X, axis=1))
        if zero.size:
            raise ValueError(
                f"embeddings hold {zero.size} row(s) of zeros, e.g. row {int(zero[0])}: they "
                "have no direction, so no similarity to any galaxy; embed those galaxies again."
            )
        return X

    def _index(self, index: str):
        from ..search import SimilaritySearch

        if index == "auto":
            index = "exact"
            if self.n_galaxies > 1_000_000:
                try:
                    import faiss  # noqa: F401

                    index = "hnsw"
                except ImportError:
                    pass
        self.index_ = index
        if index == "hnsw":
            search = SimilaritySearch(self.n_neighbors, backend="faiss", index="hnsw")
        else:
            search = SimilaritySearch(self.n_neighbors, device="cpu")
        return search.fit(self.embeddings_)

    def _resolve_map(self, method: str) -> str:
        if method == "pca":
            return method
        try:
            import umap  # noqa: F401
        except ImportError as error:
            if method == "umap":
                raise ImportError(
                    "map_method='umap' (--map umap) needs the package umap-learn (pip install "
                    f"umap-learn), which could not be imported ({error}); map_method='pca' "
                    "needs nothing more."
                ) from None
            if not (isinstance(error, ModuleNotFoundError) and error.name == "umap"):
                warnings.warn(
                    f"umap-learn is installed but cannot be imported ({error}); the map is "
                    "drawn with PCA.",
                    UserWarning,
                    stacklevel=3,
                )
            return "pca"
        return "umap"

    def _unit(self, X: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        return X / np.maximum(norms, 1e-12)

    def _fit_map(self) -> np.ndarray:
        # Cosine similarity is the search's measure: the map is of the unit vectors.
        rng = np.random.default_rng(0)
        n = self.n_galaxies
        fit_rows = np.sort(rng.choice(n, MAP_FIT_ROWS, replace=False)) if n > MAP_FIT_ROWS else None
        sample = self._unit(self.embeddings_ if fit_rows is None else self.embeddings_[fit_rows])
        if self.map_method_ == "umap":
            import umap

            reducer = umap.UMAP(n_components=2, random_state=0)
        else:
            from sklearn.decomposition import PCA

            reducer = PCA(n_components=2, svd_solver="full" if n < 1000 else "randomized",
                          random_state=0)  # fmt: skip
        with warnings.catch_warnings():
            # umap-learn warns that a seed makes it run on one thread: that is the point.
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            fitted = reducer.fit_transform(sample)
        if fit_rows is None:
            return np.asarray(fitted, dtype=np.float32)
        out = np.empty((n, 2), dtype=np.float32)
        for a in range(0, n, 65536):
            out[a : a + 65536] = reducer.transform(self._unit(self.embeddings_[a : a + 65536]))
        return out

    def _score(self) -> np.ndarray:
        """Mean similarity of each galaxy to its ``n_neighbors`` nearest others, as
        :meth:`SimilaritySearch.score_samples` gives it, searched in blocks of galaxies so that
        a progress bar can follow this step (the only one whose cost grows as n²)."""
        n = self.n_galaxies
        k = min(self.n_neighbors, n - 1)  # a small archive: all the other galaxies
        scores = np.empty(n, dtype=np.float32)
        block = 4096
        spans = [(a, min(a + block, n)) for a in range(0, n, block)]
        for a, b in _progress(spans, len(spans), "anomaly scores", self.progress):
            similarities, indices = self.search_.kneighbors(self.embeddings_[a:b], k + 1)
            # Each galaxy finds itself: drop it (or, where ties hid it, the last neighbour).
            own = indices == np.arange(a, b)[:, None]
            own[~own.any(axis=1), -1] = True
            kept = similarities[~own].reshape(b - a, k)
            scores[a:b] = kept.astype(np.float64).mean(axis=1)
        return scores

    def _predict_all(self) -> np.ndarray:
        """Every galaxy's predicted redshift; a galaxy the model refuses (a stamp with NaN
        pixels, say) is NaN, with one warning that counts them."""
        n = self.n_galaxies
        spans = [(a, min(a + CHUNK, n)) for a in range(0, n, CHUNK)]
        z = np.full(n, np.nan)
        refused: list[int] = []
        reason = ""
        for a, b in _progress(spans, len(spans), "predicting", self.progress):
            try:
                z[a:b] = self._predicted(np.asarray(self._images[a:b]), b - a)
                continue
            except ValueError as error:  # one galaxy at a time, to keep the others
                block_error = error
            before = len(refused)
            for row in range(a, b):
                try:
                    z[row] = self._predicted(np.asarray(self._images[row : row + 1]), 1)[0]
                except ValueError as error:
                    refused.append(row)
                    reason = str(error).split("\n")[0]
            if len(refused) == before:  # not the fault of one galaxy
                raise block_error
        if refused:
            warnings.warn(
                f"the model cannot predict {len(refused)} galaxy(ies), e.g. row {refused[0]} "
                f"({reason[:200]}); they have no predicted redshift on the page.",
                UserWarning,
                stacklevel=3,
            )
        return z

    def _predicted(self, stamps: np.ndarray, n: int) -> np.ndarray:
        z = np.asarray(self.model.predict(stamps))
        if z.shape != (n,) or not np.issubdtype(z.dtype, np.number):
            raise TypeError(
                f"model.predict must return one redshift per galaxy, shape ({n},); "
                f"{type(self.model).__name__}.predict returned {z.dtype} of shape {z.shape}."
            )
        return z.astype(np.float64)

    def _objid_rows(self) -> dict[int, int] | None:
        ids = self._display.get("objid")
        if ids is None or not (ids != -1).any():
            return None
        rows: dict[int, int] = {}
        for row, objid in enumerate(ids.tolist()):
            if objid != -1:  # -1: no ObjID (what the archive writers store for none)
                rows.setdefault(int(objid), row)  # a repeated objid: its first row
        return rows

    def _map_payload(self) -> bytes:
        def numbers(values, digits):
            values = np.asarray(values, dtype=np.float64)
            return [None if not math.isfinite(v) else round(v, digits) for v in values.tolist()]

        z_spec = self._column("redshift")
        payload = {
            "n": self.n_galaxies,
            "method": self.map_method_,
            "x": numbers(self.map_[:, 0], 5),
            "y": numbers(self.map_[:, 1], 5),
            "z_spec": None if z_spec is None else numbers(z_spec, 4),
            "z_phot": None if self.z_phot_ is None else numbers(self.z_phot_, 4),
        }
        return json.dumps(payload, separators=(",", ":")).encode()

    def _column(self, name: str):
        """The archive's column ``name``, or None where it holds no values (writers fill an
        absent column with NaN or -1); decided once per column, not per request."""
        if name not in self._columns:
            values = self._display.get(name)
            if values is not None and np.issubdtype(values.dtype, np.floating):
                values = values if np.isfinite(values).any() else None
            elif values is not None:
                values = values if (values != -1).any() else None
            self._columns[name] = values
        return self._columns[name]

    # -- answers ---------------------------------------------------------------------------

    def info(self) -> dict:
        """What the page needs to know at load time."""
        return {
            "archive": self.archive_path.name,
            "n_galaxies": self.n_galaxies,
            "n_features": int(self.embeddings_.shape[1]),
            "n_neighbors": self.n_neighbors,
            "map_method": self.map_method_,
            "index": self.index_,
            "has_objid": self._ids is not None,
            "has_z_spec": self._column("redshift") is not None,
            "has_model": self.model is not None,
            "has_pdf": self._has_pdf(),
            "max_list": MAX_LIST,
        }

    def map_json(self) -> bytes:
        """The 2-D map and the redshifts to colour it by, as JSON bytes (built once)."""
        return self._map_json

    def check_row(self, row) -> int:
        """``row`` as an archive row, or an :class:`ExploreError` (404) saying why not."""
        if isinstance(row, str):
            if not _ROW.fullmatch(row):
                raise ExploreError(f"row must be a whole number ≥ 0; got {row[:40]!r}.")
            if len(row) > 18:
                raise ExploreError(
                    f"row {row[:20]}… is out of range: {self.archive_path.name} holds "
                    f"{self.n_galaxies} galaxies (rows 0 to {self.n_galaxies - 1}).",
                    status=404,
                )
            row = int(row)
        if not isinstance(row, int | np.integer) or isinstance(row, bool):
            raise ExploreError(f"row must be a whole number; got {row!r}.")
        if not 0 <= row < self.n_galaxies:
            raise ExploreError(
                f"row {row} is out of range: {self.archive_path.name} holds {self.n_galaxies} "
                f"galaxies (rows 0 to {self.n_galaxies - 1}).",
                status=404,
            )
        return int(row)

    def row_of(self, objid) -> int:
        """The archive row of an SDSS ObjID (its first row if repeated)."""
        if self._ids is None:
            raise ExploreError(f"{self.archive_path.name} has no ObjID column; give rows instead.")
        text = str(objid).strip()
        if not _OBJID.fullmatch(text):
            raise ExploreError(f"an objid is a whole number; got {text[:40]!r}.")
        key = int(text) if len(text) <= 20 else None
        if key is None or key == -1 or key not in self._ids:
            raise ExploreError(f"objid {text[:40]} is not in {self.archive_path.name}.", status=404)
        return self._ids[key]

    def catalogue(self, row: int) -> dict:
        """The archive's values of one galaxy (those the archive holds). ObjIDs are strings:
        SDSS's 19-digit ObjIDs do not survive JavaScript's numbers."""
        values: dict = {"row": row}
        for name, _ in CATALOGUE:
            column = self._column(name)
            if column is None:
                continue
            if name in _IDS:
                if int(column[row]) != -1:
                    values[name] = str(int(column[row]))
            else:
                values[name] = _finite(column[row])
        extinction = self._display.get("extinction")
        if extinction is not None:
            values["extinction"] = [_finite(v, 4) for v in extinction[row]]
        if self.z_phot_ is not None:
            values["z_phot"] = _finite(self.z_phot_[row])
        values["anomaly_rank"] = int(self._rank()[row]) + 1
        return values

    def _order(self) -> np.ndarray:
        """Rows from the most unusual to the most common (computed once)."""
        if not hasattr(self, "_rarest_first"):
            self._rarest_first = np.argsort(self.scores_, kind="stable")
        return self._rarest_first

    def _rank(self) -> np.ndarray:
        if not hasattr(self, "_ranks"):
            ranks = np.empty(self.n_galaxies, dtype=np.int64)
            ranks[self._order()] = np.arange(self.n_galaxies)
            self._ranks = ranks
        return self._ranks

    def neighbours(self, row: int, n_neighbors: int | None = None) -> list[dict]:
        """The ``n_neighbors`` galaxies most similar to ``row`` (itself excluded), most similar
        first: row, similarity, objid and redshifts of each."""
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        k = min(k, self.n_galaxies - 1)
        if k < 1:
            return []
        query = self.embeddings_[row : row + 1]
        similarities, indices = self.search_.kneighbors(query, n_neighbors=k + 1)
        pairs = [
            (int(i), float(s)) for i, s in zip(indices[0], similarities[0], strict=True) if i != row
        ][:k]
        return [self._card(i, similarity=s) for i, s in pairs]

    def _card(self, row: int, **extra) -> dict:
        card = {"row": row, **extra}
        if self._ids is not None and int(self._display.objid[row]) != -1:
            card["objid"] = str(int(self._display.objid[row]))
        z_spec = self._column("redshift")
        if z_spec is not None and math.isfinite(float(z_spec[row])):
            card["z_spec"] = float(z_spec[row])
        if self.z_phot_ is not None and math.isfinite(float(self.z_phot_[row])):
            card["z_phot"] = float(self.z_phot_[row])
        return card

    def anomalies(self, n: int) -> list[dict]:
        """The ``n`` most unusual galaxies: lowest mean similarity to their neighbours first."""
        order = self._order()[:n]
        return [self._card(int(r), score=_finite(self.scores_[r], 6)) for r in order]

    def lookup(self, text: str) -> dict:
        """Galaxies of a pasted list of ObjIDs (or rows with ``row:`` in front), separated by
        spaces, commas, semicolons or new lines: those found, and each token not found with
        why."""
        tokens = [t for t in re.split(r"[\s,;]+", text or "") if t]
        if not tokens:
            raise ExploreError("the list is empty; paste ObjIDs (or row:N) separated by spaces.")
        if len(tokens) > MAX_LIST:
            raise ExploreError(f"at most {MAX_LIST} galaxies per list; got {len(tokens)}.")
        found, errors = [], []
        for token in tokens:
            try:
                if token.lower().startswith("row:"):
                    row = self.check_row(token[4:])
                else:
                    row = self.row_of(token)
            except ExploreError as error:
                errors.append({"token": token[:40], "error": str(error)})
            else:
                found.append(self._card(row))
        return {"galaxies": found, "errors": errors}

    def _has_pdf(self) -> bool:
        return callable(getattr(self.model, "predict_pdf", None)) and hasattr(
            self.model, "redshift_bins_"
        )

    def pdf(self, row: int) -> dict | None:
        """The model's redshift PDF of ``row``: bin centres, probability densities (per unit
        redshift), the point estimate and the central 68 % interval; None
        without a model that gives PDFs. A galaxy the model refuses (a stamp with NaN pixels,
        say) gets ``{"error": why}``."""
        if not self._has_pdf():
            return None
        try:
            with self._lock:
                stamp = np.asarray(self._images[row : row + 1])
                z_phot, probability = self.model.predict(stamp, return_pdf=True)
        except ValueError as error:
            return {"error": f"the model cannot predict this galaxy: {str(error)[:300]}"}
        from ..metrics import pdf_quantiles

        edges = np.asarray(self.model.redshift_bins_, dtype=np.float64)
        # The 68 % interval from the same PDF (as predict_interval computes it), without a
        # second pass of the network.
        low, high = pdf_quantiles(probability, edges, [0.16, 0.84])[0]
        density = np.asarray(probability[0], dtype=np.float64) / np.diff(edges)
        result = {
            "z": [_finite(v, 5) for v in (edges[:-1] + edges[1:]) / 2],
            "density": [_finite(v, 6) for v in density],
            "z_phot": _finite(z_phot[0]),
        }
        result["interval_68"] = [_finite(low), _finite(high)]
        return result

    def galaxy(self, row: int) -> dict:
        """Everything the galaxy panel shows: catalogue values, neighbours and PDF."""
        row = self.check_row(row)
        return {
            "catalogue": self.catalogue(row),
            "neighbours": self.neighbours(row),
            "pdf": self.pdf(row),
        }

    def stamp_png(self, row: int) -> bytes:
        """The asinh colour composite of ``row`` (i, r, g as red, green, blue) as PNG bytes;
        the last 2,048 rendered are kept in memory."""
        row = self.check_row(row)
        with self._lock:
            cached = self._stamps.get(row)
            if cached is not None:
                self._stamps.move_to_end(row)
                return cached
            stamp = np.asarray(self._display.images[row])
        from PIL import Image

        from ..data import to_rgb

        bands = (3, 2, 1) if stamp.shape[0] >= 4 else tuple(range(min(3, stamp.shape[0])))
        if len(bands) < 3:  # one or two bands: shown grey
            bands = (0, 0, 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NaN pixels are shown black
            rgb = to_rgb(stamp, bands=bands)
        buffer = io.BytesIO()
        Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(buffer, format="PNG")
        data = buffer.getvalue()
        with self._lock:
            self._stamps[row] = data
            while len(self._stamps) > 2048:
                self._stamps.popitem(last=False)
        return data
