"""Pictures for people: sample grids with their captions."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from dmgan.fileio import atomic_write


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def caption_grid(images: torch.Tensor, captions: Sequence[str], *, columns: int = 4,
                 tile: int = 128, text_lines: int = 4) -> Image.Image:
    """Images in a grid, each with its caption (wrapped) underneath."""
    font = ImageFont.load_default()
    arr = to_uint8(images)
    rows = (len(arr) + columns - 1) // columns
    line_h, width = 11, max(8, tile // 6)
    cell_h = tile + line_h * text_lines + 6
    grid = Image.new("RGB", (columns * (tile + 4), rows * cell_h), "white")
    draw = ImageDraw.Draw(grid)
    for k, (img, cap) in enumerate(zip(arr, captions, strict=True)):
        x, y = (k % columns) * (tile + 4), (k // columns) * cell_h
        grid.paste(Image.fromarray(img).resize((tile, tile), Image.NEAREST), (x + 2, y + 2))
        lines = textwrap.wrap(cap, width=int(width * 1.15))[:text_lines]
        for j, line in enumerate(lines):
            draw.text((x + 2, y + tile + 4 + j * line_h), line, fill=(0, 0, 0), font=font)
    return grid


def save_png(img: Image.Image, path: str | os.PathLike) -> None:
    atomic_write(path, lambda f: img.save(f, format="PNG"))
