"""Golden set tools: approve then verify, refusals, tampering, and interrupted approvals."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pixgate.cli import app
from pixgate.golden import approval
from pixgate.golden import golden_set as gold
from pixgate.runs import schema
from pixgate.safe_io import OutputError
from tests.conftest import GOLDEN, GOLDEN_PAIRS, poster, write_run

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
    return write_run(tmp_path / "run.arrow", rows, {schema.META_CANDIDATE_ROOT: str(GOLDEN / "candidate")})


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
    assert f"{GOLDEN_PAIRS} files match" in verified.output


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


@pytest.mark.parametrize("case", ["fail-verdict", "no-verdict", "error-row", "unknown-id"])
def test_refusals_leave_the_golden_set_unchanged(case: str, golden_copy: Path, tmp_path: Path) -> None:
    before = _tree(golden_copy)
    run = _run_of_golden(tmp_path, {"stretched": schema.STATUS_ERROR} if case == "error-row" else None)
    args = ["approve", str(run), "--golden", str(golden_copy)]
    if case == "fail-verdict":
        args += ["--verdict", str(_verdict(tmp_path, run, "fail"))]
    elif case in ("error-row", "unknown-id"):
        args += ["--verdict", str(_verdict(tmp_path, run, "pass"))]
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
    }[case] in message
    assert _tree(golden_copy) == before


def _scored_golden(output: Path) -> Path:
    """The shipped pairs scored for real (no LPIPS, no OCR: fast); scoring again at the same
    path is a re-score, with new bytes (its times)."""
    from pixgate.scoring.score import ScoreOptions, run_score

    opts = ScoreOptions(
        GOLDEN / "baseline", GOLDEN / "candidate", output, device="cpu", no_lpips=True, typography=False,
        overwrite=True,
    )  # fmt: skip
    run_score(opts)
    return output


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", ["other-run", "rescored", "unbound"])
@pytest.mark.parametrize("force", [False, True])
def test_approve_refuses_a_verdict_not_of_this_run(case: str, force: bool, golden_copy: Path, tmp_path: Path) -> None:
    """A verdict binds the bytes of the run it judged: the verdict of another run, of this
    run before it was scored again, or one that records no run's sha256 is exit 2 in one
    line naming both files, --force or not."""
    if case == "rescored":
        run = _scored_golden(tmp_path / "run.arrow")
        verdict = _verdict(tmp_path, run, "pass")
        _scored_golden(run)  # the same path, new bytes
    else:
        run = _run_of_golden(tmp_path)
        other = tmp_path / "other"
        other.mkdir()
        verdict = _verdict(other, _run_of_golden(other, {"stretched": schema.STATUS_ERROR}), "pass")
        if case == "unbound":  # a verdict from before verdicts recorded the run's sha256
            verdict = _verdict(tmp_path, run, "pass")
            doc = json.loads(verdict.read_text())
            del doc["run_sha256"]
            verdict.write_text(json.dumps(doc))
    before = _tree(golden_copy)
    args = ["approve", str(run), "--golden", str(golden_copy), "--verdict", str(verdict), "--ids", "stretched",
            "--files-under", str(GOLDEN), *(["--force"] if force else [])]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    error = next(line for line in result.output.splitlines() if line.startswith("error:"))
    assert str(verdict) in error and str(run) in error, error
    words = "records no 'run_sha256'" if case == "unbound" else "is not the verdict of"
    assert words in error and "judge it again" in error
    assert _tree(golden_copy) == before
    with pytest.raises(gold.GoldenError, match=words):
        approval.approve(run, golden_copy, ids=["stretched"], verdict_path=verdict, force=force,
                         files_under=GOLDEN)  # fmt: skip


@pytest.mark.timeout(120)
def test_approve_takes_the_verdict_of_the_run_as_it_is(golden_copy: Path, tmp_path: Path) -> None:
    """The verdict of a real run, scored and judged, approves it; a copy of the same bytes
    elsewhere is the same run."""
    run = _scored_golden(tmp_path / "run.arrow")
    verdict = _verdict(tmp_path, run, "pass")
    assert json.loads(verdict.read_text())["run_sha256"] == hashlib.sha256(run.read_bytes()).hexdigest()
    copy = tmp_path / "copy.arrow"
    shutil.copy(run, copy)
    args = ["approve", str(copy), "--golden", str(golden_copy), "--verdict", str(verdict), "--ids", "stretched",
            "--files-under", str(GOLDEN)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert gold.verify(golden_copy).clean


@pytest.mark.parametrize("ids", [[""], [",,,"], ["", " , "]])
def test_approve_with_ids_that_name_no_pair_approves_nothing(ids: list[str], golden_copy: Path, tmp_path: Path) -> None:
    """`--ids ''` once read as "no ids given", and approved every pair of the run."""
    run = _run_of_golden(tmp_path)
    before = _tree(golden_copy)
    args = ["approve", str(run), "--golden", str(golden_copy), "--force"]
    for value in ids:
        args += ["--ids", value]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    error = next(line for line in result.output.splitlines() if line.startswith("error:"))
    assert error.startswith("error: --ids: got ") and "names no pair" in error
    assert all(repr(value) in error for value in ids)
    assert _tree(golden_copy) == before
    with pytest.raises(gold.GoldenError, match="names no pair"):
        approval.approve(run, golden_copy, ids=[], force=True)
    assert _tree(golden_copy) == before


def test_force_overrides_a_failed_verdict_and_is_recorded(golden_copy: Path, tmp_path: Path) -> None:
    run = _run_of_golden(tmp_path)
    verdict = _verdict(tmp_path, run, "fail")
    approvals = approval.approve(run, golden_copy, ids=["stretched"], verdict_path=verdict, force=True, by="me")
    assert [a.pair_id for a in approvals] == ["stretched"]
    log = json.loads((golden_copy / "changelog.jsonl").read_text())
    assert log["forced"] is True and log["verdict"] == "fail"
    assert gold.verify(golden_copy).clean


def test_approver_from_the_environment(golden_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXGATE_APPROVER", "release-bot")
    run = _run_of_golden(tmp_path)
    approval.approve(run, golden_copy, ids=["stretched"], force=True)
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
    approval.approve(run, finished, ids=APPROVED, force=True, by="me")
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

        monkeypatch.setattr(approval.os, "replace", failing)
        try:
            approval.approve(run, golden_copy, ids=APPROVED, force=True, by="me")
            failed = False
        except (OSError, OutputError):  # a staged file's write: an OutputError naming it
            failed = True
        monkeypatch.setattr(approval.os, "replace", real_replace)
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
    run = write_run(tmp_path / "run.arrow", rows, {schema.META_CANDIDATE_ROOT: str(cands)})
    before = _tree(big)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "pixgate",
            "approve",
            str(run),
            "--golden",
            str(big),
            "--force",
            "--files-under",
            str(tmp_path),
        ],
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


# --- hostile golden folders, runs and plans ---


def _one_row_run(tmp_path: Path, pair_id: str, candidate: Path, root: Path) -> Path:
    row = {
        schema.PAIR_ID.name: pair_id,
        schema.STATUS.name: schema.STATUS_OK,
        schema.CANDIDATE_PATH.name: str(candidate),
    }
    return write_run(tmp_path / "hostile.arrow", [row], {schema.META_CANDIDATE_ROOT: str(root)})


@pytest.mark.timeout(60)
@pytest.mark.parametrize("pair_id", ["../../escape", "../baseline_sibling", "/tmp/abs", "sub/../../x"])
def test_approve_refuses_pair_ids_that_leave_the_golden_folder(pair_id: str, golden_copy: Path, tmp_path: Path) -> None:
    cand = GOLDEN / "candidate" / "stretched.png"
    run = _one_row_run(tmp_path, pair_id, cand, GOLDEN / "candidate")
    (tmp_path / "escape.png").write_bytes(b"victim")
    before, outside = _tree(golden_copy), _tree(tmp_path)
    result = runner.invoke(app, ["approve", str(run), "--golden", str(golden_copy), "--force"])
    assert result.exit_code == 2, result.output
    assert "pair id" in " ".join(result.output.split())
    assert _tree(golden_copy) == before
    assert _tree(tmp_path) == outside  # nothing written (or backed up) beside it either
    assert runner.invoke(app, ["golden", "verify", str(golden_copy)]).exit_code == 0


@pytest.mark.timeout(60)
def test_approve_refuses_a_candidate_outside_the_runs_folder(golden_copy: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes((GOLDEN / "candidate" / "stretched.png").read_bytes())
    run = _one_row_run(tmp_path, "stretched", secret, GOLDEN / "candidate")
    before = _tree(golden_copy)
    result = runner.invoke(app, ["approve", str(run), "--golden", str(golden_copy), "--force"])
    assert result.exit_code == 2 and "is not inside the candidate folder" in " ".join(result.output.split())
    assert _tree(golden_copy) == before


@pytest.mark.timeout(60)
def test_a_manifest_baseline_that_leaves_the_folder_is_refused(golden_copy: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"precious")
    lines = (golden_copy / "manifest.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["baseline"] = "baseline/../../victim.png"
    (golden_copy / "manifest.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    verify = runner.invoke(app, ["golden", "verify", str(golden_copy)])
    assert verify.exit_code == 2 and "'..' segment" in verify.output
    run = _run_of_golden(tmp_path)
    approve = runner.invoke(app, ["approve", str(run), "--golden", str(golden_copy), "--force", "--ids", first["id"]])
    assert approve.exit_code == 2, approve.output
    assert victim.read_bytes() == b"precious"


def _plan(golden: Path, plan: dict[str, object] | str) -> None:
    """A staging plan with its sha256 beside it, as `approve` writes them: whoever can
    write the folder can write both, so every check past the sha256 is tested too."""
    stage = golden / gold.STAGING
    stage.mkdir(exist_ok=True)
    gold.write_plan(stage, (plan if isinstance(plan, str) else json.dumps(plan)).encode())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["final", "staged", "backup", "not-baseline", "garbage", "deep-json"])
def test_a_staging_plan_that_leaves_its_folder_is_reported_and_left_untouched(
    where: str, golden_copy: Path, tmp_path: Path
) -> None:
    """The issue's case: a plan whose move names "../victim.txt" moved that file into
    staging and deleted it. A pull request can carry such a folder."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    moves = [{"final": "baseline/stretched.png", "staged": "files/baseline/stretched.png"}]
    backups: list[str] = []
    if where == "final":
        moves = [{"final": "../victim.txt", "staged": "files/x"}]
    elif where == "staged":
        moves = [{"final": "baseline/stretched.png", "staged": "../../victim.txt"}]
    elif where == "backup":
        backups = ["baseline/../../victim.txt"]
    elif where == "not-baseline":
        moves = [{"final": "manifest.jsonl", "staged": "files/m"}]
    plan: dict[str, object] | str = {"moves": moves, "backups": backups, "manifest_sha256": "0" * 64}
    if where == "garbage":
        plan = '{"moves": "rm -rf /"}'
    elif where == "deep-json":
        plan = "[" * 100_000 + "]" * 100_000
    _plan(golden_copy, plan)
    before = _tree(golden_copy)
    result = runner.invoke(app, ["golden", "verify", str(golden_copy)])
    assert result.exit_code == 2, result.output
    assert "left untouched" in " ".join(result.output.split())
    assert victim.read_text() == "keep me"
    assert _tree(golden_copy) == before  # the plan and the staging folder are still there
    run = _run_of_golden(tmp_path)
    assert runner.invoke(app, ["approve", str(run), "--golden", str(golden_copy), "--force"]).exit_code == 2
    assert victim.read_text() == "keep me" and _tree(golden_copy) == before


@pytest.mark.timeout(60)
def test_a_staging_folder_that_is_a_symlink_is_left_alone(golden_copy: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("mine")
    (golden_copy / gold.STAGING).symlink_to(elsewhere)
    result = runner.invoke(app, ["golden", "verify", str(golden_copy)])
    assert result.exit_code == 2 and "is not a folder" in " ".join(result.output.split())
    assert (elsewhere / "notes.txt").read_text() == "mine"


@pytest.mark.timeout(60)
def test_verify_reports_a_recorded_baseline_that_is_not_a_regular_file(golden_copy: Path) -> None:
    victim = golden_copy / "baseline" / "stretched.png"
    victim.unlink()
    os.mkfifo(victim)  # reading it would block for ever
    result = runner.invoke(app, ["golden", "verify", str(golden_copy)])
    assert result.exit_code == 1
    report = gold.verify(golden_copy)
    assert [(pid, rel) for pid, rel, _ in report.unreadable] == [("stretched", "baseline/stretched.png")]
    assert "FIFO" in report.unreadable[0][2]


@pytest.mark.timeout(120)
def test_two_approvals_at_once_do_not_interleave(golden_copy: Path, tmp_path: Path) -> None:
    from pixgate.locking import OutputLock

    run = _run_of_golden(tmp_path)
    before = _tree(golden_copy)
    with OutputLock(golden_copy / gold.STAGING, "golden set"):  # another approval holds it
        result = runner.invoke(app, ["approve", str(run), "--golden", str(golden_copy), "--force"])
    assert result.exit_code == 2 and "in use by another pixgate command" in " ".join(result.output.split())
    assert _tree(golden_copy) == before


@pytest.mark.timeout(60)
@pytest.mark.parametrize("which", ["manifest.jsonl", "changelog.jsonl"])
def test_the_sets_own_files_may_not_lead_out(which: str, golden_copy: Path, tmp_path: Path) -> None:
    """A manifest or changelog that is a link out of the folder (to a secret, or /dev/zero)
    would be read and written back into the set: refused, bounded, untouched."""
    secret = tmp_path / "secret.jsonl"
    secret.write_text((golden_copy / "manifest.jsonl").read_text() if which == "manifest.jsonl" else '{"x": 1}\n')
    target = golden_copy / which
    target.unlink(missing_ok=True)
    target.symlink_to(secret if which == "manifest.jsonl" else Path("/dev/zero"))
    if which == "changelog.jsonl":
        target.unlink()
        target.symlink_to(secret)
    run = _run_of_golden(tmp_path)
    approve = runner.invoke(app, ["approve", str(run), "--golden", str(golden_copy), "--force", "--ids", "stretched"])
    assert approve.exit_code == 2, approve.output
    assert "leads outside" in _flat(approve.output)
    assert secret.read_text().startswith("{")


@pytest.mark.timeout(60)
def test_approve_refuses_a_candidate_that_is_not_an_image(golden_copy: Path, tmp_path: Path) -> None:
    cands = tmp_path / "cands"
    cands.mkdir()
    (cands / "stretched.png").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    run = _one_row_run(tmp_path, "stretched", cands / "stretched.png", cands)
    before = _tree(golden_copy)
    args = ["approve", str(run), "--golden", str(golden_copy), "--force", "--files-under", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "not a PNG, JPEG or WebP image" in _flat(result.output)
    assert _tree(golden_copy) == before


@pytest.mark.timeout(60)
def test_verify_waits_for_no_approval_in_progress(golden_copy: Path) -> None:
    from pixgate.locking import OutputLock

    with OutputLock(golden_copy / gold.STAGING, "golden set"):
        result = runner.invoke(app, ["golden", "verify", str(golden_copy)])
    assert result.exit_code == 2 and "in use by another pixgate command" in _flat(result.output)


def _flat(output: str) -> str:
    return " ".join(output.split())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("attack", ["write-out", "steal-in"])
def test_a_plan_cannot_restructure_the_folder_to_reach_outside(attack: str, golden_copy: Path, tmp_path: Path) -> None:
    """Paths that are inside when the plan is read, but would lead out once an earlier move
    has carried a folder holding a link into place: every move is checked as it happens,
    and only regular files move."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "id_rsa").write_text("secret")
    base = golden_copy / "baseline"
    stage = golden_copy / gold.STAGING
    if attack == "write-out":
        (base / "dir").mkdir()
        (base / "dir" / "lnk").symlink_to(outside)
        (base / "authorized_keys").write_text("attacker key")
        moves = [
            {"final": "baseline/authorized_keys", "staged": "files/dir/lnk/authorized_keys"},
            {"final": "baseline/dir", "staged": "files/dir"},
        ]
        plan = {"moves": moves, "backups": [], "manifest_sha256": "0" * 64}
    else:
        (base / "d2").mkdir()
        (base / "d2" / "lnk").symlink_to(outside)
        plan = {
            "moves": [{"final": "baseline/d2", "staged": "backup/baseline/q"}],
            "backups": ["baseline/q/lnk/id_rsa"],
            "manifest_sha256": "0" * 64,
        }
    _plan(golden_copy, plan)
    result = runner.invoke(app, ["golden", "verify", str(golden_copy)])
    assert result.exit_code == 2, result.output
    assert sorted(p.name for p in outside.iterdir()) == ["id_rsa"]
    assert (outside / "id_rsa").read_text() == "secret"
    assert (stage / "plan.json").exists()  # reported, left for a person to look at


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", ["file-and-folder", "shared-baseline", "id-twice", "no-extension"])
def test_approvals_that_cannot_be_done_file_by_file_exit_2(case: str, golden_copy: Path, tmp_path: Path) -> None:
    cands = tmp_path / "cands"
    (cands / "a.png").mkdir(parents=True)
    png = (GOLDEN / "candidate" / "stretched.png").read_bytes()
    (cands / "a.png" / "b.png").write_bytes(png)
    (cands / "a.png.png").write_bytes(png)
    (cands / "plain").write_bytes(png)
    rows = {
        "file-and-folder": [("a", cands / "a.png.png"), ("a.png/b", cands / "a.png" / "b.png")],
        "shared-baseline": [("stretched", cands / "a.png.png"), ("identical_sale", cands / "a.png.png")],
        "id-twice": [("stretched", cands / "a.png.png")],
        "no-extension": [("plain", cands / "plain")],
    }[case]
    run = write_run(
        tmp_path / "r.arrow",
        [{schema.PAIR_ID.name: pid, schema.STATUS.name: "ok", schema.CANDIDATE_PATH.name: str(c)} for pid, c in rows],
        {schema.META_CANDIDATE_ROOT: str(cands)},
    )
    manifest = golden_copy / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    if case == "shared-baseline":
        entries = [json.loads(line) for line in lines]
        for entry in entries:
            if entry["id"] == "identical_sale":
                entry["baseline"] = "baseline/stretched.png"
        manifest.write_text("".join(json.dumps(e) + "\n" for e in entries))
    elif case == "id-twice":
        manifest.write_text("\n".join([*lines, lines[0]]) + "\n")
    before = _tree(golden_copy)
    args = ["approve", str(run), "--golden", str(golden_copy), "--force", "--files-under", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.output, result.exception)
    assert {
        "file-and-folder": "is both a file and a folder of another",
        "shared-baseline": "a file appears twice",
        "id-twice": "ids appear more than once",
        "no-extension": "has no image extension",
    }[case] in _flat(result.output)
    assert _tree(golden_copy) == before


@pytest.mark.timeout(60)
def test_a_run_that_records_the_root_folder_cannot_copy_any_image(
    golden_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's recorded folder is data too: `/` would let a run point at any image on
    the machine. Candidates are read only under --files-under (default: here)."""
    private = tmp_path / "private" / "photo.png"
    private.parent.mkdir()
    private.write_bytes((GOLDEN / "candidate" / "stretched.png").read_bytes())
    run = _one_row_run(tmp_path, "stolen", private, Path("/"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = _tree(golden_copy)
    result = runner.invoke(app, ["approve", str(run), "--golden", str(golden_copy), "--force"])
    assert result.exit_code == 2 and "approve reads candidates only under --files-under" in _flat(result.output)
    assert _tree(golden_copy) == before
    ok = runner.invoke(app, ["approve", str(run), "--golden", str(golden_copy), "--force", "--files-under",
                             str(private.parent)])  # fmt: skip
    assert ok.exit_code == 0, ok.output  # named by the person who approves: taken


@pytest.mark.timeout(60)
def test_a_backup_folder_that_is_a_link_cannot_bring_files_in(golden_copy: Path, tmp_path: Path) -> None:
    """`.pixgate-approve/backup` pointing elsewhere: a roll-back would have moved files from
    there into the golden set (and out of their folder)."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "baseline").mkdir(parents=True)
    (elsewhere / "baseline" / "s.png").write_bytes(b"theirs")
    _plan(golden_copy, {"moves": [], "backups": ["baseline/s.png"], "manifest_sha256": "0" * 64})
    (golden_copy / gold.STAGING / "backup").symlink_to(elsewhere)
    result = runner.invoke(app, ["golden", "verify", str(golden_copy)])
    assert result.exit_code == 2 and "leads outside" in _flat(result.output)
    assert (elsewhere / "baseline" / "s.png").read_bytes() == b"theirs"
    assert not (golden_copy / "baseline" / "s.png").exists()


def _interrupted_after_commit(golden: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real approval stopped after its commit, before it removed its staging folder
    (a kill there): the new manifest is in place, the plan and the backups are staged."""
    run = _run_of_golden(tmp_path)

    def stopped(_path: Path) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(approval, "remove_tree", stopped)
    monkeypatch.setattr(approval, "recover", lambda _golden: None)  # as after kill -9
    with pytest.raises(OSError):
        approval.approve(run, golden, ids=APPROVED, force=True, by="me")
    monkeypatch.undo()
    stage = golden / gold.STAGING
    assert (stage / gold.PLAN).is_file() and (stage / gold.PLAN_SHA256).is_file()
    return stage


@pytest.mark.timeout(60)
def test_an_interrupted_approval_with_its_plan_intact_completes(
    golden_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupted_after_commit(golden_copy, tmp_path, monkeypatch)
    result = runner.invoke(app, ["golden", "verify", str(golden_copy)])
    assert result.exit_code == 0, result.output
    assert "completed an approval interrupted after its commit" in _flat(result.output)
    assert (golden_copy / "baseline" / "jpeg_reencoded.jpg").is_file()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("tamper", ["hash-edited", "no-sha256-file", "sha256-file-edited"])
def test_a_plan_that_does_not_match_its_sha256_moves_and_deletes_nothing(
    tamper: str, golden_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: a plan whose recorded manifest hash was edited made `golden
    verify` believe the committed approval had not happened and roll it back, deleting the
    new baselines the manifest records."""
    stage = _interrupted_after_commit(golden_copy, tmp_path, monkeypatch)
    plan_path = stage / gold.PLAN
    if tamper == "hash-edited":
        plan = json.loads(plan_path.read_text())
        plan["manifest_sha256"] = "0" * 64
        plan_path.write_text(json.dumps(plan, indent=1))
    elif tamper == "no-sha256-file":  # a plan from an older pixgate, or not from pixgate at all
        (stage / gold.PLAN_SHA256).unlink()
    else:
        (stage / gold.PLAN_SHA256).write_text("f" * 64 + "\n")
    before = _tree(golden_copy)
    result = runner.invoke(app, ["golden", "verify", str(golden_copy)])
    assert result.exit_code == 2, result.output
    error = next(line for line in result.output.splitlines() if line.startswith("error:"))
    assert "nothing was moved or deleted" in error and "remove the folder by hand" in error
    assert (golden_copy / "baseline" / "jpeg_reencoded.jpg").is_file()  # the approved baseline is kept
    assert _tree(golden_copy) == before
    approve = runner.invoke(app, ["approve", str(_run_of_golden(tmp_path)), "--golden", str(golden_copy), "--force"])
    assert approve.exit_code == 2, approve.output
    assert _tree(golden_copy) == before


@pytest.mark.timeout(60)
def test_an_approval_killed_between_the_plans_sha256_and_the_plan_is_discarded(golden_copy: Path) -> None:
    """The sha256 is written first: a kill before the plan leaves no plan, and nothing had
    moved yet."""
    before = _tree(golden_copy)
    stage = golden_copy / gold.STAGING
    (stage / "files" / "baseline").mkdir(parents=True)
    (stage / "files" / "baseline" / "stretched.png").write_bytes(b"staged")
    (stage / gold.PLAN_SHA256).write_text("0" * 64 + "\n")
    result = runner.invoke(app, ["golden", "verify", str(golden_copy)])
    assert result.exit_code == 0, result.output
    assert "discarded an approval interrupted" in _flat(result.output)
    assert _tree(golden_copy) == before


def test_a_full_disk_during_approve_names_the_file_and_changes_nothing(
    tmp_path: Path, mounted: Callable[[str], Path]
) -> None:
    """The golden set on a real file system with room for its baselines but not for the
    staged candidates: one line naming the file that could not be written, exit 2."""
    page = 4096  # tmpfs gives each file whole pages
    kept = [*(GOLDEN / "baseline").iterdir(), GOLDEN / "manifest.jsonl"]
    room = sum(-(-p.stat().st_size // page) * page for p in kept)
    room += sum(p.stat().st_size for p in (GOLDEN / "candidate").iterdir()) // 2  # half the staged candidates
    golden = _copy_golden(mounted(f"size={room // 1024}k") / "golden")
    before = _tree(golden)
    run = _run_of_golden(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "pixgate", "approve", str(run), "--golden", str(golden), "--force", "--by", "qa"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 2 and "Traceback" not in output, output
    error = next(line for line in output.splitlines() if line.startswith("error:"))
    assert f"cannot write {golden}/" in error and "No space left on device" in error, error
    assert "free space" in next(line for line in output.splitlines() if line.startswith("hint:"))
    assert _tree(golden) == before and sorted(p.name for p in golden.iterdir()) == ["baseline", "manifest.jsonl"]


@pytest.mark.parametrize("where", ["changelog.jsonl", "baseline/alpha_dropped.png"])
def test_approve_refuses_a_file_it_writes_that_is_a_fifo(where: str, golden_copy: Path, tmp_path: Path) -> None:
    """A FIFO where approve writes (the changelog, a baseline it replaces) is exit 2 in one
    line; the FIFO stays, nothing else changes and no staging folder is left."""
    target = golden_copy / where
    target.unlink(missing_ok=True)
    os.mkfifo(target)
    before = _tree(golden_copy)
    result = runner.invoke(app, ["approve", str(_run_of_golden(tmp_path)), "--golden", str(golden_copy), "--force"])
    assert result.exit_code == 2, result.output
    error = next(line for line in result.output.splitlines() if line.startswith("error:"))
    assert str(target) in error and "not a regular file" in error, error
    assert stat.S_ISFIFO(os.lstat(target).st_mode) and _tree(golden_copy) == before
    assert not (golden_copy / gold.STAGING).exists()


def test_an_id_given_twice_is_approved_once(golden_copy: Path, tmp_path: Path) -> None:
    run = _run_of_golden(tmp_path)
    result = runner.invoke(
        app, ["approve", str(run), "--golden", str(golden_copy), "--force", "--ids", "stretched,stretched", "--ids",
              "stretched"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    log = (golden_copy / "changelog.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in log] == ["stretched"]
