"""Manifests: the golden one parses; every mistake names its line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pixgate.scoring.manifest import ManifestError, load_manifest
from tests.conftest import GOLDEN

GOOD = {"id": "a", "expected_text": ["SALE"], "text_boxes": [[0, 0, 10, 5]]}


def test_golden_manifest_parses() -> None:
    manifest = load_manifest(GOLDEN / "manifest.jsonl")
    stems = {p.stem for p in (GOLDEN / "baseline").iterdir()}
    assert set(manifest.entries) == stems
    entry = manifest.entries["small_text_mush"]
    assert entry.expected_text[0] == "MEGA DEAL"
    assert entry.text_boxes is not None and all(b[2] > b[0] and b[3] > b[1] for b in entry.text_boxes)
    assert len(manifest.sha256) == 64


@pytest.mark.parametrize(
    ("bad", "phrase"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"expected_text": ["x"]}), "'id' must be"),
        (json.dumps({"id": "b", "expected_text": "SALE"}), "'expected_text' must be a list"),
        (json.dumps({"id": "b", "expected_text": ["ok", ""]}), "'expected_text' must be a list"),
        (json.dumps({"id": "b", "text_boxes": [[0, 0, 10]]}), "is not [x0, y0, x1, y1]"),
        (json.dumps({"id": "b", "text_boxes": [[5, 0, 5, 9]]}), "x0 < x1"),
        (json.dumps({"id": "b", "text_boxes": [[0, 0, 1.5, 9]]}), "whole pixels"),
        (json.dumps({"id": "b", "text_boxes": []}), "non-empty list"),
        (json.dumps(GOOD), "id 'a' appears twice (first on line 1)"),
        # Hostile input: parsed no further than Python can, and named, not a crash.
        ('{"id": "b", "tags": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ('{"id": "b", "seed": ' + "7" * 5000 + "}", "cannot be parsed"),
        (json.dumps({"id": "b", "ignore": "../outside.png"}), "a mask must lie in the manifest's folder"),
        (json.dumps({"id": "b", "ignore": "/etc/passwd"}), "absolute path"),
        (json.dumps({"id": "b", "ignore": "masks/out/m.png"}), "leads outside"),
        # Bounded OCR work per pair: 2,000 thin boxes took 4.8 GB and 81 s.
        (json.dumps({"id": "b", "expected_text": ["HI"], "text_boxes": [[0, 0, 2000, 1]] * 2000}), "at most 200"),
        (json.dumps({"id": "b", "ignore": [[0, 0, 9, 9]] * 201}), "at most 200"),
        (json.dumps({"id": "b", "expected_text": ["x" * 2001]}), "2000 characters"),
    ],
)
@pytest.mark.timeout(30)
def test_bad_line_names_its_number(bad: str, phrase: str, tmp_path: Path) -> None:
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "out").symlink_to(tmp_path.parent)
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + bad + "\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert str(info.value).startswith(f"{path}:3: ")
    assert phrase in str(info.value)


def test_other_tools_keys_are_ignored_and_text_is_optional(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"id": "x/y", "prompt": "p", "seed": 3, "expected": {"identical": True}}) + "\n")
    entry = load_manifest(path).entries["x/y"]
    assert entry.expected_text == () and entry.text_boxes is None and entry.line == 1


def test_unreadable_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path / "none.jsonl")


@pytest.mark.timeout(30)
def test_a_manifest_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "m.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(ManifestError, match="FIFO"):
        load_manifest(fifo)


def test_a_mask_inside_the_manifest_folder_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"id": "b", "ignore": "masks/b.png"}) + "\n")
    assert load_manifest(path).entries["b"].ignore_mask == (tmp_path / "masks" / "b.png").resolve()


@pytest.mark.timeout(240)
def test_score_with_a_deeply_nested_manifest_is_one_error_line(
    make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    """`pixgate score --manifest` with a line nested 100,000 deep: exit 2 and one error
    line naming the file and the line, never a RecursionError or a traceback."""
    import subprocess
    import sys

    base, cand = make_pairs([(20, 24)])
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + '{"id": "b", "tags": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    out = tmp_path / "run.arrow"
    args = ["score", str(base), str(cand), "-o", str(out), "--manifest", str(path), "--no-lpips", "-q"]
    done = subprocess.run([sys.executable, "-m", "pixgate", *args], capture_output=True, text=True, timeout=200)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 2 and lines[1].startswith("hint: "), done.stderr
    assert lines[0].startswith(f"error: {path}:2: ") and "nested too deeply" in lines[0], lines[0]
    assert "Recursion" not in done.stderr and not out.exists()
