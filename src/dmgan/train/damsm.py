"""DAMSM pre-training: the text and image encoders learn to match words with image regions
and sentences with images (the released recipe: Adam 2e-3, betas (0.5, 0.999), lr x0.98
per epoch while above 2e-4, RNN gradient norm clipped at 0.25)."""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from dmgan.checkpoint import load_checkpoint, load_network, save_checkpoint
from dmgan.config import DMGANConfig
from dmgan.data.collate import collate
from dmgan.data.loader import epoch_loader
from dmgan.data.open import check_vocab, open_split
from dmgan.device import resolve_device
from dmgan.errors import CheckpointError, DMGANError
from dmgan.losses import sentence_loss, words_loss
from dmgan.losses.damsm import near_miss_loss
from dmgan.models import build_image_encoder, build_text_encoder
from dmgan.progress import Progress
from dmgan.train.runs import Clock, JsonLog, make_run_folder
from dmgan.tuning import configure_allocator, configure_threads


@dataclass
class DamsmResult:
    path: Path
    steps: int
    r_at_1: float  # caption -> image retrieval among 100 test candidates (chance 0.01)
    # own caption over its near-miss caption on test images (chance 0.5); None without them
    near_miss: float | None = None
    # whether it stopped because its targets were met (on 500 test images; the numbers above
    # are measured on more, so they may fall a little short of a target that was met)
    met_targets: bool = False


def _damsm_losses(text_encoder, image_encoder, batch, cfg: DMGANConfig, device):
    caps, lens = batch.captions.to(device), batch.lengths.to(device)
    text = text_encoder(caps, lens)
    regions, code = image_encoder(batch.images[-1].to(device))
    lo = cfg.loss
    w = words_loss(regions, text.words, lens, batch.class_ids.to(device), gamma1=lo.gamma1,
                   gamma2=lo.gamma2, gamma3=lo.gamma3)
    s0, s1 = sentence_loss(code, text.sentence, batch.class_ids.to(device), gamma3=lo.gamma3)
    if cfg.damsm.near_miss_negatives and batch.negatives is not None:
        neg = text_encoder(batch.negatives.to(device), batch.negative_lengths.to(device)).sentence
        s0 = s0 + near_miss_loss(code, text.sentence, neg, gamma3=lo.gamma3)
    return w.loss0 + w.loss1, s0 + s1


@torch.no_grad()
def near_miss_accuracy(text_encoder, image_encoder, dataset, *, device, chunk: int = 100,
                      limit: int = 500) -> float | None:
    """The share of test samples whose image code is nearer (cosine) to its own caption's
    sentence code than to its near-miss caption's (the caption with one thing changed: what
    R@1 among random captions hardly asks, shape above all); None when the data makes no
    near-miss captions."""
    text_encoder.eval()
    image_encoder.eval()
    cos = torch.nn.functional.cosine_similarity
    hits, total = 0, 0
    for start in range(0, min(len(dataset), limit), chunk):
        batch = collate([dataset[i] for i in range(start, min(len(dataset), limit, start + chunk))])
        if batch.negatives is None:
            return None
        own = text_encoder(batch.captions.to(device), batch.lengths.to(device)).sentence
        other = text_encoder(batch.negatives.to(device), batch.negative_lengths.to(device)).sentence
        code = image_encoder(batch.images[-1].to(device))[1]
        hits += int((cos(code, own, dim=1) > cos(code, other, dim=1)).sum())
        total += len(code)
    return hits / max(1, total)


@torch.no_grad()
def retrieval_r1(text_encoder, image_encoder, dataset, *, device, chunk: int = 100,
                 limit: int = 1000) -> float:
    """R@1 of caption -> image retrieval, within chunks of `chunk` test samples."""
    text_encoder.eval()
    image_encoder.eval()
    hits, total = 0, 0
    n = min(len(dataset), limit)
    for start in range(0, n - chunk + 1 if n >= chunk else 1, chunk):
        batch = collate([dataset[i] for i in range(start, min(n, start + chunk))])
        sent = text_encoder(batch.captions.to(device), batch.lengths.to(device)).sentence
        code = image_encoder(batch.images[-1].to(device))[1]
        sim = torch.nn.functional.normalize(sent, dim=1) @ torch.nn.functional.normalize(code, dim=1).t()
        hits += int((sim.argmax(1) == torch.arange(len(sim), device=device)).sum())
        total += len(sim)
    return hits / max(1, total)


def pretrain_damsm(
    cfg: DMGANConfig,
    *,
    data: str,
    out: Path,
    epochs: int | None = None,
    minutes: float | None = None,
    max_steps: int | None = None,
    seed: int = 0,
    device: str = "auto",
    workers: int = 0,
    threads: int | None = None,
    log_every: int = 50,
    progress: bool | None = None,
    target_r1: float | None = None,
    target_near_miss: float | None = None,
    check_every: int = 200,
    init_from: str | Path | None = None,
    command: str | None = None,
) -> DamsmResult:
    """Train until `epochs`, `minutes` or `max_steps` runs out, or (with `target_r1` and/or
    `target_near_miss`) until the test R@1 and the near-miss accuracy (near_miss_accuracy),
    measured every `check_every` steps on 500 test samples, reach them.
    `init_from`: a DAMSM checkpoint of the same text and encoder settings to start from.
    `command`: the command line that asked for it, recorded in the checkpoint."""
    torch.manual_seed(seed)
    dev = resolve_device(device)
    d = cfg.damsm
    sizes = (d.image_size,) if d.image_encoder == "inception" else (cfg.generator.image_sizes[-1],)
    train = open_split(cfg, data, "train", max_words=d.words, seed=seed, image_sizes=sizes)
    # judged on fully specified captions: one that leaves things out fits many pictures, so
    # retrieval among them measures the caption, not the encoders
    judged = cfg.replace(data=dataclasses.replace(cfg.data, shapes_partial_share=0.0,
                                                  shapes_plural_share=0.0))
    test = open_split(judged, data, "test", max_words=d.words, seed=seed, image_sizes=sizes)
    check_vocab(cfg, train.vocab)
    if len(train) < d.batch_size:
        raise DMGANError(f"{len(train)} training samples cannot fill one DAMSM batch of "
                         f"{d.batch_size}: pass --batch-size {max(2, len(train))} or less")
    if target_near_miss is not None and (len(test) == 0 or test[0].negative is None):
        raise DMGANError("--target-near-miss needs data that makes near-miss captions (the "
                         "built-in shapes data, with train.near_miss_negatives or "
                         "damsm.near_miss_negatives on)")
    # the inputs are good: now the thread count (a probe the first time on this machine)
    n_threads, why = configure_threads(threads, cfg=cfg if dev.type == "cpu" else None,
                                       batch=cfg.damsm.batch_size)
    memory, memory_why = configure_allocator()
    print(f"damsm: device {dev}; {n_threads} CPU threads ({why}); {workers} data workers; "
          f"host memory: {memory} ({memory_why})", flush=True)
    text_encoder = build_text_encoder(cfg).to(dev)
    image_encoder = build_image_encoder(cfg)
    if init_from is not None:
        payload = _check_damsm(init_from, cfg)
        load_network(text_encoder, payload, "text_encoder", str(init_from))
        load_network(image_encoder, payload, "image_encoder", str(init_from))
        print(f"damsm: starting from {init_from} ({payload.get('step')} steps, test R@1 "
              f"{payload.get('test_r_at_1')})", flush=True)
    image_encoder = image_encoder.freeze_trunk().to(dev)
    params = list(text_encoder.parameters()) + [
        p for p in image_encoder.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=d.lr, betas=(0.5, 0.999), foreach=True)
    make_run_folder(out)
    log = JsonLog(out / "damsm-log.jsonl", True)
    clock, step, lr = Clock(minutes), 0, d.lr
    epochs = epochs if epochs is not None else d.epochs
    done = met = False
    order, loader = epoch_loader(train, d.batch_size, seed=seed * 7919, workers=workers,
                                 pin_memory=dev.type == "cuda")
    total = epochs * order.per_epoch
    bar = Progress(min(total, max_steps) if max_steps else total, "damsm", unit="step",
                   budget_s=minutes * 60 if minutes else None, live=progress, stream=sys.stdout)
    for epoch in range(epochs):
        order.start(epoch)
        text_encoder.train()
        image_encoder.train()
        t0 = time.perf_counter()
        for batch in loader:
            w_loss, s_loss = _damsm_losses(text_encoder, image_encoder, batch, cfg, dev)
            loss = w_loss + s_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(text_encoder.parameters(), d.rnn_grad_clip)
            opt.step()
            step += 1
            bar.update(1)
            if step % log_every == 0:
                rate = log_every * d.batch_size / (time.perf_counter() - t0)
                t0 = time.perf_counter()
                log.write({"step": step, "epoch": epoch, "w_loss": w_loss.item(),
                           "s_loss": s_loss.item(), "lr": lr, "images_per_s": round(rate, 1)})
                bar.set_postfix(f"epoch {epoch} words {w_loss.item():.3f} sentence "
                                f"{s_loss.item():.3f} {rate:.0f} img/s")
            if clock.out_of_time() or (max_steps is not None and step >= max_steps):
                done = True
                break
            if (target_r1, target_near_miss) != (None, None) and step % check_every == 0:
                r1 = retrieval_r1(text_encoder, image_encoder, test, device=dev, limit=500)
                near_miss = near_miss_accuracy(text_encoder, image_encoder, test, device=dev, limit=500) \
                    if target_near_miss is not None else None
                text_encoder.train()
                image_encoder.train()
                log.write({"step": step, "test_r_at_1_500": r1,
                           **({} if near_miss is None else {"test_near_miss_500": near_miss})})
                bar.write(f"damsm step {step}: test R@1 {r1:.3f} (target {target_r1 or 0:g})"
                          + ("" if target_near_miss is None else
                             f", near misses {'-' if near_miss is None else f'{near_miss:.3f}'} "
                             f"(target {target_near_miss:g})"))
                if r1 >= (target_r1 or 0) and (near_miss is None or near_miss >= target_near_miss):
                    done = met = True
                    break
        if done:
            break
        if lr > d.lr_floor:
            lr *= d.lr_decay
            for group in opt.param_groups:
                group["lr"] = lr
    bar.close()
    r1 = retrieval_r1(text_encoder, image_encoder, test, device=dev)
    near_miss = near_miss_accuracy(text_encoder, image_encoder, test, device=dev, limit=1000)
    log.write({"step": step, "test_r_at_1": r1,
               **({} if near_miss is None else {"test_near_miss": near_miss})})
    print(f"damsm: {step} steps, test R@1 (caption -> image among 100) = {r1:.3f}"
          + ("" if near_miss is None else
             f"; own caption over its near-miss caption {near_miss:.3f}"), flush=True)
    path = out / "damsm.pt"
    save_checkpoint(path, config=cfg, networks={"text_encoder": text_encoder,
                                                "image_encoder": image_encoder},
                    kind="damsm", step=step, vocab=list(train.vocab.words), test_r_at_1=r1,
                    command=command, **({} if near_miss is None else {"test_near_miss": near_miss}))
    return DamsmResult(path, step, r1, near_miss, met)


def _check_damsm(path: str | Path, cfg: DMGANConfig) -> dict:
    """The payload of a DAMSM checkpoint made for `cfg`'s text and encoder settings."""
    dcfg, payload = load_checkpoint(path)
    if payload.get("kind") != "damsm":
        raise CheckpointError(f"{path} is not a DAMSM checkpoint (made by dmgan pretrain-damsm)")
    if (dcfg.text != cfg.text or dcfg.damsm.image_encoder != cfg.damsm.image_encoder
            or dcfg.damsm.cnn_width != cfg.damsm.cnn_width):
        raise DMGANError(f"{path} was trained for preset '{dcfg.name}' with other text/encoder "
                         f"settings than '{cfg.name}'")
    return payload


def load_damsm(path: str | Path, cfg: DMGANConfig, *, min_r1: float = 0.0):
    """(text_encoder, image_encoder, vocab words) from a DAMSM checkpoint, frozen, eval.

    A checkpoint whose recorded test R@1 is below `min_r1` is refused: a GAN trained on
    encoders that did not learn to match words and images learns nothing from them.
    """
    payload = _check_damsm(path, cfg)
    r1 = payload.get("test_r_at_1")
    if isinstance(r1, (int, float)) and r1 < min_r1:
        raise DMGANError(
            f"{path} has test R@1 {r1:.3f} (caption -> image among 100; chance 0.01), below "
            f"the {min_r1:g} needed to train on it: pre-train it longer (dmgan pretrain-damsm "
            f"--max-steps / --target-r1), or lower the bar with --min-damsm-r1")
    te, ie = build_text_encoder(cfg), build_image_encoder(cfg)
    load_network(te, payload, "text_encoder", str(path))
    load_network(ie, payload, "image_encoder", str(path))
    for net in (te, ie):
        net.eval().requires_grad_(False)
    return te, ie, payload.get("vocab")
