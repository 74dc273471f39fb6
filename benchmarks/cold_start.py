"""How long a short run takes as a whole process: the golden set, fresh and warm.

    python -m benchmarks.cold_start [--rounds 3]

Scores the shipped golden set (`golden/`, with its manifest: every check on, typography
included) with `pixgate score --device cpu`, as a fresh process timed from launch to
exit, with the benchmark's AlexNet weights (seeded random ones without real weights: a
forward pass costs the same whatever the values):

- `fresh`: empty kernel and OCR caches (`PIXGATE_KERNEL_CACHE`, `PIXGATE_OCR_CACHE` set
  to new folders), as on a new machine or a CI job without a kept cache;
- `warm`: the same caches, as the fresh run left them.

Beside them, the floor every run pays before pixgate does anything: a process that only
imports torch, and one that runs `pixgate --version`.

Each round runs floor, fresh, warm, warm in that order; medians are reported with the
start-up phases the run's stats give. Writes `benchmarks/results/cold_start.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.score_memory import RESULTS, ROOT, _weights
from benchmarks.typography import _cpu

GOLDEN = ROOT.parent / "golden"
#: The issue's goals, seconds of process wall time for the golden set on the 2-core machine.
GOALS_S = {"warm": 3.0, "fresh": 10.0}


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    return time.perf_counter() - started, done


def _score(weights: Path, out: Path, caches: Path) -> dict[str, Any]:
    from pixgate.runs.files import read_run, run_metadata
    from pixgate.runs.schema import META_STATS

    env = {**os.environ, "PIXGATE_KERNEL_CACHE": str(caches / "kernels"), "PIXGATE_OCR_CACHE": str(caches / "ocr")}
    cmd = [sys.executable, "-m", "pixgate", "score", str(GOLDEN / "baseline"), str(GOLDEN / "candidate"),
           "-o", str(out), "--manifest", str(GOLDEN / "manifest.jsonl"), "--weights", str(weights),
           "--device", "cpu", "--overwrite", "-q"]  # fmt: skip
    wall, done = _timed(cmd, env)
    if done.returncode not in (0, 1):
        raise SystemExit(f"pixgate score failed ({done.returncode}): {done.stderr[-2000:]}")
    stats = json.loads(run_metadata(read_run(out))[META_STATS])
    keys = ("before_run_s", "startup_s", "warmup_ms", "process_s", "scorer_cpu_s", "startup_phases_s")
    return {"wall_s": round(wall, 3), **{k: stats.get(k) for k in keys}}


def _floor() -> dict[str, float]:
    env = dict(os.environ)
    torch_s, _ = _timed([sys.executable, "-c", "import torch"], env)
    version_s, _ = _timed([sys.executable, "-m", "pixgate", "--version"], env)
    return {"import_torch_s": round(torch_s, 3), "pixgate_version_s": round(version_s, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1; got {args.rounds}")
    weights = _weights()
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pixgate-cold-") as tmp:
        for i in range(args.rounds):
            caches = Path(tmp) / f"caches{i}"
            out = Path(tmp) / "run.arrow"
            floor = _floor()
            fresh = _score(weights, out, caches)
            warm = [_score(weights, out, caches) for _ in range(2)]
            rounds.append({**floor, "fresh": fresh, "warm": warm})
            print(f"round {i + 1}: import torch {floor['import_torch_s']:.2f} s, pixgate --version "
                  f"{floor['pixgate_version_s']:.2f} s, fresh {fresh['wall_s']:.2f} s, warm "
                  + ", ".join(f"{w['wall_s']:.2f}" for w in warm) + " s", flush=True)  # fmt: skip
    warm_all = [w for r in rounds for w in r["warm"]]
    median = {
        "import_torch_s": statistics.median(r["import_torch_s"] for r in rounds),
        "pixgate_version_s": statistics.median(r["pixgate_version_s"] for r in rounds),
        "fresh_s": statistics.median(r["fresh"]["wall_s"] for r in rounds),
        "warm_s": statistics.median(w["wall_s"] for w in warm_all),
    }
    result = {
        "cpu": _cpu(),
        "pairs": len(list((GOLDEN / "baseline").iterdir())),
        "rounds": rounds,
        "median": median,
        "goals_s": GOALS_S,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cold_start.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['cpu']}; golden set, {result['pairs']} pairs, medians of {args.rounds} rounds:")
    floor = f"import torch alone {median['import_torch_s']:.2f} s"
    print(f"  {floor}; pixgate --version {median['pixgate_version_s']:.2f} s")
    for key in ("fresh", "warm"):
        print(f"  {key}: {median[key + '_s']:.2f} s (goal {GOALS_S[key]:.0f} s)")
    last = rounds[-1]["warm"][-1]
    print(f"  warm start-up phases (last run): before the run {last['before_run_s']} s, "
          + ", ".join(f"{k} {v}" for k, v in (last["startup_phases_s"] or {}).items()))  # fmt: skip


if __name__ == "__main__":
    main()
