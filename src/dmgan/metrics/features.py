"""Feature extraction for the metrics: image loading, named preprocessing modes, Inception.

Preprocessing is a named, recorded parameter:
- "pytorch-fid": FID Inception weights (pt_inception-2015-12-05-*.pth); uint8 -> [0, 1],
  bilinear resize to 299 (align_corners=False), -> [-1, 1]. Comparable with pytorch-fid.
- "dmgan-legacy": torchvision ImageNet weights (inception_v3_google-*.pth); PIL bilinear
  resize to 299, -> [0, 1], the ImageNet normalisation folded into [-1, 1] terms, as the
  released repository's FID script computed it. Comparable with the paper's FID numbers.
Each image is preprocessed on its own, so features do not depend on the batch size.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dmgan.errors import DMGANError
from dmgan.imageio import IMAGE_EXTENSIONS
from dmgan.nn.inception import InceptionV3


@dataclass(frozen=True)
class Mode:
    name: str
    variant: str  # InceptionV3 variant
    weights_file: str  # the file this mode needs (for messages)
    pil_resize: bool  # resize with PIL before the network (legacy) or in torch


MODES = {
    "pytorch-fid": Mode("pytorch-fid", "fid", "pt_inception-2015-12-05-6726825d.pth", False),
    "dmgan-legacy": Mode("dmgan-legacy", "torchvision", "inception_v3_google-0cc3c7bd.pth", True),
}
_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def get_mode(name: str) -> Mode:
    if name not in MODES:
        raise DMGANError(f"unknown preprocessing mode '{name}'; choose one of {sorted(MODES)}")
    return MODES[name]


def load_inception(path: str | os.PathLike | None, mode: Mode) -> InceptionV3:
    """The Inception network of `mode` with weights from a local file (never downloaded)."""
    from dmgan.released import load_released

    if path is None or not Path(path).is_file():
        where = f" (looked for {path})" if path else ""
        raise DMGANError(
            f"mode '{mode.name}' needs the Inception weight file {mode.weights_file}{where}. "
            f"Nothing is downloaded at run time: fetch it on a machine with internet access "
            f"and pass its path with --inception-weights (or the DMGAN_INCEPTION_WEIGHTS "
            f"environment variable)."
        )
    net = InceptionV3(variant=mode.variant)
    return load_released(net, path, what=f"the '{mode.name}' Inception network").eval()


def list_images(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DMGANError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DMGANError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return files


def preprocess(image: PIL.Image.Image | torch.Tensor, mode: Mode) -> torch.Tensor:  # noqa: F821
    """One image (PIL RGB, or a uint8 tensor (3, H, W)) -> network input (3, 299, 299)."""
    from PIL import Image

    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
            raise ValueError("tensor images must be uint8 (3, H, W)")
        if mode.pil_resize:
            image = Image.fromarray(image.permute(1, 2, 0).numpy())
    if isinstance(image, Image.Image):
        if mode.pil_resize and image.size != (299, 299):
            image = image.resize((299, 299), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
    else:
        x = image
    x = x.float().div(255.0).unsqueeze(0)
    if mode.variant == "fid":
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return (x * 2.0 - 1.0)[0]
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=True)[0]
    return x * (_STD / 0.5) + (_MEAN - 0.5) / 0.5


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@torch.inference_mode()
def extract(
    images: Iterable,
    net: InceptionV3,
    mode: Mode,
    *,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """pool3 (N, 2048) and logits (N, C) for PIL images or uint8 (3, H, W) tensors."""
    if batch_size < 1:
        raise DMGANError(f"batch size must be >= 1, got {batch_size}")
    net = net.to(device).eval()
    pools, logits = [], []
    for batch in _batches(images, batch_size):
        x = torch.stack([preprocess(img, mode) for img in batch]).to(device)
        p, lg = net(x)
        pools.append(p.double().cpu().numpy())
        logits.append(lg.double().cpu().numpy())
        if progress:
            progress(len(batch))
    if not pools:
        raise DMGANError("no images to extract features from")
    return {"pool3": np.concatenate(pools), "logits": np.concatenate(logits)}


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def statistics_key(files: Sequence[Path], mode: Mode, weights: str | os.PathLike) -> str:
    """A hash of what produced real-image statistics: the files, the mode, the weights."""
    listing = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    blob = json.dumps({"files": listing, "mode": mode.name, "weights": file_sha256(weights)})
    return hashlib.sha256(blob.encode()).hexdigest()[:24]
