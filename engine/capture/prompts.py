"""The prompts a capture runs: the prompts file, read without trusting it, and the
deterministic sample of it a canary takes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixgate.config import CAPTURE_SEED_MAX, SHOWN_VALUE_CHARS
from pixgate.errors import UsageError
from pixgate.safe_io import (
    UnsafeInputError,
    loads_json,
    printable,
    read_text,
)


class CaptureConfigError(UsageError, ValueError):
    """A usage problem (exit 2): bad prompts file, template, endpoint or options."""


@dataclass(frozen=True)
class Prompt:
    """One line of the prompts file.

    Attributes:
        id: Unique id; the image is saved as `<id>.<ext>`.
        prompt: The prompt text.
        seed: The seed, or None.
        extra: Other keys, passed through to the generator.
    """

    id: str
    prompt: str
    seed: int | None
    extra: dict[str, Any] = field(default_factory=dict)


def _shown(value: Any) -> str:
    """A value for a message: its repr, cut after its first characters when long."""
    text = printable(repr(value))
    if len(text) > SHOWN_VALUE_CHARS:
        return f"{text[:SHOWN_VALUE_CHARS]}... ({len(text):,} characters)"
    return text


def load_prompts(path: Path) -> list[Prompt]:
    """Read a prompts file (JSONL: `id`, `prompt`, optional `seed`, extra keys).

    Everything a generator gets is checked here, before any generator runs: a seed must
    be a whole number from 0 to `pixgate.config.CAPTURE_SEED_MAX`.

    Raises:
        CaptureConfigError: Unreadable file, a bad line (named), an id given twice, or
            no prompt at all.
    """
    shown = printable(str(path))
    try:
        lines = read_text(path).splitlines()
    except UnsafeInputError as exc:
        raise CaptureConfigError.about("{prompts}: cannot read {path}: {problem}", path=shown, problem=exc) from None
    prompts: list[Prompt] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{shown}:{number}"
        try:
            raw = loads_json(line)
        except json.JSONDecodeError as exc:
            raise CaptureConfigError(f"{where}: not valid JSON: {exc.msg}") from None
        except ValueError as exc:
            raise CaptureConfigError(f"{where}: not usable JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise CaptureConfigError(f"{where}: each line must be a JSON object")
        pid, text, seed = raw.pop("id", None), raw.pop("prompt", None), raw.pop("seed", None)
        if not isinstance(pid, str) or not pid:
            raise CaptureConfigError(f"{where}: 'id' must be a non-empty string such as 'promo/001', got {_shown(pid)}")
        # JSON can spell lone surrogates, which no file can hold: the id is kept in the
        # printable form its row will hold, so that --resume finds it again.
        pid = printable(pid)
        if not isinstance(text, str):
            raise CaptureConfigError(f"{where}: 'prompt' must be a string, got {_shown(text)}")
        if seed is not None and (
            not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= CAPTURE_SEED_MAX
        ):
            raise CaptureConfigError(
                f"{where}: 'seed' must be a whole number from 0 to {CAPTURE_SEED_MAX} (2**64 - 1), got {_shown(seed)}"
            )
        if pid in seen:
            raise CaptureConfigError(f"{where}: id {pid!r} appears twice (first on line {seen[pid]})")
        seen[pid] = number
        prompts.append(Prompt(pid, text, seed, raw))
    if not prompts:
        raise CaptureConfigError.about(
            "{prompts}: {path} holds no prompts (it is empty, or every line is blank); give one JSON object a line",
            path=shown,
        )
    return prompts


def in_sample(prompt_id: str, fraction: float) -> bool:
    """Whether a prompt belongs to the deterministic `fraction` subset (by hash of its id)."""
    value = int.from_bytes(hashlib.sha256(prompt_id.encode("utf-8", "surrogatepass")).digest()[:8], "big")
    return value < fraction * 2**64


__all__ = ["CaptureConfigError", "Prompt", "in_sample", "load_prompts"]
