"""The generator through a compiled or exported graph, for `generate`/`serve --backend`.

- eager: PyTorch as written (the default: measured no slower per image on CPU, and no
  start-up cost; docs/benchmarks.md);
- compile: torch.compile (inductor; dynamic batch and caption length);
- jit: torch.jit.trace, freeze and optimize_for_inference, one trace per (batch size,
  caption length) met;
- onnx: torch.onnx.export (dynamic batch and caption length) run by ONNX Runtime's CPU
  provider (the `onnx` extra: `pip install "dmgan[onnx]"`).

Every backend returns the stage images (B, 3, S_i, S_i) in [-1, 1]; only eager also gives
what the memory did (attention, gates), which `explain` needs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from dmgan.errors import DMGANError

BACKENDS = ("eager", "compile", "jit", "onnx")


class StageImages(nn.Module):
    """The generator as a function of tensors to a tuple of tensors (what tracing and
    export need), with the condition code's mean as generation uses it."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, noise: torch.Tensor, sentence: torch.Tensor, words: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.generator(noise, sentence, words, mask,
                                    sample_condition=False).images)


Runner = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], list[torch.Tensor]]


def check_backend(backend: str, amp: str = "off") -> None:
    """DMGANError for a backend this module does not have, or one that cannot run `amp`."""
    if backend not in BACKENDS:
        raise DMGANError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if amp != "off" and backend in ("jit", "onnx"):
        raise DMGANError(f"--amp {amp} runs with --backend eager or compile, not {backend}")


def build_runner(generator: nn.Module, backend: str, *, amp: str = "off") -> Runner:
    """A function (noise, sentence, words, mask) -> stage images for `backend`, from a
    generator prepared for inference (eval mode; DMGAN.optimize_for_inference)."""
    check_backend(backend, amp)
    net = StageImages(generator.eval()).eval()
    if backend == "eager":
        return lambda *inputs: list(net(*inputs))
    if backend == "compile":
        compiled = torch.compile(net, dynamic=True)
        return lambda *inputs: list(compiled(*inputs))
    if backend == "jit":
        return _jit_runner(net)
    return _onnx_runner(net)


def _jit_runner(net: StageImages) -> Runner:
    traces: dict[tuple, torch.jit.ScriptModule] = {}

    def run(*inputs: torch.Tensor) -> list[torch.Tensor]:
        key = tuple((tuple(x.shape), x.device) for x in inputs)
        if key not in traces:  # a trace holds the shapes it saw (hence no shape warnings)
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                # torch marks TorchScript deprecated (docs/usage.md says so once); the user
                # chose it, so its four deprecation notices are not repeated at every trace
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", FutureWarning)
                traced = torch.jit.trace(net, inputs, check_trace=False)
                traces[key] = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
        return list(traces[key](*inputs))

    return run


def _onnx_runner(net: StageImages) -> Runner:
    try:
        import onnxruntime as ort
    except ImportError:
        raise DMGANError("--backend onnx needs ONNX Runtime: pip install \"dmgan[onnx]\" "
                         "(onnx, onnxscript, onnxruntime)") from None
    device = next(net.parameters()).device
    if device.type != "cpu":
        raise DMGANError("--backend onnx runs on the CPU here; use --device cpu")
    g = net.generator
    example = _example_inputs(g)
    names = [f"image{i}" for i in range(len(g.to_rgb))]
    # the exporter reports its passes on stdout and logs and warns of its own internals: a
    # command's output keeps to what the command says
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="dmgan-onnx-") as folder, \
                contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = str(Path(folder) / "generator.onnx")
            torch.onnx.export(net, example, path, dynamo=True, verbose=False,
                              input_names=["noise", "sentence", "words", "mask"],
                              output_names=names,
                              dynamic_shapes={"noise": {0: "b"}, "sentence": {0: "b"},
                                              "words": {0: "b", 2: "t"},
                                              "mask": {0: "b", 1: "t"}})
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = torch.get_num_threads()
            session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    finally:
        quiet.setLevel(level)
    inputs = [i.name for i in session.get_inputs()]

    def run(*tensors: torch.Tensor) -> list[torch.Tensor]:
        feed = {name: x.cpu().numpy() for name, x in zip(inputs, tensors, strict=True)}
        return [torch.from_numpy(a) for a in session.run(None, feed)]

    return run


def _example_inputs(generator: nn.Module) -> tuple[torch.Tensor, ...]:
    """Inputs of the right sizes for tracing: batch 2, 5 words (both free in the export)."""
    d = generator.ca.fc.in_features
    b, t = 2, 5
    return (torch.zeros(b, generator.z_dim), torch.zeros(b, d), torch.zeros(b, d, t),
            torch.zeros(b, t, dtype=torch.bool))
