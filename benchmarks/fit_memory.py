"""Peak memory of fitting and applying the estimators on an HDF5 archive larger than memory.

Simulates an archive with :func:`skphotoz.datasets.write_sdss_galaxies` (default 4 GiB of
images: 52,428 galaxies of 5 x 64 x 64 float32 = 80 KiB each, every one drawn and rendered
with its own seed, written 1,024 at a time: 69 s for the 52,429 galaxies on 2 shared CPU
cores), then runs each step in a fresh Python process on ``open_archive(path).images``, the
lazy :class:`~skphotoz.data.HDF5Images`:

- ``moco_fit``: ``MoCoEmbedder(n_epochs=1, device="cpu")``, otherwise the defaults (ResNet18,
  32-px views, batch 128, the photometry term measured on every stamp of the archive);
- ``moco_transform``: embeddings of the whole archive (n x 512 float32);
- ``photoz_fit``: ``PhotoZRegressor(n_epochs=2, early_stopping=True, device="cpu")`` on the
  archive's redshifts (all galaxies labelled; 10% held out for validation every epoch);
- ``photoz_predict``: ``predict(images, return_pdf=True)`` over the whole archive;
- ``search_fit``: ``SimilaritySearch(embedder=<the fitted embedder>).fit(images)`` and the
  5 nearest neighbours of every indexed galaxy.

Fitted models travel between steps as joblib files. Each step reports the peak resident
memory of its process (``ru_maxrss`` from ``os.wait4``: imports, model and data together),
the peak of its anonymous memory (``RssAnon``, polled every 20 ms: what the process
allocated, without the shared libraries' file-backed pages), the resident memory after the
imports, the wall time and the images per second. Prints a table and writes a CSV. The
archive is deleted at the end unless ``--keep``.

    python benchmarks/fit_memory.py [--size-gb 4 | --n-galaxies N] [--dir /tmp]
        [--steps moco_fit moco_transform photoz_fit photoz_predict search_fit]
        [--moco-epochs 1] [--photoz-epochs 2] [--num-workers 0]
        [--out docs/experiments/fit_memory.csv]

A small run: ``--n-galaxies 2000`` (a minute or two). Linux only (``/proc/self/status``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _output import write_rows  # noqa: E402

STAMP = 64
BANDS = 5
GALAXY_BYTES = BANDS * STAMP * STAMP * 4  # 80 KiB of float32 images
STEPS = ("moco_fit", "moco_transform", "photoz_fit", "photoz_predict", "search_fit")
SEED = 0


# ------------------------------------------------------------------------ child side
def _status_kib(keys=("VmRSS", "RssAnon")) -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in keys:
                out[key] = int(line.split()[1])
    return out


class _AnonPeak:
    """Polls RssAnon every 20 ms in a thread; ``peak`` in KiB."""

    def __init__(self):
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        while not self._done.is_set():
            self.peak = max(self.peak, _status_kib(("RssAnon",)).get("RssAnon", 0))
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, _status_kib(("RssAnon",)).get("RssAnon", 0))


def _run_step(step: str, archive: str, state: str, args) -> dict:
    """One step in this (fresh) process; returns what it measured."""
    import joblib
    import numpy as np
    import torch

    from skphotoz import MoCoEmbedder, PhotoZRegressor
    from skphotoz.data import open_archive
    from skphotoz.metrics import sigma_mad
    from skphotoz.search import SimilaritySearch

    data = open_archive(archive)
    images, n = data.images, len(data.images)
    embedder_path = os.path.join(state, "embedder.joblib")
    regressor_path = os.path.join(state, "regressor.joblib")
    after_imports = _status_kib()
    detail: dict = {}
    tick = time.perf_counter()
    with _AnonPeak() as anon:
        if step == "moco_fit":
            model = MoCoEmbedder(
                n_epochs=args.moco_epochs, device="cpu", num_workers=args.num_workers,
                random_state=SEED,
            ).fit(images)  # fmt: skip
            joblib.dump(model, embedder_path)
            n_images = n * args.moco_epochs
            detail = {"loss": round(model.history_[-1]["loss"], 4),
                      "train_img_per_s": round(model.history_[-1]["images_per_s"], 1)}  # fmt: skip
        elif step == "moco_transform":
            embeddings = joblib.load(embedder_path).transform(images)
            n_images = n
            detail = {"output": f"{embeddings.shape[0]}x{embeddings.shape[1]} {embeddings.dtype}"}
        elif step == "photoz_fit":
            model = PhotoZRegressor(
                n_epochs=args.photoz_epochs, early_stopping=True, validation_fraction=0.1,
                device="cpu", num_workers=args.num_workers, random_state=SEED,
            ).fit(images, data.redshift)  # fmt: skip
            joblib.dump(model, regressor_path)
            n_val = max(1, round(0.1 * n))
            n_images = (n - n_val) * len(model.history_)
            last = model.history_[-1]
            detail = {"epochs": len(model.history_), "best_epoch": model.best_epoch_,
                      "validation_rows": n_val,
                      "validation_sigma_mad": round(last["validation_sigma_mad"], 4),
                      "train_img_per_s": round(last["images_per_s"], 1)}  # fmt: skip
        elif step == "photoz_predict":
            z, pdf = joblib.load(regressor_path).predict(images, return_pdf=True)
            n_images = n
            detail = {"output": f"z {z.shape}, pdf {pdf.shape}",
                      "sigma_mad": round(float(sigma_mad(data.redshift, z)), 4)}  # fmt: skip
        elif step == "search_fit":
            search = SimilaritySearch(
                n_neighbors=5, embedder=joblib.load(embedder_path), device="cpu"
            ).fit(images)
            _, neighbours = search.kneighbors()
            n_images = n
            detail = {"output": f"neighbours {neighbours.shape}"}
        else:
            raise ValueError(f"unknown step {step!r}")
    wall = time.perf_counter() - tick
    return {
        "rss_after_imports_mib": after_imports["VmRSS"] / 1024,
        "peak_anon_mib": anon.peak / 1024,
        "ru_maxrss_self_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "wall_s": wall,
        "images": n_images,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "detail": detail,
    }


# ----------------------------------------------------------------------- parent side
def write_archive(path: Path, n: int) -> float:
    from skphotoz.datasets import write_sdss_galaxies

    tick = time.perf_counter()
    write_sdss_galaxies(path, n, random_state=SEED, stamp_size=STAMP, chunk_size=1024)
    return time.perf_counter() - tick


def measure(step: str, archive: Path, state: Path, args) -> dict:
    """Run ``step`` in a fresh process; its own peak RSS comes from ``os.wait4``."""
    result = state / f"{step}.json"
    command = [
        sys.executable, __file__, "--_child", step, "--_archive", str(archive),
        "--_state", str(state), "--_result", str(result),
        "--moco-epochs", str(args.moco_epochs), "--photoz-epochs", str(args.photoz_epochs),
        "--num-workers", str(args.num_workers),
    ]  # fmt: skip
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"step {step} failed (exit status {process.returncode})")
    measured = json.loads(result.read_text())
    measured["peak_rss_mib"] = usage.ru_maxrss / 1024  # KiB on Linux
    return measured


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--size-gb", type=float, default=4.0,
                      help="GiB (2**30 bytes) of images; 4 -> 52,428 galaxies")  # fmt: skip
    size.add_argument("--n-galaxies", type=int, default=None)
    parser.add_argument("--dir", default="/tmp", help="where the archive is written")
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    parser.add_argument("--moco-epochs", type=int, default=1)
    parser.add_argument("--photoz-epochs", type=int, default=2)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the archive")
    parser.add_argument("--out", default="docs/experiments/fit_memory.csv")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    parser.add_argument("--_archive", help=argparse.SUPPRESS)
    parser.add_argument("--_state", help=argparse.SUPPRESS)
    parser.add_argument("--_result", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args._child:
        measured = _run_step(args._child, args._archive, args._state, args)
        Path(args._result).write_text(json.dumps(measured))
        return

    n = args.n_galaxies or int(round(args.size_gb * 2**30 / GALAXY_BYTES))
    tmp = Path(tempfile.mkdtemp(prefix="fit_memory_", dir=args.dir))
    archive = tmp / "archive.h5"
    try:
        seconds = write_archive(archive, n)
        file_gib = os.path.getsize(archive) / 2**30
        print(
            f"simulated {n} galaxies ({BANDS} x {STAMP} x {STAMP} float32, each with its own "
            f"seed; write_sdss_galaxies, random_state={SEED}) into {archive}: "
            f"{file_gib:.2f} GiB in {seconds:.0f} s ({n / seconds:.0f} galaxies/s)",
            flush=True,
        )
        header = f"{'step':<15} {'peak RSS MiB':>12} {'peak anon MiB':>13} {'RSS import MiB':>14}"
        header += f" {'wall s':>7} {'img/s':>7}"
        rows, lines = [], []
        for step in args.steps:
            m = measure(step, archive, tmp, args)
            rate = m["images"] / m["wall_s"]
            rows.append(
                dict(step=step, n_galaxies=n, archive_gib=round(file_gib, 3),
                     peak_rss_mib=round(m["peak_rss_mib"], 1),
                     peak_anon_mib=round(m["peak_anon_mib"], 1),
                     rss_after_imports_mib=round(m["rss_after_imports_mib"], 1),
                     wall_s=round(m["wall_s"], 1), images=m["images"],
                     images_per_s=round(rate, 1), torch_threads=m["torch_threads"],
                     num_workers=args.num_workers, detail=json.dumps(m["detail"]))
            )  # fmt: skip
            lines.append(
                f"{step:<15} {m['peak_rss_mib']:>12.0f} {m['peak_anon_mib']:>13.0f} "
                f"{m['rss_after_imports_mib']:>14.0f} {m['wall_s']:>7.1f} {rate:>7.0f}  "
                f"{json.dumps(m['detail'])}"
            )
            print(f"done: {lines[-1]}", flush=True)
        print(f"\n{n} galaxies, archive {file_gib:.2f} GiB, torch threads "
              f"{rows[0]['torch_threads']}, num_workers {args.num_workers}")  # fmt: skip
        print(header)
        print("\n".join(lines))
        write_rows(args.out, rows)
    finally:
        if args.keep:
            print(f"kept {archive}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
