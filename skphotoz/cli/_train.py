"""The training commands, ``pretrain`` (a MoCoEmbedder) and ``fit-photoz`` (a
PhotoZRegressor).

Their options that are estimator parameters default to None in the parser, meaning the
estimator's own default: :func:`_estimator_params` reads it from the estimator's signature
when the command runs, so that no default is copied into the command line.
"""

from __future__ import annotations

from ._io import (
    check_output_path,
    load_model,
    open_checked_archive,
    open_for_model,
    progress_bar,
    row_chunks,
    save_model,
    say,
)
from ._options import TRAINING_OPTIONS

# fit-photoz scores the model on at most this many rows (a random subset beyond).
_MAX_SCORE_ROWS = 10_000
#: The parameters of MoCoEmbedder that the options of ``pretrain`` set (dest = parameter name).
PRETRAIN_PARAMS = (*TRAINING_OPTIONS, "crop_size", "photometry_weight", "redshift_weight")
#: The parameters of PhotoZRegressor that the options of ``fit-photoz`` set.
FIT_PHOTOZ_PARAMS = (*TRAINING_OPTIONS, "head", "photometry", "bottleneck", "min_steps")


def _estimator_params(estimator, args, names, preset=None) -> dict:
    """``{name: value}`` of the parameters ``names`` of ``estimator`` (a class): the option's
    value when given (on the command line or in ``--config``), else the ``preset``'s, else the
    estimator's default, read from the signature of its ``__init__``."""
    import inspect

    defaults = inspect.signature(estimator).parameters
    params = {}
    for name in names:
        value = getattr(args, name)
        if value is None:
            value = (preset or {}).get(name, defaults[name].default)
        params[name] = value
    return params


def pretrain_params(args) -> dict:
    """The parameters of the MoCoEmbedder that ``skphotoz pretrain`` fits: the options given,
    else the ``--preset``'s values, else the estimator's defaults."""
    from .. import MOCO_PRESETS, MoCoEmbedder

    preset = dict(MOCO_PRESETS[args.preset]) if args.preset else {}
    return {
        **preset,
        **_estimator_params(MoCoEmbedder, args, PRETRAIN_PARAMS, preset),
        "random_state": args.seed,
        "verbose": not args.quiet,
    }


def fit_photoz_params(args, encoder=None) -> dict:
    """The parameters of the PhotoZRegressor that ``skphotoz fit-photoz`` fits: the options
    given, else the estimator's defaults; ``encoder`` is the fitted embedder to fine-tune,
    whose architecture makes ``--backbone`` and ``--stem`` moot."""
    from .. import PhotoZRegressor

    names = FIT_PHOTOZ_PARAMS
    if encoder is not None:
        names = tuple(name for name in names if name not in ("backbone", "stem"))
    return {
        "encoder": encoder,
        **_estimator_params(PhotoZRegressor, args, names),
        "random_state": args.seed,
        "verbose": not args.quiet,
    }


def pretrain(args) -> int:
    from .. import MoCoEmbedder

    check_output_path(args.output, inputs={"ARCHIVE": args.archive})
    params = pretrain_params(args)
    archive = open_checked_archive(
        args.archive, deredden=args.deredden, crop=args.crop, cache=args.cache
    )
    size = archive.images.shape[-1]
    if args.preset and args.crop_size is None and (params["crop_size"] or 0) > size:
        raise ValueError(
            f"--preset {args.preset} trains on crops of {params['crop_size']} px, but the stamps "
            f"of {args.archive} are {size} px; give --crop-size (at most {size})."
        )
    embedder = MoCoEmbedder(**params)
    labels = None
    if args.redshift_weight:  # semi-supervised: the archive's redshifts, NaN = unlabelled
        if "redshift" not in archive:
            raise ValueError(f"--redshift-weight: {args.archive} has no redshift column.")
        labels = archive.redshift
    embedder.fit(archive.images, labels)
    if getattr(args, "main_process", True):  # under torchrun, rank 0 alone
        save_model(embedder, args.output)
        print(f"saved {args.output}; final loss {embedder.history_[-1]['loss']:.4f}")
    return 0


def _labelled_redshifts(archive, archive_path):
    """The archive's redshift column with every non-finite value as NaN (unlabelled)."""
    import numpy as np

    from .._inputs import check_redshifts

    if archive.get("redshift") is None:
        raise ValueError(f"archive {archive_path!r} has no redshift column to train on.")
    z = np.asarray(archive.redshift, dtype=np.float64).copy()
    z[~np.isfinite(z)] = np.nan
    # found before training, not when scoring after it
    check_redshifts(
        z, f"archive {archive_path!r}: redshift", allow_nan=True, advice="Write them as NaN."
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
    spans = row_chunks(len(rows), chunk_size)
    for start, stop in progress_bar(args, spans, len(spans), description):
        out[start:stop] = model.predict(np.asarray(images[rows[start:stop]]))
    return out


def fit_photoz(args) -> int:
    import numpy as np

    from .. import PhotoZRegressor
    from ..metrics import photoz_report

    check_output_path(args.output, inputs={"ARCHIVE": args.archive, "--encoder": args.encoder})
    encoder = embedder = None
    if args.encoder is not None:
        needed = "a fitted MoCoEmbedder (from `skphotoz pretrain`) is needed"
        embedder = load_model(
            args.encoder, "--encoder", trusted=args.trust, needs=("transform",), expected=needed
        )
        if not hasattr(embedder, "moco_"):
            raise ValueError(
                f"--encoder {args.encoder!r} holds a {type(embedder).__name__}; {needed}."
            )
        encoder = embedder  # the object: the file is read (and trusted or not) once
    archive, _, _ = open_for_model(
        embedder,
        args.encoder,
        args.archive,
        deredden=args.deredden,
        crop=args.crop,
        cache=args.cache,
    )
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
    params = fit_photoz_params(args, encoder)
    model = PhotoZRegressor(**params)
    n_train = int(np.count_nonzero(~np.isnan(z_train)))
    if encoder is not None:
        how = f"fine-tuning {args.encoder}"
    else:
        how = f"from scratch ({'resnet18' if params['backbone'] == 'auto' else params['backbone']})"
    say(args, f"training on {n_train} labelled galaxies of {len(z)}, {how}")
    model.fit(archive.images, z_train)
    if not getattr(args, "main_process", True):  # under torchrun, rank 0 saves and scores
        return 0
    save_model(model, args.output)
    z_phot = _predict_rows(model, archive.images, score_rows, args.chunk_size, args, "scoring")
    report = photoz_report(z[score_rows], z_phot)
    print(
        f"saved {args.output}; σ_MAD {report['sigma_mad']:.4f}, bias {report['bias']:+.4f}, "
        f"outliers {report['outlier_fraction']:.3f} on {scored_on}"
    )
    return 0
