"""`dmgan generate` and `dmgan explain`: captions to image files, with a manifest.

Where the images go:
- `output` names one PNG: one image is written as it is; several (more captions, or n > 1)
  become one grid, a row per caption and a column per image;
- `outdir`: one numbered PNG per image (numbering continues after the files already there,
  so nothing written before is replaced).
Either way each image gets a line in `manifest.jsonl` beside it (appended): the file, its
place in a grid, the caption, the seed, the model, and how it was upsampled for viewing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dmgan.data.vocab import check_caption_length
from dmgan.errors import DMGANError
from dmgan.fileio import atomic_write_text

GENERATE_CHUNK = 32  # images per forward pass and per write: memory stays flat for any n
MANIFEST = "manifest.jsonl"


@dataclass
class ViewOptions:
    stages: bool = False  # every stage's image side by side
    size: int | None = None  # upsample each image to size x size px for viewing
    resample: str = "nearest"  # nearest | bicubic


GRID_MAX_IMAGES = 1024  # a 32 x 32 grid: 13 MB of 64 px tiles, 200 MB at 256 px


def read_captions(captions: Sequence[str], file: str | None) -> list[str]:
    """The captions given, then one per non-empty line of `file` (UTF-8), each within the
    caption length limit (dmgan.data.vocab.MAX_CAPTION_CHARS)."""
    out = list(captions or [])
    if file:
        path = Path(file)
        if not path.is_file():
            raise DMGANError(f"caption file not found: {path}")
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DMGANError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        out += [line.strip() for line in text.splitlines() if line.strip()]
    if not out:
        raise DMGANError("give a caption (or --file with one caption a line)")
    for caption in out:
        check_caption_length(caption)
    return out


def _check_png(path: Path) -> Path:
    if not path.parent.is_dir():
        raise DMGANError(f"output folder does not exist: {path.parent}")
    if path.suffix.lower() != ".png":
        raise DMGANError(f"the output must be a .png file, got {path.name}")
    return path


def _next_number(folder: Path) -> int:
    taken = [int(m.group(1)) for p in folder.glob("*.png") if (m := re.fullmatch(r"(\d+)\.png", p.name))]
    return max(taken, default=-1) + 1


def _append_manifest(folder: Path, entries: list[dict]) -> Path:
    path = folder / MANIFEST
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    atomic_write_text(path, old + "".join(json.dumps(e) + "\n" for e in entries))
    return path


def generate_files(pipe, captions: list[str], *, seed: int = 0, n: int = 1,
                   output: str | Path | None = "out.png", outdir: str | Path | None = None,
                   view: ViewOptions | None = None, model_label: str = "") -> list[Path]:
    """Images for every caption (n each; image j of a caption uses seed + j) written as
    described in the module docstring. Every caption is checked before anything is
    written. Returns the image files written (then the manifest)."""
    from dmgan.viz import image_grid, save_png, stage_strip, upsample

    view = view or ViewOptions()
    for caption in captions:
        pipe.vocab.encode(caption)  # a caption with no known word: refused before any write
    total = len(captions) * n
    if outdir is not None:
        folder = Path(outdir)
        if folder.exists() and not folder.is_dir():
            raise DMGANError(f"--outdir {folder} is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        first = _next_number(folder)
        grid_path = None
    else:
        if total > GRID_MAX_IMAGES:
            raise DMGANError(f"one grid holds at most {GRID_MAX_IMAGES} images (built in memory); "
                             f"this asks for {total}: use --outdir FOLDER, which writes the "
                             f"images one by one as they are drawn")
        grid_path = _check_png(Path(output))
        folder = grid_path.parent
    record = {"seed": seed, "model": model_label, "size": view.size,
              "resample": view.resample if view.size else None, "stages": view.stages}

    def picture(final, stages):
        return (stage_strip(stages, view.size, view.resample) if view.stages
                else upsample(final, view.size, view.resample))

    written, entries, tiles = [], [], []
    for c, caption in enumerate(captions):
        for start in range(0, n, GENERATE_CHUNK):
            count = min(GENERATE_CHUNK, n - start)
            out = pipe(caption, seed=seed, num_images=count, first_image=start)
            for j, (final, stages) in enumerate(zip(out.images, out.stage_images, strict=True)):
                img = picture(final, stages)
                entry = record | {"caption": caption, "image_seed": seed + start + j}
                if grid_path is None:
                    path = folder / f"{first + len(written):06d}.png"
                    save_png(img, path)
                    written.append(path)
                    entries.append({"file": path.name} | entry)
                else:  # kept for the grid (or the single image)
                    tiles.append(img)
                    entries.append({"file": grid_path.name, "row": c, "column": start + j} | entry)
    if grid_path is not None:
        save_png(tiles[0] if total == 1 else image_grid(tiles, columns=n), grid_path)
        written.append(grid_path)
        if total == 1:
            entries[0].pop("row"), entries[0].pop("column")
    _append_manifest(folder, entries)
    return written


def explain_file(pipe, caption: str, *, seed: int = 0, output: str | Path = "explain.png") -> Path:
    """The paper's Figure 6 for one caption (what each memory stage wrote and read)."""
    from dmgan.viz import explanation_figure, save_png

    path = _check_png(Path(output))
    g = pipe.model.config.generator
    if not g.memory or g.num_stages < 2:  # no stage reads the words (without the memory,
        raise DMGANError("this model has no memory stage to explain")  # all-zero maps)
    out = pipe(caption, seed=seed, explain=True)
    fig = explanation_figure(caption, out.stage_images[0], out.words[0], out.attention[0],
                             out.writing_gates[0], out.response_gates[0])
    save_png(fig, path)
    return path
