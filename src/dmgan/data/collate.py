"""Batches: what every dataset yields, and how samples are stacked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Sample:
    images: list[torch.Tensor]  # per stage, (3, S_i, S_i) in [-1, 1]
    caption: torch.Tensor  # (L,) int64 word ids, 0-padded to the word limit
    length: int  # words used, 1..L
    class_id: int
    key: str  # the image's name in its dataset
    attributes: dict[str, Any] | None = None  # ground truth (built-in shapes dataset)
    # a hard-negative caption for this image (L,) and its length, when the data makes them
    negative: torch.Tensor | None = None
    negative_length: int = 0


@dataclass
class Batch:
    images: list[torch.Tensor]  # per stage, (B, 3, S_i, S_i)
    captions: torch.Tensor  # (B, L)
    lengths: torch.Tensor  # (B,)
    class_ids: torch.Tensor  # (B,)
    keys: list[str]
    attributes: list[dict[str, Any]] | None = field(default=None)
    negatives: torch.Tensor | None = None  # (B, L) hard-negative captions, when every sample has one
    negative_lengths: torch.Tensor | None = None  # (B,)

    def to(self, device: torch.device | str) -> Batch:
        def move(x):
            return None if x is None else x.to(device, non_blocking=True)

        return Batch([i.to(device, non_blocking=True) for i in self.images],
                     self.captions.to(device), self.lengths.to(device),
                     self.class_ids.to(device), self.keys, self.attributes,
                     move(self.negatives), move(self.negative_lengths))

    def pin_memory(self) -> Batch:  # DataLoader(pin_memory=True) support
        def pin(x):
            return None if x is None else x.pin_memory()

        return Batch([i.pin_memory() for i in self.images], self.captions.pin_memory(),
                     self.lengths.pin_memory(), self.class_ids.pin_memory(), self.keys,
                     self.attributes, pin(self.negatives), pin(self.negative_lengths))


def collate(samples: list[Sample]) -> Batch:
    """A list of samples -> a Batch. Use as DataLoader(collate_fn=collate)."""
    if not samples:
        raise ValueError("cannot collate an empty batch")
    stages = len(samples[0].images)
    attrs = [s.attributes for s in samples]
    with_negatives = all(s.negative is not None for s in samples)
    return Batch(
        images=[torch.stack([s.images[i] for s in samples]) for i in range(stages)],
        captions=torch.stack([s.caption for s in samples]),
        lengths=torch.tensor([s.length for s in samples], dtype=torch.int64),
        class_ids=torch.tensor([s.class_id for s in samples], dtype=torch.int64),
        keys=[s.key for s in samples],
        attributes=attrs if all(a is not None for a in attrs) else None,
        negatives=torch.stack([s.negative for s in samples]) if with_negatives else None,
        negative_lengths=torch.tensor([s.negative_length for s in samples], dtype=torch.int64)
        if with_negatives else None,
    )
