"""A verdict as JUnit XML, Markdown and GitHub annotations: complete, and escaped."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from pixgate.judging.formats import github_annotations, junit_xml, markdown_summary
from pixgate.judging.gate import FAIL, Verdict, judge
from pixgate.judging.policy import parse_policy
from pixgate.runs import schema
from pixgate.runs.files import read_run
from tests.conftest import write_run

POLICY = """
[policy]
name = "formats"
[[rule]]
name = "alpha parity"
column = "alpha_parity"
stat = "each"
op = "=="
pass = true
critical = true
[[rule]]
name = "LPIPS p95"
column = "lpips"
stat = "p95"
op = "<="
pass = 0.1
marginal = 0.2
[[rule]]
name = "text"
column = "text_cer"
stat = "max"
op = "<="
pass = 0.1
allow_nodata = true
"""
#: Ids that would break each format if they were not escaped.
HOSTILE = ("a|b", "<x>&'", "line\nbreak", "50%,done:now", "**bold** [link](x)")


@pytest.fixture
def verdict(tmp_path: Path) -> Verdict:
    ok = {schema.STATUS.name: schema.STATUS_OK}
    rows = [
        {**ok, schema.PAIR_ID.name: f"ok{i}", schema.ALPHA_PARITY.name: True, schema.LPIPS.name: 0.01} for i in range(4)
    ]
    rows += [
        {**ok, schema.PAIR_ID.name: pid, schema.ALPHA_PARITY.name: False, schema.LPIPS.name: 0.15} for pid in HOSTILE
    ]
    path = write_run(tmp_path / "run.arrow", rows)
    return judge(parse_policy(POLICY, tmp_path / "p.toml"), read_run(path), run_path=path)


def test_junit_has_a_case_per_rule_and_lists_the_failing_pairs(verdict: Verdict) -> None:
    root = ET.fromstring(junit_xml(verdict))
    (suite,) = root.findall("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert list(cases) == [r.rule.name for r in verdict.rules]
    assert suite.get("tests") == str(len(verdict.rules)) == "4"  # with the implicit "every pair scored"
    assert suite.get("failures") == "1" and suite.get("skipped") == "1"
    failure = cases["alpha parity"].find("failure")
    assert failure is not None and "critical rule failed" in (failure.get("message") or "")
    for pid in HOSTILE:  # every failing pair, its id intact
        assert pid.replace("\n", " ").split()[0] in (failure.text or "")
    assert cases["LPIPS p95"].find("failure") is None  # marginal passes unless strict
    assert "marginal" in (cases["LPIPS p95"].findtext("system-out") or "")
    assert cases["text"].find("skipped") is not None
    strict = ET.fromstring(junit_xml(verdict, strict=True)).find("testsuite")
    assert strict is not None and strict.get("failures") == "2"


def test_markdown_has_the_verdict_the_rules_and_the_pairs_escaped(verdict: Verdict) -> None:
    text = markdown_summary(verdict)
    assert text.startswith(f"## pixgate gate: {FAIL.upper()} (formats)")
    table = [line for line in text.splitlines() if line.startswith("| ")]
    # Every row of both tables has exactly its columns: no id adds a cell or a line.
    assert all(line.count(" | ") in (2, 4) for line in table), table
    assert "a\\|b" in text and "&lt;" not in text and "\\<x\\>" in text and "\\*\\*bold\\*\\*" in text
    assert "line\\\\x0abreak" in text  # shown escaped: a line break inside an id would end the table row
    assert len(table) == 2 + len(verdict.rules) + 2 + len(HOSTILE)  # two headers, two separators


def test_github_annotations_one_error_per_failed_critical_rule(verdict: Verdict) -> None:
    lines = github_annotations(verdict).splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("::error title=pixgate gate%3A alpha parity::")
    assert "line\\x0abreak" in lines[0] and "50%25" in lines[0]  # a newline and a percent inside an id, escaped
    passing = judge(verdict_policy_passing(), read_run(Path(verdict.context["run"])))
    assert github_annotations(passing) == ""


def verdict_policy_passing() -> object:
    text = '[policy]\nname = "none"\n[[rule]]\nname = "n"\ncolumn = "lpips"\nstat = "max"\nop = "<="\npass = 1.0\n'
    return parse_policy(text, Path("p.toml"))


#: Ids (and a rule and a policy name) holding what would act on a terminal or a CI log, or
#: what XML 1.0 forbids: each must reach every format escaped.
ACTING_IDS = (
    "red\x1b[31m\x1b]0;title\x07",
    "over\rwrite",
    "\u202egnp.exe",
    "iso\u2066late\u2069",
    "c1\x85\x9b",
    "nul\x00ff\x0c\x7f\ufffe",
)
#: The escapes the formats show for them (backslashes doubled again in Markdown).
ACTING_SHOWN = (
    "red\\x1b[31m\\x1b]0;title\\x07",
    "over\\x0dwrite",
    "\\u202egnp.exe",
    "iso\\u2066late\\u2069",
    "\\u0085\\u009b",
    "\\x00ff\\x0c\\x7f\\ufffe",
)
ACTING_POLICY = r"""
[policy]
name = "p\u001b[2J\u202e"
[[rule]]
name = "parity\u0007\u000d::error::injected"
column = "alpha_parity"
stat = "each"
op = "=="
pass = true
critical = true
"""


def _raw_controls(text: str) -> set[str]:
    """The characters of `text` that would act rather than show (a line feed ends a line)."""
    return {ch for ch in text if ch != "\n" and not ch.isprintable() and ch != " "}


@pytest.fixture
def acting(tmp_path: Path) -> Verdict:
    rows = [
        {schema.STATUS.name: schema.STATUS_OK, schema.PAIR_ID.name: pid, schema.ALPHA_PARITY.name: False}
        for pid in ACTING_IDS
    ]
    path = write_run(tmp_path / "run.arrow", rows)
    return judge(parse_policy(ACTING_POLICY, tmp_path / "p.toml"), read_run(path), run_path=path)


def test_names_that_act_on_a_terminal_are_shown_escaped_in_every_format(acting: Verdict, tmp_path: Path) -> None:
    junit = junit_xml(acting)
    root = ET.fromstring(junit)
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None and failure.text is not None
    for escaped in ACTING_SHOWN:
        assert escaped in failure.text
    assert root.find("testsuite/testcase[@name='parity\\x07\\x0d::error::injected']") is not None
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "pixgate gate: p\\x1b[2J\\u202e"
    markdown = markdown_summary(acting)
    assert "red\\\\x1b[31m" not in markdown  # markup characters escaped too
    assert "red\\\\x1b\\[31m" in markdown and "\\\\u202egnp.exe" in markdown
    annotations = github_annotations(acting)
    assert annotations.count("\n") == 1 and annotations.startswith("::error title=")
    assert annotations.count("::error") == 1  # the rule name's "::error" is escaped in the title
    assert "parity\\x07\\x0d%3A%3Aerror%3A%3Ainjected::" in annotations
    for text in (junit, markdown, annotations):
        assert not _raw_controls(text), (text, _raw_controls(text))
    (tmp_path / "junit.xml").write_text(junit, encoding="utf-8")
    ET.parse(tmp_path / "junit.xml")


def test_junit_stays_well_formed_whatever_a_pair_id_holds(acting: Verdict, tmp_path: Path) -> None:
    """A verdict built in Python may hold ids no run file can (a lone surrogate)."""
    forbidden = ["\x1b", "\x00", "\x0c", "\ufffe", "\uffff", chr(0xD800), chr(0xDCE9), "\x01\x02\x03"]
    acting.failing_pairs[0]["pair_id"] = "".join(forbidden)
    acting.failing_pairs[1]["error"] = "bad \x00 byte \x1b"
    acting.failing_pairs[1]["status"] = "err\x0cor"
    path = tmp_path / "junit.xml"
    path.write_bytes(junit_xml(acting, strict=True).encode("utf-8"))
    failure = ET.parse(path).find("testsuite/testcase/failure")
    assert failure is not None and failure.text is not None
    assert "\\x1b\\x00\\x0c\\ufffe\\uffff\\ud800\\xe9\\x01\\x02\\x03" in failure.text
    assert "bad \\x00 byte \\x1b" in failure.text and "err\\x0cor" in failure.text


def test_a_pair_id_is_shown_as_the_id_it_is_not_escaped_twice(tmp_path: Path) -> None:
    """A pair id already writes a file name's backslash doubled (`name_id`): the formats
    show it as it is, so a file `bs\\x1b.png` reads `bs\\\\x1b`, not four backslashes, and
    stays apart from a name holding a real ESC (`bs\\x1b`)."""
    from pixgate.safe_io import name_id

    literal, real = name_id("bs\\x1b"), name_id("bs\x1b")
    rows = [
        {schema.STATUS.name: schema.STATUS_OK, schema.PAIR_ID.name: pid, schema.ALPHA_PARITY.name: False}
        for pid in (literal, real)
    ]
    path = write_run(tmp_path / "run.arrow", rows)
    verdict = judge(parse_policy(ACTING_POLICY, tmp_path / "p.toml"), read_run(path), run_path=path)
    failure = ET.fromstring(junit_xml(verdict)).find("testsuite/testcase/failure")
    assert failure is not None and failure.text is not None
    assert "bs\\\\x1b:" in failure.text and "bs\\x1b:" in failure.text.replace("bs\\\\x1b:", "")
    assert "bs\\\\\\\\x1b" not in failure.text + github_annotations(verdict)
