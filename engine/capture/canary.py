"""`pixgate canary`: the whole staged check of a generator migration in one command.

1. capture the prompts from the old engine into DIR/old and from the new one into
   DIR/new (one after the other, so they do not compete for the machine);
2. score DIR/new against DIR/old into DIR/run.arrow (pairs by prompt id);
3. judge with the policy: `median_change` rules on columns the captures hold
   (`latency_ms`, `gpu_ms`) compare the new capture against the old one; every other
   rule reads the run. The verdict goes to DIR/verdict.json;
4. write DIR/report.html with both captures' latency and GPU time.

The exit code is the gate's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixgate.capture.capture import CAPTURE_FILE, CaptureOptions, CaptureResult, run_capture
from pixgate.config import GATE_ON_FAIL_TIMEOUT_S, OCR_LANG
from pixgate.judging.decision import Decision, check_on_fail_timeout, decide, judge_run
from pixgate.judging.gate import Verdict
from pixgate.judging.policy import load_policy
from pixgate.runs.files import check_journalled_output
from pixgate.safe_io import check_output
from pixgate.scoring.score import ScoreOptions, ScoreResult, run_score
from pixgate.scoring.text_checks import check_typography

#: The files a canary writes in its folder, beside the two capture folders.
RUN_FILE, VERDICT_FILE, REPORT_FILE = "run.arrow", "verdict.json", "report.html"


@dataclass
class CanaryResult:
    """What a canary produced."""

    verdict: Verdict
    decision: Decision
    old: CaptureResult
    new: CaptureResult
    score: ScoreResult
    files: dict[str, Path]


def run_canary(
    capture: CaptureOptions,
    old: str,
    new: str,
    policy_path: Path,
    *,
    weights: Path | None = None,
    manifest: Path | None = None,
    device: str = "auto",
    no_lpips: bool = False,
    typography: bool = True,
    ocr_lang: str = OCR_LANG,
    ocr_cache: Path | None = None,
    no_ocr_cache: bool = False,
    strict: bool = False,
    on_fail: str | None = None,
    on_fail_timeout: float = GATE_ON_FAIL_TIMEOUT_S,
    on_stage: Any = None,
) -> CanaryResult:
    """Run the staged check (see the module) with `capture`'s settings for both engines;
    when the verdict blocks (a fail, or a marginal one with `strict`), run `on_fail` as
    `gate --on-fail` does (within `on_fail_timeout` seconds), once the report is written.
    The verdict records the run file's sha256, as `pixgate gate --json` does.

    Raises:
        pixgate.judging.decision.OnFailError: `on_fail_timeout` out of range.
        pixgate.judging.policy.PolicyError, pixgate.capture.capture.CaptureConfigError,
        pixgate.scoring.score.ScoreConfigError: usage problems, found before anything is sent
            where possible (the policy is read first).
    """
    from pixgate.report.html import build_report

    check_on_fail_timeout(on_fail_timeout)
    policy = load_policy(policy_path)
    out = capture.out
    run_path = out / RUN_FILE
    resume = capture.resume and run_path.exists()
    score_opts = ScoreOptions(
        out / "old",
        out / "new",
        run_path,
        device=device,
        weights=weights,
        manifest=manifest,
        no_lpips=no_lpips,
        typography=typography,
        ocr_lang=ocr_lang,
        ocr_cache=ocr_cache,
        no_ocr_cache=no_ocr_cache,
        resume=resume,
        overwrite=not resume,  # the canary's folder is its own: a rerun replaces its run
    )
    check_typography(score_opts)  # before any generator is called, not after
    # Every file the canary writes, before either engine is called: a device or FIFO at
    # one found after the captures would waste them.
    inputs = [p for p in (policy_path, weights, manifest) if p is not None]
    check_journalled_output(run_path, inputs)
    for name in (VERDICT_FILE, REPORT_FILE):
        check_output(out / name, inputs)
    for side in ("old", "new"):
        check_journalled_output(out / side / CAPTURE_FILE, inputs)
    stage = on_stage or (lambda _text: None)
    stage(f"capturing the old engine ({old})")
    old_capture = run_capture(dataclasses.replace(capture, endpoint=old, command=None, out=out / "old"))
    stage(f"capturing the new engine ({new})")
    new_capture = run_capture(dataclasses.replace(capture, endpoint=new, command=None, out=out / "new"))
    stage("scoring new against old")
    scored = run_score(score_opts)
    stage("judging")
    verdict = judge_run(run_path, policy, comparisons=(new_capture.table, old_capture.table))
    verdict_path = out / VERDICT_FILE
    captures = {"old": str(out / "old" / "capture.arrow"), "new": str(out / "new" / "capture.arrow")}
    decision = decide(verdict, strict=strict, json_path=verdict_path, extra={"captures": captures})
    stage("writing the report")
    report_path = out / REPORT_FILE
    build_report(
        run_path,
        report_path,
        verdict=verdict_path,
        captures=[out / "old" / "capture.arrow", out / "new" / "capture.arrow"],
        weights=weights,
        files_under=out,
    )
    if decision.blocked and on_fail:
        # After the report, so that a rollback can attach it; the verdict file then
        # records what the command did.
        decision = decide(
            verdict, strict=strict, json_path=verdict_path, on_fail=on_fail, on_fail_timeout=on_fail_timeout,
            extra={"captures": captures}, say=stage,
        )  # fmt: skip
    files = {"run": run_path, "verdict": verdict_path, "report": report_path}
    return CanaryResult(verdict, decision, old_capture, new_capture, scored, files)


__all__ = ["CanaryResult", "run_canary"]
