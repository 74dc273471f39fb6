"""What registration, local structure, alpha content and S-CIELAB cost a whole run.

    python -m benchmarks.checks_cost [--against REF] [--posters 12] [--rounds 3]

Draws `benchmarks.detection`'s promo posters and every candidate (legitimate changes and
defects, 480 x 600), then times `pixgate score` as whole processes, launch to exit, from
this checkout and from `REF` (a git commit checked out into a temporary worktree; by
default the commit before registration was added, so "before" is pixgate without the
added checks), in alternating order, on the same pairs and the same CPU:

- `lean`: LPIPS off and typography off, where the added checks are the largest share of
  the work (decoding and the colour and edge kernels are the rest);
- `default`: LPIPS on (seeded AlexNet weights, or the installed ones) and typography on
  with the posters' manifest (expected text and text boxes), as a gate run is scored.
  Here "after" also reads text line by line (re-reading a line that reads differently),
  so the ratio prices every check the trust work added, typography's included.

Each version runs in the environment this benchmark was started in, as a user's shell
would start it: pixgate sets its own OpenMP wait policy when imported, and "before" must not
inherit the setting of "after". A third process, "before" given that same policy, prices the
checks alone with the scheduling of both versions made equal (reported beside the goal's
ratio). Each round runs every version once per configuration; a ratio is the median over
the rounds of after / before, each taken within its round. Writes
`benchmarks/results/checks_cost.json` and prints it with the CPU's model and flags.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from benchmarks.cpu_ratio import _cpu
from benchmarks.score_memory import RESULTS, ROOT, _weights

#: The environment this benchmark was started in, before anything imported pixgate: every
#: version runs in it, as a user's shell would start it. (pixgate sets OMP_WAIT_POLICY when
#: it is imported; inherited from this process, that setting of "after" would reach
#: "before" too and time an old version that never set it.)
_LAUNCH_ENV: Final = dict(os.environ)
if "pixgate" in sys.modules:  # imported by a module above: its settings are in the copy
    raise SystemExit("benchmarks.checks_cost must be imported before pixgate")
#: The wait policy "after" sets on itself (`pixgate.config.OMP_WAIT_POLICY`), given to
#: "before" as well for the second comparison: what the checks cost with the scheduling
#: of the two versions made equal.
_WAIT_POLICY: Final = ("OMP_WAIT_POLICY", "PASSIVE")

REPO = ROOT.parent
CONFIGS: dict[str, list[str]] = {
    "lean": ["--no-lpips", "--no-typography"],
    "default": [],
}
#: Whole-process time the added checks may cost, after / before: the goal they were
#: built to (at most 15 % more on the same machine).
GOAL: Final = 1.15
#: The module whose first commit brought the checks this benchmark prices.
_MARKER = "engine/scoring/registration.py"


def default_ref() -> str:
    """The parent of the commit that added registration, or HEAD when it is not committed."""
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", _MARKER],
        capture_output=True, text=True, check=True, cwd=REPO,
    ).stdout.split()  # fmt: skip
    return f"{added[-1]}~1" if added else "HEAD"


def _tree(ref: str, root: Path) -> Path:
    """`ref` checked out under `root`, importable as `pixgate` through a folder of links."""
    tree = root / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), ref], check=True, cwd=REPO, capture_output=True)
    shim = root / "shim"
    shim.mkdir()
    (shim / "pixgate").symlink_to(tree / "engine")
    (shim / "pixgate_kernels").symlink_to(tree / "kernels")
    return shim


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, cwd=REPO)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"{cmd[:6]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall


def _command(work: Path, config: str, weights: Path, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "pixgate", "score", str(work / "baseline"), str(work / "candidate"), "-o", str(out)]
    cmd += ["--overwrite", "-q", "--device", "cpu", *CONFIGS[config]]
    if config == "default":
        cmd += ["--weights", str(weights), "--manifest", str(work / "manifest.jsonl")]
    return cmd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default=None, help="git ref of 'before' (default: before registration)")
    parser.add_argument("--posters", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from benchmarks.detection import make_pairs

    ref = args.against or default_ref()
    weights = _weights()
    root = Path(tempfile.mkdtemp(prefix="pixgate-checks-cost-"))
    try:
        shim = _tree(ref, root)
        work = root / "pairs"
        make_pairs(0, args.posters, work, workers=os.cpu_count() or 1)
        pairs = sum(1 for _ in (work / "candidate").rglob("*.*"))
        # The shim comes first on the path, ahead of this checkout's installed package.
        envs = {"before": {**_LAUNCH_ENV, "PYTHONPATH": str(shim)}, "after": dict(_LAUNCH_ENV)}
        if _WAIT_POLICY[0] not in _LAUNCH_ENV:
            envs["before_same_policy"] = {**envs["before"], _WAIT_POLICY[0]: _WAIT_POLICY[1]}
        for version, env in envs.items():
            found = subprocess.run(
                [sys.executable, "-c", "import pixgate; print(pixgate.__file__)"],
                capture_output=True, text=True, check=True, env=env, cwd=REPO,
            ).stdout.strip()  # fmt: skip
            want = REPO if version == "after" else root / "tree"
            if not Path(found).resolve().is_relative_to(want.resolve()):
                raise SystemExit(f"{version}: pixgate imported from {found}, not from {want}")
        out = root / "run.arrow"
        seconds: dict[str, dict[str, list[float]]] = {c: {v: [] for v in envs} for c in CONFIGS}
        for config in CONFIGS:  # untimed: numba's caches and the OCR cache warmed for both
            for env in envs.values():
                _timed(_command(work, config, weights, out), env)
        for r in range(args.rounds):
            for config in CONFIGS:
                order = list(envs) if r % 2 == 0 else list(envs)[::-1]
                for version in order:
                    seconds[config][version].append(_timed(_command(work, config, weights, out), envs[version]))
                line = ", ".join(f"{v} {seconds[config][v][-1]:.1f} s" for v in envs)
                print(f"round {r + 1} {config}: {line}", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(root / "tree")], cwd=REPO, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    ratios = {c: _median_ratio(s["after"], s["before"]) for c, s in seconds.items()}
    same_policy = {
        c: _median_ratio(s["after"], s["before_same_policy"]) for c, s in seconds.items() if "before_same_policy" in s
    }
    result: dict[str, Any] = {
        **_cpu(),
        "before": ref,
        "pairs": pairs,
        "size": "480x600",
        "seconds": {c: {v: [round(x, 2) for x in xs] for v, xs in s.items()} for c, s in seconds.items()},
        "after_over_before": {c: round(v, 3) for c, v in ratios.items()},
        "after_over_before_same_policy": {c: round(v, 3) for c, v in same_policy.items()},
        "goal": GOAL,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "checks_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    _update_results_md(result)
    print(json.dumps(result, indent=2))


def _median_ratio(after: list[float], before: list[float]) -> float:
    """The median over the rounds of after / before, each taken within its round."""
    return statistics.median(a / b for a, b in zip(after, before, strict=True))


_START, _END = "<!-- checks cost -->", "<!-- /checks cost -->"


def _update_results_md(result: dict[str, Any]) -> None:
    """The section of benchmarks/RESULTS.md this benchmark owns, replaced in place (or
    added before the detection section)."""
    path = ROOT / "RESULTS.md"
    lines = [
        _START,
        "## What the trust checks cost (`python -m benchmarks.checks_cost`)",
        "",
        f"`pixgate score` as whole processes on {result['pairs']} pairs of {result['size']} promo posters "
        f"(`benchmarks.detection`'s), this checkout against `{result['before']}` (before registration), "
        f"alternating, median of {len(next(iter(result['seconds'].values()))['before'])} rounds; "
        f"{result['cpu']} ({', '.join(result['flags'])}).",
        "",
        "- before: that commit as a user's shell starts it; after: this checkout, which sets its "
        "own OpenMP wait policy (`OMP_WAIT_POLICY=PASSIVE`, `pixgate.config`) so that torch's and the "
        "kernels' thread pools do not spin while the other works;",
        "- before, same policy: the old commit given that setting too, so that the last column prices "
        "the checks alone, with the scheduling of the two versions made equal.",
        "",
        "| run | before (s) | before, same policy (s) | after (s) | after / before | goal | "
        "after / before, same policy |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for config, ratio in result["after_over_before"].items():
        times = {v: statistics.median(xs) for v, xs in result["seconds"][config].items()}
        same = result["after_over_before_same_policy"].get(config)
        what = "LPIPS off, typography off" if config == "lean" else "LPIPS on, typography on (manifest)"
        lines.append(
            f"| {what} | {times['before']:.1f} | "
            + (f"{times['before_same_policy']:.1f}" if "before_same_policy" in times else "-")
            + f" | {times['after']:.1f} | {ratio:.3f} | <= {result['goal']} | "
            + (f"{same:.3f}" if same is not None else "-")
            + " |"
        )
    lines.append(_END)
    section = "\n".join(lines)
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if _START in text and _END in text:
        text = text[: text.index(_START)] + section + text[text.index(_END) + len(_END) :]
    elif "<!-- detection -->" in text:
        at = text.index("<!-- detection -->")
        text = text[:at] + section + "\n\n" + text[at:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
