"""The shapes report for captions as people write them, grouped as GenEval groups its rows.

For held-out captions that leave things out ("a circle", "two red squares", "a red square
and a big triangle"), each drawn with several seeds, the bundled oracle reads every picture
(`detect`: the objects it sees, per place slot) and each caption object is matched to a
seen object (`match`: the assignment with the most said attributes right). Rows:

- single_object, two_object: every object of the caption found (the count right) and of
  the right shape; counting: the same on captions that count ("two circles");
  colours, positions: a said colour / place right; colour_attribution: both colours right
  on two-object captions that say both; all_said: every said attribute of every object;
- unsaid_tv_<part>: total-variation distance between what the pictures show where the
  caption leaves <part> free (`free_parts`) and what the world draws there (real pictures
  of the same captions), pooled over captions; unsaid_varies_<part>: the share of free
  <part>s (per caption object) that take more than one value over the seeds;
- diversity_ratio: the mean pixel distance between the pictures of one caption, generated,
  over the same for real pictures of that caption;
- held_out_<attribute>: the fully specified report's accuracy on captions with a held-out
  colour-shape or shape-place pair (data.shapes_held_out).
Each row comes with its chance level where one exists (`CHANCE_ROWS`).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch

from dmgan.config import DataConfig
from dmgan.data.collate import collate
from dmgan.data.shapes import (
    COLOUR_NAMES,
    PARTS,
    POSITIONS,
    SHAPES,
    SIZES,
    ShapesDataset,
    redraw_free,
    render,
)
from dmgan.data.transforms import to_tensor
from dmgan.metrics.oracle import load_oracle
from dmgan.metrics.shapes import CHANCE, oracle_scores

VALUES = {"size": SIZES, "colour": COLOUR_NAMES, "position": POSITIONS}
# a generator that ignores the caption (one or two objects, half the time each, with random
# attributes): the count right half the time, then each said attribute by chance
CHANCE_ROWS = {"single_object": CHANCE["shape"] / 2, "two_object": CHANCE["shape"] ** 2 / 2,
               "counting": CHANCE["shape"] ** 2 / 2, "colours": CHANCE["colour"],
               "positions": CHANCE["position"], "colour_attribution": CHANCE["colour"] ** 2,
               "objects_found": 1 / 2}


@torch.no_grad()
def detect(oracle, images: torch.Tensor) -> list[list[dict]]:
    """Per image, the objects the oracle sees: {position, shape, colour, size} per slot whose
    presence is over one half."""
    pred = oracle(images)
    seen = torch.sigmoid(pred["presence"]) > 0.5
    out = []
    for i in range(images.shape[0]):
        out.append([{"position": POSITIONS[j],
                     "shape": SHAPES[int(pred["shape"][i, j].argmax())],
                     "colour": COLOUR_NAMES[int(pred["colour"][i, j].argmax())],
                     "size": SIZES[int(pred["size"][i, j].argmax())]}
                    for j in range(len(POSITIONS)) if bool(seen[i, j])])
    return out


def match(objects: Sequence[dict], said: Sequence[Sequence[str]], seen: Sequence[dict]
          ) -> list[dict | None]:
    """Per caption object, the seen object matched to it (None when there are fewer seen
    than said): the assignment with the most right attributes, shape and said ones."""
    def score(o, parts, s):
        return (o["shape"] == s["shape"]) + sum(o[p] == s[p] for p in parts)

    best, best_score = [None] * len(objects), -1
    for chosen in itertools.permutations(range(len(seen)), min(len(objects), len(seen))):
        total = sum(score(o, p, seen[k]) for o, p, k in zip(objects, said, chosen, strict=False))
        if total > best_score:
            best_score = total
            best = [seen[k] for k in chosen] + [None] * (len(objects) - len(chosen))
    return best


def partial_captions(n: int, seed: int, *, max_words: int = 30, vocab=None,
                     combinations: str = "all") -> ShapesDataset:
    """`n` held-out captions that leave things out (every one partial, half of the eligible
    two-object ones counted, a fifth without the background)."""
    world = DataConfig(shapes_partial_share=1.0, shapes_plural_share=0.5,
                       shapes_background_phrase=0.8)
    return ShapesDataset(split="test", length=n, image_sizes=(64,), max_words=max_words,
                         seed=seed, options=world, vocab=vocab, combinations=combinations)


def _real_pictures(data: ShapesDataset, index: int, k: int, rng: np.random.Generator
                   ) -> tuple[torch.Tensor, list[dict]]:
    """`k` real pictures of sample `index`'s caption: its said attributes kept, the free
    ones drawn again as the world draws them (`redraw_free`)."""
    scene = data.scene(index)[0]
    said = data[index].attributes["said"]
    pictures, objects = [], []
    for _ in range(k):
        real = redraw_free(scene, said, rng)
        pictures.append(to_tensor(np.asarray(render(real, 64, rng))))
        objects.append(real.as_dict())
    return torch.stack(pictures), objects


def _pixel_spread(images: torch.Tensor) -> float:
    """Mean L1 distance between the pictures of one caption (levels of [-1, 1] per pixel)."""
    pairs = list(itertools.combinations(range(images.shape[0]), 2))
    return float(np.mean([(images[a] - images[b]).abs().mean().item() for a, b in pairs]))


def free_parts(said: Sequence[Sequence[str]], k: int) -> set[str]:
    """What the world leaves free for caption object k: its unsaid parts, but for a place
    that the other object's said place fixes (two objects sit at a pair of places)."""
    free = set(PARTS) - set(said[k])
    if len(said) == 2 and any("position" in s for s in said):
        free.discard("position")
    return free


def partial_rows(attributes: Sequence[dict], seen: Sequence[Sequence[list[dict]]],
                 real_objects: Sequence[Sequence[dict]], spread: Sequence[float],
                 spread_real: Sequence[float]) -> dict[str, float]:
    """The report's rows from, per caption: its attributes (with `said`), what the oracle saw
    in each of its pictures (`detect`), the scenes of its real pictures, and the pixel
    spread of its generated and real pictures."""
    rows: dict[str, list[float]] = {k: [] for k in (
        "single_object", "two_object", "counting", "colours", "positions",
        "colour_attribution", "all_said", "objects_found")}
    free = {p: Counter() for p in PARTS}
    free_real = {p: Counter() for p in PARTS}
    varies = {p: [] for p in PARTS}
    for a, pictures, reals in zip(attributes, seen, real_objects, strict=True):
        said = a["said"]
        values: dict[tuple[int, str], list[str]] = {}  # per caption object and free part
        group = "counting" if a["plural"] else (
            "single_object" if len(a["objects"]) == 1 else "two_object")
        for objects_seen in pictures:
            matched = match(a["objects"], said, objects_seen)
            found = len(objects_seen) == len(a["objects"])
            rows["objects_found"].append(found)
            every = found and all(m is not None and m["shape"] == o["shape"]
                                  for o, m in zip(a["objects"], matched, strict=True))
            rows[group].append(every)
            for k, (o, parts, m) in enumerate(zip(a["objects"], said, matched, strict=True)):
                for p in parts:
                    right = m is not None and m[p] == o[p]
                    every = every and right
                    if p in ("colour", "position"):
                        rows["colours" if p == "colour" else "positions"].append(right)
                for p in free_parts(said, k):
                    if m is not None:
                        free[p][m[p]] += 1
                        values.setdefault((k, p), []).append(m[p])
            rows["all_said"].append(every)
            if len(a["objects"]) == 2 and all("colour" in s for s in said):
                rows["colour_attribution"].append(all(
                    m is not None and m["colour"] == o["colour"]
                    for o, m in zip(a["objects"], matched, strict=True)))
        for scene in reals:
            for k, o in enumerate(scene["objects"]):
                for p in free_parts(said, k):
                    free_real[p][o[p]] += 1
        for (_, p), vs in values.items():
            varies[p].append(len(set(vs)) > 1)
    report = {k: float(np.mean(v)) for k, v in rows.items() if v}
    for p in PARTS:
        if free[p] and free_real[p]:
            report[f"unsaid_tv_{p}"] = total_variation(free[p], free_real[p])
        if varies[p]:
            report[f"unsaid_varies_{p}"] = float(np.mean(varies[p]))
    report["diversity_ratio"] = float(np.mean(spread) / max(float(np.mean(spread_real)), 1e-8))
    return report


def _at_64(images: torch.Tensor) -> torch.Tensor:
    if images.shape[-1] == 64:
        return images
    return torch.nn.functional.interpolate(images, size=(64, 64), mode="bilinear",
                                           align_corners=False)


@torch.no_grad()
def compositional_report(generator, text_encoder, *, n: int = 200, seeds: int = 8, seed: int = 0,
                         device: str | torch.device = "cpu", max_words: int = 30, vocab=None,
                         held_out_n: int = 0) -> dict[str, float]:
    """The rows above for `n` partial held-out captions x `seeds` noises (and, with
    `held_out_n`, the fully specified report on that many held-out-pair captions)."""
    oracle, _ = load_oracle()
    oracle.to(device)
    data = partial_captions(n, seed, max_words=max_words, vocab=vocab)
    was_training = generator.training
    generator.eval()
    text_encoder.eval()
    rng = np.random.default_rng([seed, 77])
    attributes, seen, reals, spread, spread_real = [], [], [], [], []
    try:
        for i in range(len(data)):
            sample = data[i]
            caps = sample.caption[: sample.length].unsqueeze(0).repeat(seeds, 1).to(device)
            text = text_encoder(caps, torch.full((seeds,), sample.length, device=device))
            z = torch.randn(seeds, generator.z_dim,
                            generator=torch.Generator().manual_seed(seed * 1000 + i)).to(device)
            images = _at_64(generator(z, text.sentence, text.words, text.mask,
                                      sample_condition=False).images[-1].float())
            real, real_objects = _real_pictures(data, i, seeds, rng)
            attributes.append(sample.attributes)
            seen.append(detect(oracle, images))
            reals.append(real_objects)
            spread.append(_pixel_spread(images.cpu()))
            spread_real.append(_pixel_spread(real))
        report = partial_rows(attributes, seen, reals, spread, spread_real)
        if held_out_n:
            pairs = ShapesDataset(split="test", length=held_out_n, image_sizes=(64,),
                                  max_words=max_words, seed=seed, vocab=vocab,
                                  combinations="held_out")
            batch = collate([pairs[i] for i in range(len(pairs))])
            text = text_encoder(batch.captions.to(device), batch.lengths.to(device))
            z = torch.randn(len(pairs), generator.z_dim,
                            generator=torch.Generator().manual_seed(seed + 4242)).to(device)
            images = _at_64(generator(z, text.sentence, text.words, text.mask,
                                      sample_condition=False).images[-1].float())
            scores = oracle_scores(images.cpu(), batch.attributes)
            report |= {f"held_out_{k}": v for k, v in scores.items()}
    finally:
        generator.train(was_training)
    return {k: round(v, 4) for k, v in report.items()}


def total_variation(a: dict, b: dict) -> float:
    """Half the L1 distance between two normalised histograms."""
    keys = set(a) | set(b)
    na, nb = sum(a.values()), sum(b.values())
    return 0.5 * sum(abs(a.get(k, 0) / na - b.get(k, 0) / nb) for k in keys)
