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


def test_nvml_spells_cuda_uuids_with_its_prefixes() -> None:
    from pixgate.telemetry import nvml_uuids

    bare = "6a1f2e3d-0000-4c5b-9e8f-123456789abc"
    assert nvml_uuids(bare) == [f"GPU-{bare}", f"MIG-{bare}"]
    assert nvml_uuids(f"MIG-{bare}") == [f"MIG-{bare}"]


def test_a_sampler_never_started_stops_once_and_again() -> None:
    sampler = NvmlSampler()
    first = sampler.stop()
    assert sampler.stop() is first
    assert first["samples"] == 0


def test_with_nvml_the_cuda_device_is_found_by_uuid() -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from pixgate.telemetry import cuda_identity

    device = torch.device("cuda", 0)
    identity = cuda_identity(device)
    sampler = NvmlSampler(identity, interval_s=0.01).start()
    if not sampler.available:
        pytest.skip(f"needs NVML: {sampler.notes}")
    summary = sampler.stop()
    assert sampler.found_by.startswith(("UUID", "PCI")), sampler.notes
    assert summary["device"] == torch.cuda.get_device_name(device)
    # Under MIG utilisation is null, but every tick still counts as a sample.
    assert summary["samples"] >= 1 and summary["memory_used_peak_mb"] is not None
    assert (summary["utilisation_mean_pct"] is None) == summary["mig"]
