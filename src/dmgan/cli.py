"""`dmgan <command>`: thin entry points over the library.

User mistakes (DMGANError) print one line to stderr and exit with status 2, no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from dmgan.config import PRESETS, preset
from dmgan.errors import DMGANError


def _int_in(lo: int, hi: int | None = None):
    """An argparse type: an integer in [lo, hi] (a usage error, exit 2, otherwise)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < lo or (hi is not None and value > hi):
            where = f">= {lo}" if hi is None else f"between {lo} and {hi}"
            raise argparse.ArgumentTypeError(f"{value} is out of range: must be {where}")
        return value

    return parse


def _float_in(lo: float, hi: float | None = None, *, open_low: bool = False):
    """An argparse type: a finite number in [lo, hi] ((lo, hi] with open_low)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        low_ok = value > lo if open_low else value >= lo
        if not (low_ok and (hi is None or value <= hi)) or value != value:
            bound = f"> {lo}" if open_low else f">= {lo}"
            raise argparse.ArgumentTypeError(
                f"{text} is out of range: must be {bound}" + (f" and <= {hi}" if hi is not None else ""))
        return value

    return parse


def SEED(text: str) -> int:  # noqa: N802 (an argparse type, named like the others)
    """Any integer; reduced modulo 2**32 into the range every generator here accepts
    (so -1 is 4294967295, and 2**32 + 5 is 5)."""
    try:
        return int(text) % 2**32
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
POSITIVE = _int_in(1)
NON_NEGATIVE = _int_in(0)
MINUTES = _float_in(0.0, open_low=True)
FRACTION = _float_in(0.0, 1.0)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _info_model(args: argparse.Namespace) -> None:
    """A trained model file: its configuration, provenance, scores and vocabulary."""
    from dmgan.checkpoint import load_checkpoint
    from dmgan.pipeline import bundled_model_path

    path = bundled_model_path() if args.checkpoint == "bundled" else Path(args.checkpoint)
    if not path.is_file():
        raise DMGANError(f"model file not found: {path}")
    cfg, payload = load_checkpoint(path)
    vocab = [w for w in payload.get("vocab") or [] if w != "<end>"]
    info = {"file": str(path), "preset": cfg.name,
            "image_sizes": list(cfg.generator.image_sizes),
            "trained_steps": payload.get("trained_steps", payload.get("step")),
            "scores": payload.get("scores"), "provenance": payload.get("provenance"),
            "vocabulary": vocab}
    if args.json:
        print(json.dumps(info | {"config": cfg.to_dict()}, indent=2))
        return
    label = "the bundled model" if args.checkpoint == "bundled" else str(path)
    print(f"{label}: preset {cfg.name}, images "
          f"{'/'.join(map(str, cfg.generator.image_sizes))} px, "
          f"trained {info['trained_steps']} steps")
    if info["provenance"]:
        print(f"  made by: {info['provenance']}")
    if info["scores"]:
        print("  scores: " + json.dumps(info["scores"]))
    print(f"vocabulary ({len(vocab)} words; others are ignored with a warning):")
    print("  " + " ".join(vocab))


def cmd_info(args: argparse.Namespace) -> None:
    from dmgan.models import build_discriminators, build_generator, build_text_encoder

    if args.checkpoint:
        _info_model(args)
        return
    cfg = preset(args.preset)
    nets = {
        "text_encoder": build_text_encoder(cfg),
        "generator": build_generator(cfg, init=False),
        **{f"discriminator{i}": d for i, d in enumerate(build_discriminators(cfg, init=False))},
    }
    if args.json:
        print(json.dumps({"config": cfg.to_dict(),
                          "parameters": {k: _count(v) for k, v in nets.items()}}, indent=2))
        return
    print(f"preset {cfg.name}: images {'/'.join(map(str, cfg.generator.image_sizes))} px, "
          f"vocabulary {cfg.text.vocab_size} words")
    for section, values in cfg.to_dict().items():
        if isinstance(values, dict):
            print(f"  {section}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    print("parameters:")
    for name, net in nets.items():
        print(f"  {name:16s} {_count(net):>12,d}")


def cmd_check_released(args: argparse.Namespace) -> None:
    from dmgan.models import build_discriminators, build_generator, build_text_encoder
    from dmgan.released import load_released

    cfg = preset(args.preset)
    jobs = []
    if args.netG:
        jobs.append(("netG", build_generator(cfg, init=False), args.netG))
    if args.text_encoder:
        jobs.append(("text encoder", build_text_encoder(cfg), args.text_encoder))
    if args.netD:
        ds = build_discriminators(cfg, init=False)
        if len(args.netD) != len(ds):
            raise DMGANError(f"preset '{cfg.name}' has {len(ds)} discriminators; "
                             f"--netD got {len(args.netD)} files")
        jobs += [(f"netD{i}", d, p) for i, (d, p) in enumerate(zip(ds, args.netD, strict=True))]
    if not jobs:
        raise DMGANError("nothing to check: give --netG, --text-encoder and/or --netD")
    for label, net, path in jobs:
        load_released(net, path, what=f"the '{cfg.name}' {label}")
        print(f"ok  {label:13s} {path}  ({_count(net):,d} parameters)")


def _generate_for_eval(args: argparse.Namespace, out_dir: Path) -> tuple[list, object]:
    """Images for the test split of --data from --checkpoint; returns (items, model)."""
    import numpy as np

    from dmgan.api import DMGAN
    from dmgan.data.datasets import open_dataset
    from dmgan.evaluate import CaptionedImage
    from dmgan.imageio import save_image

    model = DMGAN.from_checkpoint(args.checkpoint)
    cfg = model.config
    data = open_dataset(args.data, "test", image_sizes=cfg.generator.image_sizes[-1:],
                        max_words=cfg.text.words_eval)
    if len(data.vocab) != cfg.text.vocab_size:
        raise DMGANError(f"the dataset's vocabulary has {len(data.vocab)} words, the checkpoint's "
                         f"text encoder {cfg.text.vocab_size}: not the data it was trained on")
    n = min(args.num_images or len(data), len(data))
    out_dir.mkdir(parents=True, exist_ok=True)
    items, lines = [], []
    for start in range(0, n, args.batch_size):
        idx = list(range(start, min(n, start + args.batch_size)))
        recs = [data.records[i] for i in idx]
        caps = [r.captions[0][: cfg.text.words_eval] for r in recs]
        ids = np.zeros((len(caps), max(map(len, caps))), dtype=np.int64)
        for k, c in enumerate(caps):
            ids[k, : len(c)] = c
        out = model.generate(torch.from_numpy(ids), torch.tensor([len(c) for c in caps]),
                             seed=args.seed + start)
        for k, i in enumerate(idx):
            name = f"{i:06d}.png"
            save_image(out.images[-1][k], out_dir / name)
            items.append(CaptionedImage(out_dir / name, caps[k], recs[k].class_id))
            lines.append(json.dumps({"image": name, "caption": data.vocab.decode(caps[k]),
                                     "class": recs[k].class_id}))
    (out_dir / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return items, model


def cmd_eval(args: argparse.Namespace) -> None:
    import shutil
    import tempfile

    if bool(args.images) == bool(args.checkpoint):
        raise DMGANError("give either --images DIR or --checkpoint CKPT with --data DIR")
    if args.checkpoint and not args.data:
        raise DMGANError("--checkpoint needs --data (the dataset whose test captions to use)")
    for flag, value in (("--save-images", args.save_images), ("--cache-dir", args.cache_dir)):
        if value and Path(value).exists() and not Path(value).is_dir():
            raise DMGANError(f"{flag} {value} is a file, not a folder")
    tmp = None
    if args.checkpoint and not args.save_images:
        tmp = tempfile.mkdtemp(prefix="dmgan-eval-")
    try:  # the temporary folder goes whatever fails, generation included
        _eval(args, Path(args.save_images or tmp) if args.checkpoint else None)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def _eval(args: argparse.Namespace, generated: Path | None) -> None:
    from dmgan.evaluate import append_results, damsm_r_precision, evaluate_folder, format_table

    items, model = None, None
    if generated is not None:
        images = generated
        items, model = _generate_for_eval(args, images)
    else:
        images = Path(args.images)

    r_fn = None
    if "r_precision" in args.metrics:
        from dmgan.models import build_image_encoder, build_text_encoder
        from dmgan.released import load_released

        if not args.image_encoder:
            raise DMGANError("R-precision needs --image-encoder (the DAMSM image encoder file)")
        cfg = model.config if model is not None else preset(args.preset)
        if model is not None:
            text_encoder = model.text_encoder
        else:
            if not (args.text_encoder and args.vocab and args.captions):
                raise DMGANError("R-precision on a folder needs --captions, --vocab and "
                                 "--text-encoder (and --preset)")
            text_encoder = load_released(build_text_encoder(cfg), args.text_encoder,
                                         what=f"the '{cfg.name}' DAMSM text encoder")
        image_encoder = load_released(build_image_encoder(cfg), args.image_encoder,
                                      what=f"the '{cfg.name}' DAMSM image encoder")
        if items is None:
            from dmgan.data.vocab import Vocabulary
            from dmgan.evaluate import read_captions_jsonl

            items = read_captions_jsonl(args.captions, images, Vocabulary.load(args.vocab))

        def r_fn():
            return damsm_r_precision(items, text_encoder, image_encoder,
                                     max_words=cfg.text.words_eval, folds=args.folds,
                                     legacy_off_by_one=args.legacy_off_by_one,
                                     batch_size=args.batch_size, device=args.device)

    rows = evaluate_folder(images, metrics=args.metrics, mode_name=args.mode,
                           inception_weights=args.inception_weights, ref_stats=args.ref_stats,
                           real=args.real, batch_size=args.batch_size, device=args.device,
                           splits=args.splits, cache_dir=args.cache_dir, r_precision_fn=r_fn)
    print(format_table(rows))
    if args.out:
        append_results(args.out, rows)
        print(f"appended {len(rows)} result(s) to {args.out}")


def cmd_shapes_oracle(args: argparse.Namespace) -> None:
    from dmgan.data.oracle import accuracy, load_oracle, save_oracle, train_oracle
    from dmgan.data.shapes import ShapesDataset

    if args.train:
        oracle = train_oracle(steps=args.steps, seed=args.seed, log_every=max(1, args.steps // 10))
        acc = accuracy(oracle, ShapesDataset(split="test", length=args.held_out, image_sizes=(64,)))
        report = {"held_out_accuracy": acc, "held_out": f"{args.held_out} test-split images, seed 0",
                  "steps": args.steps, "batch_size": 64, "lr": 2e-3, "seed": args.seed,
                  "command": " ".join(["dmgan", *sys.argv[1:]])}
        if args.out:
            save_oracle(oracle, args.out, report=report)
    else:
        oracle, report = load_oracle(args.oracle)
        acc = accuracy(oracle, ShapesDataset(split="test", length=args.held_out, image_sizes=(64,)))
    print("held-out accuracy of the shapes oracle on real images:")
    for k, v in acc.items():
        print(f"  {k:10s} {v:.4f}")


def _config_for(args: argparse.Namespace):
    """The preset, with the vocabulary size of --data when it differs (custom datasets)."""
    import dataclasses

    cfg = preset(args.preset)
    if getattr(args, "vocab_size", None):
        cfg = cfg.replace(text=dataclasses.replace(cfg.text, vocab_size=args.vocab_size))
    if getattr(args, "batch_size", None):
        cfg = cfg.replace(train=dataclasses.replace(cfg.train, batch_size=args.batch_size),
                          damsm=dataclasses.replace(cfg.damsm, batch_size=args.batch_size))
    if getattr(args, "no_memory", False):
        cfg = cfg.replace(generator=dataclasses.replace(cfg.generator, memory=False))
    if getattr(args, "set", None):
        from dmgan.config import override

        cfg = override(cfg, args.set)
    return cfg


def cmd_pretrain_damsm(args: argparse.Namespace) -> None:
    from dmgan.train.damsm import pretrain_damsm

    result = pretrain_damsm(_config_for(args), data=args.data, out=Path(args.out),
                            epochs=args.epochs, minutes=args.minutes, max_steps=args.max_steps,
                            seed=args.seed, device=args.device, workers=args.workers,
                            target_r1=args.target_r1)
    print(f"saved {result.path} ({result.steps} steps, test R@1 {result.r_at_1:.3f})")


def _train_options(args: argparse.Namespace, **over):
    from dmgan.train.gan import TrainOptions

    return TrainOptions(
        data=args.data, out=Path(args.out), damsm=Path(args.damsm) if args.damsm else None,
        resume=args.resume, max_steps=args.max_steps, minutes=args.minutes, seed=args.seed,
        device=args.device, amp=args.amp, compile=args.compile,
        channels_last=args.channels_last == "on",
        workers=args.workers, log_every=args.log_every, sample_every=args.sample_every,
        ckpt_every=args.ckpt_every, keep=args.keep, tensorboard=args.tensorboard,
        eval_every=args.eval_every, eval_captions=args.eval_captions,
        inception_weights=getattr(args, "inception_weights", None),
        min_damsm_r1=args.min_damsm_r1, **over)


def cmd_train(args: argparse.Namespace) -> None:
    from dmgan.train.gan import train_gan

    if args.resume and not Path(args.out).is_dir():
        raise DMGANError(f"--resume: run folder not found: {args.out}")
    result = train_gan(_config_for(args), _train_options(args))
    if result.last_checkpoint is not None:
        print(f"step {result.step}; last checkpoint {result.last_checkpoint}")


def cmd_demo(args: argparse.Namespace) -> None:
    from dmgan.train.demo import DemoOptions, run_demo

    cfg = _config_for(argparse.Namespace(preset="shapes", no_memory=args.no_memory, set=args.set))
    args.data, args.damsm, args.resume, args.max_steps = "shapes", None, False, None
    report = run_demo(cfg, DemoOptions(out=Path(args.out), minutes=args.minutes, judge=args.judge,
                                       seed=args.seed, min_damsm_r1=args.min_damsm_r1),
                      _train_options(args))
    print(json.dumps(report, indent=2))
    print(report["verdict"])
    samples = sorted((Path(args.out) / "samples").glob("step-*.png"))
    if samples:
        print(f"sample grid: {samples[-1]}")


def _read_captions(args: argparse.Namespace) -> list[str]:
    captions = list(args.captions or [])
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise DMGANError(f"caption file not found: {path}")
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DMGANError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        captions += [line.strip() for line in text.splitlines() if line.strip()]
    if not captions:
        raise DMGANError("give a caption (or --file with one caption a line)")
    if any(len(c) > args.max_chars for c in captions):
        raise DMGANError(f"a caption is longer than {args.max_chars} characters")
    return captions


def _pipeline(args: argparse.Namespace):
    from dmgan.pipeline import DMGANPipeline

    return DMGANPipeline.from_pretrained(args.checkpoint, device=args.device)


def _output_paths(out: Path, n: int) -> list[Path]:
    if not out.parent.is_dir():
        raise DMGANError(f"output folder does not exist: {out.parent}")
    if out.suffix.lower() != ".png":
        raise DMGANError(f"the output must be a .png file, got {out.name}")
    return [out] if n == 1 else [out.with_name(f"{out.stem}_{k:03d}.png") for k in range(n)]


def _warnings_to_stderr(fn):
    """Run fn(); its warnings (unknown words) become one-line messages on stderr."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fn()
        finally:
            for message in dict.fromkeys(str(w.message) for w in caught):  # each once
                print(f"dmgan: warning: {message}", file=sys.stderr)
    return result


GENERATE_CHUNK = 32  # images per forward pass and per write: memory stays flat for any -n


def cmd_generate(args: argparse.Namespace) -> None:
    from PIL import Image

    from dmgan.viz import save_png

    captions = _read_captions(args)
    pipe = _pipeline(args)
    paths = iter(_output_paths(Path(args.output), len(captions) * args.n))
    for caption in captions:  # every caption checked before any image is written
        pipe.vocab.encode(caption)

    def run() -> None:
        for caption in captions:
            for start in range(0, args.n, GENERATE_CHUNK):
                count = min(GENERATE_CHUNK, args.n - start)
                out = pipe(caption, seed=args.seed, num_images=count, first_image=start)
                for final, stages in zip(out.images, out.stage_images, strict=True):
                    if args.stages:
                        size = final.size[0]
                        strip = Image.new("RGB", (size * len(stages), size), "white")
                        for k, img in enumerate(stages):
                            strip.paste(img.resize((size, size), Image.NEAREST), (k * size, 0))
                        final = strip
                    path = next(paths)
                    save_png(final, path)
                    print(path)

    _warnings_to_stderr(run)


def cmd_explain(args: argparse.Namespace) -> None:

    from dmgan.viz import explanation_figure, save_png

    args.file = None
    captions = _read_captions(args)
    if len(captions) != 1:
        raise DMGANError("explain takes one caption")
    pipe = _pipeline(args)
    out = _warnings_to_stderr(lambda: pipe(captions[0], seed=args.seed, explain=True))
    if not out.attention[0]:
        raise DMGANError("this model has no memory stage to explain")
    fig = explanation_figure(captions[0], out.stage_images[0], out.words[0], out.attention[0],
                             out.writing_gates[0], out.response_gates[0])
    path = _output_paths(Path(args.output), 1)[0]
    save_png(fig, path)
    print(path)


def cmd_convert_released(args: argparse.Namespace) -> None:
    from dmgan.api import DMGAN
    from dmgan.data.vocab import load_captions_pickle
    from dmgan.models import build_image_encoder
    from dmgan.released import load_released

    captions = load_captions_pickle(args.captions)
    cfg = preset(args.preset)
    if len(captions.vocab) != cfg.text.vocab_size:
        raise DMGANError(f"{args.captions} has {len(captions.vocab)} words; preset '{cfg.name}' "
                         f"expects {cfg.text.vocab_size}")
    model = DMGAN.from_released(cfg.name, netG=args.netG, text_encoder=args.text_encoder)
    model.vocab = captions.vocab.words
    extra = {}
    if args.image_encoder:
        enc = load_released(build_image_encoder(cfg), args.image_encoder,
                            what=f"the '{cfg.name}' DAMSM image encoder")
        extra["image_encoder"] = enc
    from dmgan.checkpoint import save_checkpoint

    save_checkpoint(args.output, config=cfg,
                    networks={"text_encoder": model.text_encoder, "generator": model.generator,
                              **extra},
                    vocab=list(model.vocab), source="released DM-GAN files",
                    converted_from={"netG": str(args.netG), "text_encoder": str(args.text_encoder),
                                    "image_encoder": str(args.image_encoder),
                                    "captions": str(args.captions)})
    print(f"wrote {args.output}")


def cmd_export(args: argparse.Namespace) -> None:
    """A training checkpoint -> a small inference checkpoint (EMA generator, text encoder,
    vocabulary), optionally in half precision."""
    from dmgan.checkpoint import export_model

    export_model(Path(args.checkpoint), Path(args.output), note=args.note or "", half=args.half)
    print(f"wrote {args.output}")


def cmd_serve(args: argparse.Namespace) -> None:
    try:
        import uvicorn

        from dmgan.serve.app import create_app
    except ImportError:
        raise DMGANError('dmgan serve needs the extra: pip install "dmgan[serve]"') from None
    app = create_app(_pipeline(args), max_chars=args.max_chars, max_images=args.max_images,
                     queue_size=args.queue)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


def _add_train_flags(s: argparse.ArgumentParser) -> None:
    s.add_argument("--seed", type=SEED, default=0, help="any integer (taken modulo 2**32)")
    s.add_argument("--device", default="auto", help="auto, cpu or cuda")
    s.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    s.add_argument("--compile", action="store_true", help="torch.compile the generator")
    s.add_argument("--channels-last", default="on", choices=["on", "off"],
                   help="memory layout of images and features (on: measured faster)")
    s.add_argument("--workers", type=NON_NEGATIVE, default=2, help="data loader processes")
    s.add_argument("--log-every", type=POSITIVE, default=50)
    s.add_argument("--sample-every", type=POSITIVE, default=500)
    s.add_argument("--ckpt-every", type=POSITIVE, default=500)
    s.add_argument("--keep", type=POSITIVE, default=3, help="checkpoints kept")
    s.add_argument("--tensorboard", action="store_true")
    s.add_argument("--eval-every", type=NON_NEGATIVE,
                   help="judge the EMA generator every N steps into metrics.jsonl and keep the "
                        "best snapshot as best.pt (default: with every checkpoint; 0: never)")
    s.add_argument("--eval-captions", type=POSITIVE, default=200,
                   help="fixed held-out captions judged at each evaluation")
    s.add_argument("--min-damsm-r1", type=FRACTION, default=0.5,
                   help="refuse DAMSM encoders whose recorded test R@1 is below this")
    s.add_argument("--minutes", type=MINUTES, help="stop after this much time")
    s.add_argument("--no-memory", action="store_true",
                   help="ablation: memory stages pass image features straight through")
    _add_set_flag(s)


def _add_set_flag(s: argparse.ArgumentParser) -> None:
    s.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="change one config value of the preset, e.g. --set loss.damsm_weight=20 "
                        "(repeatable; dmgan info --preset P lists the fields)")


def build_parser() -> argparse.ArgumentParser:
    from dmgan import __version__

    p = argparse.ArgumentParser(prog="dmgan", description="DM-GAN text-to-image synthesis")
    p.add_argument("--version", action="version", version=f"dmgan {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("info", help="print a preset's configuration and network sizes, or a "
                       "model file's provenance and vocabulary")
    s.add_argument("--preset", default="bird", choices=sorted(PRESETS), help="preset to describe")
    s.add_argument("--checkpoint", nargs="?", const="bundled", metavar="MODEL",
                   help="describe a model file instead (no value: the bundled shapes model), "
                        "with the words it knows")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("check-released",
                       help="check that released DM-GAN .pth files load into a preset")
    s.add_argument("--preset", required=True, choices=sorted(PRESETS))
    s.add_argument("--netG", help="released generator, e.g. bird_DMGAN.pth")
    s.add_argument("--text-encoder", help="released DAMSM text encoder, e.g. text_encoder200.pth")
    s.add_argument("--netD", nargs="+", help="released netD0.pth netD1.pth netD2.pth")
    s.set_defaults(func=cmd_check_released)

    s = sub.add_parser("eval", help="FID, Inception Score and R-precision of generated images")
    s.add_argument("--images", help="folder of generated images")
    s.add_argument("--checkpoint", help="generate the images with this dmgan checkpoint ...")
    s.add_argument("--data", help="... from the test captions of this dataset folder")
    s.add_argument("--num-images", type=POSITIVE, help="with --checkpoint: how many (default: all)")
    s.add_argument("--save-images", help="with --checkpoint: keep the images in this folder")
    s.add_argument("--seed", type=SEED, default=0, help="any integer (taken modulo 2**32)")
    s.add_argument("--metrics", nargs="+", default=["fid", "is"],
                   choices=["fid", "is", "r_precision"])
    s.add_argument("--mode", default="pytorch-fid", choices=["pytorch-fid", "dmgan-legacy"],
                   help="preprocessing and weights (recorded with every result)")
    s.add_argument("--inception-weights", help="pt_inception-2015-12-05-*.pth (pytorch-fid) or "
                   "inception_v3_google-*.pth (dmgan-legacy)")
    s.add_argument("--ref-stats", help="reference statistics .npz (mu, sigma)")
    s.add_argument("--real", help="folder of real images (statistics cached)")
    s.add_argument("--cache-dir", default=os.path.join(os.path.expanduser("~"), ".cache", "dmgan"))
    s.add_argument("--splits", type=POSITIVE, default=10, help="Inception Score splits")
    s.add_argument("--captions", help="R-precision on a folder: captions.jsonl (image, caption, class)")
    s.add_argument("--vocab", help="R-precision on a folder: vocabulary JSON")
    s.add_argument("--preset", default="bird", choices=sorted(PRESETS))
    s.add_argument("--text-encoder", help="DAMSM text encoder (released format)")
    s.add_argument("--image-encoder", help="DAMSM image encoder (released format)")
    s.add_argument("--folds", type=POSITIVE, default=10)
    s.add_argument("--legacy-off-by-one", action="store_true",
                   help="reproduce the released R-precision slice (drops a sample per fold)")
    s.add_argument("--batch-size", type=POSITIVE, default=50)
    s.add_argument("--device", default="cpu")
    s.add_argument("--out", help="append results as JSON lines to this file")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("generate", help="images from sentences")
    s.add_argument("captions", nargs="*", help="one or more captions")
    s.add_argument("--file", help="a text file, one caption a line")
    s.add_argument("--checkpoint", help="our checkpoint (default: the bundled shapes model)")
    s.add_argument("--seed", type=SEED, default=0, help="any integer (taken modulo 2**32)")
    s.add_argument("-n", type=POSITIVE, default=1, help="images per caption")
    s.add_argument("--stages", action="store_true", help="every stage's image, side by side")
    s.add_argument("-o", "--output", default="out.png", help="PNG path (numbered when several)")
    s.add_argument("--device", default="cpu")
    s.add_argument("--max-chars", type=POSITIVE, default=2000, help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_generate)

    s = sub.add_parser("explain", help="what the memory chose for one caption (the paper's Fig. 6)")
    s.add_argument("captions", nargs=1, metavar="caption")
    s.add_argument("--checkpoint", help="our checkpoint (default: the bundled shapes model)")
    s.add_argument("--seed", type=SEED, default=0, help="any integer (taken modulo 2**32)")
    s.add_argument("-o", "--output", default="explain.png")
    s.add_argument("--device", default="cpu")
    s.add_argument("--max-chars", type=POSITIVE, default=2000, help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_explain)

    s = sub.add_parser("serve", help="a web page and HTTP API (needs the 'serve' extra)")
    s.add_argument("--checkpoint", help="our checkpoint (default: the bundled shapes model)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=_int_in(1, 65535), default=8000)
    s.add_argument("--device", default="cpu")
    s.add_argument("--max-chars", type=POSITIVE, default=300, help="longest caption accepted")
    s.add_argument("--max-images", type=POSITIVE, default=4, help="most images per request")
    s.add_argument("--queue", type=NON_NEGATIVE, default=8, help="requests allowed to wait")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("convert-released", help="released bird/coco files -> one dmgan checkpoint")
    s.add_argument("--preset", required=True, choices=["bird", "coco"])
    s.add_argument("--netG", required=True, help="bird_DMGAN.pth / coco_DMGAN.pth")
    s.add_argument("--text-encoder", required=True, help="text_encoder200.pth")
    s.add_argument("--image-encoder", help="image_encoder200.pth (for R-precision)")
    s.add_argument("--captions", required=True, help="the dataset's captions.pickle (vocabulary)")
    s.add_argument("-o", "--output", required=True)
    s.set_defaults(func=cmd_convert_released)

    s = sub.add_parser("export", help="a training checkpoint -> a small model file")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--half", action="store_true", help="store the generator in fp16")
    s.add_argument("--note", help="provenance text stored in the file")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("pretrain-damsm", help="train the DAMSM text and image encoders")
    s.add_argument("--preset", required=True, choices=sorted(PRESETS))
    s.add_argument("--data", required=True, help="'shapes' (built in) or a dataset folder")
    s.add_argument("--out", required=True, help="folder for damsm.pt and its log")
    s.add_argument("--epochs", type=POSITIVE)
    s.add_argument("--minutes", type=MINUTES)
    s.add_argument("--max-steps", type=POSITIVE)
    s.add_argument("--target-r1", type=_float_in(0.0, 1.0, open_low=True),
                   help="stop once the test R@1 (checked every 200 steps) reaches this")
    s.add_argument("--vocab-size", type=_int_in(2), help="override the preset's (custom datasets)")
    s.add_argument("--batch-size", type=_int_in(2),
                   help="images per step (>= 2: mismatched pairs and batch norm need two)")
    s.add_argument("--seed", type=SEED, default=0, help="any integer (taken modulo 2**32)")
    s.add_argument("--device", default="cpu")
    s.add_argument("--workers", type=NON_NEGATIVE, default=2)
    _add_set_flag(s)
    s.set_defaults(func=cmd_pretrain_damsm)

    s = sub.add_parser("train", help="train DM-GAN (the released recipe)")
    s.add_argument("--preset", required=True, choices=sorted(PRESETS))
    s.add_argument("--data", required=True, help="'shapes' (built in) or a dataset folder")
    s.add_argument("--damsm", help="DAMSM checkpoint from dmgan pretrain-damsm")
    s.add_argument("--out", required=True, help="run folder")
    s.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    s.add_argument("--max-steps", type=POSITIVE)
    s.add_argument("--vocab-size", type=_int_in(2), help="override the preset's (custom datasets)")
    s.add_argument("--batch-size", type=_int_in(2),
                   help="images per step (>= 2: mismatched pairs and batch norm need two)")
    s.add_argument("--inception-weights",
                   help="Inception weights (pytorch-fid) for FID at each evaluation (not shapes)")
    _add_train_flags(s)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("demo", help="the built-in shapes data: pre-train DAMSM, train DM-GAN, "
                       "report attribute accuracy (about --minutes on 2 CPU cores)")
    s.add_argument("--out", default="runs/demo")
    s.add_argument("--judge", type=POSITIVE, default=500, help="held-out captions judged")
    _add_train_flags(s)
    s.set_defaults(func=cmd_demo, minutes=15.0)

    s = sub.add_parser("shapes-oracle", help="accuracy of the shapes oracle (or train a new one)")
    s.add_argument("--oracle", help="oracle file (default: the bundled one)")
    s.add_argument("--train", action="store_true", help="train a new oracle")
    s.add_argument("--steps", type=POSITIVE, default=3000)
    s.add_argument("--seed", type=SEED, default=1234, help="any integer (taken modulo 2**32)")
    s.add_argument("--held-out", type=POSITIVE, default=2000)
    s.add_argument("--out", help="with --train: save the oracle here")
    s.set_defaults(func=cmd_shapes_oracle)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except DMGANError as exc:
        print(f"dmgan: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dmgan: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
