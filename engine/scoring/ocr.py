"""The OCR engine: Tesseract loaded once per thread, in this process (tesserocr).

Loading Tesseract's model costs far more than reading a line of text, so each OCR thread
keeps one engine loaded for the whole run instead of starting the `tesseract` command per
image. Two operations serve the typography checks (pixgate.scoring.typography):

- `find_lines`: the text lines of a whole image, with their boxes and confidences;
- `read_region`: the text of one prepared region (cropped, scaled, binarised).

Recognition is bounded in time (`OCR_TIMEOUT_S` a call, and what is left of the pair's
`OCR_PAIR_TIMEOUT_S`, a `Budget`): Tesseract stops a call that runs past it, which
becomes a `TextCheckError`. Page layout analysis is not interruptible; it is bounded by
the image's size instead (pixgate.scoring.text_lines scales pages and regions down to a bound).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixgate.config import OCR_MAX_READ_CHARS, OCR_PAIR_TIMEOUT_S, OCR_TIMEOUT_S, TESSDATA_DIRS
from pixgate.errors import UsageError

if TYPE_CHECKING:
    from PIL import Image

    from pixgate.scoring.manifest import Box


class OcrUnavailable(UsageError, RuntimeError):
    """Tesseract (or the requested language data) is not installed."""


class TextCheckError(ValueError):
    """A pair whose text cannot be checked (bad box, OCR failure or time-out)."""


@dataclass(frozen=True)
class OcrSettings:
    """Which Tesseract runs, with which data.

    Attributes:
        tessdata: The folder holding `<lang>.traineddata`.
        lang: Tesseract language(s), e.g. `eng` or `eng+deu`.
        version: The engine and its data, e.g. `tesseract 5.5.4 (tesserocr 2.13.0), eng
            <sha256 prefix of eng.traineddata>`: recorded in the run and part of the OCR
            cache's key, so a new model or new language data never reuses old readings.
    """

    tessdata: str
    lang: str
    version: str


def _tessdata_candidates() -> list[Path]:
    """TESSDATA_PREFIX alone when set (the user chose it), else the usual places."""
    if os.environ.get("TESSDATA_PREFIX"):
        return [Path(os.environ["TESSDATA_PREFIX"])]
    return [Path(d) for d in TESSDATA_DIRS]


def _data_digest(folder: Path, codes: list[str]) -> str:
    digest = hashlib.sha256()
    for code in codes:
        with (folder / f"{code}.traineddata").open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def find_tesseract(lang: str) -> OcrSettings:
    """Find Tesseract's language data for `lang` and check the engine loads it.

    The data folder is `TESSDATA_PREFIX` when set, else the first of the usual install
    places (Debian, Homebrew, /usr/local) that holds every requested language.

    Raises:
        OcrUnavailable: tesserocr is not installed, or no folder has data for `lang`.
    """
    try:
        import tesserocr
    except ImportError as exc:
        raise OcrUnavailable.about(
            "{typography}: the text checks need tesserocr ({problem}); install pixgate's dependencies, or pass "
            "{no_typography} to score without them",
            problem=exc,
        ) from None
    codes = [c for c in lang.split("+") if c]
    if not codes or any(not c.replace("_", "").replace("-", "").isalnum() for c in codes):
        raise OcrUnavailable.about(
            "{ocr_lang}: expected Tesseract language codes such as eng or eng+deu, got {got!r}", got=lang
        )
    tried = []
    for folder in _tessdata_candidates():
        if not all((folder / f"{code}.traineddata").is_file() for code in codes):
            tried.append(str(folder))
            continue
        try:
            api = tesserocr.PyTessBaseAPI(path=f"{folder}{os.sep}", lang=lang, oem=tesserocr.OEM.LSTM_ONLY)
        except RuntimeError as exc:  # data this engine cannot load (corrupt, or another version's)
            tried.append(f"{folder} (its data does not load: {exc})")
            continue
        api.End()
        engine = tesserocr.tesseract_version().split()[1]
        version = f"tesseract {engine} (tesserocr {tesserocr.__version__}), {lang} {_data_digest(folder, codes)}"
        return OcrSettings(str(folder), lang, version)
    raise OcrUnavailable.about(
        "{ocr_lang}: no Tesseract language data for {got!r} in {tried}. Install it "
        "(Debian/Ubuntu: apt-get install tesseract-ocr tesseract-ocr-<code>; macOS: brew install tesseract), set "
        "TESSDATA_PREFIX to the folder holding <code>.traineddata, or pass {no_typography}",
        got=lang,
        tried=", ".join(tried),
    )


_local = threading.local()


def _api(settings: OcrSettings) -> Any:
    """This thread's engine, loaded on first use."""
    api = getattr(_local, "api", None)
    if api is None or _local.settings != settings:
        import tesserocr

        if api is not None:
            api.End()
        # LSTM only: the legacy engine's adaptive classifier learns from what it reads,
        # so its readings would depend on what the thread read before.
        api = tesserocr.PyTessBaseAPI(
            path=f"{settings.tessdata}{os.sep}", lang=settings.lang, oem=tesserocr.OEM.LSTM_ONLY
        )
        _local.api, _local.settings = api, settings
    return api


class Budget:
    """The time one pair's OCR may still take, shared by its calls.

    Args:
        stop: Set when the run is stopping (Ctrl-C, an error): the pair's next call, or
            its next look at the clock, ends the check.
    """

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.until = time.monotonic() + OCR_PAIR_TIMEOUT_S
        self.stop = stop
        self._ticks = 0

    def remaining(self) -> float:
        """Seconds left for the next call, at most `OCR_TIMEOUT_S`.

        Raises:
            TextCheckError: The run is stopping, or the pair's time is spent.
        """
        if self.stop is not None and self.stop.is_set():
            raise TextCheckError("typography: the run is stopping")
        left = self.until - time.monotonic()
        if left <= 0:
            raise TextCheckError(f"typography: the pair's OCR took longer than {OCR_PAIR_TIMEOUT_S:g} s in all")
        return min(OCR_TIMEOUT_S, left)

    def tick(self, steps: int = 1) -> None:
        """Count work done outside Tesseract, looking at the clock every `_TICKS` steps."""
        self._ticks += steps
        if self._ticks >= _TICKS:
            self._ticks = 0
            self.remaining()


#: Steps of work outside Tesseract (characters of an edit distance) between two looks at
#: the clock.
_TICKS = 64


def _recognize(api: Any, image: Image.Image, what: str, budget: Budget | None) -> None:
    limit = OCR_TIMEOUT_S if budget is None else budget.remaining()
    api.SetImage(image)
    started = time.monotonic()
    if not api.Recognize(timeout=max(1, int(limit * 1000))):
        if time.monotonic() - started >= limit:
            raise TextCheckError(f"typography: Tesseract gave up {what} (no result within {limit:.3g} s)")
        raise TextCheckError(f"typography: Tesseract failed {what} ({image.width}x{image.height} image)")


#: Tesseract's `thresholding_method`: Otsu's threshold of the whole image, or Sauvola's,
#: a threshold that follows the local background.
_OTSU, _SAUVOLA = "0", "2"


def find_lines(
    image: Image.Image,
    settings: OcrSettings,
    budget: Budget | None = None,
    *,
    sparse: bool = False,
    adaptive: bool = False,
) -> list[tuple[Box, float]]:
    """The text lines Tesseract finds in a whole image: (box, confidence 0-100).

    Boxes are `(x0, y0, x1, y1)` in the image's pixels, ends exclusive; lines without a
    letter or digit are left out.

    Args:
        image: The page.
        settings: Which Tesseract and data.
        budget: The pair's time, shared with its other calls.
        sparse: Look for text in no particular layout (Tesseract's sparse-text mode)
            instead of analysing the page's blocks and columns.
        adaptive: Binarise the page with a local threshold (Sauvola's) instead of one
            threshold for the whole page, which puts dark text on a mid-tone background in
            the same class as its background when the page also holds a light band.
    """
    import tesserocr

    api = _api(settings)
    api.SetPageSegMode(tesserocr.PSM.SPARSE_TEXT if sparse else tesserocr.PSM.AUTO)
    api.SetVariable("thresholding_method", _SAUVOLA if adaptive else _OTSU)
    try:
        _recognize(api, image, "looking for text", budget)
        lines = []
        level = tesserocr.RIL.TEXTLINE
        for line in tesserocr.iterate_level(api.GetIterator(), level):
            if line.Empty(level):
                continue
            box = line.BoundingBox(level)
            if box is None or not any(ch.isalnum() for ch in line.GetUTF8Text(level) or ""):
                continue
            x0, y0, x1, y1 = (int(v) for v in box)
            lines.append(((x0, y0, x1, y1), float(line.Confidence(level))))
        return lines
    finally:
        api.Clear()  # an idle thread must not hold a page's analysis


def read_region(image: Image.Image, settings: OcrSettings, budget: Budget | None = None) -> tuple[str, float]:
    """The text of one prepared region, its lines joined by spaces (at most
    `OCR_MAX_READ_CHARS`), and its mean word confidence (0-100; 0 when nothing was read);
    `budget` as for `find_lines`."""
    import tesserocr

    api = _api(settings)
    api.SetPageSegMode(tesserocr.PSM.SINGLE_BLOCK)
    api.SetVariable("thresholding_method", _OTSU)  # a line's own box: one threshold suits it
    try:
        _recognize(api, image, "reading a text region", budget)
        text = " ".join((api.GetUTF8Text() or "").split())[:OCR_MAX_READ_CHARS]
        return text, float(api.MeanTextConf()) if text else 0.0
    finally:
        api.Clear()


__all__ = [
    "Budget",
    "OcrSettings",
    "OcrUnavailable",
    "TextCheckError",
    "find_lines",
    "find_tesseract",
    "read_region",
]
