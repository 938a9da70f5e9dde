"""What both training loops share: device and distributed setup, data, mixed precision,
RNG state, run folders and their checkpoints."""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from dmgan.checkpoint import load_checkpoint, save_checkpoint
from dmgan.config import DMGANConfig
from dmgan.errors import CheckpointError, DMGANError, PresetMismatchError, ResumeMismatchError
from dmgan.fileio import atomic_write_text

SHAPES_TRAIN, SHAPES_TEST = 50_000, 1_000


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_runtime(device: str = "auto") -> Runtime:
    """Device, and the process group when launched by torchrun (NCCL on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DMGANError("--device cuda asked for, but no CUDA device is available")
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Runtime(dev, rank, world)


def average_gradients(params, rt: Runtime) -> None:
    """All-reduce (mean) the gradients of `params` across processes, in one flat buffer."""
    if rt.world == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= rt.world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_state(module: torch.nn.Module, rt: Runtime, *, buffers_only: bool = False) -> None:
    """Rank 0's parameters and buffers (or buffers only: each step) to every process."""
    if rt.world == 1:
        return
    params = [] if buffers_only else list(module.parameters())
    for t in params + list(module.buffers()):
        dist.broadcast(t.data, 0)


def autocast(rt: Runtime, amp: str):
    if amp == "off":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast(device_type=rt.device.type, dtype=dtype)


def check_amp(amp: str, rt: Runtime) -> None:
    if amp not in ("off", "bf16", "fp16"):
        raise DMGANError(f"--amp must be off, bf16 or fp16, got {amp!r}")
    if amp == "fp16" and rt.device.type != "cuda":
        raise DMGANError("--amp fp16 needs a CUDA device; use bf16 or off on CPU")
    if amp == "bf16" and rt.device.type == "cpu":
        warnings.warn("bf16 on this CPU is emulated and slower than fp32 (no bf16 units); "
                      "it is the fast path on a GPU", stacklevel=2)


def make_dataset(cfg: DMGANConfig, data: str, split: str, *, max_words: int, seed: int = 0,
                 image_sizes: tuple[int, ...] | None = None):
    """`data` = "shapes" (built in) or a dataset folder (CUB, COCO or custom layout)."""
    from dmgan.data.datasets import open_dataset
    from dmgan.data.shapes import ShapesDataset

    sizes = image_sizes or cfg.generator.image_sizes
    if data == "shapes":
        return ShapesDataset(split=split, length=SHAPES_TRAIN if split == "train" else SHAPES_TEST,
                             image_sizes=sizes, max_words=max_words, seed=seed,
                             background_phrase=cfg.data.shapes_background_phrase,
                             contrast=cfg.train.contrast_negatives or cfg.damsm.contrast_negatives)
    if not Path(data).exists():
        raise DMGANError(f"data folder not found: {data} (or use --data shapes)")
    return open_dataset(data, split, image_sizes=sizes, max_words=max_words, seed=seed,
                        captions_per_image=cfg.text.captions_per_image)


def check_vocab(cfg: DMGANConfig, vocab) -> None:
    if len(vocab) != cfg.text.vocab_size:
        raise DMGANError(f"the data's vocabulary has {len(vocab)} words but preset '{cfg.name}' "
                         f"expects {cfg.text.vocab_size}: pass --vocab-size {len(vocab)} "
                         f"(or the matching preset)")


def epoch_batches(n: int, batch: int, epoch: int, seed: int, rt: Runtime) -> list[list[int]]:
    """This process's batches of one epoch: a seeded permutation, sharded, last partial dropped."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    per = batch * rt.world
    usable = (n // per) * per
    if usable == 0:
        raise DMGANError(f"{n} samples cannot fill one batch of {batch} x {rt.world} processes")
    mine = order[:usable][rt.rank::rt.world]
    return [mine[i:i + batch] for i in range(0, len(mine), batch)]


def rng_state(noise: torch.Generator) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "noise": noise.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], noise: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    noise.set_state(state["noise"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- run folders -----------------------------------------------------------------------

_CKPT = re.compile(r"ckpt-(\d{8})\.pt$")


def checkpoints(run: Path) -> list[Path]:
    """Checkpoints of a run folder, newest first."""
    found = [p for p in run.glob("ckpt-*.pt") if _CKPT.search(p.name)]
    return sorted(found, key=lambda p: int(_CKPT.search(p.name).group(1)), reverse=True)


def latest_checkpoint(run: Path, expect_preset: str) -> tuple[DMGANConfig, dict, Path] | None:
    """The newest checkpoint that loads; damaged ones are skipped with a warning."""
    for path in checkpoints(run):
        try:
            cfg, payload = load_checkpoint(path, expect_preset=expect_preset)
        except PresetMismatchError:
            raise  # another preset's run folder: never resume it
        except CheckpointError as exc:
            warnings.warn(f"skipping damaged checkpoint {path.name}: {exc}", stacklevel=2)
            continue
        if "step" in payload and "optimizers" in payload:
            return cfg, payload, path
    return None


def make_run_folder(path: Path, what: str = "--out") -> Path:
    """The run/output folder, created; a clear error when a file stands in its place."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DMGANError(f"{what} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DMGANError(f"cannot create {path}: {exc.strerror or exc}") from None
    return path


def lock_run_folder(run: Path):
    """Hold an exclusive lock on the run folder for the life of the process (or until the
    returned file is closed): a second training on the same folder is refused, not
    interleaved with the first."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return None
    handle = open(run / ".lock", "a+")  # noqa: SIM115 (held open on purpose)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise DMGANError(f"another training (process {holder}) is using {run}; wait for it to "
                         f"finish or use another --out") from None
    # the kernel drops the lock when its process dies: a dead holder's lock is simply taken
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def checkpoint_name(step: int) -> str:
    return f"ckpt-{step:08d}.pt"


def remove_stale_temporaries(run: Path) -> None:
    """Temporaries of checkpoint writes that a kill interrupted (never checkpoints)."""
    from dmgan.fileio import temporary_files

    for stale in temporary_files(run, "ckpt-*"):
        stale.unlink(missing_ok=True)


def check_resume(run: Path, stored_cfg: DMGANConfig, cfg: DMGANConfig, stored: dict | None,
                 now: dict) -> None:
    """Refuse to resume with another config or other run settings (seed, data, processes):
    the checkpoint's position in the epoch only means something for the same ones."""
    problems = []
    old, new = stored_cfg.to_dict(), cfg.to_dict()
    for section, values in new.items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            before = old.get(section, {}).get(key)
            if before != value:
                problems.append(f"{section}.{key} {before!r} -> {value!r}")
    for key, value in now.items():
        if stored is not None and key in stored and stored[key] != value:
            problems.append(f"{key} {stored[key]!r} -> {value!r}")
    if problems:
        raise ResumeMismatchError(
            f"--resume: {run} was started with other settings ({'; '.join(problems)}); resume "
            f"with the same ones, or start a new run folder")


def save_run_checkpoint(run: Path, keep: int, **payload: Any) -> Path:
    """ckpt-<step>.pt (atomic), then only the newest `keep` remain."""
    path = run / checkpoint_name(payload["step"])
    save_checkpoint(path, **payload)
    for old in checkpoints(run)[keep:]:
        old.unlink(missing_ok=True)
    return path


class JsonLog:
    """Append-only JSON lines (one write per record; flushed)."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


def write_config(run: Path, cfg: DMGANConfig, extra: dict[str, Any]) -> None:
    atomic_write_text(run / "config.json", json.dumps({"config": cfg.to_dict(), **extra}, indent=2))


class Clock:
    def __init__(self, minutes: float | None):
        self.start = time.monotonic()
        self.limit = None if minutes is None else minutes * 60.0

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def out_of_time(self) -> bool:
        return self.limit is not None and self.elapsed() >= self.limit
