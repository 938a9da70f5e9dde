"""A/B comparison on a noisy machine: run two benchmarks alternately (A, B, A, B, ...), then
report for each result line the median over rounds of its `median_s`, the ratio B/A and
the speed-up A/B, with the machine it ran on.

A side is a source tree (`--a DIR`: the folder holding dmgan/, put first on PYTHONPATH,
running the benchmark command given after --) or a whole command (`--a-command "..."`),
such as the released code's timing script:

    git worktree add /tmp/dmgan-before <commit>
    python bench/ab.py --a /tmp/dmgan-before/src --b src --rounds 3 -- \\
        bench/train_step.py --batch 10 --repeats 3

    python bench/ab.py --a-command "python ../shared/baseline/official_step.py --mode train \\
        --batch 10 --repeats 3 --threads 2" --b src --rounds 3 -- \\
        bench/train_step.py --preset bird --batch 10 --repeats 3

Alternating, rather than all A runs then all B runs, spreads slow periods of a shared
machine over both sides. The conv probe (benchlib.conv_peak_flops) runs once per round in
this process and its median is recorded with the machine, so rows from different runs
compare only through it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def run(src: str | None, command: list[str]) -> list[dict]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.path.abspath(src)
        command = [sys.executable, *command]
    res = subprocess.run(command, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{res.stderr[-3000:]}")
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    for side in ("a", "b"):
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument(f"--{side}", help=f"source tree {side.upper()} (the folder holding dmgan/)")
        g.add_argument(f"--{side}-command", help=f"side {side.upper()} as a whole command line")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("command", nargs=argparse.REMAINDER,
                   help="-- benchmark script and its arguments (for source-tree sides)")
    args = p.parse_args()
    import torch
    from benchlib import conv_peak_flops, machine_record

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    sides = {}
    for side in ("a", "b"):
        if getattr(args, f"{side}_command"):
            sides[side] = (None, shlex.split(getattr(args, f"{side}_command")))
        else:
            if not command:
                p.error("give the benchmark command after -- for a source-tree side")
            sides[side] = (getattr(args, side), command)
    results: dict[str, list[list[dict]]] = {"a": [], "b": []}
    probes = []
    for r in range(args.rounds):
        probes.append(conv_peak_flops(torch.device("cpu"), torch.float32, repeats=3) / 1e9)
        for side in ("a", "b"):
            results[side].append(run(*sides[side]))
            print(f"round {r + 1} {side}: " + " ".join(str(x["median_s"]) for x in results[side][-1]),
                  file=sys.stderr, flush=True)
    # the GPU too when the rows ran on one (the conv probe stays the CPU's, for every row)
    on_gpu = any(str(x.get("device", "")).startswith("cuda") for x in results["a"][0])
    machine = machine_record(torch.device("cuda") if on_gpu else None, probe=False) | {
        "conv_probe_gflops": round(statistics.median(probes), 1),
        "conv_probe_gflops_rounds": [round(x, 1) for x in probes]}
    described = {s: (f"tree {v[0]}" if v[0] else "command") + ": " + " ".join(v[1])
                 for s, v in sides.items()}
    for i, line in enumerate(results["a"][0]):
        a = statistics.median(rounds[i]["median_s"] for rounds in results["a"])
        b = statistics.median(rounds[i]["median_s"] for rounds in results["b"])
        label = {k: v for k, v in line.items() if k in ("bench", "preset", "batch", "variant",
                                                        "layout", "device", "amp", "compile",
                                                        "threads", "workers")}
        memory = {}
        for side in ("a", "b"):  # each side's own peak memory, when its rows report one
            peaks = [rounds[i].get("peak_memory_mib") for rounds in results[side]]
            if all(isinstance(x, (int, float)) for x in peaks):
                memory[f"{side}_peak_memory_mib"] = statistics.median(peaks)
        print(json.dumps({**label, "rounds": args.rounds, "a_median_s": a, "b_median_s": b,
                          "b_over_a": round(b / a, 3), "speedup_of_b": round(a / b, 3),
                          **memory, "a": described["a"], "b": described["b"],
                          "machine": machine}))


if __name__ == "__main__":
    main()
