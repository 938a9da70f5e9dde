"""The shapes recipe study: one change per row, the same DAMSM, seed and step budget; each
row judged by the oracle (EMA and live G) on 500 held-out captions.

    python bench/recipe_study.py --damsm runs/damsm/damsm.pt --steps 1500 --rows baseline hinge
    python bench/recipe_study.py --table bench/results/recipe_study.jsonl

Each row runs `dmgan train` in a subprocess (so rows can run side by side, each with
--threads of its own), then appends one JSON line to --out: the changes, steps, wall
time, images/s and the accuracies. `--table` prints the rows as the markdown table kept
in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# one change from the shapes preset per row (names are what the table shows)
ROWS: dict[str, list[str]] = {
    "baseline": [],
    "hinge": ["loss.adversarial=hinge"],
    "hinge+ma-gp": ["loss.adversarial=hinge", "loss.ma_gp_weight=2"],
    "ma-gp": ["loss.ma_gp_weight=2"],
    "damsm-30": ["loss.damsm_weight=30"],
    "damsm-2": ["loss.damsm_weight=2"],
    "damsm-0.5": ["loss.damsm_weight=0.5"],
    "d-slow": ["train.lr_d=1e-4"],
    "base-32": ["generator.base_size=32", "generator.num_stages=2"],
    "gf-32": ["generator.gf_dim=32"],
    "lr-2e-4": ["train.lr_g=2e-4", "train.lr_d=2e-4"],
    "ttur": ["train.lr_g=1e-4", "train.lr_d=4e-4"],
    "batch-64": ["train.batch_size=64"],
    "d-steps-2": ["train.d_steps=2"],
    "hard-neg": ["train.hard_negatives=true"],
    "contrast": ["train.contrast_negatives=true"],
    "no-memory": ["generator.memory=false"],
}


def run_row(name: str, sets: list[str], args: argparse.Namespace) -> dict:
    run = Path(args.runs) / f"{name}-s{args.seed}"
    cmd = [sys.executable, "-m", "dmgan", "train", "--preset", "shapes", "--data", "shapes",
           "--damsm", args.damsm, "--out", str(run), "--max-steps", str(args.steps),
           "--seed", str(args.seed), "--workers", str(args.workers), "--log-every", "100",
           "--ckpt-every", str(args.steps), "--sample-every", str(args.steps), "--eval-every", "0"]
    for s in sets + args.common:
        cmd += ["--set", s]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    t0 = time.perf_counter()
    with open(Path(args.runs) / f"{name}-s{args.seed}.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    wall = time.perf_counter() - t0
    return {"row": name, "sets": sets + args.common, "damsm": args.damsm, "seed": args.seed,
            "steps": args.steps,
            "threads": args.threads, "wall_s": round(wall, 1),
            "steps_per_min": round(args.steps / wall * 60, 1), **judge(run, args)}


def judge(run: Path, args: argparse.Namespace) -> dict:
    import torch

    from dmgan.checkpoint import load_checkpoint
    from dmgan.metrics.shapes import shapes_accuracy
    from dmgan.models import build_generator
    from dmgan.train.damsm import load_damsm
    from dmgan.train.runs import checkpoints

    torch.set_num_threads(args.threads)
    cfg, payload = load_checkpoint(checkpoints(run)[0])
    text_encoder = load_damsm(args.damsm, cfg)[0]
    out = {}
    for key, name in (("ema", "generator_ema"), ("live", "generator")):
        g = build_generator(cfg, init=False)
        g.load_state_dict(payload["networks"][name])
        scores = shapes_accuracy(g, text_encoder, n=args.judge, real=False)["generated"]
        out[key] = {k: round(v, 3) for k, v in scores.items()}
    return out


def table(path: Path) -> str:
    cols = ("colour", "shape", "size", "position", "background", "all", "two_object_all")
    head = ("| row | seed | steps | steps/min | " + " | ".join(f"{c} EMA / live" for c in cols)
            + " |")
    lines = [head, "|" + " --- |" * (4 + len(cols))]
    for line in path.read_text().splitlines():
        r = json.loads(line)
        cells = [f"{r['ema'][c]:.2f} / {r['live'][c]:.2f}" for c in cols]
        lines.append(f"| {r['row']} | {r['seed']} | {r['steps']} | {r['steps_per_min']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--damsm", help="DAMSM checkpoint shared by every row")
    p.add_argument("--rows", nargs="+", default=["baseline"], choices=sorted(ROWS))
    p.add_argument("--common", nargs="*", default=[], help="--set values added to every row")
    p.add_argument("--label", default="", help="appended to the row names (e.g. the DAMSM used)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--judge", type=int, default=500, help="held-out captions judged")
    p.add_argument("--runs", default="runs/study", help="folder for the run folders")
    p.add_argument("--out", default="bench/results/recipe_study.jsonl")
    p.add_argument("--table", help="print the markdown table of this JSONL file and exit")
    args = p.parse_args()
    if args.table:
        print(table(Path(args.table)))
        return
    if not args.damsm:
        p.error("--damsm is required to run rows")
    Path(args.runs).mkdir(parents=True, exist_ok=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for name in args.rows:
        row = run_row(name + args.label, ROWS[name], args)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
