"""``skphotoz select``: which galaxies of an archive to take spectra of next."""

from __future__ import annotations

import csv
import os
import time

from ._io import (
    atomic_output,
    check_input_file,
    check_output_path,
    has_column,
    load_model,
    open_checked_archive,
    open_for_model,
    progress_bar,
    row_chunks,
    say,
    set_runtime,
)


def _photometry(args, archive):
    """Standardised aperture photometry of every galaxy, computed block by block."""
    import numpy as np

    from ..preprocessing import default_photometry

    images = archive.images
    n = len(images)
    photometry = default_photometry(images.shape[1]).fit(np.asarray(images[:1]))
    out = np.empty((n, photometry.n_features_out_), dtype=np.float32)
    spans = row_chunks(n, args.chunk_size)
    for start, stop in progress_bar(args, spans, len(spans), "photometry"):
        block = np.asarray(images[start:stop])
        # A stamp with NaN pixels has no photometry; it is named with every other such
        # galaxy of the archive (by _standardise), not one block at a time.
        good = np.isfinite(block.reshape(len(block), -1)).all(axis=1)
        out[start:stop] = np.nan
        if good.any():
            out[start:stop][good] = photometry.transform(block[good])
    return out


def _check_finite(features, name: str) -> None:
    """Refuse non-finite features, naming the galaxies' rows and what to do."""
    from .._inputs import all_finite, non_finite_rows, rows_text

    bad = [] if all_finite(features) else non_finite_rows(features)[0]
    if len(bad):
        cause = (
            "stamps with NaN pixels have no photometry; leave those galaxies out of the "
            "archive, or select on embeddings computed with --nan-policy fill"
            if name == "the aperture photometry"
            else "leave those galaxies out, or embed them with --nan-policy fill"
        )
        raise ValueError(
            f"{name} {'is' if len(bad) == 1 else 'are'} NaN or infinite for {len(bad)} "
            f"{'galaxy' if len(bad) == 1 else 'galaxies'} (rows {rows_text(bad)}): a galaxy "
            f"without features cannot be placed among the others; {cause}."
        )


def _standardise(features, name: str):
    """A float32 copy of ``features`` with each column at zero mean and unit variance
    (scikit-learn's StandardScaler, fitted and applied in blocks); refuses non-finite values,
    naming the rows."""
    import numpy as np
    from sklearn.preprocessing import StandardScaler

    _check_finite(features, name)
    spans = row_chunks(len(features), 65536)
    scaler = StandardScaler()
    for start, stop in spans:
        scaler.partial_fit(np.asarray(features[start:stop], dtype=np.float64))
    out = np.empty(features.shape, dtype=np.float32)
    for start, stop in spans:
        out[start:stop] = scaler.transform(np.asarray(features[start:stop], dtype=np.float64))
    return out


def _labelled_rows(path, objids, n_rows: int):
    """Rows already labelled, from a CSV with an ``objid`` or a ``row`` column."""
    import numpy as np

    check_input_file(path, "--labelled")
    # utf-8-sig: a byte-order mark, as spreadsheets write, is not part of the first name.
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = [name.strip().lower() for name in (reader.fieldnames or [])]
        rows = []
        for line in reader:
            values = {k.strip().lower(): (v or "").strip() for k, v in line.items() if k}
            if any(values.values()):  # lines of blanks are skipped, as empty lines are
                rows.append((reader.line_num, values))
    if "objid" in fields:
        column = "objid"
    elif "row" in fields:
        column = "row"
    else:
        raise ValueError(
            f"--labelled {os.fspath(path)!r} must have an 'objid' or a 'row' column; it has "
            f"{fields or 'no header'}."
        )
    values = []
    for i, line in rows:
        text = line.get(column, "")
        try:
            values.append(int(text))
        except ValueError:
            raise ValueError(
                f"--labelled {os.fspath(path)!r}, line {i}: {column} must be an integer; got "
                f"{text!r}."
            ) from None
    values = np.array(values, dtype=np.int64)
    if column == "row":
        outside = values[(values < 0) | (values >= n_rows)]
        if outside.size:
            raise ValueError(
                f"--labelled {os.fspath(path)!r}: rows {outside[:10].tolist()} are outside the "
                f"archive (0 to {n_rows - 1})."
            )
        return np.unique(values)
    if objids is None:
        raise ValueError(
            f"--labelled {os.fspath(path)!r} lists ObjIDs, but the archive has no objid "
            f"column; list rows instead (a 'row' column)."
        )
    order = np.argsort(objids, kind="stable")
    position = np.searchsorted(objids[order], values)
    position = np.minimum(position, len(objids) - 1)
    found = objids[order][position] == values
    if not found.all():
        unknown = values[~found]
        raise ValueError(
            f"--labelled {os.fspath(path)!r}: {unknown.size} ObjID(s) are not in the archive "
            f"(e.g. {unknown[:5].tolist()}); a galaxy outside the archive cannot anchor the "
            f"selection. Remove them or select from an archive that holds them."
        )
    return np.unique(order[position])


def _uncertainty_model(args):
    """--model, loaded and checked before any work: a fitted photo-z model with PDFs."""
    needed = "a fitted PhotoZRegressor (from `skphotoz fit-photoz`) is needed for its PDFs"
    model = load_model(
        args.model,
        "--model",
        trusted=args.trust,
        needs=("predict", "predict_interval"),
        expected=needed,
    )
    set_runtime(model, args)
    return model


def _widths(args, model, n_rows: int):
    """Half-widths of the 68 % interval of --model's redshift PDFs, per galaxy."""
    import numpy as np

    from ..selection import prediction_width

    archive, _, _ = open_for_model(model, args.model, args.archive)
    images = archive.images
    if len(images) != n_rows:
        raise ValueError(f"--model: the archive opened with {len(images)} rows, not {n_rows}.")
    width = np.empty(n_rows)
    spans = row_chunks(n_rows, args.chunk_size)
    for start, stop in progress_bar(args, spans, len(spans), "redshift PDFs"):
        width[start:stop] = prediction_width(model, np.asarray(images[start:stop]))
    return width


def select(args) -> int:
    import numpy as np

    from ..selection import STRATEGIES, make_selection

    check_output_path(
        args.output,
        inputs={
            "ARCHIVE": args.archive,
            "--embeddings": args.embeddings,
            "--model": args.model,
            "--labelled": args.labelled,
        },
    )
    if args.strategy == "uncertainty" and args.model is None:
        raise ValueError(
            "--strategy uncertainty needs a fitted photo-z model (--model photoz.skops): its "
            "redshift PDFs say which galaxies it knows least."
        )
    if args.model is not None and args.strategy != "uncertainty":
        raise ValueError(
            f"--model is read by --strategy uncertainty only; got --strategy {args.strategy}."
        )
    features_kind = args.features or ("embeddings" if args.embeddings else "photometry")
    if features_kind in ("embeddings", "both") and args.embeddings is None:
        raise ValueError(f"--features {features_kind} needs --embeddings (from `skphotoz embed`).")
    if features_kind == "photometry" and args.embeddings is not None:
        raise ValueError(
            "--embeddings is not read with --features photometry; drop it, or use --features "
            "both or embeddings."
        )
    model = _uncertainty_model(args) if args.strategy == "uncertainty" else None
    tick = time.perf_counter()
    archive = open_checked_archive(args.archive, crop=args.crop, deredden=args.deredden)
    n = len(archive.images)
    objids = archive.objid if has_column(archive, "objid") else None
    labelled = (
        np.empty(0, dtype=np.int64)
        if args.labelled is None
        else _labelled_rows(args.labelled, objids, n)
    )
    available = n - len(labelled)
    if args.n > available:
        raise ValueError(
            f"--n {args.n} is more than the {available} galaxies of the archive without a "
            f"redshift ({n} galaxies, {len(labelled)} labelled)."
        )
    embeddings = None
    if features_kind in ("embeddings", "both"):
        check_input_file(args.embeddings, "--embeddings")
        from ..data import load_embeddings

        embeddings = load_embeddings(args.embeddings)
        if embeddings.ndim != 2 or len(embeddings) != n:
            raise ValueError(
                f"--embeddings {args.embeddings!r} has shape {embeddings.shape}; the archive "
                f"has {n} galaxies, so one row of features per galaxy is needed."
            )
    groups = []
    if features_kind in ("photometry", "both"):
        groups.append(_standardise(_photometry(args, archive), "the aperture photometry"))
    if embeddings is not None:
        if features_kind == "embeddings":
            _check_finite(embeddings, "the embeddings")
            groups.append(embeddings)
        else:
            groups.append(_standardise(embeddings, "the embeddings"))
    if len(groups) == 1:
        features = groups[0]
    else:
        # Each group weighs the same in distances, whatever its number of columns.
        features = np.concatenate(
            [g / np.float32(np.sqrt(g.shape[1])) for g in groups], axis=1
        ).astype(np.float32)
    strategy = make_selection(args.strategy, random_state=args.seed)
    say(
        args,
        f"selecting {args.n} of {available} galaxies ({STRATEGIES[args.strategy]}; "
        f"{features_kind}, {features.shape[1]} features)...",
    )
    if args.strategy == "uncertainty":
        width = _widths(args, model, n)
        rows = strategy.select(features, args.n, labelled=labelled, uncertainty=width)
    else:
        rows = strategy.select(features, args.n, labelled=labelled)
    with atomic_output(args.output) as partial:
        with open(partial, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["rank", "row", "objid", "strategy"])
            for rank, row in enumerate(rows, start=1):
                objid = int(objids[row]) if objids is not None else -1
                writer.writerow([rank, int(row), objid, args.strategy])
    say(args, f"selected in {time.perf_counter() - tick:.1f} s")
    print(f"wrote {len(rows)} targets to {args.output} (rank, row, objid, strategy)")
    return 0
