"""`dmgan eval`: a model's images for a dataset's test captions (or a folder of images),
judged by the metrics of dmgan.metrics.registry, as result rows; the demo's report and
training's snapshots call the same functions on a checkpoint or a live generator."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from dmgan.errors import DMGANError
from dmgan.fileio import atomic_write_text
from dmgan.metrics.registry import (
    Generated,
    Settings,
    evaluate,
    progress_bar,
    result_rows,
)

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
        from dmgan.data.vocab import Vocabulary
        from dmgan.metrics.shapes import generate_for_captions, held_out_captions

        samples = held_out_captions(num_images or 500, seed, cfg.text.words_eval,
                                    vocab=Vocabulary(vocab) if vocab else None)
        images, attributes = generate_for_captions(generator, text_encoder, samples, batch=100,
                                                   seed=seed, device=device)
        captions = [samples[i].caption[: samples[i].length].tolist() for i in range(len(samples))]
        classes = [samples[i].class_id for i in range(len(samples))]
        gen = Generated("shapes test captions", tensors=images, captions=captions,
                        classes=classes, attributes=attributes,
                        texts=[a["caption"] for a in attributes],
                        model=(generator, text_encoder, samples.vocab, cfg.text.words_eval))
    else:
        test = data
        if isinstance(data, str | Path):
            from dmgan.data.open import check_vocab, open_split

            test = open_split(cfg, str(data), "test", max_words=cfg.text.words_eval,
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
        update, close = progress_bar(n, "generating", progress)
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
