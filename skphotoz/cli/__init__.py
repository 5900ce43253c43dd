"""Command line: ``skphotoz ingest|simulate|verify|pretrain|fit-photoz|predict|embed|search|
select|explore|demo``.

Only argparse and the standard library are imported at module level: ``skphotoz --help`` and
``skphotoz <command> --help`` must answer at once, without loading PyTorch or scikit-learn.
Each command imports what it needs when it runs.

Errors are reported as one line, ``skphotoz <command>: error: <message>``, on stderr with exit
status 1 (2 for usage errors, as argparse does; 130 after Ctrl-C); ``--debug`` shows the full
traceback instead. Warnings are shown as one line too, ``skphotoz <command>: warning: ...``.

The long-running commands take ``--config FILE.toml``, whose keys are their long option names
and positional arguments; the command line overrides the file, and a key or value the command
would refuse is a one-line error (status 2) naming the file and the key. Under ``torchrun``,
``pretrain`` and ``fit-photoz`` train on every process, ``predict`` and ``embed`` split their
galaxies across the processes (rank 0 gathers and writes), and the other commands run on rank
0 only; the processes of rank > 0 write no output and print nothing but errors.

The package: ``_parser`` and ``_options`` build the parser (``_options`` declares the options
that commands share, such as the training options of ``pretrain`` and ``fit-photoz``),
``_config`` reads ``--config`` files, ``_io`` holds what the commands share (paths, archives,
models, output writers), and ``_data`` (ingest, simulate, demo), ``_train`` (pretrain,
fit-photoz), ``_predict`` (predict, embed, search), ``_select`` (select) and ``_explore``
(explore) the commands.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings

from ._config import ConfigError, apply_config, find_config
from ._data import demo, ingest, simulate, verify
from ._explore import explore
from ._options import DEFAULT_QUANTILES, int_at_least
from ._parser import CONFIG_COMMANDS, build_parser, check_usage, subparser
from ._predict import embed, predict, run_search_cli, search
from ._select import select
from ._train import fit_photoz, pretrain

__all__ = [
    "main",
    "build_parser",
    "run_search_cli",
    "ingest",
    "simulate",
    "pretrain",
    "fit_photoz",
    "predict",
    "embed",
    "search",
    "demo",
    "verify",
    "select",
    "explore",
    "DEFAULT_QUANTILES",
    "CONFIG_COMMANDS",
    "DISTRIBUTED_COMMANDS",
    "SPLIT_COMMANDS",
]

#: Commands that train on every process of a ``torchrun`` launch.
DISTRIBUTED_COMMANDS = ("pretrain", "fit-photoz")
#: Commands that split their inference across the processes of a ``torchrun`` launch: each
#: runs its share of every block of galaxies, rank 0 gathers and writes. The other commands run
#: on rank 0 only.
SPLIT_COMMANDS = ("predict", "embed")


def _command(name: str):
    """The function that runs command ``name`` (``fit-photoz``: :func:`fit_photoz`), looked up
    in this module when the command runs (so that it can be replaced, as tests do)."""
    return globals()[name.replace("-", "_")]


def main_rank() -> bool:
    """False in the processes of rank > 0 of a run started by ``torchrun``: they train but
    neither write the outputs nor print (rank 0 does)."""
    if "RANK" not in os.environ:  # not under torchrun: no need to import torch here
        return True
    from ..nn.distributed import is_main_process

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
    config = find_config(parser, tokens)
    after, optional = {}, []
    if config is not None:
        try:
            after, optional = apply_config(parser, *config)
        except ConfigError as error:
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
            args.query = int_at_least(0)(extra[0])
        except argparse.ArgumentTypeError as error:
            subparser(parser, "search").error(f"argument ROW: {error}")
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
    check_usage(parser, args)
    name = f"{parser.prog} {args.command}"
    # Under torchrun, every process runs the command: pretrain and fit-photoz train on all of
    # them (batches split across ranks), predict and embed split the galaxies across them, the
    # other commands run on rank 0 only; the processes of rank > 0 write nothing and print
    # nothing but errors.
    args.main_process = main_rank()
    if not args.main_process:
        if args.command not in DISTRIBUTED_COMMANDS + SPLIT_COMMANDS:
            return 0
        args.quiet = True
    run = _command(args.command)
    if args.debug:
        return run(args)
    try:
        with _warnings_as_lines(name, show=args.main_process):
            return run(args)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except Exception as error:
        print(f"{name}: error: {_message(error)}", file=sys.stderr)
        return 1
