"""How many near misses of the DAMSM's training data trade the two objects' places or
colours, on the fully specified captions and on the world's (3,000 training samples).

    python research/world_damsm/negatives.py          # fully specified captions
    python research/world_damsm/negatives.py world    # the world's data options
"""

import collections
import sys

from dmgan.config import override, preset
from dmgan.data.shapes import ShapesDataset, traded

WORLD = ["data.shapes_partial_share=0.5", "data.shapes_plural_share=0.5",
         "data.shapes_held_out=true"]


def main() -> None:
    n = 3000
    cfg = override(preset("shapes"), WORLD if sys.argv[1:] == ["world"] else [])
    data = ShapesDataset(split="train", length=n, image_sizes=cfg.generator.image_sizes,
                         max_words=cfg.text.words_train, seed=0, options=cfg.data,
                         near_misses=True)
    kinds = collections.Counter()
    for i in range(n):
        scene, caption, _, _, negative, _ = data._draw(i)
        if len(scene.objects) != 2:
            kinds["one object"] += 1
            continue
        trades = [a for a in ("position", "colour")
                  if negative != caption and data.caption_for(i, traded(scene, a)) == negative]
        kinds[f"two objects, {trades[0]} traded" if trades else
              "two objects, no near miss reads otherwise" if negative == caption else
              "two objects, another near miss"] += 1
    for kind, count in sorted(kinds.items()):
        print(f"{kind}: {count}")


if __name__ == "__main__":
    main()
