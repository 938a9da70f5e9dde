"""Building blocks shared by the generator and the discriminators.

Dimension letters: B batch, C channels, H/W height/width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3(in_ch: int, out_ch: int, *, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1, bias=bias)


class UpBlock(nn.Module):
    """Nearest x2 up-sampling, 3x3 conv, batch norm, GLU: (B, in_ch, H, W) -> (B, out_ch, 2H, 2W)."""

    def __init__(self, *, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = conv3x3(in_ch, out_ch * 2)  # GLU halves the channels
        self.bn = nn.BatchNorm2d(out_ch * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.glu(self.bn(self.conv(x)), dim=1)


class ResBlock(nn.Module):
    """x + BN(conv(GLU(BN(conv(x))))), channels kept."""

    def __init__(self, *, channels: int):
        super().__init__()
        self.conv1 = conv3x3(channels, channels * 2)
        self.bn1 = nn.BatchNorm2d(channels * 2)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.glu(self.bn1(self.conv1(x)), dim=1)
        return x + self.bn2(self.conv2(out))


def _l2_normalize(v: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    # The released spectral norm divides by (norm + eps), not max(norm, eps).
    return v / (v.norm() + eps)


class SNConv2d(nn.Module):
    """A conv whose weight is divided by its largest singular value, estimated by power iteration.

    Released semantics: one power iteration on *every* forward, in train and eval
    mode alike, updating the stored `u` (out_ch,) and `v` (in_ch*k*k,) vectors;
    sigma = u . (W v) carries the gradient to W, with u and v held constant.
    """

    def __init__(self, *, in_ch: int, out_ch: int, kernel_size: int, stride: int, padding: int):
        super().__init__()
        self.stride, self.padding = stride, padding
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        nn.init.orthogonal_(self.weight)
        width = in_ch * kernel_size * kernel_size
        self.register_buffer("u", _l2_normalize(torch.randn(out_ch)))
        self.register_buffer("v", _l2_normalize(torch.randn(width)))

    def normalized_weight(self) -> torch.Tensor:
        w = self.weight.reshape(self.weight.shape[0], -1)
        with torch.no_grad():
            v = _l2_normalize(w.t().mv(self.u))
            u = _l2_normalize(w.mv(v))
            # Copy into the buffers; the fresh u, v (not the buffers) enter the graph, so a
            # later forward's update cannot invalidate a pending backward.
            self.u.copy_(u)
            self.v.copy_(v)
        sigma = torch.dot(u, w.mv(v))
        return self.weight / sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.normalized_weight(), self.bias, self.stride, self.padding)


def init_released(module: nn.Module) -> None:
    """The released initialisation: orthogonal convs and linears, BN gamma ~ N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            nn.init.orthogonal_(m.weight, 1.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
