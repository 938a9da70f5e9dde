"""A training run -> the small model file inference loads (`dmgan export`; the bundled model
is one), with the record of how it was made and what it learned to read.

The model file holds the EMA generator, the text encoder, the vocabulary and the config, and:
- `provenance`: the preset, the commands that made it in order (DAMSM, critic, GAN, export:
  each checkpoint records its own command line and those of the checkpoints it read), the
  dmgan version and source commit, the steps trained and the run's evaluation at that step;
- `reads`: what its captions need to name (`needs`: per caption part, the words that name it
  and the warning for a caption without them). The pipeline warns from this record alone.
"""

from __future__ import annotations

import datetime
import os
import subprocess
from pathlib import Path

from dmgan.checkpoint import generator_name, lineage_of, load_checkpoint, save_checkpoint
from dmgan.data.vocab import Vocabulary
from dmgan.errors import CheckpointError
from dmgan.released import vocab_path_for


def source_commit() -> str | None:
    """The git commit of the dmgan source tree (with "+changes" when it has uncommitted ones),
    or None when the package is not run from a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+changes" if dirty else "")


def export_model(checkpoint: str | os.PathLike, out: str | os.PathLike, *, note: str = "",
                 half: bool = False, command: str | None = None,
                 scores: dict | None = None) -> list[Path]:
    """A training checkpoint -> a model file (EMA generator, text encoder, vocabulary, config,
    provenance, reads) and its vocabulary as JSON beside it (`<stem>.vocab.json`, what
    `dmgan eval --vocab` takes). `scores`: a report made after training (the demo's, on its
    held-out captions), recorded as the provenance's report in place of the run's own
    evaluation. Returns the paths written."""
    from dmgan import __version__

    cfg, payload = load_checkpoint(checkpoint)
    nets = payload.get("networks", {})
    gen = generator_name(payload)
    if gen not in nets or "text_encoder" not in nets or "vocab" not in payload:
        raise CheckpointError(f"{checkpoint} lacks a generator, text encoder or vocabulary")

    def cast(state):
        return {k: v.half() if half and v.is_floating_point() else v for k, v in state.items()}

    provenance = {
        "preset": cfg.name,
        "commands": lineage_of(payload) + ([command] if command else []),
        "dmgan_version": __version__,
        "commit": source_commit(),
        "steps": payload.get("step"),
        "report": scores if scores is not None else payload.get("metrics"),
        "exported": datetime.date.today().isoformat(),
        "note": note,
    }
    save_checkpoint(out, config=cfg,
                    networks={"generator": cast(nets[gen]), "text_encoder": nets["text_encoder"]},
                    vocab=payload["vocab"], trained_steps=payload.get("step"),
                    provenance=provenance, reads=payload.get("reads") or {"needs": []})
    vocab_file = vocab_path_for(out)
    Vocabulary(payload["vocab"]).save(vocab_file)
    return [Path(out), vocab_file]
