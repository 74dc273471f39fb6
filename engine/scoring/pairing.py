"""Pairing: match baseline and candidate files by relative path without extension.

Inputs come from generators and pull requests, so pairing trusts no name:

- a `pair_id` is lossless whatever the name (`pixgate.safe_io.name_id`): a name that is
  not valid UTF-8 has each such byte written `\\xNN`, and backslashes are doubled;
- a symlink is followed only to a file inside its own folder: one that leads outside, or
  a symlink loop, makes the pair an error row naming it;
- links to folders are not followed, and a folder that cannot be listed is an error row:
  nothing is skipped without a word.

FIFOs, devices and sockets named like images are paired as any file is; the decoder
refuses to read them (`pixgate.safe_io.read_regular`), so they become error rows too.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixgate.config import IMAGE_EXTENSIONS
from pixgate.safe_io import name_id, printable, walk


@dataclass(frozen=True)
class Pair:
    """One pair_id and the files found for it on each side.

    Attributes:
        pair_id: Relative path without extension, `/`-separated.
        baseline: Baseline file, or None when the baseline side has none.
        candidate: Candidate file, or None when the candidate side has none.
        problem: Why the pair cannot be scored even though files exist (e.g. two baseline
            files share the pair_id), or None.
        baseline_sha256: sha256 of the baseline's bytes as a decode worker read them (hex),
            set on the pair the worker hands back; None before, or when they were not read.
        candidate_sha256: The same for the candidate.
    """

    pair_id: str
    baseline: Path | None
    candidate: Path | None
    problem: str | None = None
    baseline_sha256: str | None = None
    candidate_sha256: str | None = None

    @property
    def scorable(self) -> bool:
        """Both files exist and nothing else prevents scoring."""
        return self.baseline is not None and self.candidate is not None and self.problem is None


@dataclass(frozen=True)
class Pairing:
    """The result of pairing two folders.

    Attributes:
        pairs: Every pair_id found on either side, sorted.
        ignored: Files not scored because their extension is not an image extension, and
            links to folders (not followed).
    """

    pairs: tuple[Pair, ...]
    ignored: tuple[Path, ...] = field(default=())


@dataclass
class _Side:
    """What one folder holds: image files by pair_id, problems by pair_id, ignored files."""

    found: dict[str, list[Path]] = field(default_factory=lambda: defaultdict(list))
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    ignored: list[Path] = field(default_factory=list)


def _scan(root: Path, side: str) -> _Side:
    out = _Side()
    real_root = root.resolve()

    def unlistable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else root
        rel = where.relative_to(root).as_posix() if where != root else "."
        out.problems[name_id(rel)].append(f"{side}: cannot list the folder {printable(rel)}: {exc.strerror}")

    for dirpath, dirnames, filenames in walk(root, onerror=unlistable):
        dirnames.sort()
        for name in list(dirnames):
            path = Path(dirpath, name)
            if os.path.islink(path):
                out.ignored.append(path)
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                pair_id = name_id(path.relative_to(root).with_suffix("").as_posix())
                out.problems[pair_id].append(f"{side} {printable(name)}: a folder, not an image file")
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                out.ignored.append(path)
                continue
            pair_id = name_id(path.relative_to(root).with_suffix("").as_posix())
            try:
                real = path.resolve()
            except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
                out.found[pair_id].append(path.absolute())
                out.problems[pair_id].append(f"{side} {printable(name)}: a symlink loop")
                continue
            if real != real_root and real_root not in real.parents:
                out.found[pair_id].append(path.absolute())
                out.problems[pair_id].append(
                    f"{side} {printable(name)}: a symlink that leads outside the {side} folder "
                    f"(to {printable(str(real))}); only links within it are followed"
                )
                continue
            out.found[pair_id].append(real)
    return out


def _one(side: str, pair_id: str, files: list[Path]) -> tuple[Path | None, str | None]:
    if not files:
        return None, None
    if len(files) > 1:
        names = ", ".join(printable(p.name) for p in files)
        return files[0], f"ambiguous: {side} has several files for {pair_id!r} ({names}); keep one"
    return files[0], None


def _pair(base: _Side, cand: _Side) -> Pairing:
    pairs = []
    ids = base.found.keys() | cand.found.keys() | base.problems.keys() | cand.problems.keys()
    for pair_id in sorted(ids):
        b, b_problem = _one("baseline", pair_id, base.found.get(pair_id, []))
        c, c_problem = _one("candidate", pair_id, cand.found.get(pair_id, []))
        found = [*base.problems.get(pair_id, []), *cand.problems.get(pair_id, [])]
        problem = "; ".join(p for p in (*found, b_problem, c_problem) if p) or None
        pairs.append(Pair(pair_id, b, c, problem))
    return Pairing(tuple(pairs), tuple(base.ignored + cand.ignored))


def _scan_filesystem(fs: Any, root: str) -> _Side:
    from pyarrow import fs as pafs

    out = _Side()
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    for info in sorted((i for i in infos if i.type == pafs.FileType.File), key=lambda i: i.path):
        path = Path(info.path)
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            out.ignored.append(path)
            continue
        out.found[path.relative_to(root).with_suffix("").as_posix()].append(path)
    return out


def pair_uris(baseline_uri: str, candidate_uri: str) -> tuple[Pairing, Any, Any]:
    """Pair two folders given as URIs any pyarrow filesystem understands (`s3://`, `file://`).

    Returns:
        The pairing (paths are the filesystems' own paths) and the two filesystems.

    Raises:
        ValueError: A URI no filesystem understands, or a folder that is not there.
    """
    from pyarrow import fs as pafs

    sides = []
    for label, uri in (("BASELINE", baseline_uri), ("CANDIDATE", candidate_uri)):
        try:
            filesystem, root = pafs.FileSystem.from_uri(uri)
            info = filesystem.get_file_info(root)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{label}: cannot open {uri}: {exc}") from None
        if info.type != pafs.FileType.Directory:
            raise ValueError(f"{label}: {uri} is not a folder")
        sides.append((filesystem, root.rstrip("/")))
    (bfs, broot), (cfs, croot) = sides
    return _pair(_scan_filesystem(bfs, broot), _scan_filesystem(cfs, croot)), bfs, cfs


def pair_directories(baseline_root: Path, candidate_root: Path) -> Pairing:
    """Pair the images of two folders by relative path without extension.

    `a/b.png` pairs with `a/b.jpg`. Files whose extension is not an image extension are
    returned in `ignored` so the caller can report them; see the module for names,
    symlinks and folders that cannot be listed.

    Args:
        baseline_root: Folder of reference images.
        candidate_root: Folder of images from the new generator.

    Returns:
        Every pair_id present on either side, sorted, with its files.
    """
    return _pair(_scan(baseline_root, "baseline"), _scan(candidate_root, "candidate"))


__all__ = ["Pair", "Pairing", "pair_directories", "pair_uris"]
