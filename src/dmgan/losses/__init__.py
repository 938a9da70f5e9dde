"""Losses of DM-GAN: adversarial, conditioning KL, and DAMSM matching."""

from dmgan.losses.adversarial import (
    DiscriminatorLoss,
    discriminator_loss,
    generator_adversarial_loss,
    kl_loss,
)
from dmgan.losses.damsm import WordLoss, sentence_loss, words_loss
from dmgan.losses.generator import GeneratorLoss, generator_loss

__all__ = [
    "DiscriminatorLoss",
    "GeneratorLoss",
    "WordLoss",
    "discriminator_loss",
    "generator_adversarial_loss",
    "generator_loss",
    "kl_loss",
    "sentence_loss",
    "words_loss",
]
