"""Pairing: match baseline and candidate files by relative path without extension."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import IMAGE_EXTENSIONS


@dataclass(frozen=True)
class Pair:
    """One pair_id and the files found for it on each side.

    Attributes:
        pair_id: Relative path without extension, `/`-separated.
        baseline: Baseline file, or None when the baseline side has none.
        candidate: Candidate file, or None when the candidate side has none.
        problem: Why the pair cannot be scored even though files exist (e.g. two baseline
            files share the pair_id), or None.
    """

    pair_id: str
    baseline: Path | None
    candidate: Path | None
    problem: str | None = None

    @property
    def scorable(self) -> bool:
        """Both files exist and nothing else prevents scoring."""
        return self.baseline is not None and self.candidate is not None and self.problem is None


@dataclass(frozen=True)
class Pairing:
    """The result of pairing two folders.

    Attributes:
        pairs: Every pair_id found on either side, sorted.
        ignored: Files skipped because their extension is not an image extension.
    """

    pairs: tuple[Pair, ...]
    ignored: tuple[Path, ...] = field(default=())


def _scan(root: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    found: dict[str, list[Path]] = defaultdict(list)
    ignored: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                ignored.append(path)
                continue
            rel = path.relative_to(root).with_suffix("")
            found[rel.as_posix()].append(path.resolve())
    return found, ignored


def _one(side: str, pair_id: str, files: list[Path]) -> tuple[Path | None, str | None]:
    if not files:
        return None, None
    if len(files) > 1:
        names = ", ".join(p.name for p in files)
        return files[0], f"ambiguous: {side} has several files for {pair_id!r} ({names}); keep one"
    return files[0], None


def _pair(base: dict[str, list[Path]], cand: dict[str, list[Path]], ignored: list[Path]) -> Pairing:
    pairs = []
    for pair_id in sorted(base.keys() | cand.keys()):
        b, b_problem = _one("baseline", pair_id, base.get(pair_id, []))
        c, c_problem = _one("candidate", pair_id, cand.get(pair_id, []))
        problem = "; ".join(p for p in (b_problem, c_problem) if p) or None
        pairs.append(Pair(pair_id, b, c, problem))
    return Pairing(tuple(pairs), tuple(ignored))


def _scan_filesystem(fs: Any, root: str) -> tuple[dict[str, list[Path]], list[Path]]:
    from pyarrow import fs as pafs

    found: dict[str, list[Path]] = defaultdict(list)
    ignored: list[Path] = []
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    for info in sorted((i for i in infos if i.type == pafs.FileType.File), key=lambda i: i.path):
        path = Path(info.path)
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            ignored.append(path)
            continue
        found[path.relative_to(root).with_suffix("").as_posix()].append(path)
    return found, ignored


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
    base, base_ignored = _scan_filesystem(bfs, broot)
    cand, cand_ignored = _scan_filesystem(cfs, croot)
    return _pair(base, cand, base_ignored + cand_ignored), bfs, cfs


def pair_directories(baseline_root: Path, candidate_root: Path) -> Pairing:
    """Pair the images of two folders by relative path without extension.

    `a/b.png` pairs with `a/b.jpg`. Files whose extension is not an image extension are
    returned in `ignored` so the caller can report them.

    Args:
        baseline_root: Folder of reference images.
        candidate_root: Folder of images from the new generator.

    Returns:
        Every pair_id present on either side, sorted, with its files.
    """
    base, base_ignored = _scan(baseline_root)
    cand, cand_ignored = _scan(candidate_root)
    return _pair(base, cand, base_ignored + cand_ignored)


__all__ = ["Pair", "Pairing", "pair_directories", "pair_uris"]
