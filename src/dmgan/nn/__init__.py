"""Networks of DM-GAN. Constructors take explicit keyword arguments only."""

from dmgan.nn.conditioning import ConditioningAugmentation
from dmgan.nn.discriminator import Discriminator, DiscriminatorOutput
from dmgan.nn.generator import Generator, GeneratorOutput
from dmgan.nn.image_encoder import ImageEncoder
from dmgan.nn.inception import InceptionV3
from dmgan.nn.memory import MemoryStage, StageOutput
from dmgan.nn.text_encoder import TextEncoder, TextEncoding

__all__ = [
    "ConditioningAugmentation",
    "Discriminator",
    "DiscriminatorOutput",
    "Generator",
    "GeneratorOutput",
    "ImageEncoder",
    "InceptionV3",
    "MemoryStage",
    "StageOutput",
    "TextEncoder",
    "TextEncoding",
]
