"""How fast can a shapes generator learn when it is shown the answer? The generator alone,
taught only by the squared (`l2`) or absolute (`l1`) difference of each stage's image to
the real picture of its caption (no discriminator, no DAMSM term), on the frozen text
encoder of a DAMSM. Every `--every` steps the oracle judges it on `--n` held-out captions
(as `metrics.jsonl` does in a run), one JSON line each.

    OMP_NUM_THREADS=1 python bench/pixel_only.py DAMSM --steps 3000 --lr 5e-4 --norm l2 \
        [--preset shapes32] [--set generator.gf_dim=32] [--text-preset shapes]

The supervised ceiling of the pixel term (`loss.pixel_weight`): what a GAN run with it can
hope to learn per step, at about 2.5 times the GAN's steps per second.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("damsm", help="the DAMSM whose text encoder reads the captions")
    p.add_argument("--preset", default="shapes32")
    p.add_argument("--text-preset", default=None,
                   help="the preset the DAMSM was trained with (default: --preset)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--norm", choices=["l1", "l2"], default="l2")
    p.add_argument("--every", type=int, default=500)
    p.add_argument("--n", type=int, default=200, help="held-out captions per evaluation")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import torch

    from dmgan import preset
    from dmgan.config import override
    from dmgan.data.loader import epoch_loader
    from dmgan.data.open import open_data
    from dmgan.losses.generator import pixel_difference
    from dmgan.metrics.shapes import shapes_accuracy
    from dmgan.models import build_generator
    from dmgan.train.damsm import load_damsm

    cfg = override(preset(args.preset), args.set)
    torch.manual_seed(args.seed)
    train = open_data(cfg, "shapes", "train", max_words=cfg.text.words_train, seed=args.seed)
    text_encoder, _, _ = load_damsm(args.damsm, preset(args.text_preset or args.preset))
    g = build_generator(cfg)
    opt = torch.optim.Adam(g.parameters(), lr=args.lr, betas=(cfg.train.beta1, cfg.train.beta2))
    order, loader = epoch_loader(train, cfg.train.batch_size, seed=args.seed, workers=1)
    step, epoch, start = 0, 0, time.perf_counter()
    while step < args.steps:
        order.start(epoch, 0)
        for batch in loader:
            with torch.no_grad():
                text = text_encoder(batch.captions, batch.lengths)
            z = torch.randn(len(batch.lengths), cfg.generator.z_dim)
            out = g(z, text.sentence, text.words, text.mask)
            loss = sum(pixel_difference(f, r, args.norm) for f, r in zip(out.images, batch.images,
                                                                         strict=True))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % args.every == 0:
                scores = shapes_accuracy(g, text_encoder, n=args.n, real=False)["generated"]
                print(json.dumps({"step": step, "seconds": round(time.perf_counter() - start),
                                  "loss": round(loss.item(), 4),
                                  **{k: round(v, 3) for k, v in scores.items()}}), flush=True)
            if step >= args.steps:
                break
        epoch += 1


if __name__ == "__main__":
    main()
