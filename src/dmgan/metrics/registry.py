"""The metrics by name, and the rows they report: what `dmgan eval`, the demo's report and
training's snapshots (dmgan.metrics.evaluate, dmgan.metrics.snapshot) all compute.

Every metric in METRICS takes the generated images (`Generated`: files on disk or tensors
in memory, with their captions) and the settings, and returns dict(name=value):

- "fid": {"fid"}; needs Inception weights and a reference (statistics, or real images);
- "is": {"inception_score", "inception_score_std"}; needs Inception weights;
- "r_precision": {"r_precision", "r_precision_std"}; needs the DAMSM encoders and captions;
- "oracle": the shapes oracle per attribute, "all" and "two_object_all" (shapes data);
- "clip_score": {"clip_score", "clip_score_std"}; needs a local CLIP model folder
  (dmgan.metrics.clip) and the captions' text.

The math lives in dmgan.metrics' pure functions over features; this module gathers the
features. Results go to a JSON-lines file, one row per value, with the mode and settings.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
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


@dataclass
class CaptionedImage:
    path: Path
    caption: list[int]  # word ids
    class_id: int
    text: str = ""


@dataclass
class Generated:
    """Generated images, on disk (`files`) or in memory (`tensors`: (N, 3, H, W) in
    [-1, 1]), with what caption-aware metrics read: word-id captions and classes
    (R-precision), the shapes ground truth (the oracle)."""

    label: str  # where they are (recorded with the results)
    files: list[Path] = field(default_factory=list)
    tensors: torch.Tensor | None = None
    captions: list[list[int]] | None = None
    classes: list[int] | None = None
    attributes: list[dict] | None = None
    texts: list[str] | None = None  # the captions as text (CLIP score)
    statistics: tuple[np.ndarray, np.ndarray] | None = None  # Inception (mu, sigma), once made
    # what drew them, for a metric that draws its own (generator, text encoder, vocabulary,
    # words per caption); None for a folder
    model: tuple | None = None

    def __len__(self) -> int:
        return len(self.tensors) if self.tensors is not None else len(self.files)

    def images(self) -> Iterator:
        """PIL images (files) or uint8 (3, H, W) tensors (in memory), in order."""
        if self.tensors is not None:
            for x in self.tensors:
                yield ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        else:
            yield from (read_image(p) for p in self.files)

    def model_inputs(self, start: int, stop: int) -> torch.Tensor:
        """Images start..stop as network inputs (B, 3, H, W) in [-1, 1]."""
        from dmgan.data.transforms import to_tensor

        if self.tensors is not None:
            return self.tensors[start:stop].float()
        return torch.stack([to_tensor(read_image(p)) for p in self.files[start:stop]])

    @classmethod
    def folder(cls, folder: str | os.PathLike, *, captions: str | os.PathLike | None = None,
               vocab=None) -> Generated:
        """The images of a folder; with `captions` (a captions.jsonl) and `vocab`, the
        captions and classes R-precision needs, in that file's order."""
        if captions is None:
            return cls(str(folder), files=list_images(folder))
        items = read_captions_jsonl(captions, Path(folder), vocab)
        return cls(str(folder), files=[it.path for it in items],
                   captions=[it.caption for it in items], classes=[it.class_id for it in items],
                   texts=[it.text for it in items])


@dataclass
class Settings:
    """How the metrics are computed (recorded with every result)."""

    mode: str = "pytorch-fid"  # Inception preprocessing and weights (features.MODES)
    inception_weights: str | None = None
    ref_stats: str | None = None  # FID reference: statistics .npz ...
    real: str | Generated | None = None  # ... or real images (a folder, or in memory)
    batch_size: int = 50
    device: str | torch.device = "cpu"
    splits: int = 10  # Inception Score
    cache_dir: str | None = None  # statistics of real folders
    folds: int = 10  # R-precision
    negatives: int = 99
    legacy_off_by_one: bool = False
    seed: int = 0
    text_encoder: torch.nn.Module | None = None  # DAMSM encoders (R-precision)
    image_encoder: torch.nn.Module | None = None
    max_words: int = 30
    clip_model: str | None = None  # a local CLIP model folder (CLIP score)
    progress: bool = True

    def weights(self) -> str | None:
        return self.inception_weights or os.environ.get("DMGAN_INCEPTION_WEIGHTS")


def progress_bar(total: int, desc: str,
              enabled: bool = True) -> tuple[Callable[[int], None], Callable[[], None]]:
    if not enabled:
        return (lambda n: None), (lambda: None)
    from dmgan.progress import Progress

    bar = Progress(total, desc, unit="img")
    return bar.update, bar.close


@functools.lru_cache(maxsize=1)
def _inception_of(weights: str | None, mode_name: str, stamp: tuple):
    return load_inception(weights, get_mode(mode_name))


def _cached_inception(weights: str | None, mode_name: str):
    """The Inception network of a weights file, loaded once per process while the file is
    unchanged (training evaluates at every snapshot)."""
    try:
        st = os.stat(weights) if weights else None
        stamp = (st.st_mtime_ns, st.st_size) if st else ()
    except OSError:
        stamp = ()
    return _inception_of(weights, mode_name, stamp)


class _Inception:
    """The Inception network and the generated images' features, made once per evaluation
    (FID and IS share them)."""

    def __init__(self, gen: Generated, s: Settings):
        self.gen, self.s = gen, s
        self._net = self._feats = None

    @property
    def mode(self):
        return get_mode(self.s.mode)

    def net(self):
        if self._net is None:
            self._net = _cached_inception(self.s.weights(), self.mode.name)
        return self._net

    def features(self, images: Generated | None = None, desc: str = "generated images") -> dict:
        if images is None and self._feats is not None:
            return self._feats
        target = images or self.gen
        update, close = progress_bar(len(target), desc, self.s.progress)
        try:
            feats = extract(target.images(), self.net(), self.mode, batch_size=self.s.batch_size,
                            device=self.s.device, progress=update)
        finally:
            close()
        if images is None:
            self._feats = feats
        return feats


def real_statistics(folder: str | os.PathLike, net, mode, weights: str, *, batch_size: int,
                    device: str, cache_dir: str | os.PathLike | None,
                    progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Statistics of real images, cached under a hash of files, mode and weights."""
    files = list_images(folder)
    cache = None
    if cache_dir:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        cache = Path(cache_dir) / f"real-{mode.name}-{statistics_key(files, mode, weights)}.npz"
        if cache.is_file():
            return load_statistics(cache)
    update, close = progress_bar(len(files), "real images", progress)
    try:
        feats = extract((read_image(p) for p in files), net, mode, batch_size=batch_size,
                        device=device, progress=update)
    finally:
        close()
    mu, sigma = statistics(feats["pool3"])
    if cache is not None:
        save_statistics(cache, mu, sigma)
    return mu, sigma


def _fid(gen: Generated, s: Settings, inc: _Inception) -> dict[str, float]:
    if not (s.ref_stats or s.real is not None):
        raise DMGANError("FID needs reference statistics (--ref-stats) or real images (--real)")
    ref = load_statistics(s.ref_stats) if s.ref_stats else None  # a bad file fails first
    if len(gen) < 2:
        raise DMGANError(f"FID needs at least 2 images (a covariance), {gen.label} has {len(gen)}")
    mu, sigma = statistics(inc.features()["pool3"])
    if ref is None:
        if isinstance(s.real, Generated):  # in memory: its statistics kept on it for next time
            if s.real.statistics is None:
                s.real.statistics = statistics(inc.features(s.real, "real images")["pool3"])
            ref = s.real.statistics
        else:
            ref = real_statistics(s.real, inc.net(), inc.mode, s.weights(),
                                  batch_size=s.batch_size, device=s.device,
                                  cache_dir=s.cache_dir, progress=s.progress)
    mu_r, sigma_r = ref
    if mu.shape != mu_r.shape:
        raise DMGANError(f"reference statistics have {mu_r.size} features, the network gives "
                         f"{mu.size}")
    return {"fid": float(frechet_distance(mu, sigma, mu_r, sigma_r))}


def _is(gen: Generated, s: Settings, inc: _Inception) -> dict[str, float]:
    logits = inc.features()["logits"]  # an unreadable image is named before the count
    if len(gen) < s.splits:
        raise DMGANError(f"the Inception Score in {s.splits} splits needs at least {s.splits} "
                         f"images, {gen.label} has {len(gen)} (lower --splits)")
    mean, std = inception_score(logits, splits=s.splits)
    return {"inception_score": float(mean), "inception_score_std": float(std)}


@torch.inference_mode()
def _r_precision(gen: Generated, s: Settings, inc: _Inception) -> dict[str, float]:
    """The released protocol: the true caption vs `negatives` captions of other classes,
    scored by the DAMSM sentence and image codes."""
    from dmgan.data.transforms import fit_caption

    if s.text_encoder is None or s.image_encoder is None or gen.captions is None:
        raise DMGANError("R-precision needs the DAMSM encoders and the images' captions")
    rng = np.random.default_rng(s.seed)
    classes = np.array(gen.classes)
    dev = s.device
    te, ie = s.text_encoder.to(dev).eval(), s.image_encoder.to(dev).eval()

    def encode(caps: list[list[int]]) -> np.ndarray:
        fitted = [fit_caption(c, s.max_words, rng) for c in caps]
        ids = torch.from_numpy(np.stack([f[0] for f in fitted])).to(dev)
        lens = torch.tensor([f[1] for f in fitted], device=dev)
        return te(ids, lens).sentence.double().cpu().numpy()

    codes, cands = [], []
    update, close = progress_bar(len(gen), "R-precision", s.progress)
    try:
        for start in range(0, len(gen), s.batch_size):
            stop = min(len(gen), start + s.batch_size)
            codes.append(ie(gen.model_inputs(start, stop).to(dev))[1].double().cpu().numpy())
            for i in range(start, stop):
                others = np.flatnonzero(classes != classes[i])
                if others.size == 0:
                    raise DMGANError("R-precision needs captions of other classes; all images "
                                     "share one class")
                pick = rng.choice(others, size=s.negatives, replace=others.size < s.negatives)
                cands.append(encode([gen.captions[i]] + [gen.captions[j] for j in pick]))
            update(stop - start)
    finally:
        close()
    try:
        mean, std = r_precision(np.concatenate(codes), np.stack(cands), folds=s.folds,
                                legacy_off_by_one=s.legacy_off_by_one)
    except ValueError as exc:  # e.g. fewer images than folds
        raise DMGANError(f"R-precision: {exc} (lower --folds)") from None
    return {"r_precision": float(mean), "r_precision_std": float(std)}


def _oracle(gen: Generated, s: Settings, inc: _Inception) -> dict[str, float]:
    from dmgan.metrics.shapes import oracle_scores

    if gen.attributes is None:
        raise DMGANError("the shapes oracle judges images generated for the shapes data "
                         "(dmgan eval --checkpoint MODEL --data shapes)")
    images = gen.tensors if gen.tensors is not None else gen.model_inputs(0, len(gen))
    return oracle_scores(images, gen.attributes, device=s.device)


def _compositional(gen: Generated, s: Settings, inc: _Inception) -> dict[str, float]:
    from dmgan.metrics.compositional import compositional_report

    if gen.model is None or gen.attributes is None:
        raise DMGANError("the compositional report draws its own pictures (8 seeds per "
                         "caption): dmgan eval --checkpoint MODEL --data shapes")
    generator, text_encoder, vocab, max_words = gen.model
    return compositional_report(generator, text_encoder, n=len(gen), seeds=8, seed=s.seed,
                                device=s.device, max_words=max_words, vocab=vocab,
                                held_out_n=len(gen))


def _clip_score(gen: Generated, s: Settings, inc: _Inception) -> dict[str, float]:
    from dmgan.metrics.clip import Clip

    if not s.clip_model:
        raise DMGANError("the CLIP score needs a local CLIP model folder (--clip-model DIR: "
                         "config.json, model.safetensors, vocab.json, merges.txt)")
    if gen.texts is None:
        raise DMGANError("the CLIP score needs the images' captions (--captions on a folder)")
    clip = Clip(s.clip_model, device=s.device)
    scores = []
    update, close = progress_bar(len(gen), "CLIP score", s.progress)
    try:
        for start in range(0, len(gen), s.batch_size):
            stop = min(len(gen), start + s.batch_size)
            scores.append(clip.score(gen.model_inputs(start, stop), gen.texts[start:stop]))
            update(stop - start)
    finally:
        close()
    values = np.concatenate(scores)
    return {"clip_score": float(values.mean()), "clip_score_std": float(values.std())}


@dataclass(frozen=True)
class Metric:
    compute: Callable[[Generated, Settings, _Inception], dict[str, float]]
    mode: Callable[[Settings], str]  # what its numbers are comparable with


METRICS: dict[str, Metric] = {
    "fid": Metric(_fid, lambda s: s.mode),
    "is": Metric(_is, lambda s: s.mode),
    "r_precision": Metric(_r_precision, lambda s: "damsm"),
    "oracle": Metric(_oracle, lambda s: "shapes-oracle"),
    "compositional": Metric(_compositional, lambda s: "shapes-oracle"),
    "clip_score": Metric(_clip_score, lambda s: f"clip:{Path(s.clip_model or '?').name}"),
}


def evaluate(gen: Generated, metrics: Sequence[str], settings: Settings) -> dict[str, dict[str, float]]:
    """{metric: {name: value}} for each metric asked for (METRICS)."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise DMGANError(f"unknown metric(s) {unknown}; choose from {sorted(METRICS)}")
    if not len(gen):
        raise DMGANError(f"no images in {gen.label}")
    inc = _Inception(gen, settings)
    return {m: METRICS[m].compute(gen, settings, inc) for m in metrics}


def result_rows(results: dict[str, dict[str, float]], gen: Generated, settings: Settings,
                **extra) -> list[dict]:
    """One JSON-able row per value: name, value, the metric, its mode and the settings."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    base = {"images": gen.label, "batch_size": settings.batch_size, **extra}
    rows = []
    for metric, values in results.items():
        detail = dict(base)
        if metric == "fid":
            detail["reference"] = str(settings.ref_stats or getattr(settings.real, "label", settings.real))
        if metric == "is":
            detail["splits"] = settings.splits
        if metric == "r_precision":
            detail |= {"folds": settings.folds, "negatives": settings.negatives}
        if metric == "clip_score":
            detail["clip_model"] = str(settings.clip_model)
        for name, value in values.items():
            if name.endswith("_std"):
                continue
            row = {"metric": name, "value": value, "mode": METRICS[metric].mode(settings),
                   "num_images": len(gen), "time": now, "settings": detail}
            chance = _chance(metric, name)
            if chance is not None:
                row["chance"] = round(chance, 4)
            if f"{name}_std" in values:
                row["std"] = values[f"{name}_std"]
            rows.append(row)
    return rows


def read_captions_jsonl(path: str | os.PathLike, folder: Path, vocab) -> list[CaptionedImage]:
    """A folder's captions file: lines {"image": path relative to the folder, "caption":
    text (or "captions": a list, the first is used), "class": int}. One schema with the
    custom dataset layout's captions.jsonl (dmgan.data.datasets): what `dmgan eval
    --save-images` writes is also a dataset folder."""
    out = []
    path = Path(path)
    if not path.is_file():
        raise DMGANError(f"captions file not found: {path}")
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            text = obj["caption"] if "caption" in obj else obj["captions"][0]
            img, cls = obj["image"], int(obj.get("class", n))
            if not isinstance(text, str) or not isinstance(img, str):
                raise TypeError
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, IndexError):
            raise DMGANError(f"{path}:{n}: expected {{\"image\", \"caption\", \"class\"}}") from None
        out.append(CaptionedImage(folder / img, vocab.encode(text).ids, cls, text))
    if not out:
        raise DMGANError(f"{path} lists no images")
    return out


def append_results(path: str | os.PathLike, rows: Sequence[dict]) -> None:
    """Append JSON lines; the file is rewritten atomically so a crash loses nothing."""
    path = Path(path)
    old = path.read_text() if path.is_file() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    atomic_write_text(path, old + "".join(json.dumps(r) + "\n" for r in rows))


def _chance(metric: str, name: str) -> float | None:
    """The chance level of a shapes row, where one exists."""
    if metric == "oracle":
        from dmgan.metrics.shapes import CHANCE

        return CHANCE.get(name)
    if metric == "compositional":
        from dmgan.metrics.compositional import CHANCE_ROWS
        from dmgan.metrics.shapes import CHANCE

        return CHANCE_ROWS.get(name, CHANCE.get(name.removeprefix("held_out_")))
    return None


def format_table(rows: Sequence[dict]) -> str:
    lines = [f"{'metric':24s} {'value':>10s} {'std':>8s} {'chance':>8s}  mode           images"]
    for r in rows:
        std = f"{r['std']:.4f}" if "std" in r else ""
        chance = f"{r['chance']:.4f}" if "chance" in r else ""
        lines.append(f"{r['metric']:24s} {r['value']:10.4f} {std:>8s} {chance:>8s}  "
                     f"{r['mode']:14s} {r['num_images']}")
    return "\n".join(lines)
