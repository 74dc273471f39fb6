"""End-to-end throughput, side by side with the references, on the same images and weights.

    python -m benchmarks.throughput [--pairs 200] [--size 512] [--format png|jpeg] [--device auto]
                                    [--repeat 3]

Makes (and caches) a synthetic batch of poster-like pairs (gradients, shapes, text,
noise), then measures in one invocation:

- `pixgate score` as a user runs it (a fresh process, start-up included), with
  `--no-typography`: the OCR checks' own cost is measured by `benchmarks.typography`;
- the naive loop of the `lpips` package's own scripts: one pair at a time, load both
  files, score (model construction timed apart);
- torchmetrics' batched LPIPS (`_NoTrainLpips`, the module its metric wraps), decoding
  with Pillow, in batches;
- pixgate's LPIPS forward passes alone on pre-decoded pairs (float32 and bfloat16), the
  yardstick for what decoding, the kernels and the pipeline add;
- a decode-only pass with pixgate's decode workers, one per core: the decoding ceiling;
- each image decoder on one core (`benchmarks.decoders`).

pixgate runs three times per round: float32, bfloat16, and float32 with
`PIXGATE_DECODER=pillow`. Every pipeline runs once per round (`--repeat` rounds); the
table gives median rates with their range, and ratios taken within each round, so that a
drift in a shared machine's speed does not favour whichever pipeline ran first.

Prints a table and writes `benchmarks/results/throughput.json` and
`benchmarks/RESULTS.md`: pairs/s, projected seconds per 2,000 pairs, ratio to the naive
loop, share of the decode ceiling reached, peak RSS, and (on a GPU with NVML) peak GPU
memory and energy per pair. Seeded random AlexNet weights stand in when none are
installed: the weights' values do not change the cost.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.detection import detection_section
from benchmarks.figures import emit, gpu_section, record_to, splice_gpu_section
from benchmarks.score_memory import CACHE, RESULTS, ROOT, _weights
from benchmarks.typography import typography_section

PROJECTED_PAIRS = 2000


def _make_pair(task: tuple[int, int, str, Path, Path]) -> None:
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    i, size, fmt, base, cand = task
    ext = ".png" if fmt == "png" else ".jpg"
    rng = np.random.default_rng(i)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    grad = np.stack([x, y, 1 - x * y], -1) * rng.uniform(120, 255, 3)
    im = Image.fromarray(np.clip(grad + rng.normal(0, 6, grad.shape), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(6):
        x0, y0 = (int(v) for v in rng.integers(0, size * 3 // 4, 2))
        draw.ellipse((x0, y0, x0 + size // 5, y0 + size // 6), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw.text((size // 20, size // 20), f"SALE {i}", font=ImageFont.load_default(size=max(10, size // 24)),
              fill=(255, 255, 255))  # fmt: skip
    draw.text((size // 20, size - size // 10), "Terms apply. See store for details.",
              font=ImageFont.load_default(size=max(8, size // 48)), fill=(0, 0, 0))  # fmt: skip
    kwargs = {"quality": 90} if fmt == "jpeg" else {}
    im.save(base / f"p{i:05d}{ext}", **kwargs)
    im.filter(ImageFilter.GaussianBlur(0.8)).save(cand / f"p{i:05d}{ext}", **kwargs)


def _dataset(pairs: int, size: int, fmt: str, unique: int = 0) -> tuple[Path, Path]:
    """The batch, made once and cached. With `unique`, only that many distinct pairs are
    drawn and the rest are hard links to them under their own names: each file is still
    read and decoded in full, and a 2,000-pair batch of 1024x1024 takes minutes less to make."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    from pixgate.telemetry import cpu_count

    distinct = min(unique, pairs) if unique > 0 else pairs
    root = CACHE / (f"throughput-{size}-{fmt}-{pairs}" + ("" if distinct == pairs else f"-of-{distinct}"))
    base, cand = root / "baseline", root / "candidate"
    ext = ".png" if fmt == "png" else ".jpg"
    if base.is_dir() and len(list(cand.glob(f"*{ext}"))) == pairs:
        return base, cand
    base.mkdir(parents=True, exist_ok=True)
    cand.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=cpu_count()) as pool:
        list(pool.map(_make_pair, [(i, size, fmt, base, cand) for i in range(distinct)], chunksize=4))
    for i in range(distinct, pairs):
        for folder in (base, cand):
            target = folder / f"p{i:05d}{ext}"
            target.unlink(missing_ok=True)
            os.link(folder / f"p{i % distinct:05d}{ext}", target)
    return base, cand


def _pixgate(
    base: Path, cand: Path, weights: Path, device: str, out: Path, precision: str, decoder: str = "auto"
) -> dict[str, Any]:
    """`pixgate score` as a user runs it: a fresh process, timed from outside."""
    import os

    from pixgate.config import DECODER_ENV
    from pixgate.runs.files import read_run, run_metadata
    from pixgate.runs.schema import LPIPS, META_NVML, META_STATS

    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pixgate", "score", str(base), str(cand), "-o", str(out), "--weights", str(weights),
           "--device", device, "--precision", precision, "--no-typography", "-q"]  # fmt: skip
    env = {**os.environ, DECODER_ENV: decoder}
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"pixgate score failed ({done.returncode}): {done.stderr[-2000:]}")
    table = read_run(out)
    meta = run_metadata(table)
    stats = json.loads(meta[META_STATS])
    nvml = json.loads(meta.get(META_NVML, "{}"))
    return {
        "wall_s": wall,
        "run_wall_s": stats["wall_s"],
        "process_s": stats.get("process_s"),
        "startup_s": stats["startup_s"],
        "startup_phases_s": stats.get("startup_phases_s"),
        "steady_pairs_per_s": stats["steady_pairs_per_s"],
        "lpips": table.column(LPIPS.name).to_pylist(),
        "table": table,
        "peak_rss_mb": stats["peak_rss_mb"]["main"],
        "warmup_ms": stats.get("warmup_ms"),
        "energy_per_pair_j": stats.get("energy_per_pair_j"),
        "gpu_s_per_1000_pairs": stats.get("gpu_s_per_1000_pairs"),
        "gpu_memory_peak_mb": nvml.get("memory_used_peak_mb"),
        "gpu_utilisation_mean_pct": nvml.get("utilisation_mean_pct"),
        "nvml_notes": nvml.get("notes"),
        "decode_wait_share": stats["decode_wait_share"],
        "scorer_cpu_s": stats["scorer_cpu_s"],
        "workers": stats.get("workers"),
        "batch_size": stats.get("batch_size"),
    }


def _emit_pixgate(label: str, pairs: int, run: dict[str, Any]) -> None:
    emit(f"{label}: whole process", run["wall_s"], "s", pairs=pairs)
    emit(f"{label}: pairs/s, whole process", pairs / run["wall_s"], "pairs/s")
    emit(f"{label}: start-up until the first batch", run["startup_s"], "s", phases=run["startup_phases_s"])
    emit(f"{label}: pairs/s after start-up", run["steady_pairs_per_s"], "pairs/s")
    for key, unit in (("gpu_s_per_1000_pairs", "s"), ("energy_per_pair_j", "J"), ("gpu_memory_peak_mb", "MiB"),
                      ("gpu_utilisation_mean_pct", "%"), ("scorer_cpu_s", "s"), ("decode_wait_share", ""),
                      ("peak_rss_mb", "MiB"), ("warmup_ms", "ms")):  # fmt: skip
        if run.get(key) is not None:
            emit(f"{label}: {key}", run[key], unit)


def _parity(
    base: Path, cand: Path, weights: Path, pairs: int, devices: tuple[str, str] = ("cpu", "cuda")
) -> dict[str, Any]:
    """The same pairs scored by `pixgate score` on the CPU and on CUDA: the largest
    absolute difference of LPIPS and of every kernel column."""
    import numpy as np

    from pixgate.runs import schema

    root = CACHE / f"parity-{pairs}"
    sides = []
    for side in (base, cand):
        folder = root / side.name
        folder.mkdir(parents=True, exist_ok=True)
        for path in sorted(side.iterdir())[:pairs]:
            (folder / path.name).unlink(missing_ok=True)
            (folder / path.name).hardlink_to(path)
        sides.append(folder)
    first, second = (
        _pixgate(*sides, weights, d, root / f"{i}.arrow", "float32")["table"] for i, d in enumerate(devices)
    )
    columns = (schema.LPIPS, schema.DELTA_E_MEAN, schema.DELTA_E_P95, schema.CHROMA_SHIFT, schema.LIGHTNESS_SHIFT,
               schema.EDGE_PRESERVATION, schema.ALPHA_MAE, schema.ALPHA_IOU)  # fmt: skip
    diffs = {}
    for col in columns:
        a = np.array(first.column(col.name).to_pylist(), dtype=float)
        b = np.array(second.column(col.name).to_pylist(), dtype=float)
        both = ~(np.isnan(a) & np.isnan(b))
        diffs[col.name] = float(np.max(np.abs(a[both] - b[both]), initial=0.0))
        emit(f"parity CUDA vs CPU: {col.name} max abs diff", diffs[col.name], pairs=pairs)
    return {"pairs": pairs, "max_abs_diff": diffs}


def _naive(base: Path, cand: Path, weights: Path, device: str, limit: int) -> dict[str, Any]:
    import lpips
    import torch
    from PIL import Image

    from pixgate.scoring.models import reference_lpips

    started = time.perf_counter()
    model = reference_lpips("alex", weights).to(device)
    build = time.perf_counter() - started
    files = sorted(base.iterdir())[:limit]
    started = time.perf_counter()
    with torch.no_grad():
        for path in files:
            a = lpips.im2tensor(np.asarray(Image.open(path).convert("RGB"))).to(device)
            b = lpips.im2tensor(np.asarray(Image.open(cand / path.name).convert("RGB"))).to(device)
            model(a, b).item()
    return {"wall_s": time.perf_counter() - started, "pairs": len(files), "build_s": build}


def _torchmetrics(base: Path, cand: Path, weights: Path, device: str, limit: int, batch: int) -> dict[str, Any]:
    import torch
    from PIL import Image
    from torchmetrics.functional.image.lpips import _NoTrainLpips

    state = torch.load(weights, map_location="cpu", weights_only=True)
    model = _NoTrainLpips(net="alex", pnet_rand=True)
    for block in model.net.children():
        for index, layer in block.named_children():
            prefix = f"features.{index}."
            layer.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    model = model.eval().to(device)
    files = sorted(base.iterdir())[:limit]
    started = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(files), batch):
            chunk = files[i : i + batch]
            a = torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB"))) for p in chunk])
            b = torch.stack([torch.from_numpy(np.array(Image.open(cand / p.name).convert("RGB"))) for p in chunk])
            a = a.permute(0, 3, 1, 2).float().div(255).to(device)
            b = b.permute(0, 3, 1, 2).float().div(255).to(device)
            model(a, b, normalize=True).flatten().cpu()
    return {"wall_s": time.perf_counter() - started, "pairs": len(files)}


def _lpips_alone(
    base: Path, cand: Path, weights: Path, device: str, limit: int, batch: int, precision: str
) -> dict[str, Any]:
    """pixgate's LPIPS forward passes alone: the same model, batch size and precision, on
    network inputs built beforehand (decoded, then `inputs`), so decoding, input
    conversion, the kernels and the pipeline are all left out. The yardstick for what
    they add."""
    import torch

    from pixgate.scoring.decode import decode_pair
    from pixgate.scoring.models import load_lpips

    files = sorted(base.iterdir())[:limit]
    dev = torch.device(device)
    model = load_lpips("alex", weights).to(dev)
    batches = []
    with torch.inference_mode():
        for i in range(0, len(files), batch):
            pairs = [decode_pair(p.stem, p, cand / p.name) for p in files[i : i + batch]]
            tb = torch.from_numpy(np.stack([dp.baseline.rgba for dp in pairs if dp.baseline is not None])).to(dev)
            tc = torch.from_numpy(np.stack([dp.candidate_aligned for dp in pairs if dp.candidate_aligned is not None]))
            batches.append(model.inputs(tb, tc.to(dev)))
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            model.distances(batches[0]).cpu()  # warm-up, as pixgate's own
            started = time.perf_counter()
            for inputs in batches:
                model.distances(inputs).float().cpu()
            wall = time.perf_counter() - started
    return {"wall_s": wall, "pairs": len(files)}


def _decode_only(base: Path, cand: Path) -> dict[str, Any]:
    from pixgate.scoring.pairing import pair_directories
    from pixgate.scoring.workers import DecodePool
    from pixgate.telemetry import cpu_count

    pairs = [p for p in pair_directories(base, cand).pairs if p.scorable]
    started = time.perf_counter()
    pool = DecodePool(pairs, cpu_count(), 100_000_000)
    done = 0
    try:
        pool.refill()
        while pool.busy:
            done += len(pool.collect(block=True))
    finally:
        pool.close()
    return {"wall_s": time.perf_counter() - started, "pairs": done, "workers": cpu_count()}


PIPELINES = ("pixgate", "bfloat16", "pillow", "naive", "torchmetrics", "alone", "ceiling", "decoders", "parity")
_DEFAULT_PIPELINES = "pixgate,bfloat16,pillow,naive,torchmetrics,alone,ceiling,decoders"
_OURS = "pixgate score (end to end, start-up included)"
_OURS_STEADY = "pixgate score (after start-up)"
_FAST = "pixgate score --precision bfloat16 (end to end)"
_FAST_STEADY = "pixgate score --precision bfloat16 (after start-up)"
_NAIVE, _CEILING = "lpips package naive loop", "decode only (ceiling)"
_ALONE, _ALONE_BF16 = "pixgate LPIPS forward alone, float32", "pixgate LPIPS forward alone, bfloat16"


def _round(args: argparse.Namespace, base: Path, cand: Path, weights: Path, device: str, n_ref: int, batch: int,
           ours_batch: int, kept: dict[str, Any]) -> dict[str, float]:  # fmt: skip
    """Every wanted pipeline once, in the order `--pipelines` names them (so a run cut
    short has the first ones); each figure is emitted as soon as it is measured."""
    rates: dict[str, float] = {}

    def rate(name: str, value: float) -> None:
        rates[name] = emit(name, value, "pairs/s")

    for pipeline in args.pipelines.split(","):
        if pipeline == "pixgate":
            kept["ours"] = ours = _pixgate(base, cand, weights, device, CACHE / "throughput.arrow", "float32")
            _emit_pixgate("pixgate score", args.pairs, ours)
            rate(_OURS, args.pairs / ours["wall_s"])
            rate(_OURS_STEADY, ours["steady_pairs_per_s"])
        elif pipeline == "bfloat16":
            kept["fast"] = fast = _pixgate(base, cand, weights, device, CACHE / "throughput-bf16.arrow", "bfloat16")
            _emit_pixgate("pixgate score --precision bfloat16", args.pairs, fast)
            rate(_FAST, args.pairs / fast["wall_s"])
            rate(_FAST_STEADY, fast["steady_pairs_per_s"])
        elif pipeline == "pillow":
            pillow = _pixgate(base, cand, weights, device, CACHE / "throughput-pillow.arrow", "float32", "pillow")
            kept["pillow"] = pillow
            rate("pixgate score, Pillow decoding only (after start-up)", pillow["steady_pairs_per_s"])
        elif pipeline == "naive":
            naive = _naive(base, cand, weights, device, n_ref)
            kept["naive_build_s"] = naive["build_s"]
            rate(_NAIVE, naive["pairs"] / naive["wall_s"])
        elif pipeline == "torchmetrics":
            tm = _torchmetrics(base, cand, weights, device, n_ref, batch)
            rate(f"torchmetrics LPIPS, batch {batch}", tm["pairs"] / tm["wall_s"])
        elif pipeline == "alone":
            alone = _lpips_alone(base, cand, weights, device, n_ref, ours_batch, "float32")
            rate(_ALONE, alone["pairs"] / alone["wall_s"])
            alone_bf16 = _lpips_alone(base, cand, weights, device, n_ref, ours_batch, "bfloat16")
            rate(_ALONE_BF16, alone_bf16["pairs"] / alone_bf16["wall_s"])
        elif pipeline == "ceiling":
            ceiling = _decode_only(base, cand)
            kept["decode_workers"] = ceiling["workers"]
            rate(_CEILING, ceiling["pairs"] / ceiling["wall_s"])
        elif pipeline == "parity" and device == "cuda" and "parity" not in kept:
            kept["parity"] = _parity(base, cand, weights, min(args.parity_pairs, args.pairs))
    return rates


def main() -> None:
    import torch

    from pixgate.telemetry import cpu_count, device_name, select_device

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--format", choices=("png", "jpeg"), default="png")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--reference-pairs", type=int, default=100, help="pairs timed for the two references")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every pipeline; medians are reported")
    parser.add_argument(
        "--unique",
        type=int,
        default=0,
        help="distinct pairs to draw; the rest are hard links to them (0: every pair distinct)",
    )
    parser.add_argument("--prepare-only", action="store_true", help="make the batch and stop")
    parser.add_argument("--pipelines", default=_DEFAULT_PIPELINES, help=f"a comma-separated subset of {PIPELINES}")
    parser.add_argument("--parity-pairs", type=int, default=32, help="pairs scored on both CPU and CUDA (parity)")
    parser.add_argument("--figures", type=Path, help="append every figure here, one JSON line each, as measured")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the JSON results")
    args = parser.parse_args()  # fmt: skip
    wanted = set(args.pipelines.split(","))
    if wanted - set(PIPELINES):
        parser.error(f"--pipelines must name some of {', '.join(PIPELINES)}; got {args.pipelines!r}")
    record_to(args.figures)
    base, cand = _dataset(args.pairs, args.size, args.format, args.unique)
    if args.prepare_only:
        print(f"batch ready: {base.parent}")
        return
    from benchmarks.decoders import measure as measure_decoders
    from pixgate.config import DEFAULT_BATCH_SIZE_CPU, DEFAULT_BATCH_SIZE_CUDA

    device = select_device(args.device)
    weights = _weights()
    n_ref = min(args.reference_pairs, args.pairs)
    batch = 32 if device.type == "cuda" else 4
    ours_batch = DEFAULT_BATCH_SIZE_CUDA if device.type == "cuda" else DEFAULT_BATCH_SIZE_CPU
    kept: dict[str, Any] = {}
    rounds: list[dict[str, float]] = []
    for _ in range(args.repeat):
        # Every pipeline once per round, so a drift of the machine's speed (shared CPUs)
        # touches each; ratios are taken within a round, then the median over rounds.
        rounds.append(_round(args, base, cand, weights, device.type, n_ref, batch, ours_batch, kept))
    result: dict[str, Any] = {
        "machine": device_name(device) if device.type == "cuda" else device_name(torch.device("cpu")),
        "device": str(device),
        "cores": cpu_count(),
        "pairs": args.pairs,
        "unique": args.unique or args.pairs,
        "size": args.size,
        "format": args.format,
        "reference_pairs": n_ref,
        "rounds": args.repeat,
        "table": _table(rounds),
        "decode_workers": kept.get("decode_workers"),
    }
    if "parity" in kept:
        result["parity"] = kept["parity"]
    ours, fast = kept.get("ours"), kept.get("fast")
    if ours is not None and fast is not None:
        result["bfloat16_max_abs_lpips_diff"] = emit(
            "bfloat16 vs float32: LPIPS max abs diff",
            max(abs(a - b) for a, b in zip(ours["lpips"], fast["lpips"], strict=True)),
        )
    for key, run in (("pixgate", ours), ("pixgate_bfloat16", fast), ("pixgate_pillow_decoding", kept.get("pillow"))):
        if run is not None:
            result[key] = {k: v for k, v in run.items() if k not in ("lpips", "table")}
    if "naive_build_s" in kept:
        result["naive_model_build_s"] = round(kept["naive_build_s"], 2)
    if {_ALONE, _OURS_STEADY, _ALONE_BF16, _FAST_STEADY} <= set(rounds[0]):
        # What decoding, the kernels and the pipeline add over the forward passes alone.
        result["overhead_over_lpips_alone"] = {
            "float32": round(statistics.median(r[_ALONE] / r[_OURS_STEADY] for r in rounds) - 1.0, 3),
            "bfloat16": round(statistics.median(r[_ALONE_BF16] / r[_FAST_STEADY] for r in rounds) - 1.0, 3),
        }
    if "decoders" in wanted:
        result["decoders"] = measure_decoders(sorted(base.iterdir()))
    args.results.mkdir(parents=True, exist_ok=True)
    if device.type == "cuda":
        (args.results / "throughput-cuda.json").write_text(json.dumps(result, indent=2) + "\n")
        section = gpu_section(result)
        (args.results / "gpu-section.md").write_text("\n".join(section) + "\n")
        print("\n".join(section))
        return
    (args.results / "throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    md = _markdown(result, args)
    (ROOT / "RESULTS.md").write_text(md)
    print(md)


def _table(rounds: list[dict[str, float]]) -> dict[str, Any]:
    """Median rates over rounds, with ratios to the naive loop and shares of the decode
    ceiling taken within each round."""
    table = {}
    for name in rounds[0]:
        rate = statistics.median(r[name] for r in rounds)
        table[name] = {
            "pairs_per_s": round(rate, 2),
            "range": [round(min(r[name] for r in rounds), 2), round(max(r[name] for r in rounds), 2)],
            "s_per_2000_pairs": round(PROJECTED_PAIRS / rate, 1),
            "ratio_to_naive": round(statistics.median(r[name] / r[_NAIVE] for r in rounds), 3)
            if _NAIVE in rounds[0]
            else None,
            "share_of_decode_ceiling": round(statistics.median(r[name] / r[_CEILING] for r in rounds), 3)
            if _CEILING in rounds[0]
            else None,
        }
    return table


def _markdown(result: dict[str, Any], args: argparse.Namespace) -> str:
    """RESULTS.md from a CPU run, keeping the GPU section of the last GPU run."""
    ours, fast = result.get("pixgate", {}), result.get("pixgate_bfloat16", {})
    overhead = result.get("overhead_over_lpips_alone", {})
    decoders = result.get("decoders", {})
    lines = [
        f"| {name} | {r['pairs_per_s']} | {r['range'][0]}-{r['range'][1]} | {r['s_per_2000_pairs']} | "
        f"{r['ratio_to_naive']} | {r['share_of_decode_ceiling']} |"
        for name, r in result["table"].items()
    ]
    md = "\n".join(
        [
            "# Benchmark results",
            "",
            "Latest `python -m benchmarks.throughput` run (regenerated by it; other benchmarks write",
            "`benchmarks/results/*.json`).",
            "",
            f"- machine: {result['machine']}; device: {result['device']}",
            f"- {args.pairs} pairs of {args.size}x{args.size} {args.format.upper()}; the references timed on "
            f"{result['reference_pairs']} of them; decode ceiling with {result['decode_workers']} workers; "
            f"{args.repeat} rounds of every pipeline, medians (ratios taken within each round)",
            f"- pixgate peak RSS {ours.get('peak_rss_mb')} MiB, start-up {ours.get('startup_s')} s, warm-up "
            f"{ours.get('warmup_ms')} ms",
            f"- the scoring process (decode workers apart) used {ours.get('scorer_cpu_s')} s of CPU in "
            f"{ours.get('run_wall_s')} s (float32) and {fast.get('scorer_cpu_s')} s in {fast.get('run_wall_s')} s "
            "(bfloat16)",
            f"- decoding, kernels and pipeline add {overhead.get('float32', 0):.0%} (float32) and "
            f"{overhead.get('bfloat16', 0):.0%} (bfloat16) over pixgate's LPIPS forward passes alone (after start-up)",
            f"- bfloat16 against float32: largest LPIPS difference {result.get('bfloat16_max_abs_lpips_diff', 0):.2e} "
            f"over {args.pairs} pairs",
            "",
            "| pipeline | pairs/s (median) | range | s per 2,000 pairs | ratio to naive | share of decode ceiling |",
            "| --- | --- | --- | --- | --- | --- |",
            *lines,
            "",
            f"Decoders, ms per {args.size}x{args.size} image on one core ({decoders.get('images')} images; JPEG is "
            "the same pictures at quality 90; `python -m benchmarks.decoders`):",
            "",
            "| format | decoder | ms per image | speed vs Pillow |",
            "| --- | --- | --- | --- |",
            *[
                f"| {kind.upper()} | {name} | {row['ms_per_image']} | {row['speed_vs_pillow']} |"
                for kind in ("png", "jpeg")
                for name, row in decoders.get(kind, {}).items()
            ],
            "",
            *typography_section(),
            "",
            *detection_section(),
        ]
    )
    return splice_gpu_section(md, gpu_section())


if __name__ == "__main__":
    main()
