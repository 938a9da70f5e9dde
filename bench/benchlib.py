"""Shared pieces of the benchmarks: timing medians, FLOP counts, a conv peak probe, memory."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[int], None], repeats: int, device: torch.device,
                   warmup: int = 1) -> float:
    """Median wall time of fn(i) over `repeats` calls after `warmup` untimed ones."""
    for i in range(warmup):
        fn(i)
    sync(device)
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(warmup + i)
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def count_flops(fn: Callable[[], None]) -> int:
    """FLOPs of the matmuls and convolutions (forward and backward) that fn runs, as executed."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def conv_peak_flops(device: torch.device, dtype: torch.dtype, repeats: int = 5) -> float:
    """FLOP/s of a good 3x3 convolution in channels_last (128 -> 256 channels, 128 px): the
    practical ceiling for conv networks on this device, measured rather than looked up."""
    batch = 8 if device.type == "cpu" else 64
    x = torch.randn(batch, 128, 128, 128, device=device, dtype=dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(256, 128, 3, 3, device=device, dtype=dtype)
    w = w.contiguous(memory_format=torch.channels_last)
    flops = 2 * batch * 256 * 128 * 9 * 128 * 128
    with torch.inference_mode():
        sec = median_seconds(lambda _: F.conv2d(x, w, padding=1), repeats, device)
    return flops / sec


def peak_memory_mib(device: torch.device) -> float:
    """Peak resident memory of this process (CPU) or peak allocated GPU memory (CUDA)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine_record(device: torch.device | None = None, probe: bool = True) -> dict:
    """What a benchmark row ran on: CPU model, ISA flags that matter for these kernels,
    cores, torch threads, torch version, GPU name, and (probe=True) the conv probe's
    GFLOP/s measured now, in this process: machines of one kind differ 2-3x, so rows
    from different runs compare only through it."""
    import os
    import platform

    device = device or torch.device("cpu")
    cpu, flags = platform.processor() or "?", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu in ("?", "x86_64", ""):
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    record = {"cpu": cpu, "isa": sorted(flags & {"avx2", "fma", "avx512f", "avx512_bf16",
                                                 "avx512_vnni", "amx_bf16", "amx_tile"}),
              "cores": cores, "threads": torch.get_num_threads(), "torch": torch.__version__,
              "device": str(device)}
    if device.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
    from dmgan.tuning import configure_allocator

    record["allocator"] = configure_allocator()[0]  # host memory (dmgan.device)
    if probe:
        dtype = torch.float32
        record["conv_probe_gflops"] = round(conv_peak_flops(device, dtype, repeats=3) / 1e9, 1)
    return record
