"""Command line: ``skphotoz demo|simulate|pretrain|embed``."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def demo(args) -> int:
    """The showcase on the embedded data; every number printed is computed here and now."""
    from ._demo import run_demo

    mode = "quick" if args.quick else "full" if args.full else "default"
    run_demo(mode, out=args.out, threads=args.threads)
    return 0


def _save_figure(fig, path, dpi: int) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def simulate(args) -> int:
    from .datasets import write_sdss_galaxies

    tick = time.perf_counter()
    write_sdss_galaxies(
        args.output, args.n, random_state=args.seed, stamp_size=args.stamp_size,
        chunk_size=args.chunk_size,
    )  # fmt: skip
    elapsed = time.perf_counter() - tick
    print(f"wrote {args.n} galaxies to {args.output} in {elapsed:.1f} s ({args.n / elapsed:.0f}/s)")
    return 0


def pretrain(args) -> int:
    import joblib

    from . import MOCO_PRESETS, MoCoEmbedder
    from .data import open_archive

    params = dict(MOCO_PRESETS[args.preset]) if args.preset else {}
    names = ("backbone", "stem", "n_epochs", "batch_size", "device", "crop_size")
    for name in (*names, "photometry_weight", "redshift_weight"):
        value = getattr(args, name)
        if value is not None:
            params[name] = value
    archive = open_archive(args.archive, deredden=args.deredden)
    embedder = MoCoEmbedder(
        **params, random_state=args.seed, checkpoint_dir=args.checkpoint_dir, verbose=True,
        num_workers=args.num_workers,
    )  # fmt: skip
    labels = None
    if args.redshift_weight:  # semi-supervised: the archive's redshifts, NaN = unlabelled
        if "redshift" not in archive:
            raise SystemExit(f"--redshift-weight: {args.archive} has no redshift column.")
        labels = archive.redshift
    embedder.fit(archive.images, labels)
    joblib.dump(embedder, args.output)
    print(f"saved {args.output}; final loss {embedder.history_[-1]['loss']:.4f}")
    return 0


def embed(args) -> int:
    import joblib

    from .data import open_archive

    embedder = joblib.load(args.model)
    archive = open_archive(args.archive, deredden=args.deredden)
    embeddings = embedder.transform(archive.images)
    np.save(args.output, embeddings)
    print(f"saved {embeddings.shape} embeddings to {args.output}")
    return 0


def run_search_cli(
    archive_path,
    query_index: int,
    *,
    n_neighbors: int = 10,
    embeddings_path=None,
    embedder_path=None,
    output_png=None,
    crop: int | None = None,
    metric: str = "cosine",
    backend: str = "torch",
    device: str = "auto",
):
    """Search an HDF5 archive for the galaxies most similar to one of its galaxies.

    The engine behind ``skphotoz search``: it indexes the archive's embeddings (read from a
    ``.npy`` file, or computed with a pickled fitted embedder), prints the neighbours and
    optionally draws them.

    Parameters
    ----------
    archive_path : str or path-like
        HDF5 archive (see :func:`skphotoz.data.open_archive`).
    query_index : int
        Row of the query galaxy in the archive.
    n_neighbors : int, default=10
    embeddings_path : str or path-like, optional
        ``.npy`` file of shape (n_samples, d), one row per archive galaxy, memory-mapped.
    embedder_path : str or path-like, optional
        ``joblib`` pickle of a fitted transformer (e.g. :class:`skphotoz.MoCoEmbedder`) that
        embeds the archive images; used when ``embeddings_path`` is not given.
    output_png : str or path-like, optional
        Where to save the figure of :func:`skphotoz.plotting.plot_neighbors`.
    crop : int, optional
        Centre-crop of the archive stamps (64 for the published 107-px archive), for the
        embedder and the figure.
    metric, backend, device : str
        See :class:`skphotoz.search.SimilaritySearch`.

    Returns
    -------
    sklearn.utils.Bunch
        ``indices`` and ``similarities`` of the neighbours (the query excluded), ``redshift``
        of the neighbours when the archive has it, and ``query_redshift``.
    """
    import joblib
    from sklearn.utils import Bunch

    from ._validation import check_params, integer
    from .data import open_archive
    from .plotting import plot_neighbors
    from .search import SimilaritySearch

    if (embeddings_path is None) == (embedder_path is None):
        raise ValueError(
            "exactly one of embeddings_path and embedder_path is needed; got "
            f"embeddings_path={embeddings_path!r}, embedder_path={embedder_path!r}."
        )
    archive = open_archive(archive_path, crop=crop)
    n = archive.images.shape[0]
    check_params("run_search_cli", {"query_index": [integer(0)]}, query_index=query_index)
    if not 0 <= query_index < n:
        raise ValueError(f"query_index must be in [0, {n - 1}]; got {query_index}.")
    if embeddings_path is not None:
        X, embedder = np.load(embeddings_path, mmap_mode="r"), None
        if X.shape[0] != n:
            raise ValueError(
                f"embeddings_path must hold one row per archive galaxy ({n}); got "
                f"{X.shape[0]} rows."
            )
    else:
        X, embedder = archive.images, joblib.load(embedder_path)
    search = SimilaritySearch(embedder=embedder, metric=metric, backend=backend, device=device)
    search.fit(X)
    k = min(n_neighbors + 1, n)
    values, rows = search.kneighbors(np.asarray(X[[query_index]]), n_neighbors=k)
    keep = rows[0] != query_index
    result = Bunch(indices=rows[0][keep][:n_neighbors], similarities=values[0][keep][:n_neighbors])
    redshift = archive.get("redshift")
    result.query_redshift = None if redshift is None else float(redshift[query_index])
    result.redshift = None if redshift is None else redshift[result.indices]
    z_query = "" if redshift is None else f"  z={result.query_redshift:.4f}"
    print(f"query #{query_index}{z_query}")
    print(f"{'rank':>4} {'index':>10} {'similarity':>10}" + ("" if redshift is None else "  z"))
    for rank, (row, value) in enumerate(zip(result.indices, result.similarities, strict=True), 1):
        z = "" if redshift is None else f"  {redshift[row]:.4f}"
        print(f"{rank:>4} {row:>10} {value:>10.4f}{z}")
    if output_png is not None:
        fig = plot_neighbors(
            archive.images, query_index, result.indices, result.similarities, redshift=redshift
        )
        _save_figure(fig, output_png, dpi=120)
    return result


def search(args) -> int:
    run_search_cli(
        args.archive,
        args.query,
        n_neighbors=args.n_neighbors,
        embeddings_path=args.embeddings,
        embedder_path=args.model,
        output_png=args.plot,
        crop=args.crop,
        metric=args.metric,
        backend=args.backend,
        device=args.device,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skphotoz", description="Self-supervised photo-z for SDSS galaxy images."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "demo",
        help="the case for self-supervised photo-z on simulated galaxies, with an HTML report",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="600 galaxies, 3 budgets (under 3 min on 2 cores)"
    )
    size.add_argument(
        "--full", action="store_true", help="6,000 galaxies, 4 budgets up to 3,000 labels (long)"
    )
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.add_argument("--out", default="demo_output", help="folder of the report and cached data")
    p.set_defaults(func=demo)

    p = sub.add_parser("simulate", help="write simulated galaxies to an HDF5 archive")
    p.add_argument("output")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stamp-size", type=int, default=64)
    p.add_argument("--chunk-size", type=int, default=1024)
    p.set_defaults(func=simulate)

    p = sub.add_parser("pretrain", help="MoCo pretraining on an HDF5 archive")
    p.add_argument("archive")
    p.add_argument("--output", required=True, help="joblib file of the fitted embedder")
    # The names of MOCO_PRESETS, spelled out so that --help does not import torch.
    p.add_argument("--preset", choices=["published", "published-photometry"], default=None)
    p.add_argument("--backbone", default=None)
    p.add_argument("--stem", default=None)
    p.add_argument("--epochs", dest="n_epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--crop-size", type=int, default=None)
    p.add_argument("--device", default=None)
    p.add_argument(
        "--photometry-weight", type=float, default=None,
        help="weight of the photometry term (0: plain MoCo; default: the estimator's)",
    )  # fmt: skip
    p.add_argument(
        "--redshift-weight", type=float, default=None,
        help="above 0: semi-supervised, a redshift term learns from the archive's redshifts "
        "(NaN rows stay unlabelled); default off",
    )  # fmt: skip
    p.add_argument("--deredden", action="store_true", help="deredden with the e_bv column")
    p.add_argument("--checkpoint-dir", default=None)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=pretrain)

    p = sub.add_parser("embed", help="embeddings of an archive with a fitted embedder")
    p.add_argument("model")
    p.add_argument("archive")
    p.add_argument("--output", required=True, help=".npy file")
    p.add_argument("--deredden", action="store_true")
    p.set_defaults(func=embed)

    p = sub.add_parser("search", help="the galaxies of an archive most similar to one of them")
    p.add_argument("archive")
    p.add_argument("query", type=int, help="row of the query galaxy in the archive")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--embeddings", default=None, help=".npy file from `skphotoz embed`")
    source.add_argument("--model", default=None, help="joblib file of a fitted embedder")
    p.add_argument("-k", "--n-neighbors", type=int, default=10)
    p.add_argument("--plot", default=None, help="PNG of the query and its neighbours")
    p.add_argument("--crop", type=int, default=None, help="centre crop of the stamps")
    p.add_argument("--metric", choices=["cosine", "dot"], default="cosine")
    p.add_argument("--backend", choices=["torch", "faiss"], default="torch")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=search)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
