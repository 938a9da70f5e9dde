"""Judging a shapes model: the oracle reads generated images for held-out captions."""

from __future__ import annotations

import torch

from dmgan.data.collate import collate
from dmgan.data.oracle import ATTRIBUTES, judge, load_oracle
from dmgan.data.shapes import ShapesDataset


@torch.no_grad()
def shapes_accuracy(generator, text_encoder, *, n: int = 500, seed: int = 0, batch: int = 100,
                    device: str | torch.device = "cpu", max_words: int = 30) -> dict[str, dict]:
    """Per-attribute accuracy of images generated for `n` held-out (test split) captions,
    and of the real images of the same samples."""
    oracle, _ = load_oracle()
    oracle.to(device)
    data = ShapesDataset(split="test", length=n, image_sizes=(16, 32, 64), max_words=max_words,
                         seed=seed)
    gen_hits = {a: [] for a in ATTRIBUTES}
    real_hits = {a: [] for a in ATTRIBUTES}
    noise_gen = torch.Generator().manual_seed(seed + 4242)
    generator.eval()
    text_encoder.eval()
    for start in range(0, n, batch):
        b = collate([data[i] for i in range(start, min(n, start + batch))])
        text = text_encoder(b.captions.to(device), b.lengths.to(device))
        z = torch.randn(len(b.keys), generator.z_dim, generator=noise_gen).to(device)
        fake = generator(z, text.sentence, text.words, text.mask, sample_condition=False).images[-1]
        for k, v in judge(oracle, fake.float(), b.attributes).items():
            gen_hits[k] += v
        for k, v in judge(oracle, b.images[-1].to(device), b.attributes).items():
            real_hits[k] += v
    return {"generated": {k: sum(v) / len(v) for k, v in gen_hits.items()},
            "real": {k: sum(v) / len(v) for k, v in real_hits.items()}, "captions": n}
