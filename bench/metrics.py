"""Inception feature extraction (images/s) and the FID distance on 2048-d statistics.

    python bench/metrics.py --images 64 --batch 16 --repeats 3

Random Inception weights (speed does not depend on their values). The FID row compares
dmgan's eigendecomposition route with scipy's sqrtm route on the same statistics.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics as st
import time

import numpy as np
import torch


def bench_extraction(n: int, batch: int, repeats: int, mode_name: str) -> dict:
    from dmgan.metrics.features import MODES, extract
    from dmgan.nn import InceptionV3

    mode = MODES[mode_name]
    torch.manual_seed(0)
    net = InceptionV3(variant=mode.variant).eval()
    gen = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, 256, 256), dtype=torch.uint8, generator=gen) for _ in range(n)]
    extract(images[:batch], net, mode, batch_size=batch)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        extract(images, net, mode, batch_size=batch)
        times.append(time.perf_counter() - t0)
    med = st.median(times)
    return {"bench": "inception_features", "mode": mode_name, "images": n, "batch": batch,
            "threads": torch.get_num_threads(), "median_s": round(med, 3),
            "images_per_s": round(n / med, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def bench_fid(dim: int, repeats: int) -> dict:
    from scipy import linalg

    from dmgan.metrics import frechet_distance

    rng = np.random.default_rng(0)
    a = rng.standard_normal((3 * dim, dim))
    b = rng.standard_normal((3 * dim, dim)) @ (np.eye(dim) + 0.05 * rng.standard_normal((dim, dim)))
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)

    def scipy_route() -> float:
        covmean = linalg.sqrtm(s1 @ s2)
        d = mu1 - mu2
        return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))

    ours_t, theirs_t = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ours = frechet_distance(mu1, s1, mu2, s2)
        ours_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        theirs = scipy_route()
        theirs_t.append(time.perf_counter() - t0)
    return {"bench": "fid_distance", "dim": dim, "repeats": repeats,
            "dmgan_median_s": round(st.median(ours_t), 3),
            "scipy_sqrtm_median_s": round(st.median(theirs_t), 3),
            "speedup": round(st.median(theirs_t) / st.median(ours_t), 2),
            "fid_dmgan": ours, "fid_scipy": theirs, "relative_difference": abs(ours - theirs) / abs(theirs)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--modes", nargs="+", default=["pytorch-fid"])
    p.add_argument("--fid-dim", type=int, default=2048)
    args = p.parse_args()
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchlib import machine_record

    machine = {"machine": machine_record()}
    for mode in args.modes:
        print(json.dumps(bench_extraction(args.images, args.batch, args.repeats, mode) | machine),
              flush=True)
    print(json.dumps(bench_fid(args.fid_dim, args.repeats) | machine), flush=True)


if __name__ == "__main__":
    main()
