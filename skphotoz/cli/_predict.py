"""The commands that use a fitted model on an archive: ``predict``, ``embed`` and ``search``
(whose engine, :func:`run_search_cli`, is also callable from Python)."""

from __future__ import annotations

import contextlib
import os
import warnings

from .. import __version__
from ._io import (
    CSVOutput,
    HDF5Output,
    atomic_output,
    check_input_file,
    check_output_path,
    has_column,
    load_model,
    open_for_model,
    output_kind,
    progress_bar,
    quantile_names,
    row_chunks,
    save_figure,
    set_runtime,
)


def predict(args) -> int:
    import numpy as np

    check_output_path(args.output, inputs={"MODEL": args.model, "ARCHIVE": args.archive})
    needed = "a fitted PhotoZRegressor (from `skphotoz fit-photoz`) is needed"
    model = load_model(
        args.model, "MODEL", trusted=args.trust, needs=("predict", "predict_pdf"), expected=needed
    )
    if not hasattr(model, "redshift_bins_"):
        raise ValueError(f"MODEL {args.model!r} holds a {type(model).__name__}; {needed}.")
    set_runtime(model, args)
    archive, deredden, crop = open_for_model(
        model, args.model, args.archive, deredden=args.deredden, crop=args.crop
    )
    images = archive.images
    from ..metrics import pdf_quantiles

    quantiles = list(args.quantiles)
    q_names = quantile_names(quantiles)
    columns = {"row": "int64"}
    if has_column(archive, "objid"):
        columns["objid"] = "int64"
    columns["z_pred"] = "float64"
    columns.update({name: "float64" for name in q_names})
    if has_column(archive, "redshift"):
        columns["redshift"] = "float64"
    n = len(images)
    kind = output_kind(args.output)
    writer_class = CSVOutput if kind == "csv" else HDF5Output
    attrs = {
        "model": os.path.abspath(args.model),
        "archive": os.path.abspath(args.archive),
        "quantiles": np.asarray(quantiles, dtype=np.float64),
        "deredden": deredden,
        "crop": -1 if crop is None else crop,
        "skphotoz_version": __version__,
    }
    spans = row_chunks(n, args.chunk_size)
    split = _inference_split(model)

    def predicted(start: int, stop: int) -> dict | None:
        """The output columns of rows [start, stop) (None for none)."""
        if stop <= start:
            return None
        X = np.asarray(images[start:stop])
        values = {"row": np.arange(start, stop)}
        if "objid" in columns:
            values["objid"] = archive.objid[start:stop]
        if quantiles or args.pdf:  # one pass of the network for both
            values["z_pred"], pdf = model.predict(X, return_pdf=True)
            if quantiles:
                q = pdf_quantiles(pdf, model.redshift_bins_, quantiles)
                values.update({name: q[:, j] for j, name in enumerate(q_names)})
            if args.pdf:
                values["pdf"] = pdf.astype(np.float32)
        else:
            values["z_pred"] = model.predict(X)
        if "redshift" in columns:
            values["redshift"] = archive.redshift[start:stop]
        return values

    with _rank0_output(args) as partial:
        writer = None
        if partial is not None:
            pdf_bins = model.redshift_bins_ if args.pdf else None
            writer = writer_class(partial, columns, n, pdf_bins=pdf_bins, attrs=attrs)
        try:
            for start, stop in progress_bar(args, spans, len(spans), "predicting"):
                values = split(start, stop, predicted)
                if writer is not None:
                    writer.write(start, values)
        finally:
            if writer is not None:
                writer.close()
    if not args.main_process:
        return 0
    extra = f", quantiles {', '.join(q_names)}" if quantiles else ""
    extra += ", the PDFs" if args.pdf else ""
    print(f"wrote redshifts of {n} galaxies to {args.output} (z_pred{extra})")
    return 0


def embed(args) -> int:
    import numpy as np

    check_output_path(args.output, inputs={"MODEL": args.model, "ARCHIVE": args.archive})
    embedder = load_model(args.model, "MODEL", trusted=args.trust, needs=("transform",))
    set_runtime(embedder, args)
    archive, _, _ = open_for_model(
        embedder, args.model, args.archive, deredden=args.deredden, crop=args.crop
    )
    images = archive.images
    n = len(images)
    spans = row_chunks(n, args.chunk_size)
    kind = output_kind(args.output)
    out = handle = None
    split = _inference_split(embedder)

    def embedded(start: int, stop: int):
        if stop <= start:
            return None
        return embedder.transform(np.asarray(images[start:stop]))

    with _rank0_output(args) as partial:
        try:
            for start, stop in progress_bar(args, spans, len(spans), "embedding"):
                block = split(start, stop, embedded)
                if partial is None:  # rank > 0 of torchrun: rank 0 writes
                    continue
                if out is None:  # the width is known after the first chunk
                    shape = (n, block.shape[1])
                    if kind == "hdf5":
                        import h5py

                        handle = h5py.File(partial, "w")
                        out = handle.create_dataset(
                            "embeddings",
                            shape=shape,
                            dtype=block.dtype,
                            chunks=(min(n, max(1, (1 << 20) // (4 * shape[1]))), shape[1]),
                            fletcher32=True,
                        )
                        if has_column(archive, "objid"):
                            handle.create_dataset("objid", data=archive.objid, fletcher32=True)
                        handle.attrs["model"] = os.path.abspath(args.model)
                        handle.attrs["archive"] = os.path.abspath(args.archive)
                    else:
                        handle = out = np.lib.format.open_memmap(
                            partial, mode="w+", dtype=block.dtype, shape=shape
                        )
                out[start:stop] = block
        finally:
            if kind == "hdf5" and handle is not None:
                handle.close()
            elif handle is not None:
                handle.flush()
                del handle, out
    if args.main_process:
        print(f"saved ({n}, {shape[1]}) embeddings to {args.output}")
    return 0


def _inference_split(model):
    """``split(start, stop, compute)``: the output of ``compute`` for rows [start, stop).
    Under torchrun, each rank computes its share of the rows (whole batches of ``model``, so
    each batch is what it is in one process) and rank 0 receives them joined (the other ranks
    get None); otherwise ``compute(start, stop)``."""
    from ..nn import distributed

    if not distributed.launched_by_torchrun():
        return lambda start, stop, compute: compute(start, stop)
    distributed.init_from_env()  # gloo: the shares travel as CPU arrays
    step = getattr(model, "inference_batch_size", 1)

    def split(start, stop, compute):
        a, b = distributed.share_of_rows(start, stop, step)
        return distributed.gather_rows(compute(a, b))

    return split


@contextlib.contextmanager
def _rank0_output(args):
    """:func:`atomic_output` of ``args.output`` on rank 0 (the partial file's name); None on
    the other ranks of a torchrun launch, which write nothing."""
    if not args.main_process:
        yield None
        return
    with atomic_output(args.output) as partial:
        yield partial


def _query_row(archive, archive_path, query_index, objid) -> int:
    """The archive row of the query: ``query_index``, or the row whose ObjID is ``objid``."""
    import numpy as np

    if objid is None:
        return query_index
    ids = archive.get("objid")
    if ids is None or np.all(ids == -1):
        raise ValueError(
            f"objid: archive {os.fspath(archive_path)!r} has no ObjID column"
            + (" (all -1: none were given when it was written)" if ids is not None else "")
            + "; give the row of the query instead."
        )
    rows = np.flatnonzero(ids == objid)
    if len(rows) == 0:
        raise ValueError(f"objid {objid} is not in archive {os.fspath(archive_path)!r}.")
    if len(rows) > 1:
        warnings.warn(
            f"objid {objid} appears in rows {rows.tolist()} of the archive; the first is used.",
            UserWarning,
            stacklevel=2,
        )
    return int(rows[0])


def run_search_cli(
    archive_path,
    query_index: int | None = None,
    *,
    objid: int | None = None,
    n_neighbors: int = 10,
    embeddings_path=None,
    embedder_path=None,
    output_png=None,
    crop: int | None = None,
    deredden: bool | None = None,
    metric: str = "cosine",
    backend: str = "torch",
    device: str = "auto",
    quiet: bool = False,
    trust: bool = False,
):
    """Search an HDF5 archive for the galaxies most similar to one of its galaxies.

    The engine behind ``skphotoz search``: it indexes the archive's embeddings (read from a
    ``.npy`` file, or computed with a pickled fitted embedder), prints the neighbours and
    optionally draws them.

    Parameters
    ----------
    archive_path : str or path-like
        HDF5 archive (see :func:`skphotoz.data.open_archive`).
    query_index : int, optional
        Row of the query galaxy in the archive; exactly one of ``query_index`` and ``objid``
        is needed.
    objid : int, optional
        SDSS ObjID of the query galaxy, looked up in the archive's ``objid`` column.
    n_neighbors : int, default=10
    embeddings_path : str or path-like, optional
        ``.npy`` file of shape (n_samples, d), one row per archive galaxy, memory-mapped.
    embedder_path : str or path-like, optional
        Model file (skops, or a joblib pickle with ``trust``) of a fitted transformer (e.g.
        :class:`skphotoz.MoCoEmbedder`) that embeds the archive images; used when
        ``embeddings_path`` is not given. The archive is
        opened with the dereddening and crop the embedder was fitted with (its
        ``preprocessing_``).
    output_png : str or path-like, optional
        Where to save the figure of :func:`skphotoz.plotting.plot_neighbors`.
    crop : int, optional
        Centre-crop of the archive stamps (64 for the published 107-px archive), for the
        embedder and the figure. With an embedder that remembers its preprocessing, a value
        that contradicts it is an error.
    deredden : bool, optional
        Deredden the stamps on read; like ``crop``, the embedder's own setting by default.
    metric, backend, device : str
        See :class:`skphotoz.search.SimilaritySearch`.
    quiet : bool, default=False
        Print nothing (the neighbours are in the returned Bunch).
    trust : bool, default=False
        Allow ``embedder_path`` to be a pickle, which runs any code it carries when loaded
        (``--trust``).

    Returns
    -------
    sklearn.utils.Bunch
        ``query_index`` (the query's row), ``indices`` and ``similarities`` of the neighbours
        (the query excluded), ``redshift`` of the neighbours when the archive has it, and
        ``query_redshift``.
    """
    import numpy as np
    from sklearn.utils import Bunch

    from .._validation import check_value, integer

    if (embeddings_path is None) == (embedder_path is None):
        raise ValueError(
            "exactly one of embeddings_path and embedder_path is needed; got "
            f"embeddings_path={embeddings_path!r}, embedder_path={embedder_path!r}."
        )
    if (query_index is None) == (objid is None):
        raise ValueError(
            "exactly one of query_index and objid is needed; got "
            f"query_index={query_index!r}, objid={objid!r}."
        )
    embedder = None
    if embedder_path is not None:
        embedder = load_model(embedder_path, "embedder", trusted=trust, needs=("transform",))
    archive, deredden, crop = open_for_model(
        embedder, embedder_path, archive_path, deredden=deredden, crop=crop
    )
    n = archive.images.shape[0]
    query_index = _query_row(archive, archive_path, query_index, objid)
    check_value("run_search_cli", "query_index", query_index, [integer(0)])
    if not 0 <= query_index < n:
        raise ValueError(f"query_index must be in [0, {n - 1}]; got {query_index}.")
    check_value("run_search_cli", "n_neighbors", n_neighbors, [integer(1)])
    if n_neighbors > n - 1:
        import warnings

        warnings.warn(
            f"n_neighbors (-k) is {n_neighbors}, but {os.fspath(archive_path)!r} holds only "
            f"{n - 1} galaxies besides the query: listing all {n - 1}.",
            UserWarning,
            stacklevel=2,
        )
        n_neighbors = n - 1
    if embeddings_path is not None:
        check_input_file(embeddings_path, "embeddings")
        from ..data import load_embeddings

        X = load_embeddings(embeddings_path)
        if X.ndim != 2 or X.shape[0] != n:
            raise ValueError(
                f"embeddings_path must hold one row per archive galaxy ({n}); got shape {X.shape}."
            )
    else:
        X = archive.images
    from ..search import SimilaritySearch

    search = SimilaritySearch(embedder=embedder, metric=metric, backend=backend, device=device)
    search.fit(X)
    k = min(n_neighbors + 1, n)
    values, rows = search.kneighbors(np.asarray(X[[query_index]]), n_neighbors=k)
    keep = rows[0] != query_index
    result = Bunch(
        query_index=query_index,
        indices=rows[0][keep][:n_neighbors],
        similarities=values[0][keep][:n_neighbors],
    )
    redshift = archive.get("redshift")
    result.query_redshift = None if redshift is None else float(redshift[query_index])
    result.redshift = None if redshift is None else redshift[result.indices]
    if not quiet:
        z_query = "" if redshift is None else f"  z={result.query_redshift:.4f}"
        of_objid = "" if objid is None else f" (objid {objid})"
        print(f"query #{query_index}{of_objid}{z_query}")
        print(f"{'rank':>4} {'index':>10} {'similarity':>10}" + ("" if redshift is None else "  z"))
        pairs = zip(result.indices, result.similarities, strict=True)
        for rank, (row, value) in enumerate(pairs, 1):
            z = "" if redshift is None else f"  {redshift[row]:.4f}"
            print(f"{rank:>4} {row:>10} {value:>10.4f}{z}")
    if output_png is not None:
        from ..plotting import plot_neighbors

        fig = plot_neighbors(
            archive.images, query_index, result.indices, result.similarities, redshift=redshift
        )
        save_figure(fig, output_png, dpi=120)
    return result


def search(args) -> int:
    if args.plot is not None:
        check_output_path(args.plot, "--plot")
    run_search_cli(
        args.archive,
        args.query,
        objid=args.objid,
        n_neighbors=args.n_neighbors,
        embeddings_path=args.embeddings,
        embedder_path=args.model,
        output_png=args.plot,
        crop=args.crop,
        deredden=args.deredden,
        metric=args.metric,
        backend=args.backend,
        device=args.device,
        trust=args.trust,
    )
    return 0
