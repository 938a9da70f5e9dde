"""Fréchet Inception Distance: pure functions over pool3 features and their statistics.

features (N, 2048) -> statistics (mu, sigma) -> distance. Statistics files use the
common `.npz` layout (arrays `mu` and `sigma`), so pytorch-fid files and the released
`bird_val.npz` / `coco_val.npz` work as they are.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dmgan.errors import DMGANError
from dmgan.fileio import atomic_write


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, F) -> mean (F,), covariance (F, F), in float64 (unbiased, as numpy.cov)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need (N >= 2, F) features for statistics, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr(sqrt(sigma1 sigma2)) for covariance matrices, by two symmetric eigendecompositions.

    sigma1 sigma2 is similar to A sigma2 A with A = sqrt(sigma1), which is symmetric PSD, so
    the trace is the sum of the square roots of its eigenvalues. Faster than a general
    (Schur) matrix square root and free of its complex round-off.
    """
    a = _sqrt_psd(sigma1)
    m = a @ sigma2 @ a
    eig = np.linalg.eigvalsh((m + m.T) / 2.0)
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"statistics do not fit: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {s1.shape} vs {s2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))


def save_statistics(path: str | os.PathLike, mu: np.ndarray, sigma: np.ndarray) -> None:
    """Write (mu, sigma) as .npz atomically."""
    atomic_write(path, lambda f: np.savez(f, mu=mu, sigma=sigma))


def load_statistics(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise DMGANError(f"statistics file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            mu, sigma = data["mu"], data["sigma"]
    except (KeyError, ValueError, OSError) as exc:
        raise DMGANError(f"{path} is not an .npz with arrays 'mu' and 'sigma' ({exc})") from None
    if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
        raise DMGANError(f"{path}: mu {mu.shape} and sigma {sigma.shape} do not fit")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise DMGANError(f"{path}: mu or sigma holds NaN or infinite values")
    return mu.astype(np.float64), sigma.astype(np.float64)
