"""pixgate's backbones against torchvision's own `features`: layers, names, shapes, outputs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from engine import backbones
from engine.config import NETS


def _torchvision_features(net: str) -> torch.nn.Sequential:
    from torchvision import models

    builder = {"alex": models.alexnet, "vgg": models.vgg16, "squeeze": models.squeezenet1_1}[net]
    return builder(weights=None).features.eval()


@pytest.mark.parametrize("net", NETS)
def test_layers_and_parameters_match_torchvision(net: str) -> None:
    ours, theirs = backbones.features(net), _torchvision_features(net)
    # The printed module lists every layer with its hyper-parameters (kernel, stride,
    # padding, ceil_mode, in-place), in order and under the same names.
    assert str(ours) == str(theirs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


@pytest.mark.parametrize("net", NETS)
def test_outputs_match_torchvision_with_the_same_weights(net: str) -> None:
    torch.manual_seed(7)
    theirs = _torchvision_features(net)
    ours = backbones.features(net).eval()
    ours.load_state_dict(theirs.state_dict())
    x = torch.rand(2, 3, 67, 71) * 2 - 1
    with torch.inference_mode():
        # Same layers, same kernels, same order: the results agree bit for bit.
        assert torch.equal(ours(x), theirs(x))


def test_unknown_net_is_named() -> None:
    with pytest.raises(ValueError, match=r"alex, vgg, squeeze; got 'resnet'"):
        backbones.features("resnet")


def test_loading_the_model_does_not_import_torchvision(weights_for: Callable[[str], Path]) -> None:
    # torchvision's import costs ~1.3 s of start-up; this pins the saving.
    code = (
        "import sys; from engine.models import load_lpips; "
        f"load_lpips('alex', __import__('pathlib').Path({str(weights_for('alex'))!r})); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torchvision', 'lpips')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
