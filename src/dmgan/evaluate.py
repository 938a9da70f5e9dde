"""`dmgan eval`: metrics over generated images, appended as JSON lines.

The metric math lives in dmgan.metrics (pure functions over features); this module
gathers the features: images from a folder (or generated from a checkpoint on a
dataset's test split), Inception features, DAMSM codes for R-precision.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dmgan.errors import DMGANError
from dmgan.fileio import atomic_write_text
from dmgan.imageio import read_image
from dmgan.metrics import (
    frechet_distance,
    inception_score,
    load_statistics,
    r_precision,
    save_statistics,
    statistics,
)
from dmgan.metrics.features import (
    extract,
    get_mode,
    list_images,
    load_inception,
    statistics_key,
)

METRICS = ("fid", "is", "r_precision")


@dataclass
class CaptionedImage:
    path: Path
    caption: list[int]  # word ids
    class_id: int


def _progress(total: int, desc: str) -> tuple[Callable[[int], None], Callable[[], None]]:
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a dependency, but stay usable without it
        return (lambda n: None), (lambda: None)
    bar = tqdm(total=total, desc=desc, unit="img", disable=None)
    return bar.update, bar.close


def _features(files: Sequence[Path], net, mode, batch_size: int, device: str, desc: str) -> dict:
    update, close = _progress(len(files), desc)
    try:
        return extract((read_image(p) for p in files), net, mode, batch_size=batch_size,
                       device=device, progress=update)
    finally:
        close()


def real_statistics(folder: str | os.PathLike, net, mode, weights: str, *, batch_size: int,
                    device: str, cache_dir: str | os.PathLike | None) -> tuple[np.ndarray, np.ndarray]:
    """Statistics of real images, cached under a hash of files, mode and weights."""
    files = list_images(folder)
    cache = None
    if cache_dir:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        cache = Path(cache_dir) / f"real-{mode.name}-{statistics_key(files, mode, weights)}.npz"
        if cache.is_file():
            return load_statistics(cache)
    mu, sigma = statistics(_features(files, net, mode, batch_size, device, "real images")["pool3"])
    if cache is not None:
        save_statistics(cache, mu, sigma)
    return mu, sigma


def read_captions_jsonl(path: str | os.PathLike, folder: Path, vocab) -> list[CaptionedImage]:
    """Lines {"image": relative path, "caption": text, "class": int} for R-precision."""
    out = []
    path = Path(path)
    if not path.is_file():
        raise DMGANError(f"captions file not found: {path}")
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            img, text, cls = obj["image"], obj["caption"], int(obj.get("class", n))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise DMGANError(f"{path}:{n}: expected {{\"image\", \"caption\", \"class\"}}") from None
        out.append(CaptionedImage(folder / img, vocab.encode(text).ids, cls))
    if not out:
        raise DMGANError(f"{path} lists no images")
    return out


@torch.inference_mode()
def damsm_r_precision(
    items: Sequence[CaptionedImage],
    text_encoder,
    image_encoder,
    *,
    max_words: int,
    negatives: int = 99,
    folds: int = 10,
    legacy_off_by_one: bool = False,
    seed: int = 0,
    batch_size: int = 50,
    device: str = "cpu",
) -> tuple[float, float]:
    """The released protocol: true caption vs `negatives` captions of other classes."""
    from dmgan.data.transforms import fit_caption, to_tensor

    rng = np.random.default_rng(seed)
    classes = np.array([it.class_id for it in items])
    pool = [it.caption for it in items]

    def encode(caps: list[list[int]]) -> np.ndarray:
        fitted = [fit_caption(c, max_words, rng) for c in caps]
        ids = torch.from_numpy(np.stack([f[0] for f in fitted])).to(device)
        lens = torch.tensor([f[1] for f in fitted], device=device)
        return text_encoder(ids, lens).sentence.double().cpu().numpy()

    text_encoder.to(device).eval()
    image_encoder.to(device).eval()
    codes, cands = [], []
    update, close = _progress(len(items), "R-precision")
    try:
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            imgs = torch.stack([to_tensor(read_image(it.path)) for it in chunk]).to(device)
            codes.append(image_encoder(imgs)[1].double().cpu().numpy())
            for it in chunk:
                others = np.flatnonzero(classes != it.class_id)
                if others.size == 0:
                    raise DMGANError("R-precision needs captions of other classes; all images "
                                     "share one class")
                pick = rng.choice(others, size=negatives, replace=others.size < negatives)
                cands.append(encode([it.caption] + [pool[j] for j in pick]))
            update(len(chunk))
    finally:
        close()
    return r_precision(np.concatenate(codes), np.stack(cands), folds=folds,
                       legacy_off_by_one=legacy_off_by_one)


def append_results(path: str | os.PathLike, rows: Sequence[dict]) -> None:
    """Append JSON lines; the file is rewritten atomically so a crash loses nothing."""
    path = Path(path)
    old = path.read_text() if path.is_file() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    atomic_write_text(path, old + "".join(json.dumps(r) + "\n" for r in rows))


def evaluate_folder(
    images: str | os.PathLike,
    *,
    metrics: Sequence[str],
    mode_name: str = "pytorch-fid",
    inception_weights: str | None = None,
    ref_stats: str | None = None,
    real: str | None = None,
    batch_size: int = 50,
    device: str = "cpu",
    splits: int = 10,
    cache_dir: str | None = None,
    r_precision_fn: Callable[[], tuple[float, float]] | None = None,
) -> list[dict]:
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise DMGANError(f"unknown metric(s) {sorted(unknown)}; choose from {METRICS}")
    files = list_images(images)
    rows: list[dict] = []
    settings = {"images": str(images), "mode": mode_name, "batch_size": batch_size}
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    if {"fid", "is"} & set(metrics):
        mode = get_mode(mode_name)
        weights = inception_weights or os.environ.get("DMGAN_INCEPTION_WEIGHTS")
        if "fid" in metrics and not (ref_stats or real):
            raise DMGANError("FID needs reference statistics (--ref-stats) or real images (--real)")
        ref_loaded = load_statistics(ref_stats) if "fid" in metrics and ref_stats else None
        net = load_inception(weights, mode)
        feats = _features(files, net, mode, batch_size, device, "generated images")
        if "fid" in metrics:
            if ref_loaded is not None:
                mu_r, sigma_r = ref_loaded
                ref = str(ref_stats)
            else:
                mu_r, sigma_r = real_statistics(real, net, mode, weights, batch_size=batch_size,
                                                device=device, cache_dir=cache_dir)
                ref = str(real)
            if len(files) < 2:
                raise DMGANError(f"FID needs at least 2 images (a covariance), {images} has "
                                 f"{len(files)}")
            mu, sigma = statistics(feats["pool3"])
            if mu.shape != mu_r.shape:
                raise DMGANError(f"reference statistics have {mu_r.size} features, "
                                 f"the network gives {mu.size}")
            rows.append({"metric": "fid", "value": frechet_distance(mu, sigma, mu_r, sigma_r),
                         "mode": mode_name, "num_images": len(files), "time": now,
                         "settings": settings | {"reference": ref}})
        if "is" in metrics:
            if len(files) < splits:
                raise DMGANError(f"the Inception Score in {splits} splits needs at least "
                                 f"{splits} images, {images} has {len(files)} (lower --splits)")
            mean, std = inception_score(feats["logits"], splits=splits)
            rows.append({"metric": "inception_score", "value": mean, "std": std,
                         "mode": mode_name, "num_images": len(files), "time": now,
                         "settings": settings | {"splits": splits,
                                                 "classes": int(feats["logits"].shape[1])}})
    if "r_precision" in metrics:
        if r_precision_fn is None:
            raise DMGANError("R-precision needs captions and the DAMSM encoders")
        try:
            mean, std = r_precision_fn()
        except ValueError as exc:  # e.g. fewer images than folds
            raise DMGANError(f"R-precision: {exc} (lower --folds)") from None
        rows.append({"metric": "r_precision", "value": mean, "std": std, "mode": "damsm",
                     "num_images": len(files), "time": now, "settings": settings})
    return rows


def format_table(rows: Sequence[dict]) -> str:
    lines = [f"{'metric':18s} {'value':>12s} {'std':>10s}  mode           images"]
    for r in rows:
        std = f"{r['std']:.4f}" if "std" in r else ""
        lines.append(f"{r['metric']:18s} {r['value']:12.4f} {std:>10s}  {r['mode']:14s} "
                     f"{r['num_images']}")
    return "\n".join(lines)
