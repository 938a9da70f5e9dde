"""Where the time of a whole `dmgan train` run goes: the run as a user starts it (the preset's
recipe, its critic when given, data loading, logging, samples, checkpoints, evaluation at
their intervals), in this process, with the wall clock split into phases.

Phases (seconds, share of the wall time, milliseconds per step):
  setup        from the call to the first step (data, encoders, networks, critic)
  data wait    the training loop waiting on the loader for a batch
  step         the training step (train.step.train_step), split into
    text encoder, G forward, D forwards (their image features), D heads (match logits with
    their word reading, unconditional logits; the critics' too), critic forwards, image encoder (DAMSM),
    DAMSM losses (word and sentence), backward, optimizer steps, EMA, and "other" (the
    other losses' arithmetic, noise, bookkeeping)
  samples, checkpoints (ckpt-*.pt and best.pt), evaluation (the snapshot metrics)
  loop other   logging, progress, the rest of the loop

Timing wraps the package's functions and the networks' forwards from outside (nothing in
the package knows about it); a forward nested in another is counted once, in the outer.
CPU runs are synchronous; on a GPU every boundary synchronises, which slows the run.

    python bench/train_profile.py --damsm runs/damsm/damsm.pt --critic runs/critic/critic.pt \\
        --steps 300 --every 150 --threads 2

Prints one JSON line (the phases, steps/s, the machine) after a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


class Phases:
    """Accumulated wall time per phase; nested timers count only in the outermost."""

    def __init__(self, device):
        self.seconds: dict[str, float] = defaultdict(float)
        self.device, self.depth = device, 0
        self.in_step, self.nest = False, 0  # inside the step; inside a timed part of it

    def _sync(self):
        from benchlib import sync

        sync(self.device)

    @contextmanager
    def _measured(self, name: str, level: str):
        """Time the block into `name`, one level deeper in `level` ("depth" or "nest")."""
        self._sync()
        t0 = time.perf_counter()
        setattr(self, level, getattr(self, level) + 1)
        try:
            yield
        finally:
            setattr(self, level, getattr(self, level) - 1)
            self._sync()
            self.seconds[name] += time.perf_counter() - t0

    @contextmanager
    def timed(self, name: str, outer_only: bool = True):
        """A phase of the loop (counted in the outermost only, unless outer_only=False)."""
        if outer_only and self.depth:
            yield
            return
        with self._measured(name, "depth"):
            yield

    @contextmanager
    def part(self, name: str):
        """A part of the step (outside the step, or inside another part: not counted)."""
        if not self.in_step or self.nest:
            yield
            return
        with self._measured(name, "nest"):
            yield

    def wrap(self, fn, name: str, outer_only: bool = True):
        def timed_call(*args, **kwargs):
            with self.timed(name, outer_only):
                return fn(*args, **kwargs)

        return timed_call


def _forward_timer(phases: Phases, module, name: str) -> None:
    """Time a module's forward from its pre-hook to its hook (outermost forward only)."""
    state = {}

    def pre(_mod, _inputs):
        if phases.in_step and not phases.nest:  # not inside another timed part
            phases._sync()
            state["t0"] = time.perf_counter()
            phases.nest += 1

    def post(_mod, _inputs, _output):
        if "t0" in state:
            phases._sync()
            phases.seconds[name] += time.perf_counter() - state.pop("t0")
            phases.nest -= 1

    module.register_forward_pre_hook(pre)
    module.register_forward_hook(post)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--damsm", required=True, help="a DAMSM of the preset (dmgan pretrain-damsm)")
    p.add_argument("--critic", help="a critic (dmgan train-critic), as the bundled recipe has")
    p.add_argument("--preset", default="shapes")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--every", type=int, default=500,
                   help="sample, checkpoint and evaluation interval (train's default: 500)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    args = p.parse_args()

    import torch
    from benchlib import machine_record

    from dmgan.config import override, preset
    from dmgan.losses import generator as generator_losses
    from dmgan.metrics.snapshot import SnapshotEvaluator
    from dmgan.nn.discriminator import Discriminator
    from dmgan.train import gan
    from dmgan.train import step as step_module

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = override(preset(args.preset), args.set)
    device = torch.device("cuda" if args.device.startswith("cuda") else "cpu")
    phases = Phases(device)
    counts = defaultdict(int)

    # --- the loop's phases: the package's functions as gan.py calls them ----------------
    real_loader, real_step = gan.epoch_loader, gan.train_step

    def timed_loader(*a, **k):
        order, loader = real_loader(*a, **k)

        class Timed:
            def __iter__(self):
                it = iter(loader)
                while True:
                    with phases.timed("data wait"):
                        try:
                            batch = next(it)
                        except StopIteration:
                            return
                    yield batch

        return order, Timed()

    def timed_step(*a, **k):
        counts["steps"] += 1
        if counts["steps"] == 1:
            phases.seconds["setup"] = time.perf_counter() - t_start
        with phases.timed("step"):
            phases.in_step = True
            try:
                return real_step(*a, **k)
            finally:
                phases.in_step = False

    gan.epoch_loader, gan.train_step = timed_loader, timed_step
    gan.write_samples = phases.wrap(gan.write_samples, "samples")
    gan.save_run_checkpoint = phases.wrap(gan.save_run_checkpoint, "checkpoints")
    gan.save_checkpoint = phases.wrap(gan.save_checkpoint, "checkpoints")
    SnapshotEvaluator.__call__ = phases.wrap(SnapshotEvaluator.__call__, "evaluation")

    # --- inside the step: the networks' forwards, backward, optimizers, EMA -------------
    real_build_g, real_build_d = gan.build_generator, gan.build_discriminators
    real_damsm, real_critics = gan.load_damsm, gan.load_critics

    def build_g(c):
        g = real_build_g(c)
        _forward_timer(phases, g, "G forward")
        return g

    def build_d(c, *a, **k):
        ds = real_build_d(c, *a, **k)
        for d in ds:
            _forward_timer(phases, d, "D forwards")
        return ds

    def damsm(*a, **k):
        text, image, words = real_damsm(*a, **k)
        _forward_timer(phases, text, "text encoder")
        _forward_timer(phases, image, "image encoder")
        return text, image, words

    def critics(*a, **k):
        cs = real_critics(*a, **k)
        for c in cs:
            _forward_timer(phases, c, "critic forwards")
        return cs

    gan.build_generator, gan.build_discriminators = build_g, build_d
    gan.load_damsm, gan.load_critics = damsm, critics
    real_backward, real_adam = torch.Tensor.backward, torch.optim.Adam.step

    def backward(self, *a, **k):
        with phases.part("backward"):
            return real_backward(self, *a, **k)

    def adam_step(self, *a, **k):
        with phases.part("optimizer steps"):
            return real_adam(self, *a, **k)

    torch.Tensor.backward = backward
    torch.optim.Adam.step = adam_step

    def as_part(fn, name):
        def timed_call(*a, **k):
            with phases.part(name):
                return fn(*a, **k)

        return timed_call

    # the Ds' heads (match logits with their word reading) and the DAMSM losses: methods and
    # functions, not module forwards
    Discriminator.cond_logits = as_part(Discriminator.cond_logits, "D heads")
    Discriminator.uncond_logits = as_part(Discriminator.uncond_logits, "D heads")
    generator_losses.words_loss = as_part(generator_losses.words_loss, "DAMSM losses")
    generator_losses.sentence_loss = as_part(generator_losses.sentence_loss, "DAMSM losses")
    real_ema = step_module.EMA.update

    def ema_update(self, *a, **k):
        with phases.part("EMA"):
            return real_ema(self, *a, **k)

    step_module.EMA.update = ema_update

    with tempfile.TemporaryDirectory(prefix="dmgan-profile-") as tmp:
        opts = gan.TrainOptions(
            data="shapes", out=Path(tmp) / "run", damsm=Path(args.damsm),
            critic=Path(args.critic) if args.critic else None, max_steps=args.steps,
            workers=args.workers, device=args.device, amp=args.amp, log_every=50,
            sample_every=args.every, ckpt_every=args.every, eval_every=args.every,
            min_damsm_r1=0.0, progress=False, threads=args.threads)
        t_start = time.perf_counter()
        gan.train_gan(cfg, opts)
        wall = time.perf_counter() - t_start

    steps = counts["steps"]
    inside = ["text encoder", "G forward", "D forwards", "D heads", "critic forwards",
              "image encoder", "DAMSM losses", "backward", "optimizer steps", "EMA"]
    step_other = phases.seconds["step"] - sum(phases.seconds[k] for k in inside)
    outer = ["setup", "data wait", "step", "samples", "checkpoints", "evaluation"]
    loop_other = wall - sum(phases.seconds[k] for k in outer)
    rows = [(k, phases.seconds[k]) for k in outer[:3]]
    rows += [("  " + k, phases.seconds[k]) for k in inside] + [("  other", step_other)]
    rows += [(k, phases.seconds[k]) for k in outer[3:]] + [("loop other", loop_other)]
    print(f"{'phase':<22}{'s':>9}{'share':>8}{'ms/step':>10}")
    for name, s in rows:
        print(f"{name:<22}{s:9.1f}{s / wall:8.1%}{1000 * s / steps:10.1f}")
    looped = wall - phases.seconds["setup"]
    print(json.dumps({"bench": "train_profile", "preset": args.preset, "steps": steps,
                      "every": args.every, "critic": bool(args.critic), "sets": args.set,
                      "workers": args.workers, "amp": args.amp, "wall_s": round(wall, 1),
                      "steps_per_s": round(steps / looped, 3),
                      "phases_s": {name.strip(): round(s, 2) for name, s in rows},
                      "machine": machine_record(device, probe=False)}))


if __name__ == "__main__":
    main()
