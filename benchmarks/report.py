"""Report build time and size for a 2,000-pair run, against inlining the originals.

    python -m benchmarks.report [--pairs 2000] [--size 1024] [--top 20]

Uses (and caches) `--top` distinct 1024x1024 PNG pairs from the throughput benchmark, a run of `--pairs` rows over
them, and builds the report as shipped (full-resolution views of the first cards,
thumbnails after them, maps), against, for reference in the same run, the size the
shown pictures would take inlined as their original PNGs.
Reports build seconds, MB, and the size ratio. Writes `benchmarks/results/report.json`.
Seeded random AlexNet weights stand in for the LPIPS maps when none are installed.
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import time

import numpy as np

from benchmarks.score_memory import RESULTS, ROOT, _weights
from benchmarks.throughput import _dataset


def main() -> None:
    from pixgate.report.html import build_report
    from pixgate.runs import schema
    from pixgate.telemetry import cpu_count
    from tests.conftest import write_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    cache = ROOT / ".cache" / f"report-{args.size}"
    cache.mkdir(parents=True, exist_ok=True)
    # The throughput benchmark's poster-like pairs (made in parallel, cached).
    base, cand = _dataset(args.top, args.size, "png")
    pairs = [(b, cand / b.name) for b in sorted(base.iterdir())]
    rng = np.random.default_rng(0)
    rows = [
        {
            schema.PAIR_ID.name: f"batch/{i:05d}",
            schema.STATUS.name: schema.STATUS_OK,
            schema.BASELINE_PATH.name: str(pairs[i % args.top][0]),
            schema.CANDIDATE_PATH.name: str(pairs[i % args.top][1]),
            schema.LPIPS.name: float(rng.uniform(0, 0.3)),
            schema.DELTA_E_MEAN.name: float(rng.uniform(0, 4)),
            schema.EDGE_PRESERVATION.name: float(rng.uniform(0.7, 1)),
        }
        for i in range(args.pairs)
    ]
    # The run records its folders: a report reads pictures only inside them.
    roots = {schema.META_BASELINE_ROOT: str(base), schema.META_CANDIDATE_ROOT: str(cand)}
    run = write_run(cache / "run.arrow", rows, roots)
    started = time.perf_counter()
    stats = build_report(run, cache / "report.html", top=args.top, weights=_weights(), files_under=ROOT)
    if stats.shown != args.top:
        raise SystemExit(f"only {stats.shown} of {args.top} pairs had pictures: {stats.notes}")
    wall = time.perf_counter() - started
    originals = sum(len(base64.b64encode(p.read_bytes())) for pair in pairs for p in pair)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {cpu_count()} cores",
        "pairs": args.pairs,
        "size": args.size,
        "shown": stats.shown,
        "build_s": round(wall, 2),
        "report_mb": round(stats.bytes / 1e6, 2),
        "originals_inlined_mb": round(originals / 1e6, 2),
        "size_ratio_vs_originals": round(stats.bytes / originals, 3),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
