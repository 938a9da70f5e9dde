"""The released DM-GAN files: the only module that knows their key names and layout.

Released checkpoints are plain state dicts (old, pre-zip torch format):
`netG` (e.g. `bird_DMGAN.pth`), `netD0..2`, the DAMSM `text_encoder200.pth` and
`image_encoder200.pth`; also the standard Inception-v3 weight files (torchvision names).
Each of our modules maps its own keys to the released ones here; loading checks
that the file and the model agree key for key and shape for shape.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from dmgan.checkpoint import read_weights_only
from dmgan.errors import CheckpointError
from dmgan.nn import Discriminator, Generator, TextEncoder
from dmgan.nn.inception import InceptionTrunk

_SN = {"weight": "weight_bar", "bias": "bias", "u": "weight_u", "v": "weight_v"}
_STAGE_PARTS = {
    "word_gate": "A", "image_gate": "B", "word_memory": "M_w.0", "image_memory": "M_r.0",
    "key": "key.0", "value": "value.0", "response_gate": "response_gate.0",
    "upsample.conv": "upsample.1", "upsample.bn": "upsample.2",
}
_RES_PARTS = {"conv1": "block.0", "bn1": "block.1", "conv2": "block.3", "bn2": "block.4"}


def _generator_key(key: str) -> str:
    if key.startswith("ca."):
        return "ca_net." + key[3:]
    if m := re.fullmatch(r"init_stage\.fc\.(\w+)", key):
        return f"h_net1.fc.0.{m[1]}"
    if m := re.fullmatch(r"init_stage\.bn\.(\w+)", key):
        return f"h_net1.fc.1.{m[1]}"
    if m := re.fullmatch(r"init_stage\.ups\.(\d+)\.(conv|bn)\.(\w+)", key):
        return f"h_net1.upsample{int(m[1]) + 1}.{1 if m[2] == 'conv' else 2}.{m[3]}"
    if m := re.fullmatch(r"to_rgb\.(\d+)\.(\w+)", key):
        return f"img_net{int(m[1]) + 1}.img.0.{m[2]}"
    if m := re.fullmatch(r"stages\.(\d+)\.residual\.(\d+)\.(\w+)\.(\w+)", key):
        return f"h_net{int(m[1]) + 2}.residual.{m[2]}.{_RES_PARTS[m[3]]}.{m[4]}"
    if m := re.fullmatch(r"stages\.(\d+)\.([\w.]+)\.(\w+)", key):
        return f"h_net{int(m[1]) + 2}.{_STAGE_PARTS[m[2]]}.{m[3]}"
    raise KeyError(key)


def _discriminator_key(key: str, extra: int) -> str:
    if m := re.fullmatch(r"encoder\.(\d+)\.(\w+)", key):
        return f"img_code_s16.{2 * int(m[1])}.module.{_SN[m[2]]}"
    if m := re.fullmatch(r"down\.(\d+)\.(\w+)", key):
        return f"img_code_s{32 * 2 ** int(m[1])}.0.module.{_SN[m[2]]}"
    if m := re.fullmatch(r"squeeze\.(\d+)\.(\w+)", key):
        return f"img_code_s{16 * 2 ** extra}_{int(m[1]) + 1}.0.module.{_SN[m[2]]}"
    if m := re.fullmatch(r"cond_joint\.(\w+)", key):
        return f"COND_DNET.jointConv.0.module.{_SN[m[1]]}"
    if m := re.fullmatch(r"(un)?cond_out\.(\w+)", key):
        return f"{'UNCOND' if m[1] else 'COND'}_DNET.outlogits.0.{m[2]}"
    raise KeyError(key)


def _text_key(key: str) -> str:
    return "encoder.weight" if key == "embedding.weight" else key


def _namer(module: nn.Module) -> Callable[[str], str]:
    if isinstance(module, Generator):
        return _generator_key
    if isinstance(module, Discriminator):
        extra = len(module.down)
        return lambda k: _discriminator_key(k, extra)
    if isinstance(module, TextEncoder):
        return _text_key
    if isinstance(module, InceptionTrunk):  # image encoder and Inception files: same names
        return lambda k: k
    raise TypeError(f"no released layout for {type(module).__name__}")


def released_key_map(module: nn.Module) -> dict[str, str]:
    """{released key: our key} for every entry of `module.state_dict()`."""
    name = _namer(module)
    return {name(k): k for k in module.state_dict()}


def to_released(module: nn.Module) -> dict[str, torch.Tensor]:
    """Our module's weights under the released key names (for exporting)."""
    name = _namer(module)
    return {name(k): v for k, v in module.state_dict().items()}


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a .pth file, loaded with weights_only=True."""
    path = os.fspath(path)
    obj = read_weights_only(path)
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise CheckpointError(f"{path} is not a state dict (a mapping of names to tensors)")
    return dict(obj)


def load_released(
    module: nn.Module,
    source: str | os.PathLike | Mapping[str, torch.Tensor],
    *,
    what: str = "",
) -> nn.Module:
    """Load a released state dict (file or mapping) into our module, checking every key.

    Accepts files without `num_batches_tracked` and a `module.` prefix (DataParallel).
    Raises CheckpointError naming the first key that is missing, unexpected or of
    another shape. `what` names the expected file in messages (e.g. "bird netG").
    """
    label = os.fspath(source) if not isinstance(source, Mapping) else "the state dict"
    state = read_state_dict(source) if not isinstance(source, Mapping) else dict(source)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    mapping = released_key_map(module)
    own = module.state_dict()
    where = f" for {what}" if what else ""
    converted: dict[str, torch.Tensor] = {}
    for rkey, key in mapping.items():
        want = tuple(own[key].shape)
        if rkey not in state:
            if rkey.endswith("num_batches_tracked"):
                converted[key] = torch.zeros((), dtype=torch.long)
                continue
            raise CheckpointError(f"{label} does not fit the model{where}: key '{rkey}' "
                                  f"(shape {want}) is missing from the file")
        got = tuple(state[rkey].shape)
        if got != want:
            raise CheckpointError(f"{label} does not fit the model{where}: key '{rkey}' has "
                                  f"shape {got} in the file but {want} in the model")
        converted[key] = state[rkey]
    unexpected = [k for k in state if k not in mapping]
    if unexpected:
        raise CheckpointError(f"{label} does not fit the model{where}: unexpected key "
                              f"'{unexpected[0]}' ({len(unexpected)} in all)")
    module.load_state_dict(converted, strict=True)
    return module


def check_discriminator_files(cfg, paths) -> None:
    """One released netD file per discriminator of the preset, or a clear error."""
    from dmgan.errors import DMGANError

    want = len(cfg.generator.image_sizes)
    if len(paths) != want:
        raise DMGANError(f"preset '{cfg.name}' has {want} discriminators; got {len(paths)} "
                         f"netD files")


def check_released_files(preset_name: str, *, netG=None, text_encoder=None,  # noqa: N803
                         netD=None) -> list[str]:  # noqa: N803
    """Load released .pth files into a preset's networks; one "ok" line per file, or a
    CheckpointError naming the first key that does not fit."""
    from dmgan.config import preset
    from dmgan.errors import DMGANError
    from dmgan.models import build_discriminators, build_generator, build_text_encoder

    cfg = preset(preset_name)
    jobs = []
    if netG:
        jobs.append(("netG", build_generator(cfg, init=False), netG))
    if text_encoder:
        jobs.append(("text encoder", build_text_encoder(cfg), text_encoder))
    if netD:
        check_discriminator_files(cfg, netD)
        ds = build_discriminators(cfg, init=False)
        jobs += [(f"netD{i}", d, p) for i, (d, p) in enumerate(zip(ds, netD, strict=True))]
    if not jobs:
        raise DMGANError("nothing to check: give --netG, --text-encoder and/or --netD")
    lines = []
    for label, net, path in jobs:
        load_released(net, path, what=f"the '{cfg.name}' {label}")
        lines.append(f"ok  {label:13s} {path}  ({sum(p.numel() for p in net.parameters()):,d} "
                     f"parameters)")
    return lines


def vocab_path_for(model_path: str | os.PathLike) -> Path:
    """Where a model file's vocabulary JSON goes: beside it, `<stem>.vocab.json` (what
    `dmgan eval --vocab` takes)."""
    path = Path(model_path)
    return path.with_name(f"{path.stem}.vocab.json")


def convert_released(preset_name: str, *, netG, text_encoder, captions,  # noqa: N803
                     output, image_encoder=None) -> list[Path]:
    """The released generator, DAMSM encoders and the dataset's captions.pickle (its
    vocabulary) -> one dmgan model file, and the vocabulary as JSON beside it. Returns the
    paths written."""
    from dmgan.checkpoint import save_checkpoint
    from dmgan.config import preset
    from dmgan.data.open import check_vocab
    from dmgan.data.vocab import load_captions_pickle
    from dmgan.models import build_generator, build_image_encoder, build_text_encoder

    words = load_captions_pickle(captions).vocab
    cfg = preset(preset_name)
    check_vocab(cfg, words, source=str(captions), hint="the captions.pickle of the dataset "
                "this preset was released for")
    generator = load_released(build_generator(cfg), netG, what=f"the '{cfg.name}' generator (netG)")
    encoder = load_released(build_text_encoder(cfg), text_encoder,
                            what=f"the '{cfg.name}' DAMSM text encoder")
    extra = {}
    if image_encoder:
        extra["image_encoder"] = load_released(build_image_encoder(cfg), image_encoder,
                                               what=f"the '{cfg.name}' DAMSM image encoder")
    save_checkpoint(output, config=cfg,
                    networks={"text_encoder": encoder, "generator": generator, **extra},
                    vocab=list(words.words), source="released DM-GAN files",
                    converted_from={"netG": str(netG), "text_encoder": str(text_encoder),
                                    "image_encoder": str(image_encoder),
                                    "captions": str(captions)})
    vocab_file = vocab_path_for(output)
    words.save(vocab_file)
    return [Path(output), vocab_file]
