"""Judging a shapes model: the oracle reads generated images for held-out captions.

The same function serves the evaluation during training (`dmgan train`, every snapshot),
the demo's report and the recipe study (bench/recipe_study.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dmgan.data.collate import collate
from dmgan.data.oracle import ATTRIBUTES, judge, load_oracle
from dmgan.data.shapes import COLOUR_NAMES, POSITIONS, SHAPES, SIZES, ShapesDataset

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


@torch.no_grad()
def shapes_accuracy(generator, text_encoder, *, n: int = 500, seed: int = 0, batch: int = 100,
                    device: str | torch.device = "cpu", max_words: int = 30,
                    real: bool = True) -> dict:
    """Per-attribute accuracy of images generated for `n` held-out (test split) captions
    (fixed by `seed`), the fraction of captions with everything right ("all"), the same
    on the two-object captions ("two_object_all"); with `real`, the same for the real
    images of those samples (the oracle's own ceiling)."""
    oracle, _ = load_oracle()
    oracle.to(device)
    data = ShapesDataset(split="test", length=n, image_sizes=(64,), max_words=max_words,
                         seed=seed)
    sets = ("generated", "real") if real else ("generated",)
    hits = {s: {a: [] for a in ATTRIBUTES} for s in sets}
    whole = {s: [] for s in sets}
    two = {s: [] for s in sets}
    noise_gen = torch.Generator().manual_seed(seed + 4242)
    was_training = generator.training
    generator.eval()
    text_encoder.eval()
    for start in range(0, n, batch):
        b = collate([data[i] for i in range(start, min(n, start + batch))])
        text = text_encoder(b.captions.to(device), b.lengths.to(device))
        z = torch.randn(len(b.keys), generator.z_dim, generator=noise_gen).to(device)
        images = {"generated": generator(z, text.sentence, text.words, text.mask,
                                         sample_condition=False).images[-1].float()}
        if real:
            images["real"] = b.images[-1].to(device)
        for s in sets:
            h = judge(oracle, images[s], b.attributes)
            for k, v in h.items():
                hits[s][k] += v
            per_caption = caption_hits(h, b.attributes)
            whole[s] += per_caption
            two[s] += [ok for ok, a in zip(per_caption, b.attributes, strict=True)
                       if len(a["objects"]) == 2]
    generator.train(was_training)
    result = {s: _summary(hits[s], whole[s], two[s]) for s in sets}
    result["captions"] = n
    result["two_object_captions"] = len(two["generated"])
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
