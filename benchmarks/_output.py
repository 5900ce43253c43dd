"""CSV output shared by the benchmark scripts."""

from __future__ import annotations

import csv
from pathlib import Path


def write_rows(path, rows: list[dict]) -> None:
    """Write ``rows`` (dicts with the same keys) to ``path`` with a header line, and say so."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}")
