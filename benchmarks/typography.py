"""What the typography checks cost: `pixgate score` with them (cold and warm OCR cache)
against the same run without them, as whole processes on the same pairs.

    python -m benchmarks.typography [--pairs 200] [--size 1024] [--rounds 2]

Makes (and caches) promo posters drawn with the fonts the set-up installs: a headline,
body text and small print at 12 to 16 px, 2 to 5 lines each (tests.conftest.promo_poster).
Every text region of every candidate differs from its baseline's, as a new generator's
would, so no reading is saved by identical pixels: a quarter are re-rendered with
lighter antialiasing, a quarter with heavier, a quarter are re-rendered with lighter
antialiasing and have their last line of small print rasterised to mush, a quarter are
softened by a slight blur.

Each round runs three fresh processes, in this order: `--no-typography`; typography with
an empty OCR cache (cold: every baseline read whole); typography with the cache the cold
run filled (warm: only the candidates' regions are read). The ratios are taken within
each round and the medians reported. Writes `benchmarks/results/typography.json` and the
typography section of `benchmarks/RESULTS.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.score_memory import CACHE, RESULTS, ROOT, _weights

_START, _END = "<!-- typography -->", "<!-- /typography -->"


def _make_pair(task: tuple[int, int, Path, Path]) -> None:
    from PIL import Image, ImageFilter

    from tests.conftest import mush, promo_poster

    i, size, base_dir, cand_dir = task
    lines = 2 + i % 4
    base, boxes = promo_poster(i, size, lines=lines)
    kind = i % 4
    if kind == 0:
        cand, _ = promo_poster(i, size, lines=lines, coverage_gamma=0.6)
    elif kind == 1:
        cand, _ = promo_poster(i, size, lines=lines, coverage_gamma=1.6)
    elif kind == 2:
        cand = mush(promo_poster(i, size, lines=lines, coverage_gamma=0.6)[0], boxes[-1])
    else:
        cand = np.asarray(Image.fromarray(base).filter(ImageFilter.GaussianBlur(0.6)))
    Image.fromarray(base).save(base_dir / f"p{i:04d}.png")
    Image.fromarray(cand).save(cand_dir / f"p{i:04d}.png")


def _dataset(pairs: int, size: int) -> tuple[Path, Path]:
    from concurrent.futures import ProcessPoolExecutor

    root = CACHE / f"promo{size}-{pairs}-v2"
    base, cand = root / "baseline", root / "candidate"
    if not (root / "done").exists():
        shutil.rmtree(root, ignore_errors=True)
        base.mkdir(parents=True)
        cand.mkdir(parents=True)
        with ProcessPoolExecutor() as pool:
            list(pool.map(_make_pair, [(i, size, base, cand) for i in range(pairs)]))
        (root / "done").touch()
    return base, cand


def _score(base: Path, cand: Path, weights: Path, out: Path, extra: list[str]) -> dict[str, Any]:
    from pixgate.runs.files import read_run, run_metadata
    from pixgate.runs.schema import META_STATS, TEXT_PASS

    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pixgate", "score", str(base), str(cand), "-o", str(out), "--weights", str(weights),
           "--device", "cpu", "--overwrite", "-q", *extra]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"pixgate score failed ({done.returncode}): {done.stderr[-2000:]}")
    table = read_run(out)
    stats = json.loads(run_metadata(table)[META_STATS])
    passed = table.column(TEXT_PASS.name).to_pylist()
    return {
        "wall_s": round(wall, 3),
        "scorer_cpu_s": stats["scorer_cpu_s"],
        "ocr_wait_s": stats.get("ocr_wait_s"),
        "ocr_cache": stats.get("ocr_cache"),
        "text_pass": passed.count(True),
        "text_fail": passed.count(False),
    }


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor() or "unknown"
    model = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "?")
    flags = next((line for line in out.splitlines() if line.startswith("Flags")), "")
    extras = [f for f in ("avx2", "avx512f", "amx_tile") if f" {f}" in flags]
    return f"{model} ({os.cpu_count()} cores; {', '.join(extras) or 'no AVX2'})"


def typography_section() -> list[str]:
    """The typography benchmark's lines of RESULTS.md (none before it has run)."""
    path = RESULTS / "typography.json"
    if not path.exists():
        return []
    r = json.loads(path.read_text())
    m = r["median"]
    rows = [
        f"| {label} | {m[key]['wall_s']:.1f} | {m[key]['ratio']:.3f} | {m[key]['added']:+.1%} |"
        for label, key in (
            ("without typography", "off"),
            ("typography, cold cache", "cold"),
            ("typography, warm cache", "warm"),
        )
    ]
    return [
        _START,
        "",
        f"Typography checks (`python -m benchmarks.typography`): {r['pairs']} pairs of {r['size']}x{r['size']} "
        f"promo posters, 2 to 5 text lines each; {r['machine']}; {r['rounds']} rounds, medians, ratios taken within "
        "each round; whole `pixgate score` processes:",
        "",
        "| run | wall s | ratio to without | added |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
        f"- goals: a warm cache adds at most 20 %, a cold one at most 60 %; reached: warm {m['warm']['added']:+.1%}, "
        f"cold {m['cold']['added']:+.1%}",
        f"- typography verdicts (cold run): {r['text_pass']} pass, {r['text_fail']} fail (the mushed quarter fails)",
        "",
        _END,
    ]


def _update_results_md() -> None:
    md_path = ROOT / "RESULTS.md"
    text = md_path.read_text() if md_path.exists() else "# Benchmark results\n"
    section = "\n".join(typography_section())
    if _START in text and _END in text:
        text = text[: text.index(_START)] + section + text[text.index(_END) + len(_END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    md_path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    base, cand = _dataset(args.pairs, args.size)
    weights = _weights()
    cache = CACHE / "ocr-cache"
    out = CACHE / "typography.arrow"
    rounds = []
    for n in range(args.rounds):
        shutil.rmtree(cache, ignore_errors=True)
        off = _score(base, cand, weights, out, ["--no-typography"])
        cold = _score(base, cand, weights, out, ["--ocr-cache", str(cache)])
        warm = _score(base, cand, weights, out, ["--ocr-cache", str(cache)])
        rounds.append({"off": off, "cold": cold, "warm": warm})
        print(f"round {n + 1}: off {off['wall_s']} s, cold {cold['wall_s']} s, warm {warm['wall_s']} s", flush=True)
    median: dict[str, dict[str, float]] = {}
    for key in ("off", "cold", "warm"):
        ratio = statistics.median(r[key]["wall_s"] / r["off"]["wall_s"] for r in rounds)
        median[key] = {
            "wall_s": statistics.median(r[key]["wall_s"] for r in rounds),
            "ratio": round(ratio, 4),
            "added": round(ratio - 1.0, 4),
        }
    result = {
        "pairs": args.pairs,
        "size": args.size,
        "rounds": args.rounds,
        "machine": f"CPU: {_cpu()}; device: cpu",
        "median": median,
        "text_pass": rounds[0]["cold"]["text_pass"],
        "text_fail": rounds[0]["cold"]["text_fail"],
        "runs": rounds,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "typography.json").write_text(json.dumps(result, indent=2) + "\n")
    _update_results_md()
    print("\n".join(typography_section()))


if __name__ == "__main__":
    main()
