"""Summary of a benchmarks/gpu_check.sh run: python benchmarks/_gpu_summary.py RESULTS_DIR.

Reads what the script wrote (phases.csv, throughput_cuda*.csv, gpu_util.csv) and prints the
figures that matter; whatever is missing is said to be missing.
"""

from __future__ import annotations

import csv
import sys
from datetime import datetime
from pathlib import Path


def read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def utilisation(folder: Path) -> list[tuple[float, float, float]]:
    """(unix time, GPU %, MiB used) of nvidia-smi's samples."""
    samples = []
    path = folder / "gpu_util.csv"
    if not path.exists():
        return samples
    for line in path.read_text().splitlines()[1:]:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3:
            continue
        try:
            when = datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
            samples.append((when, float(parts[1].split()[0]), float(parts[2].split()[0])))
        except ValueError:
            continue
    return samples


def main(folder: str) -> None:
    folder = Path(folder)
    print("=== summary of the GPU check ===")
    phases = read(folder / "phases.csv")
    samples = utilisation(folder)
    print("\nsteps (rc 0 ok, 124/137 timed out; GPU utilisation from nvidia-smi, 1 s samples):")
    for p in phases:
        line = f"  {p['phase']:<44} rc={p['rc']:<8}"
        if p["start_s"] and p["end_s"]:
            start, end = float(p["start_s"]), float(p["end_s"])
            line += f" {end - start:6.0f} s"
            inside = [s for s in samples if start <= s[0] <= end]
            if inside:
                util = [s[1] for s in inside]
                line += (
                    f"  GPU util mean {sum(util) / len(util):.0f}% max {max(util):.0f}%,"
                    f" memory used max {max(s[2] for s in inside) / 1024:.1f} GiB"
                )
        print(line)
    if not samples:
        print("  (no nvidia-smi samples)")
    names = sorted(p.name for p in folder.glob("throughput_*.csv")) or ["throughput_cuda.csv"]
    for name in names:
        rows = read(folder / name)
        if not rows:
            print(f"\n{name}: missing or empty")
            continue
        print(f"\n{name}: {len(rows)} rows ({rows[0]['device']}, {rows[0]['precision']})")
        for r in rows:
            if r["section"] == "grid":
                peak = f", peak {r['peak_gpu_gib']} GiB" if r["peak_gpu_gib"] else ""
                print(
                    f"  {r['measure']:<10} {r['setup']:<17} {r['backbone']:<9} {r['stem']:<9} "
                    f"view {r['view_px']:>2} batch {r['batch']:>3}: {r['images_per_s']:>8} "
                    f"img/s{peak}{'  ' + r['note'] if r['note'] else ''}"
                )
            elif r["ratio"]:
                print(
                    f"  {r['section']:<9} {r['setup']:<17} {r['measure']:<44} "
                    f"{r['images_per_s']:>8} img/s  ratio {r['ratio']} ({r['note']})"
                )
            elif r["measure"].startswith("data pipeline share"):
                print(
                    f"  {r['section']:<9} {r['setup']:<17} {r['measure']:<44} "
                    f"{float(r['share']):.0%} of {r['ms_per_batch']} ms"
                )
            elif r["section"] == "pipeline" and r["images_per_s"]:
                print(
                    f"  {r['section']:<9} {r['setup']:<17} {r['measure']:<44} "
                    f"{r['images_per_s']:>8} img/s{'  ' + r['note'] if r['note'] else ''}"
                )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/gpu_check")
