"""How well the shipped gate policy separates legitimate re-renders from defects.

    python -m benchmarks.detection [--posters N] [--quick] [--seed S] [--batches B] [--no-typography]

Draws seeded promo posters with Pillow and real fonts (the ones `make system-deps`
installs, `tests.conftest.FONTS`): a gradient background with grain, a shaded product, a
headline, a line of body text and two lines of 8 to 12 px small print (one holds a
price), on a 480x600 canvas. Every second group of four posters is a cut-out (RGBA: a
rounded card with the product standing out of it, transparent around), and the posters
cycle through four colour spaces: untagged sRGB, sRGB tagged with lcms's own profile,
Display P3 and Adobe RGB (1998) (`engine/data/AdobeRGB1998.icc`).

From each poster it makes candidates of two kinds (`CELLS`), each class at one to three
severities:

- legitimate changes, which a gate should pass: JPEG re-encoding at quality 95 and 90, the
  whole content moved by 1 or 2 px, the text drawn at 2x or 4x and downsampled (other
  antialiasing), the background grain re-seeded, noise of 1 or 2 levels, and the same
  colour space re-tagged with other but equivalent profile bytes;
- defects, which it should fail: blurred or unreadable small print, small print 1 or 2 px
  smaller, a price in the small print changed, a word missing from the headline, the
  content stretched 2, 5 or 10 % inside the same canvas, the canvas stretched (aspect
  ratio), alpha dropped, a cut-out flattened but still saved as RGBA, the alpha edge
  eroded by 2 to 4 px, the colour profile swapped or dropped (pixels unchanged), the
  pixels converted to another colour space with the old tag kept, saturation raised by
  10 or 25 %.

Every pair is scored once with pixgate's Python API (`pixgate.score`, LPIPS off, on the
CPU; typography on, with a manifest giving each pair's expected text and text boxes,
unless `--no-typography`), into a temporary folder. The figures then come from the judge
alone (`pixgate.judging.gate.judge` on tables taken from the scored rows; nothing is
scored twice), with `golden/policy.toml` as shipped:

- pair named: the pair, judged on its own (a run of one row), is listed in the verdict's
  `failing_pairs` under at least one rule whose result is `fail` (a pair beyond only a
  marginal bound is not named; the JSON counts those apart). For legitimate classes this
  is the false-alarm rate.
- batch fail: for each defect cell, `--batches` runs of `CLEAN_PER_BATCH` legitimate
  pairs drawn from all legitimate pairs plus one defective pair of the cell (recall at a
  realistic prevalence); for each legitimate cell, runs of `CLEAN_PER_BATCH` + 1 pairs of
  that cell alone (drawn with replacement when it has fewer), and for all legitimate
  classes together, runs of as many pairs drawn from all of them (false alarms of a whole
  batch). The share of runs whose verdict is `fail`.
- batch fail, no-data rules skipped: the same runs judged with every rule that has no data
  in this benchmark (LPIPS, which is off; typography with `--no-typography`) allowed to
  lack it, so that the other rules' judgement shows.
- named in batch: the share of those runs whose verdict names the defective pair (as
  above, under a failing rule). While batches of legitimate changes fail on their own, a
  defect cell's batch fail rate measures them rather than the defect; this says whether
  the verdict found the defect itself. The JSON also gives, for each defect cell, the
  share of its batches that fail (no-data rules skipped) without their defective pair.

Deterministic for a given seed (the timings and the machine aside). Writes
`benchmarks/results/detection.json` and the detection section of
`benchmarks/RESULTS.md`. The default run (48 posters, 200 batches per cell) takes about
four minutes on two cores; `--quick` (6 posters, 20 batches) well under one.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import io
import json
import os
import shutil
import struct
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from benchmarks.score_memory import RESULTS, ROOT
from benchmarks.typography import _cpu

if TYPE_CHECKING:
    import pyarrow as pa
    from PIL import ImageFont

    from pixgate.judging.policy import Policy

REPO: Final = ROOT.parent
POLICY: Final = REPO / "golden" / "policy.toml"
ADOBE_RGB_ICC: Final = REPO / "engine" / "data" / "AdobeRGB1998.icc"
_START, _END = "<!-- detection -->", "<!-- /detection -->"
_GPU_START = "<!-- gpu results -->"

#: Canvas of every poster, portrait as most promo formats are; small enough that a few
#: hundred pairs score in minutes on two cores, large enough for 8 px print beside a
#: 40 px headline.
WIDTH, HEIGHT = 480, 600
#: The default run: 48 posters give 48 pairs per cell (24 for the cut-out defects) in
#: about four minutes on two cores; `--quick` checks the machinery in well under two.
DEFAULT_POSTERS, QUICK_POSTERS = 48, 6
#: Batches per cell: 200 put a batch rate's standard error under 3.6 points.
DEFAULT_BATCHES, QUICK_BATCHES = 200, 20
#: Legitimate pairs beside the one defective pair of a batch: one broken image among about
#: 50 is a realistic prevalence for a generator change.
CLEAN_PER_BATCH: Final = 50
#: The targets the figures are read against: at most this share of legitimate pairs named
#: (and no batch of legitimate changes failing), and at least this share of the batches
#: holding one defective pair failing, in each defect cell.
FALSE_ALARM_GOAL: Final = 0.01
RECALL_GOAL: Final = 0.95
#: Standard deviation of the background grain, in 8-bit levels: visible as film grain on a
#: flat gradient, far below anything a viewer reads as noise.
GRAIN_SIGMA: Final = 3.0
#: Small print sizes drawn, in px (8 px is the smallest print a poster carries and the
#: hardest for OCR).
SMALL_PX_RANGE: Final = (8, 12)
BODY_PX: Final = 15
HEADLINE_PX: Final = 40
MARGIN: Final = 24
#: Text keeps this far from the right edge so that a cut-out's card, narrower than the
#: canvas, still holds every line.
TEXT_RIGHT_MARGIN: Final = 64
#: Light band at the foot that holds the body text and the small print.
BAND_PX: Final = 112
BAND_RGB: Final = (247, 246, 241)
INK_RGB: Final = (25, 25, 30)
#: Supersampling of shape masks (the product, a cut-out's card), so their edges are
#: antialiased as a renderer's are.
MASK_SUPERSAMPLE: Final = 4
CARD_INSET, CARD_RADIUS = 10, 28
#: Pixels of room kept around a line of small print when it is blurred, so the blur
#: spreads as it would in a whole-image render.
BLUR_ROOM: Final = 4

#: Fonts by role; the files `tests.conftest.FONTS` names (Debian's fonts-dejavu-core and
#: fonts-liberation).
HEADLINE_FONT, BODY_FONT, SMALL_FONT = "bold", "sans", "liberation"
HEADLINES: Final = ("Summer Sale 40% off", "New Season Arrivals", "Flash Deal Today", "Spring Collection")
BODY: Final = (
    "Fresh picks for every room, delivered free.",
    "Members save an extra ten percent today.",
    "Order before noon for next day delivery.",
)
TERMS: Final = (
    "Prices include VAT. Not combinable with other offers.",
    "While stocks last. Terms apply, see store for details.",
    "Delivery charges may apply to some postcodes.",
)
MONTHS: Final = ("Jan", "Mar", "May", "Jul", "Sep", "Nov")


# ---------------------------------------------------------------------------------------
# Colour profiles


#: CIE xy of each space's primaries (red, green, blue); all three have a D65 white.
#: sRGB: IEC 61966-2-1; Display P3: DCI-P3 primaries with a D65 white and the sRGB curve
#: (Apple); Adobe RGB (1998): Adobe's specification, gamma 563/256.
PRIMARIES: Final = {
    "srgb": ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06)),
    "p3": ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)),
    "adobe": ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06)),
}
D65_XY: Final = (0.3127, 0.3290)
#: The ICC profile connection space's white (ICC.1, 7.2.16).
D50_XYZ: Final = (0.9642, 1.0, 0.8249)
#: Bradford cone response matrix, for adapting the primaries from D65 to D50 as ICC v2
#: matrix/TRC profiles store them.
BRADFORD: Final = ((0.8951, 0.2664, -0.1614), (-0.7502, 1.7135, 0.0367), (0.0389, -0.0685, 1.0296))
ADOBE_GAMMA: Final = 563 / 256


def _xyz(xy: tuple[float, float]) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def _d50_matrix(space: str) -> np.ndarray:
    """RGB to XYZ (columns: the red, green and blue colorants), adapted to D50."""
    rgb = np.stack([_xyz(p) for p in PRIMARIES[space]], axis=1)
    rgb = rgb * np.linalg.solve(rgb, _xyz(D65_XY))
    cone = np.array(BRADFORD)
    scale = np.diag((cone @ np.array(D50_XYZ)) / (cone @ _xyz(D65_XY)))
    return np.linalg.inv(cone) @ scale @ cone @ rgb


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(values: np.ndarray | tuple[float, ...]) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(float(v)) for v in values)


def _desc_tag(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    # textDescriptionType: ASCII, then empty Unicode and ScriptCode parts (ICC.1:2001, 6.5.17).
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_)) + ascii_ + struct.pack(">IIHB", 0, 0, 0, 0) + bytes(67)


def _curve_tag(entries: int, gamma: float | None) -> bytes:
    """curveType: a pure gamma (one entry), or a table of the gamma or, without one, the
    sRGB curve."""
    if entries == 1 and gamma is not None:
        return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256))
    v = np.linspace(0.0, 1.0, entries)
    y = v**gamma if gamma is not None else np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    return b"curv\0\0\0\0" + struct.pack(">I", entries) + np.round(y * 65535).astype(">u2").tobytes()


def icc_profile(space: str, description: str, entries: int, gamma: float | None = None) -> bytes:
    """A matrix/TRC RGB display profile (ICC v2.1) of one of `PRIMARIES`.

    The same space written with another curve encoding or description is other bytes for
    the same colours: what an equivalent re-tag is.

    Args:
        space: A key of `PRIMARIES`.
        description: The profile's description tag.
        entries: Entries of the tone curve table (1: a pure gamma).
        gamma: The curve's gamma; None for the sRGB curve.
    """
    matrix = _d50_matrix(space)
    curve = _curve_tag(entries, gamma)
    tags = [
        (b"desc", _desc_tag(description)),
        (b"cprt", b"text\0\0\0\0No copyright, use freely\0"),
        (b"wtpt", _xyz_tag(D50_XYZ)),
        (b"rXYZ", _xyz_tag(matrix[:, 0])),
        (b"gXYZ", _xyz_tag(matrix[:, 1])),
        (b"bXYZ", _xyz_tag(matrix[:, 2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        data += bytes(-(offset + len(data)) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    body = struct.pack(">I", len(tags)) + table + data
    header = (
        struct.pack(">I", 128 + len(body))
        + bytes(4)
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + bytes(24)
        + struct.pack(">I", 0)
        + b"".join(_s15(v) for v in D50_XYZ)
        + bytes(48)
    )
    return header + body


@functools.cache
def profiles() -> dict[str, bytes | None]:
    """Profiles by name: each poster space's own, an equivalent one, and swap targets."""
    from PIL import ImageCms

    return {
        "srgb": None,
        "srgb-lcms": ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
        "srgb-table": icc_profile("srgb", "sRGB IEC61966-2.1 (tabulated)", 4096),
        "p3": icc_profile("p3", "Display P3", 1024),
        "p3-table": icc_profile("p3", "Display P3 D65 (4096-entry curve)", 4096),
        "adobe": ADOBE_RGB_ICC.read_bytes(),
        "adobe-table": icc_profile("adobe", "Adobe RGB (1998) compatible (tabulated)", 1024, ADOBE_GAMMA),
    }


#: Poster spaces: (the profile a poster is tagged with, its colour space, an equivalent
#: profile with other bytes for the re-tag).
SPACES: Final = (
    ("srgb", "srgb", "srgb-table"),
    ("srgb-lcms", "srgb", "srgb-table"),
    ("p3", "p3", "p3-table"),
    ("adobe", "adobe", "adobe-table"),
)
#: The profile that stands for each colour space as a swap or conversion target.
SPACE_PROFILE: Final = {"srgb": "srgb-lcms", "p3": "p3", "adobe": "adobe"}
SPACE_NAMES: Final = {"srgb": "sRGB", "p3": "Display P3", "adobe": "Adobe RGB"}


# ---------------------------------------------------------------------------------------
# Posters


@dataclass(frozen=True)
class Poster:
    """The recipe of one poster: everything drawn follows from it.

    Attributes:
        index: Its number in the benchmark.
        seed: The benchmark's seed.
        profile: Name of its profile in `profiles()`.
        space: Its colour space (a key of `PRIMARIES`).
        equivalent: Name of an equivalent profile with other bytes.
        alpha: A cut-out: transparent outside a rounded card and the product.
        headline: The headline.
        body: The line of body text.
        price: The price in the first line of small print.
        terms: The second line of small print.
        small_px: The small print's size.
        headline_px: The headline's size: the largest up to `HEADLINE_PX` at which it fits
            (a headline drawn without a word keeps it).
    """

    index: int
    seed: int
    profile: str
    space: str
    equivalent: str
    alpha: bool
    headline: str
    body: str
    price: str
    terms: str
    small_px: int
    headline_px: int

    def rng(self, stream: int) -> np.random.Generator:
        """A generator for one stream of this poster's randomness (layout, grain, ...)."""
        return np.random.default_rng([self.seed, self.index, stream])

    def small_lines(self, price: str | None = None) -> tuple[str, str]:
        """The two lines of small print, with `price` in place of the poster's own."""
        month = MONTHS[self.index % len(MONTHS)]
        return (f"Now {price or self.price} EUR, was {self.was} EUR. Ends 30 {month}.", self.terms)

    @property
    def was(self) -> str:
        """The struck price beside the offer."""
        return f"{int(self.price.split('.')[0]) + 20}.00"

    @property
    def pair_prefix(self) -> str:
        """The folder of this poster's pairs."""
        return f"p{self.index:03d}"


#: Streams of a poster's randomness.
LAYOUT, GRAIN, VARIANT = 0, 1, 2


def make_poster(seed: int, index: int) -> Poster:
    """The `index`-th poster of a benchmark seeded with `seed`."""
    rng = np.random.default_rng([seed, index, 99])
    profile, space, equivalent = SPACES[index % len(SPACES)]
    price = f"{int(rng.integers(21, 89))}.{int(rng.choice([49, 90, 99]))}"
    headline = HEADLINES[int(rng.integers(len(HEADLINES)))]
    px = HEADLINE_PX
    while px > BODY_PX and _font(HEADLINE_FONT, px).getlength(headline) > WIDTH - MARGIN - TEXT_RIGHT_MARGIN:
        px -= 1
    return Poster(
        index=index,
        seed=seed,
        profile=profile,
        space=space,
        equivalent=equivalent,
        alpha=(index // len(SPACES)) % 2 == 1,
        headline=headline,
        body=BODY[int(rng.integers(len(BODY)))],
        price=price,
        terms=TERMS[int(rng.integers(len(TERMS)))],
        small_px=int(rng.integers(SMALL_PX_RANGE[0], SMALL_PX_RANGE[1] + 1)),
        headline_px=px,
    )


@functools.cache
def _font(role: str, px: int) -> ImageFont.FreeTypeFont:
    from PIL import ImageFont

    from tests.conftest import FONTS

    path = Path(FONTS[role])
    if not path.is_file():
        raise SystemExit(f"font {path} not found: install the fonts `make system-deps` installs")
    return ImageFont.truetype(str(path), px)


def _mask(width: int, height: int, draw: Callable[[Any, int], None]) -> np.ndarray:
    """An antialiased coverage mask (0..1) of shapes drawn by `draw(ImageDraw, scale)`."""
    from PIL import Image, ImageDraw

    k = MASK_SUPERSAMPLE
    big = Image.new("L", (width * k, height * k), 0)
    draw(ImageDraw.Draw(big), k)
    return np.asarray(big.resize((width, height), Image.Resampling.BOX), dtype=np.float64) / 255.0


@dataclass(frozen=True)
class Line:
    """One line of text as drawn: its text, role and box (x1, y1 exclusive)."""

    text: str
    role: str
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class Drawn:
    """A drawn poster: RGBA pixels (alpha 255 unless a cut-out) and its lines of text."""

    pixels: np.ndarray
    lines: tuple[Line, ...]


def render(
    poster: Poster,
    *,
    grain_stream: int = GRAIN,
    supersample: int = 1,
    small_px: int | None = None,
    headline: str | None = None,
    price: str | None = None,
) -> Drawn:
    """Draw a poster; the keywords draw it as a legitimate re-render or a defect would.

    Args:
        poster: The recipe.
        grain_stream: The random stream of the background grain (another stream: the grain
            re-seeded).
        supersample: Draw the text this many times larger and downsample it (other
            antialiasing, glyphs in place).
        small_px: The small print's size instead of the poster's.
        headline: Another headline.
        price: Another price in the small print.
    """
    from PIL import Image, ImageDraw

    rng = poster.rng(LAYOUT)
    w, h = WIDTH, HEIGHT
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    angle = rng.uniform(0, np.pi)
    t = (np.cos(angle) * xx / w + np.sin(angle) * yy / h + 1.0) / 2.0
    c0, c1 = rng.uniform(40, 210, 3), rng.uniform(40, 210, 3)
    rgb = c0 * (1 - t[..., None]) + c1 * t[..., None]
    gx, gy, gr = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.6) * h, rng.uniform(0.25, 0.5) * w
    glow = np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * gr**2))[..., None]
    rgb = rgb * (1 - 0.35 * glow) + 255.0 * 0.35 * glow

    # The product: a shaded bottle-like body with a cap, on the right.
    px0, py0 = int(w * rng.uniform(0.52, 0.6)), int(h * rng.uniform(0.2, 0.28))
    pw, ph = int(w * 0.3), int(h * 0.42)
    if poster.alpha:
        px0 = w - pw - 2  # stands out of the card, into the transparent margin
    product = _mask(
        w,
        h,
        lambda d, k: (
            d.rounded_rectangle((px0 * k, py0 * k, (px0 + pw) * k, (py0 + ph) * k), radius=18 * k, fill=255),
            d.rectangle(((px0 + pw // 3) * k, (py0 - 30) * k, (px0 + 2 * pw // 3) * k, py0 * k), fill=255),
        ),
    )
    hue = rng.uniform(30, 230, 3)
    shade = 0.65 + 0.35 * np.cos((xx - (px0 + pw * 0.35)) / pw * np.pi)[..., None]
    rgb = rgb * (1 - product[..., None]) + np.clip(hue * shade, 0, 255) * product[..., None]
    label = _mask(w, h, lambda d, k: d.ellipse(((px0 + 12) * k, (py0 + ph // 3) * k, (px0 + pw - 12) * k,
                                               (py0 + 2 * ph // 3) * k), fill=255))  # fmt: skip
    rgb = rgb * (1 - 0.8 * label[..., None]) + 250.0 * 0.8 * label[..., None]

    rgb = rgb + poster.rng(grain_stream).normal(0.0, GRAIN_SIGMA, rgb.shape)
    band_top = h - BAND_PX - (CARD_INSET if poster.alpha else 0)
    rgb[band_top:h] = BAND_RGB
    out = np.clip(np.rint(rgb), 0, 255)

    light_top = float(np.mean(out[MARGIN : MARGIN + poster.headline_px, MARGIN : w // 2]))
    head_ink = INK_RGB if light_top > 150 else (255, 255, 255)
    small = small_px or poster.small_px
    lines = [
        (headline or poster.headline, "headline", HEADLINE_FONT, poster.headline_px, (MARGIN, MARGIN + 8), head_ink),
        (poster.body, "body", BODY_FONT, BODY_PX, (MARGIN, band_top + 14), INK_RGB),
    ]
    top = band_top + 14 + BODY_PX + 18
    for text in poster.small_lines(price):
        lines.append((text, "small", SMALL_FONT, small, (MARGIN, top), INK_RGB))
        top += small + 8
    drawn: list[Line] = []
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    k = supersample
    for text, role, face, size, (x, y), ink in lines:
        layer = Image.new("L", (w * k, h * k), 0)
        ImageDraw.Draw(layer).text((x * k, y * k), text, font=_font(face, size * k), fill=255)
        if k > 1:
            layer = layer.resize((w, h), Image.Resampling.BOX)
        cover = np.asarray(layer, dtype=np.float64)[..., None] / 255.0
        out = out * (1 - cover) + np.array(ink, dtype=np.float64) * cover
        x0, y0, x1, y1 = measure.textbbox((x, y), text, font=_font(face, size))
        drawn.append(Line(text, role, (int(x0), int(y0), min(int(np.ceil(x1)), w), min(int(np.ceil(y1)), h))))

    alpha = np.full((h, w), 255.0)
    if poster.alpha:
        card = _mask(
            w,
            h,
            lambda d, k: d.rounded_rectangle(
                (CARD_INSET * k, CARD_INSET * k, (w - TEXT_RIGHT_MARGIN + 24) * k, (h - CARD_INSET) * k),
                radius=CARD_RADIUS * k,
                fill=255,
            ),
        )
        alpha = 255.0 * np.maximum(card, product)
    pixels = np.dstack([np.clip(np.rint(out), 0, 255), np.rint(alpha)]).astype(np.uint8)
    return Drawn(pixels, tuple(drawn))


# ---------------------------------------------------------------------------------------
# Candidates


@dataclass(frozen=True)
class Picture:
    """An image file to write: pixels (RGB or RGBA), profile and format."""

    pixels: np.ndarray
    profile: bytes | None
    jpeg_quality: int | None = None

    @property
    def suffix(self) -> str:
        """The file's extension."""
        return ".jpg" if self.jpeg_quality else ".png"

    def save(self, path: Path) -> None:
        """Write the file (PNG, or JPEG at `jpeg_quality`) with its profile."""
        from PIL import Image

        extra: dict[str, Any] = {"icc_profile": self.profile} if self.profile else {}
        if self.jpeg_quality:
            extra["quality"] = self.jpeg_quality
        Image.fromarray(np.ascontiguousarray(self.pixels)).save(path, **extra)


@dataclass(frozen=True)
class Base:
    """What every variant starts from: the poster, its drawing and its file's content."""

    poster: Poster
    drawn: Drawn

    @property
    def pixels(self) -> np.ndarray:
        """RGBA for a cut-out, RGB otherwise."""
        return self.drawn.pixels if self.poster.alpha else self.drawn.pixels[..., :3]

    @property
    def profile(self) -> bytes | None:
        """The poster's own profile."""
        return profiles()[self.poster.profile]

    def picture(self, pixels: np.ndarray | None = None, profile: str | None = None) -> Picture:
        """A PNG of `pixels` (default: the poster's), tagged with the poster's profile or
        the one named."""
        chosen = profiles()[profile] if profile else self.profile
        return Picture(self.pixels if pixels is None else pixels, chosen)

    def redraw(self, **changes: Any) -> Picture:
        """The poster drawn again with `render`'s keywords, in its own mode and profile."""
        pixels = render(self.poster, **changes).pixels
        return self.picture(pixels if self.poster.alpha else pixels[..., :3])


def _with_colour(base: Base, colour: np.ndarray) -> np.ndarray:
    """The poster's alpha (if any) under new colour channels."""
    return np.dstack([colour, base.pixels[..., 3]]) if base.poster.alpha else colour


def _jpeg(base: Base, quality: int) -> Picture:
    """Re-encoded as JPEG at `quality` (a cut-out: its colour only, kept as PNG)."""
    if not base.poster.alpha:
        return Picture(base.pixels, base.profile, jpeg_quality=quality)
    # JPEG holds no alpha: a cut-out's colour goes through the codec, its alpha is kept.
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(base.pixels[..., :3]).save(buf, "JPEG", quality=quality)
    colour = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return base.picture(_with_colour(base, colour))


def _shift(pixels: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The content moved by (dx, dy), the edges repeated into the gap."""
    h, w = pixels.shape[:2]
    padded = np.pad(pixels, ((abs(dy), abs(dy)), (abs(dx), abs(dx)), (0, 0)), mode="edge")
    return padded[abs(dy) - dy : abs(dy) - dy + h, abs(dx) - dx : abs(dx) - dx + w]


def _jitter(base: Base, px: int) -> Picture:
    """The whole content moved by `px` in x and in y, in seeded directions."""
    rng = base.poster.rng(VARIANT)
    dx, dy = (int(v) for v in rng.choice([-px, px], 2))
    return base.picture(_shift(base.pixels, dx, dy))


def _noise(base: Base, sigma: float) -> Picture:
    """Seeded Gaussian noise of `sigma` levels added to the colour."""
    rng = base.poster.rng(VARIANT)
    colour = base.pixels[..., :3].astype(np.float64) + rng.normal(0.0, sigma, base.pixels[..., :3].shape)
    return base.picture(_with_colour(base, np.clip(np.rint(colour), 0, 255).astype(np.uint8)))


def _small_boxes(base: Base) -> list[tuple[int, int, int, int]]:
    return [line.box for line in base.drawn.lines if line.role == "small"]


def _blur_small(base: Base, radius: float) -> Picture:
    from PIL import Image, ImageFilter

    out = base.pixels.copy()
    for x0, y0, x1, y1 in _small_boxes(base):
        x0, y0 = max(0, x0 - BLUR_ROOM), max(0, y0 - BLUR_ROOM)
        x1, y1 = min(WIDTH, x1 + BLUR_ROOM), min(HEIGHT, y1 + BLUR_ROOM)
        region = Image.fromarray(np.ascontiguousarray(out[y0:y1, x0:x1]))
        out[y0:y1, x0:x1] = np.asarray(region.filter(ImageFilter.GaussianBlur(radius)))
    return base.picture(out)


def _mush_small(base: Base, factor: int) -> Picture:
    from tests.conftest import mush

    out = base.pixels
    for box in _small_boxes(base):
        out = mush(out, box, factor)
    return base.picture(out)


def _changed_price(base: Base, whole: bool) -> Picture:
    price = base.poster.price
    units, cents = price.split(".")
    if whole:
        changed = f"{(int(units) + 37) % 90 + 10}.{(int(cents) + 50) % 100:02d}"
    else:
        changed = f"{int(units[0]) % 9 + 1}{units[1:]}.{cents}"
    return base.redraw(price=changed)


def _drop_word(base: Base, longest: bool) -> Picture:
    words = base.poster.headline.split()
    pick = max if longest else min
    gone = pick(range(len(words)), key=lambda i: (len(words[i]), -i if longest else i))
    return base.redraw(headline=" ".join(w for i, w in enumerate(words) if i != gone))


def _resized(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.LANCZOS))


def _stretch_content(base: Base, share: float) -> Picture:
    wide = _resized(base.pixels, round(WIDTH * (1 + share)), HEIGHT)
    left = (wide.shape[1] - WIDTH) // 2
    return base.picture(np.ascontiguousarray(wide[:, left : left + WIDTH]))


def _stretch_canvas(base: Base, share: float) -> Picture:
    return base.picture(_resized(base.pixels, round(WIDTH * (1 + share)), HEIGHT))


def _on_white(base: Base) -> np.ndarray:
    a = base.pixels[..., 3:4].astype(np.float64) / 255.0
    return np.rint(base.pixels[..., :3] * a + 255.0 * (1 - a)).astype(np.uint8)


def _alpha_dropped(base: Base, composite: bool) -> Picture:
    return base.picture(_on_white(base) if composite else np.ascontiguousarray(base.pixels[..., :3]))


def _flattened(base: Base, composite: bool) -> Picture:
    colour = _on_white(base) if composite else base.pixels[..., :3]
    return base.picture(np.dstack([colour, np.full(colour.shape[:2], 255, np.uint8)]))


def _alpha_eroded(base: Base, px: int) -> Picture:
    from PIL import Image, ImageFilter

    alpha = Image.fromarray(np.ascontiguousarray(base.pixels[..., 3])).filter(ImageFilter.MinFilter(2 * px + 1))
    return base.picture(np.dstack([base.pixels[..., :3], np.asarray(alpha)]))


def _convert(base: Base, target: str) -> Picture:
    """The colour converted into `target`'s space, the poster's own tag kept."""
    from PIL import Image, ImageCms

    def load(name: str) -> ImageCms.ImageCmsProfile:
        data = profiles()[name]
        return ImageCms.ImageCmsProfile(io.BytesIO(data) if data else ImageCms.createProfile("sRGB"))

    source, dest = load(base.poster.profile), load(SPACE_PROFILE[target])
    transform = ImageCms.buildTransform(source, dest, "RGB", "RGB", ImageCms.Intent.RELATIVE_COLORIMETRIC)
    converted = ImageCms.applyTransform(Image.fromarray(np.ascontiguousarray(base.pixels[..., :3])), transform)
    assert converted is not None
    return base.picture(_with_colour(base, np.asarray(converted)))


def _saturate(base: Base, share: float) -> Picture:
    """Saturation raised by `share` (Pillow's colour balance: away from the grey image)."""
    from PIL import Image, ImageEnhance

    colour = ImageEnhance.Color(Image.fromarray(np.ascontiguousarray(base.pixels[..., :3]))).enhance(1 + share)
    return base.picture(_with_colour(base, np.asarray(colour)))


def _always(poster: Poster) -> bool:
    return True


def _cut_out(poster: Poster) -> bool:
    return poster.alpha


def _not_space(space: str) -> Callable[[Poster], bool]:
    return lambda poster: poster.space != space


_not_adobe = _not_space("adobe")


def _tagged_wide(poster: Poster) -> bool:
    return poster.space != "srgb"


@dataclass(frozen=True)
class Cell:
    """One class of change at one severity.

    Attributes:
        kind: `legitimate` or `defect`.
        name: The class.
        severity: The severity, in words.
        slug: Its pairs' file name.
        make: The candidate, from the poster.
        applies: Which posters it applies to (alpha defects: cut-outs only, ...).
        original_mode: One of the four failure modes pixgate was first built to catch:
            unreadable small text, a stretched aspect ratio, dropped alpha, a shifted colour
            profile (its tag changed, or its pixels converted with the old tag kept).
    """

    kind: str
    name: str
    severity: str
    slug: str
    make: Callable[[Base], Picture]
    applies: Callable[[Poster], bool] = _always
    original_mode: bool = False


LEGITIMATE, DEFECT = "legitimate", "defect"


#: The cells of the four failure modes pixgate was first built to catch (`Cell.original_mode`),
#: at the severities where they must be caught.
ORIGINAL_MODES: Final = frozenset(
    {"blur15", "mush3", "aspect2", "aspect5", "aspect10", "alphawhite", "alphagone", "tagdrop", "tagp3",
     "tagadobe", "convsrgb", "convp3", "convadobe"}
)  # fmt: skip


def _cells() -> tuple[Cell, ...]:
    ok, bad, cut = LEGITIMATE, DEFECT, _cut_out
    cells = (
        Cell(ok, "JPEG re-encode", "quality 95", "jpeg95", lambda b: _jpeg(b, 95)),
        Cell(ok, "JPEG re-encode", "quality 90", "jpeg90", lambda b: _jpeg(b, 90)),
        Cell(ok, "jitter", "1 px", "jitter1", lambda b: _jitter(b, 1)),
        Cell(ok, "jitter", "2 px", "jitter2", lambda b: _jitter(b, 2)),
        Cell(ok, "text antialiasing", "drawn 2x, downsampled", "aa2", lambda b: b.redraw(supersample=2)),
        Cell(ok, "text antialiasing", "drawn 4x, downsampled", "aa4", lambda b: b.redraw(supersample=4)),
        Cell(ok, "background grain", "re-seeded", "grain", lambda b: b.redraw(grain_stream=GRAIN + 100)),
        Cell(ok, "noise", "sigma 1 level", "noise1", lambda b: _noise(b, 1.0)),
        Cell(ok, "noise", "sigma 2 levels", "noise2", lambda b: _noise(b, 2.0)),
        Cell(ok, "ICC re-tag", "equivalent profile", "retag", lambda b: b.picture(profile=b.poster.equivalent)),
        Cell(bad, "small print blurred", "blur radius 0.8", "blur08", lambda b: _blur_small(b, 0.8)),
        Cell(bad, "small print blurred", "blur radius 1.5", "blur15", lambda b: _blur_small(b, 1.5)),
        Cell(bad, "small print blurred", "unreadable (1/3 resolution)", "mush3", lambda b: _mush_small(b, 3)),
        Cell(bad, "small print smaller", "1 px", "smaller1", lambda b: b.redraw(small_px=b.poster.small_px - 1)),
        Cell(bad, "small print smaller", "2 px", "smaller2", lambda b: b.redraw(small_px=b.poster.small_px - 2)),
        Cell(bad, "price changed", "one digit", "price1", lambda b: _changed_price(b, whole=False)),
        Cell(bad, "price changed", "whole price", "price", lambda b: _changed_price(b, whole=True)),
        Cell(bad, "headline word missing", "shortest word", "headshort", lambda b: _drop_word(b, longest=False)),
        Cell(bad, "headline word missing", "longest word", "headlong", lambda b: _drop_word(b, longest=True)),
        Cell(bad, "content stretched", "2 %", "stretch2", lambda b: _stretch_content(b, 0.02)),
        Cell(bad, "content stretched", "5 %", "stretch5", lambda b: _stretch_content(b, 0.05)),
        Cell(bad, "content stretched", "10 %", "stretch10", lambda b: _stretch_content(b, 0.10)),
        Cell(bad, "aspect stretched", "2 %", "aspect2", lambda b: _stretch_canvas(b, 0.02)),
        Cell(bad, "aspect stretched", "5 %", "aspect5", lambda b: _stretch_canvas(b, 0.05)),
        Cell(bad, "aspect stretched", "10 %", "aspect10", lambda b: _stretch_canvas(b, 0.10)),
        Cell(bad, "alpha dropped", "composited on white", "alphawhite", lambda b: _alpha_dropped(b, True), cut),
        Cell(bad, "alpha dropped", "channel removed", "alphagone", lambda b: _alpha_dropped(b, False), cut),
        Cell(bad, "flattened, still RGBA", "composited on white", "flatwhite", lambda b: _flattened(b, True), cut),
        Cell(bad, "flattened, still RGBA", "alpha set to 255", "flat255", lambda b: _flattened(b, False), cut),
        Cell(bad, "alpha edge eroded", "2 px", "erode2", lambda b: _alpha_eroded(b, 2), cut),
        Cell(bad, "alpha edge eroded", "3 px", "erode3", lambda b: _alpha_eroded(b, 3), cut),
        Cell(bad, "alpha edge eroded", "4 px", "erode4", lambda b: _alpha_eroded(b, 4), cut),
        Cell(bad, "profile swapped", "tag dropped", "tagdrop", lambda b: b.picture(profile="srgb"), _tagged_wide),
        Cell(bad, "profile swapped", "to Display P3", "tagp3", lambda b: b.picture(profile="p3"), _not_space("p3")),
        Cell(bad, "profile swapped", "to Adobe RGB", "tagadobe", lambda b: b.picture(profile="adobe"), _not_adobe),
        Cell(bad, "converted, tag kept", "to sRGB", "convsrgb", lambda b: _convert(b, "srgb"), _not_space("srgb")),
        Cell(bad, "converted, tag kept", "to Display P3", "convp3", lambda b: _convert(b, "p3"), _not_space("p3")),
        Cell(bad, "converted, tag kept", "to Adobe RGB", "convadobe", lambda b: _convert(b, "adobe"), _not_adobe),
        Cell(bad, "saturation raised", "+10 %", "sat10", lambda b: _saturate(b, 0.10)),
        Cell(bad, "saturation raised", "+25 %", "sat25", lambda b: _saturate(b, 0.25)),
    )
    return tuple(dataclasses.replace(c, original_mode=c.slug in ORIGINAL_MODES) for c in cells)


CELLS: Final = _cells()


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _make_poster_pairs(task: tuple[int, int, Path]) -> list[dict[str, Any]]:
    """Draw one poster and every candidate that applies to it; returns manifest lines."""
    seed, index, root = task
    poster = make_poster(seed, index)
    base = Base(poster, render(poster))
    original = root / "posters" / f"{poster.pair_prefix}.png"
    base.picture().save(original)
    entries = []
    expected = [line.text for line in base.drawn.lines]
    boxes = [list(line.box) for line in base.drawn.lines]
    for cell in CELLS:
        if not cell.applies(poster):
            continue
        pair_id = f"{poster.pair_prefix}/{cell.slug}"
        picture = cell.make(base)
        for side in ("baseline", "candidate"):
            (root / side / poster.pair_prefix).mkdir(parents=True, exist_ok=True)
        _link_or_copy(original, root / "baseline" / f"{pair_id}.png")
        picture.save(root / "candidate" / f"{pair_id}{picture.suffix}")
        entries.append({"id": pair_id, "expected_text": expected, "text_boxes": boxes})
    return entries


def make_pairs(seed: int, posters: int, root: Path, workers: int) -> Path:
    """Draw every poster and candidate under `root` (baseline/, candidate/) and write
    their manifest; returns its path."""
    (root / "posters").mkdir(parents=True)
    tasks = [(seed, i, root) for i in range(posters)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            found = list(pool.map(_make_poster_pairs, tasks))
    else:
        found = [_make_poster_pairs(t) for t in tasks]
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(e) + "\n" for entries in found for e in entries))
    return manifest


# ---------------------------------------------------------------------------------------
# Judging


def _cell_of(pair_id: str) -> str:
    return pair_id.split("/", 1)[1]


def without_nodata(policy: Policy, table: pa.Table) -> Policy:
    """The policy with every rule that has no data in `table` (a column missing, or null in
    every row) allowed to lack it: skipped rather than failed."""
    nodata = {
        rule.name
        for rule in policy.rules
        if rule.column not in table.column_names or table.column(rule.column).null_count == table.num_rows
    }
    rules = tuple(dataclasses.replace(r, allow_nodata=True) if r.name in nodata else r for r in policy.rules)
    return dataclasses.replace(policy, rules=rules)


@dataclass
class Judge:
    """Judges rows of one scored run with a policy, and says which pairs a verdict names.

    Attributes:
        policy: The shipped policy.
        lenient: The same with its no-data rules skipped (`without_nodata`).
        table: The scored run.
    """

    policy: Policy
    lenient: Policy
    table: pa.Table

    def verdict(self, rows: list[int], *, lenient: bool = False) -> tuple[str, set[int]]:
        """The verdict on a run of `rows`, and the rows (their index in `rows`) it names
        under a failing rule."""
        from pixgate.judging.gate import FAIL, judge

        sub = self.table.take(rows)
        verdict = judge(self.lenient if lenient else self.policy, sub)
        failing = {r.rule.name for r in verdict.rules if r.result == FAIL}
        ids = sub.column("pair_id").to_pylist()
        named_ids = {e["pair_id"] for e in verdict.failing_pairs if failing.intersection(e["rules"])}
        return verdict.verdict, {i for i, pid in enumerate(ids) if pid in named_ids}

    def naming_rules(self, row: int) -> tuple[list[str], list[str]]:
        """The rules under which a pair judged alone is listed in `failing_pairs`: those
        that failed (it is named), and those only marginal."""
        from pixgate.judging.gate import FAIL, judge

        verdict = judge(self.policy, self.table.take([row]))
        failing = {r.rule.name for r in verdict.rules if r.result == FAIL}
        listed = {name for e in verdict.failing_pairs for name in e["rules"]}
        return sorted(listed & failing), sorted(listed - failing)


def measure(judge: Judge, seed: int, batches: int) -> list[dict[str, Any]]:
    """Per pair and per batch figures for every cell (see the module's docstring)."""
    from pixgate.judging.gate import FAIL, MARGINAL

    ids = judge.table.column("pair_id").to_pylist()
    rows_of: dict[str, list[int]] = {cell.slug: [] for cell in CELLS}
    for row, pid in enumerate(ids):
        rows_of[_cell_of(pid)].append(row)
    legit_pool = [row for cell in CELLS if cell.kind == LEGITIMATE for row in rows_of[cell.slug]]
    rng = np.random.default_rng([seed, 7])
    size = CLEAN_PER_BATCH + 1

    def clean_batches(rows: list[int]) -> dict[str, Any]:
        """Batches of `size` pairs drawn from `rows` alone."""
        failed = failed_lenient = marginal_lenient = 0
        for _ in range(batches):
            batch = rng.choice(rows, size, replace=len(rows) < size).tolist()
            failed += judge.verdict(batch)[0] == FAIL
            lenient = judge.verdict(batch, lenient=True)[0]
            failed_lenient += lenient == FAIL
            marginal_lenient += lenient == MARGINAL
        return {
            "batches": batches,
            "batch_fail": failed / batches,
            "batch_fail_nodata_skipped": failed_lenient / batches,
            "batch_marginal_nodata_skipped": marginal_lenient / batches,
            "named_in_batch": None,
        }

    def defect_batches(rows: list[int]) -> dict[str, Any]:
        """Batches of `CLEAN_PER_BATCH` legitimate pairs and one of `rows` (in turn), at a
        random place."""
        failed = failed_lenient = named = clean_failed = 0
        for b in range(batches):
            clean = rng.choice(legit_pool, CLEAN_PER_BATCH, replace=False).tolist()
            at = int(rng.integers(size))
            batch = [*clean[:at], rows[b % len(rows)], *clean[at:]]
            verdict, named_rows = judge.verdict(batch)
            failed += verdict == FAIL
            named += at in named_rows
            failed_lenient += judge.verdict(batch, lenient=True)[0] == FAIL
            clean_failed += judge.verdict(clean, lenient=True)[0] == FAIL
        return {
            "batches": batches,
            "batch_fail": failed / batches,
            "batch_fail_nodata_skipped": failed_lenient / batches,
            "named_in_batch": named / batches,
            "batch_fail_without_defect_nodata_skipped": clean_failed / batches,
        }

    def per_pair(rows: list[int]) -> dict[str, Any]:
        named_by: Counter[str] = Counter()
        named = marginal = 0
        for row in rows:
            rules, marginal_rules = judge.naming_rules(row)
            named += bool(rules)
            marginal += bool(marginal_rules) and not rules
            named_by.update(rules)
        return {
            "n": len(rows),
            "pair_named": named / len(rows),
            "pair_marginal_only": marginal / len(rows),
            "named_by": dict(sorted(named_by.items())),
        }

    figures = []
    for cell in CELLS:
        rows = rows_of[cell.slug]
        if not rows:
            continue
        head = {"kind": cell.kind, "class": cell.name, "severity": cell.severity, "slug": cell.slug}
        batch = defect_batches(rows) if cell.kind == DEFECT else clean_batches(rows)
        figures.append({**head, "original_mode": cell.original_mode, **per_pair(rows), **batch})
    head = {"kind": LEGITIMATE, "class": "all legitimate changes", "severity": "mixed", "slug": "all"}
    figures.append({**head, "original_mode": False, **per_pair(legit_pool), **clean_batches(legit_pool)})
    return figures


def summary(figures: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures against the targets (`FALSE_ALARM_GOAL`, `RECALL_GOAL`)."""
    mixed = next(f for f in figures if f["slug"] == "all")
    legit = [f for f in figures if f["kind"] == LEGITIMATE]
    defects = [f for f in figures if f["kind"] == DEFECT]
    return {
        "legitimate_pairs_named": mixed["pair_named"],
        "legitimate_pairs_marginal_only": mixed["pair_marginal_only"],
        "legitimate_batches_marginal_nodata_skipped": max(f["batch_marginal_nodata_skipped"] for f in legit),
        "legitimate_batches_failing": max(f["batch_fail"] for f in legit),
        "legitimate_batches_failing_nodata_skipped": max(f["batch_fail_nodata_skipped"] for f in legit),
        "defect_cells": len(defects),
        "defect_cells_recall_goal": sum(f["batch_fail"] >= RECALL_GOAL for f in defects),
        "defect_cells_recall_goal_nodata_skipped": sum(f["batch_fail_nodata_skipped"] >= RECALL_GOAL for f in defects),
        "mixed_clean_fail": mixed["batch_fail"],
        "mixed_clean_fail_nodata_skipped": mixed["batch_fail_nodata_skipped"],
        "original_mode_cells": sum(f["original_mode"] for f in defects),
        "original_mode_cells_recall_goal_nodata_skipped": sum(
            f["original_mode"] and f["batch_fail_nodata_skipped"] >= RECALL_GOAL for f in defects
        ),
    }


# ---------------------------------------------------------------------------------------
# Output


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}"


def table_lines(figures: list[dict[str, Any]]) -> list[str]:
    """The figures as a Markdown table."""
    lines = [
        "| kind | class | severity | n | pair named % | batch fail % | batch fail %, no-data rules skipped "
        "| named in batch % | rules naming pairs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        mark = " *" if f["original_mode"] else ""
        rules = ", ".join(f"{name} {count}" for name, count in f["named_by"].items()) or "-"
        lines.append(
            f"| {f['kind']} | {f['class']}{mark} | {f['severity']} | {f['n']} | {_pct(f['pair_named'])} | "
            f"{_pct(f['batch_fail'])} | {_pct(f['batch_fail_nodata_skipped'])} | {_pct(f['named_in_batch'])} | "
            f"{rules} |"
        )
    return lines


def detection_section() -> list[str]:
    """The detection benchmark's lines of RESULTS.md (none before it has run)."""
    path = RESULTS / "detection.json"
    if not path.exists():
        return []
    r = json.loads(path.read_text())
    s, t = r["summary"], r["timings_s"]
    return [
        _START,
        "",
        f"Detection (`python -m benchmarks.detection`): how `golden/policy.toml` as shipped (sha256 "
        f"`{r['policy_sha256'][:16]}`) separates legitimate re-renders from defects. Seed {r['seed']}, "
        f"{r['posters']} posters of {r['size']}, {r['pairs']} pairs scored once (LPIPS off, typography "
        f"{'on' if r['typography'] else 'off'}), {r['batches_per_cell']} batches per cell of {r['clean_per_batch']} "
        f"legitimate pairs + 1; {r['machine']}; {t['total']:.0f} s in all ({t['draw']:.0f} s drawing, "
        f"{t['score']:.0f} s scoring, {t['judge']:.0f} s judging).",
        "",
        "Pair named: judged alone, the verdict lists the pair under a failing rule. Batch fail: share of batches "
        "whose verdict is fail (defect cells: one defective pair among the legitimate ones; legitimate cells: "
        "batches of that change alone; the last row: all legitimate changes mixed). No-data rules skipped: the same "
        "batches with the rules that have no data here (LPIPS) allowed to lack it. Named in batch: share of batches "
        "whose verdict names the defective pair. \\*: one of the four failure modes pixgate was first built to "
        "catch (unreadable small text, stretched aspect ratio, dropped alpha, shifted colour profile).",
        "",
        *table_lines(r["figures"]),
        "",
        f"- legitimate pairs named: {_pct(s['legitimate_pairs_named'])} % (goal at most "
        f"{_pct(FALSE_ALARM_GOAL)} %), and {_pct(s['legitimate_pairs_marginal_only'])} % more listed under a "
        f"marginal rule only; worst legitimate cell's batches failing: "
        f"{_pct(s['legitimate_batches_failing'])} % as shipped, "
        f"{_pct(s['legitimate_batches_failing_nodata_skipped'])} % with no-data rules skipped (goal 0 %); with "
        f"them skipped, one legitimate cell's batches are marginal "
        f"{_pct(s['legitimate_batches_marginal_nodata_skipped'])} % of the time",
        f"- defect cells whose batches fail at least {_pct(RECALL_GOAL)} % of the time: "
        f"{s['defect_cells_recall_goal']} of {s['defect_cells']} as shipped, "
        f"{s['defect_cells_recall_goal_nodata_skipped']} of {s['defect_cells']} with no-data rules skipped; "
        f"the four original failure modes (\\*): {s['original_mode_cells_recall_goal_nodata_skipped']} of "
        f"{s['original_mode_cells']} cells with no-data rules skipped",
        f"- batches of all legitimate changes, without a defective pair, fail {_pct(s['mixed_clean_fail'])} % of the "
        f"time as shipped and {_pct(s['mixed_clean_fail_nodata_skipped'])} % with no-data rules skipped; while they "
        "fail, a defect cell's batch fail rate says nothing of the defect: read *named in batch*",
        "",
        _END,
    ]


def _update_results_md() -> None:
    md_path = ROOT / "RESULTS.md"
    text = md_path.read_text() if md_path.exists() else "# Benchmark results\n"
    section = "\n".join(detection_section())
    if _START in text and _END in text:
        text = text[: text.index(_START)] + section + text[text.index(_END) + len(_END) :]
    elif _GPU_START in text:
        at = text.index(_GPU_START)
        text = text[:at] + section + "\n\n" + text[at:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    md_path.write_text(text)


def _has_ocr() -> bool:
    from pixgate.scoring.ocr import OcrUnavailable, find_tesseract

    try:
        find_tesseract("eng")
    except OcrUnavailable:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posters", type=int, default=None, help=f"posters drawn (default {DEFAULT_POSTERS})")
    parser.add_argument("--batches", type=int, default=None, help=f"batches per cell (default {DEFAULT_BATCHES})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_POSTERS} posters, {QUICK_BATCHES} batches")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-typography", action="store_true", help="score without the OCR checks")
    parser.add_argument("--keep", type=Path, default=None, help="draw and score into this new folder and keep it")
    args = parser.parse_args()
    posters = args.posters or (QUICK_POSTERS if args.quick else DEFAULT_POSTERS)
    batches = args.batches or (QUICK_BATCHES if args.quick else DEFAULT_BATCHES)
    if posters * sum(c.kind == LEGITIMATE for c in CELLS) < CLEAN_PER_BATCH + 1:
        raise SystemExit(f"--posters {posters}: too few legitimate pairs for batches of {CLEAN_PER_BATCH + 1}")
    typography = not args.no_typography
    if typography and not _has_ocr():
        print("no Tesseract English data: scoring without typography (--no-typography)")
        typography = False

    import pixgate
    from pixgate.judging.gate import check_fits
    from pixgate.judging.policy import load_policy

    started = time.perf_counter()
    work = args.keep or Path(tempfile.mkdtemp(prefix="pixgate-detection-"))
    try:
        if args.keep:
            work.mkdir(parents=True)
        manifest = make_pairs(args.seed, posters, work, workers=os.cpu_count() or 1)
        drawn = time.perf_counter()
        result = pixgate.score(
            work / "baseline", work / "candidate", work / "run.arrow", no_lpips=True, device="cpu",
            manifest=manifest, typography=typography, ocr_cache=work / "ocr-cache", overwrite=True,
        )  # fmt: skip
        scored = time.perf_counter()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    table = result.table
    status = Counter(table.column("status").to_pylist())
    if set(status) != {"ok"}:
        errors = [e for e in table.column("error").to_pylist() if e][:3]
        raise SystemExit(f"not every pair scored: {dict(status)}; {errors}")
    policy = load_policy(POLICY)
    check_fits(table, policy, Path("<detection run>"))
    judge = Judge(policy, without_nodata(policy, table), table)
    figures = measure(judge, args.seed, batches)
    judged = time.perf_counter()

    result_json = {
        "seed": args.seed,
        "posters": posters,
        "size": f"{WIDTH}x{HEIGHT}",
        "pairs": table.num_rows,
        "batches_per_cell": batches,
        "clean_per_batch": CLEAN_PER_BATCH,
        "typography": typography,
        "lpips": False,
        "policy": str(POLICY.relative_to(REPO)),
        "policy_sha256": hashlib.sha256(POLICY.read_bytes()).hexdigest(),
        "machine": f"CPU: {_cpu()}; device: cpu",
        "timings_s": {
            "draw": round(drawn - started, 1),
            "score": round(scored - drawn, 1),
            "judge": round(judged - scored, 1),
            "total": round(judged - started, 1),
        },
        "summary": summary(figures),
        "figures": figures,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "detection.json").write_text(json.dumps(result_json, indent=2) + "\n")
    _update_results_md()
    print("\n".join(detection_section()))


if __name__ == "__main__":
    main()
