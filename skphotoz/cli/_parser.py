"""The parser of ``skphotoz``: its commands, their options, and the checks of combinations of
options that argparse cannot make. Building it imports neither PyTorch nor scikit-learn, so
that ``--help`` answers at once; :func:`skphotoz.cli.main` runs the command parsed.
"""

from __future__ import annotations

import argparse

from .. import __version__
from ._io import output_kind
from ._options import (
    DEFAULT_QUANTILES,
    ESTIMATORS_DEFAULT,
    HelpFormatter,
    add_device,
    add_global_options,
    add_nan_policy,
    add_preprocessing,
    add_training_options,
    add_trust,
    column_option,
    epochs_option,
    fraction_option,
    int_at_least,
    quantiles_option,
    weight_option,
)

#: Label-selection strategies (kept here so that --help needs no scikit-learn import; the
#: tests check them against skphotoz.selection.STRATEGIES).
SELECTION_STRATEGIES = {
    "random": "random galaxies (the control)",
    "typical": "typical galaxies of k-means clusters (TypiClust)",
    "cells": "a random galaxy from each of as many k-means cells as labels (C3R2-like)",
    "coverage": "k-center greedy coverage of feature space",
    "typical+coverage": "typical galaxies for half the budget, then coverage",
    "uncertainty": "the galaxies whose redshift PDF is widest (needs --model)",
}
DEFAULT_SELECTION = "cells"

#: What a model file written by a command is.
MODEL_FILE = "a .skops file (safe to share), or a joblib pickle if it ends in .joblib or .pkl"
#: Commands that read options from ``--config FILE.toml`` (the long-running ones).
CONFIG_COMMANDS = ("ingest", "simulate", "pretrain", "fit-photoz", "predict", "embed")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``skphotoz``: one subparser per command; ``args.command`` is the one given."""
    parser = argparse.ArgumentParser(
        prog="skphotoz",
        description="Self-supervised photometric redshifts from ugriz galaxy images.",
        epilog="From a channels-last cube and a CSV catalogue to redshifts:\n"
        "  skphotoz ingest cube.npy --catalog cat.csv --output galaxies.h5\n"
        "  skphotoz pretrain galaxies.h5 --output embedder.skops\n"
        "  skphotoz fit-photoz galaxies.h5 --encoder embedder.skops --output photoz.skops\n"
        "  skphotoz predict photoz.skops galaxies.h5 --output redshifts.csv\n"
        "Run `skphotoz COMMAND --help` for the options of a command.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "-V", "--version", action="version", version=f"%(prog)s {__version__}",
        help="print the version of skphotoz and exit",
    )  # fmt: skip
    add_global_options(parser, default=False)
    # The global options are accepted after the command too (without resetting them there).
    common = argparse.ArgumentParser(add_help=False)
    add_global_options(common, default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help, description=None):
        p = sub.add_parser(
            name, help=help, description=description or help, parents=[common],
            formatter_class=HelpFormatter,
        )  # fmt: skip
        if name in CONFIG_COMMANDS:
            p.add_argument(
                "--config", metavar="FILE.toml", default=None,
                help="TOML file of options for long runs: its keys are the long option names "
                "of this command (batch-size = 256, or batch_size) and its positional arguments "
                "(archive = \"galaxies.h5\"); the command line overrides it (default: none)",
            )  # fmt: skip
        return p

    # -- ingest
    p = command(
        "ingest",
        "turn a cube of cutouts (and a catalogue) into an HDF5 archive",
        "Write an HDF5 archive from galaxy cutouts: a .npy/.npz cube (n, H, W, 5) or "
        "(n, 5, H, W), or a folder of per-galaxy FITS cutouts, with an optional CSV or FITS "
        "catalogue of one row per galaxy (redshift, extinction, ra, dec, objid, ...).",
    )
    p.add_argument("images", metavar="IMAGES", help="cube file (.npy, .npz) or folder of FITS")
    p.add_argument("--output", required=True, help="HDF5 archive to write (required)")
    p.add_argument(
        "--catalog", default=None,
        help="CSV or FITS table, one row per galaxy in the order of the images (default: none, "
        "images only)",
    )  # fmt: skip
    p.add_argument(
        "--column", type=column_option, action="append", default=None, metavar="PUBLIC=CATALOG",
        help="take PUBLIC (redshift, redshift_err, ra, dec, objid, specobjid, ebv, extinction, "
        "filename) from catalogue column CATALOG; extinction=A_U,A_G,A_R,A_I,A_Z names five "
        "per-band columns, PUBLIC= (nothing) skips one; repeat for several (default: the "
        "recognised names, e.g. z, z_spec, ra, dec, objid, e_bv, extinction_u)",
    )  # fmt: skip
    p.add_argument(
        "--layout", choices=["auto", "channels_last", "channels_first"], default="auto",
        help="axis order of the cube: auto decides from which axis has 5 bands",
    )  # fmt: skip
    p.add_argument(
        "--chunk-size", type=int_at_least(1), default=1024, help="galaxies written at a time"
    )
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists")

    # -- simulate
    p = command("simulate", "write simulated SDSS-like galaxies to an HDF5 archive")
    p.add_argument("output", metavar="OUTPUT", help="HDF5 archive to write")
    p.add_argument("--n", type=int_at_least(1), required=True, help="galaxies (required)")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="random seed")
    p.add_argument("--stamp-size", type=int_at_least(8), default=64, help="stamp side in px")
    p.add_argument(
        "--chunk-size", type=int_at_least(1), default=1024, help="galaxies written at a time"
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")

    # -- verify
    p = command(
        "verify",
        "read every chunk of an archive and report damaged rows",
        "Read every chunk of every dataset of an HDF5 archive. skphotoz writes archives with "
        "Fletcher-32 checksums, so bytes changed on disk are found and their rows named "
        "(exit status 1); archives without checksums are read through and their NaN/infinite "
        "pixels reported.",
    )
    p.add_argument("archive", metavar="ARCHIVE", help="HDF5 archive to check")

    # -- pretrain
    p = command(
        "pretrain",
        "self-supervised (MoCo) pretraining of an image embedder on an HDF5 archive",
        "Pretrain a MoCoEmbedder on every galaxy of an archive, labelled or not, and save it. "
        "Options left out take the preset's value, else the estimator's default.",
    )
    p.add_argument("archive", metavar="ARCHIVE", help="HDF5 archive (from ingest or simulate)")
    p.add_argument("--output", required=True, help=f"the fitted embedder: {MODEL_FILE} (required)")
    # The names of MOCO_PRESETS, spelled out so that --help does not import torch.
    p.add_argument(
        "--preset", choices=["published", "published-photometry"], default=None,
        help="published = the configuration of Hayat et al. 2021 (ResNet-50, 107-px stamps, "
        "for GPUs); options given override it (default: none, the estimator's defaults)",
    )  # fmt: skip
    add_training_options(p, n_epochs="passes over the archive")
    p.add_argument(
        "--crop-size", type=int_at_least(1), default=None,
        help=f"side of the random crops the network sees in training, in px {ESTIMATORS_DEFAULT}",
    )  # fmt: skip
    add_preprocessing(p, model=None)
    p.add_argument(
        "--photometry-weight", type=weight_option, default=None,
        help=f"weight of the photometry term (0: plain MoCo) {ESTIMATORS_DEFAULT}",
    )  # fmt: skip
    p.add_argument(
        "--redshift-weight", type=weight_option, default=None,
        help="above 0: semi-supervised, a redshift term learns from the archive's redshifts "
        f"(NaN rows stay unlabelled) {ESTIMATORS_DEFAULT}",
    )  # fmt: skip

    # -- fit-photoz
    p = command(
        "fit-photoz",
        "train a photo-z regressor on the galaxies of an archive that have a redshift",
        "Fit a PhotoZRegressor on the archive's galaxies with a finite redshift (the images "
        "stay on disk), fine-tuning a pretrained embedder (--encoder) or from scratch, save it "
        "and print its σ_MAD. Options left out take the estimator's default.",
    )
    p.add_argument("archive", metavar="ARCHIVE", help="HDF5 archive with a redshift column")
    p.add_argument("--output", required=True, help=f"the fitted model: {MODEL_FILE} (required)")
    p.add_argument(
        "--encoder", default=None,
        help="model file of a MoCoEmbedder from `skphotoz pretrain` to fine-tune; its "
        "dereddening and crop are used (default: none, train from scratch)",
    )  # fmt: skip
    add_training_options(
        p,
        epochs=epochs_option,
        backbone="architecture when training from scratch (auto = resnet18)",
        stem="ResNet stem when training from scratch (standard for CPUs, published for GPUs)",
        n_epochs="passes over the labelled galaxies, or auto = enough for --min-steps steps "
        "and at least 30",
        batch_size="labelled galaxies per step",
        lr="peak SGD learning rate of the head (a pretrained encoder gets 0.1 of it)",
        seed="random seed of weights, batches, holdout",
    )
    p.add_argument(
        "--head", choices=["bins", "regression"], default=None,
        help="bins = a PDF over redshift bins; regression = a Gaussian mean and width "
        f"{ESTIMATORS_DEFAULT}",
    )  # fmt: skip
    p.add_argument(
        "--photometry", action="store_true", default=None,
        help="join each stamp's aperture photometry (measured exactly, on the whole stamp) to "
        f"a bottleneck of the image features: the hybrid network {ESTIMATORS_DEFAULT}",
    )  # fmt: skip
    p.add_argument(
        "--bottleneck", type=int_at_least(1), default=None,
        help="with --photometry: width of the image features joined to the photometry "
        f"{ESTIMATORS_DEFAULT}",
    )  # fmt: skip
    p.add_argument(
        "--min-steps", type=int_at_least(1), default=None,
        help=f"optimizer steps of --epochs auto (fewer: quicker, rougher) {ESTIMATORS_DEFAULT}",
    )  # fmt: skip
    add_preprocessing(p, model="--encoder")
    add_trust(p, "--encoder")
    p.add_argument(
        "--holdout", type=fraction_option, default=0.0,
        help="fraction of the labelled galaxies kept out of training to score the model on; "
        "0 scores on the training galaxies (optimistic)",
    )  # fmt: skip
    p.add_argument(
        "--chunk-size", type=int_at_least(1), default=4096,
        help="galaxies read at a time when scoring",
    )  # fmt: skip

    # -- predict
    p = command(
        "predict",
        "redshifts (and PDF quantiles) of every galaxy of an archive, to CSV or HDF5",
        "Predict the redshift of every galaxy of an archive with a model from `skphotoz "
        "fit-photoz`, in chunks, and write row, objid (when the archive has it), z_pred, the "
        "PDF quantiles (z_q16, z_q50, z_q84 by default) and the archive's redshift (when it "
        "has one) to CSV or HDF5.",
    )
    p.add_argument("model", metavar="MODEL", help="model file from `skphotoz fit-photoz`")
    p.add_argument("archive", metavar="ARCHIVE", help="HDF5 archive of the galaxies to predict")
    p.add_argument("--output", required=True, help="output file: .csv, or .h5/.hdf5 (required)")
    p.add_argument(
        "--quantiles", type=quantiles_option, default=DEFAULT_QUANTILES,
        help="comma-separated PDF quantiles, written as columns z_q16 etc.; 'none' for none",
    )  # fmt: skip
    p.add_argument(
        "--pdf", action="store_true",
        help="HDF5 output only: also write the full PDFs (dataset pdf, bin edges redshift_bins)",
    )  # fmt: skip
    p.add_argument(
        "--chunk-size", type=int_at_least(1), default=4096,
        help="galaxies predicted at a time (bounds the memory used)",
    )  # fmt: skip
    add_preprocessing(p, model="MODEL")
    add_trust(p, "MODEL")
    add_device(p, default=None, default_text="the model's own setting")
    add_nan_policy(p, "the model's own")

    # -- embed
    p = command(
        "embed",
        "embeddings of every galaxy of an archive with a fitted embedder",
        "Embed every galaxy of an archive with a fitted embedder, in chunks, opening the "
        "archive as the embedder was fitted (dereddening, crop).",
    )
    p.add_argument("model", metavar="MODEL", help="model file from `skphotoz pretrain`")
    p.add_argument("archive", metavar="ARCHIVE", help="HDF5 archive")
    p.add_argument(
        "--output", required=True,
        help=".npy file, or .h5/.hdf5 (dataset embeddings, with objid when the archive has "
        "it) (required)",
    )  # fmt: skip
    p.add_argument(
        "--chunk-size", type=int_at_least(1), default=4096, help="galaxies embedded at a time"
    )
    add_preprocessing(p, model="MODEL")
    add_trust(p, "MODEL")
    add_device(p, default=None, default_text="the model's own setting")
    add_nan_policy(p, "the model's own")

    # -- search
    p = command(
        "search",
        "the galaxies of an archive most similar to one of them",
        "Find the galaxies of an archive most similar to a query galaxy (given by its row or "
        "its ObjID), from precomputed embeddings or a fitted embedder.",
    )
    p.add_argument("archive", metavar="ARCHIVE", help="HDF5 archive")
    # ROW and --objid exclude each other; checked in check_usage, since argparse's
    # exclusive groups would make ROW unusable after the options.
    p.add_argument(
        "query", metavar="ROW", type=int_at_least(0), nargs="?", default=None,
        help="row of the query galaxy in the archive (or give --objid)",
    )  # fmt: skip
    p.add_argument(
        "--objid", type=int, default=None,
        help="ObjID of the query galaxy, looked up in the archive (default: none, give ROW)",
    )  # fmt: skip
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--embeddings",
        default=None,
        help=".npy or .h5 file from `skphotoz embed` (or give --model)",
    )
    source.add_argument(
        "--model", default=None,
        help="model file of a fitted embedder; the archive is opened as it was fitted "
        "(or give --embeddings)",
    )  # fmt: skip
    p.add_argument(
        "-k", "--n-neighbors", type=int_at_least(1), default=10, help="neighbours to list"
    )
    p.add_argument(
        "--plot", default=None, help="PNG of the query and its neighbours (default: none)"
    )
    add_preprocessing(p, model="--model")
    add_trust(p, "--model")
    p.add_argument(
        "--metric", choices=["cosine", "dot"], default="cosine", help="similarity measure"
    )
    p.add_argument(
        "--backend", choices=["torch", "faiss"], default="torch",
        help="exact search (torch) or faiss (needs the faiss package)",
    )  # fmt: skip
    add_device(p)

    # -- select
    p = command(
        "select",
        "which galaxies of an archive to take spectra of next",
        "Choose the galaxies of an archive to label next (take spectra of) for a budget, from "
        "their aperture photometry and/or embeddings, around those already labelled; writes "
        "a CSV of rank, row, objid and strategy, the first rank the most wanted.",
    )
    p.add_argument("archive", metavar="ARCHIVE", help="HDF5 archive")
    p.add_argument("--n", type=int_at_least(1), required=True, help="galaxies to select (required)")
    p.add_argument("--output", required=True, help="CSV of the targets to write (required)")
    p.add_argument(
        "--strategy", choices=list(SELECTION_STRATEGIES), default=DEFAULT_SELECTION,
        help="; ".join(f"{name}: {text}" for name, text in SELECTION_STRATEGIES.items()),
    )  # fmt: skip
    p.add_argument(
        "--embeddings", default=None,
        help=".npy or .h5 file from `skphotoz embed`, one row per galaxy (default: none)",
    )  # fmt: skip
    p.add_argument(
        "--features", choices=["photometry", "embeddings", "both"], default=None,
        help="what the selection reads: the stamps' standardised aperture photometry, the "
        "embeddings, or both with equal weight (default: embeddings when given, else "
        "photometry)",
    )  # fmt: skip
    p.add_argument(
        "--labelled", default=None,
        help="CSV of galaxies that already have a redshift (an 'objid' or a 'row' column); "
        "they are not selected and the selection fills the gaps around them (default: none)",
    )  # fmt: skip
    p.add_argument(
        "--model", default=None,
        help="fitted photo-z model file, for --strategy uncertainty (default: none)",
    )  # fmt: skip
    add_trust(p, "--model")
    add_preprocessing(p, model=None)
    p.add_argument(
        "--chunk-size", type=int_at_least(1), default=4096,
        help="galaxies read at a time (bounds memory on large archives)",
    )  # fmt: skip
    p.add_argument(
        "--seed", type=int_at_least(0), default=0, help="seed of k-means and random choices"
    )
    add_device(p, default=None, default_text="the model's own setting")

    # -- explore
    p = command(
        "explore",
        "a local web page to look at an archive's galaxies, their look-alikes and redshifts",
        "Serve a page (on this computer only, by default) with a 2-D map of the embeddings "
        "coloured by redshift; click a galaxy or type its row or ObjID to see its colour "
        "composite, its nearest neighbours, its catalogue values and its redshift PDF; the "
        "most unusual galaxies; and a pasted list of ObjIDs. The map, index and scores are "
        "computed at start-up and cached beside the archive (ARCHIVE.explore).",
    )
    p.add_argument("archive", metavar="ARCHIVE", help="HDF5 archive (only read)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--embeddings", default=None,
        help=".npy or .h5 file from `skphotoz embed`, one row per galaxy (or give --embedder)",
    )  # fmt: skip
    source.add_argument(
        "--embedder", default=None,
        help="model file of a fitted embedder, run on the archive at the first start and "
        "cached (or give --embeddings)",
    )  # fmt: skip
    p.add_argument(
        "--model", default=None,
        help="fitted photo-z model file: redshift PDFs on the page and predicted redshifts "
        "on the map (default: none)",
    )  # fmt: skip
    add_trust(p, "--embedder and --model")
    add_preprocessing(p, model="--embedder/--model")
    p.add_argument(
        "--port", type=int_at_least(0, 65535), default=8000, help="port (0: any free port)"
    )
    p.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this computer only; 0.0.0.0 lets "
        "the network in)",
    )  # fmt: skip
    p.add_argument(
        "-k", "--n-neighbors", type=int_at_least(1, 500), default=8,
        help="neighbours shown (at most 500)",
    )  # fmt: skip
    p.add_argument(
        "--map", choices=["auto", "pca", "umap"], default="auto",
        help="2-D map of the embeddings (auto: UMAP where umap-learn is installed, else PCA)",
    )  # fmt: skip
    p.add_argument(
        "--index", choices=["auto", "exact", "hnsw"], default="auto",
        help="search index (auto: faiss HNSW above a million galaxies where faiss is "
        "installed, else exact)",
    )  # fmt: skip
    p.add_argument(
        "--cache-dir", default=None,
        help="folder of the cached map, scores and embeddings (default: ARCHIVE.explore)",
    )  # fmt: skip
    p.add_argument(
        "--no-cache", action="store_true", help="compute everything again and write no cache"
    )
    p.add_argument(
        "--check", action="store_true",
        help="start, answer one query of each kind, print how long each took and exit "
        "(no server)",
    )  # fmt: skip

    # -- demo
    p = command(
        "demo",
        "the case for self-supervised photo-z on simulated galaxies, with an HTML report",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="600 galaxies, 3 budgets (under 3 min on 2 cores)"
    )
    size.add_argument(
        "--full", action="store_true", help="6,000 galaxies, 4 budgets up to 3,000 labels (long)"
    )
    p.add_argument("--threads", type=int_at_least(1), default=2, help="CPU threads")
    p.add_argument("--out", default="demo_output", help="folder of the report and cached data")
    return parser


def subparser(parser, command: str) -> argparse.ArgumentParser:
    return parser._subparsers._group_actions[0].choices[command]


def check_usage(parser, args) -> None:
    """Combinations of options that argparse cannot check by itself (exit status 2)."""
    sub = subparser(parser, args.command)
    if args.command == "predict":
        kind = output_kind(args.output)
        if kind not in {"csv", "hdf5"}:
            sub.error(f"--output must end in .csv, .h5 or .hdf5; got {args.output!r}")
        if args.pdf and kind != "hdf5":
            sub.error("--pdf needs an HDF5 --output (.h5 or .hdf5); CSV holds no PDFs")
    if args.command == "embed" and output_kind(args.output) not in {"npy", "hdf5"}:
        sub.error(f"--output must end in .npy, .h5 or .hdf5; got {args.output!r}")
    if args.command == "search" and (args.query is None) == (args.objid is None):
        given = "both" if args.objid is not None else "neither"
        sub.error(f"give the query galaxy as ROW or as --objid, not {given}")
    if args.command == "ingest" and args.column:
        names = [public for public, _ in args.column]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            sub.error(f"--column names {', '.join(repeated)} more than once")
