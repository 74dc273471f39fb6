"""The report's per-pixel maps of what changed, each kind on one fixed scale.

A map is drawn through one colour table for every kind: black is no change, brighter
is more, up to the kind's peak (pixgate.config.REPORT_MAP_PEAKS), where it saturates.
The scale is the same on every card and in every report, so brightness can be compared
between pairs, and a pixel-identical pair's maps are black, not noise stretched to fill
the range.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import numpy as np

from pixgate.config import REPORT_MAP_PEAKS

#: The colour table (matplotlib's): perceptually uniform, dark at 0.
COLOUR_MAP: Final = "inferno"
#: Colour stops of the bars' CSS gradients.
_BAR_STOPS: Final = 9


@dataclass(frozen=True)
class MapKind:
    """One kind of map.

    Attributes:
        key: Its key in `REPORT_MAP_PEAKS` and its CSS class suffix.
        label: Its caption.
        unit: What its values measure.
        legend: One line on what a bright pixel means.
    """

    key: str
    label: str
    unit: str
    legend: str

    @property
    def peak(self) -> float:
        """The value at the top of the colour bar."""
        return REPORT_MAP_PEAKS[self.key]


#: Every kind of map, in the order a card shows them.
MAP_KINDS: Final = (
    MapKind("lpips", "LPIPS map", "LPIPS distance", "how different each patch looks (the run's backbone)"),
    MapKind("edge_loss", "edge loss", "Sobel magnitude of luma", "edge strength the candidate lost"),
    MapKind("alpha", "alpha difference", "alpha, 0..1", "how much transparency changed"),
)
KINDS: Final = {kind.key: kind for kind in MAP_KINDS}
#: The legend line above the cards.
LEGEND: Final = (
    "Black means no change; brighter means more, on one scale per kind of map for the whole report, "
    "saturating at the top of its bar."
)


@cache
def _table() -> np.ndarray:
    """256 x 3 uint8 colours; index 0 is pure black."""
    from matplotlib import colormaps

    colours = np.round(colormaps[COLOUR_MAP](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)
    colours[0] = 0
    return colours


def heat(values: np.ndarray, key: str) -> Any:
    """A map's values as an RGB image on its kind's fixed scale."""
    from PIL import Image

    scaled = np.clip(np.nan_to_num(values, nan=0.0) / KINDS[key].peak, 0.0, 1.0)
    return Image.fromarray(_table()[np.round(scaled * 255).astype(np.intp)], "RGB")


def bar_css() -> str:
    """CSS for each kind's colour bar (`.bar-<key>`), as a gradient: no picture needed."""
    colours = _table()[np.linspace(0, 255, _BAR_STOPS).round().astype(int)]
    stops = ",".join(f"#{r:02x}{g:02x}{b:02x}" for r, g, b in colours)
    return "".join(f".bar-{kind.key}{{background:linear-gradient(to right,{stops})}}" for kind in MAP_KINDS)


def bar_html(key: str) -> str:
    """A kind's colour bar with its scale: 0, the middle and the peak."""
    kind = KINDS[key]
    return (
        f'<div class="scale"><div class="bar bar-{kind.key}"></div>'
        f'<div class="ticks"><span>0</span><span>{kind.peak / 2:g}</span><span>&ge;{kind.peak:g}</span></div></div>'
    )


def edge_loss(base: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Edge strength the candidate lost, per pixel: the baseline's Sobel magnitude minus
    the candidate's where positive (the edge kernel's, on luma over white)."""
    from pixgate_kernels.cpu import edge_magnitudes_cpu

    edges = edge_magnitudes_cpu(np.ascontiguousarray(base[None]), np.ascontiguousarray(cand[None]))
    return np.maximum(edges[0, 0] - edges[1, 0], 0.0)


def alpha_difference(base: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """|alpha difference| per pixel, 0..1."""
    return np.abs(base[..., 3].astype(np.float32) - cand[..., 3].astype(np.float32)) / 255.0


__all__ = ["COLOUR_MAP", "KINDS", "LEGEND", "MAP_KINDS", "MapKind", "alpha_difference", "bar_css", "bar_html",
           "edge_loss", "heat"]  # fmt: skip
