"""Evaluation during training (the metric phase of a snapshot): the EMA generator judged with
the metrics that fit the data, on a fixed held-out subset, so snapshots compare.

- shapes: the oracle's per-attribute accuracy, the fraction of captions with everything
  right ("all") and the same on two-object captions (`dmgan.metrics.shapes`).
- CUB/COCO/custom: R-precision with the run's own DAMSM encoders; FID of the subset
  against its real images when Inception weights are given.

The images and metrics are those of `dmgan eval` (dmgan.metrics.evaluate.evaluate_generator);
each call returns `dict(name=value)`, and `better()` says whether a result beats the best so far.
"""

from __future__ import annotations

import numpy as np
import torch

from dmgan.metrics.evaluate import evaluate_generator
from dmgan.metrics.registry import Generated, Settings

SELECTION_SEED = 1000  # offset of the held-out shapes captions used to choose best.pt
COMPOSITIONAL_CAPTIONS = 40  # partial captions (x 8 seeds) judged at each snapshot


class SnapshotEvaluator:
    def __init__(self, *, cfg, data: str, test, text_encoder, image_encoder, num: int,
                 seed: int, device: torch.device, inception_weights: str | None = None):
        self.cfg, self.shapes = cfg, data == "shapes"
        self.test, self.te, self.ie = test, text_encoder, image_encoder
        self.num, self.seed, self.device = num, seed, device
        self.inception_weights = inception_weights
        self._real = None  # the subset's real images (the FID reference), made on first use

    @property
    def primary(self) -> str:
        return "all" if self.shapes else ("fid" if self.inception_weights else "r_precision")

    def better(self, new: dict[str, float], best: dict[str, float] | None) -> bool:
        if best is None:
            return True
        if self.shapes:  # everything right first; the mean over attributes breaks ties
            return (new["all"], new["attribute_mean"]) > (best["all"], best["attribute_mean"])
        if self.inception_weights:
            return new["fid"] < best["fid"]
        return new["r_precision"] > best["r_precision"]

    @torch.no_grad()
    def __call__(self, generator) -> dict[str, float]:
        if self.shapes:
            from dmgan.metrics.oracle import ATTRIBUTES

            # captions of another seed than the reports' (seed): picking best.pt on these does
            # not pick it on the captions it is then reported on
            settings = Settings(seed=self.seed + SELECTION_SEED, device=self.device, progress=False)
            values, _ = evaluate_generator(generator, self.te, self.cfg, "shapes", ["oracle"],
                                           settings=settings, num_images=self.num)
            scores = values["oracle"]
            scores["attribute_mean"] = float(np.mean([scores[a] for a in ATTRIBUTES]))
            if self.cfg.data.shapes_partial_share > 0:  # captions as people write them too
                from dmgan.metrics.compositional import compositional_report

                scores |= compositional_report(
                    generator, self.te, n=min(self.num, COMPOSITIONAL_CAPTIONS),
                    seed=self.seed + SELECTION_SEED, device=self.device,
                    max_words=self.cfg.text.words_eval)
            return {k: round(float(v), 4) for k, v in scores.items()}
        n = min(self.num, len(self.test))
        if self._real is None and self.inception_weights:
            self._real = Generated("the subset's real images",
                                   tensors=torch.stack([self.test[i].images[-1] for i in range(n)]))
        settings = Settings(inception_weights=self.inception_weights, real=self._real,
                            device=self.device, folds=1, seed=self.seed, text_encoder=self.te,
                            image_encoder=self.ie, progress=False)
        metrics = ["r_precision", "fid"] if self.inception_weights else ["r_precision"]
        values, _ = evaluate_generator(generator, self.te, self.cfg, self.test, metrics,
                                       settings=settings, num_images=n)
        out = {"r_precision": round(values["r_precision"]["r_precision"], 4)}
        if "fid" in values:
            out["fid"] = round(values["fid"]["fid"], 3)
        return out
