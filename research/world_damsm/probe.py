"""What a world DAMSM binds: on held-out two-object pictures, how often the picture's code is
nearer (cosine) the sentence code of its own caption than that of its twin with the two
objects' places traded, or their colours traded; the place trades split by how many places
the caption says (one: its twin names the place where the other object is; both).

    python research/world_damsm/probe.py RUNS/damsm/damsm.pt [N] [val]

`val`: fresh draws of the training split (dataset seed 1000, every combination allowed)
instead of the test samples, for choosing between DAMSMs without reading the report's
held-out set.
"""

import difflib
import sys

import numpy as np
import torch

from dmgan.config import override, preset
from dmgan.data.shapes import ShapesDataset, held_out, traded
from dmgan.data.vocab import tokenize
from dmgan.train.critic import _encode
from dmgan.train.damsm import load_damsm

WORLD = ["data.shapes_partial_share=0.5", "data.shapes_plural_share=0.5",
         "data.shapes_held_out=true"]


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "val"]
    val = "val" in sys.argv[1:]
    damsm = args[0]
    n = int(args[1]) if len(args) > 1 else 1500
    cfg = override(preset("shapes"), WORLD)
    text_encoder, image_encoder, _ = load_damsm(damsm, cfg)
    data = ShapesDataset(split="train" if val else "test", length=n,
                         image_sizes=cfg.generator.image_sizes, max_words=cfg.text.words_train,
                         seed=1000 if val else 0, options=cfg.data, combinations="all")
    rows = {"position": ([], [], [], [], []), "colour": ([], [], [], [], [])}
    for i in range(n):
        scene, caption, _, _ = data.scene(i)
        if len(scene.objects) != 2:
            continue
        for attribute, (own, twin, images, said, pairs) in rows.items():
            if attribute == "colour" and scene.objects[0].colour == scene.objects[1].colour:
                continue
            other = data.caption_for(i, traded(scene, attribute))
            if other == caption:
                continue
            a, b = tokenize(caption), tokenize(other)
            changed = [op for op in difflib.SequenceMatcher(a=a, b=b).get_opcodes()
                       if op[0] != "equal"]
            own.append(data.vocab.encode_tokens(a).ids)
            twin.append(data.vocab.encode_tokens(b).ids)
            images.append(data[i].images[-1])
            said.append(min(len(changed), 2))
            pairs.append(held_out(scene))
    with torch.no_grad():
        for attribute, (own, twin, images, said, pairs) in rows.items():
            code = image_encoder(torch.stack(images))[1]
            cos = [torch.nn.functional.cosine_similarity(code, _encode(text_encoder, r, "cpu").sentence,
                                                         dim=1) for r in (own, twin)]
            right, said, pairs = (cos[0] > cos[1]).numpy(), np.array(said), np.array(pairs)
            line = (f"{attribute} traded: {len(said)} pictures, own caption nearer {right.mean():.3f}"
                    f" (seen pairs {right[~pairs].mean():.3f} of {(~pairs).sum()}, held-out pairs "
                    f"{right[pairs].mean():.3f})")
            if attribute == "position":
                line += "".join(f"; {label} {right[said == k].mean():.3f} of {(said == k).sum()}"
                                for k, label in ((1, "one place said"), (2, "both said")))
            print(line)


if __name__ == "__main__":
    main()
