"""The CPU kernels of `pixgate_kernels.registration`: the checks of their arguments and the
identical-pair scan (the phase correlation and the profile search are compared with
torch's registration in tests/scoring/test_registration.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.kernels.test_local import _pairs


def test_profile_search_refuses_positions_it_cannot_read() -> None:
    """A NaN scale or shift would index a profile at INT64_MIN: refused before the loop."""
    from pixgate_kernels.registration import profile_search_cpu

    profile = np.ones((1, 40))
    with pytest.raises(ValueError, match="finite"):
        profile_search_cpu(profile, profile, np.array([[np.nan]]), np.zeros((1, 1)), 5)


@pytest.mark.parametrize(("height", "width"), [(131, 97), (120, 96), (1, 1)])
def test_identical_pairs_match_the_comparison_of_every_byte(height: int, width: int) -> None:
    """`identical_cpu` (rows read eight bytes at a time where their length allows, else one)
    agrees with comparing every byte, down to a difference in the last byte of a pair."""
    from pixgate_kernels.registration import identical_cpu

    base, cand = _pairs(height, width)
    cand = torch.cat([cand, base[:2]])
    base = torch.cat([base, base[:2]]).contiguous()
    last = cand.clone()
    last[-1, -1, -1, -1] ^= 1
    for other in (cand, last):
        want = (base == other).flatten(1).all(dim=1).numpy()
        np.testing.assert_array_equal(identical_cpu(base.numpy(), other.contiguous().numpy()), want)
    assert identical_cpu(base.numpy(), last.numpy()).tolist()[-2:] == [True, False]
    with pytest.raises(ValueError, match="one shape"):
        identical_cpu(base.numpy(), base[:, :-1].contiguous().numpy())
