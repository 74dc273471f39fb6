"""Replay: a deterministic command replays byte-identical; a noisy one is flagged."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from pixgate.capture.capture import CaptureOptions
from pixgate.capture.replay import run_replay
from pixgate.runs import schema
from pixgate.safe_io import OutputError
from tests.capture.test_capture import _prompts

GENERATE = f"{sys.executable} -m engine demo-engine generate --prompt {{prompt}} --seed {{seed}} -o {{out}}"


def test_deterministic_command_replays(tmp_path: Path, alex_weights: Path) -> None:
    result = run_replay(CaptureOptions(_prompts(tmp_path), tmp_path / "r", command=GENERATE), 3, weights=alex_weights)
    rows = result.table.to_pylist()
    assert result.replayable and len(rows) == 3
    assert all(r[schema.MAX_PIXEL_DIFF.name] == 0 and r[schema.REPLAY_LPIPS.name] == 0.0 for r in rows)
    assert all(r[schema.RUNS.name] == 3 for r in rows)
    assert (tmp_path / "r" / "replay.arrow").exists() and (tmp_path / "r" / "run3" / "sale.png").exists()


def test_noisy_command_is_flagged(tmp_path: Path, alex_weights: Path) -> None:
    noisy = GENERATE + " --degrade noise"
    result = run_replay(CaptureOptions(_prompts(tmp_path), tmp_path / "r", command=noisy), 2, weights=alex_weights)
    assert not result.replayable
    for row in result.table.to_pylist():
        assert row[schema.BYTE_IDENTICAL.name] is False
        assert 0 < row[schema.MAX_PIXEL_DIFF.name] <= 12  # two runs, each within 6 levels of the clean image
        assert row[schema.REPLAY_LPIPS.name] > 0.0


def test_replay_without_weights_says_why_lpips_is_null(tmp_path: Path) -> None:
    result = run_replay(CaptureOptions(_prompts(tmp_path), tmp_path / "r", command=GENERATE), 2)
    assert result.note is not None and "no alex backbone weights" in result.note
    assert result.table.column(schema.REPLAY_LPIPS.name).null_count == 3
    assert result.replayable


def test_gate_can_require_replayability(tmp_path: Path) -> None:
    from pixgate.judging.gate import judge
    from pixgate.judging.policy import parse_policy
    from pixgate.runs.files import read_run

    noisy = GENERATE + " --degrade noise"
    run_replay(CaptureOptions(_prompts(tmp_path), tmp_path / "r", command=noisy), 2)
    policy = parse_policy(
        '[[rule]]\nname = "replays"\ncolumn = "byte_identical"\nstat = "each"\nop = "=="\npass = true\n'
        "critical = true\n",
        tmp_path / "p.toml",
    )
    verdict = judge(policy, read_run(tmp_path / "r" / "replay.arrow"))
    assert verdict.verdict == "fail"
    assert {p["pair_id"] for p in verdict.failing_pairs} == {"sale", "boots/winter", "coffee"}
    json.dumps(verdict.to_dict())


@pytest.mark.parametrize("where", ["replay.arrow", "run2/capture.arrow"])
def test_an_output_that_is_not_a_regular_file_is_refused_before_the_first_capture(where: str, tmp_path: Path) -> None:
    """Found only when replay.arrow is written, a FIFO there would waste every capture."""
    out = tmp_path / "r"
    (out / where).parent.mkdir(parents=True)
    os.mkfifo(out / where)
    with pytest.raises(OutputError, match="a FIFO"):
        run_replay(CaptureOptions(_prompts(tmp_path), out, command=GENERATE), 2)
    assert not (out / "run1").exists()
    assert stat.S_ISFIFO(os.lstat(out / where).st_mode)


def test_replay_lists_a_capped_number_of_prompts_and_counts_the_rest(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pixgate.cli import app
    from pixgate.config import CAPTURE_MAX_LISTED_ERRORS

    count = CAPTURE_MAX_LISTED_ERRORS + 7
    prompts = _prompts(tmp_path, [{"id": f"p{i:03d}", "prompt": "x", "seed": i} for i in range(count)])
    args = ["replay", "--prompts", str(prompts), "-o", str(tmp_path / "r"), "--command", "false {out}",
            "--runs", "2", "--max-attempts", "1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    listed = [line for line in result.output.splitlines() if line.startswith("  p")]
    assert len(listed) == CAPTURE_MAX_LISTED_ERRORS, result.output
    assert f"... and 7 more, see {tmp_path / 'r' / 'replay.arrow'}" in result.output
