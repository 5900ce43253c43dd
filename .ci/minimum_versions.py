"""Print pip constraints pinning each runtime dependency to the lower bound pyproject declares.

Used by ``make test-minimum``: the fast tests run against these oldest releases, so that the
lower bounds in ``pyproject.toml`` are facts, not hopes. torch and torchvision are left out:
their oldest declared releases are multi-GB CUDA builds on PyPI that this CI cannot fetch; the
job uses the ones already on the machine.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

UNCHECKED = {"torch", "torchvision"}


def main() -> int:
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    for requirement in dependencies:
        match = re.fullmatch(
            r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*(?:,\s*<\s*[0-9][0-9A-Za-z.]*\s*)?"
            r"(;\s*\S.*)?",
            requirement,
        )
        if match is None:
            sys.exit(f"minimum_versions: cannot read a lower bound from {requirement!r}")
        name, version, marker = match.groups()
        if name.lower() not in UNCHECKED:
            # An environment marker (e.g. python_version < '3.11') stays with the pin.
            print(f"{name}=={version}{'; ' + marker.lstrip('; ') if marker else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
