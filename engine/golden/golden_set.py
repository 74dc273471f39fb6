"""Golden sets: their layout, verification, and the staging an approval goes through
(`pixgate.golden.approval` approves).

A golden set is a folder with `manifest.jsonl` (one entry per pair, pixgate.scoring.manifest)
and `baseline/`, the approved images. Each entry records its baseline file and sha256
(`baseline`, `sha256`); `changelog.jsonl` holds one line per approved image.

`approve` replaces baselines with a run's candidates so that a failure at any moment
(an error, a full disk, kill -9) leaves the golden set as it was or, past the commit
point, fully approved, never in between:

1. stage: copy every new image, the new manifest and the new changelog into
   `.pixgate-approve/` inside the golden folder (nothing visible changes);
2. write the plan's sha256 (`plan.json.sha256`), then the plan (`plan.json`), each
   fsynced and renamed into place;
3. move each replaced baseline into the staging folder as a backup, and each new image
   into `baseline/` (one rename each);
4. commit: rename the new manifest over the old one (atomic); then the changelog;
5. remove the staging folder.

`recover` (run first by `approve` and `golden verify`) finishes or undoes an interrupted
approval: without a plan it discards the staging folder; with a plan it looks at the
manifest, and rolls forward when the new manifest is in place (the commit happened),
back otherwise (backups return, new images go back to staging).

A plan is acted on only when its bytes match the sha256 written beside it: a plan
edited since (a changed `manifest_sha256` would roll back a committed approval and
delete its new baselines), one cut short, or one with no sha256 (not written by this
pixgate) is reported and nothing is moved or deleted. The sha256 is written before
the plan, so an approval killed between the two leaves no plan: nothing had moved yet,
and the staging folder is discarded. It is a check of integrity, not a signature:
whoever can write the golden folder can write both files, and can change the
baselines themselves, which `golden verify` reports against the manifest.

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
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixgate.config import IMAGE_EXTENSIONS, TEXT_INPUT_MAX_BYTES
from pixgate.errors import UsageError
from pixgate.locking import LockBusy, LockUnavailable, OutputLock
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
    writing,
)

MANIFEST: str = "manifest.jsonl"
BASELINE: str = "baseline"
CHANGELOG: str = "changelog.jsonl"
STAGING: str = ".pixgate-approve"
PLAN = "plan.json"
PLAN_SHA256 = PLAN + ".sha256"  # the plan's sha256, written before it: see the module
BACKUP = "backup"  # inside the staging folder: the files an approval replaces


def lock_name(golden: Path) -> str:
    return f"golden set {golden}"


class GoldenError(UsageError, ValueError):
    """A usage problem: missing or malformed golden set, run, verdict, or unknown ids."""


class ApprovalRefused(UsageError):
    """The approval is not allowed as asked (failed verdict, error rows, no verdict)."""


#: sha256 of a regular file's bytes (`pixgate.safe_io.UnsafeInputError` when it is not one).
file_sha256 = sha256_regular


def own_file(folder: Path, name: str) -> Path:
    """One of the golden set's own files (manifest, changelog, plan), refused when it is a
    link that leads out of its folder: it would be read, and written back into the set."""
    try:
        return contained(folder, name)
    except UnsafeInputError as exc:
        raise GoldenError(f"{folder}: {exc}; left untouched") from None


def inside_golden(golden: Path, rel: object, what: str) -> Path:
    """`golden / rel` for a path under `baseline/` read from data, or a GoldenError."""
    if not isinstance(rel, str) or not rel.startswith(BASELINE + "/"):
        raise GoldenError(f"{golden}: {what} {rel!r} is not a path under {BASELINE}/")
    try:
        return contained(golden, rel)
    except UnsafeInputError as exc:
        raise GoldenError(f"{golden}: {what} {exc}") from None


def read_entries(golden: Path) -> list[dict[str, Any]]:
    if not golden.is_dir():
        raise GoldenError.about("{golden}: {folder} is not a folder", folder=golden)
    path = own_file(golden, MANIFEST)
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


def write_plan(stage: Path, plan: bytes) -> None:
    """Write a staging plan: its sha256 first, then the plan, each atomically, so that a
    plan on disk is always one `recover` can check (see the module)."""
    with writing(stage / PLAN_SHA256):
        atomic_write(stage / PLAN_SHA256, (hashlib.sha256(plan).hexdigest() + "\n").encode())
    with writing(stage / PLAN):
        atomic_write(stage / PLAN, plan)


def _plan_bytes(stage: Path) -> bytes:
    """The plan's bytes, only when they match the sha256 written beside them.

    Raises:
        GoldenError: An unreadable plan or sha256 file, no sha256 file, or a plan whose
            bytes do not match it; nothing is moved or deleted.
    """
    path, digest_path = own_file(stage, PLAN), own_file(stage, PLAN_SHA256)
    what_to_do = (
        f"nothing was moved or deleted; if no approval is running, compare the files in {stage} with the golden "
        "set, move back what belongs there, then remove the folder by hand"
    )
    try:
        plan = read_regular(path, TEXT_INPUT_MAX_BYTES)
    except UnsafeInputError as exc:
        raise GoldenError(f"{path}: cannot read the staging plan ({exc}); left untouched") from None
    if not _lexists(digest_path):
        raise GoldenError(
            f"{path}: the staging plan has no {PLAN_SHA256} beside it, so it is not one this pixgate wrote; "
            f"left untouched: {what_to_do}"
        )
    try:
        recorded = read_regular(digest_path, TEXT_INPUT_MAX_BYTES).decode("ascii", "replace").strip()
    except UnsafeInputError as exc:
        raise GoldenError(f"{digest_path}: cannot read it ({exc}); left untouched: {what_to_do}") from None
    if hashlib.sha256(plan).hexdigest() != recorded:
        raise GoldenError(
            f"{path}: the staging plan does not match the sha256 in {PLAN_SHA256} (changed since pixgate wrote it, "
            f"or not written by pixgate); left untouched: {what_to_do}"
        )
    return plan


def _read_plan(golden: Path, stage: Path) -> dict[str, Any]:
    """The staging plan, checked against its sha256, and every path in it checked to stay
    where it belongs.

    Raises:
        GoldenError: An unreadable plan, one that does not match its sha256, or one whose
            paths lead elsewhere, repeat, or nest one inside another.
    """
    path = own_file(stage, PLAN)
    data = _plan_bytes(stage)
    try:
        plan = loads_json(data)
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
            inside_golden(golden, final, "the plan moves a file to")
            contained(stage, staged)
        for rel in backups:
            inside_golden(golden, rel, "the plan backs up")
            contained(stage, f"{BACKUP}/{rel}")  # from the stage: `backup` itself may be a link
    except (GoldenError, UnsafeInputError) as exc:
        raise GoldenError(f"{path}: {exc}{untouched}") from None
    # Golden-side paths (new files, backed-up files) and stage-side paths may not repeat
    # or nest: the moves are done one file at a time.
    problem = clash(finals, backups) or clash(stageds + [f"{BACKUP}/{rel}" for rel in backups], [])
    if problem:
        raise GoldenError(f"{path}: {problem} in the staging plan{untouched}")
    return plan


def clash(finals: list[str], backups: list[str]) -> str | None:
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
    plan_path = stage / PLAN
    if not plan_path.exists() and not plan_path.is_symlink():
        remove_tree(stage)
        return "discarded an approval interrupted before it changed anything"
    plan = _read_plan(golden, stage)
    manifest = own_file(golden, MANIFEST)
    try:
        committed = manifest.is_file() and file_sha256(manifest) == plan["manifest_sha256"]
    except UnsafeInputError:
        committed = False
    if committed:
        move_file(stage, CHANGELOG, golden, CHANGELOG)
        remove_tree(stage)
        fsync_dir(golden)
        return "completed an approval interrupted after its commit"
    for move in reversed(plan["moves"]):
        if not _lexists(stage / move["staged"]):
            move_file(golden, move["final"], stage, move["staged"])
    for rel in plan["backups"]:
        move_file(stage, f"{BACKUP}/{rel}", golden, rel)
    remove_tree(stage)
    fsync_dir(golden / BASELINE)
    return "rolled back an approval interrupted before its commit"


def remove_quietly(stage: Path) -> None:
    with contextlib.suppress(OSError):
        remove_tree(stage)


def _lexists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def move_file(src_root: Path, src_rel: str, dst_root: Path, dst_rel: str) -> bool:
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
            lock = OutputLock(golden / STAGING, lock_name(golden)).acquire()
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
    entries = read_entries(golden)
    recorded = set()
    for entry in entries:
        rel, sha = entry.get("baseline"), entry.get("sha256")
        if not isinstance(rel, str) or not isinstance(sha, str):
            report.unrecorded.append(entry["id"])
            continue
        path = inside_golden(golden, rel, f"{MANIFEST}: entry {entry['id']!r} records")
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


__all__ = [
    "BACKUP",
    "BASELINE",
    "CHANGELOG",
    "MANIFEST",
    "PLAN",
    "PLAN_SHA256",
    "STAGING",
    "ApprovalRefused",
    "GoldenError",
    "VerifyReport",
    "clash",
    "file_sha256",
    "inside_golden",
    "lock_name",
    "move_file",
    "own_file",
    "read_entries",
    "recover",
    "remove_quietly",
    "verify",
    "write_plan",
]
