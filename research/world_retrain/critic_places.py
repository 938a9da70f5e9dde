"""A critic's held-out preference on place-traded twins, and its DAMSM's (sentence code
nearer the picture's code), split by how many places the caption says: one (its twin names
the place where the other object is) or both.

    python research/world_retrain/critic_places.py RUNS/critic/ckpt-00003500.pt RUNS/damsm/damsm.pt
"""

import difflib
import sys

import numpy as np
import torch

from dmgan.checkpoint import load_checkpoint, load_network
from dmgan.config import override, preset
from dmgan.data.shapes import ShapesDataset, traded
from dmgan.data.vocab import tokenize
from dmgan.models import build_discriminators
from dmgan.train.critic import _encode, _logits
from dmgan.train.damsm import load_damsm

WORLD = ["data.shapes_partial_share=0.5", "data.shapes_plural_share=0.5", "data.shapes_held_out=true"]


def main() -> None:
    critic, damsm = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1500
    cfg = override(preset("shapes"), WORLD)
    text_encoder, image_encoder, _ = load_damsm(damsm, cfg)
    payload = load_checkpoint(critic)[1]
    ds = build_discriminators(cfg)
    for k, d in enumerate(ds):
        load_network(d, payload, f"discriminator{k}", critic)
    ds.eval()
    data = ShapesDataset(split="test", length=n, image_sizes=cfg.generator.image_sizes,
                         max_words=cfg.text.words_train, seed=0, options=cfg.data)
    own, twin, images, said = [], [], [], []
    for i in range(n):
        scene, caption, _, _ = data.scene(i)
        if len(scene.objects) != 2:
            continue
        other = data.caption_for(i, traded(scene, "position"))
        if other == caption:
            continue
        a, b = tokenize(caption), tokenize(other)
        blocks = [op for op in difflib.SequenceMatcher(a=a, b=b).get_opcodes() if op[0] != "equal"]
        own.append(data.vocab.encode_tokens(a).ids)
        twin.append(data.vocab.encode_tokens(b).ids)
        images.append(data[i].images[-1])
        said.append(min(len(blocks), 2))
    said = np.array(said)
    with torch.no_grad():
        pictures = torch.stack(images)
        texts = [_encode(text_encoder, rows, "cpu") for rows in (own, twin)]
        feats = ds[-1](pictures)
        right = (_logits(ds[-1], feats, texts[0]) > _logits(ds[-1], feats, texts[1])).numpy()
        code = image_encoder(pictures)[1]
        cos = [torch.nn.functional.cosine_similarity(code, t.sentence, dim=1) for t in texts]
        damsm_right = (cos[0] > cos[1]).numpy()
    for k, label in ((1, "one place said"), (2, "both places said")):
        m = said == k
        print(f"{label}: {m.sum()} pictures; the own caption preferred by the 64 px D "
              f"{right[m].mean():.3f}, by the DAMSM {damsm_right[m].mean():.3f}")


if __name__ == "__main__":
    main()
