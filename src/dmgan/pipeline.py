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
from dmgan.data.vocab import CaptionError, Vocabulary, check_caption_length, tokenize
from dmgan.errors import CheckpointError, DMGANError
from dmgan.imageio import to_pil

BUNDLED_MODEL = "shapes_model.pt"


@dataclass
class PipelineOutput:
    """What a call returns. Indexable as diffusers' outputs are: `out[0]` and `out["images"]`
    are the images, `out.to_tuple()` is `(images,)`."""

    captions: list[str]  # one entry per image (captions repeated for num_images > 1)
    images: list[Image.Image]  # the last stage
    stage_images: list[list[Image.Image]]  # per image, every stage (small to large)
    words: list[list[str]]  # the caption's words the model saw, in order
    unknown_words: list[list[str]]
    # with explain=True, per image and per memory stage (numpy arrays):
    attention: list[list[np.ndarray]] = field(default_factory=list)  # (T, H, W)
    writing_gates: list[list[np.ndarray]] = field(default_factory=list)  # (T,)
    response_gates: list[list[np.ndarray]] = field(default_factory=list)  # (H, W)
    # per caption, the known words left out because the caption is longer than the model reads
    dropped_words: list[int] = field(default_factory=list)

    def to_tuple(self) -> tuple:
        return (self.images,)

    def __getitem__(self, key: int | str):
        if isinstance(key, str):
            if key not in self.__dataclass_fields__:
                raise KeyError(key)
            return getattr(self, key)
        return self.to_tuple()[key]


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
        self.source: Path | None = None  # the file or folder it was loaded from

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, *,
                        device: str | torch.device = "cpu", amp: str = "off",
                        backend: str = "eager",
                        torch_dtype: torch.dtype | str | None = None) -> DMGANPipeline:
        """One of our model files or model folders (`save_pretrained`) at `path`, or the
        bundled shapes model, on `device`. The device defaults to the CPU, as diffusers'
        `from_pretrained` does (then `.to("cuda")`); `device="auto"` takes the GPU when there
        is one (the CLI's default). `torch_dtype`: torch.float32 (the default), or
        torch.bfloat16 / torch.float16 to run the generator in that precision (mixed
        precision: the weights stay fp32; the same as `amp="bf16"` / `"fp16"`). bf16 on a
        GPU, or on a CPU with bf16 units (AVX512-BF16, AMX), is about twice as fast; the
        images differ from fp32 ones by a level or two of 255. `backend`: eager, compile,
        jit or onnx (dmgan.inference; images only, no explanation, from the last three)."""
        from dmgan.device import check_amp, resolve_device

        if torch_dtype is not None:
            amp = _amp_for_dtype(torch_dtype, amp)
        device = resolve_device(device, flag="device")
        check_amp(amp, device)
        path = bundled_model_path() if path is None else Path(path)
        if not path.exists() and path == bundled_model_path():
            raise DMGANError("this installation has no bundled model; pass --checkpoint")
        model = DMGAN.from_checkpoint(path)
        if model.vocab is None:
            raise CheckpointError(f"{path} has no vocabulary; convert released files with "
                                  f"dmgan convert-released (it takes captions.pickle)")
        pipe = cls(model.to(device).optimize_for_inference(), Vocabulary(model.vocab), amp=amp,
                   backend=backend)
        pipe.source = path
        return pipe

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """This pipeline's model as a folder that `from_pretrained` (and every `--checkpoint`)
        reads: config.json, model.safetensors, vocab.txt, provenance.json and a model card
        README.md (dmgan.model_folder). Returns the folder."""
        model = self.model
        if getattr(model, "inference_only", False):  # batch norms folded: the file's weights
            if self.source is None:
                raise DMGANError("this pipeline's model was optimized for inference and came "
                                 "from no file; save the DMGAN before optimize_for_inference()")
            model = DMGAN.from_checkpoint(self.source)
        model.save_pretrained(folder)
        return Path(folder)

    def encode(self, caption: str, seed: int) -> tuple[list[int], list[str]]:
        """The word ids the model reads for a caption, and its unknown words."""
        ids, unknown, _ = self.encode_counted(caption, seed)
        return ids, unknown

    def encode_counted(self, caption: str, seed: int) -> tuple[list[int], list[str], int]:
        """(word ids the model reads, unknown words, known words left out: a caption longer
        than the model reads keeps words_eval of its words, drawn with `seed`)."""
        enc = self.vocab.encode(caption)  # CaptionError when no word is known
        limit = self.model.config.text.words_eval
        ids, n = fit_caption(enc.ids, limit, np.random.default_rng(seed))
        return ids[:n].tolist(), enc.unknown, len(enc.ids) - n

    def to(self, device: str | torch.device) -> DMGANPipeline:
        """Move the model ("cpu", "cuda", "cuda:1" or "auto"); returns the pipeline."""
        from dmgan.device import resolve_device

        self.model.to(resolve_device(device, flag="device"))
        self._runner = None  # a compiled or exported graph holds the old device
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def __call__(self, prompt: str | list[str] | None = None, *, seed: int = 0,
                 num_images: int = 1, num_images_per_prompt: int | None = None,
                 generator: torch.Generator | list[torch.Generator] | None = None,
                 output_type: str = "pil", explain: bool = False, first_image: int = 0,
                 return_dict: bool = True, captions: str | list[str] | None = None,
                 **unsupported) -> PipelineOutput | tuple:
        """Pictures of `prompt` (one caption or a list; `captions=` is the same).

        The noise: image j of every caption is drawn from
        `torch.Generator().manual_seed(seed + j)`, so a caption and a seed always give the
        same image, whatever else is in the call, and image j alone is `seed=seed + j`.
        `generator` is the same thing spelled as diffusers does: a list of CPU generators,
        one per image (`seed=s` is `generator=[torch.Generator().manual_seed(s + j) for j in
        range(num_images)]`); one generator is used for image 0 and, drawn on, for the images
        after it (so `generator=torch.Generator().manual_seed(s)` equals `seed=s` for one image).
        Every caption of a call gets the same noises. `num_images_per_prompt` is diffusers'
        name for `num_images`; `first_image` numbers the images from there (asking in chunks
        gives the images of one call). `output_type`: "pil", "np" (one float array (N, H, W,
        3) in [0, 1]) or "pt" (one tensor (N, 3, H, W) in [0, 1]), for `images` and, per
        image, `stage_images`. `return_dict=False` returns `(images,)`.

        A GAN draws in one pass: there is no guidance, negative prompt or step count to set
        (`guidance_scale=` and the like are refused with that reason)."""
        if unsupported:
            raise _unsupported(unsupported)
        if captions is not None:
            if prompt is not None:
                raise DMGANError("give the captions once: prompt= or captions=, not both")
            prompt = captions
        if output_type not in OUTPUT_TYPES:
            raise DMGANError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got "
                             f"{output_type!r}")
        if prompt is None:
            raise CaptionError("no caption given (prompt=)")
        prompt = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompt:
            raise CaptionError("no caption given")
        for caption in prompt:
            if not isinstance(caption, str):
                raise CaptionError(f"a caption is text, not {type(caption).__name__}")
            check_caption_length(caption)
        if num_images_per_prompt is not None:
            num_images = num_images_per_prompt
        if num_images < 1:
            raise DMGANError(f"num_images must be >= 1, got {num_images}")
        if explain and self.backend != "eager":
            raise DMGANError(f"what the memory did comes from the eager generator only, "
                             f"not --backend {self.backend}")
        noise = self._noise(seed, num_images, first_image, generator)
        with torch.inference_mode():
            result = self._draw(prompt, seed, noise, explain)
        if output_type != "pil":
            result.images = _convert(result.images, output_type)
            # a caption's stages differ in size: each image's stages come back as a list
            result.stage_images = [_convert(st, output_type) for st in result.stage_images]
        return result if return_dict else result.to_tuple()

    def _noise(self, seed: int, n: int, first: int,
               generator: torch.Generator | list[torch.Generator] | None) -> torch.Tensor:
        z_dim = self.model.config.generator.z_dim
        if generator is None:
            generators = [torch.Generator().manual_seed(seed + j) for j in range(first, first + n)]
        elif isinstance(generator, torch.Generator):
            return torch.randn(n, z_dim, generator=generator).to(self.device)
        else:
            generators = list(generator)
            if len(generators) != n:
                raise DMGANError(f"a list of generators gives one per image: {n} needed, "
                                 f"{len(generators)} given")
        return torch.stack([torch.randn(z_dim, generator=g) for g in generators]).to(self.device)

    def _draw(self, captions: list[str], seed: int, noise: torch.Tensor,
              explain: bool) -> PipelineOutput:
        from dmgan.device import autocast

        dev, num_images = self.device, len(noise)
        result = PipelineOutput([], [], [], [], [])
        for caption in captions:
            ids, unknown, dropped = self.encode_counted(caption, seed)
            # stacklevel 3: _draw, __call__, then the caller's line
            if unknown:
                warnings.warn(f"unknown word(s) ignored: {', '.join(unknown)}", stacklevel=3)
            if dropped:
                warnings.warn(f"the caption has more words than the model reads "
                              f"({self.model.config.text.words_eval}): {dropped} left out",
                              stacklevel=3)
            words = [self.vocab.words[i] for i in ids]
            for need in self.needs:
                if not set(need["words"]).intersection(words):
                    warnings.warn(need["message"], stacklevel=3)
            beyond = self._beyond_the_world(caption)
            if beyond:
                warnings.warn(beyond, stacklevel=3)
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
            result.dropped_words.append(dropped)
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
# what diffusers' pipelines take that a GAN has no use for: refused with the reason
DIFFUSION_ONLY = ("negative_prompt", "guidance_scale", "num_inference_steps", "eta",
                  "latents", "prompt_embeds", "negative_prompt_embeds", "guidance_rescale",
                  "timesteps", "strength", "height", "width", "callback", "callback_steps",
                  "cross_attention_kwargs", "clip_skip")


def _unsupported(kwargs: dict) -> Exception:
    names = sorted(kwargs)
    diffusion = [n for n in names if n in DIFFUSION_ONLY]
    if diffusion:
        return DMGANError(
            f"{', '.join(diffusion)}: DM-GAN draws a picture in one pass of its generator; it "
            f"has no guidance, negative prompt, denoising steps or latents to set, and its "
            f"image size is the model's")
    return TypeError(f"DMGANPipeline() got unexpected keyword argument(s) {', '.join(names)}; "
                     f"it takes prompt, seed, num_images (num_images_per_prompt), generator, "
                     f"output_type, explain, first_image, return_dict")


def _amp_for_dtype(dtype: torch.dtype | str, amp: str) -> str:
    names = {torch.float32: "off", torch.bfloat16: "bf16", torch.float16: "fp16",
             "float32": "off", "bfloat16": "bf16", "float16": "fp16", "auto": "off"}
    if dtype not in names:
        raise DMGANError(f"torch_dtype must be torch.float32, torch.bfloat16 or torch.float16, "
                         f"got {dtype!r}")
    chosen = names[dtype]
    if amp not in ("off", chosen):
        raise DMGANError(f"torch_dtype={dtype} and amp={amp!r} disagree: give one of them")
    return chosen


def _convert(images: list[Image.Image], output_type: str):
    """PIL images -> (N, H, W, 3) float32 array or (N, 3, H, W) tensor, in [0, 1]; images
    of different sizes (stages) -> a list."""
    arrays = [np.asarray(img, dtype=np.float32) / 255.0 for img in images]
    if output_type == "pt":
        tensors = [torch.from_numpy(a).permute(2, 0, 1) for a in arrays]
        return torch.stack(tensors) if len({t.shape for t in tensors}) == 1 else tensors
    return np.stack(arrays) if len({a.shape for a in arrays}) == 1 else arrays
