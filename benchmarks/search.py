"""Similarity-search benchmark: skphotoz's exact torch engine against numpy, scikit-learn, faiss.

For N = 10k, 100k, 1M indexed embeddings of d = 128 and 2048 it measures, per method, the build
time, the latency of one query and of 1,000 queries (top-10, cosine), the peak memory beyond
the embeddings, and recall@10 of the approximate faiss indexes against the exact answer.

Each (method, N, d) runs in its own subprocess with 2 threads, so that ``ru_maxrss`` is that
method's own peak; "extra MiB" is the peak minus the resident memory once the embeddings and
queries exist. The 100k × 128 acceptance comparison also runs head to head in one process,
interleaving the methods, because separate runs on a shared machine see different loads.

Embeddings are a mixture of Gaussian clusters (like embeddings of galaxy types), generated
block by block from fixed seeds so every subprocess sees the same data. At 1M × 2048 float32
embeddings take 8.2 GB: only skphotoz runs there, from a lazy array that generates blocks on
demand into a float16 index (4.1 GB); the other methods need the whole float32 matrix plus
their own copy and are skipped.

Usage: ``python benchmarks/search.py [--quick]``; writes ``docs/search_benchmark.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

THREADS = 2
K = 10
N_QUERIES = 1000
N_CLUSTERS = 256
BLOCK = 65_536
ROOT = Path(__file__).resolve().parents[1]
CSV_PATH = ROOT / "docs" / "search_benchmark.csv"
EXACT = ("skphotoz", "numpy", "sklearn", "faiss-flat")
APPROXIMATE = ("faiss-hnsw", "faiss-ivf")
FIELDS = (
    "method",
    "n",
    "d",
    "dtype",
    "build_s",
    "one_query_ms",
    "queries_1000_s",
    "extra_mib",
    "data_mib",
    "recall_at_10",
    "note",
)


class LazyEmbeddings:
    """Rows of the benchmark embeddings, generated on demand (shape and slicing only)."""

    def __init__(self, n: int, d: int, seed: int = 0):
        self.shape = (n, d)
        self.ndim = 2
        self.dtype = np.dtype(np.float32)
        self.centres = np.random.default_rng([seed, d]).normal(size=(N_CLUSTERS, d))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, item: slice) -> np.ndarray:
        start, stop, _ = item.indices(self.shape[0])
        parts = [self._block(b) for b in range(start // BLOCK, (stop - 1) // BLOCK + 1)]
        offset = start // BLOCK * BLOCK
        return np.concatenate(parts)[start - offset : stop - offset]

    def _block(self, b: int) -> np.ndarray:
        rng = np.random.default_rng([b, self.shape[1], 1])
        n = min(BLOCK, self.shape[0] - b * BLOCK)
        labels = rng.integers(N_CLUSTERS, size=n)
        rows = self.centres[labels] + 0.7 * rng.normal(size=(n, self.shape[1]))
        return rows.astype(np.float32)

    def materialize(self) -> np.ndarray:
        out = np.empty(self.shape, dtype=np.float32)
        for start in range(0, self.shape[0], BLOCK):
            out[start : start + BLOCK] = self[start : start + BLOCK]
        return out


def queries(d: int) -> np.ndarray:
    """Held-out queries from the same clusters."""
    source = LazyEmbeddings(N_QUERIES, d)
    rng = np.random.default_rng([d, 2])
    labels = rng.integers(N_CLUSTERS, size=N_QUERIES)
    return (source.centres[labels] + 0.7 * rng.normal(size=(N_QUERIES, d))).astype(np.float32)


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def limit_threads() -> None:
    import torch

    torch.set_num_threads(THREADS)
    try:
        import faiss

        faiss.omp_set_num_threads(THREADS)
    except ImportError:
        pass


def build(method: str, X, dtype: str = "float32"):
    """Return a function ``search(Q) -> (similarities, indices)`` over X, top-K, cosine."""
    if method == "skphotoz":
        from skphotoz.search import SimilaritySearch

        engine = SimilaritySearch(K, dtype=dtype, device="cpu").fit(X)
        return engine.kneighbors
    if method == "numpy":
        index = X / np.linalg.norm(X, axis=1, keepdims=True)

        def search(Q):
            Q = Q / np.linalg.norm(Q, axis=1, keepdims=True)
            chunk = max(1, 2**26 // len(index))  # at most 256 MiB of scores at a time
            values, rows = [], []
            for start in range(0, len(Q), chunk):
                scores = Q[start : start + chunk] @ index.T
                top = np.argpartition(-scores, K, axis=1)[:, :K]
                top_scores = np.take_along_axis(scores, top, axis=1)
                order = np.argsort(-top_scores, axis=1)
                values.append(np.take_along_axis(top_scores, order, axis=1))
                rows.append(np.take_along_axis(top, order, axis=1))
            return np.concatenate(values), np.concatenate(rows)

        return search
    if method == "sklearn":
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=K, algorithm="brute", metric="cosine").fit(X)

        def search(Q):
            distances, rows = nn.kneighbors(Q)
            return 1 - distances, rows

        return search
    import faiss

    spec = {"faiss-flat": "Flat", "faiss-hnsw": "HNSW32", "faiss-ivf": None}[method]
    if spec is None:
        spec = f"IVF{int(4 * np.sqrt(len(X)))},Flat"
    index = faiss.index_factory(X.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    if not index.is_trained:
        rows = np.linspace(0, len(X) - 1, min(len(X), 64 * index.nlist)).astype(np.int64)
        index.train(X[rows])
    index.add(X)
    del X
    params = {
        "faiss-hnsw": faiss.SearchParametersHNSW(efSearch=64),
        "faiss-ivf": faiss.SearchParametersIVF(nprobe=16),
    }.get(method)

    def search(Q):
        Q = Q / np.linalg.norm(Q, axis=1, keepdims=True)
        return index.search(Q, K, params=params)

    return search


def time_queries(search, Q, repeats: int) -> tuple[float, float]:
    """Median latency of one query (ms) and best time of all queries (s)."""
    search(Q[:50])
    one = []
    for i in range(max(3, repeats * 5)):
        t0 = time.perf_counter()
        search(Q[i : i + 1])
        one.append(time.perf_counter() - t0)
    batch = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        search(Q)
        batch.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(one)), min(batch)


def worker(method: str, n: int, d: int, dtype: str, repeats: int) -> dict:
    """One method on one (n, d): runs in its own process so its peak memory is its own."""
    limit_threads()
    # Libraries are imported before the baseline so that their code is not counted as memory.
    import faiss  # noqa: F401
    import sklearn.neighbors  # noqa: F401

    import skphotoz.search  # noqa: F401

    lazy = LazyEmbeddings(n, d)
    X = lazy if method == "skphotoz" and dtype != "float32" else lazy.materialize()
    Q = queries(d)
    base = rss_mib()
    t0 = time.perf_counter()
    search = build(method, X, dtype)
    build_s = time.perf_counter() - t0
    one_ms, batch_s = time_queries(search, Q, repeats)
    extra = peak_mib() - base
    recall = None
    if method in APPROXIMATE:
        _, found = search(Q)
        del search
        _, exact = build("skphotoz", X)(Q)
        recall = float(
            np.mean([len(np.intersect1d(a, b)) / K for a, b in zip(found, exact, strict=True)])
        )
    return {
        "method": method,
        "n": n,
        "d": d,
        "dtype": dtype,
        "build_s": round(build_s, 3),
        "one_query_ms": round(one_ms, 2),
        "queries_1000_s": round(batch_s, 4),
        "extra_mib": round(extra),
        "data_mib": round(n * d * 4 / 2**20) if X is not lazy else 0,
        "recall_at_10": None if recall is None else round(recall, 4),
        "note": "",
    }


def head_to_head(n: int, d: int, repeats: int) -> dict:
    """All exact methods in one process, interleaved: the fairest timing on a shared machine."""
    limit_threads()
    X = LazyEmbeddings(n, d).materialize()
    Q = queries(d)
    searches = {m: build(m, X) for m in EXACT}
    reference = searches["numpy"](Q)[1]
    times = {m: [] for m in EXACT}
    agree = {m: float(np.mean(s(Q)[1] == reference)) for m, s in searches.items()}
    for _ in range(repeats):
        for method, search in searches.items():
            t0 = time.perf_counter()
            search(Q)
            times[method].append(time.perf_counter() - t0)
    # CPU seconds on one thread: the work each method needs, little disturbed by other jobs.
    import faiss
    import torch
    from threadpoolctl import threadpool_limits

    cpu = {m: [] for m in EXACT}
    with threadpool_limits(1):
        torch.set_num_threads(1)
        faiss.omp_set_num_threads(1)
        for _ in range(max(1, repeats // 2)):
            for method, search in searches.items():
                t0 = time.process_time()
                search(Q)
                cpu[method].append(time.process_time() - t0)
    return {
        m: {"min_s": min(t), "median_s": float(np.median(t)), "cpu_1thread_s": min(cpu[m])}
        | {"agree": agree[m]}
        for m, t in times.items()
    }


def available_gib() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable"):
                return int(line.split()[1]) / 2**20
    return 0.0


def thread_env() -> dict[str, str]:
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    return dict(os.environ, **dict.fromkeys(names, str(THREADS)))


def run_worker(args: list[str]) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=thread_env(), check=False)
    if done.returncode != 0:
        print(f"  {' '.join(args)} failed: {done.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def plan(quick: bool) -> list[tuple[str, int, int, str, str]]:
    """(method, n, d, dtype, skip-reason) for every configuration."""
    sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    runs = []
    for d in (128, 2048):
        for n in sizes:
            huge = n * d * 4 > 4 * 2**30
            for method in EXACT + APPROXIMATE:
                skip = ""
                if huge and method != "skphotoz":
                    skip = (
                        f"needs the {n * d * 4 / 1e9:.1f} GB float32 matrix in memory plus its "
                        f"own copy; too much for a shared 24 GiB machine"
                    )
                elif method == "faiss-hnsw" and n * d > 2e7:
                    skip = "not attempted: an earlier HNSW build of this size ran past 7 minutes"
                runs.append((method, n, d, "float16" if huge else "float32", skip))
    return runs


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'method':<11} {'N':>9} {'d':>5} {'dtype':>8} {'build s':>8} {'1 query ms':>10} "
        f"{'1000 q s':>9} {'extra MiB':>9} {'recall@10':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        if r["note"]:
            print(f"{r['method']:<11} {r['n']:>9} {r['d']:>5}  skipped: {r['note']}")
            continue
        recall = "" if r["recall_at_10"] in (None, "") else f"{r['recall_at_10']:.3f}"
        print(
            f"{r['method']:<11} {r['n']:>9} {r['d']:>5} {r['dtype']:>8} {r['build_s']:>8.2f} "
            f"{r['one_query_ms']:>10.2f} {r['queries_1000_s']:>9.3f} {r['extra_mib']:>9} "
            f"{recall:>9}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N up to 100k only")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", nargs=4, metavar=("METHOD", "N", "D", "DTYPE"))
    parser.add_argument("--head-to-head", action="store_true")
    args = parser.parse_args()
    if args.worker:
        method, n, d, dtype = args.worker
        repeats = args.repeats if int(n) * int(d) <= 1e8 else 1
        print(json.dumps(worker(method, int(n), int(d), dtype, repeats)))
        return
    if args.head_to_head:
        print(json.dumps(head_to_head(100_000, 128, args.repeats * 2)))
        return

    print(f"head to head, 1000 queries, 100k x 128, top-{K}, {THREADS} threads, one process:")
    done = subprocess.run(
        [sys.executable, __file__, "--head-to-head", "--repeats", str(args.repeats)],
        capture_output=True,
        text=True,
        env=thread_env(),
        check=True,
    )
    h2h = json.loads(done.stdout.strip().splitlines()[-1])
    faiss_s = h2h["faiss-flat"]["min_s"]
    for method, r in h2h.items():
        print(
            f"  {method:<11} best {r['min_s']:.3f} s  median {r['median_s']:.3f} s  "
            f"x faiss {r['min_s'] / faiss_s:.2f}  1-thread CPU {r['cpu_1thread_s']:.3f} s "
            f"(x faiss {r['cpu_1thread_s'] / h2h['faiss-flat']['cpu_1thread_s']:.2f})  "
            f"same indices as numpy {r['agree']:.4f}"
        )

    CSV_PATH.parent.mkdir(exist_ok=True)
    rows = []
    with open(CSV_PATH, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for method, r in h2h.items():
            writer.writerow(
                dict(
                    dict.fromkeys(FIELDS, ""),
                    method=method,
                    n=100_000,
                    d=128,
                    dtype="float32",
                    queries_1000_s=round(r["min_s"], 4),
                    note=(
                        f"head-to-head in one process; median {r['median_s']:.4f} s; "
                        f"1-thread CPU {r['cpu_1thread_s']:.4f} s"
                    ),
                )
            )
        # Rows are written as they come, so an interrupted run keeps what it measured.
        for method, n, d, dtype, skip in plan(args.quick):
            if not skip and n * d * (2 if dtype == "float16" else 8) / 2**30 + 2 > available_gib():
                skip = f"only {available_gib():.1f} GiB available"
            if skip:
                row = dict(dict.fromkeys(FIELDS, ""), method=method, n=n, d=d, note=skip)
            else:
                print(f"  running {method} N={n} d={d} {dtype}", flush=True)
                row = run_worker([method, str(n), str(d), dtype])
            if row is not None:
                rows.append(row)
                writer.writerow(row)
                f.flush()
    print()
    print_table(rows)
    print(f"wrote {CSV_PATH}")


if __name__ == "__main__":
    main()
