"""Run by tests/test_cli_torchrun.py under torchrun: the inference split of `skphotoz predict`
and `embed` (`_inference_split`) on a model whose batches are 4 rows, over blocks of rows.

    python -m torch.distributed.run --standalone --nproc_per_node=2 _inference_worker.py OUT

Each rank writes OUT/rank<r>.npz: the rows it computed, and (rank 0) what it gathered.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from skphotoz.cli._predict import _inference_split
from skphotoz.nn import distributed


class FourRowBatches:
    inference_batch_size = 4


def main(out: Path) -> None:
    split = _inference_split(FourRowBatches())
    computed: list[int] = []

    def compute(start, stop):
        if stop <= start:
            return None
        computed.extend(range(start, stop))
        rows = np.arange(start, stop)
        return {"row": rows, "square": rows.astype(np.float64) ** 2}

    gathered = [split(start, min(start + 30, 70), compute) for start in range(0, 70, 30)]
    rank = distributed.rank()
    result = {"computed": np.asarray(computed), "world": np.asarray(distributed.world_size())}
    if rank == 0:
        result["rows"] = np.concatenate([g["row"] for g in gathered])
        result["squares"] = np.concatenate([g["square"] for g in gathered])
    else:
        result["nothing"] = np.asarray([g is None for g in gathered])
    np.savez(out / f"rank{rank}.npz", **result)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
