"""pixgate against the scripts a user would write, each as a whole process, on one CPU.

    python -m benchmarks.cpu_ratio [--pairs 96] [--size 512] [--rounds 2]

On the throughput benchmark's poster-like PNG pairs, with the same seeded (or installed)
AlexNet weights, each round runs, in alternating order, as fresh processes timed from
launch to exit:

- `lpips`: the `lpips` package's one-pair loop (load a pair, score it, next), LPIPS only;
- `user`: what a user writes for the metrics pixgate gives: that loop plus scikit-image's
  CIEDE2000 (mean and p95 over pixels opaque in both), Sobel edge preservation (the
  baseline's edge strength the candidate keeps) and alpha parity, mean difference and
  IoU; no typography;
- `pixgate`: `pixgate score` with its defaults (every metric on, typography included; the
  OCR cache warmed by an untimed first run, as a CI job that keeps its cache has it).

Reports seconds per round and pixgate's speed as a ratio to each, the median of the
rounds' ratios (each taken within its round), with the CPU's model and flags. Writes
`benchmarks/results/cpu_ratio.json`.
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
from benchmarks.throughput import _dataset

PIPELINES = ("lpips", "user", "pixgate")


def _lpips_loop(base: Path, cand: Path, weights: Path, *, metrics: bool) -> None:
    """The loop a user writes: one pair at a time; with `metrics`, the other metrics too."""
    import lpips
    import numpy as np
    import torch
    from PIL import Image

    from pixgate.scoring.models import reference_lpips

    if metrics:
        from skimage.color import deltaE_ciede2000, rgb2lab
        from skimage.filters import sobel
    model = reference_lpips("alex", weights)
    with torch.no_grad():
        for path in sorted(base.iterdir()):
            a = np.asarray(Image.open(path).convert("RGBA"))
            b = np.asarray(Image.open(cand / path.name).convert("RGBA"))
            model(lpips.im2tensor(a[..., :3]), lpips.im2tensor(b[..., :3])).item()
            if not metrics:
                continue
            opaque = (a[..., 3] >= 128) & (b[..., 3] >= 128)
            de = deltaE_ciede2000(rgb2lab(a[..., :3]), rgb2lab(b[..., :3]))[opaque]
            _ = (de.mean(), np.percentile(de, 95)) if de.size else (None, None)
            ga, gb = sobel(a[..., :3].mean(-1) / 255.0), sobel(b[..., :3].mean(-1) / 255.0)
            _ = np.minimum(ga, gb).sum() / max(ga.sum(), 1e-12)
            ma, mb = a[..., 3] >= 128, b[..., 3] >= 128
            _ = (np.abs(a[..., 3].astype(float) - b[..., 3]).mean() / 255.0, (ma & mb).sum() / max((ma | mb).sum(), 1))


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, cwd=ROOT.parent)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):  # pixgate exits 1 when some pair is not ok
        raise SystemExit(f"{cmd[:4]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall


def _command(pipeline: str, base: Path, cand: Path, weights: Path, out: Path) -> list[str]:
    if pipeline == "pixgate":
        return [sys.executable, "-m", "pixgate", "score", str(base), str(cand), "-o", str(out), "--weights",
                str(weights), "--overwrite", "-q"]  # fmt: skip
    return [sys.executable, "-m", "benchmarks.cpu_ratio", "--run", pipeline, str(base), str(cand), str(weights)]


def _cpu() -> dict[str, Any]:
    import torch

    from pixgate.telemetry import cpu_flags, device_name

    flags = cpu_flags()
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return {"cpu": device_name(torch.device("cpu")), "flags": shown}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=96)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--run", nargs=4, metavar=("PIPELINE", "BASE", "CAND", "WEIGHTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        pipeline, base, cand, weights = args.run
        _lpips_loop(Path(base), Path(cand), Path(weights), metrics=pipeline == "user")
        return
    base, cand = _dataset(args.pairs, args.size, "png")
    weights = _weights()
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.arrow"
        _timed(_command("pixgate", base, cand, weights, out), env)  # warms the OCR and kernel caches
        rounds: list[dict[str, float]] = []
        for r in range(args.rounds):
            order = PIPELINES if r % 2 == 0 else PIPELINES[::-1]
            rounds.append({p: _timed(_command(p, base, cand, weights, out), env) for p in order})
            print(f"round {r + 1}: " + ", ".join(f"{p} {s:.1f} s" for p, s in rounds[-1].items()), flush=True)
    ratios = {p: statistics.median(r[p] / r["pixgate"] for r in rounds) for p in ("lpips", "user")}
    result = {
        **_cpu(),
        "pairs": args.pairs,
        "size": args.size,
        "seconds": {p: [round(r[p], 2) for r in rounds] for p in PIPELINES},
        "pixgate_speed_ratio": {p: round(v, 3) for p, v in ratios.items()},
        "goals": {"lpips": 1.5, "user": 3.0},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cpu_ratio.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
