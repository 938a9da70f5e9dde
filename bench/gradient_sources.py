"""Where the generator's gradient comes from: the norm of the gradient that each loss term
puts on each part of G (initial stage, first to_rgb, each memory stage), for one batch of
a training checkpoint.

    python bench/gradient_sources.py runs/study/baseline-s0/ckpt-00001200.pt runs/damsm/damsm.pt

A term whose gradient on the initial stage dwarfs the others decides what the shared
trunk learns (the recipe study found the DAMSM term at 14x D0's on the shapes preset).
"""

from __future__ import annotations

import argparse
import json

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a training checkpoint (ckpt-*.pt)")
    p.add_argument("damsm", help="the DAMSM checkpoint the run used")
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args()

    from dmgan.checkpoint import load_checkpoint
    from dmgan.data.collate import collate
    from dmgan.data.shapes import ShapesDataset
    from dmgan.losses.adversarial import generator_adversarial_loss
    from dmgan.losses.damsm import sentence_loss, words_loss
    from dmgan.models import build_discriminators, build_generator
    from dmgan.train.damsm import load_damsm

    torch.manual_seed(0)
    cfg, payload = load_checkpoint(args.checkpoint)
    te, ie, _ = load_damsm(args.damsm, cfg)
    g = build_generator(cfg, init=False)
    g.load_state_dict(payload["networks"]["generator"])
    ds = build_discriminators(cfg, init=False)
    for i, d in enumerate(ds):
        d.load_state_dict(payload["networks"][f"discriminator{i}"])
    ds.requires_grad_(False)
    data = ShapesDataset(split="train", length=args.batch, image_sizes=cfg.generator.image_sizes,
                         max_words=cfg.text.words_train)
    b = collate([data[i] for i in range(args.batch)])
    text = te(b.captions, b.lengths)
    g.train()
    out = g(torch.randn(args.batch, g.z_dim), text.sentence, text.words, text.mask)
    parts = {"init_stage": g.init_stage, "to_rgb0": g.to_rgb[0],
             **{f"memory_stage{k + 1}": s for k, s in enumerate(g.stages)}}

    def norms(loss: torch.Tensor) -> dict[str, float]:
        g.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        return {name: round(sum(float(x.grad.norm()) ** 2 for x in m.parameters()
                                if x.grad is not None) ** 0.5, 3) for name, m in parts.items()}

    lo = cfg.loss
    rows = {}
    for k, d in enumerate(ds):
        rows[f"adversarial D{k}"] = norms(generator_adversarial_loss(
            [d], [out.images[k]], text.sentence, kind=lo.adversarial, words=text.words,
            mask=text.mask)[0])
    regions, code = ie(out.images[-1])
    w = words_loss(regions, text.words, b.lengths, b.class_ids, gamma1=lo.gamma1,
                   gamma2=lo.gamma2, gamma3=lo.gamma3)
    s0, s1 = sentence_loss(code, text.sentence, b.class_ids, gamma3=lo.gamma3)
    rows[f"DAMSM x {lo.damsm_weight:g}"] = norms(lo.damsm_weight * (w.loss0 + w.loss1 + s0 + s1))
    print(json.dumps({"checkpoint": args.checkpoint, "step": payload.get("step"),
                      "gradient_norms": rows}, indent=1))


if __name__ == "__main__":
    main()
