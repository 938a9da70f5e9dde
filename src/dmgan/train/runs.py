"""A run folder: its lock, its checkpoints (names, temporaries, the newest that loads, the
ones kept), what a resume must agree with, its JSON-lines logs and config.json, the RNG
state a checkpoint carries, and the wall-clock budget."""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from dmgan.checkpoint import load_checkpoint, save_checkpoint
from dmgan.config import DMGANConfig
from dmgan.errors import CheckpointError, DMGANError, PresetMismatchError, ResumeMismatchError
from dmgan.fileio import atomic_write_text


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



_CKPT = re.compile(r"ckpt-(\d{8})\.pt$")


def checkpoints(run: Path) -> list[Path]:
    """Checkpoints of a run folder, newest first."""
    found = [p for p in run.glob("ckpt-*.pt") if _CKPT.search(p.name)]
    return sorted(found, key=lambda p: int(_CKPT.search(p.name).group(1)), reverse=True)


def refuse_other_run(run: Path) -> None:
    """A new run (no --resume) is refused in a folder that holds a run's checkpoints: its
    checkpoints of the same steps would replace them and its pruning would delete the rest."""
    found = checkpoints(run)
    if found:
        raise DMGANError(f"{run} already holds a run's checkpoints (newest {found[0].name}): "
                         f"pass --resume to go on from them, or choose another folder")


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


def config_changes(old: DMGANConfig, new: DMGANConfig, sections: tuple[str, ...] | None = None
                   ) -> list[str]:
    """Each value that differs, as 'section.key old -> new' (only `sections` when given)."""
    problems = []
    before_all, after_all = old.to_dict(), new.to_dict()
    for section, values in after_all.items():
        if not isinstance(values, dict) or (sections is not None and section not in sections):
            continue
        for key, value in values.items():
            before = before_all.get(section, {}).get(key)
            if before != value:
                problems.append(f"{section}.{key} {before!r} -> {value!r}")
    return problems


def check_resume(run: Path, stored_cfg: DMGANConfig, cfg: DMGANConfig, stored: dict | None,
                 now: dict) -> None:
    """Refuse to resume with another config or other run settings (seed, data, processes):
    the checkpoint's position in the epoch only means something for the same ones."""
    problems = config_changes(stored_cfg, cfg)
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
