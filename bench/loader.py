"""Data loader throughput (images/s): the built-in shapes dataset and a CUB-layout fixture.

    python bench/loader.py --batches 20 --batch 32 --workers 0 2

The CUB fixture is written to a temporary folder: 500 x 375 JPEGs (CUB's typical size),
ten captions each, float bounding boxes, protocol-2 pickles; the bird preset's stage
sizes (64/128/256) and transform.
"""

from __future__ import annotations

import argparse
import json
import statistics as st
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def make_cub_fixture(root: Path, n: int) -> Path:
    from fixtures import CAPTIONS, py2_pickle

    birds = root / "birds"
    cub = birds / "CUB_200_2011"
    rng = np.random.default_rng(0)
    keys, lines, boxes = [], [], []
    for i in range(1, n + 1):
        key = f"{1 + i % 20:03d}.Class/Bird_{i:05d}"
        keys.append(key)
        path = cub / "images" / f"{key}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, (47, 63, 3), dtype=np.uint8)
        Image.fromarray(base).resize((500, 375), Image.BICUBIC).save(path, quality=90)
        lines.append(f"{i} {key}.jpg")
        boxes.append(f"{i} {60.0 + i % 50} {40.5} {250.25} {200.0}")
        text = birds / "text" / f"{key}.txt"
        text.parent.mkdir(parents=True, exist_ok=True)
        text.write_text("\n".join(CAPTIONS[(i + j) % len(CAPTIONS)] or "a bird" for j in range(10)))
    (cub / "images.txt").write_text("\n".join(lines))
    (cub / "bounding_boxes.txt").write_text("\n".join(boxes))
    for split in ("train", "test"):
        (birds / split).mkdir(parents=True, exist_ok=True)
        (birds / split / "filenames.pickle").write_bytes(py2_pickle(keys))
    return birds


def measure(dataset, batch: int, batches: int, workers: int, repeats: int) -> dict:
    from dmgan.data.collate import collate

    rates = []
    for r in range(repeats):
        dataset.set_epoch(r)
        loader = DataLoader(dataset, batch_size=batch, shuffle=True, collate_fn=collate,
                            num_workers=workers)
        it = iter(loader)
        next(it)  # start-up (workers) not counted
        t0 = time.perf_counter()
        for _ in range(batches):
            next(it)
        rates.append(batch * batches / (time.perf_counter() - t0))
        del it, loader
    return {"images_per_s": round(st.median(rates), 1), "batch": batch, "batches": batches,
            "workers": workers, "repeats": repeats}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    from dmgan.config import preset
    from dmgan.data.datasets import open_dataset
    from dmgan.data.shapes import ShapesDataset

    shapes_cfg, bird_cfg = preset("shapes"), preset("bird")
    shapes = ShapesDataset(length=100000, image_sizes=shapes_cfg.generator.image_sizes,
                           max_words=shapes_cfg.text.words_train)
    with tempfile.TemporaryDirectory() as tmp:
        n = args.batch * (args.batches + 1) + 1
        cub = open_dataset(make_cub_fixture(Path(tmp), n), "train",
                           image_sizes=bird_cfg.generator.image_sizes,
                           max_words=bird_cfg.text.words_train)
        from benchlib import machine_record

        machine = {"machine": machine_record(probe=False)}
        for w in args.workers:
            print(json.dumps({"dataset": "shapes 16/32/64"} | measure(
                shapes, args.batch, args.batches, w, args.repeats) | machine), flush=True)
            print(json.dumps({"dataset": "cub-layout 64/128/256"} | measure(
                cub, args.batch, args.batches, w, args.repeats) | machine), flush=True)


if __name__ == "__main__":
    main()
