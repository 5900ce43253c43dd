"""The commands that make and check archives, ``ingest``, ``simulate`` and ``verify``, and
``demo``."""

from __future__ import annotations

import os
import time

from ._io import check_input_file, check_output_path, progress_bar, say


def demo(args) -> int:
    """The showcase on the embedded data; every number printed is computed here and now."""
    from .._demo import run_demo

    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise FileExistsError(
            f"--out {args.out!r} is a file; the demo writes a folder of outputs: give a folder "
            f"(new or existing)."
        )
    parent = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"--out: the folder {parent!r} does not exist.")
    mode = "quick" if args.quick else "full" if args.full else "default"
    run_demo(mode, out=args.out, threads=args.threads)
    return 0


# Suffixes of other formats: an archive written under one of them would be misread later.
_NOT_HDF5 = (".csv", ".txt", ".npy", ".npz", ".fits", ".fit", ".skops", ".joblib", ".pkl", ".json")


def simulate(args) -> int:
    from ..datasets import write_sdss_galaxies

    check_output_path(args.output, "OUTPUT")
    if os.path.exists(args.output) and not args.overwrite:
        raise FileExistsError(f"OUTPUT {args.output!r} exists; pass --overwrite to replace it.")
    if os.path.splitext(args.output)[1].lower() in _NOT_HDF5:
        raise ValueError(
            f"OUTPUT {args.output!r}: simulate writes an HDF5 archive; name it .h5 or .hdf5."
        )
    tick = time.perf_counter()
    write_sdss_galaxies(
        args.output, args.n, random_state=args.seed, stamp_size=args.stamp_size,
        chunk_size=args.chunk_size,
    )  # fmt: skip
    elapsed = time.perf_counter() - tick
    print(f"wrote {args.n} galaxies to {args.output} in {elapsed:.1f} s ({args.n / elapsed:.0f}/s)")
    return 0


def ingest(args) -> int:
    from .. import data

    if args.catalog is not None:
        check_input_file(args.catalog, "--catalog")
    check_output_path(args.output, inputs={"IMAGES": args.images, "--catalog": args.catalog})
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
    say(
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


def verify(args) -> int:
    """Read every chunk of an archive; status 1 and the damaged rows if any fail."""
    from ..data import verify_archive
    from ..data._checksum import row_ranges, rows_word
    from ..exceptions import DamagedDataError

    check_input_file(args.archive, "archive")
    tick = time.perf_counter()
    report = verify_archive(
        args.archive, progress=lambda steps, total, what: progress_bar(args, steps, total, what)
    )
    elapsed = time.perf_counter() - tick
    unchecked = sorted(name for name, yes in report.checksummed.items() if not yes)
    if unchecked:
        say(
            args,
            f"note: {', '.join(unchecked)} carry no checksums (written before skphotoz wrote "
            f"them, or by another tool): damage inside their chunks cannot be detected.",
        )
    if len(report.nonfinite_rows):
        say(
            args,
            f"note: {rows_word(report.nonfinite_rows)} {row_ranges(report.nonfinite_rows)} "
            f"of images {'holds' if len(report.nonfinite_rows) == 1 else 'hold'} NaN or "
            f"infinite pixels (masked pixels, or damage where there are no checksums).",
        )
    if report.damaged:
        listed = "; ".join(
            f"{name}: rows {row_ranges(rows)}" for name, rows in sorted(report.damaged.items())
        )
        raise DamagedDataError(
            f"archive {args.archive!r} is damaged: {listed} fail their checksum or cannot be "
            f"read. Restore the file from a copy, or leave those galaxies out."
        )
    checked = len(report.checksummed) - len(unchecked)
    print(
        f"{args.archive}: {report.n_chunks} chunks of {len(report.checksummed)} datasets read "
        f"in {elapsed:.1f} s; {checked} carry checksums, all of which match."
    )
    return 0
