"""The Makefile's first commands on a machine that lacks the system packages.

A machine without Tesseract's data is stood in for by `TESSDATA_PREFIX` naming an empty
folder (pixgate then looks nowhere else), and one where nothing can be installed by an
`APT_GET` that does not exist.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, _closed_port

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")

#: `make demo` scores and judges the golden set, then runs a canary between two demo
#: engines: a few minutes on a 2-core machine at most, never an endless wait.
DEMO_TIMEOUT_S = 900


def _make(target: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    empty = tmp_path / "no-tessdata"
    empty.mkdir(exist_ok=True)
    env = {**os.environ, "TESSDATA_PREFIX": str(empty)}
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), target, "APT_GET=pixgate-no-such-apt-get", *extra],
        capture_output=True, text=True, env=env, timeout=DEMO_TIMEOUT_S, check=False,
    )  # fmt: skip


def test_system_deps_that_cannot_be_installed_fail_in_one_line(tmp_path: Path) -> None:
    done = _make("system-deps", tmp_path)
    assert done.returncode != 0, done.stdout + done.stderr
    said = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(said) == 1 and said[0].startswith("pixgate: cannot install tesseract-ocr"), done.stdout
    assert "dnf install" in said[0] and "brew install" in said[0]  # what to do elsewhere


@pytest.mark.slow
def test_demo_without_tesseract_goes_on_without_typography_and_ends_with_the_canary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ports = [f"OLD_PORT={_closed_port()}", f"NEW_PORT={_closed_port()}"]
    done = _make("demo", tmp_path, f"OUT={out}", *ports)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    notices = [line for line in said.splitlines() if "going on with --no-typography" in line]
    assert len(notices) == 1 and notices[0].startswith("pixgate: cannot install"), said
    assert "verdict: FAIL" in said  # the golden set's verdict, failing by design
    assert "canary exit code 1" in said  # the canary ran to its verdict against the degraded engine
    for name in ("golden.arrow", "golden-verdict.json", "golden-report.html", "canary/report.html"):
        assert (out / name).is_file(), name
    from pixgate.runs import schema
    from pixgate.runs.files import read_run

    run = read_run(out / "golden.arrow")
    assert set(run.column(schema.TEXT_STATUS.name).to_pylist()) == {schema.TEXT_NOT_CHECKED}
