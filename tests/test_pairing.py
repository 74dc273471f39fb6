"""Pairing by relative path without extension."""

from __future__ import annotations

from pathlib import Path

from engine.pairing import pair_directories


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
