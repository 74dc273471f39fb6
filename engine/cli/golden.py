"""`pixgate approve` and `pixgate golden verify`: the golden set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pixgate.cli.common import QuietOpt, console, fail, flag, usage_error


def approve(
    run: Annotated[Path, typer.Argument(help="Run whose candidates become the new baselines.", dir_okay=False)],
    golden: Annotated[Path, typer.Option(help="The golden set's folder (manifest.jsonl, baseline/).", file_okay=False)],
    ids: Annotated[
        list[str] | None,
        typer.Option(
            "--ids", help="Pairs to approve (repeat, or separate with commas).  [default: every pair]", metavar="IDS"
        ),
    ] = None,
    verdict: Annotated[
        Path | None, typer.Option(help="The run's verdict from `pixgate gate --json`.", dir_okay=False)
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Approve without a verdict, or despite a fail.")] = False,
    by: Annotated[
        str | None,
        typer.Option(help="Who approves.  [default: $PIXGATE_APPROVER, else the login name]", metavar="NAME"),
    ] = None,
    files_under: Annotated[
        Path | None,
        typer.Option(
            help="Read candidates only under this folder (run files are data).  [default: the current folder]",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Make a reviewed run's candidates the golden baselines, atomically.

    Exit codes: 0 approved; 1 refused (a failed or missing verdict without --force, rows
    that are not ok); 2 a missing or malformed run, verdict or golden set, a verdict of
    another run (or of this one before it was scored again), or no or unknown ids.
    """
    from rich.table import Table

    from pixgate.golden.approval import approve as run_approval
    from pixgate.golden.approval import parse_ids
    from pixgate.golden.golden_set import ApprovalRefused, GoldenError

    out = console()
    try:
        chosen = parse_ids(ids)
    except GoldenError as exc:
        raise usage_error(exc) from None

    def staged(done: int, total: int, pair_id: str) -> None:
        if not quiet:
            out.print(f"staged {done}/{total}: {pair_id}")

    try:
        approvals = run_approval(
            run, golden, ids=chosen, verdict_path=verdict, force=force, by=by, on_staged=staged, files_under=files_under
        )
    except GoldenError as exc:
        raise usage_error(exc) from None
    except ApprovalRefused as exc:
        fail(f"refused: {exc.render(flag)}", "review the run, or approve with --force", code=1)
    table = Table(title=f"approved into {golden}")
    for col in ("pair_id", "baseline", "sha256", "replaced"):
        table.add_column(col, overflow="fold")
    for a in approvals:
        table.add_row(a.pair_id, a.baseline, a.sha256[:16], a.previous or "(new entry)")
    if quiet:
        out.print(f"approved {len(approvals)} pairs into {golden}")
    else:
        out.print(table)


def golden_verify(
    golden: Annotated[Path, typer.Argument(metavar="GOLDEN_DIR", help="The golden set's folder.", file_okay=False)],
    quiet: QuietOpt = False,
) -> None:
    """Check every baseline file against the manifest's sha256.

    Exit codes: 0 every file matches; 1 missing, changed, extra or unrecorded files;
    2 no golden set there, or an interrupted approval whose staging plan cannot be
    trusted (left untouched).
    """
    from rich.table import Table

    from pixgate.golden.golden_set import GoldenError, verify

    out = console()
    try:
        report = verify(golden)
    except GoldenError as exc:
        raise usage_error(exc, golden="GOLDEN_DIR") from None
    if report.recovered:
        out.print(f"note: {report.recovered}")
    problems = Table(title=f"golden set {golden}")
    for col in ("problem", "id", "file"):
        problems.add_column(col, overflow="fold")
    for pid, rel in report.missing:
        problems.add_row("missing", pid, rel)
    for pid, rel in report.changed:
        problems.add_row("changed (sha256 differs)", pid, rel)
    for pid, rel, why in report.unreadable:
        problems.add_row(f"unreadable ({why})", pid, rel)
    for rel in report.extra:
        problems.add_row("extra (not in the manifest)", "", rel)
    for pid in report.unrecorded:
        problems.add_row("unrecorded (no baseline/sha256)", pid, "")
    if not report.clean:
        out.print(problems)
        raise typer.Exit(code=1)
    if not quiet:
        out.print(f"golden set OK: {len(report.checked)} files match the manifest")
