"""Time and peak memory of ``skphotoz.data.ingest`` on a large channels-last cube.

Writes a ``.npy`` cube of random 5 x 64 x 64 float32 stamps, channels-last (default 1 GiB:
12,800 galaxies) and a CSV catalogue (objid, z, ebv), then ingests them into an HDF5 archive
in a fresh Python process per chunk size, and reports the time and the peak resident memory
of the ingest, split into anonymous memory (what the process allocates: the chunks, their
channels-first copies) and file-backed memory (the memory-mapped cube's pages, which are the
kernel's page cache and are given back under memory pressure). Prints a table and writes a
CSV.

    python benchmarks/ingest_memory.py [--size-gb 1.0] [--chunk-size 256 1024 4096]
                                       [--dir DIR] [--out docs/ingest_memory.csv]

Linux only (``/proc/self/status``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _output import write_rows  # noqa: E402

STAMP = 64
BANDS = 5

# Run in a fresh process: ingests, sampling /proc/self/status every 10 ms; prints seconds,
# peak anonymous and peak file-backed RSS in MiB.
_INGEST_SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    from skphotoz.data import ingest

    peak = {"RssAnon": 0, "RssFile": 0}
    done = threading.Event()

    def poll():
        while not done.is_set():
            with open("/proc/self/status") as f:
                for line in f:
                    key = line.split(":")[0]
                    if key in peak:
                        peak[key] = max(peak[key], int(line.split()[1]))
            time.sleep(0.01)

    thread = threading.Thread(target=poll)
    thread.start()
    tick = time.perf_counter()
    ingest(sys.argv[1], sys.argv[3], catalog=sys.argv[2], chunk_size=int(sys.argv[4]),
           overwrite=True)
    elapsed = time.perf_counter() - tick
    done.set()
    thread.join()
    print(elapsed, peak["RssAnon"] / 1024, peak["RssFile"] / 1024)
    """
)


def write_inputs(folder: Path, n: int) -> tuple[Path, Path]:
    cube_path, catalog_path = folder / "cube.npy", folder / "cat.csv"
    cube = np.lib.format.open_memmap(
        cube_path, mode="w+", dtype=np.float32, shape=(n, STAMP, STAMP, BANDS)
    )
    rng = np.random.default_rng(0)
    for start in range(0, n, 512):
        stop = min(start + 512, n)
        cube[start:stop] = rng.normal(size=(stop - start, STAMP, STAMP, BANDS))
    cube.flush()
    del cube
    with open(catalog_path, "w") as f:
        f.write("objid,z,ebv\n")
        for i, z in enumerate(rng.uniform(0.02, 0.3, n)):
            f.write(f"{1237650000000000000 + i},{z:.5f},0.03\n")
    return cube_path, catalog_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.0, help="size of the cube in GiB")
    parser.add_argument("--chunk-size", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--dir", default=None, help="folder for the files (default: a temp dir)")
    parser.add_argument("--out", default=None, help="CSV of the table (default: none)")
    args = parser.parse_args()

    n = int(args.size_gb * 2**30 / (STAMP * STAMP * BANDS * 4))
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        cube, catalog = write_inputs(folder, n)
        print(f"cube: {n} galaxies, {cube.stat().st_size / 2**30:.2f} GiB, channels-last")
        rows = []
        for chunk_size in args.chunk_size:
            out = subprocess.run(
                [sys.executable, "-c", _INGEST_SCRIPT, str(cube), str(catalog),
                 str(folder / "archive.h5"), str(chunk_size)],
                check=True, capture_output=True, text=True,
            ).stdout.split()  # fmt: skip
            seconds, anon, file_backed = (float(v) for v in out[-3:])
            rows.append(
                {
                    "galaxies": n,
                    "cube_gib": round(cube.stat().st_size / 2**30, 2),
                    "chunk_size": chunk_size,
                    "seconds": round(seconds, 2),
                    "galaxies_per_s": round(n / seconds),
                    "peak_anon_mib": round(anon),
                    "peak_file_backed_mib": round(file_backed),
                }
            )
    print(f"{'chunk':>6} {'s':>6} {'gal/s':>8} {'anon MiB':>9} {'file MiB':>9}")
    for row in rows:
        print(
            f"{row['chunk_size']:>6} {row['seconds']:>6.2f} {row['galaxies_per_s']:>8} "
            f"{row['peak_anon_mib']:>9} {row['peak_file_backed_mib']:>9}"
        )
    if args.out:
        write_rows(args.out, rows)


if __name__ == "__main__":
    main()
