"""Numeric options: out of range, infinite or not a number is exit 2 naming the option,
the value and the range, never an OverflowError from deep inside a run."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pixgate.cli import app
from pixgate.config import CAPTURE_MAX_BYTES_CEILING, MAX_PIXELS_CEILING
from tests.conftest import GOLDEN

runner = CliRunner()
HUGE = str(10**30)


def _capture_args(tmp_path: Path) -> list[str]:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "a", "prompt": "x"}\n')
    return ["capture", "--endpoint", "http://127.0.0.1:9/", "--prompts", str(prompts), "-o", str(tmp_path / "cap")]


CASES = [
    ("score", ["--max-pixels", HUGE], "--max-pixels", f"from 1 to {MAX_PIXELS_CEILING}"),
    ("score", ["--max-pixels", str(MAX_PIXELS_CEILING + 1)], "--max-pixels", "use a whole number"),
    ("score", ["--progress-interval", "inf"], "--progress-interval", "got inf"),
    ("score", ["--progress-interval", "nan"], "--progress-interval", "got nan"),
    ("score", ["--progress-interval", "1e400"], "--progress-interval", "got inf"),
    ("score", ["--batch-size", HUGE], "--batch-size", "from 1 to 4096"),
    ("capture", ["--timeout", "inf"], "--timeout", "got inf"),
    ("capture", ["--timeout", "nan"], "--timeout", "got nan"),
    ("capture", ["--deadline", "1e300"], "--deadline", "above 0 to"),
    ("capture", ["--backoff", "-1"], "--backoff", "above 0"),
    ("capture", ["--max-bytes", HUGE], "--max-bytes", f"from 1 to {CAPTURE_MAX_BYTES_CEILING}"),
    ("demo", ["--latency-ms", "inf"], "--latency-ms", "got inf"),
    ("demo", ["--latency-ms", "-5"], "--latency-ms", "got -5"),
    ("demo", ["--retry-after", "nan"], "--retry-after", "got nan"),
]


@pytest.mark.parametrize(("command", "args", "option", "fragment"), CASES, ids=[f"{c[2]} {c[1][1]}" for c in CASES])
def test_a_number_out_of_range_is_exit_2_naming_it(
    tmp_path: Path, command: str, args: list[str], option: str, fragment: str
) -> None:
    if command == "score":
        base = [
            "score", str(GOLDEN / "baseline"), str(GOLDEN / "candidate"), "-o", str(tmp_path / "run.arrow"),
            "--no-lpips", "--no-typography",
        ]  # fmt: skip
    elif command == "capture":
        base = _capture_args(tmp_path)
    else:
        base = ["demo-engine", "serve", "--port", "0"]
    result = runner.invoke(app, [*base, *args])
    assert result.exit_code == 2, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("error:") and option in first and fragment in first, result.output
    assert not (tmp_path / "run.arrow").exists() and not (tmp_path / "cap").exists()
