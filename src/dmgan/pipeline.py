"""Sentences in, pictures out: the user-facing pipeline.

    from dmgan.pipeline import DMGANPipeline
    pipe = DMGANPipeline.from_pretrained()          # the bundled shapes model
    out = pipe("a large red circle on a blue background", seed=0, explain=True)
    out.images[0].save("circle.png")
    out.writing_gates[0][-1]                        # (words,) for the last memory stage
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dmgan.api import DMGAN
from dmgan.data.transforms import fit_caption
from dmgan.data.vocab import CaptionError, Vocabulary, tokenize
from dmgan.errors import CheckpointError, DMGANError
from dmgan.imageio import to_pil

BUNDLED_MODEL = "shapes_model.pt"


@dataclass
class PipelineOutput:
    captions: list[str]  # one entry per image (captions repeated for num_images > 1)
    images: list[Image.Image]  # the last stage
    stage_images: list[list[Image.Image]]  # per image, every stage (small to large)
    words: list[list[str]]  # the caption's words the model saw, in order
    unknown_words: list[list[str]]
    # with explain=True, per image and per memory stage (numpy arrays):
    attention: list[list[np.ndarray]] = field(default_factory=list)  # (T, H, W)
    writing_gates: list[list[np.ndarray]] = field(default_factory=list)  # (T,)
    response_gates: list[list[np.ndarray]] = field(default_factory=list)  # (H, W)


def bundled_model_path() -> Path:
    return Path(str(resources.files("dmgan") / "assets" / BUNDLED_MODEL))


class DMGANPipeline:
    """Captions in, images out (and, on request, what the dynamic memory did).

    `from_pretrained()` loads one of our model files (or the bundled shapes model), folds
    batch norms for speed and keeps the vocabulary; calling the pipeline tokenizes each
    caption, warns about unknown words, refuses captions with no known content word, and
    returns a `PipelineOutput`. Image j of a caption uses noise seeded by `seed + j`, or
    drawn from `generator` when one is given.

    Example (the names follow diffusers' pipelines)::

        import torch
        from dmgan import DMGANPipeline

        pipe = DMGANPipeline.from_pretrained().to("cpu")   # or "cuda", or "auto"
        out = pipe(["a red circle on a blue background", "a small green square"],
                   num_images_per_prompt=2, generator=torch.Generator().manual_seed(0))
        out.images[0].save("circle.png")                  # PIL images, 2 per caption
        arrays = pipe("a red circle", output_type="np").images   # (N, H, W, 3) in [0, 1]
        batch = pipe("a red circle", output_type="pt").images    # (N, 3, H, W) in [0, 1]
    """

    def __init__(self, model: DMGAN, vocab: Vocabulary, *, amp: str = "off",
                 backend: str = "eager"):
        from dmgan.data.open import check_vocab
        from dmgan.inference import check_backend

        check_vocab(model.config, vocab, source="the vocabulary", error=CheckpointError,
                    hint="not this model's vocabulary")
        check_backend(backend, amp)
        self.model, self.vocab = model.eval(), vocab
        self.amp, self.backend = amp, backend
        # what the model's captions need to name, and how many objects it draws, as its file
        # records them (dmgan.export)
        self.needs = list((model.reads or {}).get("needs", []))
        self.world = (model.reads or {}).get("world")
        self._runner = None  # built at the first call (compiling or exporting takes a while)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, *,
                        device: str | torch.device = "cpu", amp: str = "off",
                        backend: str = "eager") -> DMGANPipeline:
        """Our checkpoint at `path` (with its vocabulary), or the bundled shapes model, on
        `device` ("auto": the GPU when there is one). `amp="bf16"` runs the generator in
        bf16 mixed precision: on a GPU, and on a CPU with bf16 units (AVX512-BF16, AMX),
        about twice as fast; the images differ from fp32 ones by a level or two of 255.
        `backend`: eager, compile, jit or onnx (dmgan.inference; images only, no
        explanation, from the last three)."""
        from dmgan.device import check_amp, resolve_device

        device = resolve_device(device)
        check_amp(amp, device)
        path = bundled_model_path() if path is None else Path(path)
        if not path.is_file() and path == bundled_model_path():
            raise DMGANError("this installation has no bundled model; pass --checkpoint")
        model = DMGAN.from_checkpoint(path)
        if model.vocab is None:
            raise CheckpointError(f"{path} has no vocabulary; convert released files with "
                                  f"dmgan convert-released (it takes captions.pickle)")
        return cls(model.to(device).optimize_for_inference(), Vocabulary(model.vocab), amp=amp,
                   backend=backend)

    def encode(self, caption: str, seed: int) -> tuple[list[int], list[str]]:
        enc = self.vocab.encode(caption)  # CaptionError when no word is known
        limit = self.model.config.text.words_eval
        ids, n = fit_caption(enc.ids, limit, np.random.default_rng(seed))
        return ids[:n].tolist(), enc.unknown

    def to(self, device: str | torch.device) -> DMGANPipeline:
        """Move the model ("cpu", "cuda", "cuda:1" or "auto"); returns the pipeline."""
        from dmgan.device import resolve_device

        self.model.to(resolve_device(device))
        self._runner = None  # a compiled or exported graph holds the old device
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def __call__(self, captions: str | list[str], *, seed: int = 0, num_images: int = 1,
                 num_images_per_prompt: int | None = None,
                 generator: torch.Generator | None = None, output_type: str = "pil",
                 explain: bool = False, first_image: int = 0) -> PipelineOutput:
        """Image j of every caption uses noise seeded by seed + j, so a caption and a seed
        always give the same image, whatever else is in the call. With `generator` (a CPU
        torch.Generator) the noise is drawn from it instead, one draw per caption.
        `num_images_per_prompt` is diffusers' name for `num_images`. `first_image` numbers
        the images from there (noise seed + first_image + j): asking for images in chunks
        gives the same images as one call. `output_type`: "pil" (PIL images), "np" (one
        float array (N, H, W, 3) in [0, 1]) or "pt" (one tensor (N, 3, H, W) in [0, 1]),
        for `images` and, per image, `stage_images`."""
        if output_type not in OUTPUT_TYPES:
            raise DMGANError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got "
                             f"{output_type!r}")
        captions = [captions] if isinstance(captions, str) else list(captions)
        if not captions:
            raise CaptionError("no caption given")
        if num_images_per_prompt is not None:
            num_images = num_images_per_prompt
        if num_images < 1:
            raise DMGANError(f"num_images must be >= 1, got {num_images}")
        if explain and self.backend != "eager":
            raise DMGANError(f"what the memory did comes from the eager generator only, "
                             f"not --backend {self.backend}")
        from dmgan.device import autocast

        dev = self.device
        z_dim = self.model.config.generator.z_dim
        noise = torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(seed + j))
                             for j in range(first_image, first_image + num_images)]).to(dev)
        result = PipelineOutput([], [], [], [], [])
        for caption in captions:
            if generator is not None:
                noise = torch.randn(num_images, z_dim, generator=generator).to(dev)
            ids, unknown = self.encode(caption, seed)
            if unknown:
                warnings.warn(f"unknown word(s) ignored: {', '.join(unknown)}", stacklevel=2)
            words = [self.vocab.words[i] for i in ids]
            for need in self.needs:
                if not set(need["words"]).intersection(words):
                    warnings.warn(need["message"], stacklevel=2)
            beyond = self._beyond_the_world(caption)
            if beyond:
                warnings.warn(beyond, stacklevel=2)
            # one caption per forward: every row has the same padding, so the released
            # mask mode gives the same images as the exact one
            caps = torch.tensor([ids] * num_images, device=dev)
            lens = torch.full((num_images,), len(ids), device=dev)
            text = self.model.encode(caps, lens)
            with autocast(dev, self.amp):
                if self.backend == "eager":
                    out = self.model.generator(noise, text.sentence, text.words, text.mask,
                                               sample_condition=False)
                    images = out.images
                else:
                    images = self._run(noise, text.sentence, text.words, text.mask)
            for j in range(num_images):
                result.captions.append(caption)
                stages = [to_pil(img[j]) for img in images]
                result.stage_images.append(stages)
                result.images.append(stages[-1])
                result.words.append(words)
                result.unknown_words.append(unknown)
                if explain:
                    result.attention.append([a[j].float().cpu().numpy() for a in out.attention])
                    result.writing_gates.append([w[j, 0].float().cpu().numpy()
                                                 for w in out.writing_gates])
                    result.response_gates.append([r[j, 0].float().cpu().numpy()
                                                  for r in out.response_gates])
        if output_type != "pil":
            result.images = _convert(result.images, output_type)
            # a caption's stages differ in size: each image's stages come back as a list
            result.stage_images = [_convert(st, output_type) for st in result.stage_images]
        return result


    def _beyond_the_world(self, caption: str) -> str | None:
        """A warning when the caption asks for more objects than the model draws (counted by
        their nouns, plurals as two, or a count word beyond them), else None."""
        if not self.world:
            return None
        tokens = tokenize(caption)
        most = self.world["max_objects"]
        counts = [w for w in tokens if w in self.world["beyond_count_words"]]
        objects = sum(self.world["object_words"].get(w, 0) for w in tokens)
        if not counts and objects <= most:
            return None
        asked = f"'{counts[0]}'" if counts else f"{objects} objects"
        return (f"this model draws at most {most} objects; the caption asks for {asked}, so the "
                f"picture will not show them all")

    def _run(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        if self._runner is None:
            from dmgan.inference import build_runner

            self._runner = build_runner(self.model.generator, self.backend, amp=self.amp)
        return self._runner(*inputs)


OUTPUT_TYPES = ("pil", "np", "pt")


def _convert(images: list[Image.Image], output_type: str):
    """PIL images -> (N, H, W, 3) float32 array or (N, 3, H, W) tensor, in [0, 1]; images
    of different sizes (stages) -> a list."""
    arrays = [np.asarray(img, dtype=np.float32) / 255.0 for img in images]
    if output_type == "pt":
        tensors = [torch.from_numpy(a).permute(2, 0, 1) for a in arrays]
        return torch.stack(tensors) if len({t.shape for t in tensors}) == 1 else tensors
    return np.stack(arrays) if len({a.shape for a in arrays}) == 1 else arrays
