"""dmgan: DM-GAN (Dynamic Memory GAN for text-to-image synthesis) on a modern PyTorch stack."""

__version__ = "0.1.0"

from dmgan.api import DMGAN, released_discriminators  # noqa: E402
from dmgan.config import DMGANConfig, preset  # noqa: E402
from dmgan.errors import CheckpointError, ConfigError, DMGANError  # noqa: E402
from dmgan.models import (  # noqa: E402
    build_discriminators,
    build_generator,
    build_text_encoder,
)
from dmgan.pipeline import DMGANPipeline  # noqa: E402
from dmgan.released import load_released  # noqa: E402

__all__ = [
    "DMGAN",
    "CheckpointError",
    "ConfigError",
    "DMGANConfig",
    "DMGANError",
    "DMGANPipeline",
    "__version__",
    "build_discriminators",
    "build_generator",
    "build_text_encoder",
    "load_released",
    "preset",
    "released_discriminators",
]
