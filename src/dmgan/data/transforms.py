"""Image and caption preparation shared by every dataset (the released recipe).

Images: optional bounding-box crop; resize the shorter side to 76/64 of the final size;
crop the final size (random when augmenting, centred otherwise); random horizontal
flip when augmenting; each lower stage resized from that image; all in [-1, 1].
Captions: padded with 0 to the word limit; longer ones keep a random subset of their
words in order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image


def crop_box(bbox: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """CUB box (x, y, w, h) -> crop (x1, y1, x2, y2): a square of side 1.5 * max(w, h)
    around the box centre, clipped to the image, with the released integer arithmetic
    (box values truncated to integers first)."""
    x, y, w, h = (int(v) for v in bbox)
    r = int(max(w, h) * 0.75)
    cx, cy = int((2 * x + w) / 2), int((2 * y + h) / 2)
    return max(0, cx - r), max(0, cy - r), min(width, cx + r), min(height, cy + r)


def resize_shorter(img: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is `size`, keeping the aspect ratio (bilinear)."""
    w, h = img.size
    if w <= h:
        new = (size, max(1, int(size * h / w)))
    else:
        new = (max(1, int(size * w / h)), size)
    return img if new == (w, h) else img.resize(new, Image.BILINEAR)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> (3, H, W) float in [-1, 1]."""
    arr = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def stage_images(
    img: Image.Image,
    sizes: Sequence[int],
    rng: np.random.Generator,
    *,
    augment: bool,
) -> list[torch.Tensor]:
    """One RGB image -> [(3, s, s) for s in sizes], the last size being the largest."""
    final = sizes[-1]
    img = resize_shorter(img, int(final * 76 / 64))
    w, h = img.size
    if augment:
        x1, y1 = int(rng.integers(0, w - final + 1)), int(rng.integers(0, h - final + 1))
    else:
        x1, y1 = (w - final) // 2, (h - final) // 2
    img = img.crop((x1, y1, x1 + final, y1 + final))
    if augment and rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return [to_tensor(img if s == final else img.resize((s, s), Image.BILINEAR)) for s in sizes]


def fit_caption(ids: Sequence[int], max_words: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Word ids -> (max_words,) int64 padded with 0, and the length used."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size == 0:
        raise ValueError("empty caption")
    out = np.zeros(max_words, dtype=np.int64)
    if ids.size <= max_words:
        out[: ids.size] = ids
        return out, int(ids.size)
    keep = np.sort(rng.permutation(ids.size)[:max_words])
    out[:] = ids[keep]
    return out, max_words
