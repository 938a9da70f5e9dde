"""A GAN training checkpoint's Ds written as a critic file (what `dmgan train-critic` writes),
so that `train-critic --init-from` can go on from them and `train --critic` can use them.

    python research/shape_swaps/as_critic.py CHECKPOINT DAMSM OUT
"""

import sys

from dmgan.checkpoint import load_checkpoint, save_checkpoint


def main() -> None:
    path, damsm, out = sys.argv[1:4]
    cfg, payload = load_checkpoint(path)
    nets = {name: payload["networks"][name] for name in payload["networks"]
            if name.startswith("discriminator")}
    save_checkpoint(out, config=cfg, networks=nets, kind="critic", damsm=damsm,
                    step=payload.get("step", 0), held_out=[], vocab=payload.get("vocab"),
                    command=f"as_critic.py {path}", lineage=[path])


if __name__ == "__main__":
    main()
