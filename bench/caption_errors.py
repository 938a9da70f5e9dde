"""Where a shapes model's oracle errors are: per-object accuracy of each attribute on
one-object and on two-object captions, and the share of two-object captions with every
attribute right by template (how the caption begins) and by the first object's place.
Same captions and noise as `dmgan eval --data shapes` (held-out split, seed 0); with
`--no-background`, the same scenes worded without the background phrase ("a red circle"),
the share of images whose background the oracle reads as one of the objects' colours
(none in the data: such an object cannot be seen), and the background colours it reads
most often.

    python bench/caption_errors.py src/dmgan/assets/shapes_model.pt [--n 500] [--no-background]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a model file or a training checkpoint (its EMA G)")
    p.add_argument("--n", type=int, default=500, help="held-out captions")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-background", action="store_true",
                   help="captions that leave out the background")
    args = p.parse_args()

    import torch

    from dmgan import DMGAN
    from dmgan.data.oracle import judge, load_oracle
    from dmgan.data.shapes import COLOUR_NAMES
    from dmgan.metrics.shapes import caption_hits, generate_for_captions, held_out_captions

    model = DMGAN.from_checkpoint(args.checkpoint)
    data = held_out_captions(args.n, args.seed,
                             background_phrase=0.0 if args.no_background else 1.0)
    images, attributes = generate_for_captions(model.generator, model.text_encoder, data,
                                               seed=args.seed)
    oracle, _ = load_oracle()
    with torch.no_grad():
        hits = judge(oracle.eval(), images, attributes)
        background = oracle(images)["background"].argmax(1)
    whole = caption_hits(hits, attributes)
    # a background in one of the objects' colours hides that object
    read = [COLOUR_NAMES[int(b)] for b in background]
    hidden = [b in {o["colour"] for o in a["objects"]}
              for b, a in zip(read, attributes, strict=True)]
    per_object: dict[str, list[bool]] = defaultdict(list)
    two: dict[str, list[bool]] = defaultdict(list)
    k = 0
    for a, ok in zip(attributes, whole, strict=True):
        n = len(a["objects"])
        for attr in ("colour", "shape", "size", "position"):
            per_object[f"{n} object: {attr}"] += hits[attr][k:k + n]
        k += n
        if n == 2:
            first = a["caption"].split()[0]
            opening = "there is ..." if first == "there" else (
                "a/an ..." if first in ("a", "an") else "place first")
            two[f"opening {opening}"].append(ok)
            two[f"first object {a['objects'][0]['position']}"].append(ok)

    def share(v: list[bool], key: str = "right") -> dict:
        return {"n": len(v), key: round(sum(v) / len(v), 3)}

    print(json.dumps({"checkpoint": args.checkpoint, "captions": args.n,
                      "background_named": not args.no_background,
                      "all_right": share(whole),
                      "background_is_an_object_colour": share(hidden, "share"),
                      "background_read": {c: round(k / len(read), 3)
                                          for c, k in Counter(read).most_common(3)},
                      "per_object": {k: share(v) for k, v in sorted(per_object.items())},
                      "two_object_all_right": {k: share(v) for k, v in sorted(two.items())}},
                     indent=1))


if __name__ == "__main__":
    main()
