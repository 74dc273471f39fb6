"""Build `expected.npz` from PngSuite's decoded references (one flat JSON array per file).

    python tests/data/pngsuite/make_expected.py JSON_DIR

The references list each valid file's decoded pixels as `[r, g, b, a, ...]`; 16-bit files
list 16-bit samples, of which pixgate keeps the high byte, as PNG decoders do. Each is
stored here as the 8-bit array a correct decoder gives, compressed: the same values in a
fraction of the JSON's size.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main(json_dir: Path) -> None:
    arrays = {}
    for png in sorted((HERE / "png").glob("*.png")):
        if png.name.startswith("x"):
            continue  # deliberately corrupt: no pixels to expect
        ref = np.array(json.loads((json_dir / f"{png.stem}.json").read_text()), dtype=np.int64)
        if ref.max(initial=0) > 255:
            ref >>= 8
        arrays[png.stem] = ref.astype(np.uint8)
    np.savez_compressed(HERE / "expected.npz", **arrays)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
