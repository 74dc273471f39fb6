"""A verdict in the forms CI systems read: JUnit XML (a test case per rule), a Markdown
summary (for a CI step summary or a pull-request comment), and GitHub workflow
annotations (one error line per failed critical rule).

Pure functions of a `Verdict`: the text they return is written where the caller says.
Every value from the run or the policy (pair ids, rule names, errors) is escaped for the
format it goes into, never interpreted: what would act rather than show (control
characters, bidirectional overrides) is first written as an escape
(`pixgate.safe_io.shown`), which also keeps JUnit XML well-formed, as XML 1.0 allows no
control characters; then Markdown's and GitHub workflow commands' own characters are
escaped, so a name can neither end a table row nor start a second workflow command.
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

from pixgate.config import GATE_FORMAT_MAX_PAIRS as FORMAT_MAX_PAIRS
from pixgate.judging.gate import FAIL, MARGINAL, SKIPPED, RuleResult, Verdict, format_bound, format_observed
from pixgate.safe_io import shown


def _pairs_of(verdict: Verdict, rule: str) -> list[dict[str, Any]]:
    return [p for p in verdict.failing_pairs if rule in p["rules"]]


def _pair_line(pair: dict[str, Any]) -> str:
    """A failing pair in one line, every value from the run shown escaped."""
    values = ", ".join(f"{k}={_short(v)}" for k, v in pair["values"].items())
    status = shown(pair["status"] or "")
    if pair["error"]:
        # An error is a message that quotes names already escaped: its backslashes are kept.
        status += f": {shown(pair['error'], backslashes=False)}"
    return f"{shown(pair['pair_id'], backslashes=False)}: {shown(values)}" + (
        f" ({status})" if status and status != "ok" else ""
    )


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _what(res: RuleResult) -> str:
    text = f"{format_observed(res)} (bound {format_bound(res.rule)}; {res.n}/{res.n_rows} judged)"
    return text + (f"; {shown(res.note, backslashes=False)}" if res.note else "")


def junit_xml(verdict: Verdict, *, strict: bool = False) -> str:
    """The verdict as JUnit XML: one test suite, one test case per rule.

    A failed rule is a `<failure>` listing its failing pairs; a marginal one is a failure
    with `strict`, otherwise a pass whose output says marginal; a rule without data its
    policy allows is `<skipped>`.
    """
    policy = shown(verdict.context["policy"]["name"])
    suite = ET.Element(
        "testsuite",
        name=f"pixgate gate: {policy}",
        tests=str(len(verdict.rules)),
        failures=str(sum(r.result == FAIL or (strict and r.result == MARGINAL) for r in verdict.rules)),
        skipped=str(sum(r.result == SKIPPED for r in verdict.rules)),
        errors="0",
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("verdict", verdict.verdict),
        ("score", f"{verdict.score:.1f}"),
        ("reason", shown(verdict.reason)),
    ):
        ET.SubElement(props, "property", name=name, value=value)
    for res in verdict.rules:
        case = ET.SubElement(suite, "testcase", classname=f"pixgate.gate.{policy}", name=shown(res.rule.name))
        pairs = _pairs_of(verdict, res.rule.name)
        listing = "\n".join(_pair_line(p) for p in pairs[:FORMAT_MAX_PAIRS])
        if len(pairs) > FORMAT_MAX_PAIRS:
            listing += f"\n... {len(pairs) - FORMAT_MAX_PAIRS} more (see the JSON verdict)"
        if res.result == FAIL or (strict and res.result == MARGINAL):
            kind = "critical rule failed" if res.rule.critical and res.result == FAIL else res.result
            failure = ET.SubElement(case, "failure", message=f"{kind}: {_what(res)}", type=res.result)
            failure.text = listing or _what(res)
        elif res.result == SKIPPED:
            ET.SubElement(case, "skipped", message=_what(res))
        else:
            out = ET.SubElement(case, "system-out")
            out.text = f"{res.result}: {_what(res)}" + (f"\n{listing}" if listing else "")
    root = ET.Element("testsuites", name="pixgate gate")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _cell(text: str, *, backslashes: bool = True) -> str:
    """Text as one Markdown table cell: what would act shown escaped (`shown`, which
    leaves no line break to end the row), markup characters and pipes shown as they are."""
    text = shown(str(text), backslashes=backslashes)
    for char in "\\`*_[]<>|":
        text = text.replace(char, "\\" + char)
    return text


def markdown_summary(verdict: Verdict, *, top: int = FORMAT_MAX_PAIRS) -> str:
    """The verdict as Markdown: the verdict line, the rule table, the worst pairs."""
    policy = verdict.context["policy"]["name"]
    lines = [
        f"## pixgate gate: {verdict.verdict.upper()} ({_cell(policy)})",
        "",
        f"Score {verdict.score:.1f}/100: {_cell(verdict.reason)}. "
        f"{verdict.context.get('pairs', 0)} pairs in {_cell(str(verdict.context.get('run') or 'the run'))}.",
        "",
        "| rule | observed | bound | n | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for res in verdict.rules:
        name = _cell(res.rule.name) + (" (critical)" if res.rule.critical else "")
        observed = _cell(format_observed(res)) + (f"; {_cell(res.note, backslashes=False)}" if res.note else "")
        result = f"**{res.result}**" if res.result == FAIL else res.result
        bound = _cell(format_bound(res.rule), backslashes=False)  # a string bound is a repr
        lines.append(f"| {name} | {observed} | {bound} | {res.n}/{res.n_rows} | {result} |")
    if verdict.failing_pairs:
        lines += ["", f"### Pairs to look at first ({len(verdict.failing_pairs)})", ""]
        lines += ["| pair | rules broken | values |", "| --- | --- | --- |"]
        for pair in verdict.failing_pairs[:top]:
            values = ", ".join(f"{k}={_short(v)}" for k, v in pair["values"].items())
            lines.append(
                f"| {_cell(pair['pair_id'], backslashes=False)} | {_cell(', '.join(pair['rules']))} | {_cell(values)} |"
            )
        if len(verdict.failing_pairs) > top:
            lines.append(f"\n{len(verdict.failing_pairs) - top} more in the JSON verdict.")
    return "\n".join(lines) + "\n"


def _workflow_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _workflow_property(text: str) -> str:
    return _workflow_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(verdict: Verdict) -> str:
    """One `::error` workflow command per failed critical rule (GitHub Actions shows
    each on the run's summary); empty when none failed."""
    out = []
    for res in verdict.rules:
        if res.rule.critical and res.result == FAIL:
            pairs = _pairs_of(verdict, res.rule.name)
            first = "; first: " + ", ".join(shown(p["pair_id"], backslashes=False) for p in pairs[:5]) if pairs else ""
            title = _workflow_property(f"pixgate gate: {shown(res.rule.name)}")
            out.append(f"::error title={title}::{_workflow_data(_what(res) + first)}")
    return "".join(line + "\n" for line in out)


#: `--annotations` formats, name -> renderer.
ANNOTATIONS = {"github": github_annotations}

__all__ = ["ANNOTATIONS", "github_annotations", "junit_xml", "markdown_summary"]
