"""Forward pass of a preset's generator (random weights) on CPU: median time, images/s, peak memory.

Variants: contiguous (NCHW), channels_last, channels_last+fold (batch norms folded into
the convs, as DMGAN.optimize_for_inference and the pipeline do).

Each (batch, layout) case runs in a fresh subprocess so its peak RSS is its own.

    python bench/generator_forward.py --preset bird --batch 1 8 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def run_case(preset_name: str, batch: int, repeats: int, layout: str, words: int) -> dict:
    import torch

    from dmgan import build_generator, preset

    torch.manual_seed(0)
    cfg = preset(preset_name)
    g = build_generator(cfg).eval()
    if "fold" in layout:
        from dmgan.nn.fuse import fold_batch_norm

        g = fold_batch_norm(g)
    if "channels_last" in layout:
        g = g.to(memory_format=torch.channels_last)
    d = cfg.text.embed_dim
    noise, sent = torch.randn(batch, cfg.generator.z_dim), torch.randn(batch, d)
    words_t = torch.randn(batch, d, words)
    mask = torch.zeros(batch, words, dtype=torch.bool)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    with torch.inference_mode():
        g(noise, sent, words_t, mask)  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            g(noise, sent, words_t, mask)
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {
        "preset": preset_name, "batch": batch, "variant": layout,
        "threads": torch.get_num_threads(), "repeats": repeats,
        "median_s": round(med, 4), "s_per_image": round(med / batch, 4),
        "images_per_s": round(batch / med, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_mib": round(rss_before / 1024, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--preset", default="bird")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--words", type=int, default=18)
    p.add_argument("--layouts", nargs="+",
                   default=["contiguous", "channels_last", "channels_last+fold"])
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.case:
        b, layout = args.case.split(",")
        print(json.dumps(run_case(args.preset, int(b), args.repeats, layout, args.words)))
        return
    for layout in args.layouts:
        for b in args.batch:
            out = subprocess.run([sys.executable, __file__, "--preset", args.preset, "--repeats",
                                  str(args.repeats), "--words", str(args.words),
                                  "--case", f"{b},{layout}"],
                                 capture_output=True, text=True, check=True)
            print(out.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
