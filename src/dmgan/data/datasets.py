"""Captioned-image datasets on disk: CUB-200-2011 and COCO-2014 in the released layouts,
and custom folders. Every loader reads a local path; nothing is downloaded.

Layouts (paths relative to the root the user gives):

CUB (root = `birds/`)
    CUB_200_2011/images/<class>/<name>.jpg, CUB_200_2011/images.txt (id path),
    CUB_200_2011/bounding_boxes.txt (id x y w h, floats), text/<class>/<name>.txt
    (captions, one a line), {train,test}/filenames.pickle, {train,test}/class_info.pickle
    (optional; without it every image is its own class), captions.pickle (built and
    cached when missing).
COCO (root = `coco/`)
    images/<key>.jpg, text/<key>.txt (five captions), {train,test}/filenames.pickle,
    captions.pickle (built when missing). No bounding boxes.
Custom (root = any folder)
    captions.jsonl, one object a line: {"image": "rel/path.jpg", "captions": [...]} or
    {"image": ..., "caption": "..."}, optionally "split" ("train"/"test") and "class"
    (int); or, without captions.jsonl, a .txt beside each image (one caption a line).
    Split rule when "split" is absent: an image is in the test split when the SHA-1 of its
    relative path (UTF-8, '/' separators), read as a number, is divisible by 10 (~10%).
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from dmgan.data.collate import Sample
from dmgan.data.transforms import crop_box, fit_caption, stage_images
from dmgan.data.vocab import (
    CaptionsFile,
    Vocabulary,
    load_captions_pickle,
    safe_unpickle,
    save_captions_pickle,
    tokenize,
)
from dmgan.errors import DMGANError
from dmgan.imageio import IMAGE_EXTENSIONS, read_image

SPLITS = ("train", "test")


class DataError(DMGANError):
    """A dataset file that is missing or malformed; the message names the file."""


@dataclass
class Record:
    key: str
    image: Path
    captions: list[list[int]]  # this image's captions as word ids
    class_id: int
    bbox: tuple[float, float, float, float] | None = None


class CaptionedImages(Dataset):
    """Records -> Samples. Randomness (caption choice, crop, flip, word subsampling) comes
    from a generator seeded by (seed, epoch, index): the same sample for the same
    triple, in any worker process, so runs resume exactly. Call set_epoch each epoch."""

    def __init__(
        self,
        records: Sequence[Record],
        vocab: Vocabulary,
        *,
        image_sizes: Sequence[int],  # per stage, ascending
        max_words: int,  # caption word limit
        augment: bool,  # random crop + flip (training) or centre crop
        seed: int = 0,
        skip_bad: bool = False,  # skip undecodable images (counted in a warning)
    ):
        if not records:
            raise DataError("the dataset has no samples")
        self.records, self.vocab = list(records), vocab
        self.image_sizes, self.max_words = tuple(image_sizes), max_words
        self.augment, self.seed, self.epoch, self.skip_bad = augment, seed, 0, skip_bad
        self.skipped = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:
        for attempt in range(len(self.records)):
            i = (index + attempt) % len(self.records)
            try:
                return self._load(i)
            except DMGANError as exc:
                if not self.skip_bad:
                    raise
                self.skipped += 1
                warnings.warn(f"skipped sample {self.records[i].key}: {exc} "
                              f"({self.skipped} skipped so far)", stacklevel=2)
        raise DataError("no sample of the dataset can be read")

    def _load(self, i: int) -> Sample:
        rec = self.records[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        img = read_image(rec.image)
        if rec.bbox is not None:
            x1, y1, x2, y2 = crop_box(rec.bbox, *img.size)
            if x2 - x1 < 1 or y2 - y1 < 1:
                raise DataError(f"{rec.image}: its bounding box {rec.bbox} lies outside the "
                                f"{img.size[0]} x {img.size[1]} image")
            img = img.crop((x1, y1, x2, y2))
        images = stage_images(img, self.image_sizes, rng, augment=self.augment)
        caption = rec.captions[int(rng.integers(len(rec.captions)))]
        ids, length = fit_caption(caption, self.max_words, rng)
        return Sample(images=images, caption=torch.from_numpy(ids), length=length,
                      class_id=rec.class_id, key=rec.key)


# --- released layouts ------------------------------------------------------------------

def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataError(f"{what} not found: {path}")
    return path


def _read_pickle(path: Path) -> object:
    return safe_unpickle(_need(path, "file").read_bytes(), source=str(path))


def _filenames(root: Path, split: str) -> list[str]:
    names = _read_pickle(root / split / "filenames.pickle")
    if not isinstance(names, list) or not all(isinstance(n, (str, bytes)) for n in names):
        raise DataError(f"{root / split / 'filenames.pickle'}: expected a list of names")
    return [n.decode("latin1") if isinstance(n, bytes) else n for n in names]


def _class_ids(root: Path, split: str, n: int) -> list[int]:
    path = root / split / "class_info.pickle"
    if not path.exists():
        return list(range(n))  # as released: every image its own class
    ids = _read_pickle(path)
    if not isinstance(ids, (list, tuple)) or len(ids) != n or not all(isinstance(c, int) for c in ids):
        raise DataError(f"{path}: expected {n} integer class ids")
    return list(ids)


def read_caption_file(path: Path, expected: int) -> list[list[str]]:
    """The first `expected` non-empty tokenized lines of a caption file."""
    if not path.is_file():
        raise DataError(f"caption file not found: {path}")
    text = path.read_bytes().decode("utf-8", errors="replace")
    caps = [t for t in (tokenize(line) for line in text.split("\n")) if t]
    if len(caps) < expected:
        raise DataError(f"{path} has {len(caps)} captions, {expected} expected")
    return caps[:expected]


def _released_captions(root: Path, cpi: int, names: dict[str, list[str]],
                       text_path: Callable[[str], Path]) -> CaptionsFile:
    """captions.pickle, built from the text files and cached when missing."""
    path = root / "captions.pickle"
    if path.exists():
        caps = load_captions_pickle(path)
        for split, attr in (("train", caps.train), ("test", caps.test)):
            if len(attr) != len(names[split]) * cpi:
                raise DataError(f"{path}: {len(attr)} {split} captions for "
                                f"{len(names[split])} images x {cpi} captions each")
        return caps
    tokens = {s: [c for n in names[s] for c in read_caption_file(text_path(n), cpi)] for s in SPLITS}
    vocab = Vocabulary.build(tokens["train"] + tokens["test"])
    enc = {s: [vocab.encode_tokens(t).ids for t in tokens[s]] for s in SPLITS}
    caps = CaptionsFile(enc["train"], enc["test"], vocab)
    try:
        save_captions_pickle(path, caps)
    except DMGANError as exc:
        warnings.warn(f"could not cache {path}: {exc}", stacklevel=2)
    return caps


def _bboxes(cub: Path) -> dict[str, tuple[float, float, float, float] | str]:
    """Key -> box (x, y, w, h), or -> the problem with its line (skipped under skip_bad)."""
    paths = {}
    for line in _need(cub / "images.txt", "CUB file").read_text().splitlines():
        if line.strip():
            img_id, rel = line.split(maxsplit=1)
            paths[img_id] = rel.strip()
    boxes = {}
    bbox_file = _need(cub / "bounding_boxes.txt", "CUB file")
    for n, line in enumerate(bbox_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            img_id, box = parts[0], tuple(float(v) for v in parts[1:5])
        except (ValueError, IndexError):
            raise DataError(f"{bbox_file}:{n}: expected 'id x y w h'") from None
        if len(box) != 4 or img_id not in paths:
            raise DataError(f"{bbox_file}:{n}: expected 'id x y w h' for an id of images.txt")
        key = paths[img_id].rsplit(".", 1)[0]
        if not all(math.isfinite(v) for v in box) or box[2] <= 0 or box[3] <= 0:
            boxes[key] = (f"{bbox_file}:{n}: a box needs finite numbers and a positive width "
                          f"and height, got {' '.join(parts[1:5])}")
            continue
        boxes[key] = box
    return boxes


def _released(root: str | Path, split: str, *, cpi: int, kind: str,
              skip_bad: bool) -> tuple[list[Record], Vocabulary]:
    root = Path(root)
    if split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, got {split!r}")
    _need(root, f"{kind} data folder")
    names = {s: _filenames(root, s) for s in SPLITS}
    if kind == "cub":
        def image_path(k: str) -> Path:
            return root / "CUB_200_2011" / "images" / f"{k}.jpg"
        boxes = _bboxes(root / "CUB_200_2011")
    else:
        def image_path(k: str) -> Path:
            return root / "images" / f"{k}.jpg"
        boxes = {}
    caps = _released_captions(root, cpi, names, lambda k: root / "text" / f"{k}.txt")
    split_caps = caps.train if split == "train" else caps.test
    class_ids = _class_ids(root, split, len(names[split]))
    records, problems = [], []
    for i, key in enumerate(names[split]):
        path = image_path(key)
        mine = [c for c in split_caps[i * cpi:(i + 1) * cpi] if c]
        problem = None
        if not path.is_file():
            problem = f"image not found: {path}"
        elif kind == "cub" and key not in boxes:
            problem = f"no bounding box for {key} in bounding_boxes.txt"
        elif isinstance(boxes.get(key), str):
            problem = boxes[key]
        elif not mine:
            problem = f"no usable caption for {key}"
        if problem:
            if not skip_bad:
                raise DataError(problem)
            problems.append(problem)
            continue
        records.append(Record(key, path, mine, class_ids[i], boxes.get(key)))
    if problems:
        warnings.warn(f"skipped {len(problems)} of {len(names[split])} {kind} samples; first: "
                      f"{problems[0]}", stacklevel=2)
    return records, caps.vocab


def load_cub(root: str | Path, split: str, *, captions_per_image: int = 10,
             skip_bad: bool = False) -> tuple[list[Record], Vocabulary]:
    return _released(root, split, cpi=captions_per_image, kind="cub", skip_bad=skip_bad)


def load_coco(root: str | Path, split: str, *, captions_per_image: int = 5,
              skip_bad: bool = False) -> tuple[list[Record], Vocabulary]:
    return _released(root, split, cpi=captions_per_image, kind="coco", skip_bad=skip_bad)


# --- custom folders --------------------------------------------------------------------

def custom_split(rel_path: str) -> str:
    """The documented rule: test when int(sha1(path)) % 10 == 0."""
    digest = hashlib.sha1(rel_path.encode("utf-8")).hexdigest()
    return "test" if int(digest, 16) % 10 == 0 else "train"


def _custom_entries(root: Path) -> list[dict]:
    jsonl = root / "captions.jsonl"
    if jsonl.is_file():
        entries = []
        for n, line in enumerate(jsonl.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{jsonl}:{n}: not JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{jsonl}:{n}: expected an object with 'image' and 'captions'")
            caps = obj.get("captions", obj.get("caption"))
            caps = [caps] if isinstance(caps, str) else caps
            if not isinstance(obj.get("image"), str) or not isinstance(caps, list) or not all(
                    isinstance(c, str) for c in caps):
                raise DataError(f"{jsonl}:{n}: expected 'image' (a path) and 'captions' "
                                f"(a list of strings) or 'caption'")
            image = obj["image"]
            inside = (root / image).resolve()
            if (Path(image).is_absolute() or ".." in Path(image).parts
                    or not inside.is_relative_to(root.resolve())):
                raise DataError(f"{jsonl}:{n}: image {image!r} must be a path inside the dataset "
                                f"folder (no absolute paths, no '..')")
            split = obj.get("split")
            if split is not None and split not in SPLITS:
                raise DataError(f"{jsonl}:{n}: split must be 'train' or 'test'")
            cls = obj.get("class")
            if cls is not None and not isinstance(cls, int):
                raise DataError(f"{jsonl}:{n}: class must be an integer")
            entries.append({"image": obj["image"], "captions": caps, "split": split, "class": cls,
                            "where": f"{jsonl}:{n}"})
        return entries
    entries = []
    for img in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS):
        txt = img.with_suffix(".txt")
        if txt.is_file():
            lines = txt.read_bytes().decode("utf-8", errors="replace").splitlines()
            entries.append({"image": img.relative_to(root).as_posix(), "captions": lines,
                            "split": None, "class": None, "where": str(txt)})
    if not entries:
        raise DataError(f"{root} has neither captions.jsonl nor images with a .txt beside them")
    return entries


def load_custom(root: str | Path, split: str, *,
                skip_bad: bool = False) -> tuple[list[Record], Vocabulary]:
    root = Path(root)
    if split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, got {split!r}")
    entries = _custom_entries(_need(root, "data folder"))
    for i, e in enumerate(entries):
        e["split"] = e["split"] or custom_split(e["image"])
        e["tokens"] = [t for t in (tokenize(c) for c in e["captions"]) if t]
        e["class"] = i if e["class"] is None else e["class"]
    ordered = [e for s in SPLITS for e in entries if e["split"] == s]
    vocab = Vocabulary.build(t for e in ordered for t in e["tokens"])
    records, problems = [], []
    for e in entries:
        if e["split"] != split:
            continue
        path = root / e["image"]
        problem = (f"image not found: {path} ({e['where']})" if not path.is_file() else
                   f"no caption with a word for {e['image']} ({e['where']})" if not e["tokens"]
                   else None)
        if problem:
            if not skip_bad:
                raise DataError(problem)
            problems.append(problem)
            continue
        records.append(Record(e["image"], path, [vocab.encode_tokens(t).ids for t in e["tokens"]],
                              e["class"]))
    if problems:
        warnings.warn(f"skipped {len(problems)} custom samples; first: {problems[0]}", stacklevel=2)
    return records, vocab


def detect_layout(root: str | Path) -> str:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    if (root / "CUB_200_2011").is_dir():
        return "cub"
    if (root / "images").is_dir() and (root / "text").is_dir() and (root / "train").is_dir():
        return "coco"
    return "custom"


def open_dataset(
    root: str | Path,
    split: str,
    *,
    image_sizes: Sequence[int],
    max_words: int,
    captions_per_image: int | None = None,
    augment: bool | None = None,
    seed: int = 0,
    skip_bad: bool = False,
    layout: str | None = None,
) -> CaptionedImages:
    """A dataset for any supported layout (detected unless given)."""
    layout = layout or detect_layout(root)
    if layout == "cub":
        records, vocab = load_cub(root, split, captions_per_image=captions_per_image or 10,
                                  skip_bad=skip_bad)
    elif layout == "coco":
        records, vocab = load_coco(root, split, captions_per_image=captions_per_image or 5,
                                   skip_bad=skip_bad)
    elif layout == "custom":
        records, vocab = load_custom(root, split, skip_bad=skip_bad)
    else:
        raise DataError(f"unknown layout {layout!r}; choose cub, coco or custom")
    return CaptionedImages(records, vocab, image_sizes=image_sizes, max_words=max_words,
                           augment=split == "train" if augment is None else augment, seed=seed,
                           skip_bad=skip_bad)
