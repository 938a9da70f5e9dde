"""Order-aware word features: what each word means in its caption, learned by the GAN.

The DAMSM text encoder is frozen during GAN training, and its bi-LSTM features of two
captions that differ only in which object is where ("a blue square on the left and a red
circle on the right" against the same with the places traded) are nearly the same. A
WordContext lets a network learn that binding itself: each word attends over the caption's
words, with their positions, and what it reads is added to its feature through a
projection that starts at zero, so a network trained without it goes on unchanged at first
(`train --init-from`). Not in the released model.

Dimension letters: B batch, D word feature size, T words.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def positions(length: int, dim: int, *, device=None, dtype=None) -> torch.Tensor:
    """Sinusoidal position codes (T, D): any caption length, no parameters; the dot
    product of two codes depends on how far apart the words are."""
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32)
                     * (-math.log(1000.0) / dim))
    codes = torch.zeros(length, dim, device=device)
    codes[:, 0::2] = torch.sin(pos * freq)
    codes[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return codes.to(dtype or torch.float32)


class ContextLayer(nn.Module):
    """Pre-norm multi-head self-attention over the words, then a small MLP, both residual."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"the word feature size {dim} must divide into {heads} heads")
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_out = nn.Linear(dim, dim)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, D), pos (T, D), mask (B, T) True at padding -> (B, T, D)."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm(x) + pos).view(b, t, 3, self.heads, d // self.heads) \
            .permute(2, 0, 3, 1, 4)  # each (B, heads, T, D / heads)
        bias = None
        if mask is not None:  # padding is never read
            bias = torch.zeros(b, 1, 1, t, dtype=x.dtype, device=x.device)
            bias = bias.masked_fill(mask.view(b, 1, 1, t), float("-inf"))
        read = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        x = x + self.attn_out(read.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.mlp_norm(x))


class WordContext(nn.Module):
    def __init__(self, *, embed_dim: int, layers: int = 1, heads: int = 4):
        super().__init__()
        self.layers = nn.ModuleList(ContextLayer(embed_dim, heads) for _ in range(layers))
        self.out = nn.Linear(embed_dim, embed_dim)

    def reset_out(self) -> None:
        """The added part starts at zero (call after any whole-network initialisation)."""
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, words: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """words (B, D, T), mask (B, T) True at padding -> words (B, D, T), each with what
        it read from the others added."""
        x = words.transpose(1, 2)
        pos = positions(x.shape[1], x.shape[2], device=x.device, dtype=x.dtype)
        for layer in self.layers:
            x = layer(x, pos, mask)
        return words + self.out(x).transpose(1, 2)
