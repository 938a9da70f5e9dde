"""Pictures for people: sample grids with their captions."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from dmgan.fileio import atomic_write
from dmgan.imageio import to_uint8


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
            say(draw, (x + 2, y + tile + 4 + j * line_h), line, fill=(0, 0, 0), font=font)
    return grid


def save_png(img: Image.Image, path: str | os.PathLike) -> None:
    atomic_write(path, lambda f: img.save(f, format="PNG"))


_VIRIDIS = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)],
                    dtype=np.float64)


def colormap(values: np.ndarray, vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """(H, W) values -> (H, W, 3) uint8 on a viridis-like scale."""
    t = np.clip((np.asarray(values, np.float64) - vmin) / max(vmax - vmin, 1e-12), 0, 1)
    pos = t * (len(_VIRIDIS) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_VIRIDIS) - 2)
    frac = (pos - lo)[..., None]
    return (_VIRIDIS[lo] * (1 - frac) + _VIRIDIS[lo + 1] * frac).round().astype(np.uint8)


WORD_GAP = 4  # px between words: the default font's space is a pixel or two wide


def say(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, *, font,
        fill="black", width: int | None = None) -> int:
    """Draw `text` word by word with WORD_GAP between words; with `width`, shortened with
    an ellipsis to fit. Returns the x where the text ends."""
    if width is not None and _extent(text, font) > width:
        while text and _extent(text + "…", font) > width:
            text = text[:-1]
        text = text.rstrip() + "…"
    x, y = xy
    for k, word in enumerate(text.split(" ")):
        if k:
            x += WORD_GAP
        draw.text((x, y), word, fill=fill, font=font)
        x += int(round(font.getlength(word)))
    return x


def _extent(text: str, font) -> int:
    words = text.split(" ")
    return int(round(sum(font.getlength(w) for w in words))) + WORD_GAP * (len(words) - 1)


def _heat_tile(values: np.ndarray, size: int, vmax: float) -> Image.Image:
    return Image.fromarray(colormap(values, 0.0, vmax)).resize((size, size), Image.NEAREST)


def explanation_figure(caption: str, stage_images: Sequence[Image.Image], words: Sequence[str],
                       attention: Sequence[np.ndarray], writing_gates: Sequence[np.ndarray],
                       response_gates: Sequence[np.ndarray], *, tile: int = 96,
                       show_stages: bool = True) -> Image.Image:
    """The paper's Figure 6 for one caption: each stage's image; per memory stage, the
    writing gate of every word (bars), every word's key-addressing attention over the
    image, and the response gate map. Gates use the 0-1 scale; attention maps of a stage
    share one scale from 0 to that stage's largest attention value (stated in the title).
    show_stages=False leaves the stage images out (a page that shows them already)."""
    font = ImageFont.load_default()
    pad, text_h = 8, 14
    label_w = max(60, max(_extent(w, font) for w in words) + 10)
    n_words = len(words)
    maps_per_row = max(n_words + 1, len(stage_images))
    width = pad * 2 + label_w + 160 + maps_per_row * (tile + 4)
    big = 2 * tile
    section_h = text_h * 2 + max(n_words * (text_h + 2), tile + text_h) + pad
    if not show_stages:
        stage_images, big = [], -text_h - pad
    height = (pad + text_h * 2 + big + text_h + pad + len(attention) * section_h + 50)
    fig = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(fig)
    say(draw, (pad, pad), f'"{caption}"', font=font, width=width - 2 * pad)
    y = pad + text_h * 2
    for k, img in enumerate(stage_images):
        x = pad + k * (big + 8)
        fig.paste(img.resize((big, big), Image.NEAREST), (x, y))
        say(draw, (x, y + big + 2), f"stage {k + 1}: {img.size[0]} px", font=font)
    y += big + text_h + pad
    for s, (att, wg, rg) in enumerate(zip(attention, writing_gates, response_gates, strict=True)):
        say(draw, (pad, y), f"memory stage {s + 2} (reads at {att.shape[-1]} px)", font=font)
        y0 = y + text_h + 4
        say(draw, (pad, y0), "writing gate per word", fill=(80, 80, 80), font=font)
        for i, (word, value) in enumerate(zip(words, wg, strict=True)):
            yy = y0 + text_h + i * (text_h + 2)
            draw.text((pad, yy), word, fill="black", font=font)
            bar = int(140 * float(value))
            draw.rectangle((pad + label_w, yy + 2, pad + label_w + bar, yy + text_h - 2),
                           fill=tuple(int(c) for c in colormap(np.array([value]))[0]))
            draw.text((pad + label_w + bar + 4, yy), f"{float(value):.2f}", fill="black", font=font)
        x0 = pad + label_w + 170
        vmax = max(float(att.max()), 1e-6)  # attention sums to 1 over the words: stretch it
        say(draw, (x0, y0), f"key addressing: attention of each word over the image (colour "
            f"scale x {vmax:.2f}); response gate (scale 0-1)", fill=(80, 80, 80), font=font,
            width=width - x0 - pad)
        for i, word in enumerate(words):
            x = x0 + i * (tile + 4)
            say(draw, (x, y0 + text_h), word, font=font, width=tile)
            fig.paste(_heat_tile(att[i], tile, vmax), (x, y0 + 2 * text_h))
        x = x0 + n_words * (tile + 4)
        say(draw, (x, y0 + text_h), "response gate", font=font, width=tile)
        fig.paste(_heat_tile(rg, tile, 1.0), (x, y0 + 2 * text_h))
        y += section_h
    bar = colormap(np.tile(np.linspace(0, 1, 256), (12, 1)))
    fig.paste(Image.fromarray(bar), (pad, y + 4))
    for v in (0.0, 0.5, 1.0):
        draw.text((pad + int(v * 250) - (8 if v else 0), y + 18), f"{v:.1f}", fill="black", font=font)
    say(draw, (pad + 270, y + 4), "colour scale (attention maps: times the factor in their "
        "title)", fill=(80, 80, 80), font=font)
    return fig


RESAMPLE = {"nearest": Image.NEAREST, "bicubic": Image.BICUBIC}


def upsample(img: Image.Image, size: int | None, resample: str = "nearest") -> Image.Image:
    """For viewing: the image at size x size px (None: as it is); nearest keeps the pixels,
    bicubic smooths them."""
    if size is None or img.size == (size, size):
        return img
    return img.resize((size, size), RESAMPLE[resample])


def stage_strip(stages: Sequence[Image.Image], size: int | None = None,
                resample: str = "nearest") -> Image.Image:
    """Every stage's image side by side, each at the last stage's size (or `size`)."""
    side = size or stages[-1].size[0]
    strip = Image.new("RGB", (side * len(stages), side), "white")
    for k, img in enumerate(stages):
        strip.paste(upsample(img, side, resample), (k * side, 0))
    return strip


def image_grid(images: Sequence[Image.Image], columns: int, *, gap: int = 2) -> Image.Image:
    """Images (all the same size) in rows of `columns`, `gap` px of white between them."""
    w, h = images[0].size
    rows = (len(images) + columns - 1) // columns
    grid = Image.new("RGB", (columns * w + (columns - 1) * gap, rows * h + (rows - 1) * gap),
                     "white")
    for k, img in enumerate(images):
        grid.paste(img, ((k % columns) * (w + gap), (k // columns) * (h + gap)))
    return grid
