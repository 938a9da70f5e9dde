"""One DM-GAN training iteration (D updates, G update with the DAMSM loss through the image
encoder, EMA) on random data: median seconds, images/s, peak RSS.

    python bench/train_step.py --preset bird --batch 10 --repeats 3
    python bench/train_step.py --preset shapes --batch 32 --repeats 10

Random weights; the DAMSM encoders are frozen as in training.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics as st
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--preset", default="bird")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--words", type=int, default=18)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after timing, profile one step and print the top N operators")
    args = p.parse_args()

    from dmgan import build_discriminators, build_generator, preset
    from dmgan.losses import discriminator_loss, generator_loss
    from dmgan.models import build_image_encoder, build_text_encoder
    from dmgan.train.gan import EMA

    torch.manual_seed(0)
    cfg = preset(args.preset)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    g = build_generator(cfg).to(memory_format=fmt).train()
    ds = build_discriminators(cfg).to(memory_format=fmt).train()
    te = build_text_encoder(cfg).eval().requires_grad_(False)
    ie = build_image_encoder(cfg).to(memory_format=fmt).eval().requires_grad_(False)
    ema = EMA(g, cfg.train.ema_decay, False)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_ds = [torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999)) for d in ds]
    b, t = args.batch, args.words
    caps = torch.randint(1, cfg.text.vocab_size, (b, t))
    lens = torch.full((b,), t)
    reals = [torch.rand(b, 3, s, s).mul(2).sub(1).contiguous(memory_format=fmt)
             for s in cfg.generator.image_sizes]
    class_ids = torch.arange(b)

    def step(i: int) -> None:
        with torch.no_grad():
            text = te(caps, lens)
        out = g(torch.randn(b, cfg.generator.z_dim), text.sentence, text.words, text.mask)
        for d, o, real, fake in zip(ds, opt_ds, reals, out.images, strict=True):
            loss = discriminator_loss(d, real, fake, text.sentence).total
            o.zero_grad(set_to_none=True)
            loss.backward()
            o.step()
        ds.requires_grad_(False)
        gl = generator_loss(ds, out, text, lens, ie, cfg.loss, class_ids)
        opt_g.zero_grad(set_to_none=True)
        gl.total.backward()
        ds.requires_grad_(True)
        opt_g.step()
        ema.update(g, i)

    step(0)  # warm-up
    times = []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        step(i + 1)
        times.append(time.perf_counter() - t0)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step(args.repeats + 1)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile))
    med = st.median(times)
    print(json.dumps({"bench": "train_step", "preset": args.preset, "batch": b,
                      "channels_last": args.channels_last, "threads": torch.get_num_threads(),
                      "repeats": args.repeats, "median_s": round(med, 3),
                      "images_per_s": round(b / med, 2),
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


if __name__ == "__main__":
    main()
