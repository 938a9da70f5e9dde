"""The dynamic-memory refinement stage of DM-GAN.

Dimension letters: B batch, C image-feature channels (gf_dim), D word-feature size,
T words, H/W spatial size of the stage's input, Q = H*W pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dmgan.nn.layers import ResBlock, UpBlock, layout


@dataclass
class StageOutput:
    features: torch.Tensor  # (B, C, 2H, 2W) image features for the next stage
    attention: torch.Tensor  # (B, T, H, W) key addressing: softmax over words per pixel
    writing_gate: torch.Tensor  # (B, 1, T) how much of each word is written into memory
    response_gate: torch.Tensor  # (B, 1, H, W) how much of what was read replaces the image


def released_row_mask(mask: torch.Tensor, num_pixels: int) -> torch.Tensor:
    """The padding mask as the released code applied it, (B, T) -> (B, T, Q).

    The released code tiled the (B, T) mask with `mask.repeat(Q, 1)` against scores laid
    out as (B*Q, T), so pixel q of sample b is masked with the padding of sample
    (b*Q + q) mod B. The released weights were trained under this, so it is the default
    for the released presets; with one caption (B = 1) it equals the exact mask.
    """
    b = mask.shape[0]
    if b == 1:
        return mask.unsqueeze(2)
    # the released tiling itself: row b*Q + q of the (Q*B, T) repeat is sample b's pixel q
    # (the same as indexing rows (b*Q + q) mod B, and exportable: no remainder by the batch)
    return mask.repeat(num_pixels, 1).view(b, num_pixels, -1).transpose(1, 2)


def _check_inputs(h: torch.Tensor, words: torch.Tensor, mask: torch.Tensor) -> None:
    b = h.shape[0]
    if words.shape[0] != b or mask.shape != (b, words.shape[2]):
        raise ValueError(f"words {tuple(words.shape)} / mask {tuple(mask.shape)} do not "
                         f"fit image features {tuple(h.shape)}")


@dataclass
class ReadOutput:
    fused: torch.Tensor | None  # (B, C, H, W) image features with what was read gated in
    read: torch.Tensor  # (B, C, H, W) what was read
    attention: torch.Tensor  # (B, T, H, W)
    writing_gate: torch.Tensor  # (B, 1, T) (all ones without the writing gate)
    response_gate: torch.Tensor | None  # (B, 1, H, W); None without the response gate


class MemoryRead(nn.Module):
    """Memory writing -> key addressing -> value reading -> response gate, at one resolution.

    The read path of a dynamic-memory stage (MemoryStage adds its residual blocks and the
    up-sampling); also the optional word reading inside the initial stage (InitStage).
    """

    def __init__(
        self,
        *,
        gf_dim: int,  # C: image-feature channels in and out
        embed_dim: int,  # D: word-feature size
        mask_mode: str = "released",  # "released" (interleaved rows) or "exact"
        writing_gate: bool = True,  # False: the memory is written from the words alone
        response_gate: bool = True,  # False: no fusion here; the caller takes (h, read)
    ):
        super().__init__()
        if mask_mode not in ("released", "exact"):
            raise ValueError(f"mask_mode must be 'released' or 'exact', got {mask_mode!r}")
        self.mask_mode = mask_mode
        mem = gf_dim * 2  # memory slot size
        self.writing_gated, self.response_gated = writing_gate, response_gate
        if writing_gate:
            self.word_gate = nn.Linear(embed_dim, 1, bias=False)  # writing gate, word part
            self.image_gate = nn.Linear(gf_dim, 1, bias=False)  # writing gate, image part
            self.image_memory = nn.Conv1d(gf_dim, mem, kernel_size=1)  # M_r
        self.word_memory = nn.Conv1d(embed_dim, mem, kernel_size=1)  # M_w
        self.key = nn.Conv1d(mem, gf_dim, kernel_size=1)
        self.value = nn.Conv1d(mem, gf_dim, kernel_size=1)
        if response_gate:
            self.response_gate = nn.Conv2d(gf_dim * 2, 1, kernel_size=1)

    def read(self, h: torch.Tensor, words: torch.Tensor, mask: torch.Tensor) -> ReadOutput:
        """h: (B, C, H, W), words: (B, D, T), mask: (B, T) True at padding."""
        b, c, height, width = h.shape
        _check_inputs(h, words, mask)
        # Memory writing: the gate sees each word and the pooled image (no gradient to it).
        from_words = F.relu(self.word_memory(words))  # (B, 2C, T)
        if self.writing_gated:
            pooled = h.mean(dim=(2, 3)).detach()  # (B, C)
            gate = self.word_gate(words.transpose(1, 2)).transpose(1, 2)  # (B, 1, T)
            writing_gate = torch.sigmoid(gate + self.image_gate(pooled).unsqueeze(2))
            from_image = F.relu(self.image_memory(pooled.unsqueeze(2)))  # (B, 2C, 1), per word
            memory = from_words * writing_gate + from_image * (1.0 - writing_gate)
        else:  # the ablation: every word written whole, nothing of the image
            writing_gate = words.new_ones(b, 1, words.shape[2])
            memory = from_words

        # Key addressing: per pixel, a softmax over the words (padding excluded).
        key = F.relu(self.key(memory))  # (B, C, T)
        value = F.relu(self.value(memory))  # (B, C, T)
        pixels = h.reshape(b, c, height * width)  # (B, C, Q)
        scores = torch.bmm(key.transpose(1, 2), pixels)  # (B, T, Q)
        if self.mask_mode == "released":
            pad = released_row_mask(mask, height * width)
        else:
            pad = mask.unsqueeze(2)
        attention = torch.softmax(scores.masked_fill(pad, float("-inf")), dim=1)

        # Value reading and the response gate.
        if layout(h) == torch.channels_last:  # read in h's layout: (B, Q, C) -> (B, C, H, W) view
            read = torch.bmm(attention.transpose(1, 2), value.transpose(1, 2)).transpose(1, 2)
        else:
            read = torch.bmm(value, attention)
        read = read.view(b, c, height, width)  # (B, C, H, W)
        fused = response_gate = None
        if self.response_gated:
            response_gate = torch.sigmoid(self.response_gate(torch.cat((h, read), dim=1)))
            fused = h * (1.0 - response_gate) + read * response_gate
        return ReadOutput(fused=fused, read=read, attention=attention.view(b, -1, height, width),
                          writing_gate=writing_gate, response_gate=response_gate)


class MemoryStage(MemoryRead):
    """Memory read (MemoryRead) -> residual blocks -> x2 up-sampling."""

    def __init__(
        self,
        *,
        gf_dim: int,  # C: image-feature channels in and out
        embed_dim: int,  # D: word-feature size
        res_blocks: int,  # residual blocks after the response gate
        mask_mode: str = "released",  # "released" (interleaved rows) or "exact"
        use_memory: bool = True,  # False: image features go straight to the residual blocks
        writing_gate: bool = True,  # False: the paper's ablation without the writing gate
        response_gate: bool = True,  # False: the paper's ablation without the response gate
    ):
        super().__init__(gf_dim=gf_dim, embed_dim=embed_dim, mask_mode=mask_mode,
                         writing_gate=writing_gate, response_gate=response_gate)
        self.use_memory = use_memory
        self.residual = nn.Sequential(*[ResBlock(channels=gf_dim * 2) for _ in range(res_blocks)])
        self.upsample = UpBlock(in_ch=gf_dim * 2, out_ch=gf_dim)

    def forward(self, h: torch.Tensor, words: torch.Tensor, mask: torch.Tensor) -> StageOutput:
        """h: (B, C, H, W), words: (B, D, T), mask: (B, T) True at padding."""
        b, _, height, width = h.shape
        if not self.use_memory:
            _check_inputs(h, words, mask)
            out = self.upsample(self.residual(torch.cat((h, h), dim=1)))
            return StageOutput(features=out, attention=h.new_zeros(b, words.shape[2], height, width),
                               writing_gate=h.new_zeros(b, 1, words.shape[2]),
                               response_gate=h.new_zeros(b, 1, height, width))
        r = self.read(h, words, mask)
        if r.fused is not None:  # the gated fusion, doubled to the residual blocks' width
            out = self.upsample(self.residual(torch.cat((r.fused, r.fused), dim=1)))
            gate = r.response_gate
        else:  # without the response gate: image features and what was read side by side
            out = self.upsample(self.residual(torch.cat((h, r.read), dim=1)))
            gate = h.new_full((b, 1, height, width), 0.5)  # no gate: both count alike
        return StageOutput(features=out, attention=r.attention, writing_gate=r.writing_gate,
                           response_gate=gate)
