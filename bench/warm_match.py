"""Teach a shapes run's discriminators which object is where before a GAN fine-tune, and
measure how well they can learn it: every D gains the word reading (`word_match`, plus
`word_context` layers and place codes), and its match head alone (word_* and cond_*
parameters; the conv features stay as trained) learns on real two-object images to
prefer the true caption (target 1) to the one with the two objects' places traded and
the one with their colours traded (target 0). Held-out preference is printed every 500
steps per D as (places, colours, mean match probability of the true caption); the
result is a training checkpoint for `dmgan train --init-from`, with the word options on.

    python bench/warm_match.py runs/words-ft/best.pt runs/dwarm.pt --steps 5000
    dmgan train --preset shapes --data shapes --damsm DAMSM --init-from runs/dwarm.pt \\
        --set discriminator.word_match=true --set discriminator.word_context=1 ...
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a shapes training checkpoint (it has the Ds)")
    p.add_argument("out", help="the training checkpoint to write")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--context", type=int, default=1, help="discriminator.word_context layers")
    p.add_argument("--batch", type=int, default=48)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--train-samples", type=int, default=12000,
                   help="training-split samples drawn (the two-object ones are used)")
    args = p.parse_args()

    import torch
    import torch.nn.functional as F

    from dmgan import DMGAN
    from dmgan.checkpoint import load_checkpoint
    from dmgan.data.shapes import ShapesDataset, traded
    from dmgan.data.vocab import tokenize
    from dmgan.fileio import atomic_write
    from dmgan.models import build_discriminators

    torch.manual_seed(0)
    te = DMGAN.from_checkpoint(args.checkpoint).text_encoder.eval()
    cfg, payload = load_checkpoint(args.checkpoint)
    sizes = cfg.generator.image_sizes

    def pool(split: str, n: int):
        """Real images at every stage size and, per image, the token ids of its caption,
        the places-traded and the colours-traded captions."""
        data = ShapesDataset(split=split, length=n, image_sizes=sizes, max_words=30, seed=0)
        images, captions = [[] for _ in sizes], []
        for i in range(n):
            scene, caption = data.scene(i)[:2]
            if len(scene.objects) != 2:
                continue
            twins = [traded(scene, a) for a in ("position", "colour")]
            if any(t == scene for t in twins):
                continue
            captions.append([data.vocab.encode_tokens(tokenize(c)).ids
                             for c in [caption] + [data.caption_for(i, t) for t in twins]])
            for k, image in enumerate(data[i].images):
                images[k].append(image)
        return [torch.stack(x) for x in images], captions

    def encode(rows):
        caps = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
        for k, row in enumerate(rows):
            caps[k, : len(row)] = torch.tensor(row)
        with torch.no_grad():
            return te(caps, torch.tensor([len(r) for r in rows]))

    start = time.time()
    train_images, train_caps = pool("train", args.train_samples)
    test_images, test_caps = pool("test", 800)
    print(f"{len(train_caps)} training and {len(test_caps)} held-out two-object images",
          flush=True)
    words_cfg = replace(cfg, discriminator=replace(cfg.discriminator, word_match=True,
                                                   word_context=args.context))
    ds = build_discriminators(words_cfg)
    for k, d in enumerate(ds):  # the trained D, its new word reading as built (adds nothing)
        state = d.state_dict()
        state.update(payload["networks"][f"discriminator{k}"])
        d.load_state_dict(state)
    with torch.no_grad():
        feats = [[torch.cat([d(x[i:i + 200]) for i in range(0, len(x), 200)])
                  for d, x in zip(ds, images, strict=True)]
                 for images in (train_images, test_images)]
    params = [q for d in ds for name, q in d.named_parameters()
              if name.startswith(("word_", "cond_"))]
    opt = torch.optim.Adam(params, lr=args.lr, betas=(0.5, 0.999))

    @torch.no_grad()
    def held_out():
        texts = [encode([c[j] for c in test_caps]) for j in range(3)]
        rows = []
        for d, f in zip(ds, feats[1], strict=True):
            logits = [d.cond_logits(f, t.sentence, t.words, t.mask) for t in texts]
            rows.append(tuple(round(float(x), 3) for x in (
                (logits[0] > logits[1]).float().mean(), (logits[0] > logits[2]).float().mean(),
                torch.sigmoid(logits[0]).mean())))
        return rows

    print("step 0", held_out(), flush=True)
    for step in range(1, args.steps + 1):
        idx = torch.randint(len(train_caps), (args.batch,))
        texts = [encode([train_caps[i][j] for i in idx]) for j in range(3)]
        loss = 0.0
        for d, f in zip(ds, feats[0], strict=True):
            for j, t in enumerate(texts):  # the true caption counts twice: 1:1 with the twins
                logits = d.cond_logits(f[idx], t.sentence, t.words, t.mask)
                target = torch.full_like(logits, 1.0 if j == 0 else 0.0)
                loss = loss + F.binary_cross_entropy_with_logits(logits, target) * \
                    (2.0 if j == 0 else 1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0:
            print(f"step {step} loss {loss.item():.3f} {held_out()} "
                  f"{time.time() - start:.0f} s", flush=True)
    nets = dict(payload["networks"])
    for k, d in enumerate(ds):
        nets[f"discriminator{k}"] = d.state_dict()
    config = dict(payload["config"])
    config["discriminator"] = {**config["discriminator"], "word_match": True,
                               "word_context": args.context}
    # the Ds' optimizer states belong to other parameters now: a fine-tune starts new ones
    out = {**payload, "networks": nets, "config": config, "optimizers": {}}
    atomic_write(args.out, lambda f: torch.save(out, f))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
