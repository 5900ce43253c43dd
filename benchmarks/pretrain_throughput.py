"""MoCo pretraining throughput on this machine for each backbone and stem.

Prints images/s of full MoCo steps (two augmented views, query forward + backward, key
forward, queue update) on 5x64x64 simulated galaxies, and writes docs/pretrain_throughput.csv.

    python benchmarks/pretrain_throughput.py [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import csv
import resource
import time
from pathlib import Path

import torch

from skphotoz import MoCoEmbedder
from skphotoz.datasets import make_sdss_galaxies

CONFIGS = [
    # (backbone, stem, batch size, images per measurement on CPU)
    ("resnet18", "standard", 128, 512),
    ("resnet34", "standard", 128, 256),
    ("resnet50", "standard", 64, 256),
    ("resnet18", "published", 32, 64),
    ("resnet50", "published", 16, 32),
]


def measure(backbone, stem, batch_size, n_images, device):
    X = make_sdss_galaxies(n_images, random_state=0).images
    emb = MoCoEmbedder(
        backbone=backbone,
        stem=stem,
        n_epochs=2,
        batch_size=batch_size,
        queue_size=4096,
        device=device,
        random_state=0,
    )
    started = time.perf_counter()
    emb.fit(X)
    # The first epoch warms up the allocator and oneDNN kernels; report the second.
    return emb.history_[-1]["images_per_s"], time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="docs/pretrain_throughput.csv")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print(f"MoCo pretraining throughput, device={args.device}, threads={args.threads}")
    print(
        f"{'backbone':<10} {'stem':<10} {'batch':>5} {'img/s':>8} {'wall s':>7} {'max RSS GiB':>11}"
    )
    for backbone, stem, batch, n in CONFIGS:
        rate, wall = measure(backbone, stem, batch, n, args.device)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        rows.append(
            dict(backbone=backbone, stem=stem, batch_size=batch, images_per_s=round(rate, 1),
                 wall_s=round(wall, 1), max_rss_gib=round(rss, 2), device=args.device,
                 threads=args.threads)
        )  # fmt: skip
        print(f"{backbone:<10} {stem:<10} {batch:>5} {rate:>8.1f} {wall:>7.1f} {rss:>11.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
