"""Command line: ``skphotoz ingest|simulate|pretrain|fit-photoz|predict|embed|search|demo``.

Only argparse and the standard library are imported at module level: ``skphotoz --help`` and
``skphotoz <command> --help`` must answer at once, without loading PyTorch or scikit-learn.
Each command imports what it needs when it runs.

Errors are reported as one line, ``skphotoz <command>: error: <message>``, on stderr with exit
status 1 (2 for usage errors, as argparse does; 130 after Ctrl-C); ``--debug`` shows the full
traceback instead. Warnings are shown as one line too, ``skphotoz <command>: warning: ...``.

The long-running commands take ``--config FILE.toml``, whose keys are their long option names
and positional arguments; the command line overrides the file, and a key or value the command
would refuse is a one-line error (status 2) naming the file and the key. Under ``torchrun``,
``pretrain`` and ``fit-photoz`` train on every process and the other commands run on rank 0
only; the processes of rank > 0 write no output and print nothing but errors.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings

from . import __version__

#: Redshift quantiles written by ``skphotoz predict`` unless ``--quantiles`` says otherwise.
DEFAULT_QUANTILES = (0.16, 0.5, 0.84)
# fit-photoz scores the model on at most this many rows (a random subset beyond).
_MAX_SCORE_ROWS = 10_000
#: Commands that read options from ``--config FILE.toml`` (the long-running ones).
CONFIG_COMMANDS = ("ingest", "simulate", "pretrain", "fit-photoz", "predict", "embed")
#: Commands that train on every process of a ``torchrun`` launch (the others run on rank 0).
DISTRIBUTED_COMMANDS = ("pretrain", "fit-photoz")


# ------------------------------------------------------------------------------- helpers
def _say(args, *lines) -> None:
    """Information and progress for people (suppressed by --quiet)."""
    if not args.quiet:
        for line in lines:
            print(line)


def _progress(args, iterable, total: int, description: str):
    """A progress bar over chunks on stderr (none with --quiet)."""
    if args.quiet:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=description, leave=False, file=sys.stderr)


def _check_input_file(path, what: str) -> None:
    """Fail early, by name, on an input path that is missing or not a file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} {os.fspath(path)!r} does not exist.")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} {os.fspath(path)!r} is a directory, not a file.")


def _check_output_path(path, what: str = "--output", inputs: dict | None = None) -> None:
    """Fail before a long computation, not after it, when the output cannot be written, or
    when it is one of the command's ``inputs`` ({name: path}), which writing would destroy."""
    for name, source in (inputs or {}).items():
        try:
            same = source is not None and os.path.samefile(path, source)
        except OSError:  # either does not exist (yet)
            same = False
        if same:
            raise ValueError(
                f"{what} {os.fspath(path)!r} is the {name} being read; writing it would "
                f"destroy the input: choose another file."
            )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{what}: the folder {folder!r} does not exist.")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what}: {os.fspath(path)!r} is a directory.")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"{what}: the folder {folder!r} is not writable.")


def _open_archive(path, *, crop=None, deredden=False):
    """:func:`skphotoz.data.open_archive` with errors that name the file."""
    import h5py

    from .data import open_archive

    _check_input_file(path, "archive")
    if not h5py.is_hdf5(path):
        raise ValueError(
            f"archive {os.fspath(path)!r} is not an HDF5 file; write one with `skphotoz ingest` "
            f"or skphotoz.data.write_archive."
        )
    return open_archive(path, crop=crop, deredden=deredden)


def _load_model(path, what: str, *, needs: tuple[str, ...] = (), expected: str = ""):
    """Load a joblib model file, checking that it is fitted and has the methods ``needs``
    (``expected`` says what kind of model the command needs)."""
    _check_input_file(path, what)
    import joblib

    try:
        model = joblib.load(path)
    except Exception as error:  # a damaged or foreign pickle fails in any of many ways
        raise ValueError(
            f"{what} {os.fspath(path)!r} could not be loaded as a model saved with joblib "
            f"({type(error).__name__}: {error})."
        ) from error
    missing = [name for name in needs if not callable(getattr(model, name, None))]
    if missing:
        raise ValueError(
            f"{what} {os.fspath(path)!r} holds a {type(model).__name__}, which has no "
            f"{' or '.join(missing)} method{'; ' + expected if expected else ''}."
        )
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except (NotFittedError, TypeError) as error:
        raise ValueError(
            f"{what} {os.fspath(path)!r} holds an unfitted {type(model).__name__}."
        ) from error
    return model


def _has_column(archive, name: str) -> bool:
    """Whether the archive holds values of a column (writers fill absent ones with NaN / -1)."""
    import numpy as np

    values = archive.get(name)
    if values is None:
        return False
    if np.issubdtype(values.dtype, np.floating):
        return bool(np.isfinite(values).any())
    return bool((values != -1).any())


def _flag(name: str, value) -> str:
    if isinstance(value, bool):
        return f"--{name}" if value else f"--no-{name}"
    return f"--{name} {value}"


def _preprocessing(model, model_path, *, deredden=None, crop=None) -> tuple[bool, int | None]:
    """How to open an archive for ``model``: its remembered ``preprocessing_``, else the flags.

    A flag given on the command line that contradicts what the model was fitted on is an
    error: the model would see other images than it learnt from.
    """
    known = getattr(model, "preprocessing_", None)
    if known is None:
        return bool(deredden), crop
    for name, value in (("deredden", deredden), ("crop", crop)):
        if value is not None and value != known.get(name):
            raise ValueError(
                f"{_flag(name, value)} conflicts with {os.fspath(model_path)!r}, which was "
                f"fitted on images opened with {name}={known.get(name)!r}; leave the option out "
                f"to use the model's setting."
            )
    return bool(known.get("deredden", False)), known.get("crop")


def _check_stamps(model, model_path, images, archive_path, crop) -> None:
    """The archive's stamps, as opened, must have the shape the model was fitted on."""
    expected = tuple(getattr(model, "input_shape_", ()))
    got = tuple(images.shape[1:])
    if len(expected) != 3 or expected == got:
        return
    hint = ""
    if expected[0] == got[0] and expected[1] < got[1] and crop is None:
        hint = f"; give --crop {expected[1]} to centre-crop the stamps"
    raise ValueError(
        f"{os.fspath(model_path)!r} was fitted on stamps of shape {expected} but archive "
        f"{os.fspath(archive_path)!r} gives {got} (crop={crop!r}){hint}."
    )


def _set_runtime(model, args) -> None:
    """Apply --device / --nan-policy to a loaded model when they are given."""
    params = {}
    if getattr(args, "device", None) is not None:
        params["device"] = args.device
    if getattr(args, "nan_policy", None) is not None:
        params["nan_policy"] = args.nan_policy
    if params:
        model.set_params(**params)


def _chunks(n: int, size: int):
    return [(start, min(start + size, n)) for start in range(0, n, size)]


# ------------------------------------------------------------------------------ commands
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

    _check_output_path(args.output, "OUTPUT")
    tick = time.perf_counter()
    write_sdss_galaxies(
        args.output, args.n, random_state=args.seed, stamp_size=args.stamp_size,
        chunk_size=args.chunk_size,
    )  # fmt: skip
    elapsed = time.perf_counter() - tick
    print(f"wrote {args.n} galaxies to {args.output} in {elapsed:.1f} s ({args.n / elapsed:.0f}/s)")
    return 0


def ingest(args) -> int:
    from . import data

    if args.catalog is not None:
        _check_input_file(args.catalog, "--catalog")
    _check_output_path(args.output, inputs={"IMAGES": args.images, "--catalog": args.catalog})
    tick = time.perf_counter()
    summary = data.ingest(
        args.images,
        args.output,
        catalog=args.catalog,
        columns=dict(args.column) if args.column else None,
        layout=args.layout,
        chunk_size=args.chunk_size,
        overwrite=args.overwrite,
    )
    elapsed = time.perf_counter() - tick
    n = summary.n_samples
    missing = summary.get("missing", {})
    columns = [
        name + (f" ({missing[name]} unknown)" if missing.get(name) else "")
        for name in summary.columns
    ]
    matched = summary.get("matched_by")
    layout = summary.get("layout")
    n_bad = int(summary.n_nonfinite)
    bad = ""
    if n_bad:
        rows = [int(r) for r in summary.nonfinite_rows[:10]]
        more = ", ..." if n_bad > len(rows) else ""
        bad = (
            f" ({'row' if n_bad == 1 else 'rows'} {', '.join(map(str, rows))}{more}: train and "
            "predict with --nan-policy fill, or drop them)"
        )
    _say(
        args,
        f"galaxies: {n}" + (f", read as {layout}" if layout else ""),
        f"stamps: {summary.n_bands} bands x {summary.stamp_size} x {summary.stamp_size} px",
        "columns: " + (", ".join(columns) if columns else "none (images only)"),
        *([f"catalogue rows matched to images by {matched}"] if matched else []),
        f"galaxies with non-finite (NaN/inf) pixels: {n_bad}{bad}",
    )
    labelled = ""
    if "redshift" in summary.columns:
        labelled = f" ({n - missing.get('redshift', 0)} with a redshift)"
    print(f"wrote {n} galaxies{labelled} to {summary.path} in {elapsed:.1f} s")
    return 0


def pretrain(args) -> int:
    import joblib

    from . import MOCO_PRESETS, MoCoEmbedder

    _check_output_path(args.output, inputs={"ARCHIVE": args.archive})
    params = dict(MOCO_PRESETS[args.preset]) if args.preset else {}
    names = ("backbone", "stem", "n_epochs", "batch_size", "lr", "device", "crop_size")
    for name in (*names, "photometry_weight", "redshift_weight", "nan_policy"):
        value = getattr(args, name)
        if value is not None:
            params[name] = value
    archive = _open_archive(args.archive, deredden=args.deredden, crop=args.crop)
    size = archive.images.shape[-1]
    if args.preset and args.crop_size is None and params.get("crop_size", 0) > size:
        raise ValueError(
            f"--preset {args.preset} trains on crops of {params['crop_size']} px, but the stamps "
            f"of {args.archive} are {size} px; give --crop-size (at most {size})."
        )
    embedder = MoCoEmbedder(
        **params, random_state=args.seed, checkpoint_dir=args.checkpoint_dir,
        verbose=not args.quiet, num_workers=args.num_workers,
    )  # fmt: skip
    labels = None
    if args.redshift_weight:  # semi-supervised: the archive's redshifts, NaN = unlabelled
        if "redshift" not in archive:
            raise ValueError(f"--redshift-weight: {args.archive} has no redshift column.")
        labels = archive.redshift
    embedder.fit(archive.images, labels)
    if getattr(args, "main_process", True):  # under torchrun, rank 0 alone
        joblib.dump(embedder, args.output)
        print(f"saved {args.output}; final loss {embedder.history_[-1]['loss']:.4f}")
    return 0


def _labelled_redshifts(archive, archive_path):
    """The archive's redshift column with every non-finite value as NaN (unlabelled)."""
    import numpy as np

    if archive.get("redshift") is None:
        raise ValueError(f"archive {archive_path!r} has no redshift column to train on.")
    z = np.asarray(archive.redshift, dtype=np.float64).copy()
    z[~np.isfinite(z)] = np.nan
    with np.errstate(invalid="ignore"):
        impossible = np.flatnonzero(z <= -1)
    if impossible.size:  # found before training, not when scoring after it
        shown = ", ".join(str(int(r)) for r in impossible[:5])
        raise ValueError(
            f"archive {archive_path!r}: redshift must be > -1 (1 + z > 0) or NaN for "
            f"unlabelled galaxies; {impossible.size} row(s) are not ({shown}"
            f"{', ...' if impossible.size > 5 else ''}; e.g. {z[impossible[0]]:g}), a "
            f"missing-value code? Write them as NaN."
        )
    if np.count_nonzero(~np.isnan(z)) == 0:
        raise ValueError(
            f"archive {archive_path!r} has no galaxy with a finite redshift to train on "
            f"(all {len(z)} are NaN or infinite)."
        )
    return z


def _predict_rows(model, images, rows, chunk_size: int, args, description: str):
    """``model.predict`` on ``images[rows]``, ``chunk_size`` rows at a time."""
    import numpy as np

    out = np.empty(len(rows), dtype=np.float64)
    spans = _chunks(len(rows), chunk_size)
    for start, stop in _progress(args, spans, len(spans), description):
        out[start:stop] = model.predict(np.asarray(images[rows[start:stop]]))
    return out


def fit_photoz(args) -> int:
    import joblib
    import numpy as np

    from . import PhotoZRegressor
    from .metrics import photoz_report

    _check_output_path(args.output, inputs={"ARCHIVE": args.archive, "--encoder": args.encoder})
    deredden, crop = args.deredden, args.crop
    encoder = None
    if args.encoder is not None:
        needed = "a fitted MoCoEmbedder (from `skphotoz pretrain`) is needed"
        embedder = _load_model(args.encoder, "--encoder", needs=("transform",), expected=needed)
        if not hasattr(embedder, "moco_"):
            raise ValueError(
                f"--encoder {args.encoder!r} holds a {type(embedder).__name__}; {needed}."
            )
        deredden, crop = _preprocessing(embedder, args.encoder, deredden=deredden, crop=crop)
        encoder = os.path.abspath(args.encoder)
    archive = _open_archive(args.archive, deredden=bool(deredden), crop=crop)
    if args.encoder is not None:
        _check_stamps(embedder, args.encoder, archive.images, args.archive, crop)
    z = _labelled_redshifts(archive, args.archive)
    labelled = np.flatnonzero(~np.isnan(z))
    rng = np.random.default_rng(args.seed)
    z_train = z.copy()
    if args.holdout > 0:
        n_held = int(round(args.holdout * len(labelled)))
        if n_held < 1 or len(labelled) - n_held < 2:
            raise ValueError(
                f"--holdout {args.holdout} of {len(labelled)} labelled galaxies leaves "
                f"{n_held} to score and {len(labelled) - n_held} to train on; need at least 1 "
                f"and 2."
            )
        score_rows = np.sort(rng.choice(labelled, size=n_held, replace=False))
        z_train[score_rows] = np.nan
        scored_on = f"{len(score_rows)} held-out galaxies ({args.holdout:g} of the labelled)"
    else:
        score_rows = labelled
        scored_on = f"{len(labelled)} training galaxies (optimistic: the model saw them)"
    if len(score_rows) > _MAX_SCORE_ROWS:
        score_rows = np.sort(rng.choice(score_rows, size=_MAX_SCORE_ROWS, replace=False))
        scored_on = f"a random {_MAX_SCORE_ROWS} of the " + scored_on
    params = dict(
        encoder=encoder,
        head=args.head,
        photometry=args.photometry,
        n_epochs=args.n_epochs,
        min_steps=args.min_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        device=args.device,
        random_state=args.seed,
        checkpoint_dir=args.checkpoint_dir,
        num_workers=args.num_workers,
        verbose=not args.quiet,
    )
    if encoder is None:
        params.update(backbone=args.backbone, stem=args.stem)
    if args.bottleneck is not None:
        params["bottleneck"] = args.bottleneck
    if args.nan_policy is not None:
        params["nan_policy"] = args.nan_policy
    model = PhotoZRegressor(**params)
    n_train = int(np.count_nonzero(~np.isnan(z_train)))
    backbone = "resnet18" if args.backbone == "auto" else args.backbone
    how = f"fine-tuning {args.encoder}" if encoder else f"from scratch ({backbone})"
    _say(args, f"training on {n_train} labelled galaxies of {len(z)}, {how}")
    model.fit(archive.images, z_train)
    if not getattr(args, "main_process", True):  # under torchrun, rank 0 saves and scores
        return 0
    joblib.dump(model, args.output)
    z_phot = _predict_rows(model, archive.images, score_rows, args.chunk_size, args, "scoring")
    report = photoz_report(z[score_rows], z_phot)
    print(
        f"saved {args.output}; σ_MAD {report['sigma_mad']:.4f}, bias {report['bias']:+.4f}, "
        f"outliers {report['outlier_fraction']:.3f} on {scored_on}"
    )
    return 0


def _quantile_names(quantiles) -> list[str]:
    return [f"z_q{round(q * 100, 6):g}" for q in quantiles]


class _CSVOutput:
    """Predictions written to CSV, chunk by chunk."""

    def __init__(self, path, columns: dict, n_rows: int, **_):
        self.file = open(path, "w", newline="", encoding="utf-8")
        self.columns = columns
        self.file.write(",".join(columns) + "\n")

    def write(self, start: int, values: dict) -> None:
        import numpy as np

        fmt = ["%d" if self.columns[name] == "int64" else "%.7g" for name in self.columns]
        table = np.empty((len(values["row"]), len(self.columns)), dtype=object)
        for j, name in enumerate(self.columns):
            table[:, j] = values[name]
        np.savetxt(self.file, table, fmt=fmt, delimiter=",")

    def close(self) -> None:
        self.file.close()


class _HDF5Output:
    """Predictions written to HDF5: one dataset per column, created up front, filled by chunk."""

    def __init__(self, path, columns: dict, n_rows: int, *, pdf_bins=None, attrs=None):
        import h5py

        self.file = h5py.File(path, "w")
        for name, dtype in columns.items():
            self.file.create_dataset(name, shape=(n_rows,), dtype=dtype)
        if pdf_bins is not None:
            n_bins = len(pdf_bins) - 1
            self.file.create_dataset(
                "pdf",
                shape=(n_rows, n_bins),
                dtype="float32",
                chunks=(min(n_rows, 1024), n_bins),
            )
            self.file.create_dataset("redshift_bins", data=pdf_bins)
        for key, value in (attrs or {}).items():
            self.file.attrs[key] = value

    def write(self, start: int, values: dict) -> None:
        for name, column in values.items():
            self.file[name][start : start + len(column)] = column

    def close(self) -> None:
        self.file.close()


def _output_kind(path) -> str | None:
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    return {".csv": "csv", ".h5": "hdf5", ".hdf5": "hdf5", ".npy": "npy"}.get(suffix)


@contextlib.contextmanager
def _atomic_output(path):
    """Write to ``path + '.partial'`` and rename when complete: no half-written outputs."""
    partial = os.fspath(path) + ".partial"
    try:
        yield partial
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(partial)
        raise
    os.replace(partial, path)


def predict(args) -> int:
    import numpy as np

    _check_output_path(args.output, inputs={"MODEL": args.model, "ARCHIVE": args.archive})
    needed = "a fitted PhotoZRegressor (from `skphotoz fit-photoz`) is needed"
    model = _load_model(args.model, "MODEL", needs=("predict", "predict_pdf"), expected=needed)
    if not hasattr(model, "redshift_bins_"):
        raise ValueError(f"MODEL {args.model!r} holds a {type(model).__name__}; {needed}.")
    _set_runtime(model, args)
    deredden, crop = _preprocessing(model, args.model, deredden=args.deredden, crop=args.crop)
    archive = _open_archive(args.archive, deredden=deredden, crop=crop)
    images = archive.images
    _check_stamps(model, args.model, images, args.archive, crop)
    from .regressor import _pdf_quantiles

    quantiles = list(args.quantiles)
    q_names = _quantile_names(quantiles)
    columns = {"row": "int64"}
    if _has_column(archive, "objid"):
        columns["objid"] = "int64"
    columns["z_pred"] = "float64"
    columns.update({name: "float64" for name in q_names})
    if _has_column(archive, "redshift"):
        columns["redshift"] = "float64"
    n = len(images)
    kind = _output_kind(args.output)
    writer_class = _CSVOutput if kind == "csv" else _HDF5Output
    attrs = {
        "model": os.path.abspath(args.model),
        "archive": os.path.abspath(args.archive),
        "quantiles": np.asarray(quantiles, dtype=np.float64),
        "deredden": deredden,
        "crop": -1 if crop is None else crop,
        "skphotoz_version": __version__,
    }
    spans = _chunks(n, args.chunk_size)
    with _atomic_output(args.output) as partial:
        writer = writer_class(
            partial,
            columns,
            n,
            pdf_bins=model.redshift_bins_ if args.pdf else None,
            attrs=attrs,
        )
        try:
            for start, stop in _progress(args, spans, len(spans), "predicting"):
                X = np.asarray(images[start:stop])
                values = {"row": np.arange(start, stop)}
                if "objid" in columns:
                    values["objid"] = archive.objid[start:stop]
                if quantiles or args.pdf:  # one pass of the network for both
                    values["z_pred"], pdf = model.predict(X, return_pdf=True)
                    if quantiles:
                        q = _pdf_quantiles(pdf, model.redshift_bins_, quantiles)
                        values.update({name: q[:, j] for j, name in enumerate(q_names)})
                    if args.pdf:
                        values["pdf"] = pdf.astype(np.float32)
                else:
                    values["z_pred"] = model.predict(X)
                if "redshift" in columns:
                    values["redshift"] = archive.redshift[start:stop]
                writer.write(start, values)
        finally:
            writer.close()
    extra = f", quantiles {', '.join(q_names)}" if quantiles else ""
    extra += ", the PDFs" if args.pdf else ""
    print(f"wrote redshifts of {n} galaxies to {args.output} (z_pred{extra})")
    return 0


def embed(args) -> int:
    import numpy as np

    _check_output_path(args.output, inputs={"MODEL": args.model, "ARCHIVE": args.archive})
    embedder = _load_model(args.model, "MODEL", needs=("transform",))
    _set_runtime(embedder, args)
    deredden, crop = _preprocessing(embedder, args.model, deredden=args.deredden, crop=args.crop)
    archive = _open_archive(args.archive, deredden=deredden, crop=crop)
    images = archive.images
    _check_stamps(embedder, args.model, images, args.archive, crop)
    n = len(images)
    spans = _chunks(n, args.chunk_size)
    kind = _output_kind(args.output)
    out = handle = None
    with _atomic_output(args.output) as partial:
        try:
            for start, stop in _progress(args, spans, len(spans), "embedding"):
                block = embedder.transform(np.asarray(images[start:stop]))
                if out is None:  # the width is known after the first chunk
                    shape = (n, block.shape[1])
                    if kind == "hdf5":
                        import h5py

                        handle = h5py.File(partial, "w")
                        out = handle.create_dataset("embeddings", shape=shape, dtype=block.dtype)
                        if _has_column(archive, "objid"):
                            handle.create_dataset("objid", data=archive.objid)
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
    print(f"saved ({n}, {shape[1]}) embeddings to {args.output}")
    return 0


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


def _load_embeddings(path):
    """The embeddings written by ``skphotoz embed``: a .npy array, or the dataset
    ``embeddings`` of an HDF5 file; a one-line error naming the file otherwise."""
    import h5py
    import numpy as np

    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            if "embeddings" not in f:
                raise ValueError(
                    f"embeddings {os.fspath(path)!r} is an HDF5 file without a dataset "
                    f"'embeddings' (it holds {sorted(f)}); write one with `skphotoz embed`."
                )
            return f["embeddings"][:]
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(
            f"embeddings {os.fspath(path)!r} is neither a .npy array nor an HDF5 file with a "
            f"dataset 'embeddings' (as `skphotoz embed` writes); numpy says: {exc}"
        ) from exc


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
        ``joblib`` pickle of a fitted transformer (e.g. :class:`skphotoz.MoCoEmbedder`) that
        embeds the archive images; used when ``embeddings_path`` is not given. The archive is
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

    Returns
    -------
    sklearn.utils.Bunch
        ``query_index`` (the query's row), ``indices`` and ``similarities`` of the neighbours
        (the query excluded), ``redshift`` of the neighbours when the archive has it, and
        ``query_redshift``.
    """
    import numpy as np
    from sklearn.utils import Bunch

    from ._validation import check_params, integer

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
        embedder = _load_model(embedder_path, "embedder", needs=("transform",))
        deredden, crop = _preprocessing(embedder, embedder_path, deredden=deredden, crop=crop)
    archive = _open_archive(archive_path, crop=crop, deredden=bool(deredden))
    n = archive.images.shape[0]
    if embedder is not None:
        _check_stamps(embedder, embedder_path, archive.images, archive_path, crop)
    query_index = _query_row(archive, archive_path, query_index, objid)
    check_params("run_search_cli", {"query_index": [integer(0)]}, query_index=query_index)
    if not 0 <= query_index < n:
        raise ValueError(f"query_index must be in [0, {n - 1}]; got {query_index}.")
    if embeddings_path is not None:
        _check_input_file(embeddings_path, "embeddings")
        X = _load_embeddings(embeddings_path)
        if X.ndim != 2 or X.shape[0] != n:
            raise ValueError(
                f"embeddings_path must hold one row per archive galaxy ({n}); got shape {X.shape}."
            )
    else:
        X = archive.images
    from .search import SimilaritySearch

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
        from .plotting import plot_neighbors

        fig = plot_neighbors(
            archive.images, query_index, result.indices, result.similarities, redshift=redshift
        )
        _save_figure(fig, output_png, dpi=120)
    return result


def search(args) -> int:
    if args.plot is not None:
        _check_output_path(args.plot, "--plot")
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
    )
    return 0


# -------------------------------------------------------------------------------- parser
class _HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to every option with a value, unless its help says already;
    descriptions and epilogs written on several lines (examples) are kept as written."""

    def _fill_text(self, text, width, indent):
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" not in text
            and action.option_strings
            and action.nargs != 0
            and default is not None
            and default is not argparse.SUPPRESS
        ):
            if isinstance(default, list | tuple):
                default = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default)
            text += f" (default: {default})"
        return text


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer; got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}; got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0; got {text}")
    return value


def _weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
    if not (0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0; got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1); got {text}")
    return value


def _epochs(text: str):
    if text == "auto":
        return "auto"
    return _int_at_least(1)(text)


def _quantiles(text: str) -> tuple[float, ...]:
    if text.strip().lower() in {"", "none"}:
        return ()
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers in [0, 1] such as 0.16,0.5,0.84; got {text!r}"
        ) from None
    if not all(0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"quantiles must lie in [0, 1]; got {text!r}")
    names = _quantile_names(values)
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"quantiles must differ; got {text!r}")
    return values


def _column(text: str):
    """``PUBLIC=CATALOG`` -> (public, catalog); ``a,b,c`` -> a list; nothing -> None (skip)."""
    public, sep, source = text.partition("=")
    if not sep or not public.strip():
        raise argparse.ArgumentTypeError(
            f"expected PUBLIC=CATALOG such as redshift=Z_BEST; got {text!r}"
        )
    source = source.strip()
    if not source:
        return public.strip(), None
    if "," in source:
        return public.strip(), [part.strip() for part in source.split(",")]
    return public.strip(), source


def _add_global_options(parser, *, default) -> None:
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default,
        help="no progress bars, tables or summaries: only results, warnings and errors",
    )  # fmt: skip
    parser.add_argument(
        "--debug", action="store_true", default=default,
        help="on an error, show the full Python traceback instead of one line",
    )  # fmt: skip


def _add_device(parser, default="auto", default_text: str | None = None) -> None:
    text = "torch device: auto (a CUDA GPU if any, else the CPU), cpu, cuda, cuda:1, mps..."
    if default is None:
        text += f" (default: {default_text})"
    parser.add_argument("--device", default=default, help=text)


def _add_preprocessing(parser, *, model: str | None) -> None:
    """--deredden/--no-deredden and --crop; with a model they default to its own setting."""
    if model is None:
        parser.add_argument(
            "--deredden", action="store_true",
            help="correct the stamps for Galactic extinction (the archive's extinction column) "
            "on read",
        )  # fmt: skip
        parser.add_argument(
            "--crop", type=_int_at_least(1), default=None,
            help="centre-crop the archive stamps to CROP x CROP px on read, e.g. 64 for the "
            "published 107-px archive (default: the full stamp)",
        )  # fmt: skip
        return
    parser.add_argument(
        "--deredden", action=argparse.BooleanOptionalAction, default=None,
        help=f"correct the stamps for Galactic extinction on read (default: as {model} was "
        "fitted, else off; a contradicting flag is an error)",
    )  # fmt: skip
    parser.add_argument(
        "--crop", type=_int_at_least(1), default=None,
        help=f"centre-crop the archive stamps on read (default: as {model} was fitted, else "
        "the full stamp; a contradicting value is an error)",
    )  # fmt: skip


def _add_nan_policy(parser, default_text: str) -> None:
    parser.add_argument(
        "--nan-policy", choices=["raise", "fill"], default=None,
        help="non-finite pixels: raise = stop with an error naming the galaxies, fill = "
        f"replace them by the sky level (default: {default_text})",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skphotoz",
        description="Self-supervised photometric redshifts from ugriz galaxy images.",
        epilog="From a channels-last cube and a CSV catalogue to redshifts:\n"
        "  skphotoz ingest cube.npy --catalog cat.csv --output galaxies.h5\n"
        "  skphotoz pretrain galaxies.h5 --output embedder.joblib\n"
        "  skphotoz fit-photoz galaxies.h5 --encoder embedder.joblib --output photoz.joblib\n"
        "  skphotoz predict photoz.joblib galaxies.h5 --output redshifts.csv\n"
        "Run `skphotoz COMMAND --help` for the options of a command.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "-V", "--version", action="version", version=f"%(prog)s {__version__}",
        help="print the version of skphotoz and exit",
    )  # fmt: skip
    _add_global_options(parser, default=False)
    # The global options are accepted after the command too (without resetting them there).
    common = argparse.ArgumentParser(add_help=False)
    _add_global_options(common, default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help, description=None):
        p = sub.add_parser(
            name, help=help, description=description or help, parents=[common],
            formatter_class=_HelpFormatter,
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
        "--column", type=_column, action="append", default=None, metavar="PUBLIC=CATALOG",
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
        "--chunk-size", type=_int_at_least(1), default=1024, help="galaxies written at a time"
    )
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    p.set_defaults(func=ingest)

    # -- simulate
    p = command("simulate", "write simulated SDSS-like galaxies to an HDF5 archive")
    p.add_argument("output", metavar="OUTPUT", help="HDF5 archive to write")
    p.add_argument("--n", type=_int_at_least(1), required=True, help="galaxies (required)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--stamp-size", type=_int_at_least(8), default=64, help="stamp side in px")
    p.add_argument(
        "--chunk-size", type=_int_at_least(1), default=1024, help="galaxies written at a time"
    )
    p.set_defaults(func=simulate)

    # -- pretrain
    p = command(
        "pretrain",
        "self-supervised (MoCo) pretraining of an image embedder on an HDF5 archive",
        "Pretrain a MoCoEmbedder on every galaxy of an archive, labelled or not, and save it "
        "with joblib. Options left out take the preset's value, else the estimator's default.",
    )
    p.add_argument("archive", metavar="ARCHIVE", help="HDF5 archive (from ingest or simulate)")
    p.add_argument("--output", required=True, help="joblib file of the fitted embedder (required)")
    # The names of MOCO_PRESETS, spelled out so that --help does not import torch.
    p.add_argument(
        "--preset", choices=["published", "published-photometry"], default=None,
        help="published = the configuration of Hayat et al. 2021 (ResNet-50, 107-px stamps, "
        "for GPUs); options given override it (default: none, the estimator's defaults)",
    )  # fmt: skip
    p.add_argument(
        "--backbone", choices=["auto", "resnet18", "resnet34", "resnet50"], default=None,
        help="encoder architecture (default: auto = resnet18)",
    )  # fmt: skip
    p.add_argument(
        "--stem", choices=["standard", "published"], default=None,
        help="ResNet stem: standard (stride 2 + max-pool, for CPUs) or published (stride 1, "
        "for GPUs) (default: standard)",
    )  # fmt: skip
    p.add_argument(
        "--epochs", "--n-epochs", dest="n_epochs", type=_int_at_least(1), default=None,
        help="passes over the archive (default: 30)",
    )  # fmt: skip
    p.add_argument(
        "--batch-size", type=_int_at_least(2), default=None,
        help="galaxies per step (default: 128)",
    )  # fmt: skip
    p.add_argument(
        "--lr", type=_positive_float, default=None, help="peak SGD learning rate (default: 0.06)"
    )
    p.add_argument(
        "--crop-size", type=_int_at_least(1), default=None,
        help="side of the random crops the network sees in training, in px (default: half the "
        "stamp)",
    )  # fmt: skip
    _add_preprocessing(p, model=None)
    _add_device(p, default=None, default_text="the estimator's, auto")
    p.add_argument(
        "--photometry-weight", type=_weight, default=None,
        help="weight of the photometry term (0: plain MoCo) (default: the estimator's, 1)",
    )  # fmt: skip
    p.add_argument(
        "--redshift-weight", type=_weight, default=None,
        help="above 0: semi-supervised, a redshift term learns from the archive's redshifts "
        "(NaN rows stay unlabelled) (default: 0, off)",
    )  # fmt: skip
    _add_nan_policy(p, "raise")
    p.add_argument(
        "--checkpoint-dir", default=None,
        help="folder of a checkpoint written each epoch; running the same command again "
        "resumes from it (default: none)",
    )  # fmt: skip
    p.add_argument(
        "--num-workers", type=_int_at_least(0), default=0,
        help="DataLoader processes reading the archive",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="random seed of weights and batches")
    p.set_defaults(func=pretrain)

    # -- fit-photoz
    p = command(
        "fit-photoz",
        "train a photo-z regressor on the galaxies of an archive that have a redshift",
        "Fit a PhotoZRegressor on the archive's galaxies with a finite redshift (the images "
        "stay on disk), fine-tuning a pretrained embedder (--encoder) or from scratch, save it "
        "with joblib and print its σ_MAD.",
    )
    p.add_argument("archive", metavar="ARCHIVE", help="HDF5 archive with a redshift column")
    p.add_argument("--output", required=True, help="joblib file of the fitted model (required)")
    p.add_argument(
        "--encoder", default=None,
        help="joblib file of a MoCoEmbedder from `skphotoz pretrain` to fine-tune; its "
        "dereddening and crop are used (default: none, train from scratch)",
    )  # fmt: skip
    p.add_argument(
        "--backbone", choices=["auto", "resnet18", "resnet34", "resnet50"], default="auto",
        help="architecture when training from scratch (auto = resnet18)",
    )  # fmt: skip
    p.add_argument(
        "--stem", choices=["standard", "published"], default="standard",
        help="ResNet stem when training from scratch (standard for CPUs, published for GPUs)",
    )  # fmt: skip
    p.add_argument(
        "--head", choices=["bins", "regression"], default="bins",
        help="bins = a PDF over redshift bins; regression = a Gaussian mean and width",
    )  # fmt: skip
    p.add_argument(
        "--photometry", action="store_true",
        help="join each stamp's aperture photometry (measured exactly, on the whole stamp) to "
        "a bottleneck of the image features: the hybrid network (default: images only)",
    )  # fmt: skip
    p.add_argument(
        "--bottleneck", type=_int_at_least(1), default=None,
        help="with --photometry: width of the image features joined to the photometry "
        "(default: the estimator's, 16)",
    )  # fmt: skip
    p.add_argument(
        "--epochs", "--n-epochs", dest="n_epochs", type=_epochs, default="auto",
        help="passes over the labelled galaxies, or auto = enough for --min-steps steps and "
        "at least 30",
    )  # fmt: skip
    p.add_argument(
        "--min-steps", type=_int_at_least(1), default=1000,
        help="optimizer steps of --epochs auto (fewer: quicker, rougher)",
    )  # fmt: skip
    p.add_argument(
        "--batch-size", type=_int_at_least(2), default=128, help="labelled galaxies per step"
    )
    p.add_argument(
        "--lr", type=_positive_float, default=0.3,
        help="peak SGD learning rate of the head (a pretrained encoder gets 0.1 of it)",
    )  # fmt: skip
    _add_device(p)
    _add_preprocessing(p, model="--encoder")
    _add_nan_policy(p, "the estimator's, raise")
    p.add_argument(
        "--holdout", type=_fraction, default=0.0,
        help="fraction of the labelled galaxies kept out of training to score the model on; "
        "0 scores on the training galaxies (optimistic)",
    )  # fmt: skip
    p.add_argument(
        "--chunk-size", type=_int_at_least(1), default=4096,
        help="galaxies read at a time when scoring",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="random seed of weights, batches, holdout")
    p.add_argument(
        "--checkpoint-dir", default=None,
        help="folder of a checkpoint written each epoch; running the same command again "
        "resumes from it (default: none)",
    )  # fmt: skip
    p.add_argument(
        "--num-workers", type=_int_at_least(0), default=0,
        help="DataLoader processes reading the archive",
    )  # fmt: skip
    p.set_defaults(func=fit_photoz)

    # -- predict
    p = command(
        "predict",
        "redshifts (and PDF quantiles) of every galaxy of an archive, to CSV or HDF5",
        "Predict the redshift of every galaxy of an archive with a model from `skphotoz "
        "fit-photoz`, in chunks, and write row, objid (when the archive has it), z_pred, the "
        "PDF quantiles (z_q16, z_q50, z_q84 by default) and the archive's redshift (when it "
        "has one) to CSV or HDF5.",
    )
    p.add_argument("model", metavar="MODEL", help="joblib file from `skphotoz fit-photoz`")
    p.add_argument("archive", metavar="ARCHIVE", help="HDF5 archive of the galaxies to predict")
    p.add_argument("--output", required=True, help="output file: .csv, or .h5/.hdf5 (required)")
    p.add_argument(
        "--quantiles", type=_quantiles, default=DEFAULT_QUANTILES,
        help="comma-separated PDF quantiles, written as columns z_q16 etc.; 'none' for none",
    )  # fmt: skip
    p.add_argument(
        "--pdf", action="store_true",
        help="HDF5 output only: also write the full PDFs (dataset pdf, bin edges redshift_bins)",
    )  # fmt: skip
    p.add_argument(
        "--chunk-size", type=_int_at_least(1), default=4096,
        help="galaxies predicted at a time (bounds the memory used)",
    )  # fmt: skip
    _add_preprocessing(p, model="MODEL")
    _add_device(p, default=None, default_text="the model's own setting")
    _add_nan_policy(p, "the model's own")
    p.set_defaults(func=predict)

    # -- embed
    p = command(
        "embed",
        "embeddings of every galaxy of an archive with a fitted embedder",
        "Embed every galaxy of an archive with a fitted embedder, in chunks, opening the "
        "archive as the embedder was fitted (dereddening, crop).",
    )
    p.add_argument("model", metavar="MODEL", help="joblib file from `skphotoz pretrain`")
    p.add_argument("archive", metavar="ARCHIVE", help="HDF5 archive")
    p.add_argument(
        "--output", required=True,
        help=".npy file, or .h5/.hdf5 (dataset embeddings, with objid when the archive has "
        "it) (required)",
    )  # fmt: skip
    p.add_argument(
        "--chunk-size", type=_int_at_least(1), default=4096, help="galaxies embedded at a time"
    )
    _add_preprocessing(p, model="MODEL")
    _add_device(p, default=None, default_text="the model's own setting")
    _add_nan_policy(p, "the model's own")
    p.set_defaults(func=embed)

    # -- search
    p = command(
        "search",
        "the galaxies of an archive most similar to one of them",
        "Find the galaxies of an archive most similar to a query galaxy (given by its row or "
        "its ObjID), from precomputed embeddings or a fitted embedder.",
    )
    p.add_argument("archive", metavar="ARCHIVE", help="HDF5 archive")
    # ROW and --objid exclude each other; checked in _check_usage, since argparse's
    # exclusive groups would make ROW unusable after the options.
    p.add_argument(
        "query", metavar="ROW", type=_int_at_least(0), nargs="?", default=None,
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
        help="joblib file of a fitted embedder; the archive is opened as it was fitted "
        "(or give --embeddings)",
    )  # fmt: skip
    p.add_argument(
        "-k", "--n-neighbors", type=_int_at_least(1), default=10, help="neighbours to list"
    )
    p.add_argument(
        "--plot", default=None, help="PNG of the query and its neighbours (default: none)"
    )
    _add_preprocessing(p, model="--model")
    p.add_argument(
        "--metric", choices=["cosine", "dot"], default="cosine", help="similarity measure"
    )
    p.add_argument(
        "--backend", choices=["torch", "faiss"], default="torch",
        help="exact search (torch) or faiss (needs the faiss package)",
    )  # fmt: skip
    _add_device(p)
    p.set_defaults(func=search)

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
    p.add_argument("--threads", type=_int_at_least(1), default=2, help="CPU threads")
    p.add_argument("--out", default="demo_output", help="folder of the report and cached data")
    p.set_defaults(func=demo)
    return parser


def _subparser(parser, command: str) -> argparse.ArgumentParser:
    return parser._subparsers._group_actions[0].choices[command]


def _check_usage(parser, args) -> None:
    """Combinations of options that argparse cannot check by itself (exit status 2)."""
    sub = _subparser(parser, args.command)
    if args.command == "predict":
        kind = _output_kind(args.output)
        if kind not in {"csv", "hdf5"}:
            sub.error(f"--output must end in .csv, .h5 or .hdf5; got {args.output!r}")
        if args.pdf and kind != "hdf5":
            sub.error("--pdf needs an HDF5 --output (.h5 or .hdf5); CSV holds no PDFs")
    if args.command == "embed" and _output_kind(args.output) not in {"npy", "hdf5"}:
        sub.error(f"--output must end in .npy, .h5 or .hdf5; got {args.output!r}")
    if args.command == "search" and (args.query is None) == (args.objid is None):
        given = "both" if args.objid is not None else "neither"
        sub.error(f"give the query galaxy as ROW or as --objid, not {given}")
    if args.command == "ingest" and args.column:
        names = [public for public, _ in args.column]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            sub.error(f"--column names {', '.join(repeated)} more than once")


# -------------------------------------------------------------------------- config files
class _ConfigError(Exception):
    """A ``--config`` file that cannot be used; reported as one line, exit status 2."""


def _toml_text(value) -> str:
    """A value read from TOML, with its TOML type: ``the integer 3``, ``the string '3'``."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the float {value!r}"
    if isinstance(value, list):
        text = repr(value)
        return f"the array {text if len(text) <= 60 else text[:57] + '...'}"
    if isinstance(value, dict):
        return f"a table (keys {', '.join(map(repr, value)) or 'none'})"
    return f"the date/time {value}"


def _is_number(value, integer: bool = False) -> bool:
    kinds = int if integer else (int, float)
    return isinstance(value, kinds) and not isinstance(value, bool)


def _config_value(action: argparse.Action, value):
    """``value`` from a config file as the value of ``action``, refused where the command
    line's would be; ValueError ``expected ...; got ...`` otherwise."""

    def wrong(expected: str) -> ValueError:
        return ValueError(f"expected {expected}; got {_toml_text(value)}")

    kind = action.type
    if action.nargs == 0:  # a flag: --deredden, --pdf, --quiet...
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if isinstance(action, argparse._AppendAction):  # repeatable (--column): an array
        items = [value] if isinstance(value, str) else value
        if not (isinstance(items, list) and all(isinstance(item, str) for item in items)):
            raise wrong(f"an array of strings {action.metavar or action.dest.upper()}")
        texts = items
    elif kind is _quantiles:
        if isinstance(value, list) and all(_is_number(v) for v in value):
            texts = [",".join(repr(float(v)) for v in value)]
        elif isinstance(value, str):
            texts = [value]
        else:
            raise wrong('an array of numbers in [0, 1] such as [0.16, 0.5, 0.84], or "none"')
    elif kind is _epochs:
        if not (_is_number(value, integer=True) or value == "auto"):
            raise wrong('an integer >= 1 or "auto"')
        texts = [str(value)]
    elif kind is int or getattr(kind, "__name__", "") == "integer":
        if not _is_number(value, integer=True):
            raise wrong("an integer")
        texts = [str(value)]
    elif kind in (_positive_float, _weight, _fraction):
        if not _is_number(value):
            raise wrong("a number")
        texts = [repr(value)]
    else:
        if not isinstance(value, str):
            raise wrong("a string")
        texts = [value]
    try:
        values = [text if kind is None else kind(text) for text in texts]
    except argparse.ArgumentTypeError as error:
        raise ValueError(str(error)) from None
    if action.choices is not None and values[0] not in action.choices:
        raise wrong(f"one of {', '.join(map(repr, action.choices))}")
    return values if isinstance(action, argparse._AppendAction) else values[0]


def _config_keys(sub: argparse.ArgumentParser) -> dict:
    """{key: action}: a command's long option names without ``--`` and its positional
    arguments (``archive``), dashes for underscores."""
    keys = {}
    for action in sub._actions:
        if action.dest in {"help", "config"}:
            continue
        if not action.option_strings:
            keys[action.dest.replace("_", "-")] = action
        for option in action.option_strings:
            negative = isinstance(action, argparse.BooleanOptionalAction) and option[:5] == "--no-"
            if option.startswith("--") and not negative:
                keys[option[2:]] = action
    return keys


def _find_config(parser: argparse.ArgumentParser, tokens: list[str]):
    """``(command, FILE)`` of ``COMMAND ... --config FILE`` among the raw arguments, found
    before parsing them (the file's values become the defaults of that parse); None if none.
    An option is recognised as argparse recognises it: in full, as ``--config=FILE``, or by a
    prefix that no other option of the command starts with."""
    for i, token in enumerate(tokens):  # before the command come only flags (-q, --debug)
        if token == "--":
            return None
        if not token.startswith("-"):
            command, rest = token, tokens[i + 1 :]
            break
    else:
        return None
    if command not in CONFIG_COMMANDS:
        return None
    options = [name for name in _subparser(parser, command)._option_string_actions]
    options = [name for name in options if name.startswith("--")]
    path = None
    for j, token in enumerate(rest):
        if token == "--":
            break
        name, equals, value = token.partition("=")
        if not name.startswith("--"):
            continue
        matches = [name] if name in options else [o for o in options if o.startswith(name)]
        if matches == ["--config"]:
            if equals:
                path = value
            elif j + 1 < len(rest):
                path = rest[j + 1]
    return None if path is None else (command, path)


def _read_config(path: str) -> dict:
    if not os.path.exists(path):
        raise _ConfigError(f"config file {path!r} does not exist.")
    if os.path.isdir(path):
        raise _ConfigError(f"config file {path!r} is a directory, not a file.")
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise _ConfigError(
                f"reading config file {path!r} needs Python >= 3.11 (tomllib) or the tomli "
                f"package (pip install tomli)."
            ) from None
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise _ConfigError(f"config file {path!r} is not valid TOML: {error}.") from None
    except OSError as error:
        raise _ConfigError(f"config file {path!r} could not be read: {error.strerror}.") from None


def _apply_config(parser: argparse.ArgumentParser, command: str, path: str) -> dict:
    """Make the values of config file ``path`` the defaults of ``command``'s options, so that
    the command line overrides them; each value is checked as argparse checks the command
    line's, and positional arguments and required options it gives become optional.

    Returns ``{dest: value}`` of repeatable options (``--column``), which are set after
    parsing when the command line gives none (a default would be added to), and the
    positional arguments made optional.
    """
    sub = _subparser(parser, command)
    keys = _config_keys(sub)
    set_by, after, optional = {}, {}, []
    for key, value in _read_config(path).items():
        name = key.replace("_", "-")
        action = keys.get(name)
        if action is None:
            import difflib

            close = difflib.get_close_matches(name, keys, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            if name == "config":
                hint = " (a config file cannot name another)"
            raise _ConfigError(
                f"config file {path!r}: unknown key {key!r}{hint}; expected options of "
                f"`skphotoz {command}`: {', '.join(sorted(keys))}."
            )
        if action in set_by:
            raise _ConfigError(
                f"config file {path!r}: keys {set_by[action]!r} and {key!r} name the same "
                f"option; keep one."
            )
        set_by[action] = key
        try:
            value = _config_value(action, value)
        except ValueError as error:
            raise _ConfigError(f"config file {path!r}, key {key!r}: {error}.") from None
        if isinstance(action, argparse._AppendAction):
            after[action.dest] = value
        elif action.default is argparse.SUPPRESS:  # -q, --debug: given after the command
            if value:
                action.default = True
        else:
            action.default = value
            action.required = False
            if not action.option_strings and action.nargs is None:
                action.nargs = "?"  # a positional argument the command line may leave out
                optional.append(action)
    return after, optional


# ---------------------------------------------------------------------------- torchrun
def _main_process() -> bool:
    """False in the processes of rank > 0 of a run started by ``torchrun``: they train but
    neither write the outputs nor print (rank 0 does)."""
    if "RANK" not in os.environ:  # not under torchrun: no need to import torch here
        return True
    from .nn.distributed import is_main_process

    return is_main_process()


def _message(error: BaseException) -> str:
    """The error as one line."""
    if isinstance(error, KeyError) and len(error.args) == 1:
        text = str(error.args[0])
    else:
        text = str(error)
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    known = (ValueError, TypeError, LookupError, OSError, RuntimeError, ImportError)
    if not text:
        return type(error).__name__
    if not isinstance(error, known):
        return f"{type(error).__name__}: {text}"
    return text


@contextlib.contextmanager
def _warnings_as_lines(command: str, show: bool = True):
    """Show each warning as one line, ``<command>: warning: <message>`` (none if not ``show``)."""

    def one_line(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        print(f"{command}: warning: {text}", file=sys.stderr if file is None else file)

    with warnings.catch_warnings():
        warnings.showwarning = one_line
        if not show:
            warnings.simplefilter("ignore")
        yield


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 on success).

    Errors raised by a command are printed as one line on stderr, with status 1 (``--debug``
    lets them propagate with their traceback); Ctrl-C gives status 130; usage errors exit
    through argparse with status 2.
    """
    parser = build_parser()
    tokens = sys.argv[1:] if argv is None else list(argv)
    config = _find_config(parser, tokens)
    after, optional = {}, []
    if config is not None:
        try:
            after, optional = _apply_config(parser, *config)
        except _ConfigError as error:
            print(f"{parser.prog} {config[0]}: error: {error}", file=sys.stderr)
            return 2
    args, extra = parser.parse_known_args(tokens)
    for dest, value in after.items():  # repeatable options the command line does not give
        if getattr(args, dest, None) is None:
            setattr(args, dest, value)
    late_row = len(extra) == 1 and not extra[0].startswith("--")
    if late_row and args.command == "search" and args.query is None:
        # `search ARCHIVE --embeddings E 5`: argparse gives the optional ROW up once ARCHIVE
        # is read; take it from what is left.
        try:
            args.query = _int_at_least(0)(extra[0])
        except argparse.ArgumentTypeError as error:
            _subparser(parser, "search").error(f"argument ROW: {error}")
        extra = []
    if extra and optional and not any(token.startswith("-") for token in extra):
        # `predict MODEL --config FILE ARCHIVE`: once MODEL is read, argparse gives up the
        # positional arguments that the file made optional; take them from what is left.
        left = [action for action in optional if getattr(args, action.dest) is action.default]
        for action, token in zip(left, extra, strict=False):
            setattr(args, action.dest, token)
        extra = extra[len(left) :]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _check_usage(parser, args)
    name = f"{parser.prog} {args.command}"
    # Under torchrun, every process runs the command: pretrain and fit-photoz train on all of
    # them (batches split across ranks), the other commands run on rank 0 only; the processes
    # of rank > 0 write nothing and print nothing but errors.
    args.main_process = _main_process()
    if not args.main_process:
        if args.command not in DISTRIBUTED_COMMANDS:
            return 0
        args.quiet = True
    if args.debug:
        return args.func(args)
    try:
        with _warnings_as_lines(name, show=args.main_process):
            return args.func(args)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except Exception as error:
        print(f"{name}: error: {_message(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
