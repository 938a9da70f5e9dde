"""What `dmgan info` prints: a preset's configuration and network sizes, or a model file's
provenance, scores and vocabulary."""

from __future__ import annotations

import json
import os
from pathlib import Path

from dmgan.errors import DMGANError


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe_preset(name: str, *, as_json: bool = False) -> str:
    from dmgan.config import preset
    from dmgan.models import build_discriminators, build_generator, build_text_encoder

    cfg = preset(name)
    nets = {
        "text_encoder": build_text_encoder(cfg),
        "generator": build_generator(cfg, init=False),
        **{f"discriminator{i}": d for i, d in enumerate(build_discriminators(cfg, init=False))},
    }
    if as_json:
        return json.dumps({"config": cfg.to_dict(),
                           "parameters": {k: _count(v) for k, v in nets.items()}}, indent=2)
    lines = [f"preset {cfg.name}: images {'/'.join(map(str, cfg.generator.image_sizes))} px, "
             f"vocabulary {cfg.text.vocab_size} words"]
    for section, values in cfg.to_dict().items():
        if isinstance(values, dict):
            lines.append(f"  {section}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    lines.append("parameters:")
    lines += [f"  {n:16s} {_count(net):>12,d}" for n, net in nets.items()]
    return "\n".join(lines)


def describe_model(path: str | os.PathLike | None = None, *, as_json: bool = False) -> str:
    """A model file (None: the bundled shapes model): configuration, provenance, scores and
    the words it knows."""
    from dmgan.checkpoint import load_checkpoint
    from dmgan.pipeline import bundled_model_path

    bundled = path is None
    path = bundled_model_path() if bundled else Path(path)
    if not path.exists():
        raise DMGANError(f"model file not found: {path}")
    cfg, payload = load_checkpoint(path)
    vocab = [w for w in payload.get("vocab") or [] if w != "<end>"]
    info = {"file": str(path), "preset": cfg.name,
            "image_sizes": list(cfg.generator.image_sizes),
            "trained_steps": payload.get("trained_steps", payload.get("step")),
            "scores": payload.get("scores"), "provenance": payload.get("provenance"),
            "vocabulary": vocab}
    if as_json:
        return json.dumps(info | {"config": cfg.to_dict()}, indent=2)
    label = "the bundled model" if bundled else str(path)
    lines = [f"{label}: preset {cfg.name}, images "
             f"{'/'.join(map(str, cfg.generator.image_sizes))} px, "
             f"trained {info['trained_steps']} steps"]
    prov = info["provenance"]
    if isinstance(prov, dict):
        lines.append(f"  made with dmgan {prov.get('dmgan_version')} (commit "
                     f"{prov.get('commit') or 'unknown'}), exported {prov.get('exported')}, by:")
        lines += [f"    {c}" for c in prov.get("commands") or []]
        if prov.get("report"):
            lines.append("  its run's evaluation: " + json.dumps(prov["report"]))
        if prov.get("note"):
            lines.append(f"  note: {prov['note']}")
    elif prov:
        lines.append(f"  made by: {prov}")
    needs = (payload.get("reads") or {}).get("needs") or []
    if needs:
        lines.append("  its captions need to name: " + ", ".join(n["part"] for n in needs))
    if info["scores"]:
        lines.append("  scores: " + json.dumps(info["scores"]))
    lines.append(f"vocabulary ({len(vocab)} words; others are ignored with a warning):")
    lines.append("  " + " ".join(vocab))
    return "\n".join(lines)
