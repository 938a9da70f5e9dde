"""`dmgan train` with the D's two-object near misses trading shapes as well: where the
recipe's swap share (data.shapes_swap_share) picks a trade, it picks among the trades the
two objects allow (colours when they differ, shapes when they differ, places) uniformly,
instead of colours or places only. Everything else is the package's own `dmgan train`.

    SWAPS=shapes python research/shape_swaps/train.py train ARGS...   # the arm
    SWAPS=off    python research/shape_swaps/train.py train ARGS...   # the control

The package is not changed: its near-miss function is wrapped from outside, in process
(the data must load in this process: --workers 0).
"""

import os
import sys

from dmgan.cli import main
from dmgan.data import shapes
from dmgan.data.shapes import near_miss_scene, traded

_original = near_miss_scene


def near_miss_with_shape_trades(scene, rng, *, swap_share=0.0, background=True):
    objs = scene.objects
    if len(objs) == 2 and swap_share > 0 and rng.random() < swap_share:
        kinds = ["position"]
        kinds += ["colour"] if objs[0].colour != objs[1].colour else []
        kinds += ["shape"] if objs[0].shape != objs[1].shape else []
        return traded(scene, kinds[int(rng.integers(len(kinds)))])
    return _original(scene, rng, swap_share=0.0, background=background)


if __name__ == "__main__":
    mode = os.environ.get("SWAPS", "shapes")
    if mode == "shapes":
        shapes.near_miss_scene = near_miss_with_shape_trades
    elif mode != "off":
        sys.exit(f"SWAPS must be 'shapes' or 'off', not {mode!r}")
    sys.exit(main(sys.argv[1:]))
