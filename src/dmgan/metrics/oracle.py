"""An oracle for the shapes dataset: a small CNN that reads the attributes back from an image.

It predicts, for each of the five position slots, whether an object is there and its
shape, colour and size, plus the background colour. Trained on real shapes images; the
training issue uses it to judge generated ones (`judge`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dmgan.data.shapes import COLOUR_NAMES, POSITIONS, SHAPES, SIZES, ShapesDataset

_SLOT = 1 + len(SHAPES) + len(COLOUR_NAMES) + len(SIZES)  # presence + attribute logits
ATTRIBUTES = ("colour", "shape", "size", "position", "background")


class ShapesOracle(nn.Module):
    def __init__(self, *, width: int = 32):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, stride=2, padding=1), nn.ReLU(),  # 32 px
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),  # 16
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.ReLU(),  # 8
            nn.Conv2d(4 * w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),  # 4
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * 16, 128), nn.ReLU(),
                                  nn.Linear(128, len(POSITIONS) * _SLOT + len(COLOUR_NAMES)))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images (B, 3, S, S) in [-1, 1] -> logits: presence (B, 5), shape (B, 5, 4),
        colour (B, 5, 8), size (B, 5, 2), background (B, 8)."""
        if images.shape[-1] != 64:
            images = F.interpolate(images, size=(64, 64), mode="bilinear", align_corners=False)
        out = self.head(self.features(images))
        b = out.shape[0]
        slots = out[:, : len(POSITIONS) * _SLOT].view(b, len(POSITIONS), _SLOT)
        s, c = 1 + len(SHAPES), 1 + len(SHAPES) + len(COLOUR_NAMES)
        return {"presence": slots[..., 0], "shape": slots[..., 1:s], "colour": slots[..., s:c],
                "size": slots[..., c:], "background": out[:, len(POSITIONS) * _SLOT:]}


def targets(attributes: Sequence[dict]) -> dict[str, torch.Tensor]:
    """Ground truth as tensors; -100 (ignored) for attributes of empty slots."""
    b, p = len(attributes), len(POSITIONS)
    t = {"presence": torch.zeros(b, p), "shape": torch.full((b, p), -100),
         "colour": torch.full((b, p), -100), "size": torch.full((b, p), -100),
         "background": torch.zeros(b, dtype=torch.long)}
    for i, a in enumerate(attributes):
        t["background"][i] = COLOUR_NAMES.index(a["background"])
        for o in a["objects"]:
            j = POSITIONS.index(o["position"])
            t["presence"][i, j] = 1.0
            t["shape"][i, j] = SHAPES.index(o["shape"])
            t["colour"][i, j] = COLOUR_NAMES.index(o["colour"])
            t["size"][i, j] = SIZES.index(o["size"])
    return t


def oracle_loss(pred: dict[str, torch.Tensor], t: dict[str, torch.Tensor]) -> torch.Tensor:
    loss = F.binary_cross_entropy_with_logits(pred["presence"], t["presence"])
    for key in ("shape", "colour", "size"):
        loss = loss + F.cross_entropy(pred[key].flatten(0, 1), t[key].flatten(), ignore_index=-100)
    return loss + F.cross_entropy(pred["background"], t["background"])


@torch.no_grad()
def judge(oracle: ShapesOracle, images: torch.Tensor, attributes: Sequence[dict]) -> dict[str, list[bool]]:
    """Per attribute, one hit/miss per object (background: per image whose caption names it).

    Each object of the caption is read at its own slot when the oracle sees an object
    there, else at the most confident free slot; its position is right when that is its
    own slot. So a wrongly placed object can still have the right colour.
    """
    pred = oracle(images)
    presence = torch.sigmoid(pred["presence"])
    hits: dict[str, list[bool]] = {a: [] for a in ATTRIBUTES}
    for i, a in enumerate(attributes):
        if a.get("background_named", True):  # a caption that leaves it out allows any
            hits["background"].append(
                COLOUR_NAMES[int(pred["background"][i].argmax())] == a["background"])
        used: set[int] = set()
        for o in a["objects"]:
            j = POSITIONS.index(o["position"])
            if presence[i, j] <= 0.5 or j in used:
                free = [k for k in range(len(POSITIONS)) if k not in used]
                j = max(free, key=lambda k: float(presence[i, k]))
            used.add(j)
            hits["position"].append(POSITIONS[j] == o["position"])
            hits["shape"].append(SHAPES[int(pred["shape"][i, j].argmax())] == o["shape"])
            hits["colour"].append(COLOUR_NAMES[int(pred["colour"][i, j].argmax())] == o["colour"])
            hits["size"].append(SIZES[int(pred["size"][i, j].argmax())] == o["size"])
    return hits


def accuracy(oracle: ShapesOracle, dataset: ShapesDataset, *, batch_size: int = 100) -> dict[str, float]:
    """Per-attribute accuracy of the oracle on real images of `dataset`."""
    from dmgan.data.collate import collate

    oracle.eval()
    totals: dict[str, list[bool]] = {a: [] for a in ATTRIBUTES}
    for start in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(start, min(len(dataset), start + batch_size))])
        for k, v in judge(oracle, batch.images[-1], batch.attributes).items():
            totals[k] += v
    return {k: sum(v) / len(v) for k, v in totals.items()}


def train_oracle(*, steps: int = 3000, batch_size: int = 64, lr: float = 2e-3, seed: int = 1234,
                 log_every: int = 0) -> ShapesOracle:
    """Trains on freshly generated real images (a seed of its own, not the data splits)."""
    from torch.utils.data import DataLoader

    from dmgan.data.collate import collate

    torch.manual_seed(seed)
    data = ShapesDataset(split="train", length=steps * batch_size, image_sizes=(64,), seed=seed)
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate,
                        num_workers=1, persistent_workers=False)
    oracle = ShapesOracle()
    opt = torch.optim.Adam(oracle.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    oracle.train()
    for step, batch in enumerate(loader, 1):
        loss = oracle_loss(oracle(batch.images[-1]), targets(batch.attributes))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log_every and step % log_every == 0:
            print(f"oracle step {step}/{steps} loss {loss.item():.4f}", flush=True)
    return oracle.eval()


BUNDLED = "shapes_oracle.pt"


def save_oracle(oracle: ShapesOracle, path, *, report: dict) -> None:
    from dmgan.checkpoint import atomic_torch_save

    atomic_torch_save({"format": "dmgan-shapes-oracle", "state_dict": oracle.state_dict(),
                       "report": report}, path)


def load_oracle(path=None) -> tuple[ShapesOracle, dict]:
    """The oracle from `path`, or the one bundled with the package; (oracle, its report)."""
    from importlib import resources

    from dmgan.checkpoint import read_weights_only
    from dmgan.errors import CheckpointError

    if path is None:
        path = resources.files("dmgan") / "assets" / BUNDLED
    payload = read_weights_only(path)
    if not isinstance(payload, dict) or payload.get("format") != "dmgan-shapes-oracle":
        raise CheckpointError(f"{path} is not a shapes-oracle file")
    oracle = ShapesOracle()
    oracle.load_state_dict(payload["state_dict"])
    return oracle.eval(), payload.get("report", {})


def oracle_report(*, oracle: str | None = None, train: bool = False, steps: int = 3000,
                  seed: int = 1234, held_out: int = 2000, out: str | None = None,
                  command: str = "") -> dict[str, float]:
    """`dmgan shapes-oracle`: the held-out accuracy on real images of the bundled oracle (or
    the one at `oracle`), or of a new one trained for `steps` (saved to `out`)."""
    if train:
        model = train_oracle(steps=steps, seed=seed, log_every=max(1, steps // 10))
        acc = accuracy(model, ShapesDataset(split="test", length=held_out, image_sizes=(64,)))
        if out:
            save_oracle(model, out, report={
                "held_out_accuracy": acc, "held_out": f"{held_out} test-split images, seed 0",
                "steps": steps, "batch_size": 64, "lr": 2e-3, "seed": seed, "command": command})
        return acc
    model, _ = load_oracle(oracle)
    return accuracy(model, ShapesDataset(split="test", length=held_out, image_sizes=(64,)))
