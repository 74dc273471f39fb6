"""The golden manifest: what each pair should show, one JSON object per line.

A line looks like::

    {"id": "promo/banner_01", "expected_text": ["SUMMER -40%", "Offer valid 1-31 July"],
     "text_boxes": [[8, 6, 248, 46], [4, 214, 252, 230]], "prompt": "...", "seed": 11}

`id` is the pair_id (relative path without extension). `expected_text` lists strings the
image must show; `text_boxes` optionally gives, in baseline pixels, one box per line of
text ([x0, y0, x1, y1], x1 and y1 exclusive). `ignore` lists boxes that may change (a
timestamp, a signature), or names a mask image (white = ignore; relative to the
manifest's folder, which it must not leave: no absolute path, no `..`, no symlink out).
A golden set's manifest also records each baseline file and its sha256 (`baseline`,
`sha256`, written by `pixgate approve`, checked by `pixgate golden verify`). Other keys
(prompt, seed, tags, expected flags) belong to other tools and are ignored here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pixgate.config import MANIFEST_MAX_ITEMS, MANIFEST_MAX_TEXT_CHARS, TEXT_INPUT_MAX_BYTES
from pixgate.safe_io import UnsafeInputError, contained, loads_json, read_regular

Box = tuple[int, int, int, int]


class ManifestError(ValueError):
    """A manifest that cannot be used, naming the file and line at fault."""

    def __init__(self, path: Path, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class ManifestEntry:
    """What the manifest says about one pair.

    Attributes:
        pair_id: The pair it describes.
        expected_text: Strings the image must show (may be empty).
        text_boxes: Boxes of the text lines in baseline pixels, or None to find them by
            OCR of the baseline.
        line: Line of the manifest it came from.
        ignore_boxes: Boxes (baseline pixels) excluded from every metric.
        ignore_mask: Mask image (white = excluded) instead of boxes.
    """

    pair_id: str
    expected_text: tuple[str, ...]
    text_boxes: tuple[Box, ...] | None
    line: int
    ignore_boxes: tuple[Box, ...] | None = None
    ignore_mask: Path | None = None

    @property
    def has_ignore(self) -> bool:
        """Whether the entry gives regions that may change."""
        return self.ignore_boxes is not None or self.ignore_mask is not None


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest.

    Attributes:
        path: Where it was read from.
        sha256: Hash of its bytes (recorded in the run; a resume must use the same).
        entries: Entries by pair_id.
    """

    path: Path
    sha256: str
    entries: dict[str, ManifestEntry]


def _box(value: object) -> Box | None:
    if not isinstance(value, list) or len(value) != 4:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        return None
    x0, y0, x1, y1 = value
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _boxes(values: list[object], what: str, line: int, path: Path) -> tuple[Box, ...]:
    if len(values) > MANIFEST_MAX_ITEMS:
        raise ManifestError(path, f"{len(values)} {what}es; at most {MANIFEST_MAX_ITEMS} per entry", line)
    found = []
    for value in values:
        box = _box(value)
        if box is None:
            raise ManifestError(
                path, f"{what} {value!r} is not [x0, y0, x1, y1] in whole pixels with x0 < x1 and y0 < y1", line
            )
        found.append(box)
    return tuple(found)


def _entry(raw: object, line: int, path: Path) -> ManifestEntry:
    if not isinstance(raw, dict):
        raise ManifestError(path, f"each line must be a JSON object, got {type(raw).__name__}", line)
    pair_id = raw.get("id")
    if not isinstance(pair_id, str) or not pair_id:
        raise ManifestError(path, f"'id' must be the pair's id as a non-empty string, got {pair_id!r}", line)
    texts = raw.get("expected_text", [])
    if not isinstance(texts, list) or not all(isinstance(t, str) and t.strip() for t in texts):
        raise ManifestError(path, f"'expected_text' must be a list of non-empty strings, got {texts!r:.200}", line)
    if len(texts) > MANIFEST_MAX_ITEMS or any(len(t) > MANIFEST_MAX_TEXT_CHARS for t in texts):
        raise ManifestError(
            path,
            f"'expected_text' holds {len(texts)} strings, the longest of {max(map(len, texts))} characters; "
            f"at most {MANIFEST_MAX_ITEMS} strings of {MANIFEST_MAX_TEXT_CHARS} characters",
            line,
        )
    boxes = raw.get("text_boxes")
    if boxes is not None and (not isinstance(boxes, list) or not boxes):
        raise ManifestError(path, f"'text_boxes' must be a non-empty list of [x0, y0, x1, y1], got {boxes!r}", line)
    parsed = _boxes(boxes, "text box", line, path) if boxes is not None else None
    ignore = raw.get("ignore")
    ignore_boxes: tuple[Box, ...] | None = None
    ignore_mask: Path | None = None
    if isinstance(ignore, str) and ignore.strip():
        try:
            ignore_mask = contained(path.parent, ignore).resolve()
        except UnsafeInputError as exc:
            raise ManifestError(path, f"'ignore' mask {exc}: a mask must lie in the manifest's folder", line) from None
    elif isinstance(ignore, list) and ignore:
        ignore_boxes = _boxes(ignore, "ignore box", line, path)
    elif ignore is not None:
        raise ManifestError(
            path, f"'ignore' must be a list of [x0, y0, x1, y1] boxes or a mask image path, got {ignore!r}", line
        )
    return ManifestEntry(pair_id, tuple(texts), parsed, line, ignore_boxes, ignore_mask)


def load_manifest(path: Path) -> Manifest:
    """Read and validate a manifest.

    Raises:
        ManifestError: Unreadable file (not a regular file, over `TEXT_INPUT_MAX_BYTES`,
            not UTF-8), a line that is not JSON or nests too deep, a bad field, a mask
            path that leaves the manifest's folder, or an id given twice.
    """
    try:
        data = read_regular(path, TEXT_INPUT_MAX_BYTES)
        text = data.decode("utf-8")
    except (UnsafeInputError, UnicodeDecodeError) as exc:
        raise ManifestError(path, f"cannot read the manifest: {exc}") from None
    entries: dict[str, ManifestEntry] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = loads_json(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(path, f"not valid JSON: {exc.msg} (column {exc.colno})", number) from None
        except ValueError as exc:
            raise ManifestError(path, f"not usable JSON: {exc}", number) from None
        entry = _entry(raw, number, path)
        if entry.pair_id in entries:
            first = entries[entry.pair_id].line
            raise ManifestError(path, f"id {entry.pair_id!r} appears twice (first on line {first})", number)
        entries[entry.pair_id] = entry
    return Manifest(path, hashlib.sha256(data).hexdigest(), entries)


__all__ = ["Box", "Manifest", "ManifestEntry", "ManifestError", "load_manifest"]
