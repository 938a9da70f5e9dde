"""Forward pass of a preset's generator (random weights) on CPU: median time, images/s, peak memory.

Variants: contiguous (NCHW), channels_last, channels_last+fold (batch norms folded into
the convs, as DMGAN.optimize_for_inference and the pipeline do); add "+compile" to any of
them for torch.compile (e.g. channels_last+fold+compile). FLOPs are counted as executed
(matmuls and convolutions; not for compiled variants).

Each (batch, layout) case runs in a fresh subprocess so its peak RSS is its own.

    python bench/generator_forward.py --preset bird --batch 1 8 --repeats 5
    python bench/generator_forward.py --device cuda --amp bf16 --batch 64 \
        --layouts channels_last+fold channels_last+fold+compile          # on a GPU
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def run_case(args: argparse.Namespace, batch: int, variant: str) -> dict:
    import torch
    from benchlib import count_flops, machine_record, median_seconds, peak_memory_mib

    from dmgan import build_generator, preset
    from dmgan.device import autocast
    from dmgan.tuning import configure_allocator

    configure_allocator()  # as every dmgan command does ($DMGAN_ALLOCATOR to choose)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    cfg = preset(args.preset)
    g = build_generator(cfg).eval()
    if "fold" in variant:
        from dmgan.nn.fuse import fold_batch_norm

        g = fold_batch_norm(g)
    g = g.to(dev, memory_format=torch.channels_last if "channels_last" in variant else
             torch.contiguous_format)
    run = torch.compile(g) if "compile" in variant else g
    d = cfg.text.embed_dim
    inputs = (torch.randn(batch, cfg.generator.z_dim, device=dev), torch.randn(batch, d, device=dev),
              torch.randn(batch, d, args.words, device=dev),
              torch.zeros(batch, args.words, dtype=torch.bool, device=dev))
    rss_before = peak_memory_mib(dev)

    def forward(_: int = 0) -> None:
        with torch.inference_mode(), autocast(dev, args.amp):  # as generate --amp runs
            run(*inputs)

    med = median_seconds(forward, args.repeats, dev, warmup=2 if "compile" in variant else 1)
    memory = peak_memory_mib(dev)
    flops = count_flops(lambda: forward()) if "compile" not in variant else None
    return {
        "preset": args.preset, "batch": batch, "variant": variant, "device": str(dev),
        "amp": args.amp, "threads": torch.get_num_threads(), "repeats": args.repeats,
        "median_s": round(med, 4), "s_per_image": round(med / batch, 4),
        "images_per_s": round(batch / med, 3),
        "gflop_per_image": None if flops is None else round(flops / batch / 1e9, 2),
        "achieved_gflop_s": None if flops is None else round(flops / med / 1e9, 1),
        "peak_memory_mib": round(memory, 1), "memory_before_mib": round(rss_before, 1),
        "machine": machine_record(dev),  # its conv probe, measured after the timing
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--preset", default="bird")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--words", type=int, default=18)
    p.add_argument("--layouts", nargs="+",
                   default=["contiguous", "channels_last", "channels_last+fold"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", choices=["off", "bf16"], default="off")
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.case:
        b, variant = args.case.split(",")
        print(json.dumps(run_case(args, int(b), variant)))
        return
    for variant in args.layouts:
        for b in args.batch:
            out = subprocess.run([sys.executable, __file__, "--preset", args.preset, "--repeats",
                                  str(args.repeats), "--words", str(args.words), "--device",
                                  args.device, "--amp", args.amp, "--case", f"{b},{variant}"],
                                 capture_output=True, text=True, check=True)
            print(out.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
