"""Policy files: the shipped policy parses, and every kind of mistake names its line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from pixgate.judging.decision import judge_run
from pixgate.judging.policy import EACH, IMPLICIT_STATUS_RULE, PolicyError, load_policy, parse_policy
from pixgate.runs import schema
from pixgate.runs.files import read_run
from pixgate.scoring.score import ScoreOptions, run_score
from tests.conftest import GOLDEN, poster, write_run

GOOD_RULE = """
[[rule]]
column = "lpips"
stat = "p95"
op = "<="
pass = 0.2
"""

# Each bad policy marks the line at fault with "# <-"; the test finds it, so the expected
# line number is never typed by hand.
BAD_POLICIES = {
    "unknown column": (
        GOOD_RULE + '\n[[rule]]\ncolumn = "lpip"  # <-\nstat = "mean"\nop = "<="\npass = 0.1\n',
        ["unknown column 'lpip'", "did you mean 'lpips'"],
    ),
    "bad operator": (
        GOOD_RULE + '\n[[rule]]\ncolumn = "lpips"\nstat = "mean"\nop = "=<"  # <-\npass = 0.1\n',
        ["op '=<'", "<, <=, >, >="],
    ),
    "equality on an aggregate": (
        '[[rule]]\ncolumn = "lpips"\nstat = "mean"\nop = "=="  # <-\npass = 0.1\n',
        ["op '=='", "stat 'mean'"],
    ),
    "string bound for a number": (
        '[[rule]]\ncolumn = "lpips"\nstat = "mean"\nop = "<="\npass = "0.1"  # <-\n',
        ["'pass' must be a finite number", "'0.1'"],
    ),
    "number bound for a bool each": (
        '[[rule]]\ncolumn = "alpha_parity"\nstat = "each"\nop = "=="\npass = 1  # <-\n',
        ["true or false", "alpha_parity"],
    ),
    "percentile of a bool": (
        '[[rule]]\ncolumn = "alpha_parity"\nstat = "p95"  # <-\nop = ">="\npass = 0.5\n',
        ["stat 'p95' does not apply to 'alpha_parity' (bool)", "rate, each"],
    ),
    "percentile past 100": (
        '[[rule]]\ncolumn = "lpips"\nstat = "p101"  # <-\nop = "<="\npass = 0.5\n',
        ["stat 'p101'"],
    ),
    "unknown key": (
        '[[rule]]\ncolumn = "lpips"\nstat = "mean"\nop = "<="\npass = 0.1\nmarginl = 0.2  # <-\n',
        ["unknown key 'marginl'", "did you mean 'marginal'"],
    ),
    "marginal tighter than pass": (
        '[[rule]]\ncolumn = "lpips"\nstat = "mean"\nop = "<="\npass = 0.2\nmarginal = 0.1  # <-\n',
        ["'marginal' 0.1 must be at or above 'pass' 0.2"],
    ),
    "rate outside 0..1": (
        '[[rule]]\ncolumn = "icc_match"\nstat = "rate"\nop = ">="\npass = 95  # <-\n',
        ["0..1", "95"],
    ),
    "unknown status": (
        '[[rule]]\ncolumn = "status"\nstat = "each"\nop = "=="\npass = "okay"  # <-\n',
        ["'okay' is not a status", "ok, error"],
    ),
    "negative weight": (
        '[[rule]]\ncolumn = "lpips"\nstat = "mean"\nop = "<="\npass = 0.2\nweight = -1  # <-\n',
        ["'weight' must be a positive number"],
    ),
    "alpha on an aggregate": (
        '[[rule]]\ncolumn = "lpips"\nstat = "mean"\nop = "<="\npass = 0.2\nalpha = 0.05  # <-\n',
        ["'alpha' applies only to stat 'median_change'"],
    ),
    "critical not a bool": (
        '[[rule]]\ncolumn = "lpips"\nstat = "mean"\nop = "<="\npass = 0.2\ncritical = "yes"  # <-\n',
        ["'critical' must be true or false"],
    ),
    "missing pass": (
        '[[rule]]  # <-\ncolumn = "lpips"\nstat = "mean"\nop = "<="\n',
        ["'pass' (the bound for a pass) is required"],
    ),
    "toml syntax": (
        # The string left open on the marked line runs into its line end.
        GOOD_RULE + '\n[[rule]]\ncolumn = "lpips  # <-\nstat = "mean"\n',
        ["not valid TOML"],
    ),
    "marginal score above pass score": (
        "[policy]\npass_score = 80\nmarginal_score = 90  # <-\n" + GOOD_RULE,
        ["'marginal_score' 90.0 is above 'pass_score' 80.0"],
    ),
    "unknown policy key": (
        '[policy]\nnmae = "x"  # <-\n' + GOOD_RULE,
        ["unknown key 'nmae' in [policy]"],
    ),
}


def _marked_line(text: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if "# <-" in line)


@pytest.mark.parametrize("case", sorted(BAD_POLICIES))
def test_bad_policy_names_its_line(case: str, tmp_path: Path) -> None:
    text, phrases = BAD_POLICIES[case]
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert info.value.line == _marked_line(text), message
    assert message.startswith(f"{path}:{info.value.line}: "), message
    for phrase in phrases:
        assert phrase in message, message


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("", "no [[rule]] tables"),
        ('[rules]\nx = 1\n[[rule]]\ncolumn = "lpips"\nstat = "mean"\nop = "<="\npass = 1\n', "unknown table 'rules'"),
    ],
)
def test_policy_level_mistakes(text: str, phrase: str, tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=phrase.replace("[", r"\[")):
        parse_policy(text, tmp_path / "p.toml")


def test_unreadable_policy_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.toml")


def test_golden_policy_parses_with_the_rules_the_golden_set_needs() -> None:
    policy = load_policy(GOLDEN / "policy.toml")
    by_column = {rule.column: rule for rule in policy.rules}
    for column in (schema.ALPHA_PARITY, schema.ICC_MATCH, schema.SIZE_MATCH, schema.FRAME_COUNT_MATCH, schema.STATUS):
        rule = by_column[column.name]
        assert rule.stat == EACH and rule.critical, rule
    # Quality is judged pair by pair: no batch percentile can hide one broken image.
    for column in (
        schema.LPIPS, schema.STRUCTURE_WORST, schema.SCALE_CHANGE, schema.SCIELAB_COLOUR, schema.HUE_SHIFT,
        schema.CHROMA_SHIFT, schema.ALPHA_IOU, schema.ALPHA_FLATTENED, schema.ALPHA_EDGE_PX, schema.TEXT_PASS,
    ):  # fmt: skip
        rule = by_column[column.name]
        assert rule.stat == EACH and rule.critical, rule
    assert by_column[schema.LPIPS.name].tolerance > 0
    assert all(rule.quantile is None for rule in policy.rules)
    assert IMPLICIT_STATUS_RULE not in policy.rules  # it has its own status rule
    assert all(rule.line is not None for rule in policy.rules)


def test_policy_without_status_rule_gets_the_implicit_one(tmp_path: Path) -> None:
    policy = parse_policy(GOOD_RULE, tmp_path / "p.toml")
    assert policy.rules[0] == IMPLICIT_STATUS_RULE
    assert policy.rules[0].critical
    assert len(policy.rules) == 2


def test_rule_defaults_and_names(tmp_path: Path) -> None:
    policy = parse_policy(GOOD_RULE, tmp_path / "p.toml")
    rule = policy.rules[1]
    assert rule.name == "lpips p95"
    assert rule.weight == 1.0 and not rule.critical and not rule.allow_nodata
    assert rule.quantile == pytest.approx(0.95)
    assert rule.line == _marked_line(GOOD_RULE.replace("[[rule]]", "[[rule]]  # <-"))
    assert policy.name == "p"


@pytest.mark.timeout(30)
def test_a_policy_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "policy.toml"
    os.mkfifo(fifo)
    with pytest.raises(PolicyError, match="FIFO"):
        load_policy(fifo)


def test_require_known_weights_is_a_boolean(tmp_path: Path) -> None:
    rule = '[[rule]]\ncolumn = "lpips"\nstat = "max"\nop = "<="\npass = 0.1\n'
    assert parse_policy("[policy]\nrequire_known_weights = true\n" + rule, tmp_path / "p.toml").require_known_weights
    assert not parse_policy(rule, tmp_path / "p.toml").require_known_weights
    with pytest.raises(PolicyError, match="'require_known_weights' must be true or false, got 'yes'") as info:
        parse_policy('[policy]\nrequire_known_weights = "yes"\n' + rule, tmp_path / "p.toml")
    assert info.value.line == 2


def test_two_rules_of_one_name_are_refused(tmp_path: Path) -> None:
    """A verdict names the rules a pair broke by name: two of one name would be confused."""
    rule = '[[rule]]\ncolumn = "lpips"\nstat = "max"\nop = "<="\npass = {}\n'
    with pytest.raises(PolicyError, match="two rules are named 'lpips max' \\(lines 1 and 6\\)") as info:
        parse_policy(rule.format(0.1) + rule.format(0.2), tmp_path / "p.toml")
    assert info.value.line == 6


# --- nesting and numbers beyond what the TOML parser takes ---

DEEP_POLICIES = {
    "nested arrays": "a = " + "[" * 100_000,
    "nested inline tables": "a = " + "{b = " * 100_000,
    "nested arrays in a rule": '[[rule]]\ncolumn = "lpips"\npass = ' + "[" * 50_000 + "]" * 50_000 + "\n",
    "an integer of 5000 digits": "[policy]\npass_score = " + "9" * 5000 + "\n",
}


@pytest.mark.parametrize("case", sorted(DEEP_POLICIES))
def test_a_policy_beyond_the_parser_is_a_policy_error(case: str, tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(DEEP_POLICIES[case])
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and len(message.splitlines()) == 1, message[:500]
    assert "nested too deeply" in message or "cannot be parsed" in message


def test_the_gate_refuses_a_deeply_nested_policy_in_one_line(tmp_path: Path) -> None:
    """The command, in a process of its own: exit 2 and one error line naming the file."""
    run = write_run(tmp_path / "run.arrow", [{schema.PAIR_ID.name: "a", schema.STATUS.name: schema.STATUS_OK}])
    policy = tmp_path / "deep.toml"
    policy.write_text(DEEP_POLICIES["nested inline tables"])
    cmd = [sys.executable, "-m", "pixgate", "gate", str(run), "--policy", str(policy)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[:2000]
    lines = done.stderr.splitlines()
    assert lines[0] == f"error: {policy}: not a policy: values nested too deeply to parse", lines
    assert len(lines) <= 2 and "Traceback" not in done.stderr


# --- animations: the shipped policies' frame count rule ---


@pytest.mark.parametrize("name", ["policy.toml", "canary.toml"])
def test_the_shipped_policies_fail_a_pair_whose_frame_counts_differ(name: str) -> None:
    rule = next(r for r in load_policy(GOLDEN / name).rules if r.column == schema.FRAME_COUNT_MATCH.name)
    assert (rule.stat, rule.op, rule.pass_bound, rule.critical, rule.allow_nodata) == (EACH, "==", True, True, False)


def test_an_animation_against_a_still_image_fails_the_shipped_policy(tmp_path: Path) -> None:
    """Scored for real: an APNG and an animated WebP against still baselines, and a still
    pair beside them. The metrics see first frames only; the frame count rule fails the
    two animations, and only them."""
    base, cand = tmp_path / "baseline", tmp_path / "candidate"
    base.mkdir()
    cand.mkdir()
    frames = [Image.fromarray(poster(64, 64, seed=50 + i)) for i in range(3)]
    for name, options in (("apng.png", {}), ("webp.webp", {"lossless": True}), ("still.png", {})):
        frames[0].save(base / name, **options)
        if name == "still.png":
            frames[0].save(cand / name, **options)
        else:  # its first frame is the baseline's picture: only the frame count tells them apart
            frames[0].save(cand / name, save_all=True, append_images=frames[1:], duration=100, **options)
    out = tmp_path / "run.arrow"
    opts = ScoreOptions(base, cand, out, device="cpu", no_lpips=True, typography=False)
    result = run_score(opts)
    assert result.all_ok
    from pixgate.scoring.summary import summarize

    flagged = {line.label: line.value for line in summarize(result).lines}
    assert flagged["frame count changed (animation)"] == "2"  # the score summary says so too
    rows = {r[schema.PAIR_ID.name]: r for r in read_run(out).to_pylist()}
    for pair, count in (("apng", 3), ("webp", 3), ("still", 1)):
        row = rows[pair]
        assert (row[schema.BASELINE_FRAMES.name], row[schema.CANDIDATE_FRAMES.name]) == (1, count), row
        assert row[schema.FRAME_COUNT_MATCH.name] is (count == 1), row
        assert row[schema.DELTA_E_MEAN.name] == 0.0 and row[schema.SIZE_MATCH.name], row  # same first frame
    verdict = judge_run(out, GOLDEN / "policy.toml")
    result = next(r for r in verdict.rules if r.rule.column == schema.FRAME_COUNT_MATCH.name)
    assert result.result == "fail" and result.rule.name in verdict.reason
    broke = {p["pair_id"] for p in verdict.failing_pairs if result.rule.name in p["rules"]}
    assert broke == {"apng", "webp"}


def test_the_shipped_policy_names_a_flattened_cut_out_and_a_saturation_change_per_pair(tmp_path: Path) -> None:
    """Per-pair rules on the alpha plane and on chroma: a cut-out saved opaque but still
    RGBA, and +15 % saturation, are each named by their own rule, scored for real; an
    identical pair and a re-encode that keeps colours are named by neither."""
    import numpy as np

    base, cand = tmp_path / "baseline", tmp_path / "candidate"
    base.mkdir()
    cand.mkdir()
    cut_out = poster(96, 128, seed=3, alpha=True)
    flat = cut_out.copy()
    flat[..., 3] = 255  # flattened: every pixel opaque, still saved as RGBA
    still = poster(96, 128, seed=4)
    hsv = np.asarray(Image.fromarray(still).convert("HSV")).copy()
    hsv[..., 1] = np.clip(hsv[..., 1].astype(float) * 1.15, 0, 255).astype(np.uint8)
    saturated = np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))
    for name, b, c in (("flat", cut_out, flat), ("saturated", still, saturated), ("same", still, still)):
        Image.fromarray(b).save(base / f"{name}.png")
        Image.fromarray(c).save(cand / f"{name}.png")
    Image.fromarray(cut_out).save(base / "recoded.png")
    Image.fromarray(cut_out).save(cand / "recoded.png", compress_level=1)  # other bytes, same pixels
    out = tmp_path / "run.arrow"
    assert run_score(ScoreOptions(base, cand, out, device="cpu", no_lpips=True, typography=False)).all_ok
    verdict = judge_run(out, GOLDEN / "policy.toml")
    named = {p["pair_id"]: set(p["rules"]) for p in verdict.failing_pairs}
    assert "alpha shape (opaque IoU)" in named["flat"]
    assert "chroma raised" in named["saturated"]
    per_pair = {"alpha shape (opaque IoU)", "chroma raised", "chroma lowered"}
    assert not named.get("same", set()) & per_pair and not named.get("recoded", set()) & per_pair
