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
    assert "line break" in text  # a line break inside an id would end the table row
    assert len(table) == 2 + len(verdict.rules) + 2 + len(HOSTILE)  # two headers, two separators


def test_github_annotations_one_error_per_failed_critical_rule(verdict: Verdict) -> None:
    lines = github_annotations(verdict).splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("::error title=pixgate gate%3A alpha parity::")
    assert "%0A" in lines[0] and "50%25" in lines[0]  # a newline and a percent inside an id, encoded
    passing = judge(verdict_policy_passing(), read_run(Path(verdict.context["run"])))
    assert github_annotations(passing) == ""


def verdict_policy_passing() -> object:
    text = '[policy]\nname = "none"\n[[rule]]\nname = "n"\ncolumn = "lpips"\nstat = "max"\nop = "<="\npass = 1.0\n'
    return parse_policy(text, Path("p.toml"))
