"""`score`: every pair of two folders into a run file, on this machine or on Ray.

The pieces: `pixgate.scoring.options` (what a run is asked, what it produced),
`pixgate.scoring.lifecycle` (what every run does, whatever the backend),
`pixgate.scoring.local` and `pixgate.scoring.ray_backend` (turning pairs into rows).
"""

from __future__ import annotations

from pixgate.scoring.lifecycle import OnRows, OnStart, run
from pixgate.scoring.local import LocalBackend
from pixgate.scoring.options import ScoreConfigError, ScoreOptions, ScoreResult


def run_score(
    opts: ScoreOptions,
    on_rows: OnRows | None = None,
    on_start: OnStart | None = None,
    *,
    backend: str = "local",
    ray_address: str | None = None,
    on_pairs: OnStart | None = None,
) -> ScoreResult:
    """Score every pair of two folders into `opts.output`.

    Args:
        opts: The run's settings.
        on_rows: Called with each group of rows as they are written (progress display).
        on_start: Called once scoring starts with (total pairs, pairs already done).
        backend: `local`, or `ray` (`pip install 'pixgate[ray]'`).
        ray_address: The Ray cluster to use; None starts a local Ray instance.
        on_pairs: Called once the pairs are known, before the model loads, with (total
            pairs, pairs already done).

    Returns:
        The final table, the run's statistics and the run file's path.

    Raises:
        ScoreConfigError: Bad folders, device, weights or resume state, an output in use
            or that would be replaced without `overwrite`; nothing written.
        pixgate.safe_io.OutputError: The journal or run file could not be written (a full
            disk); the rows written so far stay in the journal.
    """
    if backend == "ray":
        from pixgate.scoring.ray_backend import RayBackend

        return run(opts, RayBackend(ray_address), on_rows, on_start, on_pairs)
    if backend != "local":
        raise ScoreConfigError.about("{backend} must be one of local, ray; got {got!r}", got=backend)
    if ray_address is not None:
        raise ScoreConfigError.about("{ray_address} {address!r} needs {backend_ray}", address=ray_address)
    return run(opts, LocalBackend(), on_rows, on_start, on_pairs)


__all__ = ["ScoreConfigError", "ScoreOptions", "ScoreResult", "run_score"]
