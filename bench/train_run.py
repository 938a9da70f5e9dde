"""A whole `dmgan train` run on the shapes preset, as a user runs it (data loader workers,
logging, samples, checkpoints and evaluation at their intervals), timed from its log:
steady-state images/s after a warm-up, and the wall time of the whole run.

Runs `python -m dmgan train` with the dmgan found first on PYTHONPATH, so bench/ab.py can
compare two source trees with it (older trees without --threads get OMP_NUM_THREADS):

    python bench/ab.py --a /tmp/dmgan-before/src --b src --rounds 2 -- \\
        bench/train_run.py --damsm runs/damsm-s0/damsm.pt --steps 400 --every 200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--damsm", required=True, help="a shapes DAMSM (dmgan pretrain-damsm)")
    p.add_argument("--preset", default="shapes")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--warmup", type=int, default=50, help="steps left out of the rate")
    p.add_argument("--every", type=int, default=200,
                   help="checkpoint, sample and evaluation interval (the defaults are 500)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: unset)")
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    p.add_argument("--cuda-graphs", action="store_true", help="train --cuda-graphs (GPU)")
    args = p.parse_args()
    import torch
    from benchlib import machine_record

    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="dmgan-bench-") as tmp:
        run = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "dmgan", "train", "--preset", args.preset, "--data", "shapes",
               "--damsm", args.damsm, "--out", str(run), "--max-steps", str(args.steps),
               "--workers", str(args.workers), "--log-every", "25",
               "--sample-every", str(args.every), "--ckpt-every", str(args.every),
               "--eval-every", str(args.every), "--min-damsm-r1", "0"]
        # only what differs from train's defaults, so older trees without the options run too
        cmd += ["--device", args.device] if args.device != "auto" else []
        cmd += ["--amp", args.amp] if args.amp != "off" else []
        cmd += ["--cuda-graphs"] if args.cuda_graphs else []
        t0 = time.perf_counter()
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if res.returncode != 0:
            sys.exit(f"train failed:\n{res.stderr[-3000:]}")
        log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    batch = json.loads(subprocess.run(
        [sys.executable, "-m", "dmgan", "info", "--preset", args.preset, "--json"], env=env,
        capture_output=True, text=True, check=True).stdout)["config"]["train"]["batch_size"]
    start = next(r for r in log if r["step"] >= args.warmup)
    end = log[-1]
    per_step = (end["elapsed_s"] - start["elapsed_s"]) / (end["step"] - start["step"])
    print(json.dumps({"bench": "train_run", "preset": args.preset, "batch": batch,
                      "workers": args.workers, "steps": args.steps, "every": args.every,
                      "device": args.device, "amp": args.amp, "cuda_graphs": args.cuda_graphs,
                      "median_s": round(per_step, 4), "steps_per_s": round(1 / per_step, 2),
                      "images_per_s": round(batch / per_step, 1),
                      "wall_s": round(wall, 1), "machine": machine_record()}))


if __name__ == "__main__":
    main()
