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


def _real(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """D's loss on logits it should call real (or matching)."""
    return _bce(logits, 1.0) if kind == "bce" else F.relu(1.0 - logits).mean()


def _fake(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """D's loss on logits it should call fake (or mismatched)."""
    return _bce(logits, 0.0) if kind == "bce" else F.relu(1.0 + logits).mean()


def _fooled(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """G's loss: the logits D should call real."""
    return _bce(logits, 1.0) if kind == "bce" else -logits.mean()


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
    gradient_penalty: torch.Tensor | None = None  # matching-aware, when asked for


def matching_aware_penalty(
    d: Discriminator, real: torch.Tensor, sentence: torch.Tensor, *, power: float,
    words: torch.Tensor | None = None, mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DF-GAN's matching-aware zero-centred gradient penalty on real, matching pairs.

    Returns (features of `real`, penalty = mean over samples of |grad|^power), where grad is
    the gradient of the match logit with respect to the image and the sentence together.
    The graph is kept (create_graph), so the penalty trains D. `words`/`mask`: for a
    word-matching D (held fixed here).
    """
    real = real.detach().requires_grad_(True)
    sentence = sentence.detach().requires_grad_(True)
    features = d(real)
    logits = d.cond_logits(features, sentence, words, mask)
    g_img, g_sent = torch.autograd.grad(logits.sum(), (real, sentence), create_graph=True)
    norm = torch.cat((g_img.flatten(1), g_sent.flatten(1)), dim=1).norm(dim=1)
    return features, norm.pow(power).mean()


@torch.no_grad()
def hardest_other(sentence: torch.Tensor, class_ids: torch.Tensor | None) -> torch.Tensor:
    """Per sample, the index of the batch's most similar sentence (cosine) of another class.

    Mismatched pairs made of these differ from the truth in few words, so D must read every
    word to reject them (the released pairs, sentence i + 1, differ in most words).
    """
    unit = torch.nn.functional.normalize(sentence.float(), dim=1)
    sim = unit @ unit.t()
    b = sentence.shape[0]
    same = torch.eye(b, dtype=torch.bool, device=sentence.device)
    if class_ids is not None:
        ids = class_ids.view(-1)
        same = same | (ids.unsqueeze(0) == ids.unsqueeze(1))
    sim = sim.masked_fill(same, float("-inf"))
    pick = sim.argmax(dim=1)
    # a row with no other class keeps the released choice, the next sample
    lonely = torch.isinf(sim.max(dim=1).values)
    return torch.where(lonely, (torch.arange(b, device=sentence.device) + 1) % b, pick)


def discriminator_loss(
    d: Discriminator,
    real: torch.Tensor,
    fake: torch.Tensor,
    sentence: torch.Tensor,
    *,
    kind: str = "bce",
    gp_weight: float = 0.0,
    gp_power: float = 6.0,
    wrong_sentence: torch.Tensor | None = None,
    words: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    wrong_words: torch.Tensor | None = None,
    wrong_mask: torch.Tensor | None = None,
) -> DiscriminatorLoss:
    """Real, fake and mismatched pairs; conditional and (when D has it) unconditional.

    kind "bce" is the released loss, "hinge" the hinge loss. With gp_weight > 0 the
    matching-aware gradient penalty is added. The mismatched pairs are real image i with
    sentence i + 1 (released), or with `wrong_sentence[i]` (B, D) when given (e.g. hard
    negatives picked by `hardest_other`). The calls run in the released order
    (D(real), D(fake), then the heads), which fixes the sequence of spectral-norm power
    iterations. A word-matching D also takes the captions' words (B, D, T) and padding
    masks (B, T): `words`/`mask` for the sentences, `wrong_words`/`wrong_mask` for
    `wrong_sentence`.
    """
    if real.shape[0] < 2:
        raise ValueError("the discriminator loss needs a batch of at least 2 (mismatched pairs)")
    if kind not in ("bce", "hinge"):
        raise ValueError(f"unknown adversarial loss {kind!r}")
    penalty = None
    if gp_weight > 0:
        real_f, penalty = matching_aware_penalty(d, real, sentence, power=gp_power,
                                                 words=words, mask=mask)
        penalty = penalty * gp_weight
    else:
        real_f = d(real)
    fake_f = d(fake.detach())
    cond_real = _real(d.cond_logits(real_f, sentence, words, mask), kind)
    cond_fake = _fake(d.cond_logits(fake_f, sentence, words, mask), kind)
    if wrong_sentence is None:
        cond_wrong = _fake(d.cond_logits(real_f[:-1], sentence[1:], _rest(words), _rest(mask)),
                           kind)
    else:
        cond_wrong = _fake(d.cond_logits(real_f, wrong_sentence, wrong_words, wrong_mask), kind)
    real_u, fake_u = d.uncond_logits(real_f), d.uncond_logits(fake_f)
    if real_u is None or fake_u is None:
        total = cond_real + (cond_fake + cond_wrong) / 2.0
        uncond_real = uncond_fake = None
    else:
        uncond_real, uncond_fake = _real(real_u, kind), _fake(fake_u, kind)
        total = (uncond_real + cond_real) / 2.0 + (uncond_fake + cond_fake + cond_wrong) / 3.0
    if penalty is not None:
        total = total + penalty
    return DiscriminatorLoss(total, cond_real, cond_fake, cond_wrong, uncond_real, uncond_fake,
                             penalty)


def _rest(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else x[1:]


def generator_adversarial_loss(
    ds: Sequence[Discriminator],
    images: Sequence[torch.Tensor],
    sentence: torch.Tensor,
    *,
    kind: str = "bce",
    words: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    contrast=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over stages of the conditional (+ unconditional) 'looks real' losses (`words`,
    `mask`: for word-matching Ds), and of the contrast term: with `contrast` (a
    TextEncoding of mismatched captions, e.g. contrast captions), mean softplus(match
    logit of the fake with the mismatched caption - with its own), which asks each D to
    prefer an image's own caption on the fake as it learned to on real images (zero
    without `contrast`)."""
    if len(ds) != len(images):
        raise ValueError(f"{len(ds)} discriminators for {len(images)} images")
    total = images[0].new_zeros(())
    margin = images[0].new_zeros(())
    for d, img in zip(ds, images, strict=True):
        features = d(img)
        own = d.cond_logits(features, sentence, words, mask)
        total = total + _fooled(own, kind)
        uncond = d.uncond_logits(features)
        if uncond is not None:
            total = total + _fooled(uncond, kind)
        if contrast is not None:
            margin = margin + _prefers_other(d, features, own, contrast)
    return total, margin


def _prefers_other(d: Discriminator, features: torch.Tensor, own: torch.Tensor,
                   contrast) -> torch.Tensor:
    other = d.cond_logits(features, contrast.sentence, contrast.words, contrast.mask)
    return F.softplus(other - own).mean()


def contrast_margin(ds: Sequence[Discriminator], images: Sequence[torch.Tensor], text,
                    contrast) -> torch.Tensor:
    """The contrast term of generator_adversarial_loss, judged by other Ds (frozen critics):
    sum over stages of mean softplus(match logit with the mismatched caption - with the
    image's own)."""
    total = images[0].new_zeros(())
    for d, img in zip(ds, images, strict=True):
        features = d(img)
        own = d.cond_logits(features, text.sentence, text.words, text.mask)
        total = total + _prefers_other(d, features, own, contrast)
    return total
