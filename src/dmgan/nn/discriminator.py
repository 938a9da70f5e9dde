"""One discriminator class for every resolution (the released D_NET64/128/256 by one rule).

Images of size S = 64 * 2^k pass four stride-2 convs (16x down), k more stride-2 convs
that double the channels, then k 3x3 convs that bring the channels back to 8 * df_dim,
ending at (B, 8*df_dim, 4, 4). Sizes below 64 use fewer of the first four convs.
All convs carry the released spectral norm; the two 4x4 output convs do not.

With `word_match` (not in the released model) the match head also reads the words: each
of the 4 x 4 places attends over the caption's word features and the joint conv sees what
it read beside the sentence code, so D can check which object the words put where, not
only which objects the sentence names. `word_context` layers (WordContext) let D learn
what each word means in its caption before the places read them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dmgan.nn.layers import SNConv2d
from dmgan.nn.word_context import WordContext


@dataclass
class DiscriminatorOutput:
    features: torch.Tensor  # (B, 8*df_dim, 4, 4)
    cond_logits: torch.Tensor | None  # (B,) image-text match, before the sigmoid
    uncond_logits: torch.Tensor | None  # (B,) real vs fake, before the sigmoid


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


class Discriminator(nn.Module):
    def __init__(
        self,
        *,
        image_size: int,  # S: a power of two >= 8
        df_dim: int = 32,  # channels after the first conv
        embed_dim: int = 256,  # D: sentence feature size for the conditional head
        unconditional: bool = True,  # build the unconditional (real/fake) head
        word_match: bool = False,  # the match head also reads the words (see the module doc)
        word_context: int = 0,  # WordContext layers before the places read the words
    ):
        super().__init__()
        if word_context and not word_match:
            raise ValueError("word_context needs word_match: without it D reads no words")
        if image_size < 8 or image_size & (image_size - 1):
            raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
        self.image_size, self.embed_dim = image_size, embed_dim
        n_base = min(4, int(math.log2(image_size // 4)))
        extra = int(math.log2(image_size // 64)) if image_size >= 64 else 0
        top = df_dim * 8
        chans = [3] + [df_dim * 2**i for i in range(4 - n_base, 4)]
        self.encoder = nn.ModuleList(
            SNConv2d(in_ch=a, out_ch=b, kernel_size=4, stride=2, padding=1)
            for a, b in zip(chans[:-1], chans[1:], strict=True)
        )
        self.down = nn.ModuleList(
            SNConv2d(in_ch=top * 2**i, out_ch=top * 2 ** (i + 1), kernel_size=4, stride=2,
                     padding=1)
            for i in range(extra)
        )
        self.squeeze = nn.ModuleList(
            SNConv2d(in_ch=top * 2 ** (extra - i), out_ch=top * 2 ** (extra - i - 1),
                     kernel_size=3, stride=1, padding=1)
            for i in range(extra)
        )
        self.cond_joint = SNConv2d(in_ch=top + embed_dim, out_ch=top, kernel_size=3, stride=1,
                                   padding=1)
        self.cond_out = nn.Conv2d(top, 1, kernel_size=4, stride=4)
        self.uncond_out = nn.Conv2d(top, 1, kernel_size=4, stride=4) if unconditional else None
        self.word_match = word_match
        if word_match:
            # queries from each place's features; what a place read enters the joint conv's
            # sum through a 1x1 conv that starts at zero, so a D trained without the words
            # goes on unchanged at first (train --init-from)
            self.word_query = nn.Conv2d(top, embed_dim, kernel_size=1)
            self.word_joint = nn.Conv2d(embed_dim, top, kernel_size=1)
        self.word_context = WordContext(embed_dim=embed_dim, layers=word_context) \
            if word_context else None
        # with the words' context, each place's query also says where the place is (the
        # features of a conv stack hardly do), so that "on the left" can find its place;
        # zero at first, like the rest of the word reading
        self.word_places = nn.Parameter(torch.zeros(1, embed_dim, 4, 4)) \
            if word_context else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> features (B, 8*df_dim, 4, 4)."""
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            raise ValueError(f"this discriminator judges {self.image_size} px images, "
                             f"got {tuple(images.shape)}")
        x = images
        for conv in (*self.encoder, *self.down, *self.squeeze):
            x = _lrelu(conv(x))
        return x

    def cond_logits(self, features: torch.Tensor, sentence: torch.Tensor,
                    words: torch.Tensor | None = None,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
        """Match logits (B,) of features (B, 8*df_dim, 4, 4) with sentences (B, D); a
        `word_match` D also needs the words (B, D, T) and their padding mask (B, T)."""
        c = sentence.view(-1, self.embed_dim, 1, 1).expand(-1, -1, *features.shape[2:])
        x = self.cond_joint(torch.cat((features, c), dim=1))
        if self.word_match:
            if words is None:
                raise ValueError("a word-matching discriminator needs the caption's words")
            if self.word_context is not None:
                words = self.word_context(words, mask)
            x = x + self.word_joint(self.read_words(features, words, mask))
        return self.cond_out(_lrelu(x)).view(-1)

    def read_words(self, features: torch.Tensor, words: torch.Tensor,
                   mask: torch.Tensor | None) -> torch.Tensor:
        """(B, D, h, w): per place, the words' features weighted by a softmax over the words
        of how well each matches the place's query (padding never read)."""
        b, _, h, w = features.shape
        query = self.word_query(features)
        if self.word_places is not None:
            query = query + self.word_places
        query = query.flatten(2)  # (B, D, h*w)
        scores = torch.bmm(query.transpose(1, 2), words) / self.embed_dim ** 0.5  # (B, hw, T)
        if mask is not None:
            scores = scores.masked_fill(mask.unsqueeze(1), float("-inf"))
        read = torch.bmm(words, scores.softmax(dim=2).transpose(1, 2))  # (B, D, h*w)
        return read.view(b, self.embed_dim, h, w)

    def uncond_logits(self, features: torch.Tensor) -> torch.Tensor | None:
        """Real/fake logits (B,), or None without the unconditional head."""
        if self.uncond_out is None:
            return None
        return self.uncond_out(features).view(-1)

    def judge(self, images: torch.Tensor, sentence: torch.Tensor | None,
              words: torch.Tensor | None = None,
              mask: torch.Tensor | None = None) -> DiscriminatorOutput:
        features = self(images)
        cond = None if sentence is None else self.cond_logits(features, sentence, words, mask)
        return DiscriminatorOutput(features=features, cond_logits=cond,
                                   uncond_logits=self.uncond_logits(features))
