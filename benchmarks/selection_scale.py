"""Label selection at survey scale: 1,000 targets from 1,000,000 galaxies of 128-d embeddings.

The embeddings are a mixture of 2,000 Gaussian clusters of random widths and sizes (so that
k-means has structure to find), L2-normalised as MoCo embeddings are, written once to a
``.npy`` file and memory-mapped, as ``skphotoz select --embeddings`` reads them. Each strategy
runs in a process of its own, so that its peak memory (maximum resident set size, which
counts the pages of the memory-mapped file it touched) is its own. Prints a table and writes a
CSV.

    python benchmarks/selection_scale.py --n 1000000 --dim 128 --select 1000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _output import write_rows  # noqa: E402

STRATEGIES = ("random", "typical", "cells", "coverage", "typical+coverage", "uncertainty")


def make_embeddings(path: Path, n: int, dim: int, seed: int = 0) -> None:
    """A clustered, L2-normalised float32 (n, dim) array written block by block."""
    rng = np.random.default_rng(seed)
    n_clusters = 2000
    centres = rng.normal(size=(n_clusters, dim)).astype(np.float32)
    widths = rng.uniform(0.2, 1.0, n_clusters).astype(np.float32)
    weights = rng.dirichlet(np.full(n_clusters, 2.0))
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for start in range(0, n, 100_000):
        stop = min(start + 100_000, n)
        which = rng.choice(n_clusters, size=stop - start, p=weights)
        block = centres[which] + widths[which, None] * rng.normal(size=(stop - start, dim))
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:stop] = block
    out.flush()
    del out


def run_one(path: str, strategy: str, n_select: int) -> dict:
    """Select in this process; returns seconds and peak resident memory."""
    from skphotoz.selection import make_selection

    X = np.load(path, mmap_mode="r")
    selector = make_selection(strategy, random_state=0)
    kwargs = {}
    if strategy == "uncertainty":
        kwargs["uncertainty"] = np.random.default_rng(1).gamma(2.0, 0.02, len(X))
    tick = time.perf_counter()
    rows = selector.select(X, n_select, **kwargs)
    seconds = time.perf_counter() - tick
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": round(seconds, 1), "peak_mb": round(peak_mb), "n_rows": len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--select", type=int, default=1000)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--embeddings", default=None, help="reuse this .npy (else a temp file)")
    parser.add_argument("--out", default="benchmarks/results/selection_scale.csv")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.embeddings, args.one, args.select)))
        return
    with tempfile.TemporaryDirectory() as folder:
        path = args.embeddings or os.path.join(folder, "embeddings.npy")
        if not os.path.exists(path):
            tick = time.perf_counter()
            make_embeddings(Path(path), args.n, args.dim)
            print(f"wrote {args.n} x {args.dim} embeddings in {time.perf_counter() - tick:.0f} s")
        shape = np.load(path, mmap_mode="r").shape
        print(f"{'strategy':<18} {'seconds':>8} {'peak MB':>8}   ({shape[0]} x {shape[1]}, "
              f"{args.select} selected, {os.cpu_count()} CPUs)")  # fmt: skip
        rows = []
        for strategy in args.strategies:
            command = [sys.executable, __file__, "--one", strategy, "--embeddings", path]
            command += ["--select", str(args.select)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"{strategy:<18} failed: {done.stderr.strip().splitlines()[-1]}")
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{strategy:<18} {result['seconds']:>8.1f} {result['peak_mb']:>8}")
            rows.append(
                {"strategy": strategy, "n": shape[0], "dim": shape[1], "selected": args.select,
                 "seconds": result["seconds"], "peak_mb": result["peak_mb"],
                 "cpus": os.cpu_count()}
            )  # fmt: skip
        if rows:
            write_rows(args.out, rows)


if __name__ == "__main__":
    main()
