"""Atomic file writes: a temporary file in the target's folder, fsync, then rename.

A crash or a full disk mid-write leaves the previous file intact and no temporary behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from dmgan.errors import DMGANError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    path = Path(path)
    try:
        folder = path.resolve().parent
    except (RuntimeError, OSError) as exc:  # a symlink loop (RuntimeError before Python 3.13)
        raise DMGANError(f"cannot write {path}: {exc}") from None
    if not folder.is_dir():
        raise DMGANError(f"output folder does not exist: {folder}")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=folder)
    except OSError as exc:
        raise DMGANError(f"cannot write in {folder}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except OSError as exc:
        raise DMGANError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def temporary_files(folder: Path, name: str) -> list[Path]:
    """Temporaries that an interrupted atomic write of `folder / name` left behind."""
    return sorted(Path(folder).glob(f".tmp-{name}-*"))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
