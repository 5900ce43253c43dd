"""MoCo pretraining throughput on this machine for each backbone and stem.

Prints images/s of full MoCo steps (two augmented views, query forward + backward, key
forward, queue update) on 5x64x64 simulated galaxies, for views (crops) of 32, 48 and 64 px,
and writes docs/experiments/pretrain_throughput.csv. Each rate is that of the second epoch
(the first warms up the allocator and oneDNN kernels).

    python benchmarks/pretrain_throughput.py [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

from skphotoz import MoCoEmbedder
from skphotoz.datasets import make_sdss_galaxies

sys.path.insert(0, str(Path(__file__).parent))
from _output import write_rows  # noqa: E402

CONFIGS = [
    # (backbone, stem, view size, batch size, images per measurement on CPU)
    ("resnet18", "standard", 32, 128, 1024),  # the CPU defaults
    ("resnet18", "standard", 48, 128, 512),
    ("resnet18", "standard", 64, 128, 256),
    ("resnet34", "standard", 32, 128, 512),
    ("resnet50", "standard", 32, 64, 256),
    ("resnet18", "published", 32, 32, 64),
    ("resnet18", "published", 64, 32, 64),
    ("resnet50", "published", 64, 16, 32),  # the published configuration
]


def measure(backbone, stem, crop, batch_size, n_images, device):
    X = make_sdss_galaxies(n_images, random_state=0).images
    emb = MoCoEmbedder(
        backbone=backbone,
        stem=stem,
        crop_size=crop,
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
    parser.add_argument("--out", default="docs/experiments/pretrain_throughput.csv")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print(f"MoCo pretraining throughput, device={args.device}, threads={args.threads}")
    print(
        f"{'backbone':<10} {'stem':<10} {'view':>4} {'batch':>5} {'img/s':>8} {'wall s':>7} "
        f"{'max RSS GiB':>11}"
    )
    for backbone, stem, crop, batch, n in CONFIGS:
        rate, wall = measure(backbone, stem, crop, batch, n, args.device)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        rows.append(
            dict(backbone=backbone, stem=stem, view_px=crop, batch_size=batch,
                 images_per_s=round(rate, 1), wall_s=round(wall, 1), max_rss_gib=round(rss, 2),
                 device=args.device, threads=args.threads)
        )  # fmt: skip
        print(
            f"{backbone:<10} {stem:<10} {crop:>4} {batch:>5} {rate:>8.1f} {wall:>7.1f} "
            f"{rss:>11.2f}",
            flush=True,
        )
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
