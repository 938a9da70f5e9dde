"""Metrics as pure functions over features (FID, IS, R-precision) and their extraction."""

from dmgan.metrics.fid import (
    frechet_distance,
    load_statistics,
    save_statistics,
    statistics,
    trace_sqrt_product,
)
from dmgan.metrics.inception_score import inception_score, inception_score_from_probs
from dmgan.metrics.r_precision import cosine_scores, r_precision

__all__ = [
    "cosine_scores",
    "frechet_distance",
    "inception_score",
    "inception_score_from_probs",
    "load_statistics",
    "r_precision",
    "save_statistics",
    "statistics",
    "trace_sqrt_product",
]
