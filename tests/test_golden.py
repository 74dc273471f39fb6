"""Golden set tools: approve then verify, refusals, tampering, and interrupted approvals."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from engine import golden as gold
from engine import schema
from engine.cli import app
from tests.conftest import GOLDEN, poster, write_run

runner = CliRunner()
# Pairs of the shipped set approved in the round trip: one keeps its format, one turns
# a PNG baseline into a JPEG.
APPROVED = ["saturation_boost", "jpeg_reencoded"]
# Images in the kill test: enough that staging them takes far longer than the kill.
KILL_IMAGES = 40
KILL_DEADLINE_S = 120.0


def _tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative path -> sha256), to compare whole golden sets."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _copy_golden(target: Path) -> Path:
    """A private copy of the shipped golden set: manifest and baselines."""
    target.mkdir()
    shutil.copytree(GOLDEN / "baseline", target / "baseline")
    shutil.copy(GOLDEN / "manifest.jsonl", target / "manifest.jsonl")
    return target


@pytest.fixture
def golden_copy(tmp_path: Path) -> Path:
    """A private copy of the shipped golden set (manifest and baselines)."""
    return _copy_golden(tmp_path / "golden")


def _run_of_golden(tmp_path: Path, status: dict[str, str] | None = None) -> Path:
    """A run file over the shipped pairs, each row pointing at the shipped candidate."""
    rows = []
    for cand in sorted((GOLDEN / "candidate").iterdir()):
        st = (status or {}).get(cand.stem, schema.STATUS_OK)
        rows.append(
            {
                schema.PAIR_ID.name: cand.stem,
                schema.STATUS.name: st,
                schema.ERROR.name: None if st == schema.STATUS_OK else "candidate: truncated PNG",
                schema.BASELINE_PATH.name: str(GOLDEN / "baseline" / f"{cand.stem}.png"),
                schema.CANDIDATE_PATH.name: str(cand),
            }
        )
    return write_run(tmp_path / "run.arrow", rows)


def _verdict(tmp_path: Path, run: Path, verdict: str) -> Path:
    """A verdict written by the real gate, from a policy every row passes (or fails)."""
    op = "!=" if verdict == "pass" else "=="
    policy = tmp_path / f"{verdict}.toml"
    policy.write_text(f'[[rule]]\ncolumn = "status"\nstat = "each"\nop = "{op}"\npass = "missing_baseline"\n')
    out = tmp_path / f"{verdict}.json"
    result = runner.invoke(app, ["gate", str(run), "--policy", str(policy), "--json", str(out)])
    assert json.loads(out.read_text())["verdict"] == verdict, result.output
    return out


def test_shipped_golden_set_verifies() -> None:
    report = gold.verify(GOLDEN)
    assert report.clean, report
    assert sorted(report.checked) == sorted(f"baseline/{p.name}" for p in (GOLDEN / "baseline").iterdir())


def test_approve_then_verify_round_trips(golden_copy: Path, tmp_path: Path) -> None:
    run = _run_of_golden(tmp_path)
    verdict = _verdict(tmp_path, run, "pass")
    result = runner.invoke(
        app,
        ["approve", str(run), "--golden", str(golden_copy), "--verdict", str(verdict), "--ids", ",".join(APPROVED),
         "--by", "qa-lead"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for pid in APPROVED:
        cand = next((GOLDEN / "candidate").glob(f"{pid}.*"))
        new = golden_copy / "baseline" / f"{pid}{cand.suffix}"
        assert new.read_bytes() == cand.read_bytes()
    assert not (golden_copy / "baseline" / "jpeg_reencoded.png").exists()  # the replaced PNG is gone
    entries = {e["id"]: e for e in map(json.loads, (golden_copy / "manifest.jsonl").read_text().splitlines())}
    approved = entries["jpeg_reencoded"]
    assert approved["baseline"] == "baseline/jpeg_reencoded.jpg"
    assert approved["approved"]["by"] == "qa-lead" and approved["approved"]["verdict"] == "pass"
    assert approved["approved"]["run"] == str(run.resolve())
    assert approved["expected_text"]  # the entry's other keys are kept
    log = [json.loads(line) for line in (golden_copy / "changelog.jsonl").read_text().splitlines()]
    assert [line["id"] for line in log] == APPROVED
    assert log[1]["previous"] == "baseline/jpeg_reencoded.png" and log[1]["sha256"] == approved["sha256"]
    verified = runner.invoke(app, ["golden", "verify", str(golden_copy)])
    assert verified.exit_code == 0, verified.output
    assert "10 files match" in verified.output


def test_verify_catches_tampering(golden_copy: Path) -> None:
    victim = golden_copy / "baseline" / "stretched.png"
    data = bytearray(victim.read_bytes())
    data[-20] ^= 0xFF
    victim.write_bytes(bytes(data))
    (golden_copy / "baseline" / "identical_sale.png").unlink()
    Image.fromarray(poster(16, 16, seed=1)).save(golden_copy / "baseline" / "stowaway.png")
    result = runner.invoke(app, ["golden", "verify", str(golden_copy)])
    assert result.exit_code == 1
    report = gold.verify(golden_copy)
    assert report.changed == [("stretched", "baseline/stretched.png")]
    assert report.missing == [("identical_sale", "baseline/identical_sale.png")]
    assert report.extra == ["baseline/stowaway.png"]


def test_verify_without_a_golden_set_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["golden", "verify", str(tmp_path)])
    assert result.exit_code == 2 and "manifest.jsonl" in result.output


@pytest.mark.parametrize("case", ["fail-verdict", "no-verdict", "error-row", "unknown-id", "other-run"])
def test_refusals_leave_the_golden_set_unchanged(case: str, golden_copy: Path, tmp_path: Path) -> None:
    before = _tree(golden_copy)
    run = _run_of_golden(tmp_path, {"stretched": schema.STATUS_ERROR} if case == "error-row" else None)
    args = ["approve", str(run), "--golden", str(golden_copy)]
    if case == "fail-verdict":
        args += ["--verdict", str(_verdict(tmp_path, run, "fail"))]
    elif case in ("error-row", "unknown-id"):
        args += ["--verdict", str(_verdict(tmp_path, run, "pass"))]
    elif case == "other-run":
        other = tmp_path / "other"
        other.mkdir()
        verdict = _verdict(other, _run_of_golden(other), "pass")
        args += ["--verdict", str(verdict)]
    if case == "unknown-id":
        args += ["--ids", "no_such_pair"]
    result = runner.invoke(app, args)
    expected_exit = 2 if case == "unknown-id" else 1
    assert result.exit_code == expected_exit, result.output
    message = " ".join(result.output.split())
    assert {
        "fail-verdict": "verdict is fail",
        "no-verdict": "no verdict",
        "error-row": "stretched: error",
        "unknown-id": "no_such_pair",
        "other-run": "judged",
    }[case] in message
    assert _tree(golden_copy) == before


def test_force_overrides_a_failed_verdict_and_is_recorded(golden_copy: Path, tmp_path: Path) -> None:
    run = _run_of_golden(tmp_path)
    verdict = _verdict(tmp_path, run, "fail")
    approvals = gold.approve(run, golden_copy, ids=["stretched"], verdict_path=verdict, force=True, by="me")
    assert [a.pair_id for a in approvals] == ["stretched"]
    log = json.loads((golden_copy / "changelog.jsonl").read_text())
    assert log["forced"] is True and log["verdict"] == "fail"
    assert gold.verify(golden_copy).clean


def test_approver_from_the_environment(golden_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXGATE_APPROVER", "release-bot")
    run = _run_of_golden(tmp_path)
    gold.approve(run, golden_copy, ids=["stretched"], force=True)
    assert json.loads((golden_copy / "changelog.jsonl").read_text())["by"] == "release-bot"


def test_failure_at_every_step_of_the_swap_leaves_old_or_new(
    golden_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """os.replace fails at each call in turn: before the commit everything rolls back,
    after it the approval completes; never a mix."""
    run = _run_of_golden(tmp_path)
    before = _tree(golden_copy)
    finished = tmp_path / "finished"
    shutil.copytree(golden_copy, finished)
    gold.approve(run, finished, ids=APPROVED, force=True, by="me")
    after = _tree(finished)
    real_replace = os.replace
    outcomes = {"rolled back": 0, "completed": 0}
    k = 1
    while True:
        shutil.rmtree(golden_copy)
        _copy_golden(golden_copy)
        calls = 0

        def failing(src: object, dst: object, fail_at: int = k) -> None:
            nonlocal calls
            calls += 1
            if calls == fail_at:
                raise OSError(28, "No space left on device")
            real_replace(src, dst)  # type: ignore[arg-type]

        monkeypatch.setattr(gold.os, "replace", failing)
        try:
            gold.approve(run, golden_copy, ids=APPROVED, force=True, by="me")
            failed = False
        except OSError:
            failed = True
        monkeypatch.setattr(gold.os, "replace", real_replace)
        state = _tree(golden_copy)
        # The changelog's dates differ between runs; compare everything else exactly.
        strip = {p: h for p, h in state.items() if p not in ("manifest.jsonl", "changelog.jsonl")}
        if state == before:
            assert failed
            outcomes["rolled back"] += 1
        else:
            outcomes["completed"] += failed
            assert strip == {p: h for p, h in after.items() if p not in ("manifest.jsonl", "changelog.jsonl")}
            assert gold.verify(golden_copy).clean and (golden_copy / "changelog.jsonl").exists()
        assert not (golden_copy / gold.STAGING).exists()
        if not failed:
            break
        k += 1
    # Interrupted at each rename: the writes of the staged files and plan, the backups and
    # moves (rolled back), the changelog after the commit (completed).
    assert outcomes["rolled back"] > 5 and outcomes["completed"] >= 1, outcomes


def test_killed_approve_leaves_the_golden_set_unchanged(tmp_path: Path) -> None:
    big = tmp_path / "golden"
    (big / "baseline").mkdir(parents=True)
    cands = tmp_path / "candidates"
    cands.mkdir()
    rng = np.random.default_rng(0)
    entries, rows = [], []
    for i in range(KILL_IMAGES):
        pid = f"poster_{i:03d}"
        base = big / "baseline" / f"{pid}.png"
        Image.fromarray(rng.integers(0, 256, (384, 384, 3), dtype=np.uint8)).save(base)
        Image.fromarray(rng.integers(0, 256, (384, 384, 3), dtype=np.uint8)).save(cands / f"{pid}.png")
        sha = hashlib.sha256(base.read_bytes()).hexdigest()
        entries.append({"id": pid, "baseline": f"baseline/{pid}.png", "sha256": sha})
        rows.append(
            {
                schema.PAIR_ID.name: pid,
                schema.STATUS.name: schema.STATUS_OK,
                schema.CANDIDATE_PATH.name: str(cands / f"{pid}.png"),
            }
        )
    (big / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    run = write_run(tmp_path / "run.arrow", rows)
    before = _tree(big)
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "engine", "approve", str(run), "--golden", str(big), "--force"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("staged 1/"), first
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=KILL_DEADLINE_S)
    assert (big / gold.STAGING).exists()  # killed half-way through staging
    assert {p: h for p, h in _tree(big).items() if not p.startswith(gold.STAGING)} == before
    result = runner.invoke(app, ["golden", "verify", str(big)])
    assert result.exit_code == 0, result.output
    assert "discarded an approval interrupted" in " ".join(result.output.split())
    assert _tree(big) == before
