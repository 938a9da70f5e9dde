"""One DAMSM pre-training step (the text and image encoders, the word, sentence and near-miss
losses, the clipped Adam update) on batches of the built-in shapes data: median seconds,
images/s, peak memory.

    python bench/damsm_step.py --preset shapes32 --repeats 20
    python bench/damsm_step.py --preset shapes --batch 32

The batches are drawn (and collated) before the timing; the step is the one
`dmgan pretrain-damsm` runs (dmgan.train.damsm). For a before/after comparison, alternate
two source trees with bench/ab.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine_record, median_seconds, peak_memory_mib  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="shapes32")
    p.add_argument("--batch", type=int, help="images per step (default: the preset's)")
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()

    from dmgan import preset
    from dmgan.data.collate import collate
    from dmgan.data.open import open_split
    from dmgan.models import build_image_encoder, build_text_encoder
    from dmgan.train.damsm import _damsm_losses
    from dmgan.tuning import configure_allocator

    configure_allocator()
    torch.manual_seed(0)
    cfg = preset(args.preset)
    d = cfg.damsm
    b = args.batch or d.batch_size
    sizes = (d.image_size,) if d.image_encoder == "inception" else (cfg.generator.image_sizes[-1],)
    data = open_split(cfg, "shapes", "train", max_words=d.words, seed=0, image_sizes=sizes)
    batches = [collate([data[i] for i in range(k * b, (k + 1) * b)]) for k in range(4)]
    te = build_text_encoder(cfg).train()
    ie = build_image_encoder(cfg).freeze_trunk().train()
    params = list(te.parameters()) + [q for q in ie.parameters() if q.requires_grad]
    opt = torch.optim.Adam(params, lr=d.lr, betas=(0.5, 0.999), foreach=True)
    dev = torch.device("cpu")

    def step(i: int) -> None:
        w_loss, s_loss = _damsm_losses(te, ie, batches[i % len(batches)], cfg, dev)
        opt.zero_grad(set_to_none=True)
        (w_loss + s_loss).backward()
        torch.nn.utils.clip_grad_norm_(te.parameters(), d.rnn_grad_clip)
        opt.step()

    med = median_seconds(step, args.repeats, dev, warmup=2)
    print(json.dumps({
        "bench": "damsm_step", "preset": args.preset, "batch": b, "device": "cpu",
        "threads": torch.get_num_threads(), "repeats": args.repeats, "median_s": round(med, 4),
        "images_per_s": round(b / med, 1), "peak_memory_mib": round(peak_memory_mib(dev)),
        "machine": machine_record(dev, probe=False)}))


if __name__ == "__main__":
    main()
