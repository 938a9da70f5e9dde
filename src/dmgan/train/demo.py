"""The demo: DM-GAN from scratch on the built-in shapes data, then the oracle's report.

Budget: DAMSM pre-training stops at a target test R@1 and a target near-miss accuracy (its
own caption over the caption with one thing changed: R@1 among random captions is reached
before the DAMSM reads shapes), or at a step cap, or a share of the time; the GAN takes what
is left but a reserve for judging. Encoders that did not learn
are refused before the GAN starts; a GAN budget that cannot reach the steps the recipe
needs is said at once; the report states chance levels and a one-line verdict.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from dmgan.config import DMGANConfig
from dmgan.fileio import atomic_write_text

DAMSM_TARGET_R1 = 0.95  # caption -> image among 100 test images
# the GAN learns shapes only from a DAMSM that reads them (docs/recipes.md, the demo)
DAMSM_TARGET_NEAR_MISS = 0.92
DAMSM_MAX_STEPS = 2500
DAMSM_SHARE = 0.4  # at most this share of the minutes goes to the DAMSM
JUDGE_RESERVE_MIN = 0.5  # minutes kept for judging and writing the report
MIN_GAN_STEPS = 800  # below this the shapes recipe stays near chance (docs/recipes.md)


@dataclass
class DemoOptions:
    out: Path
    minutes: float = 15.0
    judge: int = 500
    seed: int = 0
    min_damsm_r1: float = 0.5


def run_demo(cfg: DMGANConfig, opts: DemoOptions, train_options) -> dict:
    """Pre-train DAMSM, train DM-GAN, judge; returns (and writes) the report.

    `train_options` is a TrainOptions whose data, damsm, out and minutes are set here.
    """
    from dmgan.errors import DMGANError
    from dmgan.train.damsm import load_damsm, pretrain_damsm
    from dmgan.train.gan import train_gan
    from dmgan.train.runs import refuse_other_run

    if train_options.cuda_graphs:  # before the DAMSM's minutes, not after them
        from dmgan.device import resolve_device
        from dmgan.train.graphs import check_cuda_graphs

        check_cuda_graphs(resolve_device(train_options.device), train_options.amp, world=1)
    if opts.minutes <= JUDGE_RESERVE_MIN:
        raise DMGANError(f"--minutes must be more than {JUDGE_RESERVE_MIN} (the time kept for "
                         f"judging); the demo needs about 15 to learn")
    start = time.monotonic()
    run = Path(opts.out)
    if run.is_dir():  # before the DAMSM's minutes: the GAN would refuse the folder after them
        refuse_other_run(run)
    damsm_min = opts.minutes * DAMSM_SHARE
    print(f"demo: {opts.minutes:g} min ({cfg.name}): DAMSM until test R@1 {DAMSM_TARGET_R1} "
          f"and own caption over its near-miss caption {DAMSM_TARGET_NEAR_MISS} (at most "
          f"{DAMSM_MAX_STEPS} steps or {damsm_min:.1f} min), DM-GAN for the rest, then the "
          f"oracle's report", flush=True)
    damsm = pretrain_damsm(cfg, data="shapes", out=run / "damsm", minutes=damsm_min,
                           max_steps=DAMSM_MAX_STEPS, target_r1=DAMSM_TARGET_R1,
                           target_near_miss=DAMSM_TARGET_NEAR_MISS, seed=opts.seed,
                           workers=train_options.workers)
    # refuses encoders below the bar before any GAN work (exit 2 from the CLI)
    load_damsm(damsm.path, cfg, min_r1=opts.min_damsm_r1)
    # judged as it stopped (500 test images): the final numbers, on more, may differ a little
    if not damsm.met_targets and damsm.r_at_1 < DAMSM_TARGET_R1:
        print(f"dmgan: warning: the DAMSM reached test R@1 {damsm.r_at_1:.3f}, short of the "
              f"{DAMSM_TARGET_R1} target, in its budget", flush=True)
    if (not damsm.met_targets and damsm.near_miss is not None
            and damsm.near_miss < DAMSM_TARGET_NEAR_MISS):
        print(f"dmgan: warning: the DAMSM prefers a caption to its one-thing-changed twin "
              f"{damsm.near_miss:.3f} of the time, short of the {DAMSM_TARGET_NEAR_MISS} target, "
              f"in its budget: the GAN learns shapes slower from it", flush=True)
    gan_min = opts.minutes - (time.monotonic() - start) / 60 - JUDGE_RESERVE_MIN
    if gan_min <= 0:
        raise DMGANError("no time left for the GAN after the DAMSM: give more --minutes")
    topts = train_options
    topts.data, topts.damsm, topts.out, topts.resume = "shapes", damsm.path, run, False
    topts.minutes, topts.max_steps, topts.min_damsm_r1 = gan_min, None, opts.min_damsm_r1
    topts.min_steps = MIN_GAN_STEPS
    result = train_gan(cfg, topts)
    report = judge_run(cfg, result.last_checkpoint, n=opts.judge, seed=opts.seed)
    report = {"minutes": opts.minutes, "steps": result.step, "memory": cfg.generator.memory,
              "preset": cfg.name, "damsm_steps": damsm.steps, "damsm_test_r_at_1": damsm.r_at_1,
              "damsm_test_near_miss": damsm.near_miss,
              "wall_minutes": round((time.monotonic() - start) / 60, 2), **report}
    best = run / "best.pt"
    if best.is_file():  # the snapshot chosen on other held-out captions, judged on these
        from dmgan.checkpoint import load_checkpoint

        best_payload = load_checkpoint(best)[1]
        report["best"] = {"step": best_payload["step"],
                          **judge_run(cfg, best, n=opts.judge, seed=opts.seed, live=False)}
    chosen = best if best.is_file() else result.last_checkpoint
    from dmgan.export import export_model

    export_model(chosen, run / "model.pt",
                 note=f"dmgan demo --preset {cfg.name} --minutes {opts.minutes:g} "
                      f"(memory={cfg.generator.memory}); "
                      f"{chosen.name}",
                 scores=(report.get("best") or report)["generator_ema"]["generated"])
    report["model"] = str(run / "model.pt")
    if result.step < MIN_GAN_STEPS:
        report["warning"] = (f"only {result.step} GAN steps (this recipe needs about "
                             f"{MIN_GAN_STEPS} to learn): the machine was slow or busy")
    atomic_write_text(run / "report.json", json.dumps(report, indent=2))
    return report


def judge_run(cfg: DMGANConfig, checkpoint: Path, *, n: int, seed: int,
              live: bool = True) -> dict:
    """The oracle's report on a training checkpoint (dmgan.metrics.evaluate, as `dmgan eval
    --checkpoint CKPT --data shapes --metrics oracle` runs it): EMA (and live) G on `n`
    held-out captions, the real images' ceiling, chance levels and a one-line verdict."""
    from dmgan.metrics.evaluate import evaluate_checkpoint
    from dmgan.metrics.registry import Settings
    from dmgan.metrics.shapes import CHANCE, held_out_captions, real_ceiling, verdict

    report: dict = {"chance": {k: round(v, 3) for k, v in CHANCE.items()}}
    data = held_out_captions(n, seed, cfg.text.words_eval)
    ceiling = real_ceiling(data)
    two = sum(len(data[i].attributes["objects"]) == 2 for i in range(n))
    for name in ("generator_ema", "generator") if live else ("generator_ema",):
        t0 = time.monotonic()
        values, _ = evaluate_checkpoint(checkpoint, "shapes", ["oracle"], network=name,
                                        settings=Settings(seed=seed, progress=False), num_images=n)
        print(f"judged {checkpoint.name} ({name}) on {n} held-out captions in "
              f"{time.monotonic() - t0:.1f} s: {verdict(values['oracle'])}", flush=True)
        report[name] = {"generated": values["oracle"], "real": ceiling, "captions": n,
                        "two_object_captions": two}
        if name == "generator_ema":  # captions as people write them, 8 seeds each, whatever
            # the model learned on (a model of fully specified captions shows its gap there)
            from dmgan.checkpoint import load_checkpoint, load_network
            from dmgan.metrics.compositional import compositional_report
            from dmgan.models import build_generator, build_text_encoder

            _, payload = load_checkpoint(checkpoint)
            g, te = build_generator(cfg, init=False), build_text_encoder(cfg)
            load_network(g, payload, name, str(checkpoint))
            load_network(te, payload, "text_encoder", str(checkpoint))
            report[name]["compositional"] = compositional_report(
                g, te, n=min(n, 200), seed=seed, max_words=cfg.text.words_eval,
                held_out_n=min(n, 200) if cfg.data.shapes_held_out else 0)
    report["verdict"] = "EMA generator: " + verdict(report["generator_ema"]["generated"])
    return report
