"""Evaluation in one place: the metrics by name, and one function that evaluates a
checkpoint on a dataset (`dmgan eval`, the demo's report; training's snapshots use the
same metrics on a live generator, dmgan.metrics.snapshot).

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


def _progress(total: int, desc: str,
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
        update, close = _progress(len(target), desc, self.s.progress)
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
    update, close = _progress(len(files), "real images", progress)
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
    update, close = _progress(len(gen), "R-precision", s.progress)
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


def _clip_score(gen: Generated, s: Settings, inc: _Inception) -> dict[str, float]:
    from dmgan.metrics.clip import Clip

    if not s.clip_model:
        raise DMGANError("the CLIP score needs a local CLIP model folder (--clip-model DIR: "
                         "config.json, model.safetensors, vocab.json, merges.txt)")
    if gen.texts is None:
        raise DMGANError("the CLIP score needs the images' captions (--captions on a folder)")
    clip = Clip(s.clip_model, device=s.device)
    scores = []
    update, close = _progress(len(gen), "CLIP score", s.progress)
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


def format_table(rows: Sequence[dict]) -> str:
    lines = [f"{'metric':18s} {'value':>12s} {'std':>10s}  mode           images"]
    for r in rows:
        std = f"{r['std']:.4f}" if "std" in r else ""
        lines.append(f"{r['metric']:18s} {r['value']:12.4f} {std:>10s}  {r['mode']:14s} "
                     f"{r['num_images']}")
    return "\n".join(lines)


# --- a checkpoint on a dataset ----------------------------------------------------------

GENERATED_CAPTIONS = "captions.jsonl"  # written beside images generated for evaluation


def _first_captions(test, n: int, max_words: int) -> tuple[list[list[int]], list[int]]:
    """Word ids (at most max_words) and classes of the first n test samples; a folder
    dataset's records are read without decoding their images."""
    if hasattr(test, "records"):
        recs = test.records[:n]
        return [r.captions[0][:max_words] for r in recs], [r.class_id for r in recs]
    samples = [test[i] for i in range(n)]
    return [x.caption[: x.length].tolist()[:max_words] for x in samples], [x.class_id for x in samples]


@torch.no_grad()
def generate_for_data(generator, text_encoder, cfg, data, *, num_images: int | None = None,
                      seed: int = 0, batch_size: int = 50, vocab: list[str] | None = None,
                      save_to: Path | None = None, device: str | torch.device = "cpu",
                      progress: bool = True) -> Generated:
    """A generator's final images for the test captions of `data`.

    data: "shapes" (the held-out shapes captions of `seed`, 500 unless `num_images`, with
    their ground truth for the oracle), a dataset folder, or an opened test split (the
    first caption of each test image). Noise: seeded per chunk of `batch_size` (shapes:
    per 100, as the oracle reports always drew it). With `save_to`, PNGs and a
    captions.jsonl (image, caption, class) go there, the layout `dmgan eval --images DIR
    --captions` reads.
    """

    generator.to(device)
    text_encoder.to(device).eval()
    if isinstance(data, str) and data == "shapes":
        from dmgan.metrics.shapes import generate_for_captions, held_out_captions

        samples = held_out_captions(num_images or 500, seed, cfg.text.words_eval)
        images, attributes = generate_for_captions(generator, text_encoder, samples, batch=100,
                                                   seed=seed, device=device)
        captions = [samples[i].caption[: samples[i].length].tolist() for i in range(len(samples))]
        classes = [samples[i].class_id for i in range(len(samples))]
        gen = Generated("shapes test captions", tensors=images, captions=captions,
                        classes=classes, attributes=attributes,
                        texts=[a["caption"] for a in attributes])
    else:
        test = data
        if isinstance(data, str | Path):
            from dmgan.data.open import check_vocab, open_data

            test = open_data(cfg, str(data), "test", max_words=cfg.text.words_eval,
                             image_sizes=cfg.generator.image_sizes[-1:])
            check_vocab(cfg, test.vocab, source=f"the vocabulary of {data}",
                        hint="not the data the model was trained on")
        n = min(num_images or len(test), len(test))
        captions, classes = _first_captions(test, n, cfg.text.words_eval)
        was_training = generator.training
        generator.eval()
        chunks = []  # in memory; with save_to, each chunk goes to disk as it is made
        gen = Generated(f"{getattr(test, 'root', data)} test captions", captions=captions,
                        classes=classes, texts=[test.vocab.decode(c) for c in captions])
        if save_to is not None:
            save_to.mkdir(parents=True, exist_ok=True)
        update, close = _progress(n, "generating", progress)
        try:
            for start in range(0, n, batch_size):
                caps = captions[start:start + batch_size]
                ids = torch.zeros(len(caps), max(map(len, caps)), dtype=torch.long)
                for k, c in enumerate(caps):
                    ids[k, : len(c)] = torch.tensor(c)
                lens = torch.tensor([len(c) for c in caps])
                text = text_encoder(ids.to(device), lens.to(device))
                z = torch.randn(len(caps), cfg.generator.z_dim,
                                generator=torch.Generator().manual_seed(seed + start))
                images = generator(z.to(device), text.sentence, text.words, text.mask,
                                   sample_condition=False).images[-1].float().cpu()
                if save_to is None:
                    chunks.append(images)
                else:
                    _save_images(gen, images, start, save_to)
                update(len(caps))
        finally:
            close()
            generator.train(was_training)
        gen.tensors = torch.cat(chunks) if chunks else None
    if save_to is not None:
        if gen.tensors is not None:  # made in memory (shapes): written now
            _save_images(gen, gen.tensors, 0, save_to)
        _write_captions(gen, save_to, vocab)
    return gen


def _save_images(gen: Generated, images: torch.Tensor, start: int, folder: Path) -> None:
    from dmgan.imageio import save_image

    folder.mkdir(parents=True, exist_ok=True)
    for k, img in enumerate(images):
        path = folder / f"{start + k:06d}.png"
        save_image(img, path)
        gen.files.append(path)


def _write_captions(gen: Generated, folder: Path, vocab: list[str] | None) -> None:
    """captions.jsonl beside generated PNGs: {"image", "caption", "class"} per line."""
    from dmgan.data.vocab import Vocabulary

    words = Vocabulary(vocab) if vocab else None
    lines = []
    for path, cap, cls in zip(gen.files, gen.captions, gen.classes, strict=True):
        text = words.decode(cap) if words else " ".join(map(str, cap))
        lines.append(json.dumps({"image": path.name, "caption": text, "class": int(cls)}))
    atomic_write_text(folder / GENERATED_CAPTIONS, "\n".join(lines) + "\n")
    gen.label = str(folder)


def evaluate_generator(generator, text_encoder, cfg, data, metrics: Sequence[str], *,
                       settings: Settings, num_images: int | None = None,
                       vocab: list[str] | None = None,
                       save_to: Path | None = None) -> tuple[dict, Generated]:
    """generate_for_data, then evaluate: ({metric: {name: value}}, the images).
    R-precision reads its encoders from the settings (text: this text encoder if none)."""
    if "r_precision" in metrics:
        settings.text_encoder = settings.text_encoder or text_encoder
        settings.max_words = cfg.text.words_eval
    gen = generate_for_data(generator, text_encoder, cfg, data, num_images=num_images,
                            seed=settings.seed, batch_size=settings.batch_size, vocab=vocab,
                            save_to=save_to, device=settings.device, progress=settings.progress)
    return evaluate(gen, metrics, settings), gen


def evaluate_checkpoint(checkpoint: str | os.PathLike, data, metrics: Sequence[str], *,
                        settings: Settings, num_images: int | None = None,
                        network: str | None = None,
                        save_to: Path | None = None) -> tuple[dict, Generated]:
    """A checkpoint on a dataset: its generator (`network`; default the EMA generator when
    it has one) draws for the test captions of `data`, and the metrics judge the images.
    R-precision uses the checkpoint's own DAMSM image encoder unless the settings give one.
    This is what `dmgan eval --checkpoint` and the demo's report run; training's snapshots
    call evaluate_generator on the live EMA generator."""
    from dmgan.checkpoint import generator_name, load_checkpoint, load_network
    from dmgan.models import build_generator, build_image_encoder, build_text_encoder

    cfg, payload = load_checkpoint(checkpoint)
    nets = payload.get("networks", {})
    name = network or generator_name(payload)
    where = os.fspath(checkpoint)
    generator, text_encoder = build_generator(cfg, init=False), build_text_encoder(cfg)
    load_network(generator, payload, name, where)
    load_network(text_encoder, payload, "text_encoder", where)
    if "r_precision" in metrics and settings.image_encoder is None:
        if "image_encoder" not in nets:
            raise DMGANError(f"R-precision needs the DAMSM image encoder: {checkpoint} has none "
                             f"(give --image-encoder)")
        settings.image_encoder = build_image_encoder(cfg)
        load_network(settings.image_encoder, payload, "image_encoder", where)
    return evaluate_generator(generator, text_encoder, cfg, data, metrics, settings=settings,
                              num_images=num_images, vocab=payload.get("vocab"), save_to=save_to)


def evaluate_command(*, settings: Settings, images: str | None = None,
                     checkpoint: str | None = None, data: str | None = None,
                     metrics: Sequence[str] | None = None, num_images: int | None = None,
                     save_images: str | None = None, captions: str | None = None,
                     vocab: str | None = None, text_encoder: str | None = None,
                     image_encoder: str | None = None, preset_name: str = "bird") -> list[dict]:
    """`dmgan eval`: a folder of images (`images`), or a checkpoint's images for the test
    captions of `data` (kept in `save_images`, else in a temporary folder removed after;
    the shapes data's few small images stay in memory). Metrics default to the oracle on
    shapes and to FID and IS otherwise. Released DAMSM files (`text_encoder`,
    `image_encoder`, with `preset_name`) serve R-precision; on a folder it also needs the
    folder's `captions` (captions.jsonl) and `vocab` (a vocabulary JSON, as `export` and
    `convert-released` write). Returns the result rows."""
    import shutil
    import tempfile

    from dmgan.config import preset
    from dmgan.models import build_image_encoder, build_text_encoder
    from dmgan.released import load_released

    if bool(images) == bool(checkpoint):
        raise DMGANError("give either --images DIR or --checkpoint CKPT with --data DATA")
    if checkpoint and not data:
        raise DMGANError("--checkpoint needs --data (shapes, or the dataset whose test captions "
                         "to draw)")
    for flag, value in (("--save-images", save_images), ("--cache-dir", settings.cache_dir)):
        if value and Path(value).exists() and not Path(value).is_dir():
            raise DMGANError(f"{flag} {value} is a file, not a folder")
    metrics = list(metrics or (["oracle"] if data == "shapes" else ["fid", "is"]))
    cfg = preset(preset_name)
    if image_encoder:
        settings.image_encoder = load_released(build_image_encoder(cfg), image_encoder,
                                               what=f"the '{cfg.name}' DAMSM image encoder")
    if text_encoder:
        settings.text_encoder = load_released(build_text_encoder(cfg), text_encoder,
                                              what=f"the '{cfg.name}' DAMSM text encoder")
    if images:
        gen = Generated.folder(images)
        if "clip_score" in metrics and not captions:
            raise DMGANError("the CLIP score on a folder needs --captions (captions.jsonl) and "
                             "--vocab")
        if "r_precision" in metrics or "clip_score" in metrics:
            from dmgan.data.vocab import Vocabulary

            if "r_precision" in metrics:
                if not (captions and vocab and settings.text_encoder is not None):
                    raise DMGANError("R-precision on a folder needs --captions, --vocab and "
                                     "--text-encoder (and --preset)")
                if settings.image_encoder is None:
                    raise DMGANError("R-precision needs --image-encoder (the DAMSM image "
                                     "encoder file)")
            if not vocab:
                raise DMGANError("captions on a folder need --vocab (the vocabulary JSON)")
            gen = Generated.folder(images, captions=captions, vocab=Vocabulary.load(vocab))
            settings.max_words = cfg.text.words_eval
        return result_rows(evaluate(gen, metrics, settings), gen, settings)
    tmp = None
    if not save_images and data != "shapes":
        tmp = tempfile.mkdtemp(prefix="dmgan-eval-")
    folder = save_images or tmp
    try:  # the temporary folder goes whatever fails, generation included
        results, gen = evaluate_checkpoint(checkpoint, data, metrics, settings=settings,
                                           num_images=num_images,
                                           save_to=Path(folder) if folder else None)
        if tmp:
            gen.label = f"{checkpoint} on {data} (not kept)"
        return result_rows(results, gen, settings, checkpoint=str(checkpoint), data=str(data))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
