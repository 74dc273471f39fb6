"""A verdict is bound to the bytes of the run it judged: read back for another run, or for
the same path scored again, it is refused, by the reader and by `report --verdict`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pixgate.cli import app
from pixgate.runs import schema
from pixgate.runs.files import RunFileError, read_verdict
from pixgate.scoring.score import ScoreOptions, run_score
from tests.conftest import GOLDEN

runner = CliRunner()
POLICY = '[[rule]]\ncolumn = "status"\nstat = "each"\nop = "!="\npass = "missing_baseline"\n'


def _scored(output: Path) -> Path:
    """The shipped pairs scored for real (no LPIPS, no OCR: fast); scoring again at the
    same path gives new bytes (the run's times)."""
    opts = ScoreOptions(
        GOLDEN / "baseline", GOLDEN / "candidate", output, device="cpu", no_lpips=True, typography=False,
        overwrite=True,
    )  # fmt: skip
    assert run_score(opts).table.num_rows
    return output


def _judged(run: Path, verdict: Path) -> Path:
    """The verdict `pixgate gate --json` writes for `run`."""
    policy = verdict.with_suffix(".toml")
    policy.write_text(POLICY)
    result = runner.invoke(app, ["gate", str(run), "--policy", str(policy), "--json", str(verdict)])
    assert result.exit_code == 0, result.output
    return verdict


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("runs")
    return _scored(folder / "a.arrow"), _scored(folder / "b.arrow")


def _error_line(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("error:"))


@pytest.mark.timeout(120)
def test_the_verdict_of_a_run_reads_back_for_that_run_only(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_runs
    verdict = _judged(a, tmp_path / "a.json")
    assert read_verdict(verdict, run=a)["verdict"] == "pass"
    with pytest.raises(RunFileError, match="is not the verdict of") as caught:
        read_verdict(verdict, run=b)
    assert str(verdict) in str(caught.value) and str(b) in str(caught.value)
    doc = json.loads(verdict.read_text())
    doc["run_sha256"] = None
    verdict.write_text(json.dumps(doc))
    with pytest.raises(RunFileError, match="records no 'run_sha256'"):
        read_verdict(verdict, run=a)
    assert read_verdict(verdict)["verdict"] == "pass"  # without a run, only its shape is read
    doc["run_sha256"] = "../" * 30
    verdict.write_text(json.dumps(doc))
    with pytest.raises(RunFileError, match="'run_sha256' must be 64 lowercase hex digits"):
        read_verdict(verdict)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("case", ["other-run", "rescored"])
def test_report_refuses_a_verdict_not_of_its_run(case: str, two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_runs
    if case == "other-run":
        run, verdict = a, _judged(b, tmp_path / "b.json")
    else:
        run = _scored(tmp_path / "run.arrow")
        verdict = _judged(run, tmp_path / "run.json")
        _scored(run)  # the same path, new bytes
    html = tmp_path / "report.html"
    args = ["report", str(run), "-o", str(html), "--verdict", str(verdict), "--files-under", str(GOLDEN)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    error = _error_line(result.output)
    assert error.startswith("error: --verdict: ") and "is not the verdict of" in error
    assert str(verdict) in error and str(run) in error
    assert not html.exists()
    from pixgate.report.html import ReportError, build_report

    with pytest.raises(ReportError, match="is not the verdict of"):  # the Python API refuses it too
        build_report(run, html, verdict=verdict, files_under=GOLDEN)
    assert not html.exists()
    # Judged again, the verdict is the run's, and the report takes it.
    again = _judged(run, tmp_path / "again.json")
    result = runner.invoke(app, ["report", str(run), "-o", str(html), "--verdict", str(again), "--files-under",
                                 str(GOLDEN), "--top", "1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert html.exists() and schema.PAIR_ID.name in html.read_text()
