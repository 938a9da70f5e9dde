"""Evaluation during training (the metric phase of a snapshot): the EMA generator judged with
the metrics that fit the data, on a fixed held-out subset, so snapshots compare.

- shapes: the oracle's per-attribute accuracy, the fraction of captions with everything
  right ("all") and the same on two-object captions (`dmgan.train.report`).
- CUB/COCO/custom: R-precision with the run's own DAMSM encoders; FID of the subset
  against its real images when Inception weights are given.

Each call returns `dict(name=value)`; `better()` says whether a result beats the best so far.
"""

from __future__ import annotations

import numpy as np
import torch

from dmgan.data.collate import collate

SELECTION_SEED = 1000  # offset of the held-out shapes captions used to choose best.pt


class SnapshotEvaluator:
    def __init__(self, *, data: str, test, text_encoder, image_encoder, max_words: int,
                 num: int, seed: int, device: torch.device, inception_weights: str | None = None):
        self.shapes = data == "shapes"
        self.test, self.te, self.ie = test, text_encoder, image_encoder
        self.max_words, self.num, self.seed, self.device = max_words, num, seed, device
        self.inception_weights = inception_weights
        self._fid = None  # (net, mode, mu, sigma) of the real subset, made on first use

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
            from dmgan.data.oracle import ATTRIBUTES
            from dmgan.train.report import shapes_accuracy

            # captions of another seed than the reports' (shapes_accuracy with `seed`): picking
            # best.pt on these does not pick it on the captions it is then reported on
            scores = shapes_accuracy(generator, self.te, n=self.num, seed=self.seed + SELECTION_SEED,
                                     device=self.device, max_words=self.max_words,
                                     real=False)["generated"]
            scores["attribute_mean"] = float(np.mean([scores[a] for a in ATTRIBUTES]))
            return {k: round(float(v), 4) for k, v in scores.items()}
        return self._dataset_metrics(generator)

    def _subset(self):
        n = min(self.num, len(self.test))
        return [self.test[i] for i in range(n)]

    def _dataset_metrics(self, generator) -> dict[str, float]:
        from dmgan.metrics.r_precision import r_precision

        samples = self._subset()
        noise_gen = torch.Generator().manual_seed(self.seed + 4242)
        was_training = generator.training
        generator.eval()
        fakes, codes, sentences = [], [], []
        for start in range(0, len(samples), 50):
            b = collate(samples[start:start + 50])
            text = self.te(b.captions.to(self.device), b.lengths.to(self.device))
            z = torch.randn(len(b.keys), generator.z_dim, generator=noise_gen).to(self.device)
            img = generator(z, text.sentence, text.words, text.mask,
                            sample_condition=False).images[-1].float()
            codes.append(self.ie(img)[1].double().cpu().numpy())
            sentences.append(text.sentence.double().cpu().numpy())
            fakes.append(img.cpu())
        generator.train(was_training)
        codes_np, sent = np.concatenate(codes), np.concatenate(sentences)
        classes = np.array([s.class_id for s in samples])
        rng = np.random.default_rng(self.seed)
        cands = []
        for i in range(len(samples)):
            others = np.flatnonzero(classes != classes[i])
            if others.size == 0:
                others = np.flatnonzero(np.arange(len(samples)) != i)
            pick = rng.choice(others, size=min(99, others.size), replace=False)
            cands.append(np.concatenate([sent[i:i + 1], sent[pick]]))
        k = min(len(c) for c in cands)
        mean, _ = r_precision(codes_np, np.stack([c[:k] for c in cands]), folds=1)
        out = {"r_precision": round(mean, 4), "r_precision_candidates": k}
        if self.inception_weights:
            out["fid"] = round(self._fid_of(torch.cat(fakes), samples), 3)
        return out

    def _fid_of(self, fakes: torch.Tensor, samples) -> float:
        from dmgan.metrics.features import extract, get_mode, load_inception
        from dmgan.metrics.fid import frechet_distance, statistics

        def as_uint8(images: torch.Tensor):
            return [((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8) for x in images]

        if self._fid is None:
            mode = get_mode("pytorch-fid")
            net = load_inception(self.inception_weights, mode)
            real = torch.stack([s.images[-1] for s in samples])
            mu, sigma = statistics(extract(as_uint8(real), net, mode, device=self.device)["pool3"])
            self._fid = (net, mode, mu, sigma)
        net, mode, mu_r, sigma_r = self._fid
        mu, sigma = statistics(extract(as_uint8(fakes), net, mode, device=self.device)["pool3"])
        return float(frechet_distance(mu, sigma, mu_r, sigma_r))
