"""The shipped golden set: reproducible, and its flags raised by the columns that score fills."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import schema
from engine.score import ScoreOptions, run_score

GOLDEN = Path(__file__).resolve().parents[1] / "golden"

# Manifest flags and the check that proves each, on one row of the run.
CHECKS = {
    "identical": lambda r: r[schema.LPIPS.name] == 0.0 and r[schema.SIZE_MATCH.name] and r[schema.ALPHA_PARITY.name],
    "alpha_parity": lambda r: r[schema.ALPHA_PARITY.name] is False,
    "size_match": lambda r: r[schema.SIZE_MATCH.name] is False,
    "aspect_ratio_delta_min": lambda r: r[schema.ASPECT_RATIO_DELTA.name] >= 0.2,
    "format_change": lambda r: r[schema.BASELINE_FORMAT.name] != r[schema.CANDIDATE_FORMAT.name],
}
# Flags whose columns the alpha, edge and colour kernels fill; checked once they exist.
KERNEL_FLAGS = {"icc_match", "chroma_shift_positive", "edge_loss", "text_unreadable"}


def _manifest() -> list[dict[str, object]]:
    return [json.loads(line) for line in (GOLDEN / "manifest.jsonl").read_text().splitlines() if line.strip()]


def test_generator_is_deterministic(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    first, second = tmp_path / "a", tmp_path / "b"
    module.build(first)
    module.build(second)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) == 2 * len(_manifest()) + 1
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


def test_golden_set_is_small() -> None:
    total = sum(p.stat().st_size for p in GOLDEN.rglob("*") if p.is_file())
    assert total < 5 * 1024 * 1024


def test_every_flag_is_checked_or_awaits_its_kernel() -> None:
    flags = {flag for entry in _manifest() for flag in entry["expected"]}  # type: ignore[attr-defined]
    assert flags <= set(CHECKS) | KERNEL_FLAGS


@pytest.fixture(scope="module")
def golden_rows(alex_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    out = tmp_path_factory.mktemp("golden") / "run.arrow"
    opts = ScoreOptions(GOLDEN / "baseline", GOLDEN / "candidate", out, device="cpu", weights=alex_weights)
    result = run_score(opts)
    assert result.all_ok
    return {r[schema.PAIR_ID.name]: r for r in result.table.to_pylist()}


@pytest.mark.parametrize("entry", _manifest(), ids=lambda e: str(e["id"]))
def test_expected_flags(entry: dict[str, object], golden_rows: dict[str, dict[str, object]]) -> None:
    row = golden_rows[str(entry["id"])]
    for flag in entry["expected"]:  # type: ignore[attr-defined]
        if flag in CHECKS:
            assert CHECKS[flag](row), (entry["id"], flag)
    if "identical" in entry["expected"]:  # type: ignore[operator]
        assert row[schema.LPIPS.name] == 0.0
    elif "icc" not in entry["tags"]:  # type: ignore[operator]
        # Every pixel-level change moves LPIPS; an ICC swap keeps the stored pixels.
        assert row[schema.LPIPS.name] > 0.0, entry["id"]
