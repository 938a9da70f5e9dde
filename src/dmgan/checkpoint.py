"""Our own checkpoint format: one file, loadable with torch.load(weights_only=True).

Layout (a plain dict): format, format_version, dmgan_version, config (dict of
primitives), networks ({name: state_dict}), and whatever else a caller adds
(step, optimizer states, ...) as long as it is weights-only loadable.
Writes go to a temporary file in the same folder, then replace the target.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from dmgan.config import DMGANConfig
from dmgan.errors import CheckpointError, ConfigError, PresetMismatchError
from dmgan.fileio import atomic_write

FORMAT = "dmgan-checkpoint"
FORMAT_VERSION = 1


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save through an atomic write (temporary file, fsync, rename)."""

    def write(f) -> None:
        try:
            torch.save(obj, f)
        except RuntimeError as exc:  # torch's zip writer reports a failed write (a full
            raise OSError(f"writing failed ({exc})") from None  # disk) as RuntimeError

    atomic_write(path, write)


def read_weights_only(path: str | os.PathLike) -> Any:
    """torch.load(weights_only=True) on CPU; a clear CheckpointError for any unreadable file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, foreign or malicious: never unpickled for real
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(f"cannot read {path} as a weights-only torch file: "
                              f"{type(exc).__name__}: {detail}") from None


def save_checkpoint(
    path: str | os.PathLike,
    *,
    config: DMGANConfig,
    networks: Mapping[str, nn.Module | Mapping[str, torch.Tensor]],
    **extra: Any,
) -> None:
    from dmgan import __version__

    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dmgan_version": __version__,
        "config": config.to_dict(),
        "networks": {name: net.state_dict() if isinstance(net, nn.Module) else dict(net)
                     for name, net in networks.items()},
        **extra,
    }
    atomic_torch_save(payload, path)


def load_checkpoint(
    path: str | os.PathLike, *, expect_preset: str | None = None
) -> tuple[DMGANConfig, dict[str, Any]]:
    """(config, payload). Refuses other files, and other presets when one is expected. A
    model folder (dmgan.model_folder, `save_pretrained`) reads as the model file it holds."""
    path = os.fspath(path)
    if os.path.isdir(path):
        from dmgan.model_folder import read_model_folder

        payload = read_model_folder(path)
    else:
        payload = read_weights_only(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a dmgan checkpoint (a released .pth file? "
                              f"load it with dmgan.released.load_released)")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {payload['format_version']}; this "
                              f"dmgan reads up to {FORMAT_VERSION}: upgrade dmgan")
    if not isinstance(payload.get("config"), dict):
        raise CheckpointError(f"{path} has no config (a dmgan checkpoint stores the config it "
                              f"was made with)")
    try:
        config = DMGANConfig.from_dict(payload["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: its config is broken: {exc}") from None
    if expect_preset is not None and config.name != expect_preset:
        raise PresetMismatchError(f"{path} holds a '{config.name}' model, not '{expect_preset}'")
    return config, payload


def load_network(module: nn.Module, payload: Mapping[str, Any], name: str, path: str = "") -> None:
    """Load payload['networks'][name] into module, with a clear error on any mismatch."""
    nets = payload.get("networks", {})
    if name not in nets:
        raise CheckpointError(f"checkpoint {path} holds no '{name}' (it has {sorted(nets)})")
    state, own = nets[name], module.state_dict()
    for key, value in own.items():
        if key not in state:
            raise CheckpointError(f"checkpoint {path}: '{name}' lacks key '{key}'")
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(f"checkpoint {path}: '{name}.{key}' has shape "
                                  f"{tuple(state[key].shape)}, the model {tuple(value.shape)}")
    extra = [k for k in state if k not in own]
    if extra:
        raise CheckpointError(f"checkpoint {path}: '{name}' has unexpected key '{extra[0]}'")
    for key, value in state.items():  # NaN weights make black images, not errors, downstream
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"checkpoint {path}: '{name}.{key}' holds NaN or infinite "
                                  f"values (a diverged training run?)")
    module.load_state_dict(state)


def generator_name(payload: Mapping[str, Any]) -> str:
    """The generator inference uses from a checkpoint: the EMA generator when it has one."""
    return "generator_ema" if "generator_ema" in payload.get("networks", {}) else "generator"


def lineage_of(*payloads: dict | None) -> list[str]:
    """The command lines that made these checkpoints, their own inputs' first, without repeats."""
    commands: list[str] = []
    for payload in payloads:
        if payload:
            for command in [*payload.get("lineage", []), payload.get("command")]:
                if command and command not in commands:
                    commands.append(command)
    return commands
