"""Golden set management: reviewed approval of new baselines, and verification.

A golden set is a folder with `manifest.jsonl` (one entry per pair, pixgate.scoring.manifest)
and `baseline/`, the approved images. Each entry records its baseline file and sha256
(`baseline`, `sha256`); `changelog.jsonl` holds one line per approved image.

`approve` replaces baselines with a run's candidates so that a failure at any moment
(an error, a full disk, kill -9) leaves the golden set as it was or, past the commit
point, fully approved, never in between:

1. stage: copy every new image, the new manifest and the new changelog into
   `.pixgate-approve/` inside the golden folder (nothing visible changes);
2. write the plan (`plan.json`, fsynced, renamed into place);
3. move each replaced baseline into the staging folder as a backup, and each new image
   into `baseline/` (one rename each);
4. commit: rename the new manifest over the old one (atomic); then the changelog;
5. remove the staging folder.

`recover` (run first by `approve` and `golden verify`) finishes or undoes an interrupted
approval: without a plan it discards the staging folder; with a plan it looks at the
manifest, and rolls forward when the new manifest is in place (the commit happened),
back otherwise (backups return, new images go back to staging).

A golden folder arrives in pull requests, and so does a run file, so nothing in them is
trusted to name a path: pair ids, the manifest's `baseline` entries and every path of a
staging plan must stay inside the golden folder (under `baseline/`, or inside the
staging folder), and a candidate must lie inside the folder its run recorded. A plan
that fails these checks is reported and left untouched. Files are read only when they
are regular files. Approvals and recoveries hold a lock on the golden folder
(`.pixgate-approve.lock`), so two cannot interleave.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pixgate.config import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, TEXT_INPUT_MAX_BYTES
from pixgate.locking import LockBusy, LockUnavailable, OutputLock, holding
from pixgate.runs import schema
from pixgate.safe_io import (
    WRITE_ERRNOS,
    UnsafeInputError,
    atomic_write,
    contained,
    fsync_dir,
    inside,
    loads_json,
    printable,
    read_regular,
    read_text,
    remove_tree,
    sha256_regular,
    walk,
    write_new,
)

MANIFEST: str = "manifest.jsonl"
BASELINE: str = "baseline"
CHANGELOG: str = "changelog.jsonl"
STAGING: str = ".pixgate-approve"
_PLAN = "plan.json"
_BACKUP = "backup"  # inside the staging folder: the files an approval replaces


def _lock_name(golden: Path) -> str:
    return f"golden set {golden}"


class GoldenError(ValueError):
    """A usage problem: missing or malformed golden set, run, verdict, or unknown ids."""


class ApprovalRefused(Exception):
    """The approval is not allowed as asked (failed verdict, error rows, no verdict)."""


#: sha256 of a regular file's bytes (`pixgate.safe_io.UnsafeInputError` when it is not one).
file_sha256 = sha256_regular


def _own_file(folder: Path, name: str) -> Path:
    """One of the golden set's own files (manifest, changelog, plan), refused when it is a
    link that leads out of its folder: it would be read, and written back into the set."""
    try:
        return contained(folder, name)
    except UnsafeInputError as exc:
        raise GoldenError(f"{folder}: {exc}; left untouched") from None


def _inside_golden(golden: Path, rel: object, what: str) -> Path:
    """`golden / rel` for a path under `baseline/` read from data, or a GoldenError."""
    if not isinstance(rel, str) or not rel.startswith(BASELINE + "/"):
        raise GoldenError(f"{golden}: {what} {rel!r} is not a path under {BASELINE}/")
    try:
        return contained(golden, rel)
    except UnsafeInputError as exc:
        raise GoldenError(f"{golden}: {what} {exc}") from None


def _read_entries(golden: Path) -> list[dict[str, Any]]:
    if not golden.is_dir():
        raise GoldenError(f"--golden: {golden} is not a folder")
    path = _own_file(golden, MANIFEST)
    if not path.is_file():
        raise GoldenError(f"{golden}: no {MANIFEST}; a golden set is a folder with {MANIFEST} and {BASELINE}/")
    try:
        text = read_text(path)
    except UnsafeInputError as exc:
        raise GoldenError(f"{path}: cannot read it: {exc}") from None
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = loads_json(line)
        except json.JSONDecodeError as exc:
            raise GoldenError(f"{path}:{number}: not valid JSON: {exc.msg}") from None
        except ValueError as exc:
            raise GoldenError(f"{path}:{number}: not usable JSON: {exc}") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise GoldenError(f"{path}:{number}: each line must be a JSON object with a string 'id'")
        if entry.get("baseline") is not None and not isinstance(entry["baseline"], str):
            raise GoldenError(f"{path}:{number}: 'baseline' must be a path such as baseline/x.png")
        entries.append(entry)
    ids = [e["id"] for e in entries]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise GoldenError(f"{path}: ids appear more than once: {', '.join(map(repr, twice))}")
    return entries


def _check_stage(golden: Path) -> Path:
    stage = golden / STAGING
    if stage.is_symlink() or not stage.is_dir():
        raise GoldenError(f"{stage} is not a folder (a symlink, or a file); left untouched: remove it by hand")
    if not inside(stage, golden):
        raise GoldenError(f"{stage} leads outside {golden}; left untouched: remove it by hand")
    return stage


def _read_plan(golden: Path, stage: Path) -> dict[str, Any]:
    """The staging plan, every path in it checked to stay where it belongs.

    Raises:
        GoldenError: An unreadable plan, or one whose paths lead elsewhere, repeat, or
            nest one inside another.
    """
    path = _own_file(stage, _PLAN)
    try:
        plan = loads_json(read_text(path))
    except ValueError as exc:  # UnsafeInputError too
        raise GoldenError(f"{path}: cannot read the staging plan ({exc}); left untouched") from None
    untouched = "; the plan and the golden set are left untouched"
    if not isinstance(plan, dict) or not isinstance(plan.get("manifest_sha256"), str):
        raise GoldenError(f"{path}: not a staging plan written by `pixgate approve`{untouched}")
    moves, backups = plan.get("moves"), plan.get("backups")
    if not (isinstance(moves, list) and isinstance(backups, list)):
        raise GoldenError(f"{path}: not a staging plan written by `pixgate approve`{untouched}")
    finals: list[str] = []
    stageds: list[str] = []
    for move in moves:
        if not (isinstance(move, dict) and isinstance(move.get("final"), str) and isinstance(move.get("staged"), str)):
            raise GoldenError(f"{path}: not a staging plan written by `pixgate approve`{untouched}")
        finals.append(move["final"])
        stageds.append(move["staged"])
    if not all(isinstance(rel, str) for rel in backups):
        raise GoldenError(f"{path}: not a staging plan written by `pixgate approve`{untouched}")
    try:
        for final, staged in zip(finals, stageds, strict=True):
            _inside_golden(golden, final, "the plan moves a file to")
            contained(stage, staged)
        for rel in backups:
            _inside_golden(golden, rel, "the plan backs up")
            contained(stage, f"{_BACKUP}/{rel}")  # from the stage: `backup` itself may be a link
    except (GoldenError, UnsafeInputError) as exc:
        raise GoldenError(f"{path}: {exc}{untouched}") from None
    # Golden-side paths (new files, backed-up files) and stage-side paths may not repeat
    # or nest: the moves are done one file at a time.
    problem = _clash(finals, backups) or _clash(stageds + [f"{_BACKUP}/{rel}" for rel in backups], [])
    if problem:
        raise GoldenError(f"{path}: {problem} in the staging plan{untouched}")
    return plan


def _clash(finals: list[str], backups: list[str]) -> str | None:
    """Why a set of file moves cannot be done one file at a time, or None: a file named
    twice, or a file that is also a folder of another."""
    if len(set(finals)) != len(finals) or len(set(backups)) != len(backups):
        return "a file appears twice"
    files = set(finals) | set(backups)
    folders = {"/".join(rel.split("/")[:i]) for rel in files for i in range(1, rel.count("/") + 1)}
    if folders & files:
        return f"{sorted(folders & files)[0]!r} is both a file and a folder of another"
    return None


def recover(golden: Path) -> str | None:
    """Finish or undo an interrupted approval; returns what was done, or None.

    Raises:
        GoldenError: The staging folder or its plan is not what `approve` writes (a path
            in it leads outside the golden set, say), or a file of it cannot be moved or
            removed; it is left as it is from there.
    """
    try:
        return _recover(golden)
    except OSError as exc:
        if exc.errno in WRITE_ERRNOS:
            raise  # the machine's problem, reported as such (exit 2 naming the file)
        where = f" {exc.filename}" if exc.filename else ""
        raise GoldenError(f"{golden}: recovering an interrupted approval failed at{where}: {exc.strerror}") from None


def _recover(golden: Path) -> str | None:
    stage = golden / STAGING
    if not stage.exists() and not stage.is_symlink():
        return None
    stage = _check_stage(golden)
    plan_path = stage / _PLAN
    if not plan_path.exists() and not plan_path.is_symlink():
        remove_tree(stage)
        return "discarded an approval interrupted before it changed anything"
    plan = _read_plan(golden, stage)
    manifest = _own_file(golden, MANIFEST)
    try:
        committed = manifest.is_file() and file_sha256(manifest) == plan["manifest_sha256"]
    except UnsafeInputError:
        committed = False
    if committed:
        _move_file(stage, CHANGELOG, golden, CHANGELOG)
        remove_tree(stage)
        fsync_dir(golden)
        return "completed an approval interrupted after its commit"
    for move in reversed(plan["moves"]):
        if not _lexists(stage / move["staged"]):
            _move_file(golden, move["final"], stage, move["staged"])
    for rel in plan["backups"]:
        _move_file(stage, f"{_BACKUP}/{rel}", golden, rel)
    remove_tree(stage)
    fsync_dir(golden / BASELINE)
    return "rolled back an approval interrupted before its commit"


def _remove_quietly(stage: Path) -> None:
    with contextlib.suppress(OSError):
        remove_tree(stage)


def _lexists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _move_file(src_root: Path, src_rel: str, dst_root: Path, dst_rel: str) -> bool:
    """Move one regular file within the golden set; False when it is not there.

    Both paths are checked at the moment of use, not only when the plan is read: an
    earlier move could otherwise bring a link into a path that a later one goes through.
    Only regular files move, never a link or a folder.

    Raises:
        GoldenError: A path that leads out, or something other than a regular file.
    """
    try:
        src, dst = contained(src_root, src_rel), contained(dst_root, dst_rel)
    except UnsafeInputError as exc:
        raise GoldenError(f"{src_root}: {exc}; stopped before moving anything more") from None
    try:
        mode = os.lstat(src).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(mode):
        raise GoldenError(f"{src} is not a regular file (a link or a folder); stopped before moving it")
    if _lexists(dst) and not stat.S_ISREG(os.lstat(dst).st_mode):
        raise GoldenError(f"{dst} is in the way (a link or a folder); stopped before moving {src} there")
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)
    return True


@dataclass
class VerifyReport:
    """What `verify` found.

    Attributes:
        checked: Files whose sha256 matched.
        missing: (id, path) of recorded files that are not there.
        changed: (id, path) of files whose sha256 differs from the manifest's.
        unreadable: (id, path, why) of recorded paths that are not readable regular files
            (a FIFO, a folder, a symlink loop).
        extra: Image files under baseline/ that no entry records.
        unrecorded: Ids whose entry has no `baseline` or no `sha256`.
        recovered: What `recover` did first, if anything.
    """

    checked: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    changed: list[tuple[str, str]] = field(default_factory=list)
    unreadable: list[tuple[str, str, str]] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)
    recovered: str | None = None

    @property
    def clean(self) -> bool:
        """Every recorded file is there and unchanged, and nothing else is."""
        return not (self.missing or self.changed or self.unreadable or self.extra or self.unrecorded)


def verify(golden: Path) -> VerifyReport:
    """Check every baseline file of a golden set against the manifest's sha256.

    Raises:
        GoldenError: No golden set there, or its manifest is malformed.
    """
    report = VerifyReport()
    staging = golden.is_dir() and ((golden / STAGING).exists() or (golden / STAGING).is_symlink())
    lock = None
    if golden.is_dir():
        try:  # an approval in progress holds it: do not read its half-moved files
            lock = OutputLock(golden / STAGING, _lock_name(golden)).acquire()
        except LockBusy as exc:
            raise GoldenError(str(exc)) from None
        except LockUnavailable as exc:
            if staging:  # a recovery must not run unguarded
                raise GoldenError(str(exc)) from None
            # a read-only checkout: nothing can change it while it is read
    try:
        if staging:
            report.recovered = recover(golden)
        _verify_files(golden, report)
    finally:
        if lock is not None:
            lock.release()
    return report


def _verify_files(golden: Path, report: VerifyReport) -> None:
    entries = _read_entries(golden)
    recorded = set()
    for entry in entries:
        rel, sha = entry.get("baseline"), entry.get("sha256")
        if not isinstance(rel, str) or not isinstance(sha, str):
            report.unrecorded.append(entry["id"])
            continue
        path = _inside_golden(golden, rel, f"{MANIFEST}: entry {entry['id']!r} records")
        recorded.add(rel)
        if not path.exists() and not path.is_symlink():
            report.missing.append((entry["id"], rel))
            continue
        try:
            found = file_sha256(path)
        except UnsafeInputError as exc:
            report.unreadable.append((entry["id"], rel, str(exc)))
            continue
        if found == sha:
            report.checked.append(rel)
        else:
            report.changed.append((entry["id"], rel))
    base = golden / BASELINE
    for dirpath, dirnames, filenames in walk(base):  # links to folders are not followed
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            rel = path.relative_to(golden).as_posix()
            if path.suffix.lower() in IMAGE_EXTENSIONS and rel not in recorded:
                report.extra.append(printable(rel))


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


def _load_verdict(path: Path, run: Path, force: bool) -> dict[str, Any] | None:
    from pixgate.runs.files import RunFileError, read_verdict

    try:
        verdict = read_verdict(path)
    except RunFileError as exc:
        raise GoldenError(f"--verdict: {exc}") from None
    judged = verdict.get("run")
    if not force and judged and not _same_file(judged, run):
        raise ApprovalRefused(f"--verdict: {path} judged {judged}, not {run}; judge this run, or pass --force")
    if verdict["verdict"] == "fail" and not force:
        raise ApprovalRefused(
            f"the run's verdict is fail ({verdict.get('reason', 'see the verdict')}); "
            "review it and pass --force to approve anyway"
        )
    return verdict


def _same_file(recorded: str, run: Path) -> bool:
    try:
        return Path(recorded).resolve() == run.resolve()
    except (OSError, RuntimeError, ValueError):  # a loop, a NUL byte: not this run
        return False


def _existing_baseline(golden: Path, entry: dict[str, Any] | None, pair_id: str) -> str | None:
    if entry is not None and isinstance(entry.get("baseline"), str):
        recorded = _inside_golden(golden, entry["baseline"], f"{MANIFEST}: entry {pair_id!r} records")
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
        raise GoldenError(
            f"{pid}: the candidate {source} is not under {files_under}: approve reads candidates only under "
            "--files-under (default: the current folder); name the folder that holds them"
        )
    if source.suffix.lower() not in IMAGE_EXTENSIONS:
        known = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise GoldenError(f"{pid}: the candidate {source} has no image extension ({known})")
    final = f"{BASELINE}/{pid}{source.suffix.lower()}"
    _inside_golden(golden, final, f"pair id {pid!r} would write")
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
        ids: Pairs to approve; every pair of the run when None.
        verdict_path: The run's verdict from `pixgate gate --json`.
        force: Approve without a verdict, or despite a failed one.
        by: Who approves; else `PIXGATE_APPROVER`, else the login name.
        on_staged: Called with (done, total, pair_id) as each image is staged.
        files_under: Candidates are read only under this folder (default: the current
            folder), and only inside the candidate folder the run recorded.

    Returns:
        One entry per approved image.

    Raises:
        GoldenError: Unreadable run, verdict or golden set; unknown ids.
        ApprovalRefused: Failed or missing verdict without `force`; rows that are not ok.
    """
    if not golden.is_dir():
        raise GoldenError(f"--golden: {golden} is not a folder")
    with holding(golden / STAGING, _lock_name(golden), GoldenError):
        return _approve_locked(run, golden, ids, verdict_path, force, by, on_staged, files_under or Path.cwd())


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
    """`approve` once the golden folder's lock is held."""
    from pixgate.runs.files import RunFileError, read_run, run_metadata
    from pixgate.scoring.decode import DecodeError, decode_bytes, max_file_bytes, read_image_file

    recover(golden)
    try:
        table = read_run(run)
    except RunFileError as exc:
        raise GoldenError(f"{exc}") from None
    if schema.PAIR_ID.name not in table.column_names:
        raise GoldenError(f"{run}: not a run file from `pixgate score` (no {schema.PAIR_ID.name} column)")
    rows = {r[schema.PAIR_ID.name]: {**schema.empty_row(), **r} for r in table.to_pylist()}
    meta = run_metadata(table)
    candidate_root = meta.get(schema.META_CANDIDATE_ROOT)
    # The run's own limit, but never above the default: the run file is data, and its
    # metadata could otherwise lift the bound on what approve reads into memory.
    recorded = meta.get(schema.META_MAX_PIXELS, "")
    max_pixels = DEFAULT_MAX_PIXELS
    if recorded.isdigit() and len(recorded) < 19:
        max_pixels = min(int(recorded), DEFAULT_MAX_PIXELS)
    chosen = ids if ids else sorted(rows)
    unknown = [pid for pid in chosen if pid not in rows]
    if unknown:
        raise GoldenError(f"--ids: not in {run}: {', '.join(unknown)}")
    bad = [pid for pid in chosen if rows[pid][schema.STATUS.name] != schema.STATUS_OK]
    if bad:
        listing = "; ".join(f"{pid}: {rows[pid][schema.STATUS.name]} ({rows[pid][schema.ERROR.name]})" for pid in bad)
        raise ApprovalRefused(f"rows that are not ok cannot be approved: {listing}; leave them out with --ids")
    verdict = _load_verdict(verdict_path, run, force) if verdict_path is not None else None
    if verdict is None and not force:
        raise ApprovalRefused("no verdict: pass --verdict VERDICT.json from `pixgate gate --json`, or --force")
    entries = _read_entries(golden)
    by_id = {e["id"]: e for e in entries}
    files = {pid: _candidate_file(golden, pid, rows[pid], candidate_root, files_under) for pid in chosen}
    previous = {pid: _existing_baseline(golden, by_id.get(pid), pid) for pid in chosen}
    problem = _clash([final for _, final in files.values()], [p for p in previous.values() if p is not None])
    if problem:
        raise GoldenError(f"{run}: the chosen pairs cannot be approved together: {problem}")
    who = by or os.environ.get("PIXGATE_APPROVER") or getpass.getuser()
    when = datetime.now(UTC).isoformat(timespec="seconds")

    stage = golden / STAGING
    stage.mkdir()
    try:
        approvals: list[Approval] = []
        moves, backups = [], []
        for done, pid in enumerate(chosen, start=1):
            source, final = files[pid]
            try:
                data = read_image_file(source, max_pixels)
                decode_bytes(data, max_pixels=max_pixels)  # only images become baselines
            except DecodeError as exc:
                raise GoldenError(
                    f"{pid}: the candidate {source}: {exc}; rescore or leave it out with --ids "
                    f"(at most {max_file_bytes(max_pixels):,} bytes)"
                ) from None
            staged = stage / "files" / final
            staged.parent.mkdir(parents=True, exist_ok=True)
            write_new(staged, data, sync=True)
            replaced = previous[pid]
            if replaced is not None:
                backups.append(replaced)
            entry = by_id.get(pid)
            approvals.append(
                Approval(pid, final, hashlib.sha256(data).hexdigest(), replaced, entry.get("sha256") if entry else None)
            )
            moves.append({"final": final, "staged": f"files/{final}"})
            if on_staged is not None:
                on_staged(done, len(chosen), pid)

        source_run = str(run.resolve())
        for a in approvals:
            record: dict[str, Any] = {
                "run": source_run,
                "date": when,
                "by": who,
                "previous_sha256": a.previous_sha256,
            }
            if verdict is not None:
                record["verdict"] = verdict["verdict"]
            if force:
                record["forced"] = True
            entry = by_id.get(a.pair_id)
            if entry is None:
                entry = {"id": a.pair_id}
                entries.append(entry)
            entry.update({"baseline": a.baseline, "sha256": a.sha256, "approved": record})
        manifest_bytes = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries).encode()
        atomic_write(stage / MANIFEST, manifest_bytes)
        changelog = _own_file(golden, CHANGELOG)
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
        atomic_write(stage / CHANGELOG, log)
        plan = {"moves": moves, "backups": backups, "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest()}
        atomic_write(stage / _PLAN, json.dumps(plan, indent=1).encode())
    except BaseException:
        _remove_quietly(stage)  # nothing outside the staging folder changed yet
        raise
    try:
        for rel in backups:
            _move_file(golden, rel, stage, f"{_BACKUP}/{rel}")
        for move in moves:
            _move_file(stage, move["staged"], golden, move["final"])
        fsync_dir(golden / BASELINE)
        os.replace(stage / MANIFEST, golden / MANIFEST)  # the commit point
        fsync_dir(golden)
        os.replace(stage / CHANGELOG, golden / CHANGELOG)
        remove_tree(stage)
    except BaseException:
        recover(golden)  # before the commit this rolls back; after it, it completes
        raise
    return approvals


__all__ = [
    "BASELINE",
    "CHANGELOG",
    "MANIFEST",
    "STAGING",
    "Approval",
    "ApprovalRefused",
    "GoldenError",
    "VerifyReport",
    "approve",
    "file_sha256",
    "recover",
    "verify",
]
