"""Telemetry: NVML degrades field by field; CUDA-event timing needs a GPU (see test_score_cuda)."""

from __future__ import annotations

import pytest

from pixgate.telemetry import NvmlSampler, cpu_count, peak_rss_mb


def test_without_nvml_every_field_is_null_with_a_note() -> None:
    pytest.importorskip("pynvml")
    sampler = NvmlSampler().start()
    if sampler.available:
        pytest.skip("this machine has NVML; the degraded path is for machines without it")
    assert sampler.energy_j() is None
    summary = sampler.stop()
    assert summary["energy_j"] is None and summary["utilisation_mean_pct"] is None
    assert summary["samples"] == 0
    assert any("NVML unavailable" in note for note in summary["notes"])


def test_with_nvml_energy_and_samples_are_read() -> None:
    sampler = NvmlSampler(interval_s=0.01).start()
    if not sampler.available:
        pytest.skip(f"needs an NVIDIA GPU with NVML: {sampler.notes}")
    import time

    time.sleep(0.2)
    summary = sampler.stop()
    assert summary["device"] and summary["driver"]
    assert summary["samples"] > 0 and summary["memory_used_peak_mb"] is not None
    assert summary["energy_j"] is None or summary["energy_j"] >= 0.0


def test_process_facts() -> None:
    assert cpu_count() >= 1
    assert peak_rss_mb() > 10.0
