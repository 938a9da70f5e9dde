"""The critic: word-reading discriminators taught, on real shapes pictures alone, which
caption is theirs (`dmgan train-critic`). A GAN run given it (`train --critic`) has it judge
the caption-preference term: a teacher of which object is where that the fakes never train.

Every D of the preset (which must read the words: `discriminator.word_match`) learns whole,
with the DAMSM's frozen text encoder reading the captions. Per real picture the true
caption is the positive (target 1); the negatives (target 0) are, for two objects, the
caption with their places traded, with their colours traded, a near miss (one thing
changed) and the true caption on the picture with one object drawn twice; for one object,
three near misses and the true caption on the picture with the object hidden (the
background in its colour). The true pair weighs as much as all the negatives together.
The pictures and captions follow the preset's data options, as the GAN's do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dmgan.checkpoint import load_checkpoint, load_network, save_checkpoint
from dmgan.config import DMGANConfig
from dmgan.data.shapes import ShapesDataset, near_miss_scene, render, traded
from dmgan.data.transforms import to_tensor
from dmgan.data.vocab import tokenize
from dmgan.device import resolve_device
from dmgan.errors import CheckpointError, DMGANError
from dmgan.models import build_discriminators
from dmgan.train.damsm import load_damsm
from dmgan.train.runs import (
    Clock,
    JsonLog,
    check_resume,
    checkpoint_name,
    latest_checkpoint,
    lock_run_folder,
    make_run_folder,
    refuse_other_run,
    rng_state,
    save_run_checkpoint,
    set_rng_state,
)
from dmgan.tuning import configure_allocator, configure_threads


@dataclass
class CriticResult:
    path: Path | None  # None: stopped by its time budget before the last step (resume it)
    steps: int
    # held-out share of two-object pictures whose true caption the last D prefers to the
    # place-traded / colour-traded one (chance 0.5)
    places: float
    colours: float


@dataclass
class _Pool:
    images: list[torch.Tensor]  # real pictures per stage size (N, 3, s, s)
    second: list[torch.Tensor]  # the same scene with an object doubled (two) or hidden (one)
    captions: list[list[list[int]]]  # per picture: the true caption's ids, then the negatives'
    objects: torch.Tensor  # (N,) objects per picture


def _pool(cfg: DMGANConfig, split: str, n: int, seed: int) -> _Pool:
    sizes = cfg.generator.image_sizes
    data = ShapesDataset(split=split, length=n, image_sizes=sizes, max_words=cfg.text.words_train,
                         seed=seed, options=cfg.data)
    images, second = [[] for _ in sizes], [[] for _ in sizes]
    captions, objects = [], []
    rng = np.random.default_rng([seed, len(split)])
    for i in range(n):
        scene, caption, _, named = data.scene(i)
        if len(scene.objects) == 2:
            negatives = [traded(scene, a) for a in ("position", "colour")]
            if any(t == scene for t in negatives):
                continue  # a trade that changes nothing is no negative
            negatives.append(near_miss_scene(scene, rng, background=named))
            a, b = scene.objects
            keep = (a, b)[int(rng.integers(2))]  # drawn at both places
            other = replace(scene, objects=tuple(replace(keep, position=o.position)
                                                 for o in (a, b)))
        else:
            negatives = [near_miss_scene(scene, rng, background=named) for _ in range(3)]
            other = replace(scene, background=scene.objects[0].colour)
        negative_captions = [data.caption_for(i, t) for t in negatives]
        if caption in negative_captions:  # a partial caption may not say what changed
            continue
        if len(scene.objects) == 2 and data.caption_for(i, other) == caption:
            continue  # nor tell the two objects apart ("two circles"): no doubled negative
        big = render(other, sizes[-1], rng, jitter=cfg.data.shapes_jitter)
        for k, s in enumerate(sizes):
            small = big if s == sizes[-1] else big.resize((s, s), Image.BILINEAR)
            second[k].append(to_tensor(np.asarray(small)))
        captions.append([data.vocab.encode_tokens(tokenize(c)).ids
                         for c in [caption] + negative_captions])
        objects.append(len(scene.objects))
        for k, image in enumerate(data[i].images):
            images[k].append(image)
    if not captions:
        raise DMGANError(f"no usable {split} pictures among {n} samples")
    return _Pool([torch.stack(x) for x in images], [torch.stack(x) for x in second], captions,
                 torch.tensor(objects))


def _encode(text_encoder, rows: list[list[int]], device: torch.device):
    caps = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
    for k, row in enumerate(rows):
        caps[k, : len(row)] = torch.tensor(row)
    with torch.no_grad():
        return text_encoder(caps.to(device), torch.tensor([len(r) for r in rows], device=device))


def _logits(d, features, text):
    return d.cond_logits(features, text.sentence, text.words, text.mask)


def critic_loss(ds, pool: _Pool, idx: torch.Tensor, texts, device) -> torch.Tensor:
    """The step's loss: per D, BCE of the true pair (target 1) plus the mean of the
    negatives' (target 0), the doubled / hidden picture with its true caption among them."""
    loss = torch.zeros((), device=device)
    for k, d in enumerate(ds):
        own = d(pool.images[k][idx].to(device))
        logits = [_logits(d, own, t) for t in texts]
        logits.append(_logits(d, d(pool.second[k][idx].to(device)), texts[0]))
        loss = loss + F.binary_cross_entropy_with_logits(logits[0], torch.ones_like(logits[0]))
        for other in logits[1:]:
            loss = loss + F.binary_cross_entropy_with_logits(
                other, torch.zeros_like(other)) / (len(logits) - 1)
    return loss


@torch.no_grad()
def held_out_preference(ds, pool: _Pool, text_encoder, device) -> list[dict[str, float]]:
    """Per D, as the critic will judge (batch norm with its running statistics): on two-object
    pictures the share preferring the true caption to the place-traded, the colour-traded
    one and to itself on the doubled picture; on one-object pictures, to the near misses and
    to itself on the hidden picture."""
    ds.eval()
    two, one = pool.objects == 2, pool.objects == 1
    columns = min(len(c) for c in pool.captions)
    texts = [_encode(text_encoder, [c[j] for c in pool.captions], device) for j in range(columns)]
    rows = []
    for k, d in enumerate(ds):
        feats = torch.cat([d(pool.images[k][i:i + 200].to(device))
                           for i in range(0, len(pool.objects), 200)])
        second = torch.cat([d(pool.second[k][i:i + 200].to(device))
                            for i in range(0, len(pool.objects), 200)])
        logits = [_logits(d, feats, t).cpu() for t in texts]
        moved = _logits(d, second, texts[0]).cpu()

        def share(mask, other, own=logits[0]):
            return round(float((own > other)[mask].float().mean()), 3) if mask.any() else float("nan")

        row = {"places": share(two, logits[1]), "colours": share(two, logits[2]),
               "doubled": share(two, moved), "hidden": share(one, moved),
               "near_miss": round(float(np.nanmean([share(one, x) for x in logits[1:]])), 3)}
        rows.append(row)
    ds.train()
    return rows


def train_critic(cfg: DMGANConfig, *, damsm: str | Path, out: Path, max_steps: int | None = None,
                 seed: int = 0, device: str = "auto", threads: int | None = None,
                 log_every: int = 500, init_from: str | Path | None = None,
                 command: str | None = None, resume: bool = False,
                 minutes: float | None = None) -> CriticResult:
    """Teach the preset's Ds on real pictures and write `out/critic.pt` (a checkpoint of kind
    "critic" for `train --critic`). `init_from`: a critic of the same settings to go on from.

    Every `log_every` steps the run folder gets `ckpt-<step>.pt` (the Ds, the optimizer and
    the random state; the newest two kept); `resume` goes on from the newest, ending bit for
    bit where an uninterrupted run ends. `minutes`: stop (with a checkpoint, without
    critic.pt) when the time is up; the result's `path` is then None."""
    if not cfg.discriminator.word_match:
        raise DMGANError(f"preset '{cfg.name}' has discriminators that do not read the words "
                         f"(discriminator.word_match): a critic needs them")
    steps = max_steps or cfg.critic.steps
    if resume and not Path(out).is_dir():
        raise DMGANError(f"--resume: run folder not found: {out}")
    out = make_run_folder(out)
    found = None
    if resume:  # first, so another preset's folder is refused before any work
        found = latest_checkpoint(out, cfg.name)
        if found is None or found[1].get("kind") != "critic-run":
            raise DMGANError(f"--resume: no critic checkpoint in {out}")
    else:
        refuse_other_run(out)
    torch.manual_seed(seed)
    dev = resolve_device(device)
    text_encoder, _, vocab_words = load_damsm(damsm, cfg)
    damsm_payload = load_checkpoint(damsm)[1]
    ds = build_discriminators(cfg)
    if init_from is not None:
        source, payload = load_checkpoint(init_from)
        if payload.get("kind") != "critic" or source.discriminator != cfg.discriminator:
            raise CheckpointError(f"--init-from {init_from}: not a critic with preset "
                                  f"'{cfg.name}'s discriminator settings")
        for k, d in enumerate(ds):
            load_network(d, payload, f"discriminator{k}", str(init_from))
    lock = lock_run_folder(out)  # noqa: F841 (held for the run's life)
    n_threads, why = configure_threads(threads, cfg=cfg if dev.type == "cpu" else None,
                                       batch=cfg.critic.batch_size)
    memory, memory_why = configure_allocator()
    print(f"critic: device {dev}; {n_threads} CPU threads ({why}); host memory: {memory} "
          f"({memory_why})", flush=True)
    start = time.perf_counter()
    train = _pool(cfg, "train", cfg.critic.train_samples, seed)
    test = _pool(cfg, "test", cfg.critic.held_out, seed)
    print(f"critic: {len(train.captions)} training and {len(test.captions)} held-out pictures "
          f"({int((test.objects == 1).sum())} of them with one object)", flush=True)
    text_encoder.to(dev)
    ds.to(dev)
    opt = torch.optim.Adam(ds.parameters(), lr=cfg.critic.lr, betas=(0.5, 0.999))
    log = JsonLog(out / "log.jsonl", True)
    gen = torch.Generator().manual_seed(seed)
    settings = {"seed": seed, "damsm": str(damsm), "steps": steps,
                "init_from": None if init_from is None else str(init_from)}
    done, rows = 0, []
    if found is not None:
        stored_cfg, payload, path = found
        check_resume(out, stored_cfg, cfg, payload.get("run_settings"), settings)
        for k, d in enumerate(ds):
            load_network(d, payload, f"discriminator{k}", str(path))
        opt.load_state_dict(payload["optimizers"]["critic"])
        set_rng_state(payload["rng"], gen)
        done, rows = payload["step"], payload["held_out"]
        print(f"critic: resumed from {path.name} at step {done}", flush=True)
    clock = Clock(minutes)
    columns = min(len(c) for c in train.captions)
    for step in range(done + 1, steps + 1):
        idx = torch.randint(len(train.captions), (cfg.critic.batch_size,), generator=gen)
        texts = [_encode(text_encoder, [train.captions[i][j] for i in idx], dev)
                 for j in range(columns)]
        loss = critic_loss(ds, train, idx, texts, dev)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % log_every == 0 or step == steps:
            rows = held_out_preference(ds, test, text_encoder, dev)
            log.write({"step": step, "loss": round(loss.item(), 4), "held_out": rows,
                       "elapsed_s": round(time.perf_counter() - start, 1)})
            print(f"critic step {step}/{steps}: loss {loss.item():.3f}; held-out, last D: "
                  + ", ".join(f"{k} {v}" for k, v in rows[-1].items()), flush=True)
        out_of_time = step < steps and clock.out_of_time()
        if step < steps and (step % log_every == 0 or out_of_time):
            save_run_checkpoint(out, 2, config=cfg, step=step, kind="critic-run",
                                networks={f"discriminator{k}": d for k, d in enumerate(ds)},
                                optimizers={"critic": opt.state_dict()}, rng=rng_state(gen),
                                held_out=rows, run_settings=settings)
        if out_of_time:
            print(f"critic: out of time at step {step} of {steps}; saved {checkpoint_name(step)}, "
                  f"go on with --resume", flush=True)
            last = rows[-1] if rows else {"places": float("nan"), "colours": float("nan")}
            return CriticResult(None, step, last["places"], last["colours"])
    path = out / "critic.pt"
    lineage = [c for c in [damsm_payload.get("command")] if c]
    save_checkpoint(path, config=cfg, networks={f"discriminator{k}": d for k, d in enumerate(ds)},
                    kind="critic", damsm=str(damsm), step=steps, held_out=rows,
                    vocab=vocab_words, command=command, lineage=lineage)
    return CriticResult(path, steps, rows[-1]["places"], rows[-1]["colours"])
