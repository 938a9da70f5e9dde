"""Which shapes a shapes model gets wrong: the oracle's shape reading of each object of the
held-out fully specified captions (the report's 500, seed 0), as a confusion table per size,
for a checkpoint and for the real pictures of the same captions.

    python research/shape_swaps/confusion.py CHECKPOINT [N]
"""

import sys
from collections import Counter

import torch

from dmgan.checkpoint import generator_name, load_checkpoint, load_network
from dmgan.data.shapes import POSITIONS, SHAPES, SIZES
from dmgan.data.vocab import Vocabulary
from dmgan.metrics.oracle import load_oracle
from dmgan.metrics.shapes import generate_for_captions, held_out_captions
from dmgan.models import build_generator, build_text_encoder


def readings(oracle, images, attributes):
    """(true shape, size, objects in the caption, read shape) per object, read at the
    object's own slot (the judge's rule when the oracle sees an object there)."""
    with torch.no_grad():
        pred = oracle(images)
    out = []
    for i, a in enumerate(attributes):
        for k, o in enumerate(a["objects"]):
            j = POSITIONS.index(o["position"])
            other = a["objects"][1 - k]["shape"] if len(a["objects"]) == 2 else None
            out.append((o["shape"], o["size"], len(a["objects"]),
                        SHAPES[int(pred["shape"][i, j].argmax())], other, k))
    return out


def table(rows, title):
    print(f"\n{title}")
    for size in SIZES:
        sub = [r for r in rows if r[1] == size]
        print(f"| {size} | " + " | ".join(SHAPES) + " | right |")
        print("| --- |" + " --- |" * (len(SHAPES) + 1))
        for s in SHAPES:
            c = Counter(r[3] for r in sub if r[0] == s)
            n = sum(c.values())
            print(f"| {s} | " + " | ".join(str(c[t]) for t in SHAPES)
                  + f" | {c[s] / max(n, 1):.2f} |")
    for k in (1, 2):
        sub = [r for r in rows if r[2] == k]
        print(f"{k} object(s): shape right {sum(r[0] == r[3] for r in sub) / len(sub):.3f} of {len(sub)}")
    two = [r for r in rows if r[2] == 2]
    for k in (0, 1):
        sub = [r for r in two if r[5] == k]
        print(f"two objects, the caption's object {k + 1}: shape right "
              f"{sum(r[0] == r[3] for r in sub) / len(sub):.3f}")
    wrong = [r for r in two if r[0] != r[3]]
    differ = [r for r in wrong if r[4] != r[0]]
    print(f"two objects of different shapes, wrong: {len(differ)}; drawn as the other object's "
          f"shape: {sum(r[3] == r[4] for r in differ)}; two objects of one shape, wrong: "
          f"{len(wrong) - len(differ)}")


def main() -> None:
    path, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 500
    cfg, payload = load_checkpoint(path)
    generator, text_encoder = build_generator(cfg, init=False), build_text_encoder(cfg)
    load_network(generator, payload, generator_name(payload), path)
    load_network(text_encoder, payload, "text_encoder", path)
    data = held_out_captions(n, 0, vocab=Vocabulary(payload["vocab"]))
    images, attributes = generate_for_captions(generator, text_encoder, data, batch=50)
    oracle, _ = load_oracle()
    table(readings(oracle, images, attributes), f"generated ({path})")
    real = torch.stack([data[i].images[-1] for i in range(len(data))])
    table(readings(oracle, real, attributes), "real pictures")


if __name__ == "__main__":
    main()
