"""Inception-v3 in pure torch, with torchvision's parameter names.

Two variants share one trunk:
- "torchvision": the ImageNet network (`inception_v3_google-*.pth` loads as is).
- "fid": the TF-2015 graph as ported for FID (`pt_inception-2015-12-05-*.pth`):
  1008 classes, average pools that exclude padding, and a max pool in the last
  block's pool branch.
The DAMSM image encoder (dmgan.nn.image_encoder) extends the same trunk.

Dimension letters: B batch; sizes in comments are for a 299 x 299 input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicConv2d(nn.Module):
    """conv (no bias) -> batch norm (eps 1e-3) -> ReLU."""

    def __init__(self, in_ch: int, out_ch: int, **conv: object):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, bias=False, **conv)
        self.bn = nn.BatchNorm2d(out_ch, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg3(x: torch.Tensor, fid: bool) -> torch.Tensor:
    # The FID graph's pools divide by the number of real (non-padding) inputs.
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=not fid)


class InceptionA(nn.Module):
    def __init__(self, in_ch: int, pool_features: int, *, fid: bool = False):
        super().__init__()
        self.fid = fid
        self.branch1x1 = BasicConv2d(in_ch, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_ch, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_ch, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        d = self.branch_pool(_avg3(x, self.fid))
        return torch.cat((a, b, c, d), 1)


class InceptionB(nn.Module):
    def __init__(self, in_ch: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_ch, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat((a, b, F.max_pool2d(x, 3, stride=2)), 1)


class InceptionC(nn.Module):
    def __init__(self, in_ch: int, channels_7x7: int, *, fid: bool = False):
        super().__init__()
        self.fid = fid
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_ch, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_ch, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_ch, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_ch, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                     self.branch7x7dbl_5):
            c = conv(c)
        d = self.branch_pool(_avg3(x, self.fid))
        return torch.cat((a, b, c, d), 1)


class InceptionD(nn.Module):
    def __init__(self, in_ch: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_ch, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_ch, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_1(x)
        for conv in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b = conv(b)
        return torch.cat((a, b, F.max_pool2d(x, 3, stride=2)), 1)


class InceptionE(nn.Module):
    def __init__(self, in_ch: int, *, pool: str = "avg"):
        super().__init__()
        self.pool = pool  # "avg", "avg_fid" (padding excluded) or "max" (FID's last block)
        self.branch1x1 = BasicConv2d(in_ch, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_ch, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_ch, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch3x3_1(x)
        b = torch.cat((self.branch3x3_2a(b), self.branch3x3_2b(b)), 1)
        c = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        c = torch.cat((self.branch3x3dbl_3a(c), self.branch3x3dbl_3b(c)), 1)
        if self.pool == "max":
            p = F.max_pool2d(x, 3, stride=1, padding=1)
        else:
            p = _avg3(x, self.pool == "avg_fid")
        return torch.cat((a, b, c, self.branch_pool(p)), 1)


class InceptionAux(nn.Module):
    """The auxiliary head of the ImageNet network; present so its weight file loads strictly."""

    def __init__(self, in_ch: int, num_classes: int):
        super().__init__()
        self.conv0 = BasicConv2d(in_ch, 128, kernel_size=1)
        self.conv1 = BasicConv2d(128, 768, kernel_size=5)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.conv0(F.avg_pool2d(x, 5, stride=3)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class InceptionTrunk(nn.Module):
    """Conv2d_1a_3x3 ... Mixed_7c. Input (B, 3, 299, 299), already scaled to [-1, 1]."""

    def __init__(self, *, fid: bool = False):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32, fid=fid)
        self.Mixed_5c = InceptionA(256, pool_features=64, fid=fid)
        self.Mixed_5d = InceptionA(288, pool_features=64, fid=fid)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128, fid=fid)
        self.Mixed_6c = InceptionC(768, channels_7x7=160, fid=fid)
        self.Mixed_6d = InceptionC(768, channels_7x7=160, fid=fid)
        self.Mixed_6e = InceptionC(768, channels_7x7=192, fid=fid)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg_fid" if fid else "avg")
        self.Mixed_7c = InceptionE(2048, pool="max" if fid else "avg")

    def to_mixed_6e(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 299, 299) -> (B, 768, 17, 17)."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # 147 x 147 x 64
        x = F.max_pool2d(x, 3, stride=2)  # 73 x 73
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # 71 x 71 x 192
        x = F.max_pool2d(x, 3, stride=2)  # 35 x 35
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e):
            x = block(x)
        return x

    def to_mixed_7c(self, x17: torch.Tensor) -> torch.Tensor:
        """(B, 768, 17, 17) -> (B, 2048, 8, 8)."""
        return self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x17)))


class InceptionV3(InceptionTrunk):
    """Pool3 features and class logits. variant "torchvision" (1000 classes, aux head) or "fid"."""

    def __init__(self, *, variant: str = "torchvision", num_classes: int | None = None,
                 aux_logits: bool | None = None):
        if variant not in ("torchvision", "fid"):
            raise ValueError(f"variant must be 'torchvision' or 'fid', got {variant!r}")
        super().__init__(fid=variant == "fid")
        self.variant = variant
        num_classes = num_classes or (1008 if variant == "fid" else 1000)
        if aux_logits if aux_logits is not None else variant == "torchvision":
            self.AuxLogits = InceptionAux(768, num_classes)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, 299, 299) in [-1, 1] -> pool3 (B, 2048), logits (B, num_classes)."""
        pool3 = F.adaptive_avg_pool2d(self.to_mixed_7c(self.to_mixed_6e(x)), 1).flatten(1)
        return pool3, self.fc(pool3)
