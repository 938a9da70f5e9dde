"""Adversarial losses and the conditioning KL term, as the released recipe defines them.

Discriminators return logits before the sigmoid; the losses use binary cross-entropy
on logits, which equals the released BCE-on-probabilities wherever the latter is finite
(and is allowed under autocast, which BCE on probabilities is not).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dmgan.nn.discriminator import Discriminator


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def kl_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)), averaged over all elements."""
    return -0.5 * torch.mean(1.0 + logvar - mu.pow(2) - logvar.exp())


@dataclass
class DiscriminatorLoss:
    total: torch.Tensor
    cond_real: torch.Tensor
    cond_fake: torch.Tensor
    cond_wrong: torch.Tensor  # real image i with sentence i + 1
    uncond_real: torch.Tensor | None
    uncond_fake: torch.Tensor | None


def discriminator_loss(
    d: Discriminator, real: torch.Tensor, fake: torch.Tensor, sentence: torch.Tensor
) -> DiscriminatorLoss:
    """Real, fake and mismatched pairs; conditional and (when D has it) unconditional.

    The calls run in the released order (D(real), D(fake), then the heads), which fixes
    the sequence of spectral-norm power iterations.
    """
    if real.shape[0] < 2:
        raise ValueError("the discriminator loss needs a batch of at least 2 (mismatched pairs)")
    real_f = d(real)
    fake_f = d(fake.detach())
    cond_real = _bce(d.cond_logits(real_f, sentence), 1.0)
    cond_fake = _bce(d.cond_logits(fake_f, sentence), 0.0)
    cond_wrong = _bce(d.cond_logits(real_f[:-1], sentence[1:]), 0.0)
    real_u, fake_u = d.uncond_logits(real_f), d.uncond_logits(fake_f)
    if real_u is None or fake_u is None:
        total = cond_real + (cond_fake + cond_wrong) / 2.0
        return DiscriminatorLoss(total, cond_real, cond_fake, cond_wrong, None, None)
    uncond_real, uncond_fake = _bce(real_u, 1.0), _bce(fake_u, 0.0)
    total = (uncond_real + cond_real) / 2.0 + (uncond_fake + cond_fake + cond_wrong) / 3.0
    return DiscriminatorLoss(total, cond_real, cond_fake, cond_wrong, uncond_real, uncond_fake)


def generator_adversarial_loss(
    ds: Sequence[Discriminator], images: Sequence[torch.Tensor], sentence: torch.Tensor
) -> torch.Tensor:
    """Sum over stages of the conditional (+ unconditional) 'looks real' losses."""
    if len(ds) != len(images):
        raise ValueError(f"{len(ds)} discriminators for {len(images)} images")
    total = images[0].new_zeros(())
    for d, img in zip(ds, images, strict=True):
        features = d(img)
        total = total + _bce(d.cond_logits(features, sentence), 1.0)
        uncond = d.uncond_logits(features)
        if uncond is not None:
            total = total + _bce(uncond, 1.0)
    return total
