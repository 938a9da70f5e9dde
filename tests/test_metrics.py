"""Metric math with known answers, and agreement with scipy's sqrtm route."""

from __future__ import annotations

import numpy as np
import pytest

from dmgan.metrics import (
    frechet_distance,
    inception_score,
    inception_score_from_probs,
    load_statistics,
    r_precision,
    save_statistics,
    statistics,
)
from dmgan.metrics.features import MODES, statistics_key


def _random_cov(rng, d, n=None):
    x = rng.standard_normal((n or 3 * d, d)) @ rng.standard_normal((d, d)) * 0.3
    return np.cov(x, rowvar=False)


def test_fid_of_a_set_with_itself_is_zero():
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((500, 64))
    mu, sigma = statistics(feats)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8


def test_fid_of_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(1)
    d = 32
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    # commuting covariances: same eigenvectors, so sqrt(s1 s2) = Q sqrt(l1 l2) Q^T
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    l1, l2 = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    s1, s2 = (q * l1) @ q.T, (q * l2) @ q.T
    want = np.sum((mu1 - mu2) ** 2) + np.sum(l1 + l2 - 2 * np.sqrt(l1 * l2))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("d,n", [(128, None), (128, 60)])  # full rank, and rank-deficient
def test_fid_agrees_with_scipy_sqrtm(d, n):
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d) * 0.5
    s1, s2 = _random_cov(rng, d, n), _random_cov(rng, d, n)
    covmean = linalg.sqrtm(s1 @ s2).real
    want = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-6)


def test_statistics_files_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    mu, sigma = statistics(rng.standard_normal((50, 8)))
    save_statistics(tmp_path / "s.npz", mu, sigma)
    mu2, sigma2 = load_statistics(tmp_path / "s.npz")
    assert np.array_equal(mu, mu2) and np.array_equal(sigma, sigma2)
    np.savez(tmp_path / "bad.npz", m=mu)
    with pytest.raises(Exception, match="'mu' and 'sigma'"):
        load_statistics(tmp_path / "bad.npz")


@pytest.mark.parametrize("k", [1, 5, 10, 100])
def test_inception_score_of_even_one_hot_predictions_is_k(k):
    probs = np.eye(k)[np.arange(20 * k) % k]
    mean, std = inception_score_from_probs(probs, splits=10)
    assert mean == pytest.approx(k, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    logits = np.log(np.clip(probs, 1e-30, None))
    assert inception_score(logits, splits=10)[0] == pytest.approx(k, rel=1e-6)


def test_inception_score_of_uniform_predictions_is_one():
    assert inception_score(np.zeros((100, 1008)))[0] == pytest.approx(1.0)


def test_r_precision_matched_and_random():
    rng = np.random.default_rng(4)
    n, k, d = 3000, 100, 32
    codes = rng.standard_normal((n, d))
    cands = rng.standard_normal((n, k, d))
    matched = cands.copy()
    matched[:, 0] = codes * 2.0  # same direction: cosine 1
    assert r_precision(codes, matched) == (1.0, 0.0)
    mean, std = r_precision(codes, cands)
    assert 0.004 < mean < 0.02  # chance is 1/100


def test_r_precision_legacy_off_by_one():
    rng = np.random.default_rng(5)
    n, folds = 100, 10
    codes = rng.standard_normal((n, 4))
    cands = rng.standard_normal((n, 5, 4))
    cands[:, 0] = codes
    last = np.arange(folds) * (n // folds) + n // folds - 1
    cands[last, 0] = -codes[last]  # the last sample of each fold misses
    assert r_precision(codes, cands, folds=folds)[0] == pytest.approx(0.9)
    assert r_precision(codes, cands, folds=folds, legacy_off_by_one=True)[0] == 1.0


def test_statistics_key_tracks_files_mode_and_weights(tmp_path):
    (tmp_path / "a.png").write_bytes(b"1")
    w = tmp_path / "w.pth"
    w.write_bytes(b"weights")
    files = [tmp_path / "a.png"]
    k1 = statistics_key(files, MODES["pytorch-fid"], w)
    assert k1 == statistics_key(files, MODES["pytorch-fid"], w)
    assert k1 != statistics_key(files, MODES["dmgan-legacy"], w)
    w.write_bytes(b"other weights")
    assert k1 != statistics_key(files, MODES["pytorch-fid"], w)
