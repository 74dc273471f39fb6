"""Image decoders side by side: milliseconds per image on one core, same files, one run.

    python -m benchmarks.decoders [--pairs 100] [--size 512]

Takes baseline images of the throughput benchmark's cached set (PNG as stored, and the
same pictures re-encoded as JPEG quality 90 in memory) and times each decoder on one
core (on the calling thread): Pillow, imagecodecs' libspng and libjpeg-turbo (what
pixgate uses where they apply, see pixgate.scoring.decode), simplejpeg when installed, and nvJPEG
through torchvision when a CUDA device is present. Every decoder must return Pillow's pixels, or the run
stops. Writes `benchmarks/results/decoders.json`; ratios are against Pillow.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.score_memory import RESULTS

# Images timed per decoder; each is decoded REPEAT times and the median kept.
SAMPLE = 16
REPEAT = 5


def _pillow(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def _decoders(kind: str) -> dict[str, Callable[[bytes], np.ndarray]]:
    found: dict[str, Callable[[bytes], np.ndarray]] = {"Pillow": _pillow}
    try:
        import imagecodecs

        if kind == "png":
            found["imagecodecs libspng"] = imagecodecs.spng_decode
        else:
            found["imagecodecs libjpeg-turbo"] = imagecodecs.jpeg8_decode
    except ImportError:
        pass
    if kind == "jpeg":
        try:
            import simplejpeg

            found["simplejpeg"] = simplejpeg.decode_jpeg
        except ImportError:
            pass
        try:
            import torch
            import torchvision.io

            if torch.cuda.is_available():

                def nvjpeg(data: bytes) -> np.ndarray:
                    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
                    out = torchvision.io.decode_jpeg(raw, device="cuda")
                    torch.cuda.synchronize()
                    return out.permute(1, 2, 0).cpu().numpy()

                found["nvJPEG (torchvision, GPU)"] = nvjpeg
        except ImportError:
            pass
    return found


def _per_image_ms(decode: Callable[[bytes], np.ndarray], blobs: list[bytes]) -> float:
    times = []
    for data in blobs:
        decode(data)
        samples = []
        for _ in range(REPEAT):
            started = time.perf_counter()
            decode(data)
            samples.append(time.perf_counter() - started)
        times.append(statistics.median(samples))
    return 1000.0 * statistics.fmean(times)


def measure(files: list[Path]) -> dict[str, Any]:
    """Per-image decode time of each decoder on `files` (PNG) and their JPEG re-encodings."""
    from PIL import Image

    png = [p.read_bytes() for p in files[:SAMPLE]]
    jpeg = []
    for data in png:
        buf = io.BytesIO()
        Image.open(io.BytesIO(data)).convert("RGB").save(buf, format="JPEG", quality=90)
        jpeg.append(buf.getvalue())
    result: dict[str, Any] = {"images": len(png)}
    for kind, blobs in (("png", png), ("jpeg", jpeg)):
        table = {}
        reference = [_pillow(b) for b in blobs]
        for name, decode in _decoders(kind).items():
            for data, want in zip(blobs, reference, strict=True):
                got = decode(data)
                if not np.array_equal(got[..., :3], want):
                    raise SystemExit(f"{name} does not return Pillow's pixels for a {kind.upper()} image")
            table[name] = {"ms_per_image": round(_per_image_ms(decode, blobs), 2)}
        pillow = table["Pillow"]["ms_per_image"]
        for row in table.values():
            row["speed_vs_pillow"] = round(pillow / row["ms_per_image"], 2)
        result[kind] = table
    return result


def main() -> None:
    from benchmarks.throughput import _dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    base, _ = _dataset(args.pairs, args.size, "png")
    result = {"size": args.size, **measure(sorted(base.iterdir()))}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "decoders.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
