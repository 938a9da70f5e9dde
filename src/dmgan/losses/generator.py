"""The full generator loss of the released recipe.

adversarial (every stage) + damsm_weight * (word + sentence DAMSM losses on the last
stage's image, through the frozen image encoder) + kl_weight * KL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from dmgan.config import LossConfig
from dmgan.losses.adversarial import generator_adversarial_loss, kl_loss, preference_margin
from dmgan.losses.damsm import sentence_loss, words_loss
from dmgan.nn.discriminator import Discriminator
from dmgan.nn.generator import GeneratorOutput
from dmgan.nn.text_encoder import TextEncoding

ImageEncoderFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class GeneratorLoss:
    total: torch.Tensor
    adversarial: torch.Tensor
    damsm_words: torch.Tensor  # (w_loss0 + w_loss1) * damsm_weight
    damsm_sentence: torch.Tensor  # (s_loss0 + s_loss1) * damsm_weight
    kl: torch.Tensor  # kl_weight * KL
    # caption_preference_weight * the Ds' preference of the mismatched caption on the fakes
    preference: torch.Tensor | None = None
    # pixel_weight * the mean squared difference to the real images, summed over stages
    pixel: torch.Tensor | None = None
    # diversity_weight * the mode-seeking term on captions that leave things free
    diversity: torch.Tensor | None = None


OBJECT_THRESHOLD = 0.1  # a channel this far from the background's (images in [-1, 1])


def object_mask(real: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W): 1 where a picture differs from its background, the per-channel median
    of its one-pixel border (drawn scenes: the border is background but where an object
    touches it)."""
    border = torch.cat([real[..., 0, :], real[..., -1, :], real[..., 1:-1, 0],
                        real[..., 1:-1, -1]], dim=-1)  # (B, C, 2H + 2W - 4)
    background = border.median(dim=-1).values[..., None, None]
    return ((real - background).abs() > OBJECT_THRESHOLD).any(dim=1, keepdim=True).to(real.dtype)


def pixel_distances(fake: torch.Tensor, real: torch.Tensor,
                    object_weight: float | torch.Tensor = 0.0) -> torch.Tensor:
    """(B,): each picture's mean squared difference to its real one; with `object_weight` (a
    number, or (B,) one per picture), the pixels off the real picture's background count
    1 + that times."""
    per_pixel = (fake - real).square()
    if torch.is_tensor(object_weight):  # one weight per picture
        per_pixel = per_pixel * (1 + object_weight.to(real.dtype).view(-1, 1, 1, 1)
                                 * object_mask(real))
    elif object_weight > 0:
        per_pixel = per_pixel * (1 + object_weight * object_mask(real))
    return per_pixel.flatten(1).mean(1)


def pixel_difference(fake: torch.Tensor, real: torch.Tensor,
                     object_weight: float | torch.Tensor = 0.0,
                     picked: torch.Tensor | None = None) -> torch.Tensor:
    """The batch's mean of `pixel_distances`; with `picked` (B,) of 0/1, only those pictures
    count (the batch's mean with the others at zero)."""
    apart = pixel_distances(fake, real, object_weight)
    if picked is None:
        return apart.mean()
    return (apart * picked.to(apart.dtype)).mean()


DIVERSITY_EPS = 1e-5


def diversity_term(images_a: torch.Tensor, images_b: torch.Tensor, z_a: torch.Tensor,
                   z_b: torch.Tensor, free: torch.Tensor | None = None) -> torch.Tensor:
    """The mode-seeking term (Mao et al., CVPR 2019): for pictures of the same captions drawn
    from two noises, 1 / (the mean absolute picture difference over the mean absolute noise
    difference), per caption; small when the noise moves the picture. `free` (B,) of 0/1:
    only those captions count (the batch's mean with the others at zero): a caption that
    fixes its picture should not be drawn many ways."""
    apart = (images_a - images_b).abs().flatten(1).mean(1)
    ratio = apart / (z_a - z_b).abs().flatten(1).mean(1).to(apart.dtype)
    per_caption = 1.0 / (ratio + DIVERSITY_EPS)
    if free is None:
        return per_caption.mean()
    return (per_caption * free.to(per_caption.dtype)).mean()


def generator_loss(
    ds: Sequence[Discriminator],
    out: GeneratorOutput,
    text: TextEncoding,
    lengths: torch.Tensor,
    image_encoder: ImageEncoderFn,
    loss: LossConfig,
    class_ids: torch.Tensor | None = None,
    wrong: TextEncoding | None = None,
    critics: Sequence[Discriminator] | None = None,
    real: Sequence[torch.Tensor] | None = None,
    fixes_picture: torch.Tensor | None = None,
    second: tuple[GeneratorOutput, torch.Tensor, torch.Tensor] | None = None,
) -> GeneratorLoss:
    """`wrong`: the step's mismatched captions, for the caption-preference term
    (loss.caption_preference_weight), judged by `critics` (frozen Ds) when given, else by the
    run's own Ds. `real`: the captions' real images per stage, for the pixel term
    (loss.pixel_weight); `fixes_picture` (B,): the captions whose picture the caption fixes,
    the only ones the pixel term then counts (a caption that leaves things free has many
    pictures, whose mean is a blur) unless G's drawing is the nearest of several
    (loss.pixel_candidates > 1: then the object weight counts on these only). `second`: (G's
    output on the same captions from another noise, the noise of `out`, that other noise),
    for the diversity term (loss.diversity_weight), counted on the captions that do not fix
    their picture."""
    use_preference = loss.caption_preference_weight > 0 and wrong is not None
    adv, margin = generator_adversarial_loss(
        ds, out.images, text.sentence, words=text.words, mask=text.mask,
        near_miss=wrong if use_preference and critics is None else None)
    if use_preference and critics is not None:
        margin = preference_margin(critics, out.images, text, wrong)
    preference = margin * loss.caption_preference_weight
    regions, code = image_encoder(out.images[-1])
    w = words_loss(regions, text.words, lengths, class_ids, gamma1=loss.gamma1,
                   gamma2=loss.gamma2, gamma3=loss.gamma3)
    s0, s1 = sentence_loss(code, text.sentence, class_ids, gamma3=loss.gamma3)
    words_term = (w.loss0 + w.loss1) * loss.damsm_weight
    sent_term = (s0 + s1) * loss.damsm_weight
    kl = kl_loss(out.mu, out.logvar) * loss.kl_weight
    total = adv + words_term + sent_term + kl + preference
    pixel = None
    if loss.pixel_weight > 0:
        if real is None:
            raise ValueError("loss.pixel_weight needs the real images (real=)")
        picked, weight = fixes_picture, loss.pixel_object_weight
        if loss.pixel_candidates > 1:
            # drawn as the nearest of several noises, a caption that leaves things free counts
            # too, every pixel alike (with objects weighted, drawing a free object twice pays);
            # the object weight stays on the captions that fix their picture
            picked = None
            weight = 0.0 if fixes_picture is None else weight * fixes_picture
        pixel = loss.pixel_weight * sum(
            pixel_difference(fake, r.to(fake.dtype), weight, picked)
            for fake, r in zip(out.images, real, strict=True))
        total = total + pixel
    diversity = None
    if loss.diversity_weight > 0:
        if second is None:
            raise ValueError("loss.diversity_weight needs a second drawing (second=)")
        other, z_a, z_b = second
        n = len(z_b)  # the second drawing may cover the first n captions only
        free = None if fixes_picture is None else 1 - fixes_picture[:n].to(torch.int8)
        diversity = loss.diversity_weight * diversity_term(
            out.images[-1][:n], other.images[-1], z_a[:n], z_b, free)
        total = total + diversity
    return GeneratorLoss(total=total, adversarial=adv, damsm_words=words_term,
                         damsm_sentence=sent_term, kl=kl, preference=preference, pixel=pixel,
                         diversity=diversity)
