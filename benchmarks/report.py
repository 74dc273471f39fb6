"""Report build time and size for a 2,000-pair run, against inlining the originals.

    python -m benchmarks.report [--pairs 2000] [--size 1024] [--top 20]

Makes (and caches) `--top` distinct 1024x1024 PNG pairs, a run of `--pairs` rows over
them, and builds the report twice: as shipped (thumbnails and maps) and, for reference
in the same run, the size the shown pictures would take inlined as their original PNGs.
Reports build seconds, MB, and the size ratio. Writes `benchmarks/results/report.json`.
Seeded random AlexNet weights stand in for the LPIPS maps when none are installed.
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import time
from pathlib import Path

import numpy as np

from benchmarks.score_memory import RESULTS, ROOT, _weights


def _images(folder: Path, count: int, size: int) -> list[tuple[Path, Path]]:
    from PIL import Image, ImageDraw, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(count):
        b, c = folder / f"b{i}.png", folder / f"c{i}.png"
        if not (b.exists() and c.exists()):
            rng = np.random.default_rng(i)
            y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
            grad = np.stack([x, y, 1 - x * y], -1) * rng.uniform(120, 255, 3)
            im = Image.fromarray(np.clip(grad + rng.normal(0, 6, grad.shape), 0, 255).astype(np.uint8))
            draw = ImageDraw.Draw(im)
            for _ in range(8):
                x0, y0 = rng.integers(0, size - size // 4, 2)
                draw.ellipse((x0, y0, x0 + size // 5, y0 + size // 6), fill=tuple(rng.integers(0, 255, 3).tolist()))
            im.save(b)
            im.filter(ImageFilter.GaussianBlur(1.5)).save(c)
        pairs.append((b, c))
    return pairs


def main() -> None:
    from engine import schema
    from engine.report import build_report
    from engine.telemetry import cpu_count
    from tests.conftest import write_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    cache = ROOT / ".cache" / f"report-{args.size}"
    pairs = _images(cache, args.top, args.size)
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
    run = write_run(cache / "run.arrow", rows)
    started = time.perf_counter()
    stats = build_report(run, cache / "report.html", top=args.top, weights=_weights())
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
