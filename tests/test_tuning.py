"""Choices measured on the machine at run time (dmgan.tuning): thread count and layout."""

from __future__ import annotations

import json
import os

import torch

from dmgan import preset, tuning
from dmgan.device import available_cores
from dmgan.tuning import cache_path, configure_threads, probe_layout, probe_threads


def test_the_thread_probe_picks_a_measured_count_and_caches_it(monkeypatch, tmp_path):
    monkeypatch.setenv("DMGAN_CACHE", str(tmp_path))
    monkeypatch.setattr(tuning, "busy_cores", lambda: 0.0)  # a quiet machine
    cfg = preset("tiny")
    n, times, hit = probe_threads(cfg, 4)
    assert not hit and 1 <= n <= available_cores() and n in times
    assert min(times.values()) * 1.05 >= times[n]  # the fastest, or as fast with fewer
    again = probe_threads(cfg, 4)
    assert again[2] and again[0] == n  # from the cache
    entry = next(iter(json.loads(cache_path().read_text()).values()))
    assert set(entry["times_s"]) == {str(k) for k in times}
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        threads, why = configure_threads(cfg=cfg, batch=4)
        assert threads == n and "measured fastest" in why and "(cached)" in why
        assert configure_threads(3)[1] == "--threads"
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert configure_threads(cfg=cfg, batch=4) == (1, "OMP_NUM_THREADS")
    finally:
        torch.set_num_threads(before)


def test_the_thread_probe_times_the_training_batch_within_its_budget(monkeypatch, tmp_path):
    """A small network at batch 4 ties on one and two threads where it runs 1.5x faster on
    two at its training batch of 32: the probe times the training batch when one call at
    one thread stays under PROBE_SECONDS, else the most of it that does (PROBE_BATCH at
    least)."""
    monkeypatch.setenv("DMGAN_CACHE", str(tmp_path))
    monkeypatch.setattr(tuning, "busy_cores", lambda: 0.0)
    cfg = preset("tiny")

    def probed(batch):
        probe_threads(cfg, batch)
        table = json.loads(cache_path().read_text())
        return next(v for k, v in table.items() if k.endswith(f"|batch {batch}"))["probe_batch"]

    monkeypatch.setattr(tuning, "PROBE_SECONDS", 60.0)  # a budget the whole batch fits
    assert probed(24) == 24
    monkeypatch.setattr(tuning, "PROBE_SECONDS", 1e-9)  # a budget nothing fits
    assert probed(32) == tuning.PROBE_BATCH
    assert probed(3) == 3  # never more than the training batch


def test_a_probe_measured_beside_other_work_answers_but_is_not_cached(monkeypatch, tmp_path):
    """Timed while another process keeps a core busy, more threads measure no faster; such a
    probe answers for its own run only (and the log says so), so a quiet run later
    measures again instead of inheriting a one-thread tie."""
    monkeypatch.setenv("DMGAN_CACHE", str(tmp_path))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(tuning, "available_cores", lambda: 2)
    reading = tuning.busy_cores
    monkeypatch.setattr(tuning, "busy_cores", lambda: 1.2)
    cfg = preset("tiny")
    before = torch.get_num_threads()
    try:
        n, times, hit, busy = probe_threads(cfg, 4, busy=True)
        assert not hit and busy == 1.2 and n in times
        assert not cache_path().exists()
        threads, why = configure_threads(cfg=cfg, batch=4)
        assert "other work kept 1.2 cores busy: not cached" in why and "(cached)" not in why
        monkeypatch.setattr(tuning, "busy_cores", lambda: 0.1)  # quiet now: measured, kept
        assert probe_threads(cfg, 4)[2] is False and probe_threads(cfg, 4)[2] is True
        assert "not cached" not in configure_threads(cfg=cfg, batch=4)[1]
    finally:
        torch.set_num_threads(before)
    busy = reading(0.05)  # the real reading: a share of this machine's cores
    assert busy is None or 0.0 <= busy <= (os.cpu_count() or 1) + 1e-6


def test_the_layout_probe_answers_even_when_it_cannot_cache(monkeypatch, tmp_path):
    from dmgan import DMGAN

    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("DMGAN_CACHE", str(blocked))  # the cache cannot be written
    model = DMGAN.from_preset("tiny").optimize_for_inference()
    assert model.layout in ("channels_last", "contiguous")
    cl, times, hit = probe_layout(model.generator, model.config)
    assert not hit and set(times) == {"contiguous", "channels_last"} and isinstance(cl, bool)
    # fixed by the caller: no probe
    assert DMGAN.from_preset("tiny").optimize_for_inference(channels_last=False).layout == "contiguous"


def _allocator_in_a_process(env: dict, tmp_path) -> tuple[int, str, str]:
    """configure_allocator in a fresh process (it is decided once per process)."""
    import os
    import subprocess
    import sys

    code = ("from dmgan.tuning import configure_allocator\n"
            "print(configure_allocator())\n"
            "import torch\n"
            "torch.empty(64 << 20).fill_(1.0)\n"  # large blocks still allocate and free
            "print(configure_allocator())\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "DMGAN_CACHE": str(tmp_path), **env}, timeout=120)
    return res.returncode, res.stdout, res.stderr


def test_host_memory_mode_is_asked_or_measured_once_per_process(tmp_path):
    import platform

    glibc = platform.libc_ver()[0] == "glibc"
    for mode in ("reuse", "system"):
        rc, out, err = _allocator_in_a_process({"DMGAN_ALLOCATOR": mode}, tmp_path)
        lines = out.splitlines()
        assert rc == 0, err
        assert lines[0] == lines[1] == str((mode, "DMGAN_ALLOCATOR") if glibc
                                           else ("system", "not glibc"))
    rc, out, err = _allocator_in_a_process({"DMGAN_ALLOCATOR": "auto"}, tmp_path)
    assert rc == 0 and ("measured: system" in out if glibc else "not glibc" in out), err
    if glibc:  # the probe's times are cached for the machine
        entry = next(v for k, v in json.loads((tmp_path / "probes.json").read_text()).items()
                     if "allocator" in k)
        assert set(entry["times_s"]) == {"system", "reuse"}
        rc, out, _ = _allocator_in_a_process({}, tmp_path)
        assert "(cached)" in out
    rc, out, err = _allocator_in_a_process({"DMGAN_ALLOCATOR": "fast"}, tmp_path)
    assert rc != 0 and "choose one of auto, reuse, system" in err


def test_a_wrong_allocator_setting_is_one_line_and_exit_2(tmp_path):
    import os
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "dmgan", "info"], capture_output=True, text=True,
                         env={**os.environ, "DMGAN_ALLOCATOR": "fast"}, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "DMGAN_ALLOCATOR='fast'" in res.stderr


def test_an_allocator_probe_that_cannot_run_keeps_glibc_and_is_not_cached(monkeypatch, tmp_path):
    import subprocess

    from dmgan.tuning import probe_allocator

    monkeypatch.setenv("DMGAN_CACHE", str(tmp_path))

    def no_output(*args, **kwargs):
        return subprocess.CompletedProcess(args, 1, stdout="", stderr="boom")

    monkeypatch.setattr(subprocess, "run", no_output)
    assert probe_allocator() == (False, {}, False)
    assert not (tmp_path / "probes.json").exists()
