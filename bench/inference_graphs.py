"""Generation through a compiled or exported graph against eager PyTorch: a preset's
generator prepared for inference (batch norms folded, channels_last), random weights,
batch 1 and 8; median seconds per batch, the time to the first batch (compiling or
exporting) and the largest difference from eager. The variants are `generate --backend`'s
(dmgan.inference):

- eager: DMGAN.optimize_for_inference() as `generate` and `serve` run it;
- jit: torch.jit.trace, then torch.jit.freeze and torch.jit.optimize_for_inference
  (one trace per batch size and caption length);
- compile: torch.compile with the CPU (inductor) backend, dynamic shapes;
- onnx: torch.onnx.export (dynamo, dynamic batch and caption length) run by ONNX
  Runtime's CPU provider (needs `pip install ".[onnx]"`).

    python bench/inference_graphs.py --preset bird --batch 1 8 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def median_s(fn, repeats: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="bird")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--words", type=int, default=18)
    p.add_argument("--variants", nargs="+", default=["eager", "jit", "compile", "onnx"])
    args = p.parse_args()
    from benchlib import machine_record

    from dmgan import DMGAN
    from dmgan.inference import build_runner

    torch.manual_seed(0)
    model = DMGAN.from_preset(args.preset).optimize_for_inference(channels_last=True)
    cfg = model.config
    d, t = cfg.text.embed_dim, args.words
    inputs = {b: (torch.randn(b, cfg.generator.z_dim), torch.randn(b, d), torch.randn(b, d, t),
                  torch.zeros(b, t, dtype=torch.bool)) for b in args.batch}
    with torch.inference_mode():
        ref = {b: model.generator(*x, sample_condition=False).images[-1] for b, x in inputs.items()}
    for variant in args.variants:
        try:
            t0 = time.perf_counter()
            runner = build_runner(model.generator, variant)
            built = time.perf_counter() - t0
        except Exception as exc:  # a variant this machine cannot run is a row, not a crash
            print(json.dumps({"bench": "inference_graphs", "preset": args.preset,
                              "variant": variant, "error": f"{type(exc).__name__}: {exc}"[:300]}))
            continue
        for b, x in inputs.items():
            with torch.inference_mode():
                t0 = time.perf_counter()
                out = runner(*x)[-1]  # the first call compiles, traces or has been exported
                first = time.perf_counter() - t0
                sec = median_s(lambda x=x, run=runner: run(*x), args.repeats)
            print(json.dumps({"bench": "inference_graphs", "preset": args.preset, "batch": b,
                              "variant": variant, "threads": torch.get_num_threads(),
                              "median_s": round(sec, 4), "images_per_s": round(b / sec, 3),
                              "build_s": round(built, 2), "first_call_s": round(first, 2),
                              "max_abs_diff_vs_eager": float((out - ref[b]).abs().max()),
                              "machine": machine_record(probe=False)}), flush=True)


if __name__ == "__main__":
    main()
