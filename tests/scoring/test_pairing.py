"""Pairing by relative path without extension."""

from __future__ import annotations

import os
from pathlib import Path

from pixgate.scoring.pairing import pair_directories
from tests.conftest import remove_deep_tree


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def test_pairs_by_relative_path_ignoring_extension(tmp_path: Path) -> None:
    base, cand = tmp_path / "b", tmp_path / "c"
    _touch(base, "a/b.png", "top.PNG", "only_base.webp", "deep/x/y.jpeg")
    _touch(cand, "a/b.jpg", "top.png", "only_cand.png", "deep/x/y.webp", "README.txt")
    result = pair_directories(base, cand)
    by_id = {p.pair_id: p for p in result.pairs}
    assert list(by_id) == sorted(by_id)
    assert set(by_id) == {"a/b", "top", "only_base", "only_cand", "deep/x/y"}
    assert by_id["a/b"].scorable and by_id["a/b"].candidate == (cand / "a/b.jpg").resolve()
    assert by_id["only_base"].candidate is None and not by_id["only_base"].scorable
    assert by_id["only_cand"].baseline is None
    assert [p.name for p in result.ignored] == ["README.txt"]


def test_two_files_for_one_id_are_reported_not_guessed(tmp_path: Path) -> None:
    base, cand = tmp_path / "b", tmp_path / "c"
    _touch(base, "x.png", "x.jpg")
    _touch(cand, "x.png")
    (pair,) = pair_directories(base, cand).pairs
    assert not pair.scorable
    assert pair.problem is not None and "ambiguous" in pair.problem and "x.jpg" in pair.problem


def test_hostile_names_and_links_are_error_rows_not_crashes(tmp_path: Path) -> None:
    """Symlink loops, links out of the folder and names that are not UTF-8 (issue cases):
    every one is a pair with its problem named, never an exception or a silent skip."""
    base, cand = tmp_path / "b", tmp_path / "c"
    _touch(base, "ok.png", "sub/inner.png")
    _touch(cand, "ok.png", "sub/inner.png")
    (base / "loop1.png").symlink_to(base / "loop2.png")
    (base / "loop2.png").symlink_to(base / "loop1.png")
    (cand / "loop1.png").symlink_to("/dev/zero")
    (base / "inside.png").symlink_to(base / "ok.png")  # a link within the folder is fine
    _touch(cand, "inside.png")
    (base / "linked_folder").symlink_to(base / "sub")
    latin1 = os.fsdecode(b"caf\xe9")
    _touch(base, f"{latin1}.png")
    _touch(cand, f"{latin1}.png")
    _touch(base, "lit\\xff.png")  # a literal backslash: must not pair with the raw byte
    _touch(cand, os.fsdecode(b"lit\xff.png"))
    result = pair_directories(base, cand)
    by_id = {p.pair_id: p for p in result.pairs}
    assert by_id["loop1"].problem is not None and "baseline loop1.png: a symlink loop" in by_id["loop1"].problem
    assert "candidate loop1.png: a symlink that leads outside the candidate folder (to /dev/zero)" in str(
        by_id["loop1"].problem
    )
    assert "loop2" in by_id and not by_id["loop2"].scorable
    assert by_id["inside"].scorable and by_id["ok"].scorable and by_id["sub/inner"].scorable
    assert by_id["caf\\xe9"].scorable  # the escaped, lossless form (pixgate.safe_io.name_id)
    assert by_id["lit\\\\xff"].candidate is None and by_id["lit\\xff"].baseline is None
    assert base / "linked_folder" in result.ignored  # not followed, but reported
    for pair_id in by_id:
        pair_id.encode("utf-8")  # every id can be written to Arrow


def test_folders_nested_deeper_than_the_recursion_limit_are_paired(tmp_path: Path) -> None:
    import sys

    base, cand = tmp_path / "b", tmp_path / "c"
    rel = Path(*["d"] * (sys.getrecursionlimit() + 200))
    for side in (base, cand):
        folder = side
        for part in rel.parts:  # one level at a time: os.makedirs recurses
            folder = folder / part
            folder.mkdir(parents=folder.parent == side)
        (folder / "x.png").write_bytes(b"")
    try:
        (pair,) = pair_directories(base, cand).pairs
        assert pair.pair_id == f"{rel.as_posix()}/x" and pair.scorable
    finally:
        for side in (base, cand):
            remove_deep_tree(side)
