"""Teach a shapes run's discriminators which object is where before a GAN fine-tune, and
measure how well they can learn it: every D gains the word reading (`word_match`, plus
`word_context` layers and place codes), and its match head alone (word_* and cond_*
parameters; the conv features stay as trained) learns on real two-object images to
match the true caption (target 1) and not the one with the two objects' places traded,
the one with their colours traded, nor (`--more`) a caption with one thing changed
(dmgan.data.shapes.contrast_scene) or the true caption on the image with one of the two
objects drawn twice (target 0). Held-out preference is printed every 500 steps per D as
(places, colours[, doubled image], mean match probability of the true caption); the
result is a training checkpoint for `dmgan train --init-from` or `--critic`, with the
word options on.

    python bench/warm_match.py runs/words-ft/best.pt runs/dwarm.pt --steps 5000
    dmgan train --preset shapes --data shapes --damsm DAMSM --init-from runs/dwarm.pt \\
        --set discriminator.word_match=true --set discriminator.word_context=1 ...

Given a DAMSM checkpoint instead (`dmgan pretrain-damsm`), the Ds are new and learn whole
(conv features too) on the real images, with that DAMSM's text encoder reading the
captions: a critic for `--critic` that needs no GAN run before it.

    python bench/warm_match.py runs/damsm/damsm.pt runs/critic.pt --steps 3000 --more

`--critic CRITIC` (with a DAMSM) goes on teaching a critic written before.
`--one-object` (with `--more`) also teaches one-object images: three captions with one
thing changed as negatives, and the true caption on the picture with the object hidden
(the background in its colour). With the run's caption options (`--background-phrase`,
`--unnamed-background`, `--background-first`) the critic sees the captions G is judged on,
those that leave the background out too.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a shapes training checkpoint (its Ds are taught), or "
                                      "a DAMSM checkpoint (new Ds learn from scratch)")
    p.add_argument("out", help="the training checkpoint to write")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--context", type=int, default=1, help="discriminator.word_context layers")
    p.add_argument("--batch", type=int, default=48)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--train-samples", type=int, default=12000,
                   help="training-split samples drawn (the two-object ones are used; with "
                        "--one-object, all)")
    p.add_argument("--background-phrase", type=float, default=1.0,
                   help="the share of captions that name the background (the bundled "
                        "model's critic: 1.0, every one)")
    p.add_argument("--unnamed-background", default="any",
                   help="the background of pictures whose caption leaves it out (the run's "
                        "data.shapes_unnamed_background)")
    p.add_argument("--background-first", type=float, default=0.0,
                   help="the share of background-naming captions that open with it (the "
                        "run's data.shapes_background_first)")
    p.add_argument("--more", action="store_true",
                   help="also one-thing contrast captions and images with an object doubled")
    p.add_argument("--one-object", action="store_true",
                   help="also one-object images (needs --more): one-thing contrast captions "
                        "and the object hidden")
    p.add_argument("--critic", help="with a DAMSM checkpoint: start the Ds from this critic "
                                    "(written by this script) rather than new")
    args = p.parse_args()
    if args.one_object and not args.more:
        p.error("--one-object needs --more")

    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from dmgan import DMGAN
    from dmgan.checkpoint import load_checkpoint, save_checkpoint
    from dmgan.data.shapes import ShapesDataset, contrast_scene, render, traded
    from dmgan.data.transforms import to_tensor
    from dmgan.data.vocab import tokenize
    from dmgan.fileio import atomic_write
    from dmgan.models import build_discriminators
    from dmgan.train.damsm import load_damsm

    torch.manual_seed(0)
    cfg, payload = load_checkpoint(args.checkpoint)
    fresh = payload.get("kind") == "damsm"
    if args.critic is not None and not fresh:
        p.error("--critic goes with a DAMSM checkpoint")
    te = (load_damsm(args.checkpoint, cfg)[0] if fresh
          else DMGAN.from_checkpoint(args.checkpoint).text_encoder.eval())
    sizes = cfg.generator.image_sizes

    def pool(split: str, n: int):
        """Real images at every stage size; per image, the token ids of its caption and of
        the negatives (two objects: places traded, colours traded[, one thing changed]; one
        object: three with one thing changed); with --more, the second picture (an object
        drawn twice, or the one object hidden); and each image's object count."""
        data = ShapesDataset(split=split, length=n, image_sizes=sizes, max_words=30, seed=0,
                             background_phrase=args.background_phrase,
                             unnamed_background=args.unnamed_background,
                             background_first=args.background_first)
        images, second, captions, counts = [[] for _ in sizes], [[] for _ in sizes], [], []
        rng = np.random.default_rng([0, len(split)])
        for i in range(n):
            scene, caption, _, named = data.scene(i)
            if len(scene.objects) == 2:
                twins = [traded(scene, a) for a in ("position", "colour")]
                if any(t == scene for t in twins):
                    continue
                if args.more:
                    twins.append(contrast_scene(scene, rng, background=named))
                    a, b = scene.objects
                    keep = (a, b)[int(rng.integers(2))]  # drawn at both places
                    other = replace(scene, objects=tuple(replace(keep, position=o.position)
                                                         for o in (a, b)))
            elif args.one_object:
                twins = [contrast_scene(scene, rng, background=named) for _ in range(3)]
                other = replace(scene, background=scene.objects[0].colour)
            else:
                continue
            if args.more:
                big = render(other, sizes[-1], rng)
                for k, s in enumerate(sizes):
                    second[k].append(to_tensor(np.asarray(
                        big if s == sizes[-1] else big.resize((s, s), Image.BILINEAR))))
            captions.append([data.vocab.encode_tokens(tokenize(c)).ids
                             for c in [caption] + [data.caption_for(i, t) for t in twins]])
            counts.append(len(scene.objects))
            for k, image in enumerate(data[i].images):
                images[k].append(image)
        stack = [torch.stack(x) for x in images]
        return (stack, [torch.stack(x) for x in second] if args.more else None, captions,
                torch.tensor(counts))

    def encode(rows):
        caps = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
        for k, row in enumerate(rows):
            caps[k, : len(row)] = torch.tensor(row)
        with torch.no_grad():
            return te(caps, torch.tensor([len(r) for r in rows]))

    start = time.time()
    train_images, train_doubled, train_caps, _ = pool("train", args.train_samples)
    test_images, test_doubled, test_caps, test_counts = pool("test", 800)
    print(f"{len(train_caps)} training and {len(test_caps)} held-out images "
          f"({int((test_counts == 1).sum())} of them with one object)", flush=True)
    words_cfg = replace(cfg, discriminator=replace(cfg.discriminator, word_match=True,
                                                   word_context=args.context))
    ds = build_discriminators(words_cfg)
    if not fresh:
        for k, d in enumerate(ds):  # the trained D, its new word reading as built (adds nothing)
            state = d.state_dict()
            state.update(payload["networks"][f"discriminator{k}"])
            d.load_state_dict(state)
    elif args.critic is not None:  # teaching goes on from a critic this script wrote
        critic_cfg, critic = load_checkpoint(args.critic)
        if critic.get("kind") != "critic" or critic_cfg.discriminator != words_cfg.discriminator:
            p.error(f"--critic {args.critic}: not a critic with these Ds' settings")
        for k, d in enumerate(ds):
            d.load_state_dict(critic["networks"][f"discriminator{k}"])

    @torch.no_grad()
    def features(images):
        if images is None:
            return None
        return [torch.cat([d(x[i:i + 200]) for i in range(0, len(x), 200)])
                for d, x in zip(ds, images, strict=True)]

    if fresh:  # the conv features learn too: computed per step, in training mode
        feats = [[lambda idx, d=d, x=x: d(x[idx]) for d, x in zip(ds, pool_, strict=True)]
                 for pool_ in (train_images, train_doubled) if pool_ is not None]
        params = [q for d in ds for q in d.parameters()]
    else:  # fixed: computed once (in this order, which the batch-norm statistics keep)
        train_f, test_f = features(train_images), features(test_images)
        doubled_f, fixed_test = features(train_doubled), (test_f, features(test_doubled))
        feats = [[lambda idx, f=f: f[idx] for f in pool_]
                 for pool_ in (train_f, doubled_f) if pool_ is not None]
        params = [q for d in ds for name, q in d.named_parameters()
                  if name.startswith(("word_", "cond_"))]
    opt = torch.optim.Adam(params, lr=args.lr, betas=(0.5, 0.999))

    @torch.no_grad()
    def held_out():
        if fresh:  # as the critic will judge: batch norm with its running statistics
            ds.eval()
            test_feats, test_doubled_feats = features(test_images), features(test_doubled)
            ds.train()
        else:
            test_feats, test_doubled_feats = fixed_test
        columns = len(test_caps[0]) if args.one_object else 3
        texts = [encode([c[j] for c in test_caps]) for j in range(columns)]
        two, one = test_counts == 2, test_counts == 1
        rows = []
        for k, (d, f) in enumerate(zip(ds, test_feats, strict=True)):
            logits = [d.cond_logits(f, t.sentence, t.words, t.mask) for t in texts]
            row = [(logits[0] > logits[1])[two].float().mean(),
                   (logits[0] > logits[2])[two].float().mean()]
            if args.more:
                twice = d.cond_logits(test_doubled_feats[k], texts[0].sentence, texts[0].words,
                                      texts[0].mask)
                row.append((logits[0] > twice)[two].float().mean())
            rows.append(tuple(round(float(x), 3) for x in
                              (*row, torch.sigmoid(logits[0][two]).mean())))
            if args.one_object:  # (one thing changed, object hidden, mean match probability)
                changed = torch.stack([logits[0] > x for x in logits[1:]]).float()
                rows.append(tuple(round(float(x), 3) for x in (
                    changed[:, one].mean(), (logits[0] > twice)[one].float().mean(),
                    torch.sigmoid(logits[0][one]).mean())))
        return rows

    print("step 0", held_out(), flush=True)
    for step in range(1, args.steps + 1):
        idx = torch.randint(len(train_caps), (args.batch,))
        texts = [encode([train_caps[i][j] for i in idx]) for j in range(len(train_caps[0]))]
        loss = 0.0
        for k, (d, f) in enumerate(zip(ds, feats[0], strict=True)):
            own = f(idx)
            logits = [d.cond_logits(own, t.sentence, t.words, t.mask) for t in texts]
            if args.more:  # the true caption on the second picture (doubled / hidden)
                logits.append(d.cond_logits(feats[1][k](idx), texts[0].sentence,
                                            texts[0].words, texts[0].mask))
            # the true pair weighs as much as all the negatives together
            loss = loss + F.binary_cross_entropy_with_logits(logits[0], torch.ones_like(logits[0]))
            for other in logits[1:]:
                loss = loss + F.binary_cross_entropy_with_logits(
                    other, torch.zeros_like(other)) / (len(logits) - 1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0:
            print(f"step {step} loss {loss.item():.3f} {held_out()} "
                  f"{time.time() - start:.0f} s", flush=True)
    if fresh:  # the Ds alone: a critic, not a run to fine-tune
        save_checkpoint(args.out, config=words_cfg,
                        networks={f"discriminator{k}": d for k, d in enumerate(ds)},
                        kind="critic", damsm=str(args.checkpoint))
    else:
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
