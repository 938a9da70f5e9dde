"""`dmgan <command>`: thin entry points over the library.

User mistakes (DMGANError) print one line to stderr and exit with status 2, no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from dmgan.config import PRESETS, preset
from dmgan.errors import DMGANError


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def cmd_info(args: argparse.Namespace) -> None:
    from dmgan.models import build_discriminators, build_generator, build_text_encoder

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


def build_parser() -> argparse.ArgumentParser:
    from dmgan import __version__

    p = argparse.ArgumentParser(prog="dmgan", description="DM-GAN text-to-image synthesis")
    p.add_argument("--version", action="version", version=f"dmgan {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("info", help="print a preset's configuration and network sizes")
    s.add_argument("--preset", default="bird", choices=sorted(PRESETS))
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("check-released",
                       help="check that released DM-GAN .pth files load into a preset")
    s.add_argument("--preset", required=True, choices=sorted(PRESETS))
    s.add_argument("--netG", help="released generator, e.g. bird_DMGAN.pth")
    s.add_argument("--text-encoder", help="released DAMSM text encoder, e.g. text_encoder200.pth")
    s.add_argument("--netD", nargs="+", help="released netD0.pth netD1.pth netD2.pth")
    s.set_defaults(func=cmd_check_released)
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
