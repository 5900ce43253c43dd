"""What the commands share: messages, checks of input and output paths, archives and models
opened with errors that name the file, the preprocessing a model remembers, and the writers of
outputs (CSV/HDF5 tables, written to ``FILE.partial`` and renamed when complete).

Only the standard library is imported here; numpy, h5py, skops, joblib and scikit-learn are imported
by the functions that use them.
"""

from __future__ import annotations

import contextlib
import os
import sys


def say(args, *lines) -> None:
    """Information and progress for people (suppressed by --quiet)."""
    if not args.quiet:
        for line in lines:
            print(line)


def progress_bar(args, iterable, total: int, description: str):
    """A progress bar over chunks on stderr (none with --quiet)."""
    if args.quiet:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=description, leave=False, file=sys.stderr)


def check_input_file(path, what: str) -> None:
    """Fail early, by name, on an input path that is missing or not a file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} {os.fspath(path)!r} does not exist.")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} {os.fspath(path)!r} is a directory, not a file.")


def check_output_path(path, what: str = "--output", inputs: dict | None = None) -> None:
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


def open_checked_archive(path, *, crop=None, deredden=False, cache=None):
    """:func:`skphotoz.data.open_archive` with errors that name the file."""
    import h5py

    from ..data import open_archive

    check_input_file(path, "archive")
    if not h5py.is_hdf5(path):
        raise ValueError(
            f"archive {os.fspath(path)!r} is not an HDF5 file; write one with `skphotoz ingest` "
            f"or skphotoz.data.write_archive."
        )
    return open_archive(path, crop=crop, deredden=deredden, cache=cache)


def load_model(
    path, what: str, *, trusted: bool = False, needs: tuple[str, ...] = (), expected: str = ""
):
    """Load a model file with :func:`skphotoz.io.load`, checking that it is fitted and has
    the methods ``needs`` (``expected`` says what kind of model the command needs).

    A pickle (joblib) file loads only with ``trusted`` (``--trust``): loading one runs the
    code it carries.
    """
    check_input_file(path, what)
    from ..exceptions import UntrustedFileError
    from ..io import load

    try:
        model = load(path, trusted=trusted)
    except UntrustedFileError as error:
        if error.types:
            raise UntrustedFileError(f"{what}: {error}", error.types) from None
        raise UntrustedFileError(
            f"{what} {os.fspath(path)!r} is a pickle (joblib) file: a pickle runs any code it "
            f"carries when it is loaded. Add --trust if you trust whoever wrote it (and save "
            f"models as .skops files, which cannot run code, to share them)."
        ) from None
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


def save_model(model, path) -> str:
    """Write ``model`` to ``path``: a skops file (safe to share), or a joblib pickle when the
    name ends in .joblib, .pkl or .pickle; written to ``FILE.partial`` and renamed when
    complete. Returns the format written."""
    from ..io import PICKLE_SUFFIXES, dump

    if os.fspath(path).lower().endswith(PICKLE_SUFFIXES):
        import joblib

        with atomic_output(path) as partial:
            joblib.dump(model, partial)
        return "joblib"
    dump(model, path)
    return "skops"


def has_column(archive, name: str) -> bool:
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


def preprocessing_options(
    model, model_path, *, deredden=None, crop=None
) -> tuple[bool, int | None]:
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


def check_stamps(model, model_path, images, archive_path, crop) -> None:
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


def open_for_model(model, model_path, archive_path, *, deredden=None, crop=None, cache=None):
    """ARCHIVE opened as ``model`` was fitted on (its remembered preprocessing, else the
    flags; ``model`` None: the flags), its stamps checked against the model's input shape;
    returns the archive and the ``deredden``, ``crop`` used."""
    deredden, crop = preprocessing_options(model, model_path, deredden=deredden, crop=crop)
    archive = open_checked_archive(archive_path, deredden=deredden, crop=crop, cache=cache)
    check_stamps(model, model_path, archive.images, archive_path, crop)
    return archive, deredden, crop


def set_runtime(model, args) -> None:
    """Apply --device / --nan-policy to a loaded model when they are given."""
    params = {}
    if getattr(args, "device", None) is not None:
        params["device"] = args.device
    if getattr(args, "nan_policy", None) is not None:
        params["nan_policy"] = args.nan_policy
    if params:
        model.set_params(**params)


def row_chunks(n: int, size: int):
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def save_figure(fig, path, dpi: int) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def quantile_names(quantiles) -> list[str]:
    return [f"z_q{round(q * 100, 6):g}" for q in quantiles]


class CSVOutput:
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


class HDF5Output:
    """Predictions written to HDF5: one dataset per column, created up front, filled by chunk."""

    def __init__(self, path, columns: dict, n_rows: int, *, pdf_bins=None, attrs=None):
        import h5py

        self.file = h5py.File(path, "w")
        # Checksummed, like the archives: damage is refused on read, not returned as numbers.
        for name, dtype in columns.items():
            self.file.create_dataset(
                name, shape=(n_rows,), dtype=dtype, chunks=(min(n_rows, 8192),), fletcher32=True
            )
        if pdf_bins is not None:
            n_bins = len(pdf_bins) - 1
            self.file.create_dataset(
                "pdf",
                shape=(n_rows, n_bins),
                dtype="float32",
                chunks=(min(n_rows, 1024), n_bins),
                fletcher32=True,
            )
            self.file.create_dataset("redshift_bins", data=pdf_bins, fletcher32=True)
        for key, value in (attrs or {}).items():
            self.file.attrs[key] = value

    def write(self, start: int, values: dict) -> None:
        for name, column in values.items():
            self.file[name][start : start + len(column)] = column

    def close(self) -> None:
        self.file.close()


def output_kind(path) -> str | None:
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    return {".csv": "csv", ".h5": "hdf5", ".hdf5": "hdf5", ".npy": "npy"}.get(suffix)


@contextlib.contextmanager
def atomic_output(path):
    """Write to ``path + '.partial'`` and rename when complete: no half-written outputs."""
    partial = os.fspath(path) + ".partial"
    try:
        with open(partial, "wb"):  # fails here, naming the output, not deep in a writer
            pass
    except OSError as error:
        raise OSError(f"cannot write {os.fspath(path)!r}: {error.strerror}") from None
    try:
        yield partial
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(partial)
        raise
    os.replace(partial, path)
