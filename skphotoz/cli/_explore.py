"""The command ``explore``: a local web page over an archive (:mod:`skphotoz.explore`)."""

from __future__ import annotations

import os
import time

from ._io import check_input_file, check_stamps, load_model, preprocessing_options, say


def _preprocessing(models: dict, args) -> tuple[bool, int | None]:
    """How to open the archive: as the embedder and the model were fitted (they must agree),
    else the flags."""
    chosen = None
    for path, model in models.items():
        options = preprocessing_options(model, path, deredden=args.deredden, crop=args.crop)
        if getattr(model, "preprocessing_", None) is None:
            continue
        if chosen is not None and options != chosen[1]:
            raise ValueError(
                f"{chosen[0]!r} was fitted on stamps opened with deredden, crop = {chosen[1]} "
                f"but {os.fspath(path)!r} with {options}; give models fitted alike."
            )
        chosen = (os.fspath(path), options)
    if chosen is not None:
        return chosen[1]
    return bool(args.deredden), args.crop


def build_explorer(args):
    """The :class:`~skphotoz.explore.Explorer` that ``args`` describe."""
    from ..data import load_embeddings
    from ..explore import Explorer
    from ._io import open_checked_archive

    check_input_file(args.archive, "archive")
    models = {}
    embedder = model = None
    if args.embedder is not None:
        embedder = load_model(args.embedder, "--embedder", trusted=args.trust, needs=("transform",))
        models[args.embedder] = embedder
    if args.model is not None:
        model = load_model(
            args.model, "--model", trusted=args.trust, needs=("predict",),
            expected="a photo-z model is needed",
        )  # fmt: skip
        models[args.model] = model
    deredden, crop = _preprocessing(models, args)
    archive = open_checked_archive(args.archive, deredden=deredden, crop=crop)
    for path, fitted in models.items():  # the stamps each model was fitted on
        check_stamps(fitted, path, archive.images, args.archive, crop)
    embeddings = None
    if args.embeddings is not None:
        check_input_file(args.embeddings, "embeddings")
        embeddings = load_embeddings(args.embeddings)
    cache = None if args.no_cache else ("auto" if args.cache_dir is None else args.cache_dir)
    return Explorer(
        args.archive, embeddings=embeddings, embedder=embedder, model=model,
        deredden=deredden, crop=crop, n_neighbors=args.n_neighbors, map_method=args.map,
        index=args.index, cache_dir=cache, progress=not args.quiet,
    )  # fmt: skip


def _check(explorer, args) -> int:
    """Answer one request of each kind through the application and print the times."""
    from ..explore import create_app

    client = create_app(explorer).test_client()
    row = int(explorer.anomalies(1)[0]["row"])
    for name, url in (
        ("info", "/api/info"),
        ("map", "/api/map"),
        ("galaxy (neighbours, PDF)", f"/api/galaxy/{row}"),
        ("stamp", f"/stamp/{row}.png"),
        ("anomalies", "/api/anomalies?n=24"),
        ("page", "/"),
    ):
        tick = time.perf_counter()
        response = client.get(url)
        elapsed = time.perf_counter() - tick
        if response.status_code != 200:
            raise RuntimeError(
                f"{url} answered {response.status_code}: {response.get_data()[:200]}"
            )
        say(args, f"  {name:<26} {1000 * elapsed:8.1f} ms  ({len(response.get_data()):,} bytes)")
        response.close()
    return 0


def explore(args) -> int:
    from ..explore import serve

    if args.host not in {"127.0.0.1", "localhost", "::1"}:
        say(args, f"warning: --host {args.host} lets other computers on the network see the page")
    tick = time.perf_counter()
    explorer = build_explorer(args)
    say(
        args,
        f"ready in {time.perf_counter() - tick:.1f} s: {explorer.n_galaxies:,} galaxies, "
        f"{explorer.map_method_.upper()} map, {explorer.index_} index",
    )
    if args.check:
        return _check(explorer, args)
    serve(explorer, host=args.host, port=args.port, announce=lambda text: say(args, text))
    return 0
