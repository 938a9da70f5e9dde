"""Reading images from disk: any PIL-readable file -> RGB, with clear errors."""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from dmgan.errors import DMGANError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# Checked from the header, before any pixel is decoded: larger files, or strips so thin
# that resizing them to a square stage blows up, are refused rather than run out of memory.
MAX_PIXELS = 64_000_000
MAX_ASPECT = 32.0


def read_image(path: str | os.PathLike) -> Image.Image:
    """An RGB PIL image; greyscale, RGBA, palette and 16-bit files are converted.

    16-bit greyscale is scaled to 8 bits (PIL's own conversion would clip it).
    """
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w < 1 or h < 1 or w * h > MAX_PIXELS or max(w, h) / min(w, h) > MAX_ASPECT:
                raise DMGANError(f"refused image {path}: {w} x {h} pixels (at most "
                                 f"{MAX_PIXELS // 1_000_000} megapixels, sides at most "
                                 f"{MAX_ASPECT:g}:1)")
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float64)
                scale = 65535.0 if arr.max() > 255 else 255.0
                img = Image.fromarray((arr / scale * 255.0).round().astype(np.uint8))
            return img.convert("RGB")
    except FileNotFoundError:
        raise DMGANError(f"image not found: {path}") from None
    except Image.DecompressionBombError as exc:
        raise DMGANError(f"refused image {path}: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DMGANError(f"cannot decode image {path}: {exc}") from None


def to_uint8(images) -> np.ndarray:
    """(B, 3, H, W) or (3, H, W) tensor in [-1, 1] -> (B, H, W, 3) or (H, W, 3) uint8."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).numpy()


def to_pil(image) -> Image.Image:
    """A (3, H, W) tensor in [-1, 1] -> PIL RGB."""
    return Image.fromarray(to_uint8(image))


def save_image(image, path: str | os.PathLike) -> None:
    """A (3, H, W) tensor in [-1, 1] -> PNG (atomically)."""
    from dmgan.fileio import atomic_write

    pil = to_pil(image)
    atomic_write(path, lambda f: pil.save(f, format="PNG"))
