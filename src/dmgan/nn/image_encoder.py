"""DAMSM image encoder: Inception-v3 up to Mixed_7c plus two learned projections.

Region features: Mixed_6e (B, 768, 17, 17) through a 1x1 conv -> (B, D, 17, 17).
Global code: Mixed_7c average-pooled (B, 2048) through a linear layer -> (B, D).
Parameter names equal the released `image_encoder200.pth`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dmgan.nn.inception import InceptionTrunk


class ImageEncoder(InceptionTrunk):
    def __init__(
        self,
        *,
        embed_dim: int = 256,  # D: size of region features and global code
    ):
        super().__init__(fid=False)
        self.emb_features = nn.Conv2d(768, embed_dim, kernel_size=1, bias=False)
        self.emb_cnn_code = nn.Linear(2048, embed_dim)
        nn.init.uniform_(self.emb_features.weight, -0.1, 0.1)
        nn.init.uniform_(self.emb_cnn_code.weight, -0.1, 0.1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, 3, S, S) in [-1, 1], any S -> regions (B, D, 17, 17), code (B, D)."""
        x = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=True)
        x17 = self.to_mixed_6e(x)
        x8 = self.to_mixed_7c(x17)
        code = self.emb_cnn_code(F.avg_pool2d(x8, kernel_size=8).flatten(1))
        return self.emb_features(x17), code

    def freeze_trunk(self) -> ImageEncoder:
        """The released recipe trains only the two projections."""
        for name, p in self.named_parameters():
            p.requires_grad_(name.startswith("emb_"))
        return self


class SmallImageEncoder(nn.Module):
    """A small CNN DAMSM image encoder, trained from scratch (for small synthetic data).

    Region features keep an 8 x 8 grid (the 4 x 4 the convolutions leave of a 32 px input,
    which carries what an 8 x 8 copy of it would: the word attention's context is the same,
    at a quarter of the DAMSM loss's cost); the global code reads the flattened 4 x 4 map
    (not a global pool), so both carry where things are, not only what.
    """

    def __init__(
        self,
        *,
        embed_dim: int,  # D
        width: int = 32,  # channels of the first conv
        image_size: int = 64,  # inputs are resized to this
    ):
        super().__init__()
        self.image_size = image_size
        w = width

        def block(a: int, b: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(a, b, 3, stride=2, padding=1), nn.BatchNorm2d(b),
                                 nn.LeakyReLU(0.2))

        self.to_regions = nn.Sequential(block(3, w), block(w, 2 * w), block(2 * w, 4 * w))
        self.to_global = block(4 * w, 4 * w)
        self.emb_features = nn.Conv2d(4 * w, embed_dim, kernel_size=1, bias=False)
        self.emb_cnn_code = nn.Linear(4 * w * 16, embed_dim)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, 3, S, S) in [-1, 1] -> regions (B, D, 8, 8) (4 x 4 when image_size is
        32), code (B, D)."""
        if images.shape[-1] != self.image_size:
            images = F.interpolate(images, size=(self.image_size,) * 2, mode="bilinear",
                                   align_corners=False)
        x = self.to_regions(images)
        x = F.adaptive_avg_pool2d(x, min(8, x.shape[-1]))
        code = self.emb_cnn_code(F.adaptive_avg_pool2d(self.to_global(x), 4).flatten(1))
        return self.emb_features(x), code

    def freeze_trunk(self) -> SmallImageEncoder:
        return self  # everything is trained
