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


def test_fid_math_runs_in_float64_whatever_the_input_type():
    """float32 features or statistics (a file written in float32) give the float64 answer:
    a float32 mean or eigendecomposition of features near 1,000 would not."""
    rng = np.random.default_rng(6)
    feats = (1000 + rng.standard_normal((200, 16))).astype(np.float32)
    mu, sigma = statistics(feats)
    mu64, sigma64 = statistics(feats.astype(np.float64))
    assert mu.dtype == sigma.dtype == np.float64
    assert np.array_equal(mu, mu64) and np.array_equal(sigma, sigma64)
    other_mu, other_sigma = statistics(feats[::-1] * np.float32(1.01))
    want = frechet_distance(mu, sigma, other_mu, other_sigma)
    args = [mu, sigma, other_mu, other_sigma]
    for k in range(4):  # each input alone in float32
        mixed = [a.astype(np.float32) if i == k else a for i, a in enumerate(args)]
        assert frechet_distance(*mixed) == pytest.approx(
            frechet_distance(*[m.astype(np.float64) for m in mixed]), rel=1e-12)
    assert want > 0


def test_statistics_need_two_samples_and_take_one_feature():
    rng = np.random.default_rng(7)
    mu, sigma = statistics(rng.standard_normal((2, 3)))  # two samples are enough
    assert mu.shape == (3,) and sigma.shape == (3, 3)
    mu, sigma = statistics(rng.standard_normal((5, 1)))  # one feature is a feature
    assert mu.shape == (1,) and np.ndim(sigma) == 0
    with pytest.raises(ValueError, match=r"need \(N >= 2, F\) features .* shape \(1, 4\)"):
        statistics(rng.standard_normal((1, 4)))
    with pytest.raises(ValueError, match="got shape"):
        statistics(rng.standard_normal(4))


def test_statistics_that_do_not_fit_are_refused():
    mu3, mu4 = np.zeros(3), np.zeros(4)
    s3, s4 = np.eye(3), np.eye(4)
    with pytest.raises(ValueError, match=r"do not fit: mu \(3,\) vs \(4,\)"):
        frechet_distance(mu3, s3, mu4, s3)  # the means differ, the covariances fit mu1
    with pytest.raises(ValueError, match=r"sigma \(3, 3\) vs \(4, 4\)"):
        frechet_distance(mu3, s3, mu3, s4)  # the covariances differ
    with pytest.raises(ValueError, match="do not fit"):
        frechet_distance(mu3, s4, mu3, s4)  # covariances that fit each other, not the means


def test_statistics_files_are_read_with_care(tmp_path):
    from dmgan.errors import DMGANError

    with pytest.raises(DMGANError, match="statistics file not found: .*none.npz"):
        load_statistics(tmp_path / "none.npz")
    np.savez(tmp_path / "shape.npz", mu=np.zeros(3), sigma=np.eye(4))
    with pytest.raises(DMGANError, match=r"mu \(3,\) and sigma \(4, 4\) do not fit"):
        load_statistics(tmp_path / "shape.npz")
    sigma = np.eye(3)
    sigma[1, 2] = np.nan
    np.savez(tmp_path / "nan.npz", mu=np.zeros(3), sigma=sigma)
    with pytest.raises(DMGANError, match="NaN or infinite"):
        load_statistics(tmp_path / "nan.npz")
    # a file whose arrays are pickled objects is never unpickled
    np.savez(tmp_path / "pickled.npz", mu=np.array([0.0, "x", None], dtype=object),
             sigma=np.eye(3))
    with pytest.raises(DMGANError, match="is not an .npz with arrays 'mu' and 'sigma'"):
        load_statistics(tmp_path / "pickled.npz")
    np.savez(tmp_path / "f32.npz", mu=np.ones(3, np.float32), sigma=np.eye(3, dtype=np.float32))
    mu, sigma = load_statistics(tmp_path / "f32.npz")
    assert mu.dtype == sigma.dtype == np.float64


def _inception_score_by_hand(probs: np.ndarray, splits: int) -> tuple[float, float]:
    """exp(mean over images of KL(p(y|x) || p(y))), per split, with plain loops."""
    scores = []
    for part in np.array_split(probs, splits):
        marginal = part.mean(axis=0)
        kls = [sum(p * np.log(p / m) for p, m in zip(row, marginal, strict=True) if p > 0)
               for row in part]
        scores.append(np.exp(np.mean(kls)))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_equals_the_formula_by_hand():
    rng = np.random.default_rng(8)
    logits = rng.standard_normal((60, 7)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    want = _inception_score_by_hand(probs, 6)
    assert inception_score(logits, splits=6) == pytest.approx(want, rel=1e-12)
    assert inception_score_from_probs(probs, splits=6) == pytest.approx(want, rel=1e-12)
    # the released protocol's 10 splits are the default
    assert inception_score(logits) == pytest.approx(_inception_score_by_hand(probs, 10), rel=1e-12)
    assert inception_score_from_probs(probs) == pytest.approx(inception_score(logits), rel=1e-12)
    # float32 logits give the float64 answer
    assert inception_score(logits.astype(np.float32), splits=6) == pytest.approx(
        inception_score(logits.astype(np.float32).astype(np.float64), splits=6), rel=1e-15)


def test_inception_score_takes_any_logit_scale_without_warnings():
    """Logits of 1,000 (no overflow), rows whose scales differ by thousands (no underflow
    to 0/0), classes no image predicts (0 log 0 = 0): the answer, and no numpy warning."""
    import warnings

    rng = np.random.default_rng(9)
    base = rng.standard_normal((40, 1008))
    base[:, 5:] = -np.inf  # only 5 classes are ever predicted
    probs = np.exp(base - base.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    want = _inception_score_by_hand(probs, 4)
    shifted = np.where(np.isfinite(base), base, -1e4) + rng.uniform(-3000, 3000, (40, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert inception_score(shifted + 1000, splits=4) == pytest.approx(want, rel=1e-9)
        one_hot = np.eye(1008)[np.arange(48) % 3]
        assert inception_score_from_probs(one_hot, splits=4) == pytest.approx((3.0, 0.0))


def test_inception_score_splits():
    probs = np.eye(4)[np.arange(10) % 4]
    assert inception_score_from_probs(probs, splits=10)[0] == pytest.approx(1.0)  # one each
    with pytest.raises(ValueError, match="9 images cannot be split 10 ways"):
        inception_score_from_probs(probs[:9], splits=10)


def test_cosine_scores_are_cosines_whatever_the_norms_and_types():
    from dmgan.metrics.r_precision import cosine_scores

    rng = np.random.default_rng(10)
    img = rng.standard_normal((6, 5)) * np.array([[0.01], [0.1], [1], [3], [30], [0.5]])
    cand = rng.standard_normal((6, 4, 5)) * 0.05
    want = np.array([[a @ c / (np.linalg.norm(a) * np.linalg.norm(c)) for c in cs]
                     for a, cs in zip(img, cand, strict=True)])
    np.testing.assert_allclose(cosine_scores(img, cand), want, rtol=1e-12)
    f32 = cosine_scores(img.astype(np.float32), cand.astype(np.float32))
    assert np.array_equal(f32, cosine_scores(img.astype(np.float32).astype(np.float64),
                                             cand.astype(np.float32).astype(np.float64)))


def test_r_precision_counts_a_hit_only_when_the_true_caption_wins():
    rng = np.random.default_rng(11)
    n = 20
    codes = rng.standard_normal((n, 3))
    cands = -np.repeat(codes[:, None], 4, axis=1)  # every negative points the other way
    cands[:, 0] = codes
    assert r_precision(codes, cands) == (1.0, 0.0)  # 10 folds by default (2 images each)
    tie = cands.copy()
    tie[:10, 3] = codes[:10]  # a negative as near as the true caption: not a hit
    assert r_precision(codes, tie, folds=2)[0] == pytest.approx(0.5)
    first = cands.copy()
    first[:5, 1] = codes[:5] * 3 + 0.1 * rng.standard_normal((5, 3))  # only the first wins
    first[:5, 0] = codes[:5] + 2 * rng.standard_normal((5, 3))
    beaten = sum(
        np.dot(first[i, 1], codes[i]) / np.linalg.norm(first[i, 1])
        > np.dot(first[i, 0], codes[i]) / np.linalg.norm(first[i, 0]) for i in range(5))
    assert beaten >= 3
    assert r_precision(codes, first, folds=1)[0] <= 1 - beaten / n


def test_r_precision_folds_and_the_released_slice():
    rng = np.random.default_rng(12)
    codes = rng.standard_normal((10, 3))
    cands = np.stack([codes, -codes], axis=1)
    assert r_precision(codes, cands, folds=10) == (1.0, 0.0)  # one image a fold
    with pytest.raises(ValueError, match="10 images are too few for 11 folds"):
        r_precision(codes, cands, folds=11)
    with pytest.raises(ValueError, match="10 images are too few for 10 folds"):
        r_precision(codes, cands, folds=10, legacy_off_by_one=True)  # nothing left a fold
    # folds of 5: the released slice drops only the fifth; the fourth's miss counts
    miss = cands.copy()
    miss[[3, 8], 0] = -codes[[3, 8]]
    assert r_precision(codes, miss, folds=2)[0] == pytest.approx(0.8)
    assert r_precision(codes, miss, folds=2, legacy_off_by_one=True)[0] == pytest.approx(0.75)


def test_metric_defaults_are_the_released_protocols():
    """10 folds for R-precision (10 images: one a fold), float64 for float32 predictions."""
    rng = np.random.default_rng(13)
    codes = rng.standard_normal((10, 3))
    assert r_precision(codes, np.stack([codes, -codes], axis=1)) == (1.0, 0.0)
    probs = rng.dirichlet(np.ones(6) * 0.3, size=40).astype(np.float32)
    assert inception_score_from_probs(probs, splits=4) == pytest.approx(
        inception_score_from_probs(probs.astype(np.float64), splits=4), rel=1e-15)
