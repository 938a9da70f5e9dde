"""Does a checkpoint's word-reading D prefer the true caption of a real two-object picture to
the same caption with the objects' shapes traded (and, for comparison, colours or places
traded)? Per D (64 px last), the share of held-out pictures where the true caption's match
logit is the larger (chance 0.5); two-object fully specified test captions whose objects
differ in the traded attribute.

    python research/shape_swaps/preference.py DAMSM CHECKPOINT [CHECKPOINT ...] [--n N]

CHECKPOINT: a critic (`dmgan train-critic`) or a GAN training checkpoint (its Ds, as the
D was at that step); DAMSM: the text encoder both were trained with.
"""

import argparse

import torch

from dmgan.checkpoint import load_checkpoint, load_network
from dmgan.config import DataConfig
from dmgan.data.shapes import ShapesDataset, traded
from dmgan.data.vocab import tokenize
from dmgan.models import build_discriminators
from dmgan.train.damsm import load_damsm

KINDS = ("shape", "colour", "position")


def encode(text_encoder, vocab, captions):
    rows = [vocab.encode_tokens(tokenize(c)).ids for c in captions]
    caps = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
    for k, row in enumerate(rows):
        caps[k, : len(row)] = torch.tensor(row)
    return text_encoder(caps, torch.tensor([len(r) for r in rows]))


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("damsm")
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--n", type=int, default=1500, help="test samples drawn (two-object ones kept)")
    a = p.parse_args()
    cfg, _ = load_checkpoint(a.checkpoints[0])
    text_encoder, _, _ = load_damsm(a.damsm, cfg)
    data = ShapesDataset(split="test", length=a.n, image_sizes=cfg.generator.image_sizes,
                         max_words=cfg.text.words_train, seed=0,
                         options=DataConfig(shapes_plural_share=0.0, shapes_partial_share=0.0))
    pairs = [(i, s) for i in range(a.n) if len((s := data.scene(i)[0]).objects) == 2]
    keep, scenes = [i for i, _ in pairs], [s for _, s in pairs]
    true = encode(text_encoder, data.vocab, [data.caption_for(i, s) for i, s in pairs])
    other = {k: encode(text_encoder, data.vocab, [data.caption_for(i, traded(s, k))
                                                   for i, s in pairs]) for k in KINDS}
    differ = {k: torch.tensor([getattr(s.objects[0], k) != getattr(s.objects[1], k)
                               for s in scenes]) for k in KINDS}
    images = [torch.stack([data[i].images[j] for i in keep]) for j in range(len(data.image_sizes))]
    print(f"{len(keep)} two-object test pictures; differing shapes {int(differ['shape'].sum())}")
    print("| checkpoint | D | " + " | ".join(f"true over {k}-traded" for k in KINDS) + " |")
    print("| --- | --- |" + " --- |" * len(KINDS))
    for path in a.checkpoints:
        source, payload = load_checkpoint(path)
        ds = build_discriminators(source, init=False)
        for j, d in enumerate(ds):
            load_network(d, payload, f"discriminator{j}", path)
            d.eval()
            feats = d(images[j])
            own = d.cond_logits(feats, true.sentence, true.words, true.mask)
            cells = []
            for k in KINDS:
                o = d.cond_logits(feats, other[k].sentence, other[k].words, other[k].mask)
                cells.append(f"{float((own > o)[differ[k]].float().mean()):.3f}")
            print(f"| {path} | {j} ({data.image_sizes[j]} px) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
