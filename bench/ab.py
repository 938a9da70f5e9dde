"""A/B comparison of two source trees on a noisy machine: run one benchmark command
alternately against tree A and tree B (A, B, A, B, ...), then report for each result line
the median over rounds of its `median_s`, and the ratio B/A.

    git worktree add /tmp/dmgan-before <commit>
    python bench/ab.py --a /tmp/dmgan-before/src --b src --rounds 3 -- \\
        bench/train_step.py --batch 10 --repeats 3

Alternating, rather than all A runs then all B runs, spreads slow periods of a shared
machine over both sides. Each tree is put first on PYTHONPATH for its runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys


def run(src: str, command: list[str]) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
    out = subprocess.run([sys.executable, *command], env=env, capture_output=True, text=True,
                         check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", required=True, help="source tree A (the folder holding dmgan/)")
    p.add_argument("--b", required=True, help="source tree B")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- benchmark script and its arguments")
    args = p.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("give the benchmark command after --")
    results: dict[str, list[list[dict]]] = {"a": [], "b": []}
    for r in range(args.rounds):
        for side in ("a", "b"):
            results[side].append(run(getattr(args, side), command))
            print(f"round {r + 1} {side}: " + " ".join(str(x["median_s"]) for x in results[side][-1]),
                  file=sys.stderr, flush=True)
    for i, line in enumerate(results["a"][0]):
        a = statistics.median(rounds[i]["median_s"] for rounds in results["a"])
        b = statistics.median(rounds[i]["median_s"] for rounds in results["b"])
        label = {k: v for k, v in line.items() if k in ("bench", "preset", "batch", "variant", "layout",
                                                        "device", "amp", "compile")}
        print(json.dumps({**label, "rounds": args.rounds, "a_median_s": a, "b_median_s": b,
                          "b_over_a": round(b / a, 3)}))


if __name__ == "__main__":
    main()
