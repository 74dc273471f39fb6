"""The report's card of one worst pair: the rules it broke, before and after (slider,
blink, full size), and its maps.

Pictures are read only from inside the folders the run recorded and under
`files_under`, decoded in worker processes (pixgate.scoring.workers) like a run's: a run
file is data, and a file that crashes a decoder or decodes for too long costs its own
pictures, not the report.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import zip_longest
from pathlib import Path
from typing import Any

import numpy as np

from pixgate.config import (
    DEFAULT_MAX_PIXELS,
    REPORT_FULL_PAIRS,
    REPORT_MAP_SIDE,
    REPORT_THUMB_SIDE,
    REPORT_VIEW_MAX_PIXELS,
)
from pixgate.runs import schema
from pixgate.scoring.backbones import backbone
from pixgate.scoring.decode import DecodedPair

from .maps import alpha_difference, bar_html, edge_loss, heat

# Outline colour of text regions on a report's pictures (RGBA).
_REGION = (255, 0, 200, 255)
# Boolean checks whose false value is a parity failure, with how the report names it.
PARITY = (
    (schema.ALPHA_PARITY, "alpha dropped or added"),
    (schema.ICC_MATCH, "colour space changed"),
    (schema.SIZE_MATCH, "size changed"),
    (schema.FRAME_COUNT_MATCH, "frame count changed (animation)"),
    (schema.TEXT_PASS, "text lost"),
)
# WebP quality of the pictures and maps: artefacts well below what a card shows.
_QUALITY = 90
# Longest side WebP can encode.
_WEBP_MAX_SIDE = 16383


def problems(row: dict[str, Any]) -> list[str]:
    """The parity checks a row breaks, and its status when it is not ok."""
    found = []
    if row[schema.STATUS.name] != schema.STATUS_OK:
        found.append(str(row[schema.STATUS.name]))
    found += [label for col, label in PARITY if row.get(col.name) is False]
    return found


def card_id(index: int) -> str:
    """The HTML id of the card at `index` (pair ids can hold any character)."""
    return f"card-{index}"


def _uri(img: Any) -> str:
    """A PIL image as a WebP data URI (transparency kept)."""
    buf = io.BytesIO()
    img.save(buf, format="WEBP", quality=_QUALITY, alpha_quality=100, method=4)
    return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode()


def _fit(rgba: np.ndarray, side: int | None = None, pixels: int | None = None) -> Any:
    """The picture scaled down to at most `side` on its longest side, or `pixels` in all."""
    from PIL import Image

    img = Image.fromarray(rgba, "RGBA")
    scale = side / max(img.size) if side else (pixels / (img.width * img.height)) ** 0.5 if pixels else 1.0
    # WebP holds no side over 16383 pixels (a 20000 x 40 banner is within the pixel budget).
    scale = min(scale, _WEBP_MAX_SIDE / max(img.size))
    if scale < 1.0:
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        # reducing_gap: a cheap box reduction first, LANCZOS for the last factor of 3.
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return img


def _outside(path: str, root: str | None, files_under: Path) -> bool:
    """A picture path from the run that does not lie in the folder the run recorded for its
    side (or the run recorded none), or not under `files_under`: not opened."""
    from pixgate.safe_io import inside

    if "://" in path or root is None or "://" in root:
        return True
    return not inside(Path(path), Path(root)) or not inside(Path(path), files_under)


def build_cards(
    rows: list[dict[str, Any]],
    load_model: Callable[[], Any],
    roots: tuple[str | None, str | None],
    files_under: Path,
    broken: dict[str, list[str]],
) -> list[tuple[str, bool]]:
    """Each shown pair's card, in the order of `rows`: (HTML, pictures shown).

    `load_model` gives the LPIPS model of the maps (or None), called once and only when a
    card has pictures to read: a report without any loads no torch. `broken` holds, by
    pair id, the lines naming the rules each pair broke. Each card is built as its pair
    arrives and its pixels dropped, with one pair in flight per worker, so memory stays a
    few pairs' worth however many cards there are.
    """
    from pixgate.scoring.pairing import Pair
    from pixgate.scoring.workers import DecodePool
    from pixgate.telemetry import cpu_count

    cards: dict[int, tuple[str, bool]] = {}
    pairs: list[tuple[int, Pair]] = []
    for index, row in enumerate(rows):
        base, cand = row.get(schema.BASELINE_PATH.name), row.get(schema.CANDIDATE_PATH.name)
        lines = broken.get(row[schema.PAIR_ID.name], [])
        if not base or not cand:
            cards[index] = _pair_card(index, row, lines, None, "one side is missing")
        elif _outside(base, roots[0], files_under) or _outside(cand, roots[1], files_under):
            why = f"their files are not inside the folders the run recorded, or not under {files_under} (--files-under)"
            cards[index] = _pair_card(index, row, lines, None, why)
        else:
            # The index as the pool's pair id: two rows of a hostile run may share an id.
            pairs.append((index, Pair(str(index), Path(base), Path(cand))))
    if pairs:
        model = load_model()
        workers = max(1, min(cpu_count(), len(pairs)))
        # Resizing, encoding (Pillow), the LPIPS maps (torch) and the edge kernel (numba,
        # nogil) all release the GIL: one thread per core builds the cards.
        with ThreadPoolExecutor(max_workers=workers) as threads:
            building: dict[Future[tuple[str, bool]], int] = {}
            pool = DecodePool([pair for _, pair in pairs], workers, DEFAULT_MAX_PIXELS, inflight=1)
            try:
                pool.refill()
                while pool.busy or building:
                    if building and (len(building) >= workers or not pool.busy):
                        done, _ = wait(list(building), return_when=FIRST_COMPLETED)
                        for future in done:
                            cards[building.pop(future)] = future.result()
                        continue
                    for pair, dp in pool.collect(block=True):
                        index = int(pair.pair_id)
                        row = rows[index]
                        lines = broken.get(row[schema.PAIR_ID.name], [])
                        building[threads.submit(_pair_card, index, row, lines, model, dp)] = index
            finally:
                pool.close()
    return [cards[index] for index in range(len(rows))]


def _head(index: int, row: dict[str, Any], broken: list[str]) -> str:
    pid = row[schema.PAIR_ID.name]
    numbers = " · ".join(
        f"{col.name} {row[col.name]:.4g}"
        for col in (schema.LPIPS, schema.DELTA_E_MEAN, schema.EDGE_PRESERVATION, schema.TEXT_CER)
        if isinstance(row.get(col.name), float)
    )
    parity = ", ".join(problems(row))
    head = f'<h3 id="{card_id(index)}" data-pair="{html.escape(pid)}">{index + 1}. {html.escape(pid)}</h3>'
    if broken:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in broken)
        head += f'<ul class="broken">{items}</ul>'
    head += f'<p class="facts">{html.escape(parity or "no parity check broken")}'
    head += f"<br>{html.escape(numbers)}</p>" if numbers else "</p>"
    if row[schema.STATUS.name] != schema.STATUS_OK:
        head += f'<p class="error">{html.escape(str(row[schema.ERROR.name] or ""))}</p>'
    return head


def _pair_card(
    index: int, row: dict[str, Any], broken: list[str], model: Any, pictures: DecodedPair | str | None
) -> tuple[str, bool]:
    """One worst pair's card; returns its HTML and whether pictures could be shown. A
    picture that cannot be drawn costs its own card's pictures, never the report."""
    try:
        return _drawn_card(index, row, broken, model, pictures)
    except (ValueError, OSError, RuntimeError, MemoryError) as exc:
        why = f"could not draw them: {type(exc).__name__}: {exc}"
        return _drawn_card(index, row, broken, model, why)


def _drawn_card(
    index: int, row: dict[str, Any], broken: list[str], model: Any, pictures: DecodedPair | str | None
) -> tuple[str, bool]:
    pid = row[schema.PAIR_ID.name]
    head = _head(index, row, broken)
    dp = pictures
    if not isinstance(dp, DecodedPair) or dp.baseline is None or dp.candidate_aligned is None:
        why = dp if isinstance(dp, str) else (dp.error if dp is not None else None) or "could not decode"
        return f'<div class="card">{head}<p class="note">no pictures: {html.escape(why)}</p></div>', False
    base, cand = dp.baseline.rgba, dp.candidate_aligned
    boxes = _text_boxes(row, dp.baseline.width, dp.baseline.height) if row.get(schema.TEXT_PASS.name) is False else []
    # The first cards compare at full resolution (bounded), the rest at thumbnail size.
    full = index < REPORT_FULL_PAIRS
    fit: dict[str, int] = {"pixels": REPORT_VIEW_MAX_PIXELS} if full else {"side": REPORT_THUMB_SIDE}
    views = (_regions(_fit(base, **fit), boxes, base), _regions(_fit(cand, **fit), boxes, base))
    compare = _compare(pid, *views, full=full, regions=bool(boxes))
    notes = []
    if dp.candidate is not None and (dp.candidate.width, dp.candidate.height) != (
        dp.baseline.width,
        dp.baseline.height,
    ):
        notes.append(
            f"candidate resampled from {dp.candidate.width}x{dp.candidate.height} to the baseline's "
            f"{dp.baseline.width}x{dp.baseline.height} to compare"
        )
    small_b = np.asarray(_fit(base, side=REPORT_MAP_SIDE))
    small_c = np.asarray(_fit(cand, side=REPORT_MAP_SIDE).resize(small_b.shape[1::-1]))
    tiles = []
    if model is not None and min(small_b.shape[:2]) < backbone(model.net).min_side:
        notes.append(f"LPIPS map left out: the picture is under {backbone(model.net).min_side} px on a side")
    elif model is not None:
        import torch

        with torch.inference_mode():
            x0 = model.prepare(torch.from_numpy(small_b.copy())[None])
            x1 = model.prepare(torch.from_numpy(small_c.copy())[None])
            tiles.append(("lpips", "LPIPS map", model.spatial(x0, x1)[0].numpy()))
    tiles.append(("edge_loss", "edge loss", edge_loss(small_b, small_c)))
    if dp.baseline.has_alpha or (dp.candidate is not None and dp.candidate.has_alpha):
        tiles.append(("alpha", "alpha difference", alpha_difference(small_b, small_c)))
    else:
        notes.append("no alpha on either side")
    maps = "".join(
        f'<figure class="map map-{key}"><img src="{_uri(heat(values, key))}" alt="{label} of {html.escape(pid)}">'
        f"<figcaption>{label}</figcaption>{bar_html(key)}</figure>"
        for key, label, values in tiles
    )
    note = f'<p class="note">{html.escape("; ".join(notes))}</p>' if notes else ""
    text = _text_readings(row) if boxes or row.get(schema.TEXT_PASS.name) is False else ""
    return f'<div class="card">{head}<div class="tiles">{compare}{maps}</div>{text}{note}</div>', True


def _compare(pid: str, base: Any, cand: Any, *, full: bool, regions: bool) -> str:
    """Before and after in one frame: a slider uncovers the candidate over the baseline,
    `blink` swaps them, `full size` opens both at their embedded resolution."""
    who, size = html.escape(pid), f"{base.width}x{base.height}"
    what = ", text regions" if regions else ""
    return (
        f'<figure class="compare" data-full="{int(full)}"><div class="stage">'
        f'<img class="b" src="{_uri(base)}" alt="baseline{what} of {who}">'
        f'<img class="c" src="{_uri(cand)}" alt="candidate{what} of {who}"></div>'
        '<figcaption><input type="range" min="0" max="100" value="50" aria-label="slider: baseline left, '
        'candidate right"> <button type="button" class="blink">blink</button> '
        + ('<button type="button" class="full">full size</button> ' if full else "")
        + f'<span class="note">baseline | candidate, {size}</span></figcaption></figure>'
    )


def _text_boxes(row: dict[str, Any], width: int, height: int) -> list[tuple[int, int, int, int]]:
    """The row's text regions in the baseline's pixels; none when the run's value is
    malformed or does not fit the baseline (a run file comes from anywhere)."""
    from pixgate.config import OCR_MAX_REGIONS
    from pixgate.safe_io import loads_json

    try:
        boxes = loads_json(row.get(schema.TEXT_BOXES.name) or "[]")
    except ValueError:
        return []
    if not isinstance(boxes, list) or len(boxes) > OCR_MAX_REGIONS:
        return []
    ok = [
        (b[0], b[1], b[2], b[3])
        for b in boxes
        if isinstance(b, list)
        and len(b) == 4
        and all(type(v) is int for v in b)
        and 0 <= b[0] < b[2] <= width
        and 0 <= b[1] < b[3] <= height
    ]
    return ok if len(ok) == len(boxes) else []


def _regions(img: Any, boxes: list[tuple[int, int, int, int]], base: np.ndarray) -> Any:
    """The picture with the text regions outlined, scaled from baseline pixels to it."""
    if not boxes:
        return img
    from PIL import ImageDraw

    out = img.convert("RGBA")
    sx, sy = out.width / base.shape[1], out.height / base.shape[0]
    draw = ImageDraw.Draw(out)
    for x0, y0, x1, y1 in boxes:
        draw.rectangle((x0 * sx, y0 * sy, max(x1 * sx - 1, x0 * sx), max(y1 * sy - 1, y0 * sy)), outline=_REGION)
    return out


def _text_readings(row: dict[str, Any]) -> str:
    """What OCR read in each region, baseline beside candidate (as many regions and
    characters as a run can hold: a run file from elsewhere cannot bloat the page)."""
    from pixgate.config import OCR_MAX_READ_CHARS, OCR_MAX_REGIONS

    base = str(row.get(schema.OCR_BASELINE.name) or "").split("\n")[:OCR_MAX_REGIONS]
    cand = str(row.get(schema.OCR_CANDIDATE.name) or "").split("\n")[:OCR_MAX_REGIONS]
    lines = "".join(
        f"<tr><td>{i + 1}</td><td>{html.escape(b[:OCR_MAX_READ_CHARS])}</td>"
        f"<td>{html.escape(c[:OCR_MAX_READ_CHARS])}</td></tr>"
        for i, (b, c) in enumerate(zip_longest(base, cand, fillvalue=""))
    )
    expected = row.get(schema.TEXT_EXPECTED.name)
    shown = str(expected)[: OCR_MAX_REGIONS * OCR_MAX_READ_CHARS]
    want = f'<p class="note">expected: {html.escape(shown)}</p>' if expected else ""
    return (
        '<table class="ocr"><caption>text read in each region</caption><thead><tr><th>region</th>'
        f"<th>baseline</th><th>candidate</th></tr></thead><tbody>{lines}</tbody></table>{want}"
    )


__all__ = ["PARITY", "build_cards", "card_id", "problems"]
