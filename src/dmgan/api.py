"""The Python API: build DM-GAN from a preset, load released or our own files, run it.

    import torch, dmgan
    model = dmgan.DMGAN.from_released("bird", netG="bird_DMGAN.pth",
                                      text_encoder="text_encoder200.pth")
    out = model.generate(captions, lengths, seed=0)   # captions: (B, L) word ids
    out.images[-1]                                    # (B, 3, 256, 256) in [-1, 1]
"""

from __future__ import annotations

import os

import torch
from torch import nn

from dmgan.checkpoint import generator_name, load_checkpoint, load_network, save_checkpoint
from dmgan.config import DMGANConfig, preset
from dmgan.errors import DMGANError
from dmgan.models import build_discriminators, build_generator, build_text_encoder
from dmgan.nn import GeneratorOutput, TextEncoding
from dmgan.released import load_released

PathLike = str | os.PathLike


class DMGAN(nn.Module):
    """Text encoder + generator of one configuration: what inference needs."""

    def __init__(self, config: DMGANConfig, vocab: list[str] | None = None, *,
                 reads: dict | None = None, provenance: dict | str | None = None):
        super().__init__()
        self.config = config
        self.vocab = vocab  # index -> word, when known (needed to encode sentences)
        # what its captions need to name ({"needs": [...]}, dmgan.export), and how it was made
        self.reads, self.provenance = reads, provenance
        self.text_encoder = build_text_encoder(config)
        self.generator = build_generator(config)
        self.eval()

    @classmethod
    def from_preset(cls, name: str) -> DMGAN:
        """Random weights (the released initialisation) for a named preset."""
        return cls(preset(name))

    @classmethod
    def from_released(
        cls, preset_name: str, *, netG: PathLike, text_encoder: PathLike  # noqa: N803
    ) -> DMGAN:
        """The released generator and DAMSM text encoder files for preset `preset_name`."""
        model = cls(preset(preset_name))
        load_released(model.generator, netG, what=f"the '{preset_name}' generator (netG)")
        load_released(model.text_encoder, text_encoder,
                      what=f"the '{preset_name}' DAMSM text encoder")
        return model

    @classmethod
    def from_checkpoint(cls, path: PathLike, *, expect_preset: str | None = None) -> DMGAN:
        """One of our checkpoints or model folders (`save_pretrained`); the architecture is
        rebuilt from the stored config.

        Prefers the EMA generator when the checkpoint has one.
        """
        config, payload = load_checkpoint(path, expect_preset=expect_preset)
        model = cls(config, vocab=payload.get("vocab"), reads=payload.get("reads"),
                    provenance=payload.get("provenance"))
        model.trained_steps = payload.get("trained_steps", payload.get("step"))
        load_network(model.text_encoder, payload, "text_encoder", os.fspath(path))
        gen = generator_name(payload)
        load_network(model.generator, payload, gen, os.fspath(path))
        return model

    def optimize_for_inference(self, *, channels_last: bool | None = None) -> DMGAN:
        """Fold batch norms into their convs and choose the memory layout: channels_last
        (True), contiguous (False), or (None) the one a probe measured faster on this
        machine for this model (dmgan.tuning, cached; channels_last on a GPU).

        The same function up to float rounding; the model cannot be trained afterwards.
        """
        from dmgan.nn.fuse import fold_batch_norm

        self.generator = fold_batch_norm(self.generator)
        self.inference_only = True
        if channels_last is None:
            channels_last = True
            if next(self.generator.parameters()).device.type == "cpu":
                from dmgan.tuning import probe_layout

                channels_last = probe_layout(self.generator.eval(), self.config)[0]
        self.layout = "channels_last" if channels_last else "contiguous"
        if channels_last:
            self.generator = self.generator.to(memory_format=torch.channels_last)
        self.eval()
        return self

    def save(self, path: PathLike) -> None:
        if getattr(self, "inference_only", False):
            raise DMGANError("this model was optimized for inference (batch norms folded); "
                             "save the model before optimize_for_inference()")
        extra = {"vocab": list(self.vocab)} if self.vocab is not None else {}
        extra |= {k: v for k, v in (("reads", self.reads), ("provenance", self.provenance),
                                    ("trained_steps", getattr(self, "trained_steps", None)))
                  if v is not None}
        save_checkpoint(path, config=self.config,
                        networks={"text_encoder": self.text_encoder, "generator": self.generator},
                        **extra)

    def save_pretrained(self, folder: PathLike) -> None:
        """The model as a folder (config.json, model.safetensors, vocab.txt, provenance.json,
        README.md: dmgan.model_folder); `from_checkpoint` and every `--checkpoint` read it."""
        from dmgan.model_folder import save_model_folder

        if getattr(self, "inference_only", False):
            raise DMGANError("this model was optimized for inference (batch norms folded); "
                             "save the model before optimize_for_inference()")
        save_model_folder(folder, {
            "config": self.config.to_dict(), "vocab": self.vocab, "reads": self.reads,
            "provenance": self.provenance, "trained_steps": getattr(self, "trained_steps", None),
            "networks": {"text_encoder": self.text_encoder.state_dict(),
                         "generator": self.generator.state_dict()}})

    def encode(self, captions: torch.Tensor, lengths: torch.Tensor) -> TextEncoding:
        """captions (B, L) word ids (0 = padding), lengths (B,) in any order."""
        return self.text_encoder(captions, lengths)

    @torch.inference_mode()
    def generate(
        self,
        captions: torch.Tensor,
        lengths: torch.Tensor,
        *,
        noise: torch.Tensor | None = None,
        seed: int | None = None,
        sample_condition: bool = False,
    ) -> GeneratorOutput:
        """Images for word-id captions. noise (B, Z) or a seed; the condition code is mu
        unless sample_condition=True."""
        device = next(self.parameters()).device
        captions, lengths = captions.to(device), lengths.to(device)
        if noise is None:
            gen = torch.Generator().manual_seed(seed) if seed is not None else None
            noise = torch.randn(captions.shape[0], self.config.generator.z_dim, generator=gen)
        text = self.encode(captions, lengths)
        return self.generator(noise.to(device), text.sentence, text.words, text.mask,
                              sample_condition=sample_condition)


def released_discriminators(config: DMGANConfig, paths: list[PathLike]) -> nn.ModuleList:
    """The released netD0, netD1, ... files, one per stage, in order."""
    from dmgan.released import check_discriminator_files

    check_discriminator_files(config, paths)
    ds = build_discriminators(config)
    for i, (d, p) in enumerate(zip(ds, paths, strict=True)):
        load_released(d, p, what=f"the '{config.name}' discriminator netD{i}")
    return ds
