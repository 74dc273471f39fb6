"""`--precision auto`: bfloat16 only where the hardware runs it natively, recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import pixgate.telemetry
from pixgate.runs import schema
from pixgate.runs.files import read_run, run_metadata
from pixgate.scoring.scorer import choose_precision

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("flags", "chosen", "words"),
    [
        ({"avx2", "fma"}, "float32", "none of amx_bf16, avx512_bf16"),
        ({"avx2", "avx512f", "avx512_bf16"}, "bfloat16", "avx512_bf16"),
        ({"avx2", "amx_tile", "amx_bf16"}, "bfloat16", "amx_bf16"),
        (set(), "float32", "none of"),  # flags that cannot be read: no native bfloat16 assumed
    ],
)
def test_auto_takes_bfloat16_only_on_cpus_that_run_it_natively(
    flags: set[str], chosen: str, words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pixgate.telemetry, "cpu_flags", lambda: frozenset(flags))
    precision, why = choose_precision("auto", CPU)
    assert precision == chosen and why.startswith("auto: ") and words in why


@pytest.mark.parametrize("asked", ["float32", "bfloat16"])
def test_an_explicit_precision_stands(asked: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pixgate.telemetry, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert choose_precision(asked, CPU) == (asked, f"{asked}, as asked")


def test_cpu_flags_are_read_from_the_machine() -> None:
    from tests.conftest import MACHINE_CPU_FLAGS

    line = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    assert MACHINE_CPU_FLAGS() == frozenset(line.split(":", 1)[1].split())


def test_a_run_records_the_precision_and_why(golden_run: Path) -> None:
    meta = run_metadata(read_run(golden_run))
    assert meta[schema.META_PRECISION] == "float32"  # the suite's CPU stands in as AVX2
    assert meta[schema.META_PRECISION_CHOICE].startswith("auto: the CPU has none of amx_bf16")
