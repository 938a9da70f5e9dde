"""`dmgan <command>`: each command takes its parsed arguments (dmgan.arguments) and calls
one library function.

User mistakes (DMGANError) print one line to stderr and exit with status 2, no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

from dmgan.arguments import build_parser
from dmgan.errors import DMGANError


def _train_options(args: argparse.Namespace, **fixed):
    """TrainOptions from the arguments of the same names."""
    from dmgan.train.gan import TrainOptions

    names = {f.name for f in dataclasses.fields(TrainOptions)}
    values = {k: v for k, v in vars(args).items() if k in names} | fixed
    for key in ("out", "damsm", "init_from", "critic"):
        if values.get(key) is not None:
            values[key] = Path(values[key])
    return TrainOptions(**values)


def _config(args: argparse.Namespace):
    from dmgan.config import config_for

    return config_for(getattr(args, "preset", "shapes"), vocab_size=getattr(args, "vocab_size", None),
                      batch_size=getattr(args, "batch_size", None),
                      memory=not getattr(args, "no_memory", False), sets=args.set)


def _warnings_to_stderr(fn):
    """Run fn(); its warnings (unknown words) become one-line messages on stderr, each once."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return fn()
        finally:
            for message in dict.fromkeys(str(w.message) for w in caught):
                print(f"dmgan: warning: {message}", file=sys.stderr)


def _pipeline(args: argparse.Namespace):
    from dmgan.device import resolve_device
    from dmgan.pipeline import DMGANPipeline

    device = resolve_device(args.device)  # refused in the CLI's words (--device ...)
    return DMGANPipeline.from_pretrained(args.checkpoint, device=device, amp=args.amp,
                                         backend=args.backend)


# --- the commands -----------------------------------------------------------------------

def cmd_info(args):
    from dmgan.info import describe_model, describe_preset

    if args.config_reference:
        from dmgan.config import config_reference

        print(config_reference())
    elif args.checkpoint:
        path = None if args.checkpoint == "bundled" else args.checkpoint
        print(describe_model(path, as_json=args.json))
    else:
        print(describe_preset(args.preset, as_json=args.json))


def cmd_check_released(args):
    from dmgan.released import check_released_files

    print("\n".join(check_released_files(args.preset, netG=args.netG,
                                         text_encoder=args.text_encoder, netD=args.netD)))


def cmd_eval(args):
    from dmgan.device import resolve_device
    from dmgan.metrics.evaluate import evaluate_command
    from dmgan.metrics.registry import Settings, append_results, format_table

    settings = Settings(mode=args.mode, inception_weights=args.inception_weights,
                        ref_stats=args.ref_stats, real=args.real, batch_size=args.batch_size,
                        device=resolve_device(args.device), splits=args.splits,
                        cache_dir=args.cache_dir, folds=args.folds,
                        legacy_off_by_one=args.legacy_off_by_one, seed=args.seed,
                        clip_model=args.clip_model)
    rows = evaluate_command(
        settings=settings, images=args.images, checkpoint=args.checkpoint, data=args.data,
        metrics=args.metrics, num_images=args.num_images, save_images=args.save_images,
        captions=args.captions, vocab=args.vocab, text_encoder=args.text_encoder,
        image_encoder=args.image_encoder, preset_name=args.preset)
    print(format_table(rows))
    if args.out:
        append_results(args.out, rows)
        print(f"appended {len(rows)} result(s) to {args.out}")


def cmd_shapes_oracle(args):
    from dmgan.metrics.oracle import oracle_report

    acc = oracle_report(oracle=args.oracle, train=args.train, steps=args.steps, seed=args.seed,
                        held_out=args.held_out, out=args.out,
                        command=" ".join(["dmgan", *sys.argv[1:]]))
    print("held-out accuracy of the shapes oracle on real images:")
    print("\n".join(f"  {k:10s} {v:.4f}" for k, v in acc.items()))


def cmd_pretrain_damsm(args):
    from dmgan.train.damsm import pretrain_damsm

    result = pretrain_damsm(_config(args), data=args.data, out=Path(args.out), epochs=args.epochs,
                            minutes=args.minutes, max_steps=args.max_steps, seed=args.seed,
                            device=args.device, workers=args.workers, threads=args.threads,
                            target_r1=args.target_r1, target_near_miss=args.target_near_miss,
                            init_from=args.init_from, command=args.command_line)
    near_miss = "" if result.near_miss is None else f", near misses {result.near_miss:.3f}"
    print(f"saved {result.path} ({result.steps} steps, test R@1 {result.r_at_1:.3f}{near_miss})")


def cmd_train_critic(args):
    from dmgan.train.critic import train_critic

    result = train_critic(_config(args), damsm=args.damsm, out=Path(args.out),
                          max_steps=args.max_steps, seed=args.seed, device=args.device,
                          threads=args.threads, log_every=args.log_every,
                          init_from=args.init_from, command=args.command_line,
                          resume=args.resume, minutes=args.minutes)
    if result.path is None:
        return
    print(f"saved {result.path} ({result.steps} steps; held-out preference of the true "
          f"caption, last D: over places traded {result.places:.3f}, colours traded "
          f"{result.colours:.3f})")


def cmd_train(args):
    from dmgan.train.gan import train_gan

    if args.resume and not Path(args.out).is_dir():
        raise DMGANError(f"--resume: run folder not found: {args.out}")
    result = train_gan(_config(args), _train_options(args), command=args.command_line)
    if result.last_checkpoint is not None:
        print(f"step {result.step}; last checkpoint {result.last_checkpoint}")


def cmd_demo(args):
    from dmgan.train.demo import DemoOptions, run_demo

    report = run_demo(_config(args), DemoOptions(out=Path(args.out), minutes=args.minutes,
                                                 judge=args.judge, seed=args.seed,
                                                 min_damsm_r1=args.min_damsm_r1),
                      _train_options(args, data="shapes"))
    print(json.dumps(report, indent=2))
    print(report["verdict"])


def cmd_generate(args):
    from dmgan.generate import ViewOptions, generate_files, read_captions

    captions = read_captions(args.captions, args.file)
    pipe = _pipeline(args)
    view = ViewOptions(stages=args.stages, size=args.size, resample=args.resample)
    paths = _warnings_to_stderr(lambda: generate_files(
        pipe, captions, seed=args.seed, n=args.n, output=args.output, outdir=args.outdir,
        view=view, model_label=args.checkpoint or "bundled"))
    print("\n".join(map(str, paths)))


def cmd_explain(args):
    from dmgan.generate import explain_file, read_captions

    caption = read_captions([args.caption], None)[0]
    pipe = _pipeline(args)
    print(_warnings_to_stderr(lambda: explain_file(pipe, caption, seed=args.seed,
                                                   output=args.output)))


def cmd_convert_released(args):
    from dmgan.released import convert_released

    for path in convert_released(args.preset, netG=args.netG, text_encoder=args.text_encoder,
                                 image_encoder=args.image_encoder, captions=args.captions,
                                 output=args.output):
        print(f"wrote {path}")


def cmd_export(args):
    from dmgan.export import export_model

    for path in export_model(Path(args.checkpoint), Path(args.output), note=args.note or "",
                             half=args.half, command=args.command_line):
        print(f"wrote {path}")


def cmd_serve(args):
    try:
        import uvicorn

        from dmgan.serve.app import create_app
    except ImportError:
        raise DMGANError('dmgan serve needs the extra: pip install "dmgan[serve]"') from None
    app = create_app(_pipeline(args), max_chars=args.max_chars, max_images=args.max_images,
                     queue_size=args.queue)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


COMMANDS = {
    "generate": cmd_generate, "explain": cmd_explain, "serve": cmd_serve, "demo": cmd_demo,
    "train": cmd_train, "pretrain-damsm": cmd_pretrain_damsm,
    "train-critic": cmd_train_critic, "eval": cmd_eval,
    "info": cmd_info, "export": cmd_export, "convert-released": cmd_convert_released,
    "check-released": cmd_check_released, "shapes-oracle": cmd_shapes_oracle,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(argv[0], list(COMMANDS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f" (choose from {', '.join(COMMANDS)})"
        print(f"dmgan: error: unknown command '{argv[0]}'{hint}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["dmgan", *argv])  # recorded in what the command writes
    try:
        from dmgan.tuning import configure_allocator

        configure_allocator()  # before the first large tensor (see dmgan.device)
        COMMANDS[args.command](args)
    except DMGANError as exc:
        print(f"dmgan: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dmgan: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
