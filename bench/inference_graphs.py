"""Generation through a compiled or exported graph against eager PyTorch: a preset's
generator prepared for inference (batch norms folded, channels_last), random weights,
batch 1 and 8; median seconds per batch and the largest difference from eager.

- eager: DMGAN.optimize_for_inference() as `generate` and `serve` run it;
- jit-freeze: torch.jit.trace, then torch.jit.freeze and torch.jit.optimize_for_inference
  (the trace fixes the batch size and caption length it saw);
- compile: torch.compile with the CPU (inductor) backend;
- onnxruntime: torch.onnx.export (dynamo, dynamic batch and caption length) run by
  ONNX Runtime's CPU provider (needs `pip install onnx onnxscript onnxruntime`).

    python bench/inference_graphs.py --preset bird --batch 1 8 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


class FinalImage(torch.nn.Module):
    def __init__(self, g):
        super().__init__()
        self.g = g

    def forward(self, z, sentence, words, mask):
        return self.g(z, sentence, words, mask, sample_condition=False).images[-1]


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
    p.add_argument("--variants", nargs="+", default=["eager", "jit-freeze", "compile", "onnxruntime"])
    args = p.parse_args()
    from benchlib import machine_record

    from dmgan import DMGAN

    torch.manual_seed(0)
    model = DMGAN.from_preset(args.preset).optimize_for_inference(channels_last=True)
    net = FinalImage(model.generator.eval()).eval()
    cfg = model.config
    for b in args.batch:
        d, t = cfg.text.embed_dim, args.words
        inputs = (torch.randn(b, cfg.generator.z_dim), torch.randn(b, d), torch.randn(b, d, t),
                  torch.zeros(b, t, dtype=torch.bool))
        with torch.inference_mode():
            ref = net(*inputs)
        for variant in args.variants:
            row = {"bench": "inference_graphs", "preset": args.preset, "batch": b,
                   "variant": variant, "threads": torch.get_num_threads()}
            try:
                run = build(variant, net, inputs)
            except Exception as exc:  # a variant this machine cannot run is a row, not a crash
                print(json.dumps(row | {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}))
                continue
            with torch.inference_mode():
                out = torch.as_tensor(run())
                sec = median_s(run, args.repeats)
            row |= {"median_s": round(sec, 4), "images_per_s": round(b / sec, 3),
                    "max_abs_diff_vs_eager": float((out - ref).abs().max()),
                    "machine": machine_record(probe=False)}
            print(json.dumps(row), flush=True)


def build(variant: str, net, inputs):
    if variant == "eager":
        return lambda: net(*inputs)
    if variant == "jit-freeze":
        with torch.no_grad():
            traced = torch.jit.trace(net, inputs, check_trace=False)
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
        return lambda: frozen(*inputs)
    if variant == "compile":
        compiled = torch.compile(net)
        return lambda: compiled(*inputs)
    if variant == "onnxruntime":
        import onnxruntime as ort

        path = Path(tempfile.mkdtemp()) / "generator.onnx"
        torch.onnx.export(net, inputs, str(path), dynamo=True,
                          input_names=["z", "sentence", "words", "mask"], output_names=["image"],
                          dynamic_shapes={"z": {0: "b"}, "sentence": {0: "b"},
                                          "words": {0: "b", 2: "t"}, "mask": {0: "b", 1: "t"}})
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feed = {i.name: x.numpy() for i, x in zip(sess.get_inputs(), inputs, strict=True)}
        return lambda: torch.from_numpy(sess.run(None, feed)[0])
    raise SystemExit(f"unknown variant {variant}")


if __name__ == "__main__":
    main()
