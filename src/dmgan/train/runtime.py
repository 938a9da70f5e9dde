"""The distributed runtime of a training process: its device, rank and world size, and
what the processes exchange (gradients, buffers, logged statistics); mixed precision."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from dmgan.device import resolve_device


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Only the main process (rank 0) logs, writes samples and saves."""
        return self.rank == 0


def setup_runtime(device: str = "auto") -> Runtime:
    """Device, and the process group when launched by torchrun (NCCL on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", dev.index or 0)))
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


def mean_across_ranks(values: dict[str, torch.Tensor], rt: Runtime) -> dict[str, torch.Tensor]:
    """The mean over processes of each 0-d statistic (one all-reduce for all of them), so a
    logged loss describes the whole batch, not rank 0's share of it."""
    if rt.world == 1 or not values:
        return values
    keys = sorted(values)
    flat = torch.stack([values[k].float().reshape(()) for k in keys])
    dist.all_reduce(flat)
    flat /= rt.world
    return dict(zip(keys, flat.unbind(), strict=True))


def broadcast_state(module: torch.nn.Module, rt: Runtime, *, buffers_only: bool = False) -> None:
    """Rank 0's parameters and buffers (or buffers only: each step) to every process."""
    if rt.world == 1:
        return
    params = [] if buffers_only else list(module.parameters())
    for t in params + list(module.buffers()):
        dist.broadcast(t.data, 0)
