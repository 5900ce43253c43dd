"""``--config FILE.toml``: the values of a TOML file become the defaults of a command's options,
checked as the command line's are, so that the command line overrides the file."""

from __future__ import annotations

import argparse
import os

from ._options import (
    epochs_option,
    fraction_option,
    positive_float,
    quantiles_option,
    weight_option,
)
from ._parser import CONFIG_COMMANDS, subparser


class ConfigError(Exception):
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
    elif kind is quantiles_option:
        if isinstance(value, list) and all(_is_number(v) for v in value):
            texts = [",".join(repr(float(v)) for v in value)]
        elif isinstance(value, str):
            texts = [value]
        else:
            raise wrong('an array of numbers in [0, 1] such as [0.16, 0.5, 0.84], or "none"')
    elif kind is epochs_option:
        if not (_is_number(value, integer=True) or value == "auto"):
            raise wrong('an integer >= 1 or "auto"')
        texts = [str(value)]
    elif kind is int or getattr(kind, "__name__", "") == "integer":
        if not _is_number(value, integer=True):
            raise wrong("an integer")
        texts = [str(value)]
    elif kind in (positive_float, weight_option, fraction_option):
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


def find_config(parser: argparse.ArgumentParser, tokens: list[str]):
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
    options = [name for name in subparser(parser, command)._option_string_actions]
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
        raise ConfigError(f"config file {path!r} does not exist.")
    if os.path.isdir(path):
        raise ConfigError(f"config file {path!r} is a directory, not a file.")
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ConfigError(
                f"reading config file {path!r} needs Python >= 3.11 (tomllib) or the tomli "
                f"package (pip install tomli)."
            ) from None
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {path!r} is not valid TOML: {error}.") from None
    except OSError as error:
        raise ConfigError(f"config file {path!r} could not be read: {error.strerror}.") from None


def apply_config(parser: argparse.ArgumentParser, command: str, path: str) -> dict:
    """Make the values of config file ``path`` the defaults of ``command``'s options, so that
    the command line overrides them; each value is checked as argparse checks the command
    line's, and positional arguments and required options it gives become optional.

    Returns ``{dest: value}`` of repeatable options (``--column``), which are set after
    parsing when the command line gives none (a default would be added to), and the
    positional arguments made optional.
    """
    sub = subparser(parser, command)
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
            raise ConfigError(
                f"config file {path!r}: unknown key {key!r}{hint}; expected options of "
                f"`skphotoz {command}`: {', '.join(sorted(keys))}."
            )
        if action in set_by:
            raise ConfigError(
                f"config file {path!r}: keys {set_by[action]!r} and {key!r} name the same "
                f"option; keep one."
            )
        set_by[action] = key
        try:
            value = _config_value(action, value)
        except ValueError as error:
            raise ConfigError(f"config file {path!r}, key {key!r}: {error}.") from None
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
