"""The pieces of the parser: its help formatter, the types that check option values as argparse
reads them (a config file's values go through them too), and the options that several commands
share, declared once.
"""

from __future__ import annotations

import argparse

from ._io import quantile_names

#: Redshift quantiles written by ``skphotoz predict`` unless ``--quantiles`` says otherwise.
DEFAULT_QUANTILES = (0.16, 0.5, 0.84)
#: The help of an option whose default is None, meaning the estimator's own default: the value
#: is read from the estimator's signature when the command runs (``_train._estimator_params``),
#: so that the command line holds no copy of it to drift.
ESTIMATORS_DEFAULT = "(default: the estimator's)"
#: The options that ``pretrain`` and ``fit-photoz`` share that are parameters of their
#: estimators (dest = parameter name); ``--seed``, shared too, is the command line's own.
TRAINING_OPTIONS = (
    "backbone",
    "stem",
    "n_epochs",
    "batch_size",
    "lr",
    "device",
    "nan_policy",
    "checkpoint_dir",
    "num_workers",
    "shuffle_buffer",
)


class HelpFormatter(argparse.HelpFormatter):
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


def int_at_least(low: int, high: int | None = None):
    """An argparse type: an integer >= ``low`` (and <= ``high`` when given)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer; got {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f">= {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"expected an integer {bounds}; got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0; got {text}")
    return value


def weight_option(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
    if not (0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0; got {text}")
    return value


def fraction_option(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1); got {text}")
    return value


def epochs_option(text: str):
    if text == "auto":
        return "auto"
    return int_at_least(1)(text)


def quantiles_option(text: str) -> tuple[float, ...]:
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
    names = quantile_names(values)
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"quantiles must differ; got {text!r}")
    return values


def column_option(text: str):
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


def add_global_options(parser, *, default) -> None:
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default,
        help="no progress bars, tables or summaries: only results, warnings and errors",
    )  # fmt: skip
    parser.add_argument(
        "--debug", action="store_true", default=default,
        help="on an error, show the full Python traceback instead of one line",
    )  # fmt: skip


def add_device(parser, default="auto", default_text: str | None = None) -> None:
    text = "torch device: auto (a CUDA GPU if any, else the CPU), cpu, cuda, cuda:1, mps..."
    if default is None:
        text += f" (default: {default_text})"
    parser.add_argument("--device", default=default, help=text)


def add_preprocessing(parser, *, model: str | None) -> None:
    """--deredden/--no-deredden and --crop; with a model they default to its own setting."""
    if model is None:
        parser.add_argument(
            "--deredden", action="store_true",
            help="correct the stamps for Galactic extinction (the archive's extinction column) "
            "on read",
        )  # fmt: skip
        parser.add_argument(
            "--crop", type=int_at_least(1), default=None,
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
        "--crop", type=int_at_least(1), default=None,
        help=f"centre-crop the archive stamps on read (default: as {model} was fitted, else "
        "the full stamp; a contradicting value is an error)",
    )  # fmt: skip


def add_trust(parser, model: str) -> None:
    """--trust: allow ``model`` to be a pickle (joblib) file, which runs code when loaded."""
    parser.add_argument(
        "--trust", action="store_true",
        help=f"allow {model} to be a joblib/pickle file: loading a pickle runs any code it "
        "carries, so only for files from someone you trust (.skops files need no --trust)",
    )  # fmt: skip


def add_nan_policy(parser, default_text: str) -> None:
    parser.add_argument(
        "--nan-policy", choices=["raise", "fill"], default=None,
        help="non-finite pixels: raise = stop with an error naming the galaxies, fill = "
        f"replace them by the sky level (default: {default_text})",
    )  # fmt: skip


def add_training_options(parser, *, epochs=None, **help_texts: str) -> None:
    """The options of :data:`TRAINING_OPTIONS` and ``--seed``, shared by ``pretrain`` and
    ``fit-photoz``; ``epochs`` is the type of ``--epochs`` (default: an integer >= 1) and
    ``help_texts`` ({dest: text}) words an option's help for the command.

    Each estimator option defaults to None, the estimator's own default, filled in when the
    command runs. ``--seed`` is 0 in both commands, so that a run is repeatable (the
    estimators' ``random_state`` is None).
    """
    text = {
        "backbone": "encoder architecture (auto = resnet18)",
        "stem": "ResNet stem: standard (stride 2 + max-pool, for CPUs) or published (stride 1, "
        "for GPUs)",
        "n_epochs": "passes over the galaxies",
        "batch_size": "galaxies per step",
        "lr": "peak SGD learning rate",
        "checkpoint_dir": "folder of a checkpoint written each epoch; running the same command "
        "again resumes from it",
        "num_workers": "DataLoader processes reading the archive",
        "shuffle_buffer": "read the archive in contiguous blocks in random order, about this "
        "many galaxies at a time, shuffled within (for archives on slow disks); without it, "
        "a uniform shuffle",
        "seed": "random seed of weights and batches",
        **help_texts,
    }
    unknown = set(help_texts) - set(text)
    if unknown:
        raise ValueError(f"no training option {sorted(unknown)}")

    def add(*flags, dest, **kwargs):
        parser.add_argument(
            *flags, dest=dest, default=None, help=f"{text[dest]} {ESTIMATORS_DEFAULT}", **kwargs
        )

    add("--backbone", dest="backbone", choices=["auto", "resnet18", "resnet34", "resnet50"])
    add("--stem", dest="stem", choices=["standard", "published"])
    add("--epochs", "--n-epochs", dest="n_epochs", type=epochs or int_at_least(1))
    add("--batch-size", dest="batch_size", type=int_at_least(2))
    add("--lr", dest="lr", type=positive_float)
    add_device(parser, default=None, default_text="the estimator's")
    add_nan_policy(parser, "the estimator's")
    add("--checkpoint-dir", dest="checkpoint_dir")
    add("--num-workers", dest="num_workers", type=int_at_least(0))
    add("--shuffle-buffer", dest="shuffle_buffer", type=int_at_least(1))
    parser.add_argument(
        "--cache", choices=["exact", "float16"], default=None,
        help="keep the stamps read in memory, so that only the first epoch reads the archive "
        "(for archives that fit in RAM; float16: half the memory, rounded to 11 significant "
        "bits; use with --num-workers 0) (default: read the archive every epoch)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int_at_least(0), default=0, help=text["seed"])
