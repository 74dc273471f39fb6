"""Golden set management: reviewed approval of new baselines, and verification.

A golden set is a folder with `manifest.jsonl` (one entry per pair, engine.manifest)
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
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine import schema
from engine.config import IMAGE_EXTENSIONS

MANIFEST: str = "manifest.jsonl"
BASELINE: str = "baseline"
CHANGELOG: str = "changelog.jsonl"
STAGING: str = ".pixgate-approve"
_PLAN = "plan.json"


class GoldenError(ValueError):
    """A usage problem: missing or malformed golden set, run, verdict, or unknown ids."""


class ApprovalRefused(Exception):
    """The approval is not allowed as asked (failed verdict, error rows, no verdict)."""


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _read_entries(golden: Path) -> list[dict[str, Any]]:
    path = golden / MANIFEST
    if not golden.is_dir():
        raise GoldenError(f"--golden: {golden} is not a folder")
    if not path.is_file():
        raise GoldenError(f"{golden}: no {MANIFEST}; a golden set is a folder with {MANIFEST} and {BASELINE}/")
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GoldenError(f"{path}:{number}: not valid JSON: {exc.msg}") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise GoldenError(f"{path}:{number}: each line must be a JSON object with a string 'id'")
        entries.append(entry)
    return entries


def recover(golden: Path) -> str | None:
    """Finish or undo an interrupted approval; returns what was done, or None."""
    stage = golden / STAGING
    if not stage.exists():
        return None
    plan_path = stage / _PLAN
    if not plan_path.exists():
        shutil.rmtree(stage)
        return "discarded an approval interrupted before it changed anything"
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    manifest = golden / MANIFEST
    committed = manifest.exists() and file_sha256(manifest) == plan["manifest_sha256"]
    if committed:
        if (stage / CHANGELOG).exists():
            os.replace(stage / CHANGELOG, golden / CHANGELOG)
        shutil.rmtree(stage)
        _fsync_dir(golden)
        return "completed an approval interrupted after its commit"
    for move in reversed(plan["moves"]):
        final, staged = golden / move["final"], stage / move["staged"]
        if final.exists() and not staged.exists():
            staged.parent.mkdir(parents=True, exist_ok=True)
            os.replace(final, staged)
    for rel in plan["backups"]:
        backup = stage / "backup" / rel
        if backup.exists():
            (golden / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(backup, golden / rel)
    shutil.rmtree(stage)
    _fsync_dir(golden / BASELINE)
    return "rolled back an approval interrupted before its commit"


@dataclass
class VerifyReport:
    """What `verify` found.

    Attributes:
        checked: Files whose sha256 matched.
        missing: (id, path) of recorded files that are not there.
        changed: (id, path) of files whose sha256 differs from the manifest's.
        extra: Image files under baseline/ that no entry records.
        unrecorded: Ids whose entry has no `baseline` or no `sha256`.
        recovered: What `recover` did first, if anything.
    """

    checked: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    changed: list[tuple[str, str]] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)
    recovered: str | None = None

    @property
    def clean(self) -> bool:
        """Every recorded file is there and unchanged, and nothing else is."""
        return not (self.missing or self.changed or self.extra or self.unrecorded)


def verify(golden: Path) -> VerifyReport:
    """Check every baseline file of a golden set against the manifest's sha256.

    Raises:
        GoldenError: No golden set there, or its manifest is malformed.
    """
    report = VerifyReport()
    if golden.is_dir():
        report.recovered = recover(golden)
    entries = _read_entries(golden)
    recorded = set()
    for entry in entries:
        rel, sha = entry.get("baseline"), entry.get("sha256")
        if not isinstance(rel, str) or not isinstance(sha, str):
            report.unrecorded.append(entry["id"])
            continue
        recorded.add(rel)
        path = golden / rel
        if not path.is_file():
            report.missing.append((entry["id"], rel))
        elif file_sha256(path) != sha:
            report.changed.append((entry["id"], rel))
        else:
            report.checked.append(rel)
    base = golden / BASELINE
    if base.is_dir():
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(golden).as_posix()
            if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and rel not in recorded:
                report.extra.append(rel)
    return report


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
    try:
        verdict = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise GoldenError(f"--verdict: cannot read {path} as a pixgate gate verdict: {exc}") from None
    if not isinstance(verdict, dict) or verdict.get("verdict") not in ("pass", "marginal", "fail"):
        raise GoldenError(f"--verdict: {path} is not a verdict written by `pixgate gate --json`")
    judged = verdict.get("run")
    if not force and judged and Path(judged).resolve() != run.resolve():
        raise ApprovalRefused(f"--verdict: {path} judged {judged}, not {run}; judge this run, or pass --force")
    if verdict["verdict"] == "fail" and not force:
        raise ApprovalRefused(
            f"the run's verdict is fail ({verdict.get('reason', 'see the verdict')}); "
            "review it and pass --force to approve anyway"
        )
    return verdict


def _existing_baseline(golden: Path, entry: dict[str, Any] | None, pair_id: str) -> str | None:
    if entry is not None and isinstance(entry.get("baseline"), str) and (golden / entry["baseline"]).is_file():
        return str(entry["baseline"])
    folder = (golden / BASELINE / pair_id).parent
    stem = Path(pair_id).name
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.stem == stem and path.suffix.lower() in IMAGE_EXTENSIONS:
                return path.relative_to(golden).as_posix()
    return None


def approve(
    run: Path,
    golden: Path,
    *,
    ids: list[str] | None = None,
    verdict_path: Path | None = None,
    force: bool = False,
    by: str | None = None,
    on_staged: Callable[[int, int, str], None] | None = None,
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

    Returns:
        One entry per approved image.

    Raises:
        GoldenError: Unreadable run, verdict or golden set; unknown ids.
        ApprovalRefused: Failed or missing verdict without `force`; rows that are not ok.
    """
    from engine.arrow_io import read_run

    if not golden.is_dir():
        raise GoldenError(f"--golden: {golden} is not a folder")
    recover(golden)
    try:
        rows = {r[schema.PAIR_ID.name]: r for r in read_run(run).to_pylist()}
    except (OSError, ValueError) as exc:
        raise GoldenError(f"{run}: not a readable run file: {exc}") from None
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
    who = by or os.environ.get("PIXGATE_APPROVER") or getpass.getuser()
    when = datetime.now(UTC).isoformat(timespec="seconds")

    stage = golden / STAGING
    stage.mkdir()
    try:
        approvals: list[Approval] = []
        moves, backups = [], []
        for done, pid in enumerate(chosen, start=1):
            source = Path(rows[pid][schema.CANDIDATE_PATH.name])
            if not source.is_file():
                shutil.rmtree(stage)
                raise GoldenError(f"{pid}: the candidate {source} is gone; rescore or leave it out with --ids")
            final = f"{BASELINE}/{pid}{source.suffix.lower()}"
            staged = stage / "files" / final
            staged.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, staged)
            with staged.open("rb") as fh:
                os.fsync(fh.fileno())
            previous = _existing_baseline(golden, by_id.get(pid), pid)
            if previous is not None:
                backups.append(previous)
            entry = by_id.get(pid)
            approvals.append(
                Approval(pid, final, file_sha256(staged), previous, entry.get("sha256") if entry is not None else None)
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
        _write_durably(stage / MANIFEST, manifest_bytes)
        log = (golden / CHANGELOG).read_bytes() if (golden / CHANGELOG).exists() else b""
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
        _write_durably(stage / CHANGELOG, log)
        plan = {"moves": moves, "backups": backups, "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest()}
        _write_durably(stage / _PLAN, json.dumps(plan, indent=1).encode())
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)  # nothing outside the staging folder changed yet
        raise
    try:
        for rel in backups:
            (stage / "backup" / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(golden / rel, stage / "backup" / rel)
        for move in moves:
            (golden / move["final"]).parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / move["staged"], golden / move["final"])
        _fsync_dir(golden / BASELINE)
        os.replace(stage / MANIFEST, golden / MANIFEST)  # the commit point
        _fsync_dir(golden)
        os.replace(stage / CHANGELOG, golden / CHANGELOG)
        shutil.rmtree(stage)
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
