"""Decoding: file bytes to RGBA pixels plus the facts the metrics need.

Runs in decode worker processes, so it imports only numpy and Pillow. Every failure is a
`DecodeError` whose message says what is wrong with the file; the pipeline turns it into
an error row.

Every image pixgate decodes (inputs, ignore masks, report pictures, captured answers)
goes through `decode_bytes` and its pixel limit, checked on the header before any pixel
is inflated, and files are read with `pixgate.safe_io.read_regular`: regular files only,
at most `max_file_bytes(max_pixels)` bytes. Pillow's own process-wide limit
(`Image.MAX_IMAGE_PIXELS`) is left as it is: pixgate opens images through the format
plugins directly, under its own limit.
"""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageCms, ImageOps, JpegImagePlugin, PngImagePlugin, UnidentifiedImageError, WebPImagePlugin

from pixgate.config import (
    DECODER_ENV,
    DECODERS,
    DEFAULT_MAX_PIXELS,
    IMAGE_FILE_BYTES_PER_PIXEL,
    IMAGE_FILE_OVERHEAD_BYTES,
    JPEG_MAX_SCANS,
    RESIZE_FILTER,
)
from pixgate.safe_io import UnsafeInputError, read_regular
from pixgate.scoring.icc import ICCError, colour_space, is_srgb, same_colour_space, to_srgb
from pixgate.telemetry import peak_rss_mb

_FORMATS = ("PNG", "JPEG", "WEBP")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}

_codecs: Any
try:
    import imagecodecs as _codecs
except ImportError:  # Pillow decodes everything; `decoders()` says so in the run's metadata.
    _codecs = None


def max_file_bytes(max_pixels: int) -> int:
    """Largest image file read under a pixel limit: an uncompressed 16-bit RGBA image of
    `max_pixels` pixels, plus room for metadata; anything larger cannot be a valid image
    within the limit, and is refused before it is read."""
    return max_pixels * IMAGE_FILE_BYTES_PER_PIXEL + IMAGE_FILE_OVERHEAD_BYTES


def _open(data: bytes) -> Image.Image:
    """Identify and open image bytes as PNG, JPEG or WebP, as `Image.open` does, but
    without Pillow's process-wide decompression-bomb check: pixgate applies its own.

    Raises:
        UnidentifiedImageError: None of the three formats accepts the bytes.
    """
    prefix = data[:16]
    for fmt in _FORMATS:
        factory, accept = Image.OPEN[fmt]
        if accept is not None and accept(prefix) is not True:
            continue
        try:
            return factory(io.BytesIO(data), "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue  # Image.open moves on to the next format on these, too
    raise UnidentifiedImageError("cannot identify image file")


class DecodeError(Exception):
    """A file that cannot be decoded; the message is meant for the user."""


@dataclass(frozen=True)
class DecodedImage:
    """A decoded image.

    Attributes:
        rgba: H x W x 4 uint8 sRGB pixels, straight (not premultiplied) alpha; alpha is
            255 everywhere when the file has no transparency.
        format: Container format as detected from the content (`PNG`, `JPEG`, `WEBP`).
        mode: Pillow's pixel mode as stored in the file (`RGBA`, `P`, `I;16`, ...).
        has_alpha: The file carries transparency (an alpha channel or a tRNS chunk).
        icc_profile: Embedded ICC profile bytes, or None when untagged.
        icc_description: The profile's description, or None.
        colour_managed: `rgba` was converted from the embedded profile's colour space to
            sRGB (False when untagged or already sRGB).
        frames: Images the file shows in turn, from its header (`frame_count`): more than
            1 for an animated PNG or WebP, whose first frame alone is in `rgba`.
    """

    rgba: np.ndarray
    format: str
    mode: str
    has_alpha: bool
    icc_profile: bytes | None
    icc_description: str | None
    colour_managed: bool = False
    frames: int = 1

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.rgba.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.rgba.shape[0])


def _check_png_structure(data: bytes) -> set[bytes]:
    """Walk the PNG chunk list, checking lengths, CRCs and the final IEND.

    Pillow skips the CRC of IDAT chunks and stops reading at the last image byte, so a
    corrupted or truncated file can decode to wrong pixels without complaint.

    Returns:
        The chunk types present.
    """
    pos = len(_PNG_SIGNATURE)
    end = len(data)
    seen_idat = False
    kinds: set[bytes] = set()
    while True:
        if pos + 8 > end:
            raise DecodeError(f"truncated PNG: chunk header expected at byte {pos}, file ends at {end}")
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        name = ctype.decode("latin-1")
        if not ctype.isalpha():
            raise DecodeError(f"corrupt PNG: invalid chunk type {ctype!r} at byte {pos}")
        if length > 0x7FFFFFFF:
            raise DecodeError(f"corrupt PNG: chunk {name} at byte {pos} declares {length} bytes")
        data_end = pos + 8 + length
        if data_end + 4 > end:
            raise DecodeError(
                f"truncated PNG: chunk {name} at byte {pos} needs {length + 12} bytes, {end - pos} remain"
            )
        (crc,) = struct.unpack(">I", data[data_end : data_end + 4])
        if zlib.crc32(data[pos + 4 : data_end]) != crc:
            raise DecodeError(f"corrupt PNG: CRC mismatch in chunk {name} at byte {pos}")
        if pos == len(_PNG_SIGNATURE):
            _check_ihdr(ctype, data[pos + 8 : data_end])
        seen_idat = seen_idat or ctype == b"IDAT"
        kinds.add(ctype)
        pos = data_end + 4
        if ctype == b"IEND":
            if not seen_idat:
                raise DecodeError("corrupt PNG: no IDAT chunk (the file holds no pixel data)")
            return kinds


# Allowed bit depths per PNG colour type (PNG spec, table 11.1).
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


def _check_ihdr(ctype: bytes, body: bytes) -> None:
    if ctype != b"IHDR" or len(body) != 13:
        raise DecodeError(f"corrupt PNG: first chunk is {ctype.decode('latin-1')} ({len(body)} bytes), not IHDR")
    width, height, depth, colour = struct.unpack(">IIBB", body[:10])
    if width == 0 or height == 0:
        raise DecodeError(f"corrupt PNG: IHDR declares a {width}x{height} image")
    if depth not in _PNG_DEPTHS.get(colour, ()):
        raise DecodeError(f"corrupt PNG: IHDR declares colour type {colour} with bit depth {depth}, not a valid pair")


def _icc_description(profile: bytes) -> str:
    try:
        desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile)))
    except (OSError, ImageCms.PyCMSError) as exc:
        raise DecodeError(f"embedded ICC profile is unreadable: {exc}") from exc
    return desc.strip()


def _sixteen_to_8(arr: np.ndarray) -> np.ndarray:
    # The high byte, as PNG decoders conventionally reduce 16-bit samples.
    return (arr.astype(np.uint32) >> 8).astype(np.uint8)


def _png_grey_depth(data: bytes) -> int | None:
    """Bit depth of a greyscale PNG (colour type 0), else None."""
    if data.startswith(_PNG_SIGNATURE) and len(data) >= 26 and data[12:16] == b"IHDR" and data[25] == 0:
        return data[24]
    return None


def _to_rgba(im: Image.Image, grey_depth: int | None) -> tuple[np.ndarray, bool]:
    """Convert any supported mode to straight-alpha RGBA uint8; report transparency.

    Args:
        im: The loaded, oriented image.
        grey_depth: Bit depth of a greyscale PNG: its tRNS value is in that sample scale,
            while Pillow hands out pixels scaled to 8 bits.
    """
    mode = im.mode
    transparency = im.info.get("transparency")
    if mode in ("1", "L") and isinstance(transparency, int) and grey_depth and grey_depth < 8:
        grey = np.asarray(im.convert("L"), dtype=np.uint8)
        key = transparency * (255 // ((1 << grey_depth) - 1))
        alpha = np.where(grey == key, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.dstack([grey, grey, grey, alpha])), True
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: Pillow's own conversion clips instead of scaling.
        raw = np.asarray(im)
        grey = _sixteen_to_8(raw) if mode != "I" or raw.max(initial=0) > 255 else raw.astype(np.uint8)
        alpha = np.full(grey.shape, 255, np.uint8)
        if isinstance(transparency, int):
            alpha[raw == transparency] = 0
        rgba = np.dstack([grey, grey, grey, alpha])
        return np.ascontiguousarray(rgba), transparency is not None
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or transparency is not None
    if mode == "CMYK":
        im = im.convert("RGB")
    if mode == "P" and transparency is not None:
        im = im.convert("RGBA")
    rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8)
    return np.ascontiguousarray(rgba), has_alpha


def decode_bytes(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode image bytes (PNG, JPEG or WebP) to RGBA.

    EXIF orientation is applied, so width and height are as displayed. PNG files have
    their chunk structure and every CRC checked first.

    Args:
        data: The file's bytes.
        max_pixels: Decompression-bomb limit on width * height, checked before any pixel
            is inflated.

    Raises:
        DecodeError: The bytes are empty, not one of the supported formats, corrupt,
            truncated, declare more than `max_pixels` pixels, or are a JPEG of more than
            `JPEG_MAX_SCANS` scans (decoding it would take far too long).
    """
    if not data:
        raise DecodeError("empty file (0 bytes)")
    if data.startswith(b"\xff\xd8"):
        # Entropy-coded data escapes 0xFF, so FF DA starts a scan (or a thumbnail's scan).
        scans = data.count(b"\xff\xda")
        if scans > JPEG_MAX_SCANS:
            raise DecodeError(
                f"a JPEG of {scans:,} scans (at most {JPEG_MAX_SCANS}): each is a pass over the whole image, so it "
                "would decode for far too long"
            )
    chunks = _check_png_structure(data) if data.startswith(_PNG_SIGNATURE) else None
    try:
        fast = decoder_setting() == "auto"
    except ValueError as exc:
        raise DecodeError(str(exc)) from None
    try:
        im = _open(data)
    except UnidentifiedImageError:
        raise DecodeError(_unidentified_reason(data)) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DecodeError(f"unreadable {_sniff(data)} header: {exc}") from None
    with im:
        fmt = str(im.format)
        width, height = im.size
        if width * height > max_pixels:
            raise DecodeError(
                f"{width}x{height} = {width * height:,} pixels exceeds the decompression-bomb limit of "
                f"{max_pixels:,}; raise --max-pixels to accept it"
            )
        pixels = _fast_rgba(im, data, chunks) if fast else None
        if pixels is not None:
            oriented: Image.Image = im
            rgba, has_alpha = pixels, im.mode == "RGBA"
        else:
            try:
                im.load()
                oriented = ImageOps.exif_transpose(im)
            except (OSError, SyntaxError, ValueError, EOFError, zlib.error) as exc:
                raise DecodeError(f"corrupt {fmt} data: {exc}") from None
            rgba, has_alpha = _to_rgba(oriented, _png_grey_depth(data))
        icc = im.info.get("icc_profile") or None
        description = _icc_description(icc) if icc else None
        try:
            managed = False
            if icc is not None and not is_srgb(icc):
                rgba = _colour_manage(oriented, rgba, icc)
                managed = True
        except ICCError as exc:
            raise DecodeError(str(exc)) from None
        return DecodedImage(
            rgba=rgba,
            format=fmt,
            mode=im.mode,
            has_alpha=has_alpha,
            icc_profile=icc,
            icc_description=description,
            colour_managed=managed,
            frames=frame_count(im),
        )


# Containers whose extra images are animation frames, shown in turn.
_ANIMATED_FORMATS = ("PNG", "WEBP")
# The largest count a run file's int32 column holds.
_MAX_FRAMES = int(np.iinfo(np.int32).max)


def frame_count(im: Image.Image) -> int:
    """The frames an opened image shows in turn, read from its header without decoding any.

    Pillow counts them when it opens the file: an APNG's `acTL` chunk (plus its default
    image when that is not one of the frames), an animated WebP's container header. A
    JPEG counts 1: the other pictures of a multi-picture JPEG (stereo views, previews, HDR
    gain maps) are not shown in turn, and a still copy of it is the same picture.
    """
    if im.format not in _ANIMATED_FORMATS:
        return 1
    frames = getattr(im, "n_frames", 1)
    if not isinstance(frames, int) or frames < 1:
        return 1
    return min(frames, _MAX_FRAMES)


_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L")

# PNG colour types the fast path takes: 8-bit truecolour and truecolour with alpha.
_FAST_PNG_COLOUR_TYPES = (2, 6)
_EXIF_ORIENTATION = 0x0112
_JPEG_EOI = b"\xff\xd9"


def decoder_setting() -> str:
    """The `PIXGATE_DECODER` setting: `auto` (imagecodecs where it applies) or `pillow`.

    Raises:
        ValueError: The variable holds anything else.
    """
    value = os.environ.get(DECODER_ENV, "auto").strip().lower() or "auto"
    if value not in DECODERS:
        raise ValueError(f"{DECODER_ENV} must be one of {', '.join(DECODERS)}; got {value!r}")
    return value


def _fast_rgba(im: Image.Image, data: bytes, chunks: set[bytes] | None) -> np.ndarray | None:
    """RGBA pixels from imagecodecs (libspng, libjpeg-turbo) for the common cases, else None.

    Pillow has parsed the header (mode, size, ICC, EXIF) without inflating anything; the
    pixels come from the faster library only where they are exactly Pillow's: 8-bit RGB
    or RGBA PNG without a transparency key or an eXIf chunk, and RGB JPEG displayed
    upright and ending in its end-of-image marker. tests/scoring/test_decode.py checks that both
    paths give the same pixels and the same errors. Anything else, or any failure, goes to
    Pillow, which also words the errors.
    """
    if _codecs is None:
        return None
    try:
        if chunks is not None:
            if (
                im.format != "PNG"
                or data[24] != 8
                or data[25] not in _FAST_PNG_COLOUR_TYPES
                or b"tRNS" in chunks
                or b"eXIf" in chunks
            ):
                return None
            pixels = _codecs.spng_decode(data)
        elif im.format == "JPEG" and im.mode == "RGB":
            # libjpeg pads a truncated scan with grey and warns; Pillow refuses it.
            if not data.endswith(_JPEG_EOI) or im.getexif().get(_EXIF_ORIENTATION, 1) != 1:
                return None
            pixels = _codecs.jpeg8_decode(data)
        else:
            return None
    except Exception:  # Pillow decodes it again and names the problem
        return None
    h, w = im.height, im.width
    if pixels.dtype != np.uint8 or pixels.shape[:2] != (h, w) or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        return None
    if pixels.shape[2] == 4:
        return np.ascontiguousarray(pixels)
    rgba = np.empty((h, w, 4), np.uint8)
    rgba[..., :3] = pixels
    rgba[..., 3] = 255
    return rgba


def decoders() -> str:
    """Which library decodes what, for the run's metadata."""
    import PIL

    pillow = f"Pillow {PIL.__version__}"
    if decoder_setting() == "pillow":
        return f"everything: {pillow} ({DECODER_ENV}=pillow)"
    if _codecs is None:
        return f"everything: {pillow} (imagecodecs is not installed)"
    codecs = f"imagecodecs {_codecs.__version__}"
    return f"8-bit RGB/RGBA PNG: libspng ({codecs}); upright RGB JPEG: libjpeg-turbo ({codecs}); the rest: {pillow}"


def _colour_manage(original: Image.Image, rgba: np.ndarray, icc: bytes) -> np.ndarray:
    """Convert decoded pixels to sRGB through their embedded profile; alpha is kept."""
    space = colour_space(icc)
    if space == "CMYK" and original.mode == "CMYK":
        rgb = to_srgb(original, icc)
    elif space == "GRAY" and original.mode in _GREY_MODES:
        rgb = to_srgb(Image.fromarray(np.ascontiguousarray(rgba[..., 0]), "L"), icc)
    elif space == "RGB" and original.mode != "CMYK":
        rgb = to_srgb(Image.fromarray(np.ascontiguousarray(rgba[..., :3]), "RGB"), icc)
    else:
        raise ICCError(f"embedded ICC profile is for {space} data but the pixels are {original.mode}")
    return np.ascontiguousarray(np.dstack([rgb, rgba[..., 3]]))


_PLUGINS: dict[str, Callable[[IO[bytes]], object]] = {
    "PNG": PngImagePlugin.PngImageFile,
    "JPEG": JpegImagePlugin.JpegImageFile,
    "WebP": WebPImagePlugin.WebPImageFile,
}


def _unidentified_reason(data: bytes) -> str:
    """Why Pillow rejected bytes that look like a supported format, or that they do not."""
    kind = _sniff(data)
    if kind == "image" and len(data) >= 8 and sum(a != b for a, b in zip(data[:8], _PNG_SIGNATURE, strict=False)) <= 3:
        return (
            f"damaged PNG signature {data[:8]!r} (expected {_PNG_SIGNATURE!r}): "
            "the file was probably copied in text mode"
        )
    plugin = _PLUGINS.get(kind)
    if plugin is None:
        return f"not a PNG, JPEG or WebP image (starts with {data[:8]!r})"
    try:
        plugin(io.BytesIO(data))
    except Exception as exc:
        return f"corrupt {kind} header: {exc}"
    return f"corrupt {kind} file"


def _sniff(data: bytes) -> str:
    if data.startswith(_PNG_SIGNATURE):
        return "PNG"
    if data.startswith(b"\xff\xd8"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return "image"


def read_image_file(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """The bytes of an image file, read safely (`pixgate.safe_io.read_regular`).

    Raises:
        DecodeError: Not a regular file, unreadable, or larger than `max_file_bytes`.
    """
    try:
        return read_regular(path, max_file_bytes(max_pixels))
    except UnsafeInputError as exc:
        raise DecodeError(f"cannot read file: {exc}") from None


def decode_image(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Read and decode one image file; see `decode_bytes`.

    Raises:
        DecodeError: The file cannot be read or decoded.
    """
    return decode_bytes(read_image_file(path, max_pixels), max_pixels=max_pixels)


def resize_rgba(rgba: np.ndarray, width: int, height: int, *, method: str = RESIZE_FILTER) -> np.ndarray:
    """Resample RGBA pixels to a new size (alpha-aware: Pillow premultiplies for RGBA)."""
    out = Image.fromarray(rgba, "RGBA").resize((width, height), _RESAMPLE[method])
    return np.ascontiguousarray(np.asarray(out, dtype=np.uint8))


@dataclass(frozen=True)
class DecodedPair:
    """What a decode worker sends back for one pair.

    Attributes:
        pair_id: The pair's id.
        baseline: Decoded baseline, or None if it failed.
        candidate: Decoded candidate, or None if it failed.
        candidate_aligned: The candidate's RGBA at the baseline's size (the candidate's
            own pixels when sizes match), or None.
        error: Why the pair failed, naming the side, or None.
        decode_ms: Time spent reading and decoding both files and resampling.
        peak_rss_mb: Peak resident memory of the process that decoded the pair, MiB.
        icc_match: Both files are in the same colour space (profiles compared by content;
            untagged is sRGB), or None when a side failed.
    """

    pair_id: str
    baseline: DecodedImage | None
    candidate: DecodedImage | None
    candidate_aligned: np.ndarray | None
    error: str | None
    decode_ms: float
    peak_rss_mb: float = 0.0
    icc_match: bool | None = None


def decode_pair(
    pair_id: str,
    baseline: Path,
    candidate: Path,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    read: Callable[[Path], bytes] | None = None,
) -> DecodedPair:
    """Decode both sides of a pair and align the candidate to the baseline's size.

    Never raises for a bad file: the failure is reported in `DecodedPair.error`.

    Args:
        pair_id: The pair's id.
        baseline: Baseline file.
        candidate: Candidate file.
        max_pixels: Decompression-bomb limit.
        read: Reads a file's bytes (e.g. from an object store); local files by default.
    """
    start = time.perf_counter()
    results: dict[str, DecodedImage | None] = {}
    errors = []
    for side, path in (("baseline", baseline), ("candidate", candidate)):
        try:
            if read is None:
                results[side] = decode_image(path, max_pixels=max_pixels)
            else:
                try:
                    data = read(path)
                except OSError as exc:
                    raise DecodeError(f"cannot read file: {exc}") from None
                results[side] = decode_bytes(data, max_pixels=max_pixels)
        except DecodeError as exc:
            results[side] = None
            errors.append(f"{side} {path.name}: {exc}")
    base, cand = results["baseline"], results["candidate"]
    aligned = None
    icc_match = None
    if base is not None and cand is not None:
        icc_match = same_colour_space(base.icc_profile, cand.icc_profile)
        aligned = cand.rgba
        if (cand.width, cand.height) != (base.width, base.height):
            aligned = resize_rgba(cand.rgba, base.width, base.height)
    ms = (time.perf_counter() - start) * 1000.0
    return DecodedPair(pair_id, base, cand, aligned, "; ".join(errors) or None, ms, peak_rss_mb(), icc_match)


__all__ = [
    "DecodeError",
    "DecodedImage",
    "DecodedPair",
    "decode_bytes",
    "decode_image",
    "decode_pair",
    "decoder_setting",
    "decoders",
    "frame_count",
    "max_file_bytes",
    "read_image_file",
    "resize_rgba",
]
