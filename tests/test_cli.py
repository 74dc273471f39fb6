"""The command line: exit codes, messages, a real subprocess, and kill -9 then --resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pixgate.cli import app
from pixgate.runs import schema
from pixgate.runs.files import journal_path, read_journal, read_run
from tests.conftest import GOLDEN, write_run

runner = CliRunner()


def _flat(output: str) -> str:
    """CLI output without rich's box drawing and line wrapping."""
    for ch in "│╭╮╰╯─":
        output = output.replace(ch, " ")
    return " ".join(output.split())


SIZES = [(40, 56), (48, 48)]
# Long enough that a run is still going when the test kills it, on any machine.
KILL_PAIRS = 160
KILL_SIZE = (192, 256)
KILL_AFTER_ROWS = 12
KILL_DEADLINE_S = 240.0


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "score" in result.output and "weights" in result.output


def test_score_ok_exits_0(make_pairs: Callable[..., tuple[Path, Path]], alex_weights: Path, tmp_path: Path) -> None:
    base, cand = make_pairs(SIZES)
    out = tmp_path / "run.arrow"
    result = runner.invoke(app, ["score", str(base), str(cand), "-o", str(out), "--weights", str(alex_weights)])
    assert result.exit_code == 0, result.output
    assert read_run(out).num_rows == 2
    assert "LPIPS p50 / p95 / max" in result.output


def test_score_with_a_bad_pair_exits_1_and_lists_it(
    make_pairs: Callable[..., tuple[Path, Path]], alex_weights: Path, tmp_path: Path
) -> None:
    base, cand = make_pairs(SIZES)
    (cand / "p000.png").write_bytes(b"")
    out = tmp_path / "run.arrow"
    result = runner.invoke(app, ["score", str(base), str(cand), "-o", str(out), "--weights", str(alex_weights)])
    assert result.exit_code == 1
    assert "p000" in result.output and "empty file" in result.output
    assert read_run(out).num_rows == 2


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--batch-size", "0"], "got 0; use a whole number from 1 to 4096"),
        (["--device", "tpu"], "'tpu' is not one of 'auto', 'cpu', 'cuda'"),
        (["--net", "resnet"], "'resnet' is not one of 'alex', 'vgg', 'squeeze'"),
        (["--workers", "-1"], "got -1; use a whole number from 1 to 256"),
        (["--max-pixels", "0"], "got 0; use a whole number from 1 to 2147483648"),
        (["--weights", "/nonexistent.pth"], "'/nonexistent.pth' does not exist"),
    ],
)
def test_usage_errors_exit_2_naming_the_value(
    make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path, args: list[str], fragment: str
) -> None:
    base, cand = make_pairs(SIZES[:1])
    result = runner.invoke(app, ["score", str(base), str(cand), "-o", str(tmp_path / "r.arrow"), *args])
    assert result.exit_code == 2
    assert fragment in _flat(result.output)


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_bad_decoder_setting_exits_2_before_anything_runs(
    make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    base, cand = make_pairs(SIZES[:1])
    monkeypatch.setenv("PIXGATE_DECODER", "turbo")
    out = tmp_path / "r.arrow"
    result = runner.invoke(app, ["score", str(base), str(cand), "-o", str(out), "--no-lpips", "--backend", backend])
    assert result.exit_code == 2
    assert "PIXGATE_DECODER must be one of auto, pillow; got 'turbo'" in _flat(result.output)
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()


def test_missing_folder_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["score", str(tmp_path / "nope"), str(tmp_path), "-o", str(tmp_path / "r.arrow")])
    assert result.exit_code == 2
    assert "does not exist" in _flat(result.output)


def test_no_weights_exits_2_listing_every_way(make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path) -> None:
    base, cand = make_pairs(SIZES[:1])
    result = runner.invoke(app, ["score", str(base), str(cand), "-o", str(tmp_path / "r.arrow")])
    assert result.exit_code == 2
    for way in ("--weights PATH", "PIXGATE_WEIGHTS", "torchvision's cache", "--no-lpips"):
        assert way in _flat(result.output)


def test_cuda_without_a_gpu_exits_2(make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    base, cand = make_pairs(SIZES[:1])
    result = runner.invoke(app, ["score", str(base), str(cand), "-o", str(tmp_path / "r.arrow"), "--device", "cuda"])
    assert result.exit_code == 2
    assert "no usable CUDA device" in _flat(result.output) and "--device must be cpu or auto" in _flat(result.output)


def test_weights_command(alex_weights: Path) -> None:
    missing = runner.invoke(app, ["weights"])
    assert missing.exit_code == 2
    assert "torchvision cache" in missing.output
    found = runner.invoke(app, ["weights", "--weights", str(alex_weights)])
    assert found.exit_code == 0, found.output
    from pixgate.scoring.weights import sha256_file

    assert f"sha256: {sha256_file(alex_weights)}" in found.output


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pixgate", *args]


def test_real_subprocess_no_lpips(make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path) -> None:
    base, cand = make_pairs(SIZES)
    out = tmp_path / "run.arrow"
    proc = subprocess.run(
        _cli("score", str(base), str(cand), "-o", str(out), "--no-lpips"), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    table = read_run(out)
    assert table.num_rows == 2 and table.column(schema.LPIPS.name).null_count == 2


def _kill_pairs(tmp_path: Path) -> tuple[Path, Path]:
    import numpy as np
    from PIL import Image

    from tests.conftest import poster

    base, cand = tmp_path / "kb", tmp_path / "kc"
    base.mkdir()
    cand.mkdir()
    h, w = KILL_SIZE
    for i in range(KILL_PAIRS):
        img = poster(h, w, seed=i)
        Image.fromarray(img).save(base / f"k{i:03d}.png", compress_level=1)
        shifted = np.roll(img, 2, axis=1)
        Image.fromarray(shifted).save(cand / f"k{i:03d}.png", compress_level=1)
    return base, cand


@pytest.mark.slow
def test_kill_9_then_resume_keeps_every_pair_exactly_once(alex_weights: Path, tmp_path: Path) -> None:
    base, cand = _kill_pairs(tmp_path)
    out = tmp_path / "run.arrow"
    args = ["score", str(base), str(cand), "-o", str(out), "--weights", str(alex_weights), "--batch-size", "2"]
    proc = subprocess.Popen(_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + KILL_DEADLINE_S
    kept = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if journal_path(out).exists():
                try:
                    kept = read_journal(journal_path(out))[0].num_rows
                except ValueError:
                    kept = 0
                if kept >= KILL_AFTER_ROWS:
                    break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its decode workers, at once
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not out.exists()
    before, _ = read_journal(journal_path(out))
    assert KILL_AFTER_ROWS <= before.num_rows < KILL_PAIRS
    assert before.column(schema.STATUS.name).to_pylist() == [schema.STATUS_OK] * before.num_rows

    resumed = subprocess.run(_cli(*args, "--resume"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    table = read_run(out)
    ids = table.column(schema.PAIR_ID.name).to_pylist()
    assert ids == sorted(f"k{i:03d}" for i in range(KILL_PAIRS))  # every pair, once
    # Rows written before the kill are kept as they were.
    after = dict(zip(ids, table.column(schema.LPIPS.name).to_pylist(), strict=True))
    for pid, value in zip(
        before.column(schema.PAIR_ID.name).to_pylist(), before.column(schema.LPIPS.name).to_pylist(), strict=True
    ):
        assert after[pid] == value
    assert not journal_path(out).exists()


# --- pixgate gate ---

GATE_POLICY = """
[[rule]]
name = "LPIPS p95"
column = "lpips"
stat = "p95"
op = "<="
pass = 0.1
marginal = 0.2

[[rule]]
name = "alpha parity"
column = "alpha_parity"
stat = "each"
op = "=="
pass = true
critical = true
"""


def _gate_files(tmp_path: Path, lpips: list[float], parity: list[bool]) -> tuple[Path, Path]:
    from tests.conftest import write_run

    rows = [
        {
            schema.PAIR_ID.name: f"p{i}",
            schema.STATUS.name: schema.STATUS_OK,
            schema.LPIPS.name: lp,
            schema.ALPHA_PARITY.name: par,
        }
        for i, (lp, par) in enumerate(zip(lpips, parity, strict=True))
    ]
    run = write_run(tmp_path / "run.arrow", rows)
    policy = tmp_path / "policy.toml"
    policy.write_text(GATE_POLICY)
    return run, policy


@pytest.mark.parametrize(
    ("lpips", "parity", "strict", "code", "verdict"),
    [
        ([0.01, 0.05], [True, True], False, 0, "PASS"),
        ([0.01, 0.15], [True, True], False, 0, "MARGINAL"),
        ([0.01, 0.15], [True, True], True, 1, "MARGINAL"),
        ([0.01, 0.05], [True, False], False, 1, "FAIL"),
        ([0.01, 0.5], [True, True], False, 1, "FAIL"),
    ],
)
def test_gate_exit_codes(
    lpips: list[float], parity: list[bool], strict: bool, code: int, verdict: str, tmp_path: Path
) -> None:
    run, policy = _gate_files(tmp_path, lpips, parity)
    args = ["gate", str(run), "--policy", str(policy)] + (["--strict"] if strict else [])
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert f"verdict: {verdict}" in _flat(result.output)


def test_gate_json_verdict(tmp_path: Path) -> None:
    import json

    run, policy = _gate_files(tmp_path, [0.01, 0.3, 0.02], [True, False, True])
    out = tmp_path / "verdict.json"
    result = runner.invoke(app, ["gate", str(run), "--policy", str(policy), "--json", str(out)])
    assert result.exit_code == 1
    doc = json.loads(out.read_text())
    assert doc["verdict"] == "fail" and 0 <= doc["score"] <= 100
    assert [r["name"] for r in doc["rules"]] == ["every pair scored", "LPIPS p95", "alpha parity"]
    assert [r["result"] for r in doc["rules"]] == ["pass", "fail", "fail"]
    assert doc["rules"][2]["line"] == GATE_POLICY.splitlines().index("[[rule]]", 2) + 1
    assert [p["pair_id"] for p in doc["failing_pairs"]] == ["p1"]
    assert doc["failing_pairs"][0]["rules"] == ["LPIPS p95", "alpha parity"]
    assert doc["statuses"] == {"ok": 3}


def test_gate_bad_policy_exits_2_naming_the_line(tmp_path: Path) -> None:
    run, policy = _gate_files(tmp_path, [0.01], [True])
    policy.write_text(GATE_POLICY.replace('column = "lpips"', 'column = "lpips_p95"'))
    result = runner.invoke(app, ["gate", str(run), "--policy", str(policy)])
    assert result.exit_code == 2
    line = GATE_POLICY.splitlines().index('column = "lpips"') + 1
    assert f"policy.toml:{line}:" in _flat(result.output).replace(" ", "")
    assert "unknown column 'lpips_p95'" in _flat(result.output)


@pytest.mark.parametrize("missing", ["run", "policy", "against"])
def test_gate_missing_file_exits_2(missing: str, tmp_path: Path) -> None:
    run, policy = _gate_files(tmp_path, [0.01], [True])
    gone = tmp_path / "gone.arrow"
    args = {
        "run": ["gate", str(gone), "--policy", str(policy)],
        "policy": ["gate", str(run), "--policy", str(gone)],
        "against": ["gate", str(run), "--policy", str(policy), "--against", str(gone)],
    }[missing]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "gone.arrow" in _flat(result.output)


def test_gate_on_fail_runs_the_command_and_reports_its_exit(tmp_path: Path) -> None:
    import json

    run, policy = _gate_files(tmp_path, [0.01], [False])
    marker = tmp_path / "rolled-back"
    out = tmp_path / "v.json"
    command = f'echo "$PIXGATE_VERDICT $(basename "$PIXGATE_VERDICT_JSON")" > {marker}; exit 3'
    result = runner.invoke(app, ["gate", str(run), "--policy", str(policy), "--json", str(out), "--on-fail", command])
    assert result.exit_code == 1
    assert marker.read_text().strip() == "fail v.json"
    assert "--on-fail command exited 3" in _flat(result.output)
    on_fail = json.loads(out.read_text())["on_fail"]
    assert {k: on_fail[k] for k in ("command", "exit_code", "timed_out")} == {
        "command": command,
        "exit_code": 3,
        "timed_out": False,
    }
    assert 0 <= on_fail["wall_s"] < on_fail["timeout_s"]


def test_gate_on_fail_does_not_run_on_pass(tmp_path: Path) -> None:
    run, policy = _gate_files(tmp_path, [0.01], [True])
    marker = tmp_path / "rolled-back"
    result = runner.invoke(app, ["gate", str(run), "--policy", str(policy), "--on-fail", f"touch {marker}"])
    assert result.exit_code == 0
    assert not marker.exists()


def test_gate_against_an_earlier_run(tmp_path: Path) -> None:
    import numpy as np

    from tests.conftest import write_run

    rng = np.random.default_rng(3)
    policy = tmp_path / "policy.toml"
    policy.write_text('[[rule]]\ncolumn = "gpu_ms"\nstat = "median_change"\nop = "<="\npass = 0.1\n')

    def run(name: str, scale: float) -> Path:
        times = scale * np.exp(rng.normal(0, 0.1, 80))
        rows = [
            {schema.PAIR_ID.name: f"p{i}", schema.STATUS.name: "ok", schema.GPU_MS.name: float(t)}
            for i, t in enumerate(times)
        ]
        return write_run(tmp_path / name, rows)

    old, same, slower = run("old.arrow", 10.0), run("same.arrow", 10.0), run("slow.arrow", 12.0)
    ok = runner.invoke(app, ["gate", str(same), "--policy", str(policy), "--against", str(old)])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["gate", str(slower), "--policy", str(policy), "--against", str(old)])
    assert bad.exit_code == 1, bad.output
    assert "+" in _flat(bad.output) and "p=" in _flat(bad.output)
    alone = runner.invoke(app, ["gate", str(slower), "--policy", str(policy)])
    assert alone.exit_code == 1 and "gate --against" in _flat(alone.output)


def test_gate_run_that_does_not_fit_exits_2(tmp_path: Path) -> None:
    import pyarrow as pa

    _, policy = _gate_files(tmp_path, [0.01], [True])
    bad = tmp_path / "bad.arrow"
    table = pa.table({schema.PAIR_ID.name: ["a"], schema.STATUS.name: ["ok"], schema.ALPHA_PARITY.name: ["yes"]})
    with pa.OSFile(str(bad), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    result = runner.invoke(app, ["gate", str(bad), "--policy", str(policy)])
    assert result.exit_code == 2
    assert "column 'alpha_parity' holds string" in _flat(result.output)


def test_typography_without_language_data_exits_2(make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path) -> None:
    base, cand = make_pairs(SIZES)
    out = tmp_path / "run.arrow"
    result = runner.invoke(app, ["score", str(base), str(cand), "-o", str(out), "--no-lpips", "--ocr-lang", "xx"])
    assert result.exit_code == 2
    text = _flat(result.output)
    assert "no Tesseract language data for 'xx'" in text and "apt-get install tesseract-ocr" in text
    assert "--no-typography" in text
    assert not out.exists()
    off = runner.invoke(app, ["score", str(base), str(cand), "-o", str(out), "--no-lpips", "--no-typography"])
    assert off.exit_code == 0, off.output
    assert "not checked (--no-typography)" in _flat(off.output)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--ocr-cache", "c", "--no-ocr-cache"], "--ocr-cache and --no-ocr-cache contradict each other"),
        (["--no-typography", "--ocr-lang", "deu"], "--ocr-lang: no effect with --no-typography"),
        (["--no-typography", "--ocr-workers", "2", "--no-ocr-cache"], "--no-ocr-cache, --ocr-workers: no effect"),
    ],
)
def test_contradicting_ocr_options_exit_2(
    options: list[str], message: str, make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    base, cand = make_pairs(SIZES[:1])
    out = tmp_path / "run.arrow"
    result = runner.invoke(app, ["score", str(base), str(cand), "-o", str(out), "--no-lpips", *options])
    assert result.exit_code == 2
    assert message in _flat(result.output)
    assert not out.exists()


def test_bad_manifest_exits_2_naming_the_line(make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path) -> None:
    base, cand = make_pairs(SIZES)
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text('{"id": "p000", "expected_text": ["SALE"]}\n{"id": "p001", "text_boxes": [[1, 2, 3]]}\n')
    out = tmp_path / "run.arrow"
    result = runner.invoke(
        app, ["score", str(base), str(cand), "-o", str(out), "--no-lpips", "--manifest", str(manifest)]
    )
    assert result.exit_code == 2
    assert "manifest.jsonl:2:" in _flat(result.output).replace(" ", "")


# --- one owner per output, kills at any moment, internal errors, a full disk ---

#: Kill delays after the start of `pixgate score`, seconds: across imports, pairing, the
#: journal's creation, model loading and the first batches on the 2-core CI machine.
STARTUP_KILLS_S = (0.2, 0.8, 1.5, 2.2, 3.0, 4.0)


def _few_pairs(tmp_path: Path, count: int = 24) -> tuple[Path, Path]:
    import numpy as np
    from PIL import Image

    from tests.conftest import poster

    base, cand = tmp_path / "b", tmp_path / "c"
    base.mkdir()
    cand.mkdir()
    for i in range(count):
        img = poster(96, 128, seed=i)
        Image.fromarray(img).save(base / f"p{i:03d}.png")
        Image.fromarray(np.roll(img, 1, axis=0)).save(cand / f"p{i:03d}.png")
    return base, cand


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_runs_on_one_output_at_once_one_wins_the_other_exits_2(alex_weights: Path, tmp_path: Path) -> None:
    """The issue's case: both passed the "journal exists" check and the second took the
    first's journal: 33 of 41 rows under the other run's metadata, both exit 1."""
    base, cand = _few_pairs(tmp_path, 41)
    out = tmp_path / "run.arrow"
    args = _cli("score", str(base), str(cand), "-o", str(out), "--weights", str(alex_weights), "--batch-size", "2")
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=500), p.communicate()[1]) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    winner = next(p for p, (code, _) in zip(procs, results, strict=True) if code == 0)
    assert f"is in use by another pixgate command (pid {winner.pid} " in _flat(loser)
    table = read_run(out)
    assert table.column(schema.PAIR_ID.name).to_pylist() == [f"p{i:03d}" for i in range(41)]
    assert not journal_path(out).exists() and not out.with_name("run.arrow.lock").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_kill_at_any_moment_of_start_up_leaves_a_run_that_resume_completes(
    alex_weights: Path, tmp_path: Path
) -> None:
    """Killed (with its workers) at moments across start-up, each run is completed by a
    plain --resume: no journal it cannot read, none to delete by hand."""
    base, cand = _few_pairs(tmp_path)
    for n, delay in enumerate(STARTUP_KILLS_S):
        out = tmp_path / f"run{n}.arrow"
        args = ["score", str(base), str(cand), "-o", str(out), "--weights", str(alex_weights), "-q"]
        proc = subprocess.Popen(_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # fmt: skip
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        resumed = subprocess.run(_cli(*args, "--resume"), capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, (delay, resumed.stderr)
        assert read_run(out).num_rows == 24
        assert not out.with_name(out.name + ".lock").exists()


_FAULT = """
import sys
import pixgate.scoring.scorer
real = pixgate.scoring.scorer.Scorer.submit
calls = 0
def faulty(self, items, ignored=None, **kw):
    global calls
    calls += 1
    if calls == 4:  # the warm-up, then two batches, then a bug
        raise ZeroDivisionError("a bug\\nover two lines")
    return real(self, items, ignored, **kw)
pixgate.scoring.scorer.Scorer.submit = faulty
sys.argv[0] = "pixgate"
from pixgate.cli import main
main()
"""


@pytest.mark.timeout(300)
def test_an_internal_error_exits_3_in_one_line_and_the_run_resumes(
    alex_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, cand = _few_pairs(tmp_path, 12)
    out = tmp_path / "run.arrow"
    crashes = tmp_path / "crashes"
    args = ["score", str(base), str(cand), "-o", str(out), "--weights", str(alex_weights), "--batch-size", "2", "-q"]
    env = {**os.environ, "PIXGATE_CRASH_DIR": str(crashes)}
    done = subprocess.run([sys.executable, "-c", _FAULT, *args], capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("internal error: ZeroDivisionError: a bug over two lines")
    (saved,) = crashes.glob("pixgate-crash-*.txt")
    assert str(saved) in lines[0] and "Traceback" in saved.read_text() and "faulty" in saved.read_text()
    kept, _ = read_journal(journal_path(out))
    assert 0 < kept.num_rows < 12
    resumed = subprocess.run(_cli(*args, "--resume"), capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    assert read_run(out).num_rows == 12


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["full-disk", "file-size-limit"])
def test_a_failed_write_is_one_line_naming_the_file_and_the_journal_resumes(
    how: str, mounted: Callable[[str], Path], tmp_path: Path
) -> None:
    """A real full disk (a small tmpfs, where mounting is allowed) and the file-size limit
    (`ulimit -f`, allowed everywhere) fail the journal's writes mid-run."""
    import resource
    import shutil

    base, cand = _few_pairs(tmp_path, 300)
    # Where mounting is not permitted the full-disk case skips; the file-size limit covers the same path.
    folder = mounted("size=64k") if how == "full-disk" else tmp_path / "out"
    out = folder / "run.arrow"

    def limit_size() -> None:
        if how == "file-size-limit":
            resource.setrlimit(resource.RLIMIT_FSIZE, (48 * 1024, 48 * 1024))
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write fails instead of killing

    args = ["score", str(base), str(cand), "--no-lpips", "-q"]
    done = subprocess.run(_cli(*args, "-o", str(out)), capture_output=True, text=True, timeout=240,
                          preexec_fn=limit_size)  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"error: cannot write {journal_path(out)}: "), lines
    assert lines[1].startswith("hint: ")
    assert {"full-disk": "No space left on device", "file-size-limit": "File too large"}[how] in lines[0]
    assert sorted(p.name for p in folder.iterdir()) == ["run.arrow.partial"]  # nothing torn, no lock left
    kept, _ = read_journal(journal_path(out))
    assert 0 < kept.num_rows < 300
    later = tmp_path / "later" / "run.arrow"  # room again: the journal completes elsewhere
    later.parent.mkdir()
    shutil.copy(journal_path(out), journal_path(later))
    resumed = subprocess.run(_cli(*args, "-o", str(later), "--resume"), capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    assert read_run(later).num_rows == 300


# --- malformed run files and verdicts: exit 2, one line ---


def _arrow(path: Path, columns: dict[str, object], metadata: dict[bytes, bytes] | None = None) -> Path:
    """An Arrow file of these columns; a name ending in spaces stands for the same name
    again (Arrow allows a column name twice, a dict does not)."""
    import pyarrow as pa

    table = pa.table(columns)
    table = table.rename_columns([name.rstrip(" ") for name in table.column_names])
    if metadata is not None:
        table = table.replace_schema_metadata(metadata)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return path


MALFORMED_RUNS = {
    "no status": ({"pair_id": ["a"], "lpips": [0.1]}, "no 'status' column"),
    "no key": ({"status": ["ok"], "lpips": [0.1]}, "not a pixgate run, capture or replay file"),
    "wrong type": ({"pair_id": ["a"], "status": ["ok"], "lpips": ["0.1"]}, "column 'lpips' holds string"),
    "null id": ({"pair_id": ["a", None], "status": ["ok", "ok"]}, "must be a string in every row (1 nulls)"),
    "duplicate id": ({"pair_id": ["a", "a"], "status": ["ok", "ok"]}, "pair_id values appear more than once: 'a'"),
    "unknown status": ({"pair_id": ["a"], "status": ["fine"]}, "'status' holds 'fine'"),
    "null status": ({"pair_id": ["a"], "status": [None]}, "'status' holds None"),
    "id of numbers": ({"pair_id": [1], "status": ["ok"]}, "column 'pair_id' holds int64"),
    "column twice": ({"pair_id": ["a"], "status": ["ok"], "lpips": [0.1], "lpips ": [0.2]}, "more than once: 'lpips'"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_RUNS))
def test_gate_and_report_refuse_malformed_runs_in_one_line(case: str, tmp_path: Path) -> None:
    columns, words = MALFORMED_RUNS[case]
    bad = _arrow(tmp_path / "bad.arrow", columns, {b"pixgate.started_at": b"\xff\xfe not UTF-8"})
    _, policy = _gate_files(tmp_path, [0.01], [True])
    for args in (
        ["gate", str(bad), "--policy", str(policy)],
        ["report", str(bad), "-o", str(tmp_path / "r.html")],
        ["gate", str(_gate_files(tmp_path, [0.01], [True])[0]), "--policy", str(policy), "--against", str(bad)],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output, result.exception)
        assert words in _flat(result.output)
        assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("verdict", "words"),
    [
        ("[1, 2]", "a JSON list, not an object"),
        ('{"verdict": "great"}', "'verdict' is 'great'"),
        ('{"verdict": "pass", "score": "100"}', "'score' is '100'"),
        ('{"verdict": "pass", "score": 1, "rules": [{"name": 3}]}', "'rules' must be a list"),
        ('{"verdict": "pass", "score": 1, "rules": {}}', "'rules' must be a list"),
        ("[" * 100_000, "nested too deeply"),
    ],
)
def test_report_and_approve_refuse_malformed_verdicts(verdict: str, words: str, tmp_path: Path) -> None:
    run, _ = _gate_files(tmp_path, [0.01], [True])
    path = tmp_path / "verdict.json"
    path.write_text(verdict)
    result = runner.invoke(app, ["report", str(run), "-o", str(tmp_path / "r.html"), "--verdict", str(path)])
    assert result.exit_code == 2 and words in _flat(result.output), result.output
    (tmp_path / "golden").mkdir()
    (tmp_path / "golden" / "manifest.jsonl").write_text("")
    approve = runner.invoke(app, ["approve", str(run), "--golden", str(tmp_path / "golden"), "--verdict", str(path)])
    assert approve.exit_code == 2 and words in _flat(approve.output), approve.output


def test_messages_are_never_read_as_markup(tmp_path: Path) -> None:
    folder = tmp_path / "[bold]x[/bold] [[rules]]"
    result = runner.invoke(app, ["score", str(folder), str(folder), "-o", str(tmp_path / "r.arrow"), "--no-lpips"])
    assert result.exit_code == 2
    assert "[bold]x[/bold] [[rules]] does not exist" in _flat(result.output)


def test_metadata_that_is_not_utf8_is_shown_not_fatal(tmp_path: Path) -> None:
    run, policy = _gate_files(tmp_path, [0.01], [True])
    import pyarrow as pa

    table = read_run(run)
    meta = {**(table.schema.metadata or {}), b"pixgate.started_at": b"\xff\xfe not UTF-8"}
    odd = _arrow(tmp_path / "odd.arrow", {c: table.column(c) for c in table.column_names}, meta)
    assert pa.ipc.open_file(str(odd)).schema.metadata[b"pixgate.started_at"] == b"\xff\xfe not UTF-8"
    assert runner.invoke(app, ["gate", str(odd), "--policy", str(policy)]).exit_code == 0
    assert runner.invoke(app, ["report", str(odd), "-o", str(tmp_path / "r.html")]).exit_code == 0


def test_every_option_a_score_error_names_is_a_flag_of_score() -> None:
    """Core errors name ScoreOptions fields; the CLI spells each as one of `score`'s
    options (or arguments), so no message points at a flag that does not exist."""
    import dataclasses

    import typer.main

    from pixgate.cli.common import flag as _flag
    from pixgate.scoring.options import ScoreOptions

    command = typer.main.get_command(app).commands["score"]  # type: ignore[attr-defined]
    given = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    given |= {param.metavar for param in command.params if param.param_type_name == "argument"}
    named = [f.name for f in dataclasses.fields(ScoreOptions) if f.name != "download_progress"]
    for field in [*named, "no_typography", "ray_address", "backend"]:
        assert _flag(field) in given, (field, _flag(field))
    assert _flag("backend_ray") == "--backend ray"


def test_gate_writes_junit_markdown_and_json_for_ci(golden_run: Path, tmp_path: Path) -> None:
    """The CI formats from one gate call; `-` is standard output, and then the tables go
    to standard error so the format stays parseable."""
    import json as json_module
    from xml.etree import ElementTree as ET

    policy = str(GOLDEN / "policy.toml")
    junit, markdown = tmp_path / "gate.xml", tmp_path / "summary.md"
    result = runner.invoke(
        app,
        [
            "gate",
            str(golden_run),
            "--policy",
            policy,
            "--json",
            "-",
            "--junit",
            str(junit),
            "--markdown",
            str(markdown),
        ],
    )
    assert result.exit_code == 1, result.output  # the golden candidates break the policy by design
    verdict = json_module.loads(result.stdout)
    assert verdict["verdict"] == "fail" and not (tmp_path / "-").exists()
    assert "pixgate gate: golden set" in result.stderr  # the tables, on standard error
    cases = ET.parse(junit).getroot().findall("testsuite/testcase")
    assert [c.get("name") for c in cases] == [r["name"] for r in verdict["rules"]]
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failed == {r["name"] for r in verdict["rules"] if r["result"] == "fail"}
    summary = markdown.read_text()
    assert summary.startswith("## pixgate gate: FAIL") and all(
        p["pair_id"].replace("_", "\\_") in summary
        for p in verdict["failing_pairs"][:3]  # escaped for Markdown
    )
    annotated = runner.invoke(app, ["gate", str(golden_run), "--policy", policy, "--annotations", "github"])
    errors = [line for line in annotated.stdout.splitlines() if line.startswith("::error ")]
    critical = [r for r in verdict["rules"] if r["critical"] and r["result"] == "fail"]
    assert len(errors) == len(critical) > 0


def test_gate_file_options_are_checked_before_judging(golden_run: Path, tmp_path: Path) -> None:
    policy = str(GOLDEN / "policy.toml")
    both = runner.invoke(app, ["gate", str(golden_run), "-p", policy, "--json", "-", "--junit", "-"])
    assert both.exit_code == 2 and "only one of them can write to standard output" in _flat(both.output)
    missing = runner.invoke(app, ["gate", str(golden_run), "-p", policy, "--junit", str(tmp_path / "no" / "x.xml")])
    assert missing.exit_code == 2 and "does not exist" in _flat(missing.output)
    assert not (tmp_path / "no").exists()
    bad = runner.invoke(app, ["gate", str(golden_run), "-p", policy, "--annotations", "jenkins"])
    assert bad.exit_code == 2 and "--annotations must be one of github; got 'jenkins'" in _flat(bad.output)


def test_tables_never_fold_a_pair_id_without_a_terminal(tmp_path: Path) -> None:
    """In a CI log (no terminal) the gate's table is as wide as it needs: a long pair id
    stays on one line, whole."""
    from pixgate.runs import schema

    long_id = "campaign-2026/very/long/path/to/a/promo/image/" + "x" * 120
    rows = [
        {schema.PAIR_ID.name: long_id, schema.STATUS.name: schema.STATUS_OK, schema.ALPHA_PARITY.name: False},
        {schema.PAIR_ID.name: "short", schema.STATUS.name: schema.STATUS_OK, schema.ALPHA_PARITY.name: True},
    ]
    run = write_run(tmp_path / "run.arrow", rows)
    result = runner.invoke(app, ["gate", str(run), "--policy", str(GOLDEN / "policy.toml")])
    assert result.exit_code == 1
    assert any(long_id in line for line in result.output.splitlines()), result.output


def test_score_without_a_terminal_logs_progress_lines(
    make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    """A CI log sees the pairs at once, then progress lines (here one per batch), then
    the last line, on standard error."""
    base, cand = make_pairs(SIZES)
    out = tmp_path / "run.arrow"
    args = ["score", str(base), str(cand), "-o", str(out), "--no-lpips", "--no-typography", "--progress-interval", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("pixgate score: ")]
    assert lines[0] == f"pixgate score: {len(SIZES)} pairs"
    assert lines[-1].startswith(f"pixgate score: {len(SIZES)}/{len(SIZES)} pairs (100 %), ")
    assert len(lines) >= 3 and all("pairs/s" in line for line in lines[1:])
    quiet = runner.invoke(app, [*args[:-2], "--overwrite", "-q"])
    assert quiet.exit_code == 0 and "pixgate score: " not in quiet.stderr
