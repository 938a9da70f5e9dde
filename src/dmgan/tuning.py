"""Choices that depend on the machine, made by measuring on it: a short probe the first
time a command meets a (machine, torch, network, batch) combination, then cached.

- the CPU thread count of a training process (`probe_threads`): the preset's generator,
  forward and backward at the training batch (or as much of it as one call at one thread
  does in PROBE_SECONDS, at least PROBE_BATCH), timed at 1, 2, 4, ... threads up to the
  cores this process may use; the fastest wins, ties (within 5%) go to fewer threads. A
  small network at a small batch gains nothing from a second thread that it gains at the
  training batch (shapes32: a tie at batch 4, 1.57x faster on 2 threads at batch 32);
- the memory layout of inference (`probe_layout`): the generator prepared for inference
  (batch norms folded) in contiguous and in channels_last layout, timed at batch 1;
- how large host memory is allocated (`probe_allocator`): filling fresh 256 MiB tensors
  with glibc's defaults (a new mmap each, faulted in page by page) and from a heap that
  keeps freed blocks (dmgan.device.use_heap_reuse), each in a child process.

The cache is a JSON file (`$DMGAN_CACHE` or ~/.cache/dmgan/probes.json) keyed by the CPU
model, the cores, the torch version and what was probed; each entry keeps the times, so
the log can say why. A probe that cannot write its cache still answers. A thread probe
measured while other work keeps a core busy answers for that run only and is not cached:
timed beside another process, 2 threads measure as slow as 1, and a cached tie would hold
every later run on a quiet machine to one thread.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import time
from pathlib import Path

import torch

from dmgan.device import (
    ALLOCATORS,
    HEAP_TRIM_BYTES,
    MAX_AUTO_THREADS,
    available_cores,
    glibc,
    use_heap_reuse,
)
from dmgan.errors import DMGANError
from dmgan.fileio import atomic_write_text

TIE = 1.05  # within 5% of the fastest counts as as fast
BUSY_CORES = 0.5  # other work keeping this many cores busy makes a probe's times local
PROBES_VERSION = 3  # 2: probes on a busy machine not cached; 3: threads at the training batch


def cache_path() -> Path:
    root = os.environ.get("DMGAN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "dmgan")
    return Path(root) / "probes.json"


def _machine_key() -> str:

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}|{available_cores()} cores|torch {torch.__version__}|probes v{PROBES_VERSION}"


def busy_cores(seconds: float = 0.3) -> float | None:
    """How many of the machine's cores other work kept busy over `seconds` while this
    process slept (Linux /proc/stat); None where that cannot be read."""
    def read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(x) for x in f.readline().split()[1:9]]
        return sum(values), values[3] + values[4]  # all, idle + iowait

    try:
        total0, idle0 = read()
        time.sleep(seconds)
        total1, idle1 = read()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (os.cpu_count() or 1) * (1.0 - (idle1 - idle0) / (total1 - total0))


def _cached(what: str, measure, *, quiet_only: bool = False) -> tuple[dict, bool]:
    """(entry, from_cache): the cached entry for `what` on this machine, or measure() stored;
    `quiet_only`: stored only when other work kept under BUSY_CORES cores busy (else the
    entry says how many, under "busy_cores")."""
    path, key = cache_path(), f"{_machine_key()}|{what}"
    try:
        table = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        table = {}
    if key in table:
        return table[key], True
    busy = busy_cores() if quiet_only else None
    entry = measure()
    if busy is not None and busy >= BUSY_CORES:
        return {**entry, "busy_cores": round(busy, 2)}, False  # this run's answer only
    table[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(table, indent=1))
    except OSError:
        pass  # a read-only home: measured again next time
    return entry, False


def _seconds(fn, repeats: int = 3) -> float:
    fn()  # warm-up (allocations, kernel choice)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _inputs(cfg, batch: int, words: int = 12):
    d = cfg.text.embed_dim
    gen = torch.Generator().manual_seed(0)
    return (torch.randn(batch, cfg.generator.z_dim, generator=gen),
            torch.randn(batch, d, generator=gen), torch.randn(batch, d, words, generator=gen),
            torch.zeros(batch, words, dtype=torch.bool))


PROBE_BATCH = 4  # the thread probe's batch at least (when training's is as large)
PROBE_SECONDS = 0.3  # the thread probe's batch at most: one call at one thread this long


def probe_threads(cfg, batch: int, *, busy: bool = False):
    """(threads, {threads: seconds}, from_cache) for a training step of cfg's generator
    (forward and backward, at the training batch or as much of it as PROBE_SECONDS allows);
    with `busy`, also the cores other work kept busy when it was measured and not cached
    (else None). The entry keeps the batch it timed ("probe_batch")."""
    from dmgan.models import build_generator

    cores = available_cores()
    candidates = sorted({1, cores} | {n for n in (2, 4, 8, 16, 32, 64) if n < cores})

    def measure() -> dict:
        g = build_generator(cfg).train().to(memory_format=torch.channels_last)
        before = torch.get_num_threads()

        def step(inputs):
            out = g(*inputs)
            sum(x.float().mean() for x in out.images).backward()

        times = {}
        try:
            torch.set_num_threads(1)
            pair = _inputs(cfg, 2)
            per_image = _seconds(lambda: step(pair), repeats=1) / 2
            size = max(min(batch, PROBE_BATCH), min(batch, int(PROBE_SECONDS / per_image)))
            inputs = _inputs(cfg, max(2, size))
            for n in candidates:
                torch.set_num_threads(n)
                times[str(n)] = round(_seconds(lambda: step(inputs), repeats=2), 4)
        finally:
            torch.set_num_threads(before)
        return {"times_s": times, "probe_batch": max(2, size)}

    entry, hit = _cached(f"threads|{cfg.name}|{cfg.generator.gf_dim}|batch {batch}", measure,
                         quiet_only=True)
    times = {int(k): v for k, v in entry["times_s"].items()}
    best = min(times.values())
    n = min(n for n, t in times.items() if t <= best * TIE)
    return (n, times, hit, entry.get("busy_cores")) if busy else (n, times, hit)


def probe_layout(generator: torch.nn.Module, cfg, batch: int = 1) -> tuple[bool, dict, bool]:
    """(channels_last, {layout: seconds}, from_cache) for inference with this generator
    (batch norms already folded, eval mode)."""

    def measure() -> dict:
        inputs = _inputs(cfg, batch)
        times = {}
        for layout, fmt in (("contiguous", torch.contiguous_format),
                            ("channels_last", torch.channels_last)):
            g = copy.deepcopy(generator).to(memory_format=fmt)
            with torch.inference_mode():
                times[layout] = round(_seconds(lambda g=g: g(*inputs)), 4)
        return {"times_s": times}

    what = f"layout|{cfg.name}|{cfg.generator.gf_dim}|{torch.get_num_threads()} threads|batch {batch}"
    entry, hit = _cached(what, measure)
    times = entry["times_s"]
    return times["channels_last"] <= times["contiguous"] * TIE, times, hit


ALLOC_PROBE_BYTES = 256 << 20
ALLOC_GAIN = 1.5  # the heap must fill fresh memory this much faster to be chosen
_FILL = """
import sys, time, torch
from dmgan.device import use_heap_reuse
if sys.argv[1] == "reuse":
    use_heap_reuse()
times = []
for _ in range(4):
    t0 = time.perf_counter()
    torch.empty(int(sys.argv[2]) // 4).fill_(1.0)
    times.append(time.perf_counter() - t0)
print(min(times[1:]))
"""


def probe_allocator() -> tuple[bool, dict, bool]:
    """(heap reuse pays, {mode: seconds}, from_cache): the time to fill a fresh
    ALLOC_PROBE_BYTES tensor with glibc as it is and with heap reuse, each in a process of
    its own (this one is left as it was). A probe that cannot run answers (False, {}, False)
    and is tried again next time."""
    import subprocess
    import sys


    def measure() -> dict:
        times = {}
        for mode in ("system", "reuse"):
            res = subprocess.run([sys.executable, "-c", _FILL, mode, str(ALLOC_PROBE_BYTES)],
                                 capture_output=True, text=True, timeout=300)
            times[mode] = round(float(res.stdout.strip().splitlines()[-1]), 4)
        return {"times_s": times}

    what = f"allocator|{ALLOC_PROBE_BYTES >> 20} MiB|trim {HEAP_TRIM_BYTES >> 20} MiB"
    try:
        entry, hit = _cached(what, measure)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return False, {}, False  # no child process, or it printed no time
    times = entry["times_s"]
    return times["system"] >= times["reuse"] * ALLOC_GAIN, times, hit


# --- what the probes decide for this process --------------------------------------------

_allocator: tuple[str, str] | None = None


def configure_threads(requested: int | None = None, *, cfg=None,
                      batch: int | None = None) -> tuple[int, str]:
    """Set torch's intra-op threads; returns (threads, why) for the log.

    requested: an explicit count (a command's `--threads`). Otherwise OMP_NUM_THREADS
    when the user set it; else, given the preset (`cfg`) and `batch`, the count a probe
    measured fastest on this machine (dmgan.tuning, cached); else the cores this process
    may use, capped at MAX_AUTO_THREADS.
    """
    if requested is not None:
        n, why = requested, "--threads"
    elif os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        n, why = int(os.environ["OMP_NUM_THREADS"]), "OMP_NUM_THREADS"
    elif cfg is not None and batch and available_cores() > 1:
        n, times, hit, busy = probe_threads(cfg, batch, busy=True)
        why = ("measured fastest: " + ", ".join(f"{k}: {v:.3f} s" for k, v in times.items())
               + (" (cached)" if hit else "")
               + (f" (other work kept {busy:.1f} cores busy: not cached)" if busy else ""))
    else:
        cores = available_cores()
        n = min(cores, MAX_AUTO_THREADS)
        why = f"{cores} cores available" + (f", capped at {MAX_AUTO_THREADS}" if cores > n else "")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n, why


def configure_allocator(mode: str | None = None) -> tuple[str, str]:
    """How this process allocates large host memory; returns (mode, why) for the log.

    mode (else $DMGAN_ALLOCATOR, else "auto"): "reuse" keeps large blocks on the heap for
    reuse, "system" leaves glibc as it is, "auto" asks a probe whether reuse pays on this
    machine (dmgan.tuning.probe_allocator, cached). The first call decides; later calls
    return its answer. Not glibc (macOS, Windows, musl): "system".
    """
    global _allocator
    if _allocator is not None:
        return _allocator
    mode = mode or os.environ.get("DMGAN_ALLOCATOR") or "auto"
    if mode not in ALLOCATORS:
        raise DMGANError(f"DMGAN_ALLOCATOR={mode!r}: choose one of {', '.join(ALLOCATORS)}")
    if glibc() is None:
        _allocator = ("system", "not glibc")
    elif mode != "auto":
        if mode == "reuse":
            use_heap_reuse()
        _allocator = (mode, "DMGAN_ALLOCATOR" if os.environ.get("DMGAN_ALLOCATOR") else "asked")
    else:
        reuse, times, hit = probe_allocator()
        if reuse:
            use_heap_reuse()
        why = ("measured: " + ", ".join(f"{k} {v:.3f} s" for k, v in times.items())
               + (" (cached)" if hit else "")) if times else "the probe could not run"
        _allocator = ("reuse" if reuse else "system", why)
    return _allocator
