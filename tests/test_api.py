"""The public Python API: score two folders, read the run, judge it, act on the verdict."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

import pixgate
from pixgate.runs import schema
from tests.conftest import GOLDEN, ROOT

POLICY = GOLDEN / "policy.toml"


def test_score_read_judge_and_write_a_verdict(
    make_pairs: Callable[..., tuple[Path, Path]], alex_weights: Path, tmp_path: Path
) -> None:
    base, cand = make_pairs([(64, 64), (64, 64), (48, 80)])
    out = tmp_path / "run.arrow"
    result = pixgate.score(base, str(cand), str(out), device="cpu", weights=alex_weights, typography=False)
    assert isinstance(result, pixgate.ScoreResult) and result.path == out
    assert isinstance(result.table, pa.Table) and result.table.num_rows == 3 and result.all_ok
    # The measures' planes, kept from batch to batch, are not held past the run.
    from pixgate.scoring import metrics

    assert getattr(metrics._BUFFERS, "planes", None) is None
    # The run on disk is the table returned, metadata included.
    read = pixgate.read_run(out)
    assert read.equals(result.table) and read.schema.metadata == result.table.schema.metadata
    assert pixgate.run_metadata(read)[schema.META_LPIPS_NET] == "alex"
    # Judged as a table or as a file, with a policy object or its file: the same verdict.
    policy = pixgate.load_policy(POLICY)
    by_table = pixgate.judge(result.table, policy)
    by_file = pixgate.judge(out, POLICY)
    assert isinstance(by_table, pixgate.Verdict)
    assert (by_table.verdict, by_table.score) == (by_file.verdict, by_file.score)
    assert by_file.context["run"] == str(out) and by_table.context["run"] is None
    assert by_table.blocks() == (by_table.verdict == "fail")
    assert by_table.blocks(strict=True) == (by_table.verdict != "pass")
    # Acting on it writes the verdict file the CLI writes, and reads back.
    decision = pixgate.decide(by_file, json_path=tmp_path / "verdict.json")
    assert decision.blocked == by_file.blocks()
    back = pixgate.read_verdict(tmp_path / "verdict.json")
    assert back == json.loads(json.dumps(by_file.to_dict()))
    lines = {line.label: line.value for line in pixgate.summarize(result).lines}
    assert lines["pairs"] == "3" and lines["  ok"] == "3"


def test_usage_errors_and_bad_files_are_the_documented_exceptions(tmp_path: Path) -> None:
    with pytest.raises(pixgate.ScoreConfigError, match=r"^baseline: "):
        pixgate.score(tmp_path / "nowhere", tmp_path, tmp_path / "run.arrow")
    with pytest.raises(TypeError, match="no_such_option"):
        pixgate.score(tmp_path, tmp_path, tmp_path / "run.arrow", no_such_option=True)
    junk = tmp_path / "junk.arrow"
    junk.write_bytes(b"not arrow")
    with pytest.raises(pixgate.RunFileError, match="not an Arrow IPC file"):
        pixgate.read_run(junk)
    with pytest.raises(pixgate.RunFileError):
        pixgate.judge(junk, POLICY)
    with pytest.raises(pixgate.PolicyError):
        pixgate.judge(junk, junk)
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = pixgate.no_such_name  # type: ignore[attr-defined]


def test_every_name_in_all_resolves() -> None:
    for name in pixgate.__all__:
        assert getattr(pixgate, name) is not None, name
    assert set(pixgate.__all__) <= set(dir(pixgate))


def test_judging_a_run_never_imports_torch(golden_run: Path, tmp_path: Path) -> None:
    """Any CI box can judge: the API's judging path loads neither torch nor numba."""
    code = (
        "import sys, pixgate\n"
        "assert 'torch' not in sys.modules, 'import pixgate loaded torch'\n"
        f"verdict = pixgate.judge(pixgate.read_run({str(golden_run)!r}), pixgate.load_policy({str(POLICY)!r}))\n"
        f"pixgate.decide(verdict, json_path=__import__('pathlib').Path({str(tmp_path / 'v.json')!r}))\n"
        "heavy = sorted(m for m in ('torch', 'numba', 'torchvision') if m in sys.modules)\n"
        "print(verdict.verdict, heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    verdict, heavy = done.stdout.split(" ", 1)
    assert verdict in schema.VERDICTS and heavy.strip() == "[]", done.stdout


def test_the_readme_example_runs(alex_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's Python API example, run as written (from a folder holding the golden
    set), with seeded weights in place of the downloaded ones."""
    import re

    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    (tmp_path / "golden").symlink_to(GOLDEN)
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIXGATE_WEIGHTS", str(alex_weights))
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md (Python API)", "exec"), namespace)
    frame = namespace["frame"]
    assert str(frame["text_pass"].dtype) == "bool[pyarrow]"  # type: ignore[index]
    verdict = pixgate.read_verdict(tmp_path / "out" / "verdict.json")
    assert verdict["verdict"] == namespace["verdict"].verdict  # type: ignore[attr-defined]
    assert pixgate.read_run(tmp_path / "out" / "golden.arrow").num_rows == len(list((GOLDEN / "baseline").iterdir()))
