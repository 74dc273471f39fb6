"""Canary end to end against two local demo engines: a degraded new engine fails the gate."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pixgate.capture.canary import run_canary
from pixgate.capture.capture import CaptureOptions
from pixgate.capture.demo_engine import make_server
from pixgate.cli import app
from tests.capture.test_capture import _prompts, _serving
from tests.conftest import _closed_port

runner = CliRunner()
PROMPTS = [{"id": f"promo/{i:02d}", "prompt": f"promo poster number {i}", "seed": i} for i in range(8)]
POLICY = """
[[rule]]
name = "alpha parity"
column = "alpha_parity"
stat = "each"
op = "=="
pass = true
critical = true

[[rule]]
name = "ICC match"
column = "icc_match"
stat = "each"
op = "=="
pass = true
critical = true

[[rule]]
name = "typography"
column = "text_pass"
stat = "each"
op = "=="
pass = true

[[rule]]
name = "edge preservation p05"
column = "edge_preservation"
stat = "p05"
op = ">="
pass = 0.9

[[rule]]
name = "latency"
column = "latency_ms"
stat = "median_change"
op = "<="
pass = 0.5
allow_nodata = true
"""


def _policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return path


def test_canary_with_a_degraded_new_engine_fails(tmp_path: Path, alex_weights: Path) -> None:
    rolled_back = tmp_path / "rolled-back"
    # The rollback sees the verdict file and the report the canary wrote before it.
    rollback = (
        'test -f "$PIXGATE_VERDICT_JSON" && test -f "$(dirname "$PIXGATE_VERDICT_JSON")/report.html" '
        f'&& echo "$PIXGATE_VERDICT" > {rolled_back}'
    )
    with _serving(make_server(0)) as old, _serving(make_server(0, degrade=frozenset({"alpha", "icc", "mush"}))) as new:
        result = runner.invoke(
            app,
            ["canary", "--old", old, "--new", new, "--prompts", str(_prompts(tmp_path, PROMPTS)),
             "--policy", str(_policy(tmp_path)), "-o", str(tmp_path / "canary"), "--weights", str(alex_weights),
             "--on-fail", rollback],
        )  # fmt: skip
    assert result.exit_code == 1, result.output
    out = tmp_path / "canary"
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["verdict"] == "fail"
    assert rolled_back.read_text().strip() == "fail"
    on_fail = verdict["on_fail"]
    assert {k: on_fail[k] for k in ("command", "exit_code", "timed_out")} == {
        "command": rollback,
        "exit_code": 0,
        "timed_out": False,
    }
    assert 0 <= on_fail["wall_s"] < on_fail["timeout_s"]
    # Bound to the run it judged: `report` and `approve` take it for this run only.
    assert verdict["run_sha256"] == hashlib.sha256((out / "run.arrow").read_bytes()).hexdigest()
    failed = {r["name"] for r in verdict["rules"] if r["result"] == "fail"}
    assert {"alpha parity", "ICC match", "typography"} <= failed  # the small print rasterised to mush
    assert len(verdict["failing_pairs"]) == len(PROMPTS)
    latency = next(r for r in verdict["rules"] if r["name"] == "latency")
    assert latency["n"] == len(PROMPTS)  # judged on the captures, not the run
    for name in ("old/capture.arrow", "new/capture.arrow", "run.arrow", "report.html"):
        assert (out / name).exists(), name
    assert "latency_ms (ECDF)" in (out / "report.html").read_text()


def test_canary_with_the_same_engine_passes(tmp_path: Path, alex_weights: Path) -> None:
    # A steady 40 ms service time, as a real engine has: the bare demo engine answers in a
    # few ms, where scheduling noise on a busy 2-core machine alone can look like +50 %.
    with _serving(make_server(0, latency_ms=40)) as old, _serving(make_server(0, latency_ms=40)) as new:
        opts = CaptureOptions(_prompts(tmp_path, PROMPTS), tmp_path / "canary")
        result = run_canary(opts, old, new, _policy(tmp_path), weights=alex_weights)
    assert result.verdict.verdict == "pass", result.verdict.reason
    assert result.old.all_ok and result.new.all_ok and result.score.all_ok


def test_canary_against_a_slower_engine_fails_on_latency(tmp_path: Path) -> None:
    with _serving(make_server(0)) as old, _serving(make_server(0, latency_ms=150)) as new:
        opts = CaptureOptions(_prompts(tmp_path, PROMPTS), tmp_path / "canary", concurrency=2)
        result = run_canary(opts, old, new, _policy(tmp_path), no_lpips=True)
    latency = next(r for r in result.verdict.rules if r.rule.name == "latency")
    assert latency.result == "fail" and latency.observed is not None and latency.observed > 0.5


def test_missing_language_data_stops_the_canary_before_any_capture(tmp_path: Path) -> None:
    out = tmp_path / "canary"
    result = runner.invoke(
        app,
        ["canary", "--old", "http://127.0.0.1:9/", "--new", "http://127.0.0.1:9/", "--prompts",
         str(_prompts(tmp_path, PROMPTS)), "--policy", str(_policy(tmp_path)), "-o", str(out), "--no-lpips",
         "--ocr-lang", "xx"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "no Tesseract language data for 'xx'" in " ".join(result.output.split())
    assert not (out / "old").exists()


@pytest.mark.timeout(120)
def test_a_canary_on_fail_command_is_stopped_at_its_time_limit(tmp_path: Path) -> None:
    with _serving(make_server(0)) as old, _serving(make_server(0, degrade=frozenset({"alpha"}))) as new:
        opts = CaptureOptions(_prompts(tmp_path, PROMPTS), tmp_path / "canary", concurrency=2)
        stages: list[tuple[float, str]] = []
        result = run_canary(
            opts, old, new, _policy(tmp_path), no_lpips=True, typography=False, on_fail="sleep 1000", on_fail_timeout=1,
            on_stage=lambda text: stages.append((time.monotonic(), text)),
        )  # fmt: skip
    assert result.decision.blocked
    assert any(
        text.startswith("running --on-fail") for _, text in stages
    )  # stopped, not waited out: see the time limit
    on_fail = json.loads(result.files["verdict"].read_text())["on_fail"]
    assert on_fail["timed_out"] is True and on_fail["exit_code"] is None and on_fail["timeout_s"] == 1.0
    assert on_fail["wall_s"] >= 1.0


def test_an_on_fail_timeout_out_of_range_stops_the_canary_before_any_capture(tmp_path: Path) -> None:
    out = tmp_path / "canary"
    result = runner.invoke(
        app,
        ["canary", "--old", "http://127.0.0.1:9/", "--new", "http://127.0.0.1:9/", "--prompts",
         str(_prompts(tmp_path, PROMPTS)), "--policy", str(_policy(tmp_path)), "-o", str(out), "--no-lpips",
         "--on-fail", "true", "--on-fail-timeout", "0"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "--on-fail-timeout: got 0.0; use a number of seconds above 0" in " ".join(result.output.split())
    assert not (out / "old").exists()


@pytest.mark.parametrize("name", ["run.arrow", "verdict.json", "report.html", "old/capture.arrow"])
def test_a_canary_output_that_is_not_a_regular_file_stops_it_before_any_capture(tmp_path: Path, name: str) -> None:
    """Every file the canary writes is checked before either engine is called: the engines
    here are a closed port, so reaching them would be another error."""
    import os
    import stat

    from tests.test_outputs import _one_error_line, _pixgate

    out = tmp_path / "canary"
    target = out / name
    target.parent.mkdir(parents=True)
    target.symlink_to("/dev/null")
    port = _closed_port()
    result = _pixgate(
        "canary", "--old", f"http://127.0.0.1:{port}/", "--new", f"http://127.0.0.1:{port}/",
        "--prompts", _prompts(tmp_path, PROMPTS), "--policy", _policy(tmp_path), "-o", out, "--no-lpips",
        "--no-typography",
    )  # fmt: skip
    _one_error_line(result, str(target))
    assert target.is_symlink() and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    made = {name, *([name.split("/")[0]] if "/" in name else [])}  # the link, and the folder it is in
    assert {p.relative_to(out).as_posix() for p in out.rglob("*")} == made  # nothing captured or written
