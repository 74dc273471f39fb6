"""pixgate: batch scoring of image pairs for generator migrations, and the gate on them.

The Python API, the same core the `pixgate` command calls::

    import pixgate

    result = pixgate.score("baseline/", "candidate/", "run.arrow", overwrite=True)
    verdict = pixgate.judge("run.arrow", "policy.toml")  # a file: bound to its sha256
    if verdict.blocks():
        ...

    table = pixgate.read_run("run.arrow")          # any run file, checked

Importing the package is cheap: each name below is imported on first use, and judging
(`judge`, `load_policy`, `read_run`, `read_verdict`) never imports torch, so any CI box
can judge a run.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixgate.config import OMP_WAIT_POLICY

__version__ = "0.1.0"

# torch and the numba kernels each keep an OpenMP thread pool in the scoring process. By
# default a pool's threads spin for a while after every parallel region, and each
# hand-over from one pool to the other then waits for cores the spinning threads hold;
# sleeping threads give them up at once. It must be set before either runtime starts: here,
# on the first import of pixgate, it reaches the `pixgate` command, its worker processes
# and any program that imports pixgate before torch; a setting of the caller's own stands.
os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)

if TYPE_CHECKING:
    from pixgate.judging.decision import Decision, decide
    from pixgate.judging.decision import judge_run as judge
    from pixgate.judging.gate import GateInputError, RuleResult, Verdict
    from pixgate.judging.policy import Policy, PolicyError, load_policy
    from pixgate.runs.files import RunFileError, read_run, read_verdict, run_metadata, write_verdict
    from pixgate.safe_io import OutputError
    from pixgate.scoring.lifecycle import OnRows
    from pixgate.scoring.options import ScoreConfigError, ScoreOptions, ScoreResult
    from pixgate.scoring.summary import RunSummary, summarize

#: name -> (module, attribute): where each lazily imported name of the API lives.
_LAZY: dict[str, tuple[str, str]] = {
    "Decision": ("pixgate.judging.decision", "Decision"),
    "GateInputError": ("pixgate.judging.gate", "GateInputError"),
    "OutputError": ("pixgate.safe_io", "OutputError"),
    "Policy": ("pixgate.judging.policy", "Policy"),
    "PolicyError": ("pixgate.judging.policy", "PolicyError"),
    "RuleResult": ("pixgate.judging.gate", "RuleResult"),
    "RunFileError": ("pixgate.runs.files", "RunFileError"),
    "RunSummary": ("pixgate.scoring.summary", "RunSummary"),
    "ScoreConfigError": ("pixgate.scoring.options", "ScoreConfigError"),
    "ScoreOptions": ("pixgate.scoring.options", "ScoreOptions"),
    "ScoreResult": ("pixgate.scoring.options", "ScoreResult"),
    "Verdict": ("pixgate.judging.gate", "Verdict"),
    "decide": ("pixgate.judging.decision", "decide"),
    "judge": ("pixgate.judging.decision", "judge_run"),
    "load_policy": ("pixgate.judging.policy", "load_policy"),
    "read_run": ("pixgate.runs.files", "read_run"),
    "read_verdict": ("pixgate.runs.files", "read_verdict"),
    "run_metadata": ("pixgate.runs.files", "run_metadata"),
    "summarize": ("pixgate.scoring.summary", "summarize"),
    "write_verdict": ("pixgate.runs.files", "write_verdict"),
}


def score(
    baseline: Path | str,
    candidate: Path | str,
    output: Path | str,
    *,
    backend: str = "local",
    ray_address: str | None = None,
    on_rows: OnRows | None = None,
    **options: Any,
) -> ScoreResult:
    """Score every pair of two folders into a run file.

    Args:
        baseline: Folder of reference images (a URI such as s3://bucket/run with the Ray
            backend).
        candidate: Folder of images to compare against them (paired by relative path).
        output: The run file to write (Arrow IPC).
        backend: `local`, or `ray`.
        ray_address: The Ray cluster to use; None starts a local Ray instance.
        on_rows: Called with each group of rows as they are written.
        **options: Any other field of `ScoreOptions` (`overwrite`, `resume`, `device`,
            `weights`, `net`, `no_lpips`, `typography`, ...).

    Returns:
        The run: `.table` (pyarrow, sorted by pair_id, with its metadata), `.stats`,
        `.path`.

    Raises:
        ScoreConfigError: A usage problem (bad folders, options, weights; an output that
            would be replaced without `overwrite=True`); nothing written.
        OutputError: The run file could not be written.
        TypeError: An option that `ScoreOptions` does not have.
    """
    from pixgate.scoring.options import ScoreOptions
    from pixgate.scoring.score import run_score

    opts = ScoreOptions(baseline, candidate, Path(output), **options)
    return run_score(opts, on_rows, backend=backend, ray_address=ray_address)


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'pixgate' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *globals()})


__all__ = [
    "Decision",
    "GateInputError",
    "OutputError",
    "Policy",
    "PolicyError",
    "RuleResult",
    "RunFileError",
    "RunSummary",
    "ScoreConfigError",
    "ScoreOptions",
    "ScoreResult",
    "Verdict",
    "__version__",
    "decide",
    "judge",
    "load_policy",
    "read_run",
    "read_verdict",
    "run_metadata",
    "score",
    "summarize",
    "write_verdict",
]
