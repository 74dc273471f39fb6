"""Output paths: a device, FIFO, socket or folder where a command writes is refused in one
line (exit 2) before anything is written, and so is an output that is one of the inputs.

The targets are made in the test's folder (a FIFO, a socket, a folder, a symlink to
`/dev/null`, and a null device node where the test may make one), so that a regression
destroys nothing of the machine's: a writer that renamed over the link would replace the
link, which the test sees.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pixgate.runs.export import export_run
from pixgate.safe_io import OutputError, atomic_write, check_output
from tests.conftest import GOLDEN, write_run

POLICY = GOLDEN / "policy.toml"


def _fifo(path: Path) -> Iterator[None]:
    os.mkfifo(path)
    yield


def _socket(path: Path) -> Iterator[None]:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        yield


def _folder(path: Path) -> Iterator[None]:
    path.mkdir()
    yield


def _link_to_dev_null(path: Path) -> Iterator[None]:
    path.symlink_to("/dev/null")
    yield


def _null_device(path: Path) -> Iterator[None]:
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    yield


#: What may lie where an output goes, and how it was made; each must be there, as it was, after the refusal.
TARGETS: dict[str, Callable[[Path], Iterator[None]]] = {
    "fifo": _fifo,
    "socket": _socket,
    "folder": _folder,
    "link to /dev/null": _link_to_dev_null,
    "device node": _null_device,
}


def _kind(path: Path) -> tuple[bool, int]:
    """Whether `path` is a link, and the type bits of what it is (not what it points to)."""
    mode = os.lstat(path).st_mode
    return stat.S_ISLNK(mode), stat.S_IFMT(mode)


@pytest.fixture(params=sorted(TARGETS))
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """An output path in a folder of its own, with something that is not a regular file there."""
    folder = tmp_path / "out"
    folder.mkdir()
    path = folder / "target.out"
    made = TARGETS[request.param](path)
    next(made)
    before = _kind(path)
    yield path
    assert _kind(path) == before, "the thing at the output path was replaced"
    assert sorted(p.name for p in folder.iterdir()) == ["target.out"], "a side file was written beside it"
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def _run(tmp_path: Path) -> Path:
    rows = [{"pair_id": f"p{i}", "status": "ok", "lpips": 0.01 * i} for i in range(3)]
    return write_run(tmp_path / "run.arrow", rows)


def _pixgate(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pixgate", *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def _one_error_line(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], result.stdout + result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("option", ["--json", "--junit", "--markdown"])
def test_gate_refuses_an_output_that_is_not_a_regular_file(target: Path, tmp_path: Path, option: str) -> None:
    result = _pixgate("gate", _run(tmp_path), "--policy", POLICY, option, target)
    _one_error_line(result, str(target))


def test_report_refuses_an_output_that_is_not_a_regular_file(target: Path, tmp_path: Path) -> None:
    result = _pixgate("report", _run(tmp_path), "-o", target)
    _one_error_line(result, str(target))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_refuses_an_output_that_is_not_a_regular_file(target: Path, tmp_path: Path, fmt: str) -> None:
    result = _pixgate("export", _run(tmp_path), "-o", target, "--format", fmt)
    _one_error_line(result, str(target))


def test_the_core_refuses_it_too(target: Path, tmp_path: Path) -> None:
    """The Python API and every writer behind `atomic_write` refuse as the commands do."""
    with pytest.raises(OutputError, match="not a regular file"):
        export_run(_run(tmp_path), target, "parquet")
    with pytest.raises(OutputError, match="not a regular file"):
        atomic_write(target, b"{}")


def test_a_csv_whose_metadata_file_is_a_fifo_writes_neither(tmp_path: Path) -> None:
    run = _run(tmp_path)
    out = tmp_path / "x.csv"
    os.mkfifo(tmp_path / "x.csv.metadata.json")
    with pytest.raises(OutputError, match="FIFO"):
        export_run(run, out)
    assert not out.exists() and not (tmp_path / "x.csv.tmp").exists()


def test_standard_output_stays_dash(tmp_path: Path) -> None:
    result = _pixgate("gate", _run(tmp_path), "--policy", POLICY, "--json", "-", "-q")
    assert result.returncode in (0, 1), result.stderr
    assert result.stdout.lstrip().startswith("{")


def test_a_regular_file_or_a_link_to_one_is_replaced(tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(old)
    check_output(link)
    atomic_write(link, b"new")
    assert link.read_bytes() == b"new" and not link.is_symlink()
    assert old.read_text() == "old"  # the link itself was replaced, never written through
    check_output(old)
    atomic_write(old, b"new")
    assert old.read_bytes() == b"new"


@pytest.mark.parametrize("spelling", ["same path", "another spelling", "hard link", "link to it"])
def test_export_refuses_an_output_that_is_its_run(tmp_path: Path, spelling: str) -> None:
    run = _run(tmp_path)
    original = run.read_bytes()
    out = {
        "same path": run,
        "another spelling": tmp_path / "." / "run.arrow",
        "hard link": tmp_path / "hard.parquet",
        "link to it": tmp_path / "soft.parquet",
    }[spelling]
    if spelling == "hard link":
        os.link(run, out)
    elif spelling == "link to it":
        out.symlink_to(run)
    result = _pixgate("export", run, "-o", out, "--format", "parquet")
    _one_error_line(result, "it is the input")
    assert run.read_bytes() == original
    with pytest.raises(OutputError, match="it is the input"):
        export_run(run, out, "parquet")
    assert run.read_bytes() == original
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("command", ["gate", "report"])
def test_an_output_that_is_an_input_is_refused(tmp_path: Path, command: str) -> None:
    run = _run(tmp_path)
    original = run.read_bytes()
    if command == "gate":
        result = _pixgate("gate", run, "--policy", POLICY, "--markdown", run)
    else:
        result = _pixgate("report", run, "-o", run)
    _one_error_line(result, "it is the input")
    assert run.read_bytes() == original


def test_a_read_only_folder_is_named_as_such_not_as_a_full_disk(tmp_path: Path, mounted: Callable[[str], Path]) -> None:
    folder = mounted("ro,size=64k")
    result = _pixgate("gate", _run(tmp_path), "--policy", POLICY, "--json", folder / "verdict.json")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    error = next(line for line in output.splitlines() if line.startswith("error:"))
    hint = next(line for line in output.splitlines() if line.startswith("hint:"))
    assert f"cannot write {folder / 'verdict.json'}" in error and "Read-only file system" in error
    assert "read-only" in hint and "free space" not in hint


def test_a_full_disk_names_the_file_and_leaves_nothing_behind(tmp_path: Path, mounted: Callable[[str], Path]) -> None:
    folder = mounted("size=16k")
    rows = [{"pair_id": f"p{i:05d}", "status": "ok", "lpips": 0.01} for i in range(3000)]
    run = write_run(tmp_path / "run.arrow", rows)
    result = _pixgate("export", run, "-o", folder / "x.csv")
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output, output
    error = next(line for line in output.splitlines() if line.startswith("error:"))
    assert f"cannot write {folder / 'x.csv'}" in error and "No space left on device" in error
    assert "free space" in next(line for line in output.splitlines() if line.startswith("hint:"))
    assert list(folder.iterdir()) == []


def test_a_file_named_like_a_temporary_one_is_never_removed(tmp_path: Path) -> None:
    """The temporary file of a write is a new name of its own: an input called
    `OUTPUT.tmp` (or any name beside the output) is left alone."""
    run = _run(tmp_path)
    keep = tmp_path / "out.parquet.tmp"
    keep.write_bytes(run.read_bytes())
    export_run(keep, tmp_path / "out.parquet", "parquet")
    assert keep.read_bytes() == run.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet", "out.parquet.tmp", "run.arrow"]


def test_the_python_api_refuses_an_output_that_is_an_input(tmp_path: Path) -> None:
    """`build_report` and `decide` check their outputs in the core, as the commands do."""
    from pixgate.judging.decision import decide, judge_run
    from pixgate.report.html import build_report

    run = _run(tmp_path)
    original = run.read_bytes()
    with pytest.raises(OutputError, match="it is the input"):
        build_report(run, run)
    verdict = judge_run(run, POLICY)
    for target in (run, POLICY):
        with pytest.raises(OutputError, match="it is the input"):
            decide(verdict, json_path=target)
    assert run.read_bytes() == original


def test_two_gate_outputs_may_not_be_one_file(tmp_path: Path) -> None:
    out = tmp_path / "o.json"
    result = _pixgate("gate", _run(tmp_path), "--policy", POLICY, "--json", out, "--junit", tmp_path / "." / "o.json")
    _one_error_line(result, "--json and --junit name the same file")
    assert not out.exists()
