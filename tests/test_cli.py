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
