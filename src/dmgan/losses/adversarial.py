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
    d: Discriminator,
    real: torch.Tensor,
    fake: torch.Tensor,
    sentence: torch.Tensor,
    *,
    wrong_sentence: torch.Tensor | None = None,
    words: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    wrong_words: torch.Tensor | None = None,
    wrong_mask: torch.Tensor | None = None,
) -> DiscriminatorLoss:
    """Real, fake and mismatched pairs; conditional and (when D has it) unconditional.

    The mismatched pairs are real image i with sentence i + 1 (released), or with
    `wrong_sentence[i]` (B, D) when given (e.g. near-miss captions). The calls run in the released order
    (D(real), D(fake), then the heads), which fixes the sequence of spectral-norm power
    iterations. A word-matching D also takes the captions' words (B, D, T) and padding
    masks (B, T): `words`/`mask` for the sentences, `wrong_words`/`wrong_mask` for
    `wrong_sentence`.
    """
    if real.shape[0] < 2:
        raise ValueError("the discriminator loss needs a batch of at least 2 (mismatched pairs)")
    real_f = d(real)
    fake_f = d(fake.detach())
    cond_real = _bce(d.cond_logits(real_f, sentence, words, mask), 1.0)
    cond_fake = _bce(d.cond_logits(fake_f, sentence, words, mask), 0.0)
    if wrong_sentence is None:
        cond_wrong = _bce(d.cond_logits(real_f[:-1], sentence[1:], _rest(words), _rest(mask)),
                          0.0)
    else:
        cond_wrong = _bce(d.cond_logits(real_f, wrong_sentence, wrong_words, wrong_mask), 0.0)
    real_u, fake_u = d.uncond_logits(real_f), d.uncond_logits(fake_f)
    if real_u is None or fake_u is None:
        total = cond_real + (cond_fake + cond_wrong) / 2.0
        uncond_real = uncond_fake = None
    else:
        uncond_real, uncond_fake = _bce(real_u, 1.0), _bce(fake_u, 0.0)
        total = (uncond_real + cond_real) / 2.0 + (uncond_fake + cond_fake + cond_wrong) / 3.0
    return DiscriminatorLoss(total, cond_real, cond_fake, cond_wrong, uncond_real, uncond_fake)


def _rest(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else x[1:]


def generator_adversarial_loss(
    ds: Sequence[Discriminator],
    images: Sequence[torch.Tensor],
    sentence: torch.Tensor,
    *,
    words: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    near_miss=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over stages of the conditional (+ unconditional) 'looks real' losses (`words`,
    `mask`: for word-matching Ds), and of the caption-preference term: with `near_miss` (a
    TextEncoding of mismatched captions, e.g. near-miss captions), mean softplus(match
    logit of the fake with the mismatched caption - with its own), which asks each D to
    prefer an image's own caption on the fake as it learned to on real images (zero
    without `near_miss`)."""
    if len(ds) != len(images):
        raise ValueError(f"{len(ds)} discriminators for {len(images)} images")
    total = images[0].new_zeros(())
    margin = images[0].new_zeros(())
    for d, img in zip(ds, images, strict=True):
        features = d(img)
        own = d.cond_logits(features, sentence, words, mask)
        total = total + _bce(own, 1.0)
        uncond = d.uncond_logits(features)
        if uncond is not None:
            total = total + _bce(uncond, 1.0)
        if near_miss is not None:
            margin = margin + _prefers_other(d, features, own, near_miss)
    return total, margin


def _prefers_other(d: Discriminator, features: torch.Tensor, own: torch.Tensor,
                   near_miss) -> torch.Tensor:
    other = d.cond_logits(features, near_miss.sentence, near_miss.words, near_miss.mask)
    return F.softplus(other - own).mean()


def preference_margin(ds: Sequence[Discriminator], images: Sequence[torch.Tensor], text,
                      near_miss) -> torch.Tensor:
    """The caption-preference term of generator_adversarial_loss, judged by other Ds (frozen
    critics):
    sum over stages of mean softplus(match logit with the mismatched caption - with the
    image's own)."""
    total = images[0].new_zeros(())
    for d, img in zip(ds, images, strict=True):
        features = d(img)
        own = d.cond_logits(features, text.sentence, text.words, text.mask)
        total = total + _prefers_other(d, features, own, near_miss)
    return total
