"""The shapes oracle as a metric: it reads generated images for held-out captions and
says, per attribute, whether the picture shows what the caption says.

`shapes_accuracy` serves the evaluation during training (every snapshot), the demo's
report and `dmgan eval --data shapes` (the "oracle" metric).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dmgan.config import DataConfig
from dmgan.data.collate import collate
from dmgan.data.shapes import COLOUR_NAMES, POSITIONS, SHAPES, SIZES, ShapesDataset
from dmgan.metrics.oracle import ATTRIBUTES, judge, load_oracle

# What a generator that ignores the caption scores per attribute: one of the choices, at
# random. Position has 5 slots for one object; a pair sits left/right or top/bottom.
CHANCE = {"colour": 1 / len(COLOUR_NAMES), "shape": 1 / len(SHAPES), "size": 1 / len(SIZES),
          "position": 1 / len(POSITIONS), "background": 1 / len(COLOUR_NAMES)}
# Where an attribute counts as learned in the verdict (the bundled model's targets).
GOOD = 0.9


def caption_hits(hits: dict[str, list[bool]], attributes: Sequence[dict]) -> list[bool]:
    """Per caption: True when the background and every attribute of every object are right.

    `hits` is judge()'s output for these captions: background per image whose caption names
    it, the rest per object in caption order.
    """
    out, k, bg = [], 0, iter(hits["background"])
    for a in attributes:
        n = len(a["objects"])
        ok = next(bg) if a.get("background_named", True) else True
        for attr in ("colour", "shape", "size", "position"):
            ok = ok and all(hits[attr][k:k + n])
        out.append(bool(ok))
        k += n
    return out


def _summary(hits: dict[str, list[bool]], whole: list[bool], two: list[bool]) -> dict[str, float]:
    scores = {k: sum(v) / len(v) for k, v in hits.items() if v}
    scores["all"] = sum(whole) / len(whole)
    scores["two_object_all"] = sum(two) / len(two) if two else float("nan")
    return scores


def held_out_captions(n: int, seed: int, max_words: int = 30, *,
                      background_phrase: float = 1.0, vocab=None) -> ShapesDataset:
    """The `n` held-out (test split) shapes samples of `seed`: captions and ground truth
    (`background_phrase`: the share of captions that name the background; every one in
    the evaluations, none to ask how a model draws captions that leave it out), encoded with
    `vocab` (a model's own words; default the world's)."""
    return ShapesDataset(split="test", length=n, image_sizes=(64,), max_words=max_words, seed=seed,
                         options=DataConfig(shapes_background_phrase=background_phrase),
                         vocab=vocab)


def oracle_scores(images: torch.Tensor, attributes: Sequence[dict], *, batch: int = 100,
                  device: str | torch.device = "cpu") -> dict[str, float]:
    """The oracle on images (N, 3, 64, 64) in [-1, 1] for captions with these ground
    truths: per-attribute accuracy, "all" (every attribute of every object and the named
    background right) and "two_object_all" (the same on two-object captions)."""
    oracle, _ = load_oracle()
    oracle.to(device)
    hits = {a: [] for a in ATTRIBUTES}
    whole, two = [], []
    for start in range(0, len(attributes), batch):
        attrs = attributes[start:start + batch]
        h = judge(oracle, images[start:start + batch].to(device).float(), attrs)
        for k, v in h.items():
            hits[k] += v
        per_caption = caption_hits(h, attrs)
        whole += per_caption
        two += [ok for ok, a in zip(per_caption, attrs, strict=True) if len(a["objects"]) == 2]
    return _summary(hits, whole, two)


@torch.no_grad()
def generate_for_captions(generator, text_encoder, data, *, batch: int = 100, seed: int = 0,
                          device: str | torch.device = "cpu") -> tuple[torch.Tensor, list[dict]]:
    """The generator's final images (N, 3, H, W) for every caption of `data`, with the
    samples' ground truth; noise from a generator seeded with `seed` + 4242, drawn batch
    by batch (so the images do not depend on anything but the seed and the batch size)."""
    noise_gen = torch.Generator().manual_seed(seed + 4242)
    was_training = generator.training
    generator.eval()
    text_encoder.eval()
    images, attributes = [], []
    try:
        for start in range(0, len(data), batch):
            b = collate([data[i] for i in range(start, min(len(data), start + batch))])
            text = text_encoder(b.captions.to(device), b.lengths.to(device))
            z = torch.randn(len(b.keys), generator.z_dim, generator=noise_gen).to(device)
            images.append(generator(z, text.sentence, text.words, text.mask,
                                    sample_condition=False).images[-1].float().cpu())
            attributes += b.attributes
    finally:
        generator.train(was_training)
    return torch.cat(images), attributes


def real_ceiling(data: ShapesDataset, *, batch: int = 100,
                 device: str | torch.device = "cpu") -> dict[str, float]:
    """oracle_scores of the real images of these samples: the most a generator can score."""
    truth = torch.stack([data[i].images[-1] for i in range(len(data))])
    return oracle_scores(truth, [data[i].attributes for i in range(len(data))], batch=batch,
                         device=device)


def shapes_accuracy(generator, text_encoder, *, n: int = 500, seed: int = 0, batch: int = 100,
                    device: str | torch.device = "cpu", max_words: int = 30,
                    real: bool = True) -> dict:
    """oracle_scores of images generated for `n` held-out captions (fixed by `seed`), under
    "generated"; with `real`, the same for the real images of those samples (the oracle's
    own ceiling) under "real"."""
    data = held_out_captions(n, seed, max_words)
    images, attributes = generate_for_captions(generator, text_encoder, data, batch=batch,
                                               seed=seed, device=device)
    result = {"generated": oracle_scores(images, attributes, batch=batch, device=device)}
    if real:
        result["real"] = real_ceiling(data, batch=batch, device=device)
    result["captions"] = n
    result["two_object_captions"] = sum(len(a["objects"]) == 2 for a in attributes)
    return result


def verdict(scores: dict[str, float]) -> str:
    """One line on generated-image scores: which attributes are learned, which at chance."""
    learned = [a for a in ATTRIBUTES if scores[a] >= GOOD]
    at_chance = [a for a in ATTRIBUTES if scores[a] < CHANCE[a] + 0.1]
    if len(at_chance) == len(ATTRIBUTES):
        return ("at chance on every attribute: the model ignores the caption (too few steps, "
                "or a DAMSM that did not learn)")
    parts = [f"learned (>= {GOOD:.2f}): {', '.join(learned) or 'none'}"]
    if at_chance:
        parts.append(f"at chance: {', '.join(at_chance)}")
    middle = [a for a in ATTRIBUTES if a not in learned and a not in at_chance]
    if middle:
        parts.append(f"partly: {', '.join(middle)}")
    return "; ".join(parts) + f"; every attribute right on {scores['all']:.0%} of captions"
