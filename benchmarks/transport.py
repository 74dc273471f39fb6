"""Decoded pixels from the decode workers to the scoring process: shared files against the pipe.

    python -m benchmarks.transport [--pairs 40] [--sizes 512 1024]

Runs pixgate's decode pool twice over the same cached pairs (the throughput benchmark's
synthetic PNGs), once passing pixels through RAM-backed files (`SHARED_MEMORY_DIR`, the
default) and once through the pipes, and measures what the scoring process spends per
pair: CPU time in collecting the pairs and stacking them into a batch, as the scorer does
(stacking reads every pixel, so mapped pages are paid for too). The workers' decoding is
the same in both and not counted. Writes `benchmarks/results/transport.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.score_memory import RESULTS
from benchmarks.throughput import _dataset


def _scorer_cpu_per_pair(base: Path, cand: Path, shared_dir: str | None, limit: int) -> dict[str, Any]:
    from pixgate.config import SHARED_MEMORY_DIR
    from pixgate.scoring.pairing import pair_directories
    from pixgate.scoring.workers import DecodePool
    from pixgate.telemetry import cpu_count

    pairs = [p for p in pair_directories(base, cand).pairs if p.scorable][:limit]
    pool = DecodePool(pairs, max(2, cpu_count()), 10**9, shared_dir)
    if shared_dir == SHARED_MEMORY_DIR and pool.shared_dir is None:
        raise SystemExit(f"{SHARED_MEMORY_DIR} is not usable here: nothing to compare")
    cpu = 0.0
    done = 0
    try:
        pool.refill()
        while pool.busy:
            started = time.process_time()  # CPU time: waiting for the workers counts nothing
            ready = pool.collect(block=True)
            if ready:
                np.stack([dp.baseline.rgba for _, dp in ready if dp.baseline is not None])
                np.stack([dp.candidate_aligned for _, dp in ready if dp.candidate_aligned is not None])
            cpu += time.process_time() - started
            done += len(ready)
    finally:
        pool.close()
    return {"pairs": done, "cpu_ms_per_pair": 1000 * cpu / max(done, 1)}


def main() -> None:
    from pixgate.config import SHARED_MEMORY_DIR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        base, cand = _dataset(args.pairs, size, "png")
        shared = _scorer_cpu_per_pair(base, cand, SHARED_MEMORY_DIR, args.pairs)
        pipe = _scorer_cpu_per_pair(base, cand, None, args.pairs)
        rows.append(
            {
                "size": size,
                "pairs": shared["pairs"],
                "shared files, scorer CPU ms per pair": round(shared["cpu_ms_per_pair"], 3),
                "pipe, scorer CPU ms per pair": round(pipe["cpu_ms_per_pair"], 3),
                "pipe / shared files": round(pipe["cpu_ms_per_pair"] / max(shared["cpu_ms_per_pair"], 1e-9), 2),
            }
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "transport.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("| size | pairs | shared files, scorer CPU ms/pair | pipe, scorer CPU ms/pair | pipe / shared files |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['size']} | {r['pairs']} | " + " | ".join(str(v) for v in list(r.values())[2:]) + " |")


if __name__ == "__main__":
    main()
