"""DM-GAN training: one loop in labelled phases (fetch data, update D, update G, update EMA,
log, snapshot), the released recipe, exact resume, mixed precision, many processes."""

from __future__ import annotations

import math
import sys
import time
import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch

from dmgan.checkpoint import (
    generator_name,
    lineage_of,
    load_checkpoint,
    load_network,
    save_checkpoint,
)
from dmgan.config import DMGANConfig
from dmgan.data.collate import collate
from dmgan.data.loader import epoch_loader
from dmgan.data.open import check_vocab, open_split
from dmgan.data.shapes import caption_needs, world_reads
from dmgan.device import check_amp
from dmgan.errors import CheckpointError, ConfigError, DMGANError
from dmgan.metrics.snapshot import SnapshotEvaluator
from dmgan.models import build_discriminators, build_generator
from dmgan.train.damsm import load_damsm
from dmgan.train.graphs import GraphedUpdate, check_cuda_graphs
from dmgan.train.runs import (
    Clock,
    JsonLog,
    check_resume,
    checkpoint_name,
    config_changes,
    latest_checkpoint,
    lock_run_folder,
    make_run_folder,
    refuse_other_run,
    remove_stale_temporaries,
    rng_state,
    save_run_checkpoint,
    set_rng_state,
    write_config,
)
from dmgan.train.runtime import Runtime, broadcast_state, mean_across_ranks, setup_runtime
from dmgan.train.step import EMA, GANParts, train_step
from dmgan.tuning import configure_allocator, configure_threads


@dataclass
class TrainOptions:
    data: str  # "shapes" or a dataset folder
    out: Path  # run folder
    damsm: Path | None = None  # DAMSM checkpoint (dmgan pretrain-damsm)
    resume: bool = False
    max_steps: int | None = None
    minutes: float | None = None
    seed: int = 0
    device: str = "auto"
    amp: str = "off"
    compile: bool = False
    cuda_graphs: bool = False  # record the D and G updates once as a CUDA graph, then replay
    channels_last: bool = True  # channels_last memory layout (measured faster on CPU too)
    workers: int = 2
    log_every: int = 50
    sample_every: int = 500
    ckpt_every: int = 500
    keep: int = 3
    samples: int = 8
    progress: bool | None = None  # a live bar (True), plain lines (False), None: bar on a terminal
    tensorboard: bool = False
    stop_at_step: int | None = None  # for tests: stop (as if killed) after this step
    # evaluation at snapshots (metrics.jsonl, best.pt): every this many steps (None: with
    # every checkpoint; 0: never), on this many fixed held-out captions
    eval_every: int | None = None
    eval_captions: int = 200
    inception_weights: str | None = None  # FID at snapshots (CUB/COCO-style data)
    min_damsm_r1: float = 0.5  # refuse DAMSM encoders whose test R@1 is below this
    min_steps: int | None = None  # warn early when the time budget cannot reach this many steps
    threads: int | None = None  # CPU threads (None: OMP_NUM_THREADS, else a cached probe)
    # start a new run from another run's networks (a training checkpoint: G, EMA G and the
    # Ds; an exported model: G and EMA G, new Ds); fresh optimizers, step 0
    init_from: Path | None = None
    # frozen discriminators that read the words (dmgan train-critic) and judge the
    # caption-preference term (loss.caption_preference_weight) in place of the run's own Ds:
    # a teacher of which object is where that the fakes do not train
    critic: Path | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        """The same checks as the command line's, for callers of the library."""
        self.seed %= 2**32  # any integer, reduced into every generator's range
        checks = [
            (self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1"),
            (self.minutes is None or (math.isfinite(self.minutes) and self.minutes > 0),
             "minutes must be a number > 0"),
            (self.workers >= 0, "workers must be >= 0"),
            (min(self.log_every, self.sample_every, self.ckpt_every) >= 1,
             "log_every, sample_every and ckpt_every must be >= 1"),
            (self.keep >= 1, "keep must be >= 1 (the last checkpoint is always kept)"),
            (self.eval_every is None or self.eval_every >= 0, "eval_every must be >= 0"),
            (self.eval_captions >= 1, "eval_captions must be >= 1"),
            (0.0 <= self.min_damsm_r1 <= 1.0, "min_damsm_r1 must be in [0, 1]"),
            (self.min_steps is None or self.min_steps >= 1, "min_steps must be >= 1"),
            (self.threads is None or self.threads >= 1, "threads must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"training options: {message}")

    # What may differ when a run is resumed: budgets, logging, data loading and the device.
    # Every other option defines the run, and a resume that contradicts it is refused.
    RESUMABLE = frozenset({
        "out", "resume", "minutes", "max_steps", "stop_at_step", "min_steps", "workers",
        "threads", "device", "cuda_graphs", "log_every", "sample_every", "ckpt_every", "keep", "samples",
        "progress", "tensorboard", "eval_every", "min_damsm_r1",
    })

    def to_dict(self) -> dict:
        """A JSON-able record (paths as strings) that from_dict turns back into these options."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out

    @classmethod
    def from_dict(cls, record: dict) -> TrainOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(record) - known)
        if unknown:
            raise ConfigError(f"training options: unknown option(s) {', '.join(unknown)}")
        values = dict(record)
        for name in ("out", "damsm", "init_from", "critic"):
            if values.get(name) is not None:
                values[name] = Path(values[name])
        return cls(**values)

    def identity(self, world_size: int) -> dict:
        """The options that define the run (what a resume must agree with), with the data
        and DAMSM named by their resolved paths, and the number of processes."""
        record = {k: v for k, v in self.to_dict().items() if k not in self.RESUMABLE}
        if self.data != "shapes":
            record["data"] = str(Path(self.data).resolve())
        for name in ("damsm", "init_from", "critic"):
            if getattr(self, name) is not None:
                record[name] = str(Path(getattr(self, name)).resolve())
        return record | {"world_size": world_size}


@dataclass
class TrainResult:
    step: int
    run: Path
    last_checkpoint: Path | None


def _sample_inputs(dataset, n: int, cfg: DMGANConfig, seed: int):
    batch = collate([dataset[i] for i in range(min(n, len(dataset)))])
    noise = torch.randn(len(batch.keys), cfg.generator.z_dim,
                        generator=torch.Generator().manual_seed(seed + 999))
    return batch, noise


def load_optimizer(opt: torch.optim.Optimizer, state: dict, capturable: bool) -> None:
    """Load a saved optimizer state under this run's `capturable` (--cuda-graphs may change
    on resume: a run recorded on a GPU goes on eagerly, on a CPU too, and back)."""
    groups = [{**group, "capturable": capturable} for group in state["param_groups"]]
    opt.load_state_dict({**state, "param_groups": groups})


def train_gan(cfg: DMGANConfig, opts: TrainOptions, *, command: str | None = None) -> TrainResult:
    """Train (or, with opts.resume, continue) a run in opts.out, holding its lock. `command`:
    the command line that asked for it, recorded in every checkpoint (dmgan.export)."""
    rt = setup_runtime(opts.device)
    check_amp(opts.amp, rt.device)
    if opts.cuda_graphs:
        check_cuda_graphs(rt.device, opts.amp, rt.world)
    run = Path(opts.out)
    lock = None
    if rt.main:
        make_run_folder(run)
        lock = lock_run_folder(run)
        make_run_folder(run / "samples", "the samples folder")
    try:
        return _train(cfg, opts, rt, run, command)
    finally:
        if lock is not None:
            lock.close()


def _train(cfg: DMGANConfig, opts: TrainOptions, rt: Runtime, run: Path,
           command: str | None) -> TrainResult:
    dev = rt.device
    # channels_last: measured faster for a whole training step on a CPU too (docs/design.md)
    fmt = torch.channels_last if opts.channels_last else torch.contiguous_format

    found = None
    if opts.resume:  # first, so a run folder of another preset is refused before any work
        found = latest_checkpoint(run, cfg.name)
        if found is None:
            raise DMGANError(f"--resume: no usable checkpoint in {run}")
    else:
        refuse_other_run(run)

    # --- setup: data, frozen DAMSM encoders, networks, optimizers ---------------------
    torch.manual_seed(opts.seed)
    train = open_split(cfg, opts.data, "train", max_words=cfg.text.words_train, seed=opts.seed)
    test = open_split(cfg, opts.data, "test", max_words=cfg.text.words_eval, seed=opts.seed)
    check_vocab(cfg, train.vocab)
    if opts.damsm is None:
        raise DMGANError("training needs the DAMSM encoders: pass --damsm (see dmgan pretrain-damsm)")
    text_encoder, image_encoder, vocab_words = load_damsm(opts.damsm, cfg,
                                                          min_r1=opts.min_damsm_r1)
    if vocab_words is not None and vocab_words != train.vocab.words:
        raise DMGANError(f"{opts.damsm} was trained on another vocabulary than {opts.data}'s")
    # the inputs are good: now the thread count (a probe the first time on this machine)
    threads, why = configure_threads(opts.threads, cfg=cfg if dev.type == "cpu" else None,
                                     batch=cfg.train.batch_size)
    memory, memory_why = configure_allocator()
    if rt.main:
        print(f"device {dev}; {threads} CPU threads ({why}); {opts.workers} data workers"
              + (f"; {rt.world} processes" if rt.world > 1 else "")
              + f"; host memory: {memory} ({memory_why})", flush=True)
    text_encoder.to(dev)
    image_encoder.to(dev, memory_format=fmt)
    g = build_generator(cfg).to(dev, memory_format=fmt)
    ds = build_discriminators(cfg).to(dev, memory_format=fmt)
    broadcast_state(g, rt)
    broadcast_state(ds, rt)
    ema = EMA(g, cfg.train.ema_decay, cfg.train.ema_warmup)
    tr = cfg.train
    # foreach: one multi-tensor update instead of a loop over parameters (half the
    # optimizer time on CPU, docs/design.md); capturable: the step count stays on the
    # device, as a CUDA graph needs
    adam = {"betas": (tr.beta1, tr.beta2), "foreach": True, "capturable": opts.cuda_graphs}
    opt_g = torch.optim.Adam(g.parameters(), lr=tr.lr_g, **adam)
    opt_ds = [torch.optim.Adam(d.parameters(), lr=tr.lr_d, **adam) for d in ds]
    scaler = torch.amp.GradScaler("cuda", enabled=opts.amp == "fp16")
    noise_gen = torch.Generator().manual_seed(opts.seed * 31 + rt.rank)
    step, epoch, batch_in_epoch = 0, 0, 0

    identity = opts.identity(rt.world)
    if found is not None:
        stored_cfg, payload, path = found
        # checkpoints before the options record held only seed, data and processes
        check_resume(run, stored_cfg, cfg, payload.get("options") or payload.get("run_settings"),
                     identity)
        if rt.main:
            remove_stale_temporaries(run)
        nets = payload["networks"]
        g.load_state_dict(nets["generator"])
        ema.net.load_state_dict(nets["generator_ema"])
        for i, d in enumerate(ds):
            d.load_state_dict(nets[f"discriminator{i}"])
        load_optimizer(opt_g, payload["optimizers"]["generator"], opts.cuda_graphs)
        for i, o in enumerate(opt_ds):
            load_optimizer(o, payload["optimizers"][f"discriminator{i}"], opts.cuda_graphs)
        step, epoch, batch_in_epoch = payload["step"], payload["epoch"], payload["batch_in_epoch"]
        command = payload.get("command") or command  # the run's own command, not the resume
        states = payload["rng"]
        set_rng_state(states[rt.rank] if isinstance(states, list) else states, noise_gen)
        if "grad_scaler" in payload:
            scaler.load_state_dict(payload["grad_scaler"])
        if rt.main:
            print(f"resumed from {path.name} at step {step}", flush=True)
    elif opts.init_from is not None:
        trained = init_networks(opts.init_from, cfg, g, ema.net, ds)
        if rt.main:
            print(f"initialised from {opts.init_from} ({trained} steps trained)", flush=True)

    critics = load_critics(opts.critic, cfg, dev, fmt) if opts.critic is not None else None
    # how this run was made and what its captions need to name (written on by dmgan.export)
    lineage = lineage_of(load_checkpoint(opts.damsm)[1],
                         load_checkpoint(opts.critic)[1] if opts.critic is not None else None)
    reads = ({"needs": caption_needs(cfg), "world": world_reads()} if opts.data == "shapes"
             else {"needs": []})
    gan = GANParts(g=g, g_run=torch.compile(g) if opts.compile else g, ds=ds, opt_g=opt_g,
                   opt_ds=opt_ds, ema=ema, text_encoder=text_encoder,
                   image_encoder=image_encoder, scaler=scaler, critics=critics)
    graphed = GraphedUpdate(gan, cfg, rt, opts.amp, num_words=cfg.text.words_train) \
        if opts.cuda_graphs else None
    if rt.main:
        write_config(run, cfg, {"options": opts.to_dict(), "world_size": rt.world,
                                "device": str(dev), "threads": threads})
    log = JsonLog(run / "log.jsonl", rt.main)
    sample_batch, sample_noise = _sample_inputs(test, opts.samples, cfg, opts.seed)
    writer = _tensorboard(run, opts.tensorboard and rt.main)
    bar = None
    clock = Clock(opts.minutes)
    last_ckpt = None
    eval_every = opts.ckpt_every if opts.eval_every is None else opts.eval_every
    evaluator = SnapshotEvaluator(
        cfg=cfg, data=opts.data, test=test, text_encoder=text_encoder,
        image_encoder=image_encoder, num=opts.eval_captions, seed=opts.seed, device=dev,
        inception_weights=opts.inception_weights) if eval_every and rt.main else None
    best = _best_so_far(run) if evaluator else None
    pace = Pace(clock, opts.minutes, opts.min_steps, start_step=step)
    sums: dict[str, torch.Tensor] = {}
    t_log, seen, n_summed = time.perf_counter(), 0, 0

    def snapshot_payload() -> dict:
        return {
            "config": cfg,
            "networks": {"generator": g, "generator_ema": ema.net, "text_encoder": text_encoder,
                         "image_encoder": image_encoder,
                         **{f"discriminator{i}": d for i, d in enumerate(ds)}},
            "optimizers": {"generator": opt_g.state_dict(),
                           **{f"discriminator{i}": o.state_dict() for i, o in enumerate(opt_ds)}},
            "step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
            "rng": _gather_rng(noise_gen, rt), "vocab": list(train.vocab.words),
            "kind": "dmgan-train", "options": identity, "grad_scaler": scaler.state_dict(),
            "command": command, "lineage": lineage, "reads": reads,
        }

    def snapshot() -> Path:
        _check_finite({k: float(v) for k, v in sums.items()}, step, run, last_ckpt)
        payload = snapshot_payload()
        if rt.main:
            return save_run_checkpoint(run, opts.keep, **payload)
        return run / checkpoint_name(step)

    def finished() -> bool:
        return (opts.max_steps is not None and step >= opts.max_steps) or clock.out_of_time() or (
            epoch >= tr.epochs)

    # one loader for the whole run: its workers persist across epochs (the batch order
    # says which epoch each sample belongs to, for the data's per-epoch draws)
    order, loader = epoch_loader(train, tr.batch_size, seed=opts.seed, rank=rt.rank,
                                 world=rt.world, workers=opts.workers,
                                 pin_memory=dev.type == "cuda")
    if rt.main:  # moves every step, with an ETA from the step rate and the time budget
        from dmgan.progress import Progress

        total = tr.epochs * order.per_epoch if tr.epochs else None
        if opts.max_steps is not None:
            total = min(total or opts.max_steps, opts.max_steps)
        bar = Progress(total, "train", unit="step", start=step, live=opts.progress,
                       budget_s=opts.minutes * 60 if opts.minutes else None, stream=sys.stdout)
    while not finished():
        order.start(epoch, batch_in_epoch)
        for batch in loader:
            # --- phase: fetch data ---------------------------------------------------
            real = [x.to(dev, non_blocking=True).contiguous(memory_format=fmt) for x in batch.images]
            parts = train_step(
                gan, cfg, rt, real=real, captions=batch.captions.to(dev),
                lengths=batch.lengths.to(dev), class_ids=batch.class_ids.to(dev),
                noise_gen=noise_gen, step=step, amp=opts.amp,
                negatives=None if batch.negatives is None else batch.negatives.to(dev),
                negative_lengths=None if batch.negatives is None else batch.negative_lengths.to(dev),
                fixes_picture=_fixes_picture(batch, cfg, dev), graphed=graphed)
            step += 1
            batch_in_epoch += 1
            if graphed is not None and graphed.recorded_at == graphed.calls and rt.main:
                msg = f"CUDA graph of the D and G updates recorded at step {step}"
                (bar.write if bar is not None else print)(msg)
            seen += len(batch.lengths) * rt.world
            if bar is not None:
                bar.update(1)

            # --- phase: log (host syncs only here) -------------------------------------
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v.detach().float()
            n_summed += 1
            if step % opts.log_every == 0 or finished():
                n = n_summed
                rate = seen / (time.perf_counter() - t_log)
                means = mean_across_ranks(sums, rt)  # every rank joins; rank 0 writes
                record = {"step": step, "epoch": epoch, "images_per_s": round(rate, 2),
                          "elapsed_s": round(clock.elapsed(), 1),
                          **{k: round(float(v) / n, 5) for k, v in means.items()}}
                _check_finite(record, step, run, last_ckpt)
                log.write(record)
                if writer:
                    for k, v in record.items():
                        writer.add_scalar(k, v, step)
                if bar is not None:  # one progress display per run, not one per process
                    keys = ("g_total", "d0", "g_words", "images_per_s")
                    bar.set_postfix(" ".join(f"{k} {record[k]}" for k in keys if k in record))
                sums, t_log, seen, n_summed = {}, time.perf_counter(), 0, 0
            if rt.main:
                for warning in pace.check(step):
                    print(f"dmgan: warning: {warning}", file=sys.stderr, flush=True)

            # --- phase: snapshot (samples, checkpoint) ---------------------------------
            if rt.main and (step % opts.sample_every == 0 or finished()):
                write_samples(ema.net, text_encoder, sample_batch, sample_noise, train.vocab,
                              run / "samples" / f"step-{step:08d}.png", dev)
            if step % opts.ckpt_every == 0 or finished():
                last_ckpt = snapshot()
            # --- phase: metrics (EMA G on fixed held-out captions; best.pt) -------------
            if evaluator is not None and (step % eval_every == 0 or finished()):
                record = {"step": step, **evaluator(ema.net)}
                JsonLog(run / "metrics.jsonl", True).write(record)
                if writer:
                    for k, v in record.items():
                        if k != "step":
                            writer.add_scalar(f"metrics/{k}", v, step)
                line = " ".join(f"{k} {v}" for k, v in record.items() if k != "step")
                if evaluator.better(record, best):
                    best = record
                    save_checkpoint(run / "best.pt", **snapshot_payload(), metrics=record)
                    line += " (best so far: best.pt)"
                (bar.write if bar is not None else print)(f"eval step {step}: {line}")
            if opts.stop_at_step is not None and step >= opts.stop_at_step:
                if bar is not None:
                    bar.close()
                return TrainResult(step, run, last_ckpt)
            if finished():
                break
        else:
            epoch += 1
            batch_in_epoch = 0
    if bar is not None:
        bar.close()
    return TrainResult(step, run, last_ckpt)


def load_critics(path: Path, cfg: DMGANConfig, device: torch.device,
                 fmt: torch.memory_format) -> torch.nn.ModuleList:
    """The frozen Ds of a training checkpoint (TrainOptions.critic): they must read the
    words (discriminator.word_match) and judge this run's image sizes."""
    from dmgan.models import build_discriminators

    source, payload = load_checkpoint(path)
    if not source.discriminator.word_match:
        raise CheckpointError(f"--critic {path}: its discriminators do not read the words "
                              f"(discriminator.word_match); dmgan train-critic makes some")
    if (source.generator.image_sizes != cfg.generator.image_sizes
            or source.text != cfg.text):
        raise CheckpointError(f"--critic {path}: its image sizes or text settings are not "
                              f"preset '{cfg.name}'s")
    critics = build_discriminators(source, init=False)
    for i, d in enumerate(critics):
        load_network(d, payload, f"discriminator{i}", str(path))
    if cfg.loss.caption_preference_weight <= 0:
        warnings.warn("--critic judges only the caption-preference term, and "
                      "loss.caption_preference_weight is 0", stacklevel=2)
    return critics.to(device, memory_format=fmt).eval().requires_grad_(False)


# options a run may switch on over a source trained without them, and the key prefixes of
# the parameters they add (which start as this run made them: adding nothing at first)
_GAINABLE = (("generator", "word_context", ("context.",)),
             ("discriminator", "word_match", ("word_",)),
             ("discriminator", "word_context", ("word_context.", "word_places")))


def init_networks(path: Path, cfg: DMGANConfig, g, g_ema, ds) -> int | None:
    """Load a trained run's networks into a new run's: G and EMA G, and the Ds when `path`
    is a training checkpoint (an exported model has none: they start afresh). The networks'
    and text settings must equal `cfg`'s, except that a source trained without
    `generator.word_context`, `discriminator.word_match` or `discriminator.word_context`
    may gain them (their parameters start as this run made them, adding nothing). Returns
    the steps the source was trained."""
    source, payload = load_checkpoint(path)
    gained = {"generator": [], "discriminator": []}
    for section, name, prefixes in _GAINABLE:
        want = getattr(getattr(cfg, section), name)
        if want and not getattr(getattr(source, section), name):
            part = replace(getattr(source, section), **{name: want})
            source = replace(source, **{section: part})
            gained[section] += prefixes
    changes = config_changes(source, cfg, ("text", "generator", "discriminator"))
    if changes:
        raise CheckpointError(f"--init-from {path}: its network settings differ from preset "
                              f"'{cfg.name}'s ({'; '.join(changes)})")

    def with_fresh(name: str, module, prefixes: list[str]) -> dict:
        if not prefixes:
            return payload
        fresh = {k: v for k, v in module.state_dict().items() if k.startswith(tuple(prefixes))}
        nets = payload["networks"]
        return {**payload, "networks": {**nets, name: {**nets[name], **fresh}}}

    nets = payload.get("networks", {})
    load_network(g, with_fresh("generator", g, gained["generator"]), "generator", str(path))
    ema_name = generator_name(payload)  # EMA G's new parts start equal to G's
    load_network(g_ema, with_fresh(ema_name, g, gained["generator"]), ema_name, str(path))
    if all(f"discriminator{i}" in nets for i in range(len(ds))):
        for i, d in enumerate(ds):
            name = f"discriminator{i}"
            load_network(d, with_fresh(name, d, gained["discriminator"]), name, str(path))
    return payload.get("step", payload.get("trained_steps"))


def _best_so_far(run: Path) -> dict | None:
    """The metrics of best.pt when a resumed run has one (so a worse snapshot never replaces it)."""
    path = run / "best.pt"
    if not path.is_file():
        return None
    try:
        from dmgan.checkpoint import load_checkpoint

        return load_checkpoint(path)[1].get("metrics")
    except DMGANError:
        return None


class Pace:
    """Warns when a run is far behind the step rate it should have.

    Two checks: a time budget (`minutes`) that, at the rate measured over the first
    steps, cannot reach `min_steps`; and a rate that falls below a third of the best
    rate this run has had (another job took the machine).
    """

    def __init__(self, clock: Clock, minutes: float | None, min_steps: int | None, *,
                 start_step: int = 0, warmup: int = 20, window: int = 100):
        self.clock, self.minutes, self.min_steps = clock, minutes, min_steps
        self.start, self.warmup, self.window = start_step, warmup, window
        self.t0: float | None = None
        self.mark: tuple[int, float] | None = None
        self.best_rate = 0.0
        self.budget_warned = False
        self.slow_warned = False

    def check(self, step: int) -> list[str]:
        now = self.clock.elapsed()
        done = step - self.start
        out = []
        if done == self.warmup // 2:  # the first steps are slow (allocation); time from here
            self.mark = (step, now)
        if self.mark is None or step - self.mark[0] < self.window // 5:
            return out
        rate = (step - self.mark[0]) / max(now - self.mark[1], 1e-9)
        if (not self.budget_warned and self.minutes is not None and self.min_steps
                and step - self.mark[0] >= self.warmup):
            self.budget_warned = True
            reach = step + rate * max(self.minutes * 60 - now, 0.0)
            if reach < self.min_steps:
                out.append(f"at {rate:.2f} steps/s this {self.minutes:g}-minute budget reaches "
                           f"about {reach:.0f} steps, fewer than the {self.min_steps} this "
                           f"recipe needs to learn; expect results near chance (is another "
                           f"job using the CPU? give more minutes)")
        if step - self.mark[0] >= self.window:
            self.best_rate = max(self.best_rate, rate)
            if not self.slow_warned and rate < self.best_rate / 3:
                self.slow_warned = True
                out.append(f"training slowed to {rate:.2f} steps/s from {self.best_rate:.2f} "
                           f"earlier in this run (another job on the machine?)")
            self.mark = (step, now)
        return out


def _gather_rng(noise_gen: torch.Generator, rt: Runtime):
    state = rng_state(noise_gen)
    if rt.world == 1:
        return state
    import torch.distributed as dist

    states = [None] * rt.world
    dist.all_gather_object(states, state)
    return states


def _fixes_picture(batch, cfg: DMGANConfig, dev: torch.device) -> torch.Tensor | None:
    """(B,) 1 where the caption fixes its picture (shapes attributes), when the pixel term is
    on and some caption leaves things free, or G draws from several noises (every caption
    that fixes its picture keeps its first); None: the pixel term counts every picture."""
    if cfg.loss.pixel_weight <= 0 or not batch.attributes:
        return None
    fixed = [a.get("fixes_picture", True) for a in batch.attributes]
    if all(fixed) and cfg.loss.pixel_candidates == 1:
        return None
    return torch.tensor(fixed, dtype=torch.float32, device=dev)


def _check_finite(record: dict, step: int, run: Path, last: Path | None) -> None:
    bad = [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        where = f"; the last good checkpoint is {last.name}" if last else ""
        raise DMGANError(f"non-finite loss ({', '.join(bad)}) at step {step} in {run}{where}")


@torch.no_grad()
def write_samples(g, text_encoder, batch, noise, vocab, path: Path, dev) -> None:
    from dmgan.viz import caption_grid, save_png

    g.eval()
    text = text_encoder(batch.captions.to(dev), batch.lengths.to(dev))
    out = g(noise.to(dev), text.sentence, text.words, text.mask, sample_condition=False)
    captions = [vocab.decode(c[:n].tolist()) for c, n in zip(batch.captions, batch.lengths, strict=True)]
    save_png(caption_grid(out.images[-1], captions), path)


def _tensorboard(run: Path, enabled: bool):
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise DMGANError("--tensorboard needs the extra: pip install 'dmgan[tensorboard]'") from None
    return SummaryWriter(str(run / "tensorboard"))
