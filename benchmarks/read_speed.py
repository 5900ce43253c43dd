"""How fast ``HDF5Images`` reads training batches from an archive, against a numpy array.

Writes an archive of ``--n`` galaxies (5 bands, ``--stamp`` px, one galaxy per chunk with
checksums: the format ``write_archive`` writes), then times, in milliseconds per batch of
``--batch`` galaxies (median over the batches of one epoch):

- the first epoch of random batches (each chunk's index entry is checked on its first read),
- a later epoch of random batches,
- contiguous batches (a block-shuffled epoch reads blocks like these),
- the same random batches from a numpy array in memory.

``--package PATH`` imports skphotoz from another checkout (e.g. a ``git worktree`` of an older
commit), to compare versions on the same archive; run each in turn on a quiet machine:

    python benchmarks/read_speed.py                          # this checkout
    python benchmarks/read_speed.py --package /tmp/old       # another one
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--stamp", type=int, default=64)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--archive", default=None, help="reuse (or keep) this archive")
    parser.add_argument("--package", default=None, help="import skphotoz from this folder")
    args = parser.parse_args(argv)
    if args.package:
        sys.path.insert(0, os.path.abspath(args.package))
    import numpy as np

    import skphotoz
    from skphotoz.data import HDF5Images, write_archive

    path = args.archive or os.path.join(tempfile.mkdtemp(), "read_speed.h5")
    if not os.path.exists(path):
        rng = np.random.default_rng(0)
        images = rng.normal(size=(args.n, 5, args.stamp, args.stamp)).astype(np.float32)
        write_archive(path, images)
    lazy = HDF5Images(path)
    n = len(lazy)
    order = np.random.default_rng(0).permutation(n)
    batches = [np.sort(order[i : i + args.batch]) for i in range(0, n, args.batch)]

    def per_batch(read, selections) -> tuple[float, float]:
        times = []
        for selection in selections:
            started = time.perf_counter()
            read(selection)
            times.append(time.perf_counter() - started)
        return 1e3 * float(np.median(times)), float(np.sum(times))

    out = {"skphotoz": os.path.dirname(skphotoz.__file__), "galaxies": n, "batch": args.batch}
    out["first epoch, random batches (ms)"], out["first epoch (s)"] = per_batch(
        lazy.__getitem__, batches
    )
    out["later epoch, random batches (ms)"], _ = per_batch(lazy.__getitem__, batches)
    slices = [slice(s, s + args.batch) for s in range(0, n, args.batch)]
    out["contiguous batches (ms)"], _ = per_batch(lazy.__getitem__, slices)
    array = np.asarray(lazy)
    out["numpy array, random batches (ms)"], _ = per_batch(array.__getitem__, batches)
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}))
    if args.archive is None:
        lazy.close()
        os.remove(path)


if __name__ == "__main__":
    main()
