"""Decoding: PngSuite against its references, corrupt and hostile files, JPEG and WebP."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixgate.config import DECODER_ENV, DEFAULT_MAX_PIXELS
from pixgate.scoring.decode import (
    DecodeError,
    _check_png_structure,
    decode_bytes,
    decode_image,
    decode_pair,
    decoders,
    max_file_bytes,
)
from tests.conftest import poster

# JPEG is lossy: a decoded flat colour may differ from the encoded one by a few levels.
JPEG_LEVEL_TOLERANCE = 6


def _pngsuite(data: Path) -> list[Path]:
    files = sorted((data / "pngsuite" / "png").glob("*.png"))
    assert len(files) > 150, "PngSuite looks incomplete"
    return files


def _reference(data: Path, name: str) -> np.ndarray:
    """The file's expected 8-bit samples (tests/data/pngsuite/README.md)."""
    with np.load(data / "pngsuite" / "expected.npz") as expected:
        return expected[name].astype(np.int64)


def test_every_valid_pngsuite_file_matches_its_reference(data_dir: Path) -> None:
    checked = 0
    for path in _pngsuite(data_dir):
        if path.name.startswith("x"):
            continue
        img = decode_image(path)
        ref = _reference(data_dir, path.stem)
        got = img.rgba.reshape(-1).astype(np.int64)
        assert got.shape == ref.shape, path.name
        mismatch = int(np.count_nonzero(got != ref))
        assert mismatch == 0, f"{path.name}: {mismatch} samples differ from the reference"
        checked += 1
    assert checked >= 150


def test_every_corrupt_pngsuite_file_is_an_error_with_a_message(data_dir: Path) -> None:
    corrupt = [p for p in _pngsuite(data_dir) if p.name.startswith("x")]
    assert len(corrupt) >= 14
    for path in corrupt:
        with pytest.raises(DecodeError) as info:
            decode_image(path)
        assert len(str(info.value)) > 10, path.name


@pytest.mark.parametrize(
    ("name", "has_alpha", "mode"),
    [("basn6a08", True, "RGBA"), ("tbbn3p08", True, "P"), ("tbbn0g04", True, "L"), ("basn2c08", False, "RGB"),
     ("basn0g16", False, "I;16"), ("basn3p04", False, "P")],
)  # fmt: skip
def test_transparency_and_mode_are_reported(data_dir: Path, name: str, has_alpha: bool, mode: str) -> None:
    img = decode_image(data_dir / "pngsuite" / "png" / f"{name}.png")
    assert img.has_alpha is has_alpha
    assert img.mode == mode


def test_empty_file() -> None:
    with pytest.raises(DecodeError, match="empty file"):
        decode_bytes(b"")


def test_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    with pytest.raises(DecodeError, match="not a PNG, JPEG or WebP"):
        decode_image(path)


def _png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_png(keep: float) -> None:
    data = _png_bytes(poster(64, 64, seed=1))
    with pytest.raises(DecodeError, match="truncated"):
        decode_bytes(data[: int(len(data) * keep)])


def test_truncated_jpeg() -> None:
    buf = io.BytesIO()
    Image.fromarray(poster(128, 128, seed=2)).save(buf, format="JPEG")
    with pytest.raises(DecodeError):
        decode_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG that declares width x height: a few kB on disk."""
    raw = (b"\x00" + b"\x00" * ((width + 7) // 8)) * height
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_inflating() -> None:
    data = _bomb(20_000, 20_000)
    assert len(data) < 200_000
    with pytest.raises(DecodeError, match="decompression-bomb limit"):
        decode_bytes(data)


def test_bomb_limit_is_configurable() -> None:
    data = _bomb(200, 100)
    assert decode_bytes(data).width == 200
    with pytest.raises(DecodeError, match="19,999"):
        decode_bytes(data, max_pixels=19_999)


def test_an_81_megapixel_png_of_236_kb_is_refused_at_the_default_limit() -> None:
    """The issue's case: a tiny file declaring 81 MP cost 6 GB in the scoring process at the
    old 100 MP default; the default now refuses it before any pixel is inflated."""
    data = _bomb(9_000, 9_000)
    assert len(data) < 300_000
    with pytest.raises(DecodeError, match="81,000,000 pixels exceeds the decompression-bomb limit of 40,000,000"):
        decode_bytes(data)
    assert DEFAULT_MAX_PIXELS < 9_000 * 9_000


def test_pillow_keeps_its_own_process_wide_limit() -> None:
    """pixgate opens images under its own limit without turning Pillow's off for the
    process (code beside it, e.g. the caller's, keeps Pillow's protection)."""
    import PIL.Image

    assert PIL.Image.MAX_IMAGE_PIXELS is not None and PIL.Image.MAX_IMAGE_PIXELS < 200_000_000
    data = _bomb(20_000, 20_000)  # 400 MP: Pillow's own check would raise its error first
    with pytest.raises(DecodeError, match="400,000,000 pixels exceeds the decompression-bomb limit of 300,000,000"):
        decode_bytes(data, max_pixels=300_000_000)
    with pytest.raises(PIL.Image.DecompressionBombError):
        PIL.Image.open(io.BytesIO(data))


@pytest.mark.timeout(30)
def test_files_are_read_only_when_regular_and_small_enough(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    with pytest.raises(DecodeError, match="FIFO"):
        decode_image(fifo)
    with pytest.raises(DecodeError, match="character device"):
        decode_image(Path("/dev/zero"))
    huge = tmp_path / "huge.png"
    with huge.open("wb") as fh:  # sparse: the size is checked before anything is read
        fh.truncate(max_file_bytes(100) + 1)
    with pytest.raises(DecodeError, match=r"over the .* limit for this file"):
        decode_image(huge, max_pixels=100)


def test_jpeg_exif_orientation_is_applied() -> None:
    img = poster(40, 80, seed=3)
    img[:10, :10] = (255, 0, 0)  # red top-left corner as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    out = decode_bytes(buf.getvalue())
    assert (out.width, out.height) == (40, 80)
    # Stored top-left ends up top-right after a clockwise quarter turn.
    r, g, b, _ = out.rgba[2, -3].astype(int)
    assert r > 255 - JPEG_LEVEL_TOLERANCE * 4 and g < JPEG_LEVEL_TOLERANCE * 4 and b < JPEG_LEVEL_TOLERANCE * 4


def test_cmyk_jpeg_decodes_to_rgb() -> None:
    buf = io.BytesIO()
    Image.new("CMYK", (32, 16), (0, 255, 255, 0)).save(buf, format="JPEG", quality=95)  # pure red in CMYK
    out = decode_bytes(buf.getvalue())
    assert out.mode == "CMYK" and out.format == "JPEG"
    r, g, b, a = out.rgba[8, 16].astype(int)
    assert r >= 255 - JPEG_LEVEL_TOLERANCE and g <= JPEG_LEVEL_TOLERANCE and b <= JPEG_LEVEL_TOLERANCE and a == 255


def test_webp_lossless_round_trip() -> None:
    img = poster(48, 64, seed=4, alpha=True)
    buf = io.BytesIO()
    Image.fromarray(img, "RGBA").save(buf, format="WEBP", lossless=True, exact=True)
    out = decode_bytes(buf.getvalue())
    assert out.format == "WEBP" and out.has_alpha
    np.testing.assert_array_equal(out.rgba, img)


def test_icc_description_is_read(data_dir: Path) -> None:
    buf = io.BytesIO()
    profile = (data_dir / "icc" / "AdobeRGB1998.icc").read_bytes()
    Image.fromarray(poster(16, 16, seed=5)).save(buf, format="PNG", icc_profile=profile)
    out = decode_bytes(buf.getvalue())
    assert out.icc_profile == profile
    assert out.icc_description and "adobe" in out.icc_description.lower()
    assert decode_bytes(_png_bytes(poster(16, 16, seed=5))).icc_description is None


def test_decode_pair_reports_the_failing_side_and_keeps_the_other(tmp_path: Path) -> None:
    good, bad = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(poster(32, 48, seed=6)).save(good)
    bad.write_bytes(b"")
    dp = decode_pair("a", good, bad)
    assert dp.error is not None and dp.error.startswith("candidate b.png: empty file")
    assert dp.baseline is not None and dp.baseline.width == 48
    assert dp.candidate is None and dp.candidate_aligned is None


def test_decode_pair_resamples_the_candidate_to_the_baseline_size(tmp_path: Path) -> None:
    base, cand = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(poster(40, 60, seed=7)).save(base)
    Image.fromarray(poster(40, 90, seed=7)).save(cand)
    dp = decode_pair("a", base, cand)
    assert dp.error is None and dp.candidate is not None and dp.candidate_aligned is not None
    assert dp.candidate.width == 90
    assert dp.candidate_aligned.shape == (40, 60, 4)


# --- animations: the frame count from the header ---


def _animation(path: Path, frames: int, **options: object) -> list[np.ndarray]:
    """An animated image of `frames` different posters, saved by Pillow; its frames."""
    pictures = [poster(32, 48, seed=40 + i) for i in range(frames)]
    first, *rest = (Image.fromarray(p) for p in pictures)
    first.save(path, save_all=True, append_images=rest, duration=100, **options)
    return pictures


@pytest.mark.parametrize(("name", "options"), [("anim.png", {}), ("anim.webp", {"lossless": True, "exact": True})])
def test_an_animation_reports_its_frames_and_decodes_its_first(
    tmp_path: Path, name: str, options: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / name
    pictures = _animation(path, 3, **options)
    for setting in ("pillow", "auto"):  # both decoders read the same header and frame
        monkeypatch.setenv(DECODER_ENV, setting)
        out = decode_image(path)
        assert out.frames == 3, setting
        np.testing.assert_array_equal(out.rgba[..., :3], pictures[0])
    still = tmp_path / f"still{path.suffix}"
    Image.fromarray(pictures[0]).save(still, **options)
    assert decode_image(still).frames == 1
    np.testing.assert_array_equal(decode_image(still).rgba, decode_image(path).rgba)


def test_an_apng_whose_default_image_is_not_a_frame_counts_it(tmp_path: Path) -> None:
    # A viewer shows the three frames, pixgate compares the default image: the count says
    # the file holds more than the one picture compared.
    path = tmp_path / "a.png"
    _animation(path, 3, default_image=True)
    assert decode_image(path).frames == 3


def test_a_jpeg_is_one_frame() -> None:
    buf = io.BytesIO()
    Image.fromarray(poster(32, 48, seed=3)).save(buf, format="JPEG")
    assert decode_bytes(buf.getvalue()).frames == 1


@pytest.mark.timeout(30)
def test_the_frame_count_is_read_not_counted(tmp_path: Path) -> None:
    """An APNG header that claims 2**31 frames: the count is the header's, found without
    decoding a frame, and kept within the run file's int32 column."""
    path = tmp_path / "a.png"
    _animation(path, 2)
    data = path.read_bytes()
    at = data.index(b"acTL") - 4
    body = struct.pack(">II", 2**31, 0)
    claimed = data[:at] + _chunk(b"acTL", body) + data[at + 20 :]
    out = decode_bytes(claimed)
    assert out.frames == np.iinfo(np.int32).max  # the header's claim, capped: no frame was counted


def test_decode_pair_keeps_each_sides_frame_count(tmp_path: Path) -> None:
    base, cand = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(poster(32, 48, seed=40)).save(base)
    _animation(cand, 4)
    dp = decode_pair("a", base, cand)
    assert dp.error is None and dp.baseline is not None and dp.candidate is not None
    assert (dp.baseline.frames, dp.candidate.frames) == (1, 4)


# --- the imagecodecs fast path against Pillow ---


def _both_paths(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[np.ndarray, np.ndarray]:
    monkeypatch.setenv(DECODER_ENV, "pillow")
    slow = decode_bytes(data)
    monkeypatch.setenv(DECODER_ENV, "auto")
    fast = decode_bytes(data)
    for field in ("format", "mode", "has_alpha", "icc_profile", "icc_description", "colour_managed", "frames"):
        assert getattr(fast, field) == getattr(slow, field), field
    return fast.rgba, slow.rgba


def _fast_path_taken(data: bytes) -> bool:
    from pixgate.scoring.decode import _fast_rgba

    chunks = _check_png_structure(data) if data.startswith(b"\x89PNG") else None
    with Image.open(io.BytesIO(data)) as im:
        return _fast_rgba(im, data, chunks) is not None


def test_fast_png_path_gives_pillows_pixels_on_all_of_pngsuite(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fast_files = 0
    for path in _pngsuite(data_dir):
        if path.name.startswith("x"):
            continue
        data = path.read_bytes()
        fast, slow = _both_paths(data, monkeypatch)
        np.testing.assert_array_equal(fast, slow, err_msg=path.name)
        fast_files += _fast_path_taken(data)
    # 8-bit RGB/RGBA without tRNS: interlaced, gamma, chunk-order and zlib-level variants.
    assert fast_files >= 25


@pytest.mark.parametrize(
    ("subsampling", "progressive"), [(0, False), (1, False), (2, False), (2, True)], ids=["444", "422", "420", "420p"]
)
def test_fast_jpeg_path_gives_pillows_pixels(
    subsampling: int, progressive: bool, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    buf = io.BytesIO()
    profile = (data_dir / "icc" / "AdobeRGB1998.icc").read_bytes()
    Image.fromarray(poster(61, 83, seed=8)).save(
        buf, format="JPEG", quality=87, subsampling=subsampling, progressive=progressive, icc_profile=profile
    )
    data = buf.getvalue()
    assert _fast_path_taken(data)
    fast, slow = _both_paths(data, monkeypatch)
    np.testing.assert_array_equal(fast, slow)


def test_cases_the_fast_path_leaves_to_pillow(data_dir: Path) -> None:
    grey = io.BytesIO()
    Image.fromarray(poster(16, 16, seed=9)[..., 0]).save(grey, format="JPEG")
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(poster(16, 24, seed=9)).save(rotated, format="JPEG", exif=exif.tobytes())
    for data in (
        grey.getvalue(),
        rotated.getvalue(),
        (data_dir / "pngsuite" / "png" / "tbrn2c08.png").read_bytes(),  # RGB with a tRNS key
        (data_dir / "pngsuite" / "png" / "basn2c16.png").read_bytes(),  # 16-bit RGB
        (data_dir / "pngsuite" / "png" / "basn3p08.png").read_bytes(),  # palette
    ):
        assert not _fast_path_taken(data)


def test_a_png_that_fails_in_the_fast_path_gets_pillows_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Valid chunk structure and CRCs around a zlib stream that does not inflate.
    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    body = b"\x78\x9c" + bytes(range(40))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    assert not _fast_path_taken(data)
    with pytest.raises(DecodeError, match="corrupt PNG data"):
        decode_bytes(data)


def test_decoder_setting_is_checked_and_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DECODER_ENV, "turbo")
    with pytest.raises(DecodeError, match=r"PIXGATE_DECODER must be one of auto, pillow; got 'turbo'"):
        decode_bytes(_png_bytes(poster(8, 8, seed=10)))
    monkeypatch.setenv(DECODER_ENV, "pillow")
    assert decoders().startswith("everything: Pillow")
    monkeypatch.setenv(DECODER_ENV, "auto")
    assert "libspng" in decoders() and "libjpeg-turbo" in decoders()


def test_a_png_whose_pixel_stream_ends_early_is_an_error_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = b"".join(b"\x00" + bytes(range(24)) for _ in range(8))  # 8 rows of 8 RGB pixels, filter 0
    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    short = zlib.compress(raw)[:-12]  # CRCs are right; the zlib stream stops mid-image
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", short) + chunk(b"IEND", b"")
    for setting in ("pillow", "auto"):
        monkeypatch.setenv(DECODER_ENV, setting)
        with pytest.raises(DecodeError):
            decode_bytes(data)


@pytest.mark.timeout(30)
def test_a_jpeg_of_too_many_scans_is_refused_before_decoding() -> None:
    """Each scan is a pass over the whole image: 5,000 scans would decode for minutes in
    every process that opens it (masks, report pictures, captured answers, approve)."""
    from pixgate.config import JPEG_MAX_SCANS
    from tests.scoring.test_workers import scan_bomb_jpeg

    with pytest.raises(DecodeError, match=f"a JPEG of 5,000 scans \\(at most {JPEG_MAX_SCANS}\\)"):
        decode_bytes(scan_bomb_jpeg(5000))
    buf = io.BytesIO()
    Image.fromarray(poster(64, 64, seed=2)).save(buf, format="JPEG", progressive=True, quality=90)
    assert decode_bytes(buf.getvalue()).width == 64  # a real progressive JPEG is fine


def test_importing_and_decoding_leave_pillow_settings_as_they_were(tmp_path: Path) -> None:
    """Pillow's process-wide settings belong to whoever embeds pixgate: pixgate applies
    its own limits where it opens images, and changes none of them."""
    import subprocess
    import sys

    Image.fromarray(poster(32, 32, seed=1)).save(tmp_path / "a.png")
    code = (
        "from PIL import Image, ImageFile, PngImagePlugin\n"
        "def settings():\n"
        "    return (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, PngImagePlugin.MAX_TEXT_CHUNK,\n"
        "            PngImagePlugin.MAX_TEXT_MEMORY, ImageFile.MAXBLOCK, ImageFile.SAFEBLOCK)\n"
        "before = settings()\n"
        "from pathlib import Path\n"
        "from pixgate.scoring.decode import decode_bytes, read_image_file\n"
        f"assert decode_bytes(read_image_file(Path({str(tmp_path / 'a.png')!r}))).width == 32\n"
        "print(before == settings())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
