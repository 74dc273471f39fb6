"""Kernel cost next to LPIPS, per 1024x1024 pair, on the same machine in one run.

    python -m benchmarks.kernels [--size 1024] [--repeat 5] [--batch 1]

Times, after a warm-up, on the same poster-like pairs: the numba kernels plus their
reductions (`pixgate.scoring.metrics`) and pixgate's LPIPS (alex) forward pass, on the CPU and,
when there is one, on the GPU. Reports milliseconds per pair and the ratio
kernels / LPIPS. Writes `benchmarks/results/kernels.json`. The weights' values do not
change the cost, so seeded random AlexNet weights stand in when none are installed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.score_memory import RESULTS, _weights


def _pairs(batch: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    rng = np.random.default_rng(0)
    base, cand = [], []
    font = ImageFont.load_default(size=size // 20)
    for i in range(batch):
        y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
        grad = np.stack([x, y, 1 - x * y], -1) * rng.uniform(120, 255, 3)
        im = Image.fromarray(np.clip(grad + rng.normal(0, 6, grad.shape), 0, 255).astype(np.uint8)).convert("RGBA")
        draw = ImageDraw.Draw(im)
        for _ in range(8):
            x0, y0 = rng.integers(0, size - size // 4, 2)
            draw.ellipse((x0, y0, x0 + size // 5, y0 + size // 6), fill=(*rng.integers(0, 255, 3).tolist(), 255))
        draw.text((size // 20, size // 20), f"POSTER {i} small print here", font=font, fill=(255, 255, 255, 255))
        base.append(np.asarray(im))
        cand.append(np.asarray(im.filter(ImageFilter.GaussianBlur(1.0))))
    return np.stack(base), np.stack(cand)


def _time(fn: Callable[[], object], repeat: int, sync: Callable[[], None]) -> float:
    fn()
    sync()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def _measure(device_name: str, base: np.ndarray, cand: np.ndarray, weights: Path, repeat: int) -> dict[str, float]:
    import torch

    from pixgate.scoring.metrics import pixel_terms, reduce_terms
    from pixgate.scoring.models import load_lpips

    device = torch.device(device_name)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    model = load_lpips("alex", weights).to(device)
    tb = torch.from_numpy(base).to(device)
    tc = torch.from_numpy(cand).to(device)
    n = base.shape[0]
    with torch.inference_mode():
        kernels_s = _time(lambda: reduce_terms(pixel_terms(tb, tc), [True] * n), repeat, sync)
        lpips_s = _time(lambda: model.distances(model.inputs(tb, tc)).cpu(), repeat, sync)
    return {
        "kernels_ms_per_pair": round(1000 * kernels_s / n, 3),
        "lpips_ms_per_pair": round(1000 * lpips_s / n, 3),
        "ratio_kernels_to_lpips": round(kernels_s / lpips_s, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    import torch

    from pixgate.telemetry import device_name

    weights = _weights()
    base, cand = _pairs(args.batch, args.size)
    result: dict[str, object] = {"size": args.size, "batch": args.batch, "repeat": args.repeat}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        result[dev] = {"machine": device_name(torch.device(dev)), **_measure(dev, base, cand, weights, args.repeat)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kernels.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.size}x{args.size} pairs, batch {args.batch}, median of {args.repeat}")
    for dev in devices:
        r = result[dev]
        assert isinstance(r, dict)
        print(
            f"{dev:>5} {r['machine']}: kernels {r['kernels_ms_per_pair']:.1f} ms/pair, "
            f"LPIPS {r['lpips_ms_per_pair']:.1f} ms/pair, kernels/LPIPS = {r['ratio_kernels_to_lpips']:.3f}"
        )


if __name__ == "__main__":
    main()
