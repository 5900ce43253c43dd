"""Peak memory of lazy reads from a large HDF5 archive.

Writes an archive in the published format (default 1.1 GB: 4,800 galaxies of 5 x 107 x 107
float32 in chunks of 8 galaxies, with the ``e_bv`` column), then, in a fresh Python process per
measurement, reads random galaxies through ``HDF5Images(crop=64, deredden=True)`` and reports
how much the peak resident memory grew during the read: the kernel's peak counter (VmHWM) is
reset just before the read (importing torch leaves a higher earlier peak), and the resident
memory just before the read is subtracted. "all" reads the whole array with ``np.asarray``.
Prints a table and writes a CSV.

    python benchmarks/lazy_memory.py [--size-gb 1.1] [--rows 1 100 1000 all] [--dir DIR]
                                     [--out docs/lazy_memory.csv]

Linux only (``/proc/self/status``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _output import write_rows  # noqa: E402

STAMP = 107
BANDS = 5
CROP = 64
GALAXIES_PER_CHUNK = 8

# Run in a fresh process: prints the peak RSS increase (MiB), the peak's source and the
# seconds the read took.
_READ_SCRIPT = textwrap.dedent(
    """
    import resource, sys, time
    import numpy as np
    from skphotoz.data import HDF5Images

    X = HDF5Images(sys.argv[1], crop=int(sys.argv[3]), deredden=True)
    n_rows = sys.argv[2]
    idx = None if n_rows == "all" else np.random.default_rng(0).integers(0, len(X), int(n_rows))

    def status_kb(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key))

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        peak, source = (lambda: status_kb("VmHWM:")), "VmHWM"
    except OSError:
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        source = "ru_maxrss (includes earlier peaks)"
    before_kb = status_kb("VmRSS:")
    started = time.perf_counter()
    out = np.asarray(X) if idx is None else X[idx]
    seconds = time.perf_counter() - started
    after_kb = peak()
    print((after_kb - before_kb) / 1024.0, out.nbytes / 2**20, seconds, source, sep="|")
    """
)


def write_large_archive(path: Path, size_gb: float) -> int:
    """Write an archive of about ``size_gb`` GB (10^9 bytes); returns the number of galaxies."""
    per_galaxy = BANDS * STAMP * STAMP * 4
    n = max(GALAXIES_PER_CHUNK, int(round(size_gb * 1e9 / per_galaxy / 200)) * 200)
    block = np.random.default_rng(1).normal(size=(200, BANDS, STAMP, STAMP)).astype(np.float32)
    with h5py.File(path, "w") as f:
        images = f.create_dataset(
            "images",
            (n, BANDS, STAMP, STAMP),
            np.float32,
            chunks=(GALAXIES_PER_CHUNK, BANDS, STAMP, STAMP),
        )
        for start in range(0, n, len(block)):
            stop = min(start + len(block), n)
            images[start:stop] = block[: stop - start]
        f["e_bv"] = np.full((n, BANDS), 0.1, np.float32)
    return n


def measure(path: Path, rows: str) -> tuple[float, float, float, str]:
    result = subprocess.run(
        [sys.executable, "-c", _READ_SCRIPT, str(path), rows, str(CROP)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"reading {rows} rows failed:\n{result.stderr}")
    increase, out_mb, seconds, source = result.stdout.strip().splitlines()[-1].split("|")
    return float(increase), float(out_mb), float(seconds), source


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.1)
    parser.add_argument("--rows", nargs="+", default=["1", "100", "1000", "all"])
    parser.add_argument("--dir", default=None, help="where to write the archive (a temp dir)")
    parser.add_argument("--out", default="docs/lazy_memory.csv")
    args = parser.parse_args()
    for rows in args.rows:
        if rows != "all" and not (rows.isdigit() and int(rows) > 0):
            parser.error(f"--rows takes positive integers or 'all'; got {rows!r}")

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "large.h5"
        started = time.perf_counter()
        n = write_large_archive(path, args.size_gb)
        size_gb = os.path.getsize(path) / 1e9
        print(
            f"wrote {n} galaxies ({BANDS} x {STAMP} x {STAMP} float32), {size_gb:.2f} GB, "
            f"in {time.perf_counter() - started:.1f} s; reads: crop={CROP}, deredden=True"
        )
        print(f"{'file GB':>7} {'rows read':>9} {'output MiB':>10} {'peak RSS +MiB':>13} {'s':>6}")
        table = []
        for rows in args.rows:
            increase, out_mb, seconds, source = measure(path, rows)
            table.append(
                dict(file_gb=round(size_gb, 3), n_galaxies=n, rows_read=rows,
                     output_mib=round(out_mb, 1), peak_rss_increase_mib=round(increase, 1),
                     read_s=round(seconds, 3), peak_source=source)
            )  # fmt: skip
            print(
                f"{size_gb:>7.2f} {rows:>9} {out_mb:>10.1f} {increase:>13.1f} {seconds:>6.2f}",
                flush=True,
            )
    write_rows(args.out, table)


if __name__ == "__main__":
    main()
