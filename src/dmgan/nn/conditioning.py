"""Conditioning augmentation: sentence feature -> (mu, logvar) -> condition code."""

from __future__ import annotations

import torch
from torch import nn

from dmgan.nn.layers import glu


class ConditioningAugmentation(nn.Module):
    def __init__(
        self,
        *,
        embed_dim: int,  # D: sentence feature size
        condition_dim: int,  # size of the condition code
    ):
        super().__init__()
        self.condition_dim = condition_dim
        self.fc = nn.Linear(embed_dim, condition_dim * 4)  # GLU halves, then split mu | logvar

    def forward(
        self, sentence: torch.Tensor, *, sample: bool = True, eps: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, D) -> code, mu, logvar, each (B, condition_dim). sample=False gives code = mu;
        `eps` (B, condition_dim): the standard normal draw to sample with (default: drawn)."""
        x = glu(self.fc(sentence))
        mu, logvar = x[:, : self.condition_dim], x[:, self.condition_dim :]
        if not sample:
            return mu, mu, logvar
        if eps is None:
            eps = torch.randn_like(mu)
        return mu + eps * torch.exp(0.5 * logvar), mu, logvar
