"""The shipped golden set: reproducible, and its flags raised by the columns that score fills."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pixgate.judging.gate import FAIL, PASS, Verdict, judge
from pixgate.judging.policy import load_policy
from pixgate.runs import schema
from pixgate.runs.files import read_run
from tests.conftest import GOLDEN

# Bounds that make a flag, each with its reason. A gate policy sets its own bounds; these
# only prove that each failure mode moves its column far from the identical pairs' value.
CHROMA_SHIFT_FLAG = 2.0  # mean C* change of ~2 is a visible saturation change
EDGE_LOSS_FLAG = 0.5  # a blur that halves the baseline's edge energy
TEXT_MUSH_FLAG = 0.85  # small print is a minority of a poster's edges; losing it costs >15 %
# Registration reads a whole-pixel move to within a few hundredths of a pixel; a quarter
# of one still tells the set's move from any other whole-pixel move.
SHIFT_FLAG_PX = 0.25

# Manifest flags and the check that proves each, given the row and the flag's value.
CHECKS = {
    "identical": lambda r, v: (
        v
        == (
            r[schema.LPIPS.name] == 0.0
            and r[schema.DELTA_E_MEAN.name] == 0.0
            and r[schema.EDGE_PRESERVATION.name] == 1.0
            and r[schema.SIZE_MATCH.name]
            and r[schema.ALPHA_PARITY.name]
            and r[schema.ICC_MATCH.name]
        )
    ),
    "alpha_parity": lambda r, v: r[schema.ALPHA_PARITY.name] is v,
    "icc_match": lambda r, v: r[schema.ICC_MATCH.name] is v,
    "chroma_shift_positive": lambda r, v: (r[schema.CHROMA_SHIFT.name] > CHROMA_SHIFT_FLAG) is v,
    "edge_loss": lambda r, v: (r[schema.EDGE_PRESERVATION.name] < EDGE_LOSS_FLAG) is v,
    "text_unreadable": lambda r, v: (r[schema.EDGE_PRESERVATION.name] < TEXT_MUSH_FLAG) is v,
    "size_match": lambda r, v: r[schema.SIZE_MATCH.name] is v,
    "aspect_ratio_delta_min": lambda r, v: r[schema.ASPECT_RATIO_DELTA.name] >= v,
    "format_change": lambda r, v: (r[schema.BASELINE_FORMAT.name] != r[schema.CANDIDATE_FORMAT.name]) is v,
    "text_pass": lambda r, v: r[schema.TEXT_PASS.name] is v,
    "shift_px": lambda r, v: (
        abs(r[schema.SHIFT_X.name] - v[0]) <= SHIFT_FLAG_PX and abs(r[schema.SHIFT_Y.name] - v[1]) <= SHIFT_FLAG_PX
    ),
}
# Manifest flags for the shipped policy's verdict on a pair judged alone: `passes` (no rule
# names it) and `fails_by` (each rule listed names it).
VERDICT_FLAGS = ("passes", "fails_by")


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
    assert len(files) == 2 * len(_manifest()) + 2  # images, manifest, prompts
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


def test_golden_set_is_small() -> None:
    total = sum(p.stat().st_size for p in GOLDEN.rglob("*") if p.is_file())
    assert total < 5 * 1024 * 1024


def test_every_flag_has_a_check() -> None:
    flags = {flag for entry in _manifest() for flag in entry["expected"]}  # type: ignore[attr-defined]
    assert flags <= set(CHECKS) | set(VERDICT_FLAGS)


@pytest.fixture(scope="module")
def golden_table(golden_run: Path) -> pa.Table:
    return read_run(golden_run)


@pytest.fixture(scope="module")
def golden_rows(golden_table: pa.Table) -> dict[str, dict[str, object]]:
    return {r[schema.PAIR_ID.name]: r for r in golden_table.to_pylist()}


@pytest.mark.parametrize("entry", _manifest(), ids=lambda e: str(e["id"]))
def test_expected_flags(entry: dict[str, object], golden_rows: dict[str, dict[str, object]]) -> None:
    row = golden_rows[str(entry["id"])]
    expected: dict[str, object] = entry["expected"]  # type: ignore[assignment]
    for flag, value in expected.items():
        if flag not in VERDICT_FLAGS:
            assert CHECKS[flag](row, value), (entry["id"], flag, value, row)
    if "identical" not in expected and not expected.get("passes"):
        # Every failure mode changes what a viewer sees (the ICC swap too, once colour
        # managed), so LPIPS moves, and no failure looks like an identical pair.
        assert row[schema.LPIPS.name] > 0.0, entry["id"]
        assert CHECKS["identical"](row, False), entry["id"]


def _judged_alone(table: pa.Table, pair_id: str) -> Verdict:
    """The shipped policy's verdict on one pair of the scored set, as if it were the batch."""
    one = table.filter(pc.equal(table.column(schema.PAIR_ID.name), pair_id))
    assert one.num_rows == 1, pair_id
    return judge(load_policy(GOLDEN / "policy.toml"), one)


@pytest.mark.parametrize(
    "entry",
    [e for e in _manifest() if set(VERDICT_FLAGS) & set(e["expected"])],  # type: ignore[arg-type]
    ids=lambda e: str(e["id"]),
)
def test_verdict_on_the_pair_alone(entry: dict[str, object], golden_table: pa.Table) -> None:
    """Each pair flagged so is judged alone: a legitimate re-render passes every rule, a
    defect is named by its own rule, whatever the rest of the batch holds.

    `price_changed` (one digit of a price in a line of small print) needs `text_pass` to
    judge a pair's worst text line: averaged over all its text, one digit is lost."""
    pid, expected = str(entry["id"]), entry["expected"]
    verdict = _judged_alone(golden_table, pid)
    named = {p["pair_id"]: p["rules"] for p in verdict.failing_pairs}
    if expected.get("passes"):  # type: ignore[attr-defined]
        assert pid not in named and verdict.verdict == PASS, (named, verdict.reason)
    for rule in expected.get("fails_by", []):  # type: ignore[attr-defined]
        assert rule in {r.rule.name for r in verdict.rules}, rule  # a rule of the shipped policy
        assert rule in named.get(pid, []), (rule, named, verdict.reason)
        assert verdict.verdict == FAIL, verdict.reason


def test_typography_acceptance(golden_rows: dict[str, dict[str, object]]) -> None:
    from pixgate.config import TEXT_SHARPNESS_MIN

    same, mush, rerendered = (
        golden_rows["identical_sale"],
        golden_rows["small_text_mush"],
        golden_rows["text_rerendered"],
    )
    # Identical text reads identically.
    assert same[schema.TEXT_PASS.name] is True
    assert same[schema.TEXT_CER.name] == same[schema.TEXT_CER_BASELINE.name]
    assert same[schema.TEXT_SHARPNESS.name] == 1.0
    # Small print rasterised to mush: the OCR loses it and its regions lose their edges.
    assert mush[schema.TEXT_PASS.name] is False
    assert mush[schema.TEXT_CER.name] > mush[schema.TEXT_CER_BASELINE.name] + 0.3  # type: ignore[operator]
    assert mush[schema.TEXT_SHARPNESS.name] < TEXT_SHARPNESS_MIN  # type: ignore[operator]
    # Another clean rendering of the same copy (bigger, half a pixel off, lighter ink).
    assert rerendered[schema.TEXT_PASS.name] is True
    assert rerendered[schema.LPIPS.name] > 0.0  # type: ignore[operator]
    assert rerendered[schema.TEXT_SHARPNESS.name] > TEXT_SHARPNESS_MIN  # type: ignore[operator]


def test_typography_without_the_manifest(alex_weights: Path, tmp_path: Path) -> None:
    """Scored as a new user would, with no manifest: the baselines are the reference, and
    every pair gets the typography verdict the manifest expects."""
    from pixgate.scoring.score import ScoreOptions, run_score

    opts = ScoreOptions(GOLDEN / "baseline", GOLDEN / "candidate", tmp_path / "run.arrow", device="cpu",
                        weights=alex_weights)  # fmt: skip
    rows = {r[schema.PAIR_ID.name]: r for r in run_score(opts).table.to_pylist()}
    for entry in _manifest():
        row = rows[str(entry["id"])]
        assert row[schema.TEXT_STATUS.name] == schema.TEXT_CHECKED, entry["id"]
        assert row[schema.TEXT_EXPECTED.name] is None and row[schema.TEXT_CER_BASELINE.name] is None
        expected = entry["expected"]["text_pass"]  # type: ignore[index]
        assert row[schema.TEXT_PASS.name] is expected, (entry["id"], row[schema.OCR_CANDIDATE.name])


def test_every_golden_entry_describes_its_text() -> None:
    for entry in _manifest():
        assert entry["expected_text"] and entry["text_boxes"], entry["id"]
        assert len(entry["text_boxes"]) == len(entry["expected_text"])  # type: ignore[arg-type]
