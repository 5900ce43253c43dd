"""`skphotoz explore` on a survey-sized archive: start-up, query latency and memory.

An archive of simulated galaxies (100,000 by default, written once with the simulator and
reused) and clustered, L2-normalised 128-d embeddings (the generator of
``selection_scale.py``: 2,000 Gaussian clusters, so that the map and the neighbours have
structure; the start-up and query costs do not depend on what the embeddings mean). Measured:

- start-up without a cache (the first ``skphotoz explore`` on an archive): reading the
  embeddings, the search index, the 2-D map (PCA) and the anomaly scores, each timed, and the
  peak resident memory of the process;
- start-up again with the cache written by the first;
- answers of the running server over HTTP (Werkzeug's threaded server, as the command runs it):
  a galaxy (its nearest neighbours by exact search and its catalogue values), a stamp rendered
  as PNG, the map, the anomaly gallery;
- with ``--browser`` (needs Debian's chromium and chromium-driver): the page in headless
  Chromium, from load to ready, the time to draw the map's points, and a click on a galaxy
  until its neighbours are shown.

Each start-up runs in a process of its own, so that its peak memory is its own. Prints a table
and writes a CSV:

    python benchmarks/explore_scale.py --n 100000 --browser
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
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _output import write_rows  # noqa: E402
from selection_scale import make_embeddings  # noqa: E402


def _timed(cls, name, times):
    original = getattr(cls, name)

    def wrapper(self, *args, **kwargs):
        tick = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            times[name] = times.get(name, 0.0) + time.perf_counter() - tick

    setattr(cls, name, wrapper)


def start(archive: str, embeddings: str, cache: str, threads: int):
    """Start an Explorer as `skphotoz explore` does; returns it and the phases' seconds."""
    import torch

    torch.set_num_threads(threads)
    from skphotoz.explore import Explorer
    from skphotoz.search import SimilaritySearch

    SimilaritySearch(2).fit(np.eye(3, dtype=np.float32))  # imports, outside the timings

    times: dict[str, float] = {}
    for name in ("_embeddings", "_index", "_fit_map", "_score"):
        _timed(Explorer, name, times)
    tick = time.perf_counter()
    X = np.load(embeddings, mmap_mode="r")
    explorer = Explorer(archive, embeddings=X, cache_dir=cache, progress=False)
    times["total"] = time.perf_counter() - tick
    return explorer, times


def get(url: str) -> tuple[float, int]:
    tick = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        body = response.read()
        assert response.status == 200, (url, response.status)
    return time.perf_counter() - tick, len(body)


def child(args) -> None:
    """One start-up (and, with --serve, the HTTP answers) in this process; prints JSON."""
    explorer, times = start(args.archive, args.embeddings, args.cache, args.threads)
    result = {"start": times}
    if args.serve:
        from skphotoz.explore import Server

        rng = np.random.default_rng(1)
        rows = rng.choice(explorer.n_galaxies, size=args.queries, replace=False)
        with Server(explorer) as server:
            base = server.url
            get(base + "api/info")  # a first connection
            answers = {
                "galaxy": [get(f"{base}api/galaxy/{r}")[0] for r in rows],
                "stamp (first render)": [get(f"{base}stamp/{r}.png")[0] for r in rows],
            }
            seconds, size = get(base + "api/map")
            answers["map"] = [seconds]
            result["map_bytes"] = size
            answers["anomalies (24)"] = [get(base + "api/anomalies?n=24")[0] for _ in range(5)]
            if args.browser:
                result["browser"] = browser_check(base, explorer, rows[:10])
        result["answers"] = answers
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


def browser_check(url: str, explorer, rows) -> dict:
    """Load the page in headless Chromium; time load-to-ready, one draw of the map, and
    click-to-neighbours for a few galaxies (each clicked where it is drawn)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--window-size=1400,1000",
    ):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        tick = time.perf_counter()
        driver.get(url)
        ready = "return window.skphotozExplore && window.skphotozExplore.state.ready"
        WebDriverWait(driver, 300, 0.02).until(lambda d: d.execute_script(ready))
        load = time.perf_counter() - tick
        draws = driver.execute_script(
            "const t = []; for (let i = 0; i < 5; i++) { const a = performance.now(); draw();"
            " t.push(performance.now() - a); } return t;"
        )
        clicks, in_page = [], []
        shown = (
            "const s = window.skphotozExplore.state; return s.selected !== null && "
            "document.querySelectorAll('#neighbours .card').length > 0 && "
            "Number(document.querySelector('#neighbours').dataset.for) === s.selected"
        )
        for row in rows:
            x, y = driver.execute_script(f"return window.skphotozExplore.pagePosition({row})")
            # Several galaxies may be drawn on one pixel at this density: the click is timed
            # until whichever galaxy it lands on is shown with its neighbours.
            driver.execute_script("window.skphotozExplore.state.selected = null")
            tick = time.perf_counter()
            actions = ActionBuilder(driver)
            actions.pointer_action.move_to_location(int(round(x)), int(round(y)))
            actions.pointer_action.click()
            actions.perform()
            WebDriverWait(driver, 60, 0.005).until(lambda d: d.execute_script(shown))
            clicks.append(time.perf_counter() - tick)
            in_page.append(driver.execute_script("return window.skphotozExplore.state.selectMs"))
    finally:
        driver.quit()
    return {"load_s": load, "draw_ms": draws, "click_s": clicks, "select_ms": in_page}


def summary(name: str, ms) -> dict:
    """Median, 95th percentile and maximum of times in milliseconds."""
    ms = np.asarray(ms, dtype=float)
    return {
        "what": name, "median_ms": round(float(np.median(ms)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1), "max_ms": round(float(ms.max()), 1),
        "n": len(ms),
    }  # fmt: skip


def run_child(args, cache: str, serve: bool) -> dict:
    command = [
        sys.executable, __file__, "--child", "--archive", str(args.archive), "--embeddings",
        str(args.embeddings), "--cache", cache, "--threads", str(args.threads),
        "--queries", str(args.queries),
    ]  # fmt: skip
    if serve:
        command.append("--serve")
    if serve and args.browser:
        command.append("--browser")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="galaxies in the archive")
    parser.add_argument("--dim", type=int, default=128, help="embedding dimensions")
    parser.add_argument("--stamp-size", type=int, default=64)
    parser.add_argument("--archive", type=Path, default=None, help="reuse this archive")
    parser.add_argument("--embeddings", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=None, help="where the archive is made")
    parser.add_argument("--queries", type=int, default=50, help="galaxies asked for")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--browser", action="store_true", help="also time the page in Chromium")
    parser.add_argument("--output", default="benchmarks/results/explore_scale.csv")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    workdir = args.workdir or Path(tempfile.gettempdir()) / "skphotoz-explore-scale"
    workdir.mkdir(parents=True, exist_ok=True)
    if args.archive is None:
        args.archive = workdir / f"galaxies_{args.n}_{args.stamp_size}px.h5"
        if not args.archive.exists():
            from skphotoz.datasets import write_sdss_galaxies

            tick = time.perf_counter()
            write_sdss_galaxies(args.archive, args.n, random_state=0, stamp_size=args.stamp_size)
            print(f"simulated {args.n} galaxies in {time.perf_counter() - tick:.0f} s")
    import h5py

    with h5py.File(args.archive, "r") as f:
        n = len(f["images"])
        stamp = f["images"].shape[1:]
    if args.embeddings is None:
        args.embeddings = workdir / f"embeddings_{n}_{args.dim}.npy"
        if not args.embeddings.exists():
            make_embeddings(args.embeddings, n, args.dim)
    size_gb = os.path.getsize(args.archive) / 1e9
    print(f"archive: {n:,} galaxies of {stamp} ({size_gb:.1f} GB), {args.dim}-d embeddings, "
          f"{args.threads} threads")  # fmt: skip

    with tempfile.TemporaryDirectory() as cache:
        cold = run_child(args, cache, serve=False)
        warm = run_child(args, cache, serve=True)
    # The whole command as a user runs it (Python, torch and the package imported, the archive
    # opened, a first start without a cache), answering one request of each kind (--check).
    with tempfile.TemporaryDirectory() as cache:
        command = [
            str(Path(sys.executable).with_name("skphotoz")), "explore", str(args.archive),
            "--embeddings", str(args.embeddings), "--cache-dir", cache, "--check", "--quiet",
        ]  # fmt: skip
        tick = time.perf_counter()
        subprocess.run(command, check=True, env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
        whole = time.perf_counter() - tick

    rows = []
    for label, result in (("first start (no cache)", cold), ("start with cache", warm)):
        phases = result["start"]
        rows.append({
            "what": label, "total_s": round(phases["total"], 2),
            "embeddings_s": round(phases.get("_embeddings", 0), 2),
            "index_s": round(phases.get("_index", 0), 2),
            "map_s": round(phases.get("_fit_map", 0), 2),
            "scores_s": round(phases.get("_score", 0), 2),
            "peak_rss_mb": round(result["peak_rss_mb"]),
        })  # fmt: skip
    print(f"\n{'start-up':<24} {'total s':>8} {'read s':>7} {'index s':>8} {'map s':>6} "
          f"{'scores s':>9} {'peak MB':>8}")  # fmt: skip
    for r in rows:
        print(f"{r['what']:<24} {r['total_s']:>8.1f} {r['embeddings_s']:>7.1f} "
              f"{r['index_s']:>8.1f} {r['map_s']:>6.1f} {r['scores_s']:>9.1f} "
              f"{r['peak_rss_mb']:>8}")  # fmt: skip

    print(f"whole command, first start, with --check: {whole:.1f} s")
    rows.append({
        "what": "whole command, first start (--check)", "total_s": round(whole, 2),
        "embeddings_s": "", "index_s": "", "map_s": "", "scores_s": "", "peak_rss_mb": "",
    })  # fmt: skip

    print(f"\n{'answer (HTTP)':<24} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'n':>4}")
    answers = []
    for name, seconds in warm["answers"].items():
        answers.append(summary(name, 1000 * np.asarray(seconds)))
        a = answers[-1]
        print(f"{name:<24} {a['median_ms']:>10.1f} {a['p95_ms']:>8.1f} {a['max_ms']:>8.1f} "
              f"{a['n']:>4}")  # fmt: skip
    print(f"map payload: {warm['map_bytes'] / 1e6:.1f} MB of JSON")
    browser = warm.get("browser")
    if browser:
        clicks = 1000 * np.asarray(browser["click_s"])
        print(f"\nbrowser: page ready in {browser['load_s']:.1f} s; drawing {n:,} points "
              f"{np.median(browser['draw_ms']):.0f} ms (median of 5); a galaxy selected "
              f"(request, panel, map redrawn) in {np.median(browser['select_ms']):.0f} ms "
              f"median, {np.max(browser['select_ms']):.0f} ms max, in the page; click to "
              f"neighbours shown as WebDriver sees it {np.median(clicks):.0f} ms median "
              f"({len(clicks)} clicks)")  # fmt: skip
        load = [1000 * browser["load_s"]]
        for name, ms in (
            ("browser: click to neighbours shown", clicks),
            ("browser: galaxy selected, in the page", browser["select_ms"]),
            ("browser: draw the map", browser["draw_ms"]),
            ("browser: page load to ready", load),
        ):
            answers.append(summary(name, ms))
    for r in rows:
        r.update(n_galaxies=n, dim=args.dim, threads=args.threads)
    write_rows(args.output, rows)
    write_rows(str(args.output).replace(".csv", "_answers.csv"), answers)


if __name__ == "__main__":
    main()
