"""Judge and act: a run file and a policy in, a verdict, whether it blocks, and what was
done about it out.

`pixgate gate`, `pixgate canary` and the Python API all go through here, so the fit
checks, "does this verdict block?", the verdict file and the `--on-fail` command are
written once.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixgate.config import GATE_ON_FAIL_TIMEOUT_S
from pixgate.judging.gate import Verdict, check_fits, judge
from pixgate.judging.policy import Policy, load_policy
from pixgate.runs.files import read_run, write_verdict

if TYPE_CHECKING:
    import pyarrow as pa


def judge_run(
    run: pa.Table | Path | str,
    policy: Policy | Path | str,
    against: pa.Table | Path | str | None = None,
    *,
    comparisons: tuple[pa.Table, pa.Table] | None = None,
) -> Verdict:
    """Judge a run with a policy, after checking that the run fits it.

    Args:
        run: The run: a table, or a run file.
        policy: A policy, or a policy file (TOML).
        against: An earlier run for `median_change` rules: a table or a run file.
        comparisons: (new, old) tables that `median_change` rules compare instead, e.g. a
            canary's two captures.

    Raises:
        pixgate.judging.policy.PolicyError: A policy file that is not a valid policy.
        pixgate.runs.files.RunFileError: A run file that cannot be read.
        pixgate.judging.gate.GateInputError: A run whose schema does not fit the policy.
    """
    rules = policy if isinstance(policy, Policy) else load_policy(Path(policy))
    table, run_path = _table(run)
    check_fits(table, rules, run_path or Path("<table>"))
    other, against_path = _table(against) if against is not None else (None, None)
    if other is not None:
        check_fits(other, rules, against_path or Path("<table>"))
    return judge(rules, table, other, run_path=run_path, against_path=against_path, comparisons=comparisons)


def _table(run: pa.Table | Path | str) -> tuple[pa.Table, Path | None]:
    if isinstance(run, Path | str):
        return read_run(Path(run)), Path(run)
    return run, None


def run_on_fail(
    command: str, verdict: Verdict, run: Path | None, json_path: Path | None, say: Callable[[str], None]
) -> dict[str, Any]:
    """Run a blocked verdict's `--on-fail` command (a rollback, say) through /bin/sh.

    It gets PIXGATE_VERDICT, PIXGATE_SCORE, PIXGATE_RUN and PIXGATE_VERDICT_JSON in its
    environment and at most `GATE_ON_FAIL_TIMEOUT_S` seconds.

    Returns:
        What happened, for the verdict file: the command, its exit code (None when it
        timed out) and whether it timed out.
    """
    env = dict(os.environ)
    env.update(PIXGATE_VERDICT=verdict.verdict, PIXGATE_SCORE=f"{verdict.score:.3f}", PIXGATE_RUN=str(run or ""))
    if json_path is not None:
        env["PIXGATE_VERDICT_JSON"] = str(json_path)
    say(f"running --on-fail: {command}")
    try:
        done = subprocess.run(["/bin/sh", "-c", command], env=env, timeout=GATE_ON_FAIL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        say(f"--on-fail command timed out after {GATE_ON_FAIL_TIMEOUT_S:g} s")
        return {"command": command, "exit_code": None, "timed_out": True}
    say(f"--on-fail command exited {done.returncode}")
    return {"command": command, "exit_code": done.returncode, "timed_out": False}


@dataclass(frozen=True)
class Decision:
    """A verdict and what was done about it.

    Attributes:
        verdict: The gate's verdict.
        blocked: Whether it stops the change (the command exits 1).
        document: The verdict file's content (with `on_fail` when a command ran).
    """

    verdict: Verdict
    blocked: bool
    document: dict[str, Any]


def decide(
    verdict: Verdict,
    *,
    strict: bool = False,
    json_path: Path | None = None,
    on_fail: str | None = None,
    extra: dict[str, Any] | None = None,
    say: Callable[[str], None] = lambda _text: None,
) -> Decision:
    """Act on a verdict: write it, and when it blocks, run `on_fail` and write it again
    with what the command did.

    Args:
        verdict: The verdict.
        strict: A marginal verdict blocks too.
        json_path: Where to write the verdict file, or None.
        on_fail: Shell command to run when the verdict blocks.
        extra: Entries added to the verdict file (a canary's captures).
        say: Called with each line worth telling the user.

    Raises:
        pixgate.safe_io.OutputError: The verdict file could not be written.
    """
    blocked = verdict.blocks(strict=strict)
    document = {**verdict.to_dict(), **(extra or {})}
    if json_path is not None:
        write_verdict(document, json_path)
    if blocked and on_fail:
        run = verdict.context.get("run")
        document["on_fail"] = run_on_fail(on_fail, verdict, Path(run) if run else None, json_path, say)
        if json_path is not None:
            write_verdict(document, json_path)
    return Decision(verdict, blocked, document)


__all__ = ["Decision", "decide", "judge_run", "run_on_fail"]
