"""The demo engine: deterministic posters and each failure mode it can reproduce."""

from __future__ import annotations

import pytest

from pixgate.capture.demo_engine import DEGRADATIONS, generate
from pixgate.scoring.decode import decode_bytes


def test_same_prompt_and_seed_give_the_same_bytes() -> None:
    assert generate("summer sale", 7) == generate("summer sale", 7)
    assert generate("summer sale", 7) != generate("summer sale", 8)
    assert generate("summer sale", 7) != generate("winter sale", 7)


def test_noise_does_not_replay() -> None:
    assert generate("summer sale", 7, degrade=frozenset({"noise"})) != generate(
        "summer sale", 7, degrade=frozenset({"noise"})
    )


@pytest.mark.parametrize("mode", DEGRADATIONS)
def test_each_degradation_changes_what_it_claims(mode: str) -> None:
    clean = decode_bytes(generate("promo banner", 3))
    bad = decode_bytes(generate("promo banner", 3, degrade=frozenset({mode})))
    assert clean.has_alpha and clean.format == "PNG" and clean.icc_description is None
    checks = {
        "alpha": lambda: not bad.has_alpha,
        "icc": lambda: bad.icc_description is not None,
        "stretch": lambda: bad.width > clean.width and bad.height == clean.height,
        "jpeg": lambda: bad.format == "JPEG",
    }
    assert checks.get(mode, lambda: bool((bad.rgba != clean.rgba).any()))(), mode


def test_unknown_degradation_is_named() -> None:
    with pytest.raises(ValueError, match="unknown smudge"):
        generate("x", 1, degrade=frozenset({"smudge"}))
