"""R-precision with the released protocol (AttnGAN / DM-GAN evaluation).

Each generated image has candidates: its own caption first, then (usually 99) captions
of images of other classes. A hit is when the true caption's cosine similarity with the
image's DAMSM code is the highest. The hit rate is reported over folds, mean and std.
"""

from __future__ import annotations

import numpy as np


def cosine_scores(image_codes: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """image_codes (N, D), candidates (N, K, D) -> cosine similarities (N, K)."""
    img = np.asarray(image_codes, np.float64)
    cand = np.asarray(candidates, np.float64)
    img = img / np.maximum(np.linalg.norm(img, axis=1, keepdims=True), 1e-8)
    cand = cand / np.maximum(np.linalg.norm(cand, axis=2, keepdims=True), 1e-8)
    return np.einsum("nd,nkd->nk", img, cand)


def r_precision(
    image_codes: np.ndarray,
    candidates: np.ndarray,
    *,
    folds: int = 10,
    legacy_off_by_one: bool = False,
) -> tuple[float, float]:
    """(mean, std) of per-fold hit rates; candidate 0 of each row is the true caption.

    legacy_off_by_one=True reproduces the released code, whose slice dropped the last
    sample of every fold.
    """
    scores = cosine_scores(image_codes, candidates)
    hits = scores[:, 0] > scores[:, 1:].max(axis=1)
    n = hits.shape[0] // folds
    if n < 1 + int(legacy_off_by_one):
        raise ValueError(f"{hits.shape[0]} images are too few for {folds} folds")
    end = n - 1 if legacy_off_by_one else n
    rates = [hits[i * n : i * n + end].mean() for i in range(folds)]
    return float(np.mean(rates)), float(np.std(rates))
