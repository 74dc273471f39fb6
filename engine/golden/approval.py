"""Approving a reviewed run's candidates as a golden set's new baselines, all or nothing
(the steps and the recovery are described in `pixgate.golden.golden_set`)."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pixgate.config import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, TEXT_INPUT_MAX_BYTES
from pixgate.golden.golden_set import (
    BACKUP,
    BASELINE,
    CHANGELOG,
    MANIFEST,
    STAGING,
    ApprovalRefused,
    GoldenError,
    clash,
    inside_golden,
    lock_name,
    move_file,
    own_file,
    read_entries,
    recover,
    remove_quietly,
    write_plan,
)
from pixgate.locking import holding
from pixgate.runs import schema
from pixgate.safe_io import (
    UnsafeInputError,
    atomic_write,
    fsync_dir,
    inside,
    read_regular,
    remove_tree,
    write_new,
    writing,
)


@dataclass
class Approval:
    """One approved image.

    Attributes:
        pair_id: The pair.
        baseline: New baseline file, relative to the golden folder.
        sha256: Its sha256.
        previous: The replaced baseline file (relative), or None for a new entry.
        previous_sha256: Its sha256 as the manifest recorded it, or None.
    """

    pair_id: str
    baseline: str
    sha256: str
    previous: str | None
    previous_sha256: str | None


def _load_verdict(path: Path, run: Path, read_sha256: str, force: bool) -> dict[str, Any]:
    """The run's verdict, refused when it judged another run or this one before it was
    scored again (`pixgate.runs.files.check_verdict_run`), `force` or not: a verdict of
    other bytes says nothing about these. The run is hashed before it was read
    (`read_sha256`) and again now: both must be the verdict's, so the rows approve took
    are the bytes the verdict judged even when the file was replaced meanwhile."""
    from pixgate.runs.files import RunFileError, check_verdict_run, read_verdict

    try:
        verdict = read_verdict(path, run=run)
        check_verdict_run(verdict, path, run, found=read_sha256)
    except RunFileError as exc:
        raise GoldenError.about("{verdict}: {problem}", problem=exc) from None
    if verdict["verdict"] == "fail" and not force:
        raise ApprovalRefused.about(
            "the run's verdict is fail ({reason}); review it and pass {force} to approve anyway",
            reason=verdict.get("reason", "see the verdict"),
        )
    return verdict


def parse_ids(values: list[str] | None) -> list[str] | None:
    """The pair ids given as `--ids` values, each one id or several separated by commas;
    None when no value was given (every pair).

    Raises:
        GoldenError: Values were given but name no pair (`--ids ''`, `--ids ,,,`): an
            empty list must never read as "every pair".
    """
    if values is None:
        return None
    ids = [i for value in values for i in value.split(",") if i.strip()]
    if not ids:
        raise GoldenError.about(
            "{ids}: got {got}, which names no pair; give pair ids of the run, separated by commas or one per "
            "{ids}, or leave {ids} out to approve every pair",
            got=", ".join(repr(v) for v in values) or "no value",
        )
    return ids


def _existing_baseline(golden: Path, entry: dict[str, Any] | None, pair_id: str) -> str | None:
    if entry is not None and isinstance(entry.get("baseline"), str):
        recorded = inside_golden(golden, entry["baseline"], f"{MANIFEST}: entry {pair_id!r} records")
        if recorded.is_file():
            return str(entry["baseline"])
    folder = (golden / BASELINE / pair_id).parent
    stem = Path(pair_id).name
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.stem == stem and path.suffix.lower() in IMAGE_EXTENSIONS:
                return path.relative_to(golden).as_posix()
    return None


def _candidate_file(
    golden: Path, pid: str, row: dict[str, Any], root: str | None, files_under: Path
) -> tuple[Path, str]:
    """The candidate of a run's row and where it goes in the golden set, both checked.

    Raises:
        GoldenError: A pair id that would write outside `baseline/`, or a candidate path
            outside the candidate folder the run recorded or outside `files_under` (the
            run file is data: its recorded folder alone could name any folder).
    """
    source_text = row.get(schema.CANDIDATE_PATH.name)
    if not isinstance(source_text, str) or not source_text:
        raise GoldenError(f"{pid}: the run records no candidate file")
    source = Path(source_text)
    if root is None or "://" in root or not inside(source, Path(root)):
        raise GoldenError(
            f"{pid}: the candidate {source} is not inside the candidate folder the run recorded ({root}); "
            "approve only runs written by `pixgate score` on local folders"
        )
    if not inside(source, files_under):
        raise GoldenError.about(
            "{pid}: the candidate {source} is not under {under}: approve reads candidates only under "
            "{files_under} (default: the current folder); name the folder that holds them",
            pid=pid,
            source=source,
            under=files_under,
        )
    if source.suffix.lower() not in IMAGE_EXTENSIONS:
        known = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise GoldenError(f"{pid}: the candidate {source} has no image extension ({known})")
    final = f"{BASELINE}/{pid}{source.suffix.lower()}"
    inside_golden(golden, final, f"pair id {pid!r} would write")
    return source, final


def approve(
    run: Path,
    golden: Path,
    *,
    ids: list[str] | None = None,
    verdict_path: Path | None = None,
    force: bool = False,
    by: str | None = None,
    on_staged: Callable[[int, int, str], None] | None = None,
    files_under: Path | None = None,
) -> list[Approval]:
    """Make a run's candidates the golden baselines of their pairs (see the module).

    Args:
        run: The run file whose candidates are approved.
        golden: The golden set's folder.
        ids: Pairs to approve; every pair of the run when None (an empty list is an
            error, never every pair).
        verdict_path: The run's verdict from `pixgate gate --json`; it must record this
            run file's sha256 as it is now.
        force: Approve without a verdict, or despite a failed one.
        by: Who approves; else `PIXGATE_APPROVER`, else the login name.
        on_staged: Called with (done, total, pair_id) as each image is staged.
        files_under: Candidates are read only under this folder (default: the current
            folder), and only inside the candidate folder the run recorded.

    Returns:
        One entry per approved image.

    Raises:
        GoldenError: Unreadable run, verdict or golden set; a verdict of another run, or
            of this one before it was scored again; no ids or unknown ids.
        ApprovalRefused: Failed or missing verdict without `force`; rows that are not ok.
    """
    if not golden.is_dir():
        raise GoldenError.about("{golden}: {folder} is not a folder", folder=golden)
    with holding(golden / STAGING, lock_name(golden), GoldenError):
        return _approve_locked(run, golden, ids, verdict_path, force, by, on_staged, files_under or Path.cwd())


@dataclass(frozen=True)
class _Chosen:
    """The pairs an approval takes from a run, checked, and where their files go."""

    run: Path
    entries: list[dict[str, Any]]
    by_id: dict[str, dict[str, Any]]
    chosen: list[str]
    files: dict[str, tuple[Path, str]]
    previous: dict[str, str | None]
    max_pixels: int


def _choose(
    run: Path, golden: Path, ids: list[str] | None, verdict_path: Path | None, force: bool, files_under: Path
) -> tuple[_Chosen, dict[str, Any] | None]:
    """Read the run and the golden set, and check everything an approval needs before
    anything is written: the ids, their rows, the verdict, the candidate files and where
    they go. Returns the chosen pairs and the verdict (None with `force` and no verdict)."""
    from pixgate.runs.files import RunFileError, read_run, run_metadata, run_sha256

    try:
        read_sha256 = run_sha256(run)  # before it is read: see _load_verdict
        table = read_run(run, kind="run")
    except RunFileError as exc:
        raise GoldenError(f"{exc}") from None
    rows = {r[schema.PAIR_ID.name]: {**schema.empty_row(), **r} for r in table.to_pylist()}
    meta = run_metadata(table)
    # The run's own limit, but never above the default: the run file is data, and its
    # metadata could otherwise lift the bound on what approve reads into memory.
    recorded = meta.get(schema.META_MAX_PIXELS, "")
    max_pixels = DEFAULT_MAX_PIXELS
    if recorded.isdigit() and len(recorded) < 19:
        max_pixels = min(int(recorded), DEFAULT_MAX_PIXELS)
    if ids is not None and not ids:
        raise GoldenError.about("{ids}: an empty list names no pair; leave {ids} out to approve every pair")
    # An id given twice is one approval: one staged file, one changelog line.
    chosen = list(dict.fromkeys(ids)) if ids is not None else sorted(rows)
    unknown = [pid for pid in chosen if pid not in rows]
    if unknown:
        raise GoldenError.about("{ids}: not in {run_path}: {unknown}", run_path=run, unknown=", ".join(unknown))
    bad = [pid for pid in chosen if rows[pid][schema.STATUS.name] != schema.STATUS_OK]
    if bad:
        listing = "; ".join(f"{pid}: {rows[pid][schema.STATUS.name]} ({rows[pid][schema.ERROR.name]})" for pid in bad)
        raise ApprovalRefused.about(
            "rows that are not ok cannot be approved: {listing}; leave them out with {ids}", listing=listing
        )
    verdict = _load_verdict(verdict_path, run, read_sha256, force) if verdict_path is not None else None
    if verdict is None and not force:
        raise ApprovalRefused.about("no verdict: pass {verdict} VERDICT.json from `pixgate gate --json`, or {force}")
    entries = read_entries(golden)
    by_id = {e["id"]: e for e in entries}
    root = meta.get(schema.META_CANDIDATE_ROOT)
    files = {pid: _candidate_file(golden, pid, rows[pid], root, files_under) for pid in chosen}
    previous = {pid: _existing_baseline(golden, by_id.get(pid), pid) for pid in chosen}
    problem = clash([final for _, final in files.values()], [p for p in previous.values() if p is not None])
    if problem:
        raise GoldenError(f"{run}: the chosen pairs cannot be approved together: {problem}")
    return _Chosen(run, entries, by_id, chosen, files, previous, max_pixels), verdict


def _stage_files(
    chosen: _Chosen, stage: Path, on_staged: Callable[[int, int, str], None] | None
) -> tuple[list[Approval], list[dict[str, str]], list[str]]:
    """Copy each candidate, decoded first (only images become baselines), into the
    staging folder. Returns the approvals, the moves and the baselines to back up."""
    from pixgate.scoring.decode import DecodeError, decode_bytes, max_file_bytes, read_image_file

    approvals: list[Approval] = []
    moves: list[dict[str, str]] = []
    backups: list[str] = []
    for done, pid in enumerate(chosen.chosen, start=1):
        source, final = chosen.files[pid]
        try:
            data = read_image_file(source, chosen.max_pixels)
            decode_bytes(data, max_pixels=chosen.max_pixels)
        except DecodeError as exc:
            raise GoldenError.about(
                "{pid}: the candidate {source}: {problem}; rescore or leave it out with {ids} "
                "(at most {limit:,} bytes)",
                pid=pid,
                source=source,
                problem=exc,
                limit=max_file_bytes(chosen.max_pixels),
            ) from None
        staged = stage / "files" / final
        staged.parent.mkdir(parents=True, exist_ok=True)
        with writing(staged):
            write_new(staged, data, sync=True)
        replaced = chosen.previous[pid]
        if replaced is not None:
            backups.append(replaced)
        entry = chosen.by_id.get(pid)
        previous_sha = entry.get("sha256") if entry else None
        approvals.append(Approval(pid, final, hashlib.sha256(data).hexdigest(), replaced, previous_sha))
        moves.append({"final": final, "staged": f"files/{final}"})
        if on_staged is not None:
            on_staged(done, len(chosen.chosen), pid)
    return approvals, moves, backups


def _stage_records(
    chosen: _Chosen,
    golden: Path,
    stage: Path,
    approvals: list[Approval],
    verdict: dict[str, Any] | None,
    force: bool,
    who: str,
) -> bytes:
    """Write the new manifest and changelog into the staging folder; returns the
    manifest's bytes."""
    when = datetime.now(UTC).isoformat(timespec="seconds")
    source_run = str(chosen.run.resolve())
    entries = chosen.entries
    for a in approvals:
        record: dict[str, Any] = {"run": source_run, "date": when, "by": who, "previous_sha256": a.previous_sha256}
        if verdict is not None:
            record["verdict"] = verdict["verdict"]
        if force:
            record["forced"] = True
        entry = chosen.by_id.get(a.pair_id)
        if entry is None:
            entry = {"id": a.pair_id}
            entries.append(entry)
        entry.update({"baseline": a.baseline, "sha256": a.sha256, "approved": record})
    manifest_bytes = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries).encode()
    with writing(stage / MANIFEST):
        atomic_write(stage / MANIFEST, manifest_bytes)
    changelog = own_file(golden, CHANGELOG)
    try:
        log = read_regular(changelog, TEXT_INPUT_MAX_BYTES) if changelog.exists() or changelog.is_symlink() else b""
    except UnsafeInputError as exc:
        raise GoldenError(f"{changelog}: cannot read it: {exc}") from None
    for a in approvals:
        line = {
            "date": when,
            "id": a.pair_id,
            "by": who,
            "run": source_run,
            "verdict": verdict["verdict"] if verdict is not None else None,
            "forced": force,
            "baseline": a.baseline,
            "sha256": a.sha256,
            "previous": a.previous,
            "previous_sha256": a.previous_sha256,
        }
        log += (json.dumps(line, sort_keys=True) + "\n").encode()
    with writing(stage / CHANGELOG):
        atomic_write(stage / CHANGELOG, log)
    return manifest_bytes


def _commit(golden: Path, stage: Path, moves: list[dict[str, str]], backups: list[str]) -> None:
    """Swap the staged files in: back up what they replace, move them into place, then
    replace the manifest (the commit point). A failure before the manifest rolls back,
    after it completes (`recover`)."""
    try:
        for rel in backups:
            move_file(golden, rel, stage, f"{BACKUP}/{rel}")
        for move in moves:
            move_file(stage, move["staged"], golden, move["final"])
        fsync_dir(golden / BASELINE)
        os.replace(stage / MANIFEST, golden / MANIFEST)  # the commit point
        fsync_dir(golden)
        os.replace(stage / CHANGELOG, golden / CHANGELOG)
        remove_tree(stage)
    except BaseException:
        recover(golden)  # before the commit this rolls back; after it, it completes
        raise


def _approve_locked(
    run: Path,
    golden: Path,
    ids: list[str] | None,
    verdict_path: Path | None,
    force: bool,
    by: str | None,
    on_staged: Callable[[int, int, str], None] | None,
    files_under: Path,
) -> list[Approval]:
    """`approve` once the golden folder's lock is held: check, stage, plan, commit."""
    recover(golden)
    chosen, verdict = _choose(run, golden, ids, verdict_path, force, files_under)
    who = by or os.environ.get("PIXGATE_APPROVER") or getpass.getuser()
    stage = golden / STAGING
    stage.mkdir()
    try:
        approvals, moves, backups = _stage_files(chosen, stage, on_staged)
        manifest_bytes = _stage_records(chosen, golden, stage, approvals, verdict, force, who)
        plan = {"moves": moves, "backups": backups, "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest()}
        write_plan(stage, json.dumps(plan, indent=1).encode())
    except BaseException:
        remove_quietly(stage)  # nothing outside the staging folder changed yet
        raise
    _commit(golden, stage, moves, backups)
    return approvals


__all__ = ["Approval", "approve", "parse_ids"]
