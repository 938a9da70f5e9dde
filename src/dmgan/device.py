"""Where the work runs: the device a command asked for, the CPU thread count, how host
memory is allocated, and mixed precision.

Every command takes `--device auto|cpu|cuda[:N]` with the default `auto` (the GPU when
torch sees one, else the CPU). Asking for a device this torch cannot use is a user
mistake (one line, exit 2), not a traceback.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import sys
import warnings

import torch

from dmgan.errors import DMGANError

DEVICES = "auto, cpu, cuda or cuda:N"


def resolve_device(name: str | torch.device = "auto", *, flag: str = "--device") -> torch.device:
    """`auto` -> cuda when available, else cpu; a clear DMGANError for a device that cannot be
    used, naming it as `flag` does (the CLI's "--device", the Python API's "device")."""
    instead = "--device cpu (or auto)" if flag == "--device" else "'cpu' (or 'auto')"
    if isinstance(name, torch.device):
        name = str(name)
    text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise DMGANError(f"{flag} {name!r}: expected {DEVICES}") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise DMGANError(f"{flag} {name!r}: expected {DEVICES}")
    if not torch.cuda.is_available():
        why = ("this torch was built without CUDA" if torch.version.cuda is None
               else "no CUDA device is visible")
        raise DMGANError(f"{flag} {name}: {why}; use {instead}")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DMGANError(f"{flag} {name}: there are only {torch.cuda.device_count()} CUDA "
                         f"device(s)")
    return dev


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# Past this many threads the small convolutions of these networks stop scaling and the
# threads' synchronisation costs more than it buys (a 16-core machine ran DAMSM
# pre-training 2.3x slower than a 2-core one with torch's default of one thread per core).
MAX_AUTO_THREADS = 8


# --- host memory -----------------------------------------------------------------------------
# glibc serves every block over 32 MiB with a fresh mmap and unmaps it when freed, so each
# large activation is new memory the kernel faults in and zeroes page by page: slow on a
# virtual machine. Kept on the heap for reuse it is faster, at a higher peak resident memory
# (docs/benchmarks.md, "Host memory"); dmgan.tuning.configure_allocator chooses per machine.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters (malloc.h)
HEAP_TRIM_BYTES = 1 << 30  # free memory the heap may keep at its top before returning it
ALLOCATORS = ("auto", "reuse", "system")


def glibc():
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def use_heap_reuse() -> bool:
    """From now on, large blocks come from the heap and stay there for reuse (glibc only;
    False, nothing changed, elsewhere). There is no way back for the process: glibc's
    adaptive threshold, once overridden, stays off."""
    libc = glibc()
    return libc is not None and bool(libc.mallopt(_M_MMAP_MAX, 0)
                                     and libc.mallopt(_M_TRIM_THRESHOLD, HEAP_TRIM_BYTES))


AMP_MODES = ("off", "bf16", "fp16")


def autocast(device: torch.device, amp: str, *, cache: bool = True):
    """Mixed precision for `amp` ("off": none) on `device`. cache=False casts the weights
    at every use (what a CUDA graph recording needs: no cast copies kept across its
    boundary)."""
    if amp == "off":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=cache)


def check_amp(amp: str, device: torch.device) -> None:
    """A precision this device can run (DMGANError if not); a warning where bf16 is only
    emulated. bf16 runs on the CPU's bf16 units where it has them (AVX512-BF16, AMX)."""
    if amp not in AMP_MODES:
        raise DMGANError(f"--amp must be one of {', '.join(AMP_MODES)}, got {amp!r}")
    if amp == "fp16" and device.type != "cuda":
        raise DMGANError("--amp fp16 needs a CUDA device; use bf16 or off on CPU")
    if amp == "bf16" and device.type == "cpu" and not cpu_has_bf16():
        warnings.warn("bf16 on this CPU is emulated and slower than fp32 (no bf16 units); "
                      "it is the fast path on a GPU", stacklevel=2)


def cpu_has_bf16() -> bool:
    """Whether oneDNN finds bf16 instructions on this CPU (AVX512-BF16, AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
