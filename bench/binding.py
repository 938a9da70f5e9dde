"""Where a shapes model puts the two objects of a two-object caption: for held-out captions
whose objects differ in colour, the oracle reads the object at each named place, and each
image counts as

- right: every object's colour at its own place;
- traded places: the two objects drawn whole (colour, shape and size together) but each at
  the other's place;
- traded colours: the places right, the colours traded, the shapes (or, for two objects
  of one shape, the sizes) not;
- traded, unclear: the colours traded, but the shapes and sizes do not say which of the
  two above (misread shapes, or two objects alike);
- other.

Each caption is drawn with `--noises` noise vectors, so the table also says whether the
outcome depends on the caption (every noise the same) or on the noise. A training
checkpoint's last D is asked too: on the real images of the same captions, does its
conditional logit prefer the true caption to the one with the objects' colours traded,
or their places (chance 0.5)?

    python bench/binding.py src/dmgan/assets/shapes_model.pt [--n 400 --noises 8]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a model file or a training checkpoint (its EMA G)")
    p.add_argument("--n", type=int, default=400, help="held-out samples read (two-object ones used)")
    p.add_argument("--noises", type=int, default=8, help="noise vectors per caption")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from dmgan import DMGAN
    from dmgan.data.collate import collate
    from dmgan.data.oracle import load_oracle
    from dmgan.data.shapes import COLOUR_NAMES, POSITIONS, SHAPES, SIZES
    from dmgan.metrics.shapes import held_out_captions

    model = DMGAN.from_checkpoint(args.checkpoint)
    g, te = model.generator.eval(), model.text_encoder.eval()
    oracle, _ = load_oracle()
    data = held_out_captions(args.n, args.seed)
    outcomes: Counter[str] = Counter()
    per_caption: Counter[str] = Counter()
    with torch.no_grad():
        for i in range(len(data)):
            sample = data[i]
            objs = sample.attributes["objects"]
            if len(objs) != 2 or objs[0]["colour"] == objs[1]["colour"]:
                continue
            batch = collate([sample] * args.noises)
            text = te(batch.captions, batch.lengths)
            z = torch.randn(args.noises, g.z_dim, generator=torch.Generator().manual_seed(i))
            pred = oracle(g(z, text.sentence, text.words, text.mask,
                            sample_condition=False).images[-1])
            slots = [POSITIONS.index(o["position"]) for o in objs]
            seen = set()
            for k in range(args.noises):
                colours = [COLOUR_NAMES[int(pred["colour"][k, j].argmax())] for j in slots]
                want_c = [o["colour"] for o in objs]
                if colours == want_c:
                    kind = "right"
                elif colours == want_c[::-1]:
                    kind = "traded, unclear"
                    for attr, names in (("shape", SHAPES), ("size", SIZES)):
                        want = [o[attr] for o in objs]
                        if want[0] == want[1]:
                            continue  # this attribute cannot tell: try the next
                        got = [names[int(pred[attr][k, j].argmax())] for j in slots]
                        kind = ("traded places" if got == want[::-1] else
                                "traded colours" if got == want else kind)
                        break
                else:
                    kind = "other"
                outcomes[kind] += 1
                seen.add(kind)
            per_caption["same outcome for every noise" if len(seen) == 1 else "depends on noise"] += 1
    images = sum(outcomes.values())
    print(json.dumps({"checkpoint": args.checkpoint, "captions": sum(per_caption.values()),
                      "images": images,
                      **{k: round(v / images, 3) for k, v in sorted(outcomes.items())},
                      **dict(per_caption), **_discriminator(args.checkpoint, data, te)}))


@torch.no_grad()
def _discriminator(path: str, data, te) -> dict:
    from dmgan.checkpoint import load_checkpoint
    from dmgan.data.shapes import traded
    from dmgan.data.vocab import tokenize
    from dmgan.models import build_discriminators

    cfg, payload = load_checkpoint(path)
    ds = build_discriminators(cfg)
    name = f"discriminator{len(ds) - 1}"
    if name not in payload["networks"]:
        return {}
    d = ds[-1].eval()
    d.load_state_dict(payload["networks"][name])
    hits: dict[str, list[bool]] = {"d_prefers_true_to_colour_trade": [],
                                   "d_prefers_true_to_place_trade": []}
    for i in range(len(data)):
        scene = data.scene(i)[0]
        if len(scene.objects) != 2:
            continue
        for key, attr in zip(hits, ("colour", "position"), strict=True):
            other = traded(scene, attr)
            if other == scene:
                continue
            ids = [data.vocab.encode_tokens(tokenize(c)).ids
                   for c in (data.scene(i)[1], data.caption_for(i, other))]
            caps = torch.zeros(2, max(map(len, ids)), dtype=torch.long)
            for k, row in enumerate(ids):
                caps[k, : len(row)] = torch.tensor(row)
            text = te(caps, torch.tensor([len(r) for r in ids]))
            image = data[i].images[-1][None].expand(2, -1, -1, -1)
            logits = d.cond_logits(d(image), text.sentence, text.words, text.mask)
            hits[key].append(bool(logits[0] > logits[1]))
    return {k: round(sum(v) / len(v), 3) for k, v in hits.items() if v}


if __name__ == "__main__":
    main()
