"""The local backend's scoring loop: what it holds in memory while the model works."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pixgate.config import INFLIGHT_PER_WORKER, PENDING_BATCHES
from pixgate.scoring.decode import DecodedPair
from pixgate.scoring.score import ScoreOptions, run_score
from pixgate.scoring.scorer import Scorer

# A model this much slower per batch than two workers decode a batch of tiny images: the
# decoders outrun it, as they do on a CPU box scoring with a large backbone.
_SLOW_BATCH_S = 0.05


def test_decoded_pairs_waiting_for_a_slow_model_stay_bounded(
    make_pairs: Callable[..., tuple[Path, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers that decode faster than the model scores wait for it: the decoded pairs held
    at once stay under the loop's bound (waiting pairs plus those in flight), whatever the
    number of pairs. Counted from outside the loop: the DecodedPairs alive at each batch."""
    pairs, batch, workers = 80, 2, 2
    base, cand = make_pairs([(24, 24)] * pairs)
    alive: list[int] = []
    submit = Scorer.submit

    def slow(self: Scorer, items: list[DecodedPair], *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("_blank") is None:
            alive.append(sum(type(o) is DecodedPair for o in gc.get_objects()))
            time.sleep(_SLOW_BATCH_S)
        return submit(self, items, *args, **kwargs)

    monkeypatch.setattr(Scorer, "submit", slow)
    opts = ScoreOptions(
        base, cand, tmp_path / "run.arrow", device="cpu", no_lpips=True, typography=False, batch_size=batch,
        workers=workers,
    )  # fmt: skip
    result = run_score(opts)
    assert result.table.num_rows == pairs
    bound = batch * PENDING_BATCHES + workers * INFLIGHT_PER_WORKER
    assert len(alive) >= pairs // batch
    assert max(alive) <= bound, (max(alive), bound)
    # The decoders did outrun the model: the bound was reached, not merely never tested.
    assert batch * PENDING_BATCHES <= result.stats["decoded_waiting_peak"] <= bound
