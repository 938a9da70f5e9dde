"""Inference-only rewrites that keep the function (up to float rounding) and save time.

`fold_batch_norm` folds each eval-mode batch norm into the conv or linear layer before
it (y = gamma * (Wx + b - mean) / sqrt(var + eps) + beta), removing a full pass over
every activation map. Only for inference: the folded module no longer tracks batch
statistics, so never train it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from dmgan.nn.generator import InitStage
from dmgan.nn.layers import ResBlock, UpBlock


@torch.no_grad()
def _fold(layer: nn.Conv2d | nn.Linear, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> None:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shape = (-1,) + (1,) * (layer.weight.dim() - 1)
    layer.weight.mul_(scale.view(shape))
    bias = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    new_bias = (bias - bn.running_mean) * scale + bn.bias
    layer.bias = nn.Parameter(new_bias)


def fold_batch_norm(module: nn.Module) -> nn.Module:
    """A copy of `module` (e.g. a Generator) with its conv -> batch-norm pairs folded."""
    module = copy.deepcopy(module).eval()
    for m in module.modules():
        if isinstance(m, UpBlock):
            _fold(m.conv, m.bn)
            m.bn = nn.Identity()
        elif isinstance(m, ResBlock):
            _fold(m.conv1, m.bn1)
            _fold(m.conv2, m.bn2)
            m.bn1, m.bn2 = nn.Identity(), nn.Identity()
        elif isinstance(m, InitStage):
            _fold(m.fc, m.bn)
            m.bn = nn.Identity()
    return module.requires_grad_(False)
