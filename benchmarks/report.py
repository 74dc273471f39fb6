"""Report build time and size for a 2,000-pair run against inlining the originals, and
report time and memory at 10,000 and 1,000,000 rows against the gate on the same file.

    python -m benchmarks.report [--only size|scale] [--pairs 2000] [--size 1024] [--top 20]
        [--rows 1000 10000 1000000]

Size: uses (and caches) `--top` distinct 1024x1024 PNG pairs from the throughput
benchmark, a run of `--pairs` rows over them, and builds the report as shipped
(full-resolution views of the first cards, thumbnails after them, maps), against, for
reference in the same run, the size the shown pictures would take inlined as their
original PNGs. Reports build seconds, MB, and the size ratio. Writes
`benchmarks/results/report.json`. Seeded random AlexNet weights stand in for the LPIPS
maps when none are installed.

Scale: synthetic run files of `--rows` ok rows (seeded random LPIPS, Delta E and edge
preservation, a few parity failures, no pictures), written by pixgate's own run-file
writer (`pixgate.runs.files.RunJournal`) with the run schema. Each is given, as whole
processes, to `pixgate report` (`--repeat` times, the median kept) and, for reference
on the same file, to `pixgate gate` (a four-rule policy; once); each process's wall time
and peak RSS (`wait4`), the page's size, and the ratios report/gate and largest/smallest
run. Writes `benchmarks/results/report_scale.json`.
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.score_memory import RESULTS, ROOT, _weights
from benchmarks.throughput import _dataset
from benchmarks.typography import _cpu

# The gate's policy of the scale runs: per-pair rules and a distribution rule, as in
# golden/policy.toml.
_POLICY = """
[policy]
name = "report benchmark"

[[rule]]
name = "every pair scored"
column = "status"
stat = "each"
op = "=="
pass = "ok"
critical = true

[[rule]]
name = "alpha parity"
column = "alpha_parity"
stat = "each"
op = "=="
pass = true
critical = true

[[rule]]
name = "perceptual drift"
column = "lpips"
stat = "p95"
op = "<="
pass = 0.2

[[rule]]
name = "edges"
column = "edge_preservation"
stat = "p05"
op = ">="
pass = 0.8
"""
# Share of the synthetic rows whose alpha parity fails (a few worst pairs to rank first).
_ALPHA_FAILURES = 0.001


def _size(args: argparse.Namespace) -> dict[str, object]:
    from pixgate.report.html import build_report
    from pixgate.runs import schema
    from pixgate.telemetry import cpu_count
    from tests.conftest import write_run

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
    (RESULTS / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def synthetic_run(path: Path, rows: int, seed: int = 0) -> Path:
    """A run file of `rows` ok rows without pictures, written as `score` writes one."""
    import pyarrow as pa

    from pixgate import __version__
    from pixgate.runs import schema
    from pixgate.runs.files import RunJournal

    rng = np.random.default_rng(seed)
    meta = {schema.META_SCHEMA_VERSION: schema.SCHEMA_VERSION, schema.META_PIXGATE_VERSION: __version__}
    arrow = schema.arrow_schema(meta)
    values: dict[str, pa.Array] = {
        schema.PAIR_ID.name: pa.array([f"batch/{i:07d}.png" for i in range(rows)], pa.string()),
        schema.STATUS.name: pa.array([schema.STATUS_OK] * rows, pa.string()),
        schema.LPIPS.name: pa.array(rng.uniform(0, 0.3, rows)),
        schema.DELTA_E_MEAN.name: pa.array(rng.uniform(0, 4, rows)),
        schema.EDGE_PRESERVATION.name: pa.array(rng.uniform(0.7, 1, rows)),
        schema.ALPHA_PARITY.name: pa.array(rng.random(rows) > _ALPHA_FAILURES),
        schema.DECODE_MS.name: pa.array(rng.gamma(4, 2, rows)),
        schema.COMPUTE_MS.name: pa.array(rng.gamma(4, 5, rows)),
    }
    table = pa.table([values.get(f.name, pa.nulls(rows, f.type)) for f in arrow], schema=arrow)
    path.unlink(missing_ok=True)
    journal = RunJournal(path, meta, carried=table)
    journal.finalize(meta)
    return path


# Launches a command and prints its exit status, wall time and peak RSS (`wait4`), from a
# process of its own: Linux counts in a child's peak the parent's at the fork (the exec
# records the memory it replaces), and this process holds no more than Python itself,
# where the benchmark's holds the synthetic tables it wrote.
_MEASURE = """
import json, os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(json.dumps([os.waitstatus_to_exitcode(status), time.perf_counter() - started, usage.ru_maxrss]))
"""


def _process(cmd: list[str]) -> dict[str, float]:
    """Wall time and peak RSS of one whole process, launch to exit."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], capture_output=True, text=True, check=True).stdout
    code, wall, peak_kib = json.loads(out)
    if code not in (0, 1):  # the gate's 1 is a failing verdict, still a full run
        raise SystemExit(f"{' '.join(cmd)} exited {code}")
    return {"wall_s": round(wall, 3), "peak_rss_mb": round(peak_kib / 1024, 1)}  # ru_maxrss: KiB on Linux


def _scale(args: argparse.Namespace) -> dict[str, object]:
    cache = ROOT / ".cache" / "report-scale"
    cache.mkdir(parents=True, exist_ok=True)
    policy = cache / "policy.toml"
    policy.write_text(_POLICY)
    pixgate = [sys.executable, "-m", "pixgate"]
    runs: dict[str, dict[str, object]] = {}
    for rows in args.rows:
        run = synthetic_run(cache / f"run{rows}.arrow", rows)
        page = cache / f"report{rows}.html"
        # The report's peak varies by some tens of MiB from run to run (Arrow's allocator
        # and its threads): it runs `--repeat` times and the median of each figure is kept.
        cmd = [*pixgate, "report", str(run), "-o", str(page), "--files-under", str(cache), "-q"]
        tries = [_process(cmd) for _ in range(args.repeat)]
        report = {key: float(np.median([t[key] for t in tries])) for key in ("wall_s", "peak_rss_mb")}
        gate = _process([*pixgate, "gate", str(run), "--policy", str(policy), "--json", str(cache / "v.json"), "-q"])
        runs[str(rows)] = {
            "run_file_mb": round(run.stat().st_size / 1e6, 1),
            "report": {**report, "page_mb": round(page.stat().st_size / 1e6, 2), "tries": tries},
            "gate": gate,
            "report_over_gate": {
                "wall": round(report["wall_s"] / gate["wall_s"], 2),
                "peak_rss": round(report["peak_rss_mb"] / gate["peak_rss_mb"], 2),
            },
        }
        print(f"{rows:>9} rows: report {report['wall_s']:.1f} s, {report['peak_rss_mb']:.0f} MiB; "
              f"gate {gate['wall_s']:.1f} s, {gate['peak_rss_mb']:.0f} MiB", flush=True)  # fmt: skip
    small, large = (str(n) for n in (min(args.rows), max(args.rows)))
    report_of = {n: r["report"] for n, r in runs.items()}
    result = {
        "machine": _cpu(),
        "rows": args.rows,
        "runs": runs,
        f"report_{large}_over_{small}": {
            "wall": round(report_of[large]["wall_s"] / report_of[small]["wall_s"], 2),  # type: ignore[index]
            "peak_rss": round(report_of[large]["peak_rss_mb"] / report_of[small]["peak_rss_mb"], 2),  # type: ignore[index]
            "page": round(report_of[large]["page_mb"] / report_of[small]["page_mb"], 2),  # type: ignore[index]
        },
    }
    (RESULTS / "report_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("size", "scale"), help="run one of the two (default: both)")
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 10_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3, help="report runs per size (the median is kept)")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    if args.only in (None, "size"):
        print(json.dumps(_size(args), indent=2))
    if args.only in (None, "scale"):
        print(json.dumps(_scale(args), indent=2))


if __name__ == "__main__":
    main()
