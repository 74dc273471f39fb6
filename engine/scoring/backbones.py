"""The LPIPS backbones: one registry of their facts (`BACKBONES`), and torchvision's
feature extractors (AlexNet, VGG16, SqueezeNet 1.1) built without torchvision.

Importing `torchvision` costs about 1.3 s of every run's start-up on a CI-class CPU (its
`ops` package imports `torch._dynamo`), more than loading the model itself, and pixgate
needs only three `features` stacks from it. These are the same layers under the same
names, so torchvision's state_dicts load unchanged; tests/scoring/test_backbones.py checks every
layer, parameter name and shape, and the outputs, against torchvision's own modules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import torch
    from torch import nn

# torchvision's VGG configuration "D" (VGG16): output channels of each 3x3 convolution,
# "M" a 2x2 max-pooling.
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
# SqueezeNet 1.1's Fire modules: (input, squeeze, expand 1x1, expand 3x3) channels; None
# marks a max-pooling between them.
_SQUEEZE = (
    (64, 16, 64, 64), (128, 16, 64, 64), None,
    (128, 32, 128, 128), (256, 32, 128, 128), None,
    (256, 48, 192, 192), (384, 48, 192, 192), (384, 64, 256, 256), (512, 64, 256, 256),
)  # fmt: skip


def _alexnet() -> nn.Sequential:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


def _vgg16() -> nn.Sequential:
    from torch import nn

    layers: list[nn.Module] = []
    channels = 3
    for v in _VGG16:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = int(v)
    return nn.Sequential(*layers)


def _fire(inplanes: int, squeeze: int, expand1x1: int, expand3x3: int) -> nn.Module:
    import torch
    from torch import nn

    class Fire(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.squeeze = nn.Conv2d(inplanes, squeeze, kernel_size=1)
            self.squeeze_activation = nn.ReLU(inplace=True)
            self.expand1x1 = nn.Conv2d(squeeze, expand1x1, kernel_size=1)
            self.expand1x1_activation = nn.ReLU(inplace=True)
            self.expand3x3 = nn.Conv2d(squeeze, expand3x3, kernel_size=3, padding=1)
            self.expand3x3_activation = nn.ReLU(inplace=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.squeeze_activation(self.squeeze(x))
            return torch.cat(
                [self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1
            )

    return Fire()


def _squeezenet1_1() -> nn.Sequential:
    from torch import nn

    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, kernel_size=3, stride=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
    ]
    for spec in _SQUEEZE:
        layers.append(nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True) if spec is None else _fire(*spec))
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class Backbone:
    """What pixgate knows of one LPIPS backbone.

    Attributes:
        name: The `lpips` package's name for it (`--net`).
        weights_url: torchvision's ImageNet weights (`<Model>_Weights.IMAGENET1K_V1.url`);
            the file name carries the sha256 prefix a download is checked against. Written
            out because importing torchvision to read them costs seconds per run;
            tests/scoring/test_weights.py checks them against torchvision.
        weights_sha256: The full sha256 of that file, as published with it (its first
            digits are the name's prefix): weights with another hash are not the ones
            LPIPS was calibrated on, and a run records that they are unknown.
        min_side: Smallest side (pixels) it accepts: smaller inputs make a pooling layer's
            output empty. Measured against the `lpips` package; tests/scoring/test_models.py
            re-checks it.
        slices: Layer ranges of `features` whose outputs LPIPS compares (the `lpips`
            package's `pretrained_networks` slices), one linear head each.
        build: Builds the `features` stack, parameters uninitialised.
    """

    name: str
    weights_url: str
    weights_sha256: str
    min_side: int
    slices: tuple[tuple[int, int], ...]
    build: Callable[[], nn.Sequential]


#: Every backbone, by `--net` name: the one place their facts live.
BACKBONES: Final[dict[str, Backbone]] = {
    b.name: b
    for b in (
        Backbone(
            "alex",
            "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
            31,
            ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)),
            _alexnet,
        ),
        Backbone(
            "vgg",
            "https://download.pytorch.org/models/vgg16-397923af.pth",
            "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
            16,
            ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30)),
            _vgg16,
        ),
        Backbone(
            "squeeze",
            "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
            "b8a52dc049b60e4b6ab68ad0df457362afab8b6304b2febdc1650a5dab4d7e7b",
            17,
            ((0, 2), (2, 5), (5, 8), (8, 10), (10, 11), (11, 12), (12, 13)),
            _squeezenet1_1,
        ),
    )
}
#: Backbone names, in the registry's order.
NETS: Final = tuple(BACKBONES)
#: The backbone a run uses unless told otherwise.
DEFAULT_NET: Final = "alex"


def backbone(net: str) -> Backbone:
    """The registry's entry for `net`.

    Raises:
        ValueError: `net` is not a known backbone (the message lists them).
    """
    if net not in BACKBONES:
        raise ValueError(f"net must be one of {', '.join(NETS)}; got {net!r}")
    return BACKBONES[net]


def features(net: str) -> nn.Sequential:
    """The `features` stack of torchvision's model for `net`, uninitialised parameters.

    Built on the current default device: under `torch.device("meta")` nothing is
    allocated, which is how `pixgate.scoring.models` builds it before loading a state_dict.

    Raises:
        ValueError: `net` is not a known backbone.
    """
    return backbone(net).build()


__all__ = ["BACKBONES", "DEFAULT_NET", "NETS", "Backbone", "backbone", "features"]
