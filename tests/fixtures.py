"""Small datasets in the real on-disk layouts, Python-2-style pickles, and helpers."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def py2_pickle(obj) -> bytes:
    """Protocol 2 as Python 2 wrote it: str as (SHORT_)BINSTRING, ints as BININT*."""
    out = bytearray(b"\x80\x02")

    def put(x):
        if isinstance(x, bool):
            out.extend(b"\x88" if x else b"\x89")
        elif isinstance(x, int):
            if 0 <= x < 256:
                out.extend(b"K" + bytes([x]))
            elif 0 <= x < 65536:
                out.extend(b"M" + struct.pack("<H", x))
            else:
                out.extend(b"J" + struct.pack("<i", x))
        elif isinstance(x, float):
            out.extend(b"G" + struct.pack(">d", x))
        elif isinstance(x, str):
            data = x.encode("latin1")
            if len(data) < 256:
                out.extend(b"U" + bytes([len(data)]) + data)
            else:
                out.extend(b"T" + struct.pack("<i", len(data)) + data)
        elif isinstance(x, list):
            out.extend(b"]")
            if x:
                out.extend(b"(")
                for v in x:
                    put(v)
                out.extend(b"e")
        elif isinstance(x, tuple):
            out.extend(b"(")
            for v in x:
                put(v)
            out.extend(b"t")
        elif isinstance(x, dict):
            out.extend(b"}")
            if x:
                out.extend(b"(")
                for k, v in x.items():
                    put(k)
                    put(v)
                out.extend(b"u")
        else:
            raise TypeError(type(x))

    put(obj)
    out.extend(b".")
    return bytes(out)


def _image(path: Path, size: tuple[int, int], seed: int, mode: str = "RGB") -> None:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    if mode == "L":
        img = img.convert("L")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, quality=95)


CAPTIONS = [
    "this bird has a red crown and a white belly",
    "a small bird with \ufffd\ufffd black wings",
    "",
    "the bird is blue with a short beak",
    "a yellow bird perched on a branch",
    "an orange bird with grey feet",
    "this bird is brown",
    "a white bird, with a LONG neck!",
    "a café-coloured bird with spots",
    "the bird has black eyes",
    "tiny green bird",
    "a large bird",
]


def make_cub(root: Path, *, n_train: int = 3, n_test: int = 2, cpi: int = 10,
             with_class_info: bool = True) -> Path:
    """A CUB-layout folder (`birds/`), bounding boxes as floats, protocol-2 pickles."""
    birds = root / "birds"
    cub = birds / "CUB_200_2011"
    keys = [f"{c:03d}.Class_{c}/Class_{c}_{i:04d}" for i, c in
            enumerate([1, 1, 2, 3, 3][: n_train + n_test], start=1)]
    lines, boxes = [], []
    for i, key in enumerate(keys, start=1):
        _image(cub / "images" / f"{key}.jpg", (120 + 10 * i, 90 + 5 * i), i,
               mode="L" if i == 2 else "RGB")
        lines.append(f"{i} {key}.jpg")
        boxes.append(f"{i} {10.5 + i} {8.25} {60.75} {40.0 + i}")
        text = birds / "text" / f"{key}.txt"
        text.parent.mkdir(parents=True, exist_ok=True)
        caps = [CAPTIONS[(i + j) % len(CAPTIONS)] for j in range(cpi + 2)]
        text.write_bytes("\n".join(caps).encode("utf-8"))
    (cub / "images.txt").write_text("\n".join(lines) + "\n")
    (cub / "bounding_boxes.txt").write_text("\n".join(boxes) + "\n")
    for split, part in (("train", keys[:n_train]), ("test", keys[n_train:])):
        (birds / split).mkdir(parents=True, exist_ok=True)
        (birds / split / "filenames.pickle").write_bytes(py2_pickle(part))
        if with_class_info:
            classes = [int(k[:3]) for k in part]
            (birds / split / "class_info.pickle").write_bytes(py2_pickle(classes))
    return birds


def make_coco(root: Path, *, n_train: int = 3, n_test: int = 2) -> Path:
    coco = root / "coco"
    keys = [f"COCO_train2014_{i:012d}" for i in range(n_train)] + [
        f"COCO_val2014_{i:012d}" for i in range(n_test)]
    for i, key in enumerate(keys):
        _image(coco / "images" / f"{key}.jpg", (80 + 7 * i, 64 + 3 * i), 100 + i,
               mode="L" if i == 1 else "RGB")
        (coco / "text").mkdir(parents=True, exist_ok=True)
        caps = [CAPTIONS[(i + j) % len(CAPTIONS)] or "a dog" for j in range(5)]
        (coco / "text" / f"{key}.txt").write_text("\n".join(caps) + "\n")
    for split, part in (("train", keys[:n_train]), ("test", keys[n_train:])):
        (coco / split).mkdir(parents=True, exist_ok=True)
        (coco / split / "filenames.pickle").write_bytes(py2_pickle(part))
    return coco


def run_cli(*args, cwd=None, timeout=None):
    """`dmgan ARGS` in this process (dmgan.cli.main), captured like subprocess.run: an
    object with returncode, stdout and stderr. In-process saves the interpreter start and
    the imports of a subprocess; an exception that escapes main() fails the test (what a
    traceback would be for a user). `timeout` is accepted and ignored."""
    import contextlib
    import io
    import os
    import subprocess

    from dmgan.cli import main

    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:  # argparse usage errors
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(["dmgan", *args], code, out.getvalue(), err.getvalue())


def warned_from(caught, filename: str) -> bool:
    """Every caught warning points at `filename` (a caller's line). Under the mutation check
    (tools/mutation-check) mutmut's trampoline adds a frame between the caller and the
    code, so there the check cannot be made: true."""
    if "MUTANT_UNDER_TEST" in os.environ:
        return True
    return all(w.filename == filename for w in caught)
