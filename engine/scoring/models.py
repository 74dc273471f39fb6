"""LPIPS: the `lpips` package's v0.1 linear heads on a torchvision backbone.

The graph is the `lpips` package's (scaling layer, backbone slices, unit-normalised
features, squared difference, 1x1 linear head, spatial mean, sum over layers); pixgate
runs both images of every pair through the backbone in one batch and applies each head
as a weighted channel sum. Parity with the package is tested to `LPIPS_PARITY_ATOL`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pixgate.config import ALPHA_BACKGROUND, LPIPS_HEAD_VERSION
from pixgate.errors import UsageError
from pixgate.scoring.backbones import backbone

_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10


class WeightsFormatError(UsageError, ValueError):
    """A weights file that is not a torchvision state_dict for the requested network."""


def _meta_features(net: str) -> nn.Sequential:
    """The backbone's `features` with no storage allocated (meta device)."""
    from pixgate.scoring import backbones

    # On the meta device nothing is allocated or randomly initialised: the state_dict's
    # tensors are assigned afterwards.
    with torch.device("meta"):
        return backbones.features(net)


def _read_state(weights: Path) -> Any:
    # mmap: only the tensors that are used are ever read into memory. Files in the legacy
    # (non-zip) format cannot be mapped and are read whole.
    with contextlib.suppress(RuntimeError):
        return torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
    return torch.load(weights, map_location="cpu", weights_only=True)


def _load_features(net: str, weights: Path) -> nn.Sequential:
    """Load the backbone's `features` from a torchvision state_dict file."""
    try:
        state = _read_state(weights)
    except Exception as exc:
        raise WeightsFormatError.about(
            "{weights} {path}: not a readable torch file ({problem})", path=weights, problem=exc
        ) from None
    if not isinstance(state, dict):
        raise WeightsFormatError.about(
            "{weights} {path}: expected a state_dict, found {kind}", path=weights, kind=type(state).__name__
        )
    features = _meta_features(net)
    wanted = {f"features.{k}": v for k, v in features.state_dict().items()}
    missing = sorted(set(wanted) - set(state))
    if missing:
        some = ", ".join(sorted(state)[:4]) or "none"
        raise WeightsFormatError.about(
            "{weights} {path}: not a torchvision {net} state_dict: missing {first} ({n} keys missing; the file has "
            "keys like {some})",
            path=weights,
            net=net,
            first=missing[0],
            n=len(missing),
            some=some,
        )
    for key, ref in wanted.items():
        if tuple(state[key].shape) != tuple(ref.shape):
            raise WeightsFormatError.about(
                "{weights} {path}: {key} has shape {found}, {net} needs {needed}",
                path=weights,
                key=key,
                found=tuple(state[key].shape),
                net=net,
                needed=tuple(ref.shape),
            )
    # clone(): own memory instead of pages of the mapped file, which may change later.
    features.load_state_dict({k.removeprefix("features."): state[k].float().clone() for k in wanted}, assign=True)
    return features


def _head_weights(net: str) -> list[torch.Tensor]:
    """The `lpips` package's calibrated linear heads, shipped inside the package."""

    # Located, not imported: importing `lpips` imports torchvision (see pixgate.scoring.backbones).
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the lpips package (its linear heads) is not installed: pip install lpips")
    path = Path(spec.submodule_search_locations[0]) / "weights" / f"v{LPIPS_HEAD_VERSION}" / f"{net}.pth"
    state = torch.load(path, map_location="cpu", weights_only=True)
    return [state[f"lin{i}.model.1.weight"].reshape(-1) for i in range(len(backbone(net).slices))]


class LpipsModule(nn.Module):
    """LPIPS for one backbone: its `features` cut into the LPIPS slices, and their heads.

    Args:
        net: The backbone's name (pixgate.scoring.backbones).
        features: Its `features` stack, weights loaded.
        heads: One linear head (per-channel weights) per slice.
    """

    shift: torch.Tensor
    scale: torch.Tensor
    background: torch.Tensor
    heads: torch.Tensor

    def __init__(self, net: str, features: nn.Sequential, heads: list[torch.Tensor]) -> None:
        super().__init__()
        self.net = net
        self.slices = nn.ModuleList(nn.Sequential(*features[a:b]) for a, b in backbone(net).slices)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        # One flat buffer for all heads, so `.to(device)` moves them with the module.
        self.register_buffer("heads", torch.cat([w.reshape(-1) for w in heads]))
        self.head_sizes = [w.numel() for w in heads]
        bg = torch.tensor(ALPHA_BACKGROUND, dtype=torch.float32).view(1, 3, 1, 1) / 255.0
        self.register_buffer("background", bg)

    def prepare(self, rgba: torch.Tensor) -> torch.Tensor:
        """N x H x W x 4 uint8 -> N x 3 x H x W in [-1, 1] (channels_last), alpha composited.

        On a GPU every batch is composited: asking whether it is all opaque would make
        the host wait for the device.
        """
        if rgba.device.type == "cpu" and bool((rgba[..., 3] == 255).all()):
            # Opaque (most images): one conversion and one fused scale, no compositing.
            rgb = rgba[..., :3].to(torch.float32).mul_(2.0 / 255.0).sub_(1.0)
            return rgb.permute(0, 3, 1, 2)
        x = rgba.permute(0, 3, 1, 2).float().div_(255.0)
        rgb, alpha = x[:, :3], x[:, 3:4]
        return (rgb * alpha + self.background * (1.0 - alpha)).mul_(2.0).sub_(1.0)

    def _layer_terms(self, h: torch.Tensor, w: torch.Tensor, n: int) -> torch.Tensor:
        """One layer's head: sum_c w_c (a_c/|a| - b_c/|b|)^2 per position, N x H x W.

        Works on the NHWC view of the channels_last features, so the channel sums are
        one matrix-vector product and every pass runs over contiguous memory: about
        2.5x faster on a CPU than normalising, differencing and weighting NCHW planes
        one after another; only the summation order differs.
        """
        hh = h.permute(0, 2, 3, 1)
        a, b = hh[:n], hh[n:]
        ia = torch.linalg.vector_norm(a, dim=-1, keepdim=True).add_(_EPS).reciprocal_()
        ib = torch.linalg.vector_norm(b, dim=-1, keepdim=True).add_(_EPS).reciprocal_()
        # Two rounded products, not a fused multiply-add: identical features must give
        # exactly 0.
        d = (a * ia).sub_(b * ib)
        return d.square_() @ w.to(d.dtype)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """LPIPS between two N x 3 x H x W batches in [-1, 1]; returns N distances."""
        return self.distances(self._scaled(x0, x1))

    def _scaled(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        return torch.cat([x0, x1]).sub_(self.shift).div_(self.scale)

    def inputs(self, base: torch.Tensor, cand: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """The backbone's input for two N x H x W x 4 uint8 batches: 2N x 3 x H x W
        (channels_last), what `forward` builds from `prepare`'s output.

        On a CPU, at the input's size, one numba pass does it: 1.6 against 7.2 ms per
        512x512 pair on 2 cores for the torch passes it replaces (conversion,
        scaling, concatenation, shift, scale). On a GPU torch's element-wise kernels
        are a small share of a batch.

        Args:
            base: Baseline pixels (straight alpha).
            cand: Candidate pixels, same shape and device.
            size: Resample both to this (H, W) first (bilinear): inputs below the
                backbone's minimum side.
        """
        if size is not None or base.device.type != "cpu":
            from torch.nn import functional as F

            x0, x1 = self.prepare(base), self.prepare(cand)
            if size is not None:
                x0 = F.interpolate(x0, size=size, mode="bilinear", align_corners=False)
                x1 = F.interpolate(x1, size=size, mode="bilinear", align_corners=False)
            return self._scaled(x0, x1)
        from pixgate_kernels.cpu import network_input_cpu

        # prepare's x = 2v - 1, then (x - shift) / scale: one affine map of v per channel.
        scale, shift = self.scale.double().flatten(), self.shift.double().flatten()
        out = network_input_cpu(
            base.contiguous().numpy(),
            cand.contiguous().numpy(),
            (2.0 / scale).numpy(),
            ((-1.0 - shift) / scale).numpy(),
            self.background.double().flatten().numpy(),
        )
        return torch.from_numpy(out).permute(0, 3, 1, 2)

    def distances(self, h: torch.Tensor) -> torch.Tensor:
        """LPIPS from the backbone's input (`inputs`): N distances for 2N images,
        the first N against the last N."""
        n = h.shape[0] // 2
        total = h.new_zeros(n, dtype=torch.float32)
        for block, w in zip(self.slices, self.heads.split(self.head_sizes), strict=True):
            h = block(h)
            total += self._layer_terms(h, w, n).float().mean(dim=(1, 2))
        return total

    def spatial(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """LPIPS as a map: N x H x W, each layer's term upsampled to the input size and
        summed (the `lpips` package's `spatial=True`); its mean is the distance."""
        import torch.nn.functional as F

        n, size = x0.shape[0], x0.shape[2:]
        h = self._scaled(x0, x1)
        total = x0.new_zeros((n, *size))
        for block, w in zip(self.slices, self.heads.split(self.head_sizes), strict=True):
            h = block(h)
            layer = self._layer_terms(h, w, n).float()[:, None]
            total += F.interpolate(layer, size=size, mode="bilinear", align_corners=False)[:, 0]
        return total


def _build_module(net: str, features: nn.Sequential, heads: list[torch.Tensor]) -> LpipsModule:
    # channels_last: NHWC convolutions are ~1.6x faster on CPU for this backbone and are
    # what tensor cores want on a GPU; `prepare` already yields NHWC-strided input.
    return LpipsModule(net, features, heads).eval().requires_grad_(False).to(memory_format=torch.channels_last)


def load_lpips(net: str, weights: Path) -> LpipsModule:
    """Build the LPIPS module for `net` with backbone weights from `weights`.

    The module has `prepare(rgba_uint8_nhwc)`, `forward(x0, x1) -> distances`,
    `spatial(x0, x1) -> maps`, and for whole batches `inputs(base_rgba, cand_rgba)` with
    `distances(inputs) -> distances`.

    Raises:
        ValueError: Unknown net.
        WeightsFormatError: The file is not a matching torchvision state_dict.
    """
    backbone(net)  # an unknown name is a ValueError before any file is read
    return _build_module(net, _load_features(net, weights), _head_weights(net))


def load_lpips_if_available(net: str, weights: Path | None = None) -> tuple[LpipsModule | None, str | None]:
    """LPIPS for tools where it is optional (report maps, replay): never downloads.

    Returns:
        The module, or None with one line saying why (no weights, or a bad file).
    """
    from pixgate.scoring.weights import WeightsError, resolve_weights

    try:
        return load_lpips(net, resolve_weights(net, weights, allow_download=False).path), None
    except (WeightsError, WeightsFormatError) as exc:
        return None, f"no {net} backbone weights ({str(exc).splitlines()[0]})"


def reference_lpips(net: str, weights: Path, *, spatial: bool = False) -> nn.Module:
    """The `lpips` package's own LPIPS module with its backbone loaded from `weights`.

    The reference pixgate is checked against (tests) and measured against (benchmarks):
    the package's graph, untouched, with the same backbone as `load_lpips`.
    """

    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package calls torchvision's deprecated `pretrained=`
        ref = lpips.LPIPS(net=net, pnet_rand=True, verbose=False, spatial=spatial)
    state = _read_state(weights)
    for block in ref.net.children():
        for index, layer in block.named_children():
            prefix = f"features.{index}."
            layer.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    return ref.eval()


def upscale_factor(net: str, height: int, width: int) -> float:
    """Factor (>= 1) that brings the shorter side up to the backbone's minimum."""
    return max(1.0, backbone(net).min_side / min(height, width))


__all__ = [
    "LpipsModule",
    "WeightsFormatError",
    "load_lpips",
    "load_lpips_if_available",
    "reference_lpips",
    "upscale_factor",
]
