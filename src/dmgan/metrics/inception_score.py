"""Inception Score: exp(E_x KL(p(y|x) || p(y))), over splits."""

from __future__ import annotations

import numpy as np


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """(N, C) class logits -> (mean, std) of the score over `splits` equal parts."""
    p = _softmax(np.asarray(logits, dtype=np.float64))
    return inception_score_from_probs(p, splits)


def inception_score_from_probs(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    p = np.asarray(probs, dtype=np.float64)
    n = p.shape[0]
    if n < splits:
        raise ValueError(f"{n} images cannot be split {splits} ways")
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(axis=0, keepdims=True)
        # 0 * log 0 = 0
        kl = np.where(part > 0, part * (np.log(np.where(part > 0, part, 1.0)) - np.log(
            np.where(py > 0, py, 1.0))), 0.0)
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))
