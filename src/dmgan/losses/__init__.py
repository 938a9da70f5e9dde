"""Losses of DM-GAN: adversarial, conditioning KL, and DAMSM matching."""

from dmgan.losses.adversarial import (
    DiscriminatorLoss,
    discriminator_loss,
    generator_adversarial_loss,
    kl_loss,
)
from dmgan.losses.damsm import WordLoss, sentence_loss, words_loss

__all__ = [
    "DiscriminatorLoss",
    "WordLoss",
    "discriminator_loss",
    "generator_adversarial_loss",
    "kl_loss",
    "sentence_loss",
    "words_loss",
]
