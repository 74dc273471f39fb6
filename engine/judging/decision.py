"""Judge and act: a run file and a policy in, a verdict, whether it blocks, and what was
done about it out.

`pixgate gate`, `pixgate canary` and the Python API all go through here, so the fit
checks, "does this verdict block?", the verdict file and the `--on-fail` command are
written once.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixgate.config import GATE_ON_FAIL_TIMEOUT_MAX_S, GATE_ON_FAIL_TIMEOUT_S
from pixgate.errors import UsageError
from pixgate.judging.gate import Verdict, check_fits, judge
from pixgate.judging.policy import Policy, load_policy
from pixgate.runs.files import RunFileError, read_run, run_sha256, write_verdict
from pixgate.safe_io import check_output

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
    # Hashed before it is read: a run scored again in between gives a verdict bound to
    # bytes no file holds any more, refused later, never one bound to bytes not judged.
    digest = None
    if isinstance(run, Path | str):
        with contextlib.suppress(RunFileError):  # read_run says what is wrong with it
            digest = run_sha256(Path(run))
    table, run_path = _table(run)
    check_fits(table, rules, run_path or Path("<table>"))
    other, against_path = _table(against) if against is not None else (None, None)
    if other is not None:
        check_fits(other, rules, against_path or Path("<table>"))
    return judge(
        rules, table, other, run_path=run_path, against_path=against_path, comparisons=comparisons, run_sha256=digest
    )


def _table(run: pa.Table | Path | str) -> tuple[pa.Table, Path | None]:
    if isinstance(run, Path | str):
        return read_run(Path(run), kind="run"), Path(run)
    return run, None


class OnFailError(UsageError, ValueError):
    """An `--on-fail` setting that cannot be used (a time limit out of range)."""

    options = frozenset({"on_fail", "on_fail_timeout"})


def check_on_fail_timeout(seconds: float) -> float:
    """`seconds` as an `--on-fail` time limit: above 0 and at most
    `GATE_ON_FAIL_TIMEOUT_MAX_S`, checked before anything runs.

    Raises:
        OnFailError: Out of that range, or not a number (NaN, infinity).
    """
    number = not isinstance(seconds, bool) and isinstance(seconds, int | float) and math.isfinite(seconds)
    if not (number and 0 < seconds <= GATE_ON_FAIL_TIMEOUT_MAX_S):
        raise OnFailError.about(
            "{on_fail_timeout}: got {got}; use a number of seconds above 0 and at most {most:g}",
            got=seconds,
            most=GATE_ON_FAIL_TIMEOUT_MAX_S,
        )
    return float(seconds)


def run_on_fail(
    command: str,
    verdict: Verdict,
    run: Path | None,
    json_path: Path | None,
    say: Callable[[str], None],
    timeout_s: float = GATE_ON_FAIL_TIMEOUT_S,
) -> dict[str, Any]:
    """Run a blocked verdict's `--on-fail` command (a rollback, say) through /bin/sh.

    It gets PIXGATE_VERDICT, PIXGATE_SCORE, PIXGATE_RUN and PIXGATE_VERDICT_JSON in its
    environment and at most `timeout_s` seconds. It runs in a process group of its own:
    when time runs out (or pixgate is interrupted) the whole group is killed (SIGKILL),
    so nothing it started, in the foreground or the background, outlives the limit.

    Returns:
        What happened, for the verdict file: the command, its exit code (None when it
        timed out or could not start; negative: the signal that ended it), whether it
        timed out, its wall time and the limit, in seconds.
    """
    env = dict(os.environ)
    env.update(PIXGATE_VERDICT=verdict.verdict, PIXGATE_SCORE=f"{verdict.score:.3f}", PIXGATE_RUN=str(run or ""))
    if json_path is not None:
        env["PIXGATE_VERDICT_JSON"] = str(json_path)
    say(f"running --on-fail: {command}")
    record: dict[str, Any] = {"command": command, "exit_code": None, "timed_out": False, "timeout_s": timeout_s}
    started = time.monotonic()
    try:
        proc = subprocess.Popen(["/bin/sh", "-c", command], env=env, process_group=0)
    except OSError as exc:
        record.update(wall_s=round(time.monotonic() - started, 3), error=f"could not start /bin/sh: {exc.strerror}")
        say(f"--on-fail command could not start: {exc.strerror}")
        return record
    try:
        code: int | None = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        code = None
        record["timed_out"] = True
    except BaseException:  # Ctrl-C: the command does not outlive pixgate
        _kill_group(proc)
        raise
    record.update(exit_code=code, wall_s=round(time.monotonic() - started, 3))
    if code is None:
        say(f"--on-fail command timed out after {timeout_s:g} s: its process group was killed")
    else:
        say(f"--on-fail command exited {code}")
    return record


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the command's whole process group, then reap the command."""
    with contextlib.suppress(ProcessLookupError):  # the whole group had ended meanwhile
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


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
    on_fail_timeout: float = GATE_ON_FAIL_TIMEOUT_S,
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
        on_fail_timeout: Seconds `on_fail` may run before its process group is killed
            (`check_on_fail_timeout`).
        extra: Entries added to the verdict file (a canary's captures).
        say: Called with each line worth telling the user.

    Raises:
        OnFailError: `on_fail_timeout` out of range (checked before anything is written).
        pixgate.safe_io.OutputError: The verdict file could not be written, is not a
            regular file, or is one of the files judged.
    """
    timeout_s = check_on_fail_timeout(on_fail_timeout)
    if json_path is not None:  # never over the run, the policy or the earlier run it judged
        judged = (verdict.context.get(key) for key in ("run", "against"))
        policy = verdict.context.get("policy", {}).get("path")
        check_output(Path(json_path), [Path(p) for p in (*judged, policy) if isinstance(p, str) and p])
    blocked = verdict.blocks(strict=strict)
    document = {**verdict.to_dict(), **(extra or {})}
    if json_path is not None:
        write_verdict(document, json_path)
    if blocked and on_fail:
        run = verdict.context.get("run")
        document["on_fail"] = run_on_fail(on_fail, verdict, Path(run) if run else None, json_path, say, timeout_s)
        if json_path is not None:
            write_verdict(document, json_path)
    return Decision(verdict, blocked, document)


__all__ = ["Decision", "OnFailError", "check_on_fail_timeout", "decide", "judge_run", "run_on_fail"]
