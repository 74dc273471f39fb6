"""Memory flatness and decode overlap of `pixgate score`, beside the naive `lpips` loop.

Runs, in one invocation, on the same synthetic 512x512 PNG pairs and the same weights:
`pixgate score` (a real subprocess) on 50 pairs and on 2,000 (a promo batch), and the
naive loop the `lpips` package's own scripts use (load a pair, score it, next) on the
first 50 pairs.

Reports, for both runs, the whole process's wall time and peak RSS, and the ratio of the
peaks (flat memory: ~1.0), the share of
wall time the scoring loop waited for decoded images, and pixgate's pairs/s as a ratio to
the naive loop. Then the memory per pixel of a pair: single pairs of growing sides, each
in a fresh process, and the growth of the scoring process's peak per added pixel (the
figure behind `pixgate.config.SCORER_BYTES_PER_PIXEL` and the bound docs/score.md states). Writes
`benchmarks/results/score_memory.json`.

    python -m benchmarks.score_memory [--pairs 50 2000] [--size 512] [--sides 512 3000 6000]

Without real weights it uses seeded random AlexNet weights: the cost of a forward pass
does not depend on the values of the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / ".cache"
RESULTS = ROOT / "results"


def _weights() -> Path:
    from pixgate.scoring.weights import WeightsError, resolve_weights

    try:
        return resolve_weights("alex", allow_download=False).path
    except WeightsError:
        pass
    import torch
    from torchvision import models

    path = CACHE / "alexnet-random.pth"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        torch.save(models.alexnet(weights=None).state_dict(), path)
    return path


def _dataset(pairs: int, size: int) -> tuple[Path, Path]:
    """Poster-like PNG pairs (gradients, shapes, text, noise), cached between runs."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    base, cand = CACHE / f"png{size}" / "baseline", CACHE / f"png{size}" / "candidate"
    base.mkdir(parents=True, exist_ok=True)
    cand.mkdir(parents=True, exist_ok=True)
    font = ImageFont.load_default(size=size // 16)
    for i in range(pairs):
        b, c = base / f"img{i:05d}.png", cand / f"img{i:05d}.png"
        if b.exists() and c.exists():
            continue
        rng = np.random.default_rng(i)
        y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
        grad = np.stack([x, y, 1 - x * y], -1) * rng.uniform(120, 255, 3)
        arr = np.clip(grad + rng.normal(0, 6, grad.shape), 0, 255).astype(np.uint8)
        im = Image.fromarray(arr)
        draw = ImageDraw.Draw(im)
        for _ in range(6):
            x0, y0 = rng.integers(0, size - size // 4, 2)
            draw.ellipse((x0, y0, x0 + size // 5, y0 + size // 6), fill=tuple(rng.integers(0, 255, 3).tolist()))
        draw.text((size // 20, size // 20), f"POSTER {i}", font=font, fill=(255, 255, 255))
        im.save(b)
        im.filter(ImageFilter.GaussianBlur(1.2)).save(c)
    return base, cand


def _subset(base: Path, cand: Path, n: int) -> tuple[Path, Path]:
    """A folder pair holding the first n pairs (hard links: no copies; pixgate follows a
    symlink only to a file inside its own folder)."""
    root = CACHE / f"subset{n}-{base.parent.name}"
    for side, src in (("baseline", base), ("candidate", cand)):
        d = root / side
        d.mkdir(parents=True, exist_ok=True)
        for f in sorted(src.iterdir())[:n]:
            link = d / f.name
            if link.is_symlink():
                link.unlink()  # made by an earlier version of this benchmark
            if not link.exists():
                os.link(f, link)
    return root / "baseline", root / "candidate"


def _pixgate(base: Path, cand: Path, weights: Path, out: Path) -> dict[str, object]:
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pixgate", "score", str(base), str(cand), "-o", str(out), "--weights", str(weights),
           "--device", "cpu", "--no-typography", "--quiet"]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    from pixgate.runs import schema
    from pixgate.runs.files import read_run, run_metadata

    stats = json.loads(run_metadata(read_run(out))[schema.META_STATS])
    stats["process_wall_s"] = round(wall, 3)
    return stats


def _naive(base: Path, cand: Path, weights: Path, n: int) -> float:
    """The `lpips` package's one-pair-at-a-time loop; returns pairs/s (model load excluded)."""
    import lpips
    import torch
    from PIL import Image

    from pixgate.scoring.models import reference_lpips

    model = reference_lpips("alex", weights)
    files = sorted(base.iterdir())[:n]
    t0 = time.perf_counter()
    with torch.no_grad():
        for f in files:
            # lpips.load_image reads with OpenCV; Pillow decodes the same RGB array.
            a = lpips.im2tensor(np.asarray(Image.open(f).convert("RGB")))
            b = lpips.im2tensor(np.asarray(Image.open(cand / f.name).convert("RGB")))
            model(a, b)
    return n / (time.perf_counter() - t0)


def _per_pixel(sides: list[int], weights: Path) -> dict[str, object]:
    """Peak RSS of the scoring process for one pair of each side; bytes per added pixel."""
    from PIL import Image, ImageFilter

    peaks = {}
    for side in sides:
        folder = CACHE / f"single{side}"
        base, cand = folder / "baseline", folder / "candidate"
        if not (cand / "p.png").exists():
            base.mkdir(parents=True, exist_ok=True)
            cand.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng(side)
            small = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
            im = Image.fromarray(small).resize((side, side), Image.Resampling.BICUBIC)
            im.save(base / "p.png", compress_level=1)
            im.filter(ImageFilter.GaussianBlur(1.5)).save(cand / "p.png", compress_level=1)
        stats = _pixgate(base, cand, weights, CACHE / f"single{side}.arrow")
        peaks[side] = stats["peak_rss_mb"]["main"]  # type: ignore[index]
    first, last = sides[0], sides[-1]
    per_pixel = (peaks[last] - peaks[first]) * 2**20 / (last**2 - first**2)
    return {
        "sides": sides,
        "peak_rss_mb_main": {str(k): v for k, v in peaks.items()},
        "bytes_per_pixel": round(per_pixel, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, nargs=2, default=[50, 2000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--sides", type=int, nargs="+", default=[512, 3000, 6000])
    args = parser.parse_args()
    if len(set(args.sides)) < 2:
        parser.error("--sides needs two different sides at least: the growth per pixel is taken between them")
    small, large = args.pairs
    weights = _weights()
    base, cand = _dataset(large, args.size)
    runs = {}
    for n in (small, large):
        b, c = _subset(base, cand, n)
        runs[n] = _pixgate(b, c, weights, CACHE / f"run{n}.arrow")
    naive = _naive(base, cand, weights, small)
    per_pixel = _per_pixel(sorted(args.sides), weights)
    import torch

    from pixgate.telemetry import cpu_count, device_name

    rss = {n: r["peak_rss_mb"] for n, r in runs.items()}  # type: ignore[index]
    result = {
        "machine": device_name(torch.device("cpu")),
        "cores": cpu_count(),
        "size": args.size,
        "peak_rss_mb": {str(n): v for n, v in rss.items()},
        "rss_ratio_large_over_small": round(rss[large]["main"] / rss[small]["main"], 3),  # type: ignore[index]
        "process_wall_s": {str(n): r["process_wall_s"] for n, r in runs.items()},
        "decoded_waiting_peak": {str(n): r.get("decoded_waiting_peak") for n, r in runs.items()},
        "decode_wait_share": {str(n): r["decode_wait_share"] for n, r in runs.items()},
        "pixgate_pairs_per_s": {str(n): r["pairs_per_s"] for n, r in runs.items()},
        "naive_lpips_pairs_per_s": round(naive, 3),
        "ratio_to_naive": round(float(runs[large]["pairs_per_s"]) / naive, 3),  # type: ignore[arg-type]
        "runs": {str(n): r for n, r in runs.items()},
        "memory_per_pixel": per_pixel,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "score_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"machine: {result['machine']}")
    print(f"{'pairs':>6} {'process s':>10} {'peak RSS main':>14} {'worker':>8} {'decode wait':>12} {'waiting':>8}")
    for n, r in runs.items():
        p = r["peak_rss_mb"]
        print(f"{n:>6} {r['process_wall_s']:>10.1f} {p['main']:>10.0f} MiB {p['decode_worker']:>4.0f} MiB "  # type: ignore[index]
              f"{100 * r['decode_wait_share']:>10.1f} % {r.get('decoded_waiting_peak', '-'):>8}")  # type: ignore[operator]  # fmt: skip
    print(f"peak RSS {large}/{small} pairs: {result['rss_ratio_large_over_small']:.3f}")
    print(f"naive lpips loop: {naive:.2f} pairs/s; pixgate / naive = {result['ratio_to_naive']:.2f}x")
    peaks = per_pixel["peak_rss_mb_main"]
    print("one pair: " + ", ".join(f"{side}x{side}: {peak:.0f} MiB" for side, peak in peaks.items()))  # type: ignore[attr-defined]
    print(f"scoring process memory per pixel of the pair: {per_pixel['bytes_per_pixel']} bytes")


if __name__ == "__main__":
    main()
