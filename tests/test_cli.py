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

from engine import schema
from engine.arrow_io import journal_path, read_journal, read_run
from engine.cli import app

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
        (["--max-pixels", "0"], "got 0; use a whole number of at least 1"),
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
    assert "--device cuda" in _flat(result.output) and "--device cpu" in _flat(result.output)


def test_weights_command(alex_weights: Path) -> None:
    missing = runner.invoke(app, ["weights"])
    assert missing.exit_code == 2
    assert "torchvision cache" in missing.output
    found = runner.invoke(app, ["weights", "--weights", str(alex_weights)])
    assert found.exit_code == 0, found.output
    from engine.weights import sha256_file

    assert f"sha256: {sha256_file(alex_weights)}" in found.output


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine", *args]


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
    assert json.loads(out.read_text())["on_fail"] == {"command": command, "exit_code": 3, "timed_out": False}


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


def test_manifest_without_tesseract_exits_2(
    make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, cand = make_pairs(SIZES)
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text('{"id": "p000", "expected_text": ["SALE"]}\n')
    monkeypatch.setenv("PIXGATE_TESSERACT", str(tmp_path / "nowhere" / "tesseract"))
    out = tmp_path / "run.arrow"
    result = runner.invoke(
        app, ["score", str(base), str(cand), "-o", str(out), "--no-lpips", "--manifest", str(manifest)]
    )
    assert result.exit_code == 2
    assert "need Tesseract" in _flat(result.output) and "apt-get install tesseract-ocr" in _flat(result.output)
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
