"""Opening the data a preset trains or is judged on, the same way for every command
(train, pretrain-damsm, the demo, eval): the built-in shapes data or a dataset folder."""

from __future__ import annotations

from pathlib import Path

from dmgan.config import DMGANConfig
from dmgan.errors import DMGANError

SHAPES_TRAIN, SHAPES_TEST = 50_000, 1_000  # samples per split of the built-in data


def open_split(cfg: DMGANConfig, data: str, split: str, *, max_words: int, seed: int = 0,
               image_sizes: tuple[int, ...] | None = None, cache_images: bool = True):
    """One split of what a command's `--data` names, as the preset reads it: "shapes" (built
    in, with the preset's data options) or a dataset folder (dmgan.data.datasets.open_dataset:
    CUB, COCO or custom layout).

    Images come at `image_sizes` (default: every stage's size of the preset). The shapes
    data follows the preset's data options (background phrases, near-miss captions) and
    keeps what it renders in memory (`cache_images`).
    """
    from dmgan.data.datasets import open_dataset
    from dmgan.data.shapes import ShapesDataset

    sizes = image_sizes or cfg.generator.image_sizes
    if data == "shapes":
        return ShapesDataset(split=split, length=SHAPES_TRAIN if split == "train" else SHAPES_TEST,
                             image_sizes=sizes, max_words=max_words, seed=seed,
                             options=cfg.data, cache_images=cache_images,
                             near_misses=(cfg.train.near_miss_negatives
                                          or cfg.damsm.near_miss_negatives))
    if not Path(data).exists():
        raise DMGANError(f"data folder not found: {data} (or use --data shapes)")
    return open_dataset(data, split, image_sizes=sizes, max_words=max_words, seed=seed,
                        captions_per_image=cfg.text.captions_per_image)


def check_vocab(cfg: DMGANConfig, vocab, *, source: str = "the data's vocabulary",
                hint: str | None = None, error: type[DMGANError] = DMGANError) -> None:
    """A vocabulary (`source`: where it comes from, for the message) must be the size of the
    text encoder of `cfg`; `hint` says what to do (default: --vocab-size for training)."""
    if len(vocab) != cfg.text.vocab_size:
        hint = hint or f"pass --vocab-size {len(vocab)} (or the matching preset)"
        raise error(f"{source} has {len(vocab)} words but preset '{cfg.name}' expects "
                    f"{cfg.text.vocab_size}: {hint}")
