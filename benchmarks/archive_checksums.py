"""What HDF5's Fletcher-32 checksums cost skphotoz archives, on write and on read.

Writes the same galaxies (stamps of 5 x 107 x 107 float32, the catalogue columns in chunks
of 8,192 rows) in five layouts per round: images in chunks of 8 or of 1 galaxy, each without
and with ``fletcher32``, and the archive skphotoz writes (1 galaxy per chunk with Fletcher-32,
and CRC-32s per stamp and column, through ``write_archive``), then reads
each through :class:`skphotoz.data.HDF5Images`: the whole archive in order, random batches
of 64 galaxies cropped to 64 px (what training reads) and the same uncropped, and
:func:`skphotoz.data.verify_archive`. Rounds alternate the layouts so that machine noise
hits all alike; the table gives the median of the rounds and the ratio to the layout of
skphotoz's archives before the checksums (8 galaxies per chunk, no checksums). Files stay in
the page cache between write and read: the figures are the CPU cost of the layouts (a disk
adds its I/O time).

    python benchmarks/archive_checksums.py [--n 2400] [--rounds 3] [--dir DIR]
                                           [--out benchmarks/results/archive_checksums.csv]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _output import write_rows  # noqa: E402

from skphotoz.data import HDF5Images, verify_archive, write_archive  # noqa: E402

STAMP, BANDS, CROP = 107, 5, 64
ROWS_PER_COLUMN_CHUNK, WRITE_BLOCK = 8192, 1024
# The layouts compared: (name, galaxies per image chunk, checksums). The first is the baseline
# of the ratios: skphotoz's archives before the checksums.
LAYOUTS = (
    ("plain 8/chunk", 8, False),
    ("fletcher32 8/chunk", 8, True),
    ("plain 1/chunk", 1, False),
    ("fletcher32 1/chunk", 1, True),
    # What skphotoz writes: the last layout, plus a CRC-32 per stamp and per column (which
    # catch chunks overwritten with 0x00/0xFF bytes, invisible to Fletcher-32), written by
    # skphotoz.data.write_archive and checked by verify_archive.
    ("skphotoz archive", 1, "skphotoz"),
)
BATCH, N_BATCHES = 64, 40


def write(path, images, redshift, fletcher32, per_chunk: int) -> float:
    """Seconds to write ``images`` and a redshift and extinction column, in blocks."""
    n = len(images)
    tick = time.perf_counter()
    if fletcher32 == "skphotoz":
        extinction = np.full((n, BANDS), 0.02, np.float32)
        write_archive(path, images, redshift, extinction=extinction, chunk_size=WRITE_BLOCK)
        return time.perf_counter() - tick
    with h5py.File(path, "w") as f:
        d = f.create_dataset(
            "images", shape=images.shape, dtype=np.float32,
            chunks=(per_chunk,) + images.shape[1:], fletcher32=fletcher32,
        )  # fmt: skip
        z = f.create_dataset(
            "specz_redshift", shape=(n,), dtype=np.float32,
            chunks=(min(n, ROWS_PER_COLUMN_CHUNK),), fletcher32=fletcher32,
        )  # fmt: skip
        e = f.create_dataset(
            "e_bv", shape=(n, BANDS), dtype=np.float32,
            chunks=(min(n, ROWS_PER_COLUMN_CHUNK), BANDS), fletcher32=fletcher32,
        )  # fmt: skip
        for start in range(0, n, WRITE_BLOCK):
            stop = min(start + WRITE_BLOCK, n)
            d[start:stop] = images[start:stop]
            z[start:stop] = redshift[start:stop]
            e[start:stop] = 0.02
    return time.perf_counter() - tick


def read_all(path) -> float:
    tick = time.perf_counter()
    np.asarray(HDF5Images(path))
    return time.perf_counter() - tick


def read_batches(path, seed: int, crop=CROP) -> float:
    """Seconds for N_BATCHES random batches of BATCH galaxies, cropped and dereddened."""
    images = HDF5Images(path, crop=crop, deredden=True)
    rng = np.random.default_rng(seed)
    tick = time.perf_counter()
    for _ in range(N_BATCHES):
        images[np.sort(rng.choice(len(images), BATCH, replace=False))]
    return time.perf_counter() - tick


def verify(path) -> float:
    tick = time.perf_counter()
    verify_archive(path)
    return time.perf_counter() - tick


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2400, help="galaxies (2,400: 550 MB of images)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=None, help="folder of the temporary archives")
    parser.add_argument("--out", default="benchmarks/results/archive_checksums.csv")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = rng.lognormal(-3, 1, size=(args.n, BANDS, STAMP, STAMP)).astype(np.float32)
    redshift = rng.uniform(0.01, 0.4, args.n).astype(np.float32)
    megabytes = images.nbytes / 2**20
    timings = {name: {} for name, _, _ in LAYOUTS}
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        paths = {name: os.path.join(folder, f"{i}.h5") for i, (name, _, _) in enumerate(LAYOUTS)}
        for round_ in range(args.rounds):
            for name, per_chunk, fletcher32 in LAYOUTS:
                t, path = timings[name], paths[name]
                t.setdefault("write", []).append(
                    write(path, images, redshift, fletcher32, per_chunk)
                )
                t.setdefault("read all", []).append(read_all(path))
                t.setdefault("random batches", []).append(read_batches(path, round_))
                t.setdefault("random, no crop", []).append(read_batches(path, round_, crop=None))
                t.setdefault("verify", []).append(verify(path))
        sizes = {name: os.path.getsize(path) / 2**20 for name, path in paths.items()}

    rows = []
    batch_images = BATCH * N_BATCHES
    units = {
        "write": ("MB/s", megabytes),
        "read all": ("MB/s", megabytes),
        "random batches": ("img/s", batch_images),
        "random, no crop": ("img/s", batch_images),
        "verify": ("MB/s", megabytes),
    }
    base = LAYOUTS[0][0]
    print(
        f"{args.n} galaxies of {BANDS} x {STAMP} x {STAMP} float32 ({megabytes:.0f} MB), "
        f"median of {args.rounds} rounds; ratio = rate / rate of {base!r}; file sizes (MB): "
        + ", ".join(f"{name} {size:.1f}" for name, size in sizes.items())
    )
    print(f"{'layout':<20} {'operation':<16} {'unit':>6} {'rate':>9} {'ratio':>7}")
    for operation, (unit, amount) in units.items():
        rate = {name: amount / float(np.median(timings[name][operation])) for name in timings}
        for name, per_chunk, fletcher32 in LAYOUTS:
            ratio = rate[name] / rate[base]
            fletcher32 = fletcher32 if isinstance(fletcher32, bool) else "yes, and CRC-32s"
            print(f"{name:<20} {operation:<16} {unit:>6} {rate[name]:>9.0f} {ratio:>7.3f}")
            rows.append(
                {
                    "layout": name,
                    "galaxies_per_chunk": per_chunk,
                    "fletcher32": fletcher32,
                    "operation": operation,
                    "unit": unit,
                    "rate": round(rate[name], 1),
                    "ratio": round(ratio, 4),
                    "n_galaxies": args.n,
                    "rounds": args.rounds,
                }
            )
    write_rows(args.out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
