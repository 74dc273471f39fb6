"""pixgate's backbones against torchvision's own `features`: layers, names, shapes, outputs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from pixgate.scoring import backbones
from pixgate.scoring.backbones import NETS


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


def test_a_score_run_does_not_import_torchvision(
    weights_for: Callable[[str], Path], make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    # torchvision's import costs ~1.3 s of start-up; this pins the saving for the whole
    # scoring path (model, heads, kernels, writer), in a fresh interpreter.
    base, cand = make_pairs([(40, 48), (33, 35)])
    code = (
        "import sys; from pathlib import Path; from pixgate.scoring.score import ScoreOptions, run_score; "
        f"run_score(ScoreOptions(Path({str(base)!r}), Path({str(cand)!r}), Path({str(tmp_path / 'run.arrow')!r}), "
        f"device='cpu', weights=Path({str(weights_for('alex'))!r}))); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torchvision', 'lpips')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "run.arrow").exists()
