"""One DM-GAN training iteration (three D updates, the G update with the DAMSM loss through
the image encoder, EMA) on random data: median seconds, images/s, peak memory, and the
FLOP rate against a measured conv peak (model FLOP utilisation).

    python bench/train_step.py --preset bird --batch 10 --repeats 3
    python bench/train_step.py --preset bird --batch 10 --layout contiguous
    python bench/train_step.py --preset shapes --batch 32 --repeats 10
    python bench/train_step.py --preset shapes --batch 32 --set generator.num_stages=2
    python bench/train_step.py --device cuda --amp bf16 --compile --batch 64   # on a GPU
    python bench/train_step.py --device cuda --preset shapes --batch 32 --cuda-graphs

FLOPs are counted (torch.utils.flop_counter) over one step as executed: matmuls and
convolutions, forward and backward. The peak is a 3x3 channels_last conv measured on the
same device and dtype (bench/benchlib.py), or --peak-tflops (e.g. a data-sheet number).
Random weights; the DAMSM encoders are frozen as in training.
"""

from __future__ import annotations

import argparse
import json

import torch
from benchlib import (
    conv_peak_flops,
    count_flops,
    machine_record,
    median_seconds,
    peak_memory_mib,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="bird")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--words", type=int, default=18)
    p.add_argument("--layout", choices=["channels_last", "contiguous"], default="channels_last")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off")
    p.add_argument("--compile", action="store_true", help="torch.compile the generator")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="replay the D and G updates as a recorded CUDA graph (train --cuda-graphs)")
    p.add_argument("--peak-tflops", type=float, help="peak to report utilisation against")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="change a preset field, as `dmgan train --set` does (repeatable)")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after timing, profile one step and print the top N operators")
    args = p.parse_args()

    from dmgan import build_discriminators, build_generator, preset
    from dmgan.config import override
    from dmgan.models import build_image_encoder, build_text_encoder
    from dmgan.train.gan import EMA, GANParts, train_step
    from dmgan.train.graphs import GraphedUpdate
    from dmgan.train.runtime import Runtime
    from dmgan.tuning import configure_allocator

    configure_allocator()  # as every dmgan command does ($DMGAN_ALLOCATOR to choose)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    cfg = override(preset(args.preset), args.set)
    fmt = torch.channels_last if args.layout == "channels_last" else torch.contiguous_format
    g = build_generator(cfg).to(dev, memory_format=fmt).train()
    ds = build_discriminators(cfg).to(dev, memory_format=fmt).train()
    te = build_text_encoder(cfg).to(dev).eval().requires_grad_(False)
    ie = build_image_encoder(cfg).to(dev, memory_format=fmt).eval().requires_grad_(False)
    ema = EMA(g, cfg.train.ema_decay, False)
    g_run = torch.compile(g) if args.compile else g
    adam = {"lr": 2e-4, "betas": (0.5, 0.999), "foreach": True, "capturable": args.cuda_graphs}
    opt_g = torch.optim.Adam(g.parameters(), **adam)
    opt_ds = [torch.optim.Adam(d.parameters(), **adam) for d in ds]
    scaler = torch.amp.GradScaler("cuda", enabled=args.amp == "fp16")
    b, t = args.batch, args.words
    caps = torch.randint(1, cfg.text.vocab_size, (b, t), device=dev)
    lens = torch.full((b,), t, device=dev)
    reals = [torch.rand(b, 3, s, s, device=dev).mul(2).sub(1).contiguous(memory_format=fmt)
             for s in cfg.generator.image_sizes]
    class_ids = torch.arange(b, device=dev)
    # the shapes preset's near-miss captions (train.near_miss_negatives): random ones here
    negatives = torch.randint(1, cfg.text.vocab_size, (b, t), device=dev)
    use_negatives = cfg.train.near_miss_negatives
    dtype = {"off": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]
    parts = GANParts(g=g, g_run=g_run, ds=ds, opt_g=opt_g, opt_ds=opt_ds, ema=ema,
                     text_encoder=te, image_encoder=ie, scaler=scaler)
    rt = Runtime(dev)
    noise_gen = torch.Generator().manual_seed(0)
    graphed = GraphedUpdate(parts, cfg, rt, args.amp, num_words=cfg.text.words_train) \
        if args.cuda_graphs else None

    def step(i: int, graphed=graphed) -> None:
        # the training loop's own step (dmgan.train.gan.train_step), on random data
        train_step(parts, cfg, rt, real=reals, captions=caps, lengths=lens, class_ids=class_ids,
                   noise_gen=noise_gen, step=i, amp=args.amp,
                   negatives=negatives if use_negatives else None,
                   negative_lengths=lens if use_negatives else None, graphed=graphed)

    # a recorded graph: its eager warm-up calls and the recording are left out of the timing
    med = median_seconds(step, args.repeats, dev, warmup=graphed.warmup + 2 if graphed else 1)
    memory = peak_memory_mib(dev)
    flops = count_flops(lambda: step(0, graphed=None))  # a replay shows no operators to count
    peak = args.peak_tflops * 1e12 if args.peak_tflops else conv_peak_flops(dev, dtype)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
        with profile(activities=acts) as prof:
            step(0)
        key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=args.profile))
    print(json.dumps({
        "bench": "train_step", "preset": args.preset, "set": args.set, "batch": b, "layout": args.layout,
        "device": str(dev), "amp": args.amp, "compile": args.compile,
        "cuda_graphs": args.cuda_graphs, "steps_per_s": round(1 / med, 2),
        "threads": torch.get_num_threads(), "repeats": args.repeats, "median_s": round(med, 3),
        "images_per_s": round(b / med, 2), "gflop_per_image": round(flops / b / 1e9, 1),
        "achieved_gflop_s": round(flops / med / 1e9, 1), "peak_gflop_s": round(peak / 1e9, 1),
        "peak_from": "--peak-tflops" if args.peak_tflops else "conv probe",
        "utilisation": round(flops / med / peak, 3), "peak_memory_mib": round(memory),
        "machine": machine_record(dev, probe=False) | (
            {} if args.peak_tflops else {"conv_probe_gflops": round(peak / 1e9, 1)})}))


if __name__ == "__main__":
    main()
