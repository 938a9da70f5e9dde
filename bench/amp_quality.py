"""What bf16 mixed precision changes in a model's images: the same held-out captions and
noise as `dmgan eval --data shapes`, generated in fp32 and under bf16 autocast (as
`dmgan generate --amp bf16` runs), compared pixel by pixel (levels of 255) and, for a
shapes model, judged by the oracle both ways.

    python bench/amp_quality.py src/dmgan/assets/shapes_model.pt [--n 500]
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a shapes model file or a training checkpoint (EMA G)")
    p.add_argument("--n", type=int, default=500, help="held-out captions")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import torch

    from dmgan import DMGAN
    from dmgan.device import autocast, cpu_has_bf16
    from dmgan.imageio import to_uint8
    from dmgan.metrics.shapes import generate_for_captions, held_out_captions, oracle_scores

    model = DMGAN.from_checkpoint(args.checkpoint).optimize_for_inference()
    data = held_out_captions(args.n, args.seed)
    cpu = torch.device("cpu")
    images, scores = {}, {}
    for amp in ("off", "bf16"):
        with torch.inference_mode(), autocast(cpu, amp):
            images[amp], attributes = generate_for_captions(
                model.generator, model.text_encoder, data, seed=args.seed)
        scores[amp] = oracle_scores(images[amp], attributes)
    diff = (torch.from_numpy(to_uint8(images["off"])).int()
            - torch.from_numpy(to_uint8(images["bf16"])).int()).abs().float()
    print(json.dumps({
        "checkpoint": args.checkpoint, "captions": args.n, "cpu_has_bf16": cpu_has_bf16(),
        "levels_mean": round(diff.mean().item(), 3), "levels_max": int(diff.max()),
        "share_over_2_levels": round((diff > 2).float().mean().item(), 5),
        "oracle_fp32": {k: round(v, 4) for k, v in scores["off"].items()},
        "oracle_bf16": {k: round(v, 4) for k, v in scores["bf16"].items()}}))


if __name__ == "__main__":
    main()
