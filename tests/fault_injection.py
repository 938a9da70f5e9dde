"""Fault injection: a shapes training run killed with SIGKILL at random moments (some during
checkpoint writes), resumed each time, must end bit-identical to an uninterrupted run;
no checkpoint is ever truncated and a resume never picks a damaged one.

    python tests/fault_injection.py --kills 10 --steps 300 --seed 0

Each run is a subprocess (`--worker`) training a tiny shapes config on CPU with a
checkpoint every step, so many kills land inside a checkpoint write.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def tiny_config():
    from dmgan import preset

    return preset("tiny")


def worker(run: str, damsm: str, steps: int, resume: bool) -> None:
    import torch

    from dmgan.train.gan import TrainOptions, train_gan

    torch.set_num_threads(1)
    train_gan(tiny_config(), TrainOptions(data="shapes", out=Path(run), damsm=Path(damsm),
                                          resume=resume, max_steps=steps, workers=0,
                                          log_every=1, sample_every=10**9, ckpt_every=1, keep=3,
                                          progress=False, eval_every=0, min_damsm_r1=0.0))


def _spawn(run: Path, damsm: Path, steps: int, resume: bool, out: Path) -> subprocess.Popen:
    """A worker whose standard output (where a resume says its step) goes to `out`."""
    cmd = [sys.executable, __file__, "--worker", str(run), str(damsm), str(steps)]
    with open(out, "w") as f:
        return subprocess.Popen(cmd + (["--resume"] if resume else []), stdout=f,
                                stderr=subprocess.PIPE)


def _resumed_at(out: Path) -> int | None:
    """The step a worker said it resumed at ("resumed from ckpt-N.pt at step N")."""
    match = re.search(r"resumed from \S+ at step (\d+)", out.read_text())
    return int(match.group(1)) if match else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help="write the JSON summary here too")
    args = p.parse_args()
    if args.worker:
        worker(*args.worker[:2], int(args.worker[2]), args.resume)
        return

    import torch

    from dmgan.checkpoint import load_checkpoint
    from dmgan.train.damsm import pretrain_damsm
    from dmgan.train.runs import checkpoints

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        damsm = pretrain_damsm(tiny_config(), data="shapes", out=tmp / "damsm", max_steps=2,
                               workers=0).path
        t0 = time.monotonic()
        ref = _spawn(tmp / "straight", damsm, args.steps, False, tmp / "straight.out")
        if ref.wait() != 0:
            raise SystemExit(ref.stderr.read().decode())
        run_time = time.monotonic() - t0
        run = tmp / "killed"
        kills, during_write, resumes, started = 0, 0, 0, False
        outs = []
        while kills < args.kills:
            outs.append(tmp / f"worker{len(outs)}.out")
            proc = _spawn(run, damsm, args.steps, started, outs[-1])
            resumes += started
            # kill once the worker has written a checkpoint of its own (a loaded machine may
            # take a while to start it), at a random moment after that
            before = set(checkpoints(run))
            deadline = time.monotonic() + 120
            while (proc.poll() is None and time.monotonic() < deadline
                   and not set(checkpoints(run)) - before):
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 1.0))
            if proc.poll() is not None:  # finished before the kill: start over from scratch
                break
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            started = started or bool(checkpoints(run))
            during_write += any(run.glob(".tmp-ckpt-*"))
            for path in checkpoints(run):  # every checkpoint on disk loads
                load_checkpoint(path)
        outs.append(tmp / "final.out")
        final = _spawn(run, damsm, args.steps, started, outs[-1])
        if final.wait() != 0:
            raise SystemExit(final.stderr.read().decode())
        resumes += started
        resumed_at = [n for n in map(_resumed_at, outs) if n is not None]
        final_resumed_at = _resumed_at(outs[-1])
        logged = [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines()]
        a = load_checkpoint(checkpoints(tmp / "straight")[0])[1]
        b = load_checkpoint(checkpoints(run)[0])[1]
        same = a["step"] == b["step"] == args.steps and all(
            torch.equal(v, b["networks"][n][k])
            for n in a["networks"] for k, v in a["networks"][n].items())
        summary = {"kills": kills, "kills_during_checkpoint_write": during_write,
                   "resumes": resumes, "resumed_at": resumed_at,
                   "final_resumed_at": final_resumed_at,
                   "restarts_from_step_0": logged.count(1) - 1,
                   "steps": args.steps, "bit_identical": same,
                   "uninterrupted_run_s": round(run_time, 1)}
        print(json.dumps(summary))
        if args.out:
            Path(args.out).write_text(json.dumps(summary))
        if not same:
            raise SystemExit("the killed-and-resumed run differs from the uninterrupted one")


if __name__ == "__main__":
    main()
