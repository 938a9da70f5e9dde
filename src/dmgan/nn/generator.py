"""DM-GAN generator: conditioning augmentation, initial stage, dynamic-memory stages.

Dimension letters: B batch, D word/sentence feature size, T words, Z noise size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from dmgan.nn.conditioning import ConditioningAugmentation
from dmgan.nn.layers import UpBlock, bn_glu, conv3x3
from dmgan.nn.memory import MemoryRead, MemoryStage
from dmgan.nn.word_context import WordContext


@dataclass
class GeneratorOutput:
    images: list[torch.Tensor]  # per stage, (B, 3, S_i, S_i) in [-1, 1]
    attention: list[torch.Tensor]  # per memory stage, (B, T, S_i, S_i) at the stage's input size
    writing_gates: list[torch.Tensor]  # per memory stage, (B, 1, T)
    response_gates: list[torch.Tensor]  # per memory stage, (B, 1, S_i, S_i)
    mu: torch.Tensor  # (B, condition_dim)
    logvar: torch.Tensor  # (B, condition_dim)
    # the initial stage's word reading (B, T, R, R) when it has one (InitStage), else None
    init_attention: torch.Tensor | None = None


class InitStage(nn.Module):
    """[condition, noise] -> FC -> (B, C0, 4, 4) -> up-blocks -> (B, gf_dim, base, base).

    With read_words = R (a power of two from 4 to base), the features at R x R px also
    read the words through a memory read (MemoryRead): each place can take what the words
    say about it, which the sentence code alone hardly tells apart ("a red circle on the
    left and a blue square on the right" against the same with the places traded).
    0: no word reading (released).
    """

    def __init__(self, *, in_dim: int, gf_dim: int, base_size: int, embed_dim: int = 0,
                 read_words: int = 0, mask_mode: str = "released"):
        super().__init__()
        num_up = int(math.log2(base_size // 4))
        self.channels = gf_dim * 2**num_up  # gf_dim * 16 for a 64 px base, as released
        self.fc = nn.Linear(in_dim, self.channels * 4 * 4 * 2, bias=False)
        self.bn = nn.BatchNorm1d(self.channels * 4 * 4 * 2)
        self.ups = nn.ModuleList(
            UpBlock(in_ch=self.channels >> i, out_ch=self.channels >> (i + 1)) for i in range(num_up)
        )
        self.read_at = -1  # read after this many up-blocks
        if read_words:
            if read_words & (read_words - 1) or not 4 <= read_words <= base_size:
                raise ValueError(f"read_words must be 0 or a power of two from 4 to "
                                 f"{base_size}, got {read_words}")
            self.read_at = int(math.log2(read_words // 4))
            self.words = MemoryRead(gf_dim=self.channels >> self.read_at, embed_dim=embed_dim,
                                    mask_mode=mask_mode)

    def forward(self, code: torch.Tensor, words: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> (features (B, gf_dim, base, base), attention (B, T, R, R) or None)."""
        x = bn_glu(self.bn, self.fc(code)).view(-1, self.channels, 4, 4)
        attention = None
        for i in range(len(self.ups) + 1):
            if i == self.read_at:
                r = self.words.read(x, words, mask)
                x, attention = r.fused, r.attention
            if i < len(self.ups):
                x = self.ups[i](x)
        return x, attention


class Generator(nn.Module):
    def __init__(
        self,
        *,
        embed_dim: int,  # D: sentence and word feature size
        gf_dim: int = 64,  # channels of the memory stages
        z_dim: int = 100,  # noise size
        condition_dim: int = 100,  # conditioning-augmentation code size
        num_stages: int = 3,  # initial stage + (num_stages - 1) memory stages
        base_size: int = 64,  # resolution of the first image
        res_blocks: int = 2,  # residual blocks per memory stage
        mask_mode: str = "released",  # see MemoryStage
        use_memory: bool = True,  # False: the no-memory ablation (see MemoryStage)
        first_stage_read_px: int = 0,  # the initial stage reads the words at this size (see InitStage)
        word_context: int = 0,  # WordContext layers before the words are read (0: none)
        writing_gate: bool = True,  # False: the memory stages write the words alone (ablation)
        response_gate: bool = True,  # False: the memory stages concatenate, ungated (ablation)
    ):
        super().__init__()
        if word_context and not use_memory:
            raise ValueError("word_context needs the memory: without it no words are read")
        self.z_dim = z_dim
        # the words as every stage reads them: the frozen encoder's, or with what each
        # learned to read from the others (see WordContext; not in the released model)
        self.context = WordContext(embed_dim=embed_dim, layers=word_context) \
            if word_context else None
        self.ca = ConditioningAugmentation(embed_dim=embed_dim, condition_dim=condition_dim)
        # the no-memory ablation reads no words anywhere: the sentence code alone
        self.init_stage = InitStage(in_dim=condition_dim + z_dim, gf_dim=gf_dim,
                                    base_size=base_size, embed_dim=embed_dim,
                                    read_words=first_stage_read_px if use_memory else 0,
                                    mask_mode=mask_mode)
        self.stages = nn.ModuleList(
            MemoryStage(gf_dim=gf_dim, embed_dim=embed_dim, res_blocks=res_blocks,
                        mask_mode=mask_mode, use_memory=use_memory, writing_gate=writing_gate,
                        response_gate=response_gate)
            for _ in range(num_stages - 1)
        )
        self.to_rgb = nn.ModuleList(conv3x3(gf_dim, 3) for _ in range(num_stages))

    def forward(
        self,
        noise: torch.Tensor,
        sentence: torch.Tensor,
        words: torch.Tensor,
        mask: torch.Tensor,
        *,
        sample_condition: bool = True,
        condition_noise: torch.Tensor | None = None,
    ) -> GeneratorOutput:
        """noise (B, Z), sentence (B, D), words (B, D, T), mask (B, T) True at padding.

        sample_condition=False uses mu as the condition code (deterministic);
        condition_noise (B, condition_dim): the draw the condition code is sampled with
        (default: drawn here).
        """
        if noise.shape != (sentence.shape[0], self.z_dim):
            raise ValueError(f"noise must be (B, {self.z_dim}), got {tuple(noise.shape)}")
        code, mu, logvar = self.ca(sentence, sample=sample_condition, eps=condition_noise)
        if self.context is not None:
            words = self.context(words, mask)
        h, init_attention = self.init_stage(torch.cat((code, noise), dim=1), words, mask)
        # images in fp32 under mixed precision too (a no-op in fp32): bf16 near +-1 is one
        # level of 255 coarse
        out = GeneratorOutput(images=[torch.tanh(self.to_rgb[0](h).float())], attention=[],
                              writing_gates=[], response_gates=[], mu=mu, logvar=logvar,
                              init_attention=init_attention)
        for stage, to_rgb in zip(self.stages, self.to_rgb[1:], strict=True):
            s = stage(h, words, mask)
            h = s.features
            out.images.append(torch.tanh(to_rgb(h).float()))
            out.attention.append(s.attention)
            out.writing_gates.append(s.writing_gate)
            out.response_gates.append(s.response_gate)
        return out
