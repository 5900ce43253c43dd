"""The commands that make archives, ``ingest`` and ``simulate``, and ``demo``."""

from __future__ import annotations

import time

from ._io import check_input_file, check_output_path, say


def demo(args) -> int:
    """The showcase on the embedded data; every number printed is computed here and now."""
    from .._demo import run_demo

    mode = "quick" if args.quick else "full" if args.full else "default"
    run_demo(mode, out=args.out, threads=args.threads)
    return 0


def simulate(args) -> int:
    from ..datasets import write_sdss_galaxies

    check_output_path(args.output, "OUTPUT")
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
