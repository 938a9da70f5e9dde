"""Which attributes a shapes DAMSM tells apart: for held-out images, does the true caption's
sentence code beat the same caption with one word of the first object changed (shape,
colour or size; every other value)? And, on two-object images, does it beat the caption
with the two colours traded (colour_swap), or with the two objects' places traded
(place_trade)? Chance: 1/4 shape, 1/8 colour, 1/2 size, 1/2 colour_swap and place_trade.

    python bench/damsm_attributes.py runs/damsm/damsm.pt [--n 300]

The DAMSM is the generator's teacher (the DAMSM loss): an attribute it cannot tell apart
is one the generator gets no signal for from it.
"""

from __future__ import annotations

import argparse
import json
import re

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("damsm")
    p.add_argument("--n", type=int, default=300)
    args = p.parse_args()

    from dmgan.checkpoint import load_checkpoint
    from dmgan.data.shapes import _SYN, COLOUR_NAMES, SHAPES, SIZES, ShapesDataset, traded
    from dmgan.data.vocab import tokenize
    from dmgan.train.damsm import load_damsm

    cfg, payload = load_checkpoint(args.damsm)
    te, ie, _ = load_damsm(args.damsm, cfg)
    data = ShapesDataset(split="test", length=args.n, image_sizes=(64,), max_words=cfg.text.words_eval)
    hits: dict[str, list[bool]] = {"shape": [], "colour": [], "size": [], "colour_swap": [],
                                   "place_trade": []}
    with torch.no_grad():
        for i in range(args.n):
            sample = data[i]
            caption, first = sample.attributes["caption"], sample.attributes["objects"][0]
            code = ie(sample.images[-1][None])[1]
            for attr, values in (("shape", SHAPES), ("colour", COLOUR_NAMES), ("size", SIZES)):
                said = [w for w in _SYN.get(first[attr], (first[attr],))
                        if re.search(rf"\b{w}\b", caption)]
                if not said:
                    continue
                variants = [caption] + [
                    re.sub(rf"\b{said[0]}\b", _SYN.get(v, (v,))[0], caption, count=1)
                    for v in values if v != first[attr]]
                ids = [data.vocab.encode_tokens(tokenize(c)).ids for c in variants]
                caps = torch.zeros(len(ids), max(map(len, ids)), dtype=torch.long)
                for k, row in enumerate(ids):
                    caps[k, : len(row)] = torch.tensor(row)
                hits[attr].append(_best_is_first(te, caps, ids, code))
            scene = data.scene(i)[0]
            if len(scene.objects) == 2:
                # the same words bound to the other objects: the two trade colours (when
                # they differ), or places
                for kind, attr in (("colour_swap", "colour"), ("place_trade", "position")):
                    other = traded(scene, attr)
                    if other == scene:
                        continue
                    variants = [caption, data.caption_for(i, other)]
                    ids = [data.vocab.encode_tokens(tokenize(c)).ids for c in variants]
                    caps = torch.zeros(2, max(map(len, ids)), dtype=torch.long)
                    for k, row in enumerate(ids):
                        caps[k, : len(row)] = torch.tensor(row)
                    hits[kind].append(_best_is_first(te, caps, ids, code))
    print(json.dumps({"damsm": args.damsm, "steps": payload.get("step"),
                      "test_r_at_1": payload.get("test_r_at_1"), "images": args.n,
                      **{k: round(sum(v) / len(v), 3) for k, v in hits.items()}}))


def _best_is_first(te, caps, ids, code) -> bool:
    sent = te(caps, torch.tensor([len(r) for r in ids])).sentence
    sim = torch.nn.functional.cosine_similarity(sent, code.expand_as(sent))
    return int(sim.argmax()) == 0


if __name__ == "__main__":
    main()
