"""What a shapes run's teachers say about a picture whose background has the object's
colour, on held-out one-object captions that leave the background out ("a red circle on
the left"). Three kinds of picture per caption: the real one (a background no object
has), the same scene with the background in the object's colour (the object hidden), and
the run's EMA generator's. Per kind, the mean of:

- `critic`: the contrast term G pays to frozen critics (`train --critic`): softplus(match
  logit with a caption with one thing changed - with its own), summed over stages (lower
  is better for G);
- `d_match`: the run's own Ds' match logit of the picture with its caption, summed over
  stages (higher is better);
- `damsm_words`, `damsm_sentence`: the DAMSM losses of G (both directions, the batch's
  captions as negatives; lower is better).

    python bench/background_teachers.py RUN/ckpt.pt --critic runs/dwarm2.pt \\
        --damsm runs/damsm-bind/damsm.pt [--n 400] [--unnamed-background white]
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a shapes training checkpoint (it has the Ds)")
    p.add_argument("--critic", required=True, help="the critics' training checkpoint")
    p.add_argument("--damsm", required=True, help="the run's DAMSM checkpoint")
    p.add_argument("--n", type=int, default=400, help="held-out samples drawn (the "
                   "one-object ones are used)")
    p.add_argument("--contrasts", type=int, default=4, help="contrast captions per picture")
    p.add_argument("--unnamed-background", default="any",
                   help="the real pictures' background (the run's "
                        "data.shapes_unnamed_background)")
    args = p.parse_args()

    from dataclasses import replace

    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from dmgan import DMGAN
    from dmgan.checkpoint import load_checkpoint
    from dmgan.data.shapes import ShapesDataset, contrast_scene, render
    from dmgan.data.transforms import to_tensor
    from dmgan.data.vocab import tokenize
    from dmgan.losses.damsm import sentence_loss, words_loss
    from dmgan.models import build_discriminators
    from dmgan.train.damsm import load_damsm
    from dmgan.train.gan import load_critics

    torch.manual_seed(0)
    cfg, payload = load_checkpoint(args.checkpoint)
    model = DMGAN.from_checkpoint(args.checkpoint)  # EMA G and the run's text encoder
    ds = build_discriminators(cfg, init=False)
    for k, d in enumerate(ds):
        d.load_state_dict(payload["networks"][f"discriminator{k}"])
    ds.eval()
    critics = load_critics(args.critic, cfg, torch.device("cpu"), torch.contiguous_format)
    damsm_text, damsm_image, _ = load_damsm(args.damsm, cfg)
    sizes = cfg.generator.image_sizes
    data = ShapesDataset(split="test", length=args.n, image_sizes=sizes, max_words=30, seed=0,
                         background_phrase=0.0, unnamed_background=args.unnamed_background)
    rng = np.random.default_rng(0)
    captions, negatives, real, hidden = [], [], [], []
    for i in range(args.n):
        scene, caption, _, _ = data.scene(i)
        if len(scene.objects) != 1:
            continue
        captions.append(caption)
        negatives.append([data.caption_for(i, contrast_scene(scene, rng, background=False))
                          for _ in range(args.contrasts)])
        real.append(scene)
        hidden.append(replace(scene, background=scene.objects[0].colour))

    def encode(encoder, texts):
        ids = [data.vocab.encode_tokens(tokenize(t)).ids for t in texts]
        caps = torch.zeros(len(ids), max(map(len, ids)), dtype=torch.long)
        for row, x in enumerate(ids):
            caps[row, : len(x)] = torch.tensor(x)
        lengths = torch.tensor([len(x) for x in ids])
        return encoder(caps, lengths), lengths

    def draw(scenes):
        pictures = [render(s, sizes[-1], np.random.default_rng(1)) for s in scenes]
        return [torch.stack([to_tensor(np.asarray(x if s == sizes[-1] else
                                                  x.resize((s, s), Image.BILINEAR)))
                             for x in pictures]) for s in sizes]

    n = len(captions)
    with torch.no_grad():
        text, _ = encode(model.text_encoder.eval(), captions)
        sentence, words, mask = text.sentence, text.words, text.mask
        wrong = [encode(model.text_encoder, [c[j] for c in negatives])[0] for j in
                 range(args.contrasts)]
        z = torch.randn(n, cfg.generator.z_dim, generator=torch.Generator().manual_seed(0))
        fake = model.generator.eval()(z, sentence, words, mask,
                                      sample_condition=False).images
        kinds = {"real": draw(real), "hidden": draw(hidden), "generated": list(fake)}
        dtext, dlengths = encode(damsm_text, captions)
        report = {"one_object_captions": n}
        for name, images in kinds.items():
            contrast = match = 0.0
            for d, c, x in zip(ds, critics, images, strict=True):
                match = match + d.cond_logits(d(x), sentence, words, mask).mean()
                f = c(x)
                own = c.cond_logits(f, sentence, words, mask)
                for w in wrong:
                    other = c.cond_logits(f, w.sentence, w.words, w.mask)
                    contrast = contrast + F.softplus(other - own).mean() / args.contrasts
            regions, code = damsm_image(images[-1])
            wl = words_loss(regions, dtext.words, dlengths)
            s0, s1 = sentence_loss(code, dtext.sentence)
            report[name] = {"critic": round(float(contrast), 3),
                            "d_match": round(float(match), 3),
                            "damsm_words": round(float(wl.loss0 + wl.loss1), 3),
                            "damsm_sentence": round(float(s0 + s1), 3)}
    print(json.dumps({"checkpoint": args.checkpoint, "critic": args.critic,
                      "damsm": args.damsm, **report}, indent=1))


if __name__ == "__main__":
    main()
