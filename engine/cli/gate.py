"""`pixgate gate`: judge a run, in tables for people and files for CI systems."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pixgate.cli.common import QuietOpt, console, emit, output_folder, usage_error, whole_number
from pixgate.config import GATE_MAX_LISTED_PAIRS, GATE_ON_FAIL_TIMEOUT_S

if TYPE_CHECKING:
    from pixgate.judging.gate import Verdict

_RESULT_STYLE = {"pass": "green", "marginal": "yellow", "fail": "bold red", "skipped": "dim"}


def gate_report(verdict: Verdict, top: int, *, stderr: bool = False) -> None:
    from rich.table import Table
    from rich.text import Text

    from pixgate.judging.gate import format_bound, format_observed
    from pixgate.safe_io import shown

    # Names from the run and the policy are shown escaped, backslashes doubled; notes and
    # errors are messages that quote names already escaped (repr, printable).
    out = console(stderr=stderr)
    for notice in verdict.context.get("notices", []):  # before the tables: how to read them
        out.print(f"note: {notice}")
    rules = Table(title=f"pixgate gate: {shown(verdict.context['policy']['name'])}")
    rules.add_column("rule", overflow="fold")
    rules.add_column("observed", justify="right", overflow="fold")
    rules.add_column("bound", overflow="fold")
    rules.add_column("n", justify="right")
    rules.add_column("result")
    for res in verdict.rules:
        name = shown(res.rule.name) + (" [critical]" if res.rule.critical else "")
        observed = format_observed(res) + (f"\n{shown(res.note, backslashes=False)}" if res.note else "")
        style = _RESULT_STYLE[res.result]
        rules.add_row(name, observed, format_bound(res.rule), f"{res.n}/{res.n_rows}", Text(res.result, style))
    out.print(rules)
    if verdict.failing_pairs:
        listing = Table(title=f"pairs to look at first ({len(verdict.failing_pairs)})")
        for col in ("pair_id", "status", "rules broken", "values"):
            listing.add_column(col, overflow="fold")
        for pair in verdict.failing_pairs[:top]:
            values = ", ".join(f"{k}={_short(v)}" for k, v in pair["values"].items())
            status = shown(pair["status"] or "")
            if pair["error"]:
                status += f": {shown(pair['error'], backslashes=False)}"
            listing.add_row(
                shown(pair["pair_id"], backslashes=False), status, shown(", ".join(pair["rules"])), shown(values)
            )
        if len(verdict.failing_pairs) > top:
            listing.add_row("...", "", f"{len(verdict.failing_pairs) - top} more", "see --json")
        out.print(listing)
    style = _RESULT_STYLE[verdict.verdict]
    out.print(
        Text.assemble(
            "verdict: ", (verdict.verdict.upper(), style), f" (score {verdict.score:.1f}/100; {shown(verdict.reason)})"
        )
    )


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def gate(
    run: Annotated[Path, typer.Argument(help="Run file to judge (Arrow IPC, from `pixgate score`).", dir_okay=False)],
    policy: Annotated[
        Path, typer.Option("--policy", "-p", help="Policy (TOML), e.g. golden/policy.toml.", dir_okay=False)
    ],
    against: Annotated[
        Path | None,
        typer.Option(help="Earlier run to compare with, for median_change rules (e.g. GPU time).", dir_okay=False),
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Write the verdict as JSON here ('-': standard output).", dir_okay=False),
    ] = None,
    junit: Annotated[
        Path | None,
        typer.Option(help="Write JUnit XML here, a test case per rule ('-': standard output).", dir_okay=False),
    ] = None,
    markdown: Annotated[
        Path | None,
        typer.Option(
            help="Write a Markdown summary here, e.g. $GITHUB_STEP_SUMMARY ('-': standard output).", dir_okay=False
        ),
    ] = None,
    annotations: Annotated[
        str | None,
        typer.Option(
            help="Print one error annotation per failed critical rule for this CI system's log: github.",
        ),
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="A marginal verdict exits 1 too.")] = False,
    on_fail: Annotated[
        str | None,
        typer.Option(
            help="Shell command to run when the gate fails (e.g. a rollback); it gets PIXGATE_VERDICT, "
            "PIXGATE_SCORE, PIXGATE_RUN and PIXGATE_VERDICT_JSON in its environment."
        ),
    ] = None,
    on_fail_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds the --on-fail command may run before its process group is killed.", metavar="SECONDS"
        ),
    ] = GATE_ON_FAIL_TIMEOUT_S,
    top: Annotated[
        int,
        typer.Option(callback=whole_number("--top", 0), help="Failing pairs listed in the table."),
    ] = GATE_MAX_LISTED_PAIRS,
    quiet: QuietOpt = False,
) -> None:
    """Judge a run against a policy: pass, marginal or fail.

    Exit codes: 0 pass (and marginal unless --strict); 1 fail; 2 a bad policy, a missing
    or unreadable file, or a run whose schema does not fit the policy.
    """
    from pixgate.judging.decision import OnFailError, check_on_fail_timeout, decide, judge_run
    from pixgate.judging.formats import ANNOTATIONS, junit_xml, markdown_summary
    from pixgate.judging.gate import GateInputError
    from pixgate.judging.policy import PolicyError
    from pixgate.runs.files import RunFileError, verdict_json
    from pixgate.safe_io import shown

    if annotations is not None and annotations not in ANNOTATIONS:
        raise usage_error(f"--annotations must be one of {', '.join(ANNOTATIONS)}; got {annotations!r}")
    try:
        check_on_fail_timeout(on_fail_timeout)
    except OnFailError as exc:
        raise usage_error(exc) from None
    files = {"--json": json_out, "--junit": junit, "--markdown": markdown}
    for option, path in files.items():
        output_folder(option, path, inputs=tuple(p for p in (run, policy, against) if p is not None))
    to_stdout = [option for option, path in files.items() if path is not None and str(path) == "-"]
    to_stdout += ["--annotations"] if annotations is not None else []
    if len(to_stdout) > 1:
        raise usage_error(f"{' and '.join(to_stdout)}: only one of them can write to standard output")
    named = [(option, path.resolve()) for option, path in files.items() if path is not None and str(path) != "-"]
    for i, (option, path) in enumerate(named):  # one file, two formats: the second would replace the first
        twice = [other for other, same in named[i + 1 :] if same == path]
        if twice:
            raise usage_error(f"{option} and {twice[0]} name the same file {path}; give each its own")
    try:
        verdict = judge_run(run, policy, against)
    except (PolicyError, GateInputError, RunFileError) as exc:
        raise usage_error(exc) from None
    # A format on standard output owns it: the tables go to standard error.
    machine = bool(to_stdout)
    if quiet:
        typer.echo(f"verdict: {verdict.verdict} (score {verdict.score:.1f}; {shown(verdict.reason)})", err=machine)
    else:
        gate_report(verdict, top, stderr=machine)
    out = console()
    decision = decide(
        verdict,
        strict=strict,
        json_path=json_out if json_out is not None and str(json_out) != "-" else None,
        on_fail=on_fail,
        on_fail_timeout=on_fail_timeout,
        say=out.print,
    )
    if json_out is not None and str(json_out) == "-":
        emit(json_out, verdict_json(decision.document))
    if junit is not None:
        emit(junit, junit_xml(verdict, strict=strict))
    if markdown is not None:
        emit(markdown, markdown_summary(verdict, top=top))
    if annotations is not None:
        emit(Path("-"), ANNOTATIONS[annotations](verdict))
    raise typer.Exit(code=1 if decision.blocked else 0)
