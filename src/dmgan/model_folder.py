"""A model as a folder, in the layout of the Hugging Face ecosystem (`save_pretrained`):

    config.json         the model's configuration (dmgan's DMGANConfig as JSON) and the
                        folder's format, dmgan version and trained steps
    model.safetensors   the weights: "text_encoder.<key>" and "generator.<key>"
    vocab.txt           the vocabulary, one word per line, line i = word index i
    provenance.json     how it was made (`provenance`) and what its captions need (`reads`)
    README.md           the model card: the same, for people

Every loader that takes one of our model files takes such a folder too
(`dmgan.checkpoint.load_checkpoint`): the folder reads as the payload of a model file.
Each file is written atomically; loading reads only JSON, text and safetensors.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from dmgan.errors import CheckpointError, DMGANError
from dmgan.fileio import atomic_write, atomic_write_text

FOLDER_FORMAT = "dmgan-model-folder"
FOLDER_VERSION = 1
FILES = ("config.json", "model.safetensors", "vocab.txt", "provenance.json", "README.md")
NETWORKS = ("text_encoder", "generator")


def save_model_folder(folder: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write a model file's payload (config, networks text_encoder and generator, vocab,
    provenance, reads) as a model folder; returns the folder."""
    from safetensors.torch import save as safetensors_bytes

    from dmgan import __version__

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DMGANError(f"{folder} is a file, not a folder")
    if payload.get("vocab") is None:
        raise DMGANError("a model folder needs the model's vocabulary (this model has none)")
    bad = [w for w in payload["vocab"] if not w or any(c.isspace() for c in w)]
    if bad:
        raise DMGANError(f"the vocabulary holds a word vocab.txt cannot: {bad[0]!r}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DMGANError(f"cannot make {folder}: {exc.strerror or exc}") from None
    tensors = {f"{name}.{key}": value.detach().cpu().contiguous().clone()
               for name in NETWORKS for key, value in payload["networks"][name].items()}
    blob = safetensors_bytes(tensors, metadata={"format": FOLDER_FORMAT})
    atomic_write(folder / "model.safetensors", lambda f: f.write(blob))
    config = {"format": FOLDER_FORMAT, "format_version": FOLDER_VERSION,
              "dmgan_version": __version__, "trained_steps": payload.get("trained_steps"),
              "config": payload["config"]}
    atomic_write_text(folder / "config.json", json.dumps(config, indent=2) + "\n")
    atomic_write_text(folder / "vocab.txt", "".join(w + "\n" for w in payload["vocab"]))
    record = {"provenance": payload.get("provenance"), "reads": payload.get("reads")}
    atomic_write_text(folder / "provenance.json", json.dumps(record, indent=2) + "\n")
    atomic_write_text(folder / "README.md", model_card(payload))
    return folder


def read_model_folder(folder: str | os.PathLike) -> dict[str, Any]:
    """A model folder -> the payload of the same model as a model file."""
    folder = Path(folder)
    missing = [n for n in FILES[:3] if not (folder / n).is_file()]
    if missing:
        raise CheckpointError(f"{folder} is not a dmgan model folder: it has no "
                              f"{', '.join(missing)} (save_pretrained writes {', '.join(FILES)})")
    config = _read_json(folder / "config.json")
    if not isinstance(config, dict) or config.get("format") != FOLDER_FORMAT:
        raise CheckpointError(f"{folder / 'config.json'} is not a dmgan model folder's config")
    if config.get("format_version", 0) > FOLDER_VERSION:
        raise CheckpointError(f"{folder} has format version {config['format_version']}; this "
                              f"dmgan reads up to {FOLDER_VERSION}: upgrade dmgan")
    try:
        from safetensors.torch import load_file

        tensors = load_file(str(folder / "model.safetensors"))
    except Exception as exc:  # a truncated or foreign file
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(f"cannot read {folder / 'model.safetensors'}: {detail}") from None
    networks: dict[str, dict[str, torch.Tensor]] = {name: {} for name in NETWORKS}
    for key, value in tensors.items():
        name, _, rest = key.partition(".")
        if name not in networks or not rest:
            raise CheckpointError(f"{folder / 'model.safetensors'} holds an unexpected "
                                  f"tensor {key!r}")
        networks[name][rest] = value
    try:
        words = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise CheckpointError(f"{folder / 'vocab.txt'} is not UTF-8 text") from None
    record = {}
    if (folder / "provenance.json").is_file():
        record = _read_json(folder / "provenance.json")
        if not isinstance(record, dict):
            raise CheckpointError(f"{folder / 'provenance.json'} is not a JSON object")
    payload = {"format": "dmgan-checkpoint", "format_version": 1,
               "dmgan_version": config.get("dmgan_version"), "config": config.get("config"),
               "networks": networks, "vocab": words,
               "trained_steps": config.get("trained_steps")}
    payload |= {k: record[k] for k in ("provenance", "reads") if record.get(k) is not None}
    return payload


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None


def model_card(payload: dict[str, Any]) -> str:
    """The folder's README.md: what the model is, what its captions need, how it was made."""
    from dmgan.config import DMGANConfig

    cfg = payload["config"]
    sizes = DMGANConfig.from_dict(cfg).generator.image_sizes
    prov = payload.get("provenance") or {}
    if isinstance(prov, str):
        prov = {"note": prov}
    reads = payload.get("reads") or {}
    lines = [f"# dmgan model: {cfg.get('name', '?')}", "",
             "DM-GAN (Dynamic Memory GAN, Zhu et al., CVPR 2019) text-to-image generator with "
             "its DAMSM text encoder, saved by dmgan.", "",
             f"- images: {' / '.join(str(s) for s in sizes)} px stages",
             f"- vocabulary: {len(payload['vocab'])} words (`vocab.txt`)",
             f"- trained steps: {payload.get('trained_steps') or prov.get('steps') or '?'}"]
    world = reads.get("world")
    if world:
        lines.append(f"- draws at most {world.get('max_objects')} objects")
    for need in reads.get("needs", []):
        lines.append(f"- its captions need one of: {', '.join(need.get('words', []))}")
    lines += ["", "## Use", "", "```python", "from dmgan import DMGANPipeline", "",
              "pipe = DMGANPipeline.from_pretrained(\"path/to/this/folder\")",
              "image = pipe(\"a caption\", seed=0).images[0]", "```", ""]
    if prov:
        lines += ["## How it was made", ""]
        lines += [f"- {k}: {prov[k]}" for k in ("preset", "dmgan_version", "commit", "steps",
                                                  "exported") if prov.get(k) is not None]
        if prov.get("commands"):
            lines += ["", "```bash", *prov["commands"], "```"]
        if prov.get("note"):
            lines += ["", str(prov["note"])]
        if prov.get("report"):
            lines += ["", "Its evaluation (`provenance.json` holds every number):", "",
                      "```json", json.dumps(prov["report"], indent=1)[:3000], "```"]
        lines.append("")
    return "\n".join(lines)
