"""The D and G updates of a training step recorded once as a CUDA graph and replayed
(`dmgan train --cuda-graphs`).

A step of a small network (the shapes preset) launches a few thousand kernels that each
finish in microseconds, so on a GPU it is bound by Python and launch overhead. Recorded
once, the whole update (forward passes, backward passes, optimizer steps) is one replay.

What a replay needs, and how it is met here:
- fixed shapes and addresses: the step's inputs are copied into buffers allocated once;
  the words are padded to the preset's longest caption (padding is masked everywhere the
  words are read, so the result is the same function of the caption);
- no host sync inside: the text encoder (its packed LSTM reads the lengths on the host)
  and the noise stay outside, in `train_step`;
- optimizers that keep their step count on the device (`capturable=True`);
- a few eager steps first (on a side stream) so that lazily made state exists.
A batch of another shape (the last one of an epoch, say) runs eagerly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dmgan.errors import DMGANError
from dmgan.nn.text_encoder import TextEncoding
from dmgan.train.step import update_networks


def check_cuda_graphs(device: torch.device, amp: str, world: int) -> None:
    """What --cuda-graphs needs, as one clear error each."""
    if device.type != "cuda":
        raise DMGANError(f"--cuda-graphs needs a CUDA device (this run is on {device})")
    if amp == "fp16":
        raise DMGANError("--cuda-graphs does not go with --amp fp16 (its loss scaler checks "
                         "for overflow on the host every step); use --amp bf16 or off")
    if world > 1:
        raise DMGANError("--cuda-graphs runs in one process; leave it out under torchrun")


@dataclass
class _Inputs:
    real: list[torch.Tensor]
    text: TextEncoding
    lengths: torch.Tensor
    class_ids: torch.Tensor
    wrong: TextEncoding | None  # mismatched captions for D (near misses)
    noises: list[torch.Tensor]
    fixes_picture: torch.Tensor | None = None  # (B,) the captions the pixel term counts

    def tensors(self) -> list[torch.Tensor | None]:
        t, w = self.text, self.wrong
        wrong = [None] * 3 if w is None else [w.words, w.sentence, w.mask]
        return [*self.real, t.words, t.sentence, t.mask, self.lengths, self.class_ids,
                *wrong, *self.noises, self.fixes_picture]

    def signature(self) -> tuple:
        return tuple(None if x is None else (tuple(x.shape), x.stride(), x.dtype)
                     for x in self.tensors())


def pad_words(text: TextEncoding, num_words: int) -> TextEncoding:
    """The words padded to `num_words` positions (zero features, masked as padding), as the
    text encoder gives them past a batch's longest caption."""
    extra = num_words - text.words.shape[2]
    if extra <= 0:
        return text
    return TextEncoding(words=F.pad(text.words, (0, extra)), sentence=text.sentence,
                        mask=F.pad(text.mask, (0, extra), value=True))


def _clone(text: TextEncoding) -> TextEncoding:
    return TextEncoding(words=text.words.clone(), sentence=text.sentence.clone(),
                        mask=text.mask.clone())


class GraphedUpdate:
    """`update_networks` for one preset and batch shape, recorded after `warmup` eager calls
    and replayed from then on. capture=False runs the same buffered calls eagerly (for a
    test of everything but the recording, on any device)."""

    def __init__(self, parts, cfg, rt, amp: str, *, num_words: int, warmup: int = 3,
                 capture: bool = True):
        if capture:
            check_cuda_graphs(rt.device, amp, rt.world)
            for opt in [parts.opt_g, *parts.opt_ds]:
                if not opt.defaults.get("capturable"):
                    raise DMGANError("--cuda-graphs needs optimizers made with capturable=True")
        self.parts, self.cfg, self.rt, self.amp = parts, cfg, rt, amp
        self.num_words, self.warmup, self.capture = num_words, warmup, capture
        self.static: _Inputs | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: dict[str, torch.Tensor] | None = None
        self.calls = 0
        self.eager_calls = 0  # batches of another shape, run without the graph
        self.recorded_at: int | None = None  # the call that recorded the graph

    def __call__(self, *, real, text, lengths, class_ids, wrong, noises,
                 fixes_picture=None) -> dict[str, torch.Tensor]:
        inputs = _Inputs(list(real), pad_words(text, self.num_words), lengths, class_ids,
                         None if wrong is None else pad_words(wrong, self.num_words),
                         list(noises), fixes_picture)
        self.calls += 1
        if self.static is None:  # the first batch fixes the shapes and the buffers
            self.static = _Inputs(
                [x.clone() for x in inputs.real], _clone(inputs.text),
                lengths.clone(), class_ids.clone(),
                None if inputs.wrong is None else _clone(inputs.wrong),
                [z.clone() for z in inputs.noises],
                None if fixes_picture is None else fixes_picture.clone())
        elif inputs.signature() != self.static.signature():
            self.eager_calls += 1
            return self._update(inputs)
        for dst, src in zip(self.static.tensors(), inputs.tensors(), strict=True):
            if dst is not None:
                dst.copy_(src)
        if self.graph is not None:
            self.graph.replay()
            return self._results()
        if not self.capture:
            return self._update(self.static)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            if self.calls <= self.warmup:
                out = self._update(self.static)
            else:  # record (nothing runs yet), then run it once for this batch
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
                    out = self._update(self.static)
                self.graph, self.outputs, self.recorded_at = graph, out, self.calls
        torch.cuda.current_stream().wait_stream(side)
        if self.graph is not None:
            self.graph.replay()
            return self._results()
        return out

    def _results(self) -> dict[str, torch.Tensor]:
        # copies: the recorded outputs are overwritten by the next replay
        return {k: v.clone() for k, v in self.outputs.items()}

    def _update(self, x: _Inputs) -> dict[str, torch.Tensor]:
        return update_networks(self.parts, self.cfg, self.rt, self.amp, real=x.real, text=x.text,
                               lengths=x.lengths, class_ids=x.class_ids, wrong=x.wrong,
                               noises=x.noises, autocast_cache=not self.capture,
                               fixes_picture=x.fixes_picture)
