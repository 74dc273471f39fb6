"""The metadata keys of pixgate's Arrow files (all values are UTF-8 strings in the
schema's metadata), and which of them a `--resume` must find unchanged.

`pixgate.runs.schema` re-exports every name here: callers read them as `schema.META_...`,
beside the columns.
"""

from __future__ import annotations

from typing import Final

META_PIXGATE_VERSION: Final = "pixgate.version"
META_SCHEMA_VERSION: Final = "pixgate.schema_version"
META_DEVICE: Final = "pixgate.device"
META_DEVICE_NAME: Final = "pixgate.device_name"
META_TORCH_VERSION: Final = "pixgate.torch_version"
META_LPIPS_NET: Final = "pixgate.lpips_net"
META_LPIPS_VERSION: Final = "pixgate.lpips_version"
META_WEIGHTS_SHA256: Final = "pixgate.weights_sha256"
META_WEIGHTS_SOURCE: Final = "pixgate.weights_source"
#: "true" when the weights are torchvision's published file for the net
#: (pixgate.scoring.backbones), "false" for any other file, "" without LPIPS.
META_WEIGHTS_KNOWN: Final = "pixgate.weights_known"
META_LPIPS_NOTE: Final = "pixgate.lpips_note"
META_GPU_NOTE: Final = "pixgate.gpu_note"
META_BASELINE_ROOT: Final = "pixgate.baseline_root"
META_CANDIDATE_ROOT: Final = "pixgate.candidate_root"
META_STARTED_AT: Final = "pixgate.started_at"
META_ENDED_AT: Final = "pixgate.ended_at"
META_RESUMED_AT: Final = "pixgate.resumed_at"
#: What the last `--resume` did with the earlier run's rows, JSON counts of rows: `kept`
#: (their pair's files unchanged), `dropped` (their pair no longer exists in the two
#: folders) and `rescored` (their pair exists but a file changed, appeared or went away).
META_RESUME: Final = "pixgate.resume"
META_IGNORED_FILES: Final = "pixgate.ignored_files"
META_SETTINGS: Final = "pixgate.settings"
META_STATS: Final = "pixgate.stats"
META_BACKEND: Final = "pixgate.backend"
META_NVML: Final = "pixgate.nvml"
META_PRECISION: Final = "pixgate.precision"
#: Why the run uses its precision (`auto`'s choice and what decided it, or "as asked").
META_PRECISION_CHOICE: Final = "pixgate.precision_choice"
META_DECODERS: Final = "pixgate.decoders"
META_MANIFEST: Final = "pixgate.manifest"
META_MANIFEST_SHA256: Final = "pixgate.manifest_sha256"
META_OCR: Final = "pixgate.ocr"
META_OCR_ENGINE: Final = "pixgate.ocr_engine"
META_TYPOGRAPHY: Final = "pixgate.typography"
META_MAX_PIXELS: Final = "pixgate.max_pixels"
META_DEVICE_TYPE: Final = "pixgate.device_type"
META_MASKS_SHA256: Final = "pixgate.masks_sha256"

#: Metadata that must agree between a partial run and the command that resumes it: every
#: setting that changes a row's values, so that one file never mixes rows scored two
#: ways. The code that computes them (pixgate and schema versions, torch, the decoders and
#: their versions); LPIPS (net, heads, weights, precision) and where it runs (CPU or
#: CUDA: gpu_ms and energy_j are null on one and not the other); the inputs (both
#: folders, the manifest's expected text and ignore regions, the ignore masks' bytes);
#: the pixel limit (a pair over it is an error row); the OCR engine, its data and
#: language, and whether typography is checked at all. Timing
#: knobs (batch size, workers) change no value and are not listed.
RESUME_KEYS: Final = (
    META_PIXGATE_VERSION,
    META_SCHEMA_VERSION,
    META_TORCH_VERSION,
    META_DECODERS,
    META_LPIPS_NET,
    META_LPIPS_VERSION,
    META_WEIGHTS_SHA256,
    META_PRECISION,
    META_DEVICE_TYPE,
    META_BASELINE_ROOT,
    META_CANDIDATE_ROOT,
    META_MANIFEST_SHA256,
    META_MASKS_SHA256,
    META_MAX_PIXELS,
    META_TYPOGRAPHY,
    META_OCR_ENGINE,
)


# Capture files (`pixgate capture`).
META_ENGINE: Final = "pixgate.engine"
META_GPU_METERING: Final = "pixgate.gpu_metering"


__all__ = [
    "META_BACKEND",
    "META_BASELINE_ROOT",
    "META_CANDIDATE_ROOT",
    "META_DECODERS",
    "META_DEVICE",
    "META_DEVICE_NAME",
    "META_DEVICE_TYPE",
    "META_ENDED_AT",
    "META_ENGINE",
    "META_GPU_METERING",
    "META_GPU_NOTE",
    "META_IGNORED_FILES",
    "META_LPIPS_NET",
    "META_LPIPS_NOTE",
    "META_LPIPS_VERSION",
    "META_MANIFEST",
    "META_MANIFEST_SHA256",
    "META_MASKS_SHA256",
    "META_MAX_PIXELS",
    "META_NVML",
    "META_OCR",
    "META_OCR_ENGINE",
    "META_PIXGATE_VERSION",
    "META_PRECISION",
    "META_PRECISION_CHOICE",
    "META_RESUME",
    "META_RESUMED_AT",
    "META_SCHEMA_VERSION",
    "META_SETTINGS",
    "META_STARTED_AT",
    "META_STATS",
    "META_TORCH_VERSION",
    "META_TYPOGRAPHY",
    "META_WEIGHTS_KNOWN",
    "META_WEIGHTS_SHA256",
    "META_WEIGHTS_SOURCE",
    "RESUME_KEYS",
]
