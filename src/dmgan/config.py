"""Typed configuration: one dataclass per part of the system, and named presets.

Configs are plain data. Network constructors never read them; `dmgan.models`
translates a config into the explicit keyword arguments of each constructor.
A config round-trips through `to_dict` / `from_dict` (JSON-friendly), which is
how checkpoints and run folders store it. Each field's trailing comment is its
one-line description: `dmgan info --config-reference` prints them all
(docs/configuration.md is that page).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass, field
from typing import Any

from dmgan.errors import ConfigError

MASK_MODES = ("released", "exact")


@dataclass(frozen=True)
class TextConfig:
    vocab_size: int  # words in the vocabulary, index 0 = end/padding token
    word_dim: int = 300  # word embedding size fed to the LSTM
    embed_dim: int = 256  # D: word/sentence feature size (both LSTM directions together)
    words_train: int = 18  # words per caption during training (longer: in-order subsample)
    words_eval: int = 25  # words per caption at evaluation
    captions_per_image: int = 10  # captions each image of a dataset folder has
    dropout: float = 0.5  # dropout after the word embedding, as in the released encoder


@dataclass(frozen=True)
class GeneratorConfig:
    gf_dim: int = 64  # channels of the memory stages (the initial stage starts at gf_dim * 16)
    z_dim: int = 100  # noise size
    condition_dim: int = 100  # conditioning-augmentation code size
    num_stages: int = 3  # initial stage + (num_stages - 1) dynamic-memory stages
    base_size: int = 64  # resolution of the initial stage's image (a power of two >= 8)
    res_blocks: int = 2  # residual blocks per memory stage
    mask_mode: str = "released"  # padding mask: "released" (as the released code, interleaved) or "exact"
    memory: bool = True  # the dynamic memory; False: the paper's "no memory" ablation
    writing_gate: bool = True  # memory writing gate; False: the memory stages write the words alone
    response_gate: bool = True  # response gate; False: the memory stages take (image, read) ungated
    first_stage_read_px: int = 0  # the initial stage also reads the words at this size (px); 0: released
    word_context: int = 0  # self-attention layers over the words before any stage reads them; 0: released

    @property
    def image_sizes(self) -> tuple[int, ...]:
        return tuple(self.base_size * 2**i for i in range(self.num_stages))


@dataclass(frozen=True)
class DiscriminatorConfig:
    df_dim: int = 32  # channels of the first discriminator conv
    unconditional: bool = True  # also judge real/fake without the sentence
    word_match: bool = False  # the match head also reads the words at each place; False: released
    word_context: int = 0  # self-attention layers over the words before the match head (needs word_match)


@dataclass(frozen=True)
class LossConfig:
    gamma1: float = 4.0  # DAMSM: sharpness of the word-to-region attention
    gamma2: float = 5.0  # DAMSM: how much the best-matching words dominate
    gamma3: float = 10.0  # DAMSM: smoothing of the image-caption posterior
    damsm_weight: float = 5.0  # LAMBDA: weight of the DAMSM loss in the generator loss
    kl_weight: float = 1.0  # weight of the conditioning KL term
    caption_preference_weight: float = 0.0  # G pays when a D prefers the near-miss caption on its image
    pixel_weight: float = 0.0  # G pays the squared difference to its caption's real picture; 0: released
    pixel_object_weight: float = 0.0  # objects' pixels count 1 + this times (candidates: fixed only)
    pixel_candidates: int = 1  # free captions: G trains on the nearest to the real of this many drawings
    diversity_weight: float = 0.0  # G pays when two noises give alike pictures of a caption with freedom


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 10  # images per GAN step
    epochs: int = 800  # passes over the training split
    lr_g: float = 2e-4  # generator learning rate (Adam)
    lr_d: float = 2e-4  # discriminators' learning rate (Adam)
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    ema_decay: float = 0.999  # decay of the EMA generator used for inference
    ema_warmup: bool = False  # EMA decay min(ema_decay, (1 + t) / (10 + t)): useful in short runs
    d_steps: int = 1  # discriminator updates per generator update (released: 1)
    near_miss_negatives: bool = False  # D's mismatched pairs are near-miss captions (shapes data)


@dataclass(frozen=True)
class DamsmConfig:
    batch_size: int = 48  # images per DAMSM pre-training step
    epochs: int = 600  # passes over the training split
    image_size: int = 299  # size of the images the image encoder reads
    words: int = 18  # words per caption in pre-training
    lr: float = 2e-3  # learning rate (Adam)
    lr_decay: float = 0.98  # per epoch while lr > lr_floor
    lr_floor: float = 2e-4  # the decay stops here
    rnn_grad_clip: float = 0.25  # gradient norm clip of the text encoder
    image_encoder: str = "inception"  # "inception" (released, trunk frozen) or "cnn" (small, from scratch)
    cnn_width: int = 32  # channels of the first conv of the "cnn" encoder
    near_miss_negatives: bool = False  # each image's near-miss caption joins its sentence-loss negatives


@dataclass(frozen=True)
class CriticConfig:
    batch_size: int = 48  # real images per critic step
    lr: float = 2e-4  # learning rate (Adam)
    steps: int = 6000  # steps of `dmgan train-critic` (--max-steps overrides)
    train_samples: int = 24000  # training-split samples the critic's pictures come from
    held_out: int = 800  # test-split samples its held-out preference is measured on


@dataclass(frozen=True)
class DataConfig:
    shapes_background_phrase: float = 1.0  # share of shapes captions that name the background
    shapes_swap_share: float = 0.0  # share of two-object near misses trading the objects' colours/places
    shapes_unnamed_background: str = "any"  # background when the caption names none: "any" or a colour
    shapes_background_first: float = 0.0  # share of background-naming captions that open with it
    shapes_jitter: float = 0.04  # how far each shapes object may stray from its place (fraction of the side)
    shapes_partial_share: float = 0.0  # share of captions that leave out some objects' size, colour or place
    shapes_plural_share: float = 0.0  # share of partial two-object captions of one shape said with a count
    shapes_held_out: bool = False  # a fixed quarter of colour-shape and shape-place pairs never trains


SECTIONS = {
    "text": TextConfig,
    "generator": GeneratorConfig,
    "discriminator": DiscriminatorConfig,
    "loss": LossConfig,
    "train": TrainConfig,
    "damsm": DamsmConfig,
    "critic": CriticConfig,
    "data": DataConfig,
}

# Fields of older files under their new names.
RENAMED = {
    ("generator", "init_words"): "first_stage_read_px",
    ("train", "contrast_negatives"): "near_miss_negatives",
    ("damsm", "contrast_negatives"): "near_miss_negatives",
    ("loss", "g_contrast_weight"): "caption_preference_weight",
}
# Retired fields (no shipped recipe used them and none measured a gain; docs/research.md) and
# the one value older files may hold for them: the behaviour that remains. None: any value.
RETIRED = {
    ("loss", "adversarial"): "bce",
    ("loss", "ma_gp_weight"): 0.0,
    ("loss", "ma_gp_power"): None,
    ("loss", "damsm_contrast_weight"): 0.0,
    ("loss", "pixel_norm"): "l2",
    ("loss", "pixel_stages"): 0,
    ("loss", "pair_weight"): 0.0,  # the pair discriminator
    ("train", "hard_negatives"): False,
    ("train", "sample_condition"): True,
    ("data", "shapes_background_negative"): 0.0,
    ("data", "shapes_two_object_share"): 0.5,
    ("data", "shapes_contrast_shape_share"): 0.0,
}


@dataclass(frozen=True)
class DMGANConfig:
    name: str
    text: TextConfig
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    damsm: DamsmConfig = field(default_factory=DamsmConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DMGANConfig:
        """The config a dict describes (as `to_dict` writes it); older files' renamed fields
        are read under their new names, and retired fields at their remaining value dropped."""
        if not isinstance(data, dict) or "name" not in data or "text" not in data:
            raise ConfigError("a config needs at least 'name' and 'text'")
        if not isinstance(data["name"], str):
            raise ConfigError("config.name must be a string")
        kwargs: dict[str, Any] = {"name": data["name"]}
        for key, kind in SECTIONS.items():
            if key not in data:
                continue
            if not isinstance(data[key], dict):
                raise ConfigError(f"config.{key} must be a mapping of fields")
            values = _migrate(key, data[key])
            types = {f.name: str(f.type) for f in dataclasses.fields(kind)}
            unknown = set(values) - set(types)
            if unknown:
                raise ConfigError(f"unknown field(s) in config.{key}: {sorted(unknown)}")
            for name, value in values.items():
                if not _has_type(value, types[name]):
                    raise ConfigError(f"config.{key}.{name} must be {types[name]}, got "
                                      f"{value!r}")
            kwargs[key] = kind(**values)
        unknown = set(data) - set(SECTIONS) - {"name"}
        if unknown:
            raise ConfigError(f"unknown config section(s): {sorted(unknown)}")
        return validate(cls(**kwargs))

    def replace(self, **sections: Any) -> DMGANConfig:
        return validate(dataclasses.replace(self, **sections))


def _migrate(section: str, values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in values.items():
        if (section, name) in RETIRED:
            keep = RETIRED[section, name]
            if keep is not None and value != keep:
                raise ConfigError(f"config.{section}.{name}={value!r} was retired; this dmgan "
                                  f"only has {keep!r} (docs/research.md says what it measured)")
            continue
        out[RENAMED.get((section, name), name)] = value
    return out


def _has_type(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    return True


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _share(value: float) -> bool:
    return 0.0 <= value <= 1.0


def validate(cfg: DMGANConfig) -> DMGANConfig:
    """Check every value a network or a loop relies on; raise ConfigError naming the field."""
    t, g, d, tr, lo, dm, cr, da = (cfg.text, cfg.generator, cfg.discriminator, cfg.train,
                                   cfg.loss, cfg.damsm, cfg.critic, cfg.data)
    checks = [
        (t.vocab_size >= 2, "text.vocab_size must be >= 2 (index 0 is padding)"),
        (t.word_dim > 0, "text.word_dim must be > 0"),
        (t.embed_dim > 0 and t.embed_dim % 2 == 0, "text.embed_dim must be even (two directions)"),
        (t.words_train > 0 and t.words_eval > 0, "text.words_train/words_eval must be > 0"),
        (t.captions_per_image > 0, "text.captions_per_image must be > 0"),
        (0.0 <= t.dropout < 1.0, "text.dropout must be in [0, 1)"),
        (g.gf_dim > 0 and g.z_dim > 0, "generator.gf_dim and z_dim must be > 0"),
        (g.condition_dim > 0, "generator.condition_dim must be > 0"),
        (g.num_stages >= 1, "generator.num_stages must be >= 1"),
        (_is_pow2(g.base_size) and g.base_size >= 8, "generator.base_size must be a power of 2, >= 8"),
        (g.res_blocks >= 0, "generator.res_blocks must be >= 0"),
        (g.first_stage_read_px == 0 or (_is_pow2(g.first_stage_read_px)
                                        and 4 <= g.first_stage_read_px <= g.base_size),
         "generator.first_stage_read_px must be 0 or a power of two from 4 to generator.base_size"),
        (g.mask_mode in MASK_MODES, f"generator.mask_mode must be one of {MASK_MODES}"),
        (g.word_context >= 0 and (g.word_context == 0 or g.memory),
         "generator.word_context must be >= 0, and 0 without generator.memory (no words read)"),
        (g.word_context == 0 or t.embed_dim % 4 == 0,
         "generator.word_context needs text.embed_dim divisible by 4 (attention heads)"),
        (d.df_dim > 0, "discriminator.df_dim must be > 0"),
        (d.word_context >= 0 and (d.word_context == 0 or d.word_match),
         "discriminator.word_context must be >= 0, and 0 without discriminator.word_match"),
        (d.word_context == 0 or t.embed_dim % 4 == 0,
         "discriminator.word_context needs text.embed_dim divisible by 4 (attention heads)"),
        (tr.batch_size >= 2, "train.batch_size must be >= 2 (batch norm needs two images, and "
                             "so do the mismatched pairs)"),
        (tr.d_steps >= 1, "train.d_steps must be >= 1"),
        (lo.damsm_weight >= 0 and lo.kl_weight >= 0,
         "loss.damsm_weight and loss.kl_weight must be >= 0"),
        (lo.caption_preference_weight >= 0, "loss.caption_preference_weight must be >= 0"),
        (lo.pixel_weight >= 0, "loss.pixel_weight must be >= 0"),
        (lo.pixel_object_weight >= 0, "loss.pixel_object_weight must be >= 0"),
        (lo.pixel_candidates >= 1, "loss.pixel_candidates must be >= 1"),
        (lo.diversity_weight >= 0, "loss.diversity_weight must be >= 0"),
        (tr.epochs >= 0, "train.epochs must be >= 0"),
        (tr.lr_g > 0 and tr.lr_d > 0, "train.lr_g and lr_d must be > 0"),
        (0.0 <= tr.ema_decay < 1.0, "train.ema_decay must be in [0, 1)"),
        (dm.batch_size >= 2, "damsm.batch_size must be >= 2 (each caption is told apart "
                             "from the batch's other images)"),
        (min(lo.gamma1, lo.gamma2, lo.gamma3) > 0, "loss.gamma1, gamma2 and gamma3 must be > 0"),
        (0.0 <= tr.beta1 < 1.0 and 0.0 <= tr.beta2 < 1.0, "train.beta1 and beta2 must be in [0, 1)"),
        (dm.epochs >= 0 and dm.lr > 0 and dm.lr_floor >= 0,
         "damsm.epochs must be >= 0, damsm.lr > 0 and damsm.lr_floor >= 0"),
        (0.0 < dm.lr_decay <= 1.0, "damsm.lr_decay must be in (0, 1]"),
        (dm.image_size >= 8 and dm.words > 0 and dm.cnn_width > 0,
         "damsm.image_size must be >= 8, damsm.words and damsm.cnn_width > 0"),
        (dm.rnn_grad_clip > 0, "damsm.rnn_grad_clip must be > 0"),
        (dm.image_encoder in ("inception", "cnn"),
         "damsm.image_encoder must be 'inception' or 'cnn'"),
        (cr.batch_size >= 2 and cr.lr > 0 and cr.steps >= 1 and cr.train_samples >= 1
         and cr.held_out >= 1,
         "critic.batch_size must be >= 2, critic.lr > 0, critic.steps, train_samples and "
         "held_out >= 1"),
        (_share(da.shapes_background_phrase), "data.shapes_background_phrase must be in [0, 1]"),
        (_share(da.shapes_swap_share), "data.shapes_swap_share must be in [0, 1]"),
        (da.shapes_unnamed_background in ("any", *SHAPES_COLOURS),
         f"data.shapes_unnamed_background must be 'any' or one of {', '.join(SHAPES_COLOURS)}"),
        (_share(da.shapes_background_first), "data.shapes_background_first must be in [0, 1]"),
        (0.0 <= da.shapes_jitter <= 0.1, "data.shapes_jitter must be in [0, 0.1]"),
        (_share(da.shapes_partial_share), "data.shapes_partial_share must be in [0, 1]"),
        (_share(da.shapes_plural_share), "data.shapes_plural_share must be in [0, 1]"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"invalid config '{cfg.name}': {message}")
    return cfg


# the colour words of the built-in shapes world (dmgan.data.shapes draws them)
SHAPES_COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black")


def _bird() -> DMGANConfig:
    return DMGANConfig(
        name="bird",
        text=TextConfig(vocab_size=5450, embed_dim=256, words_train=18, words_eval=25,
                        captions_per_image=10),
        generator=GeneratorConfig(gf_dim=64, z_dim=100, condition_dim=100, res_blocks=2),
        discriminator=DiscriminatorConfig(df_dim=32),
        loss=LossConfig(damsm_weight=5.0),
        train=TrainConfig(batch_size=10, epochs=800),
        damsm=DamsmConfig(words=18),
    )


def _coco() -> DMGANConfig:
    return DMGANConfig(
        name="coco",
        text=TextConfig(vocab_size=27297, embed_dim=256, words_train=12, words_eval=20,
                        captions_per_image=5),
        generator=GeneratorConfig(gf_dim=64, z_dim=100, condition_dim=100, res_blocks=3),
        discriminator=DiscriminatorConfig(df_dim=32),
        loss=LossConfig(damsm_weight=50.0),
        train=TrainConfig(batch_size=16, epochs=200),
        damsm=DamsmConfig(words=15),
    )


def _small() -> DMGANConfig:
    # The configuration of shared/reference/small (the reference vectors).
    return DMGANConfig(
        name="small",
        text=TextConfig(vocab_size=60, embed_dim=32, words_train=18, words_eval=25,
                        captions_per_image=10),
        generator=GeneratorConfig(gf_dim=8, z_dim=20, condition_dim=16, res_blocks=2),
        discriminator=DiscriminatorConfig(df_dim=4),
        loss=LossConfig(damsm_weight=5.0),
        train=TrainConfig(batch_size=3, epochs=1),
    )


def _shapes_networks(name: str) -> DMGANConfig:
    # The built-in captioned-shapes data (dmgan.data.shapes) with small networks, 16/32/64 px,
    # and the paper's losses: what the shapes presets share (docs/recipes.md says why each).
    return DMGANConfig(
        name=name,
        text=TextConfig(vocab_size=63, word_dim=64, embed_dim=64, words_train=30, words_eval=30,
                        captions_per_image=1, dropout=0.1),
        generator=GeneratorConfig(gf_dim=16, z_dim=32, condition_dim=32, num_stages=3,
                                  base_size=16, res_blocks=1, mask_mode="exact",
                                  first_stage_read_px=8),
        discriminator=DiscriminatorConfig(df_dim=16),
        loss=LossConfig(damsm_weight=10.0),
        train=TrainConfig(batch_size=32, epochs=100, lr_g=5e-4, lr_d=5e-4, ema_warmup=True,
                          near_miss_negatives=True),
        damsm=DamsmConfig(batch_size=64, epochs=20, image_size=64, words=30, lr=2e-3,
                          image_encoder="cnn", near_miss_negatives=True),
        data=DataConfig(shapes_background_phrase=0.8),
    )


def _shapes() -> DMGANConfig:
    # The bundled model's recipe (docs/recipes.md): pretrain-damsm, train-critic, train,
    # export, each with --preset shapes alone.
    base = _shapes_networks("shapes")
    return dataclasses.replace(
        base,
        generator=dataclasses.replace(base.generator, word_context=1),
        discriminator=dataclasses.replace(base.discriminator, word_match=True, word_context=1),
        loss=dataclasses.replace(base.loss, caption_preference_weight=2.0, pixel_weight=300.0),
        damsm=dataclasses.replace(base.damsm, lr=1e-3),
        data=dataclasses.replace(base.data, shapes_swap_share=0.8,
                                 shapes_unnamed_background="white"),
    )


def _shapes32() -> DMGANConfig:
    # The demo's recipe (docs/recipes.md): two stages (16 -> 32 px), a faster EMA, the pixel
    # term with objects weighed ten times, both nets at 2e-3, one picture per caption.
    base = _shapes_networks("shapes32")
    return dataclasses.replace(
        base,
        generator=dataclasses.replace(base.generator, num_stages=2),
        loss=dataclasses.replace(base.loss, pixel_weight=300.0, pixel_object_weight=9.0),
        train=dataclasses.replace(base.train, ema_decay=0.995, lr_g=2e-3, lr_d=2e-3),
        damsm=dataclasses.replace(base.damsm, image_size=32),
        data=dataclasses.replace(base.data, shapes_unnamed_background="white", shapes_jitter=0.0),
    )


def _tiny() -> DMGANConfig:
    # The shapes data with networks of a few channels: a run in seconds (tests, trying a
    # command); it learns little.
    base = _shapes_networks("tiny")
    return dataclasses.replace(
        base,
        text=dataclasses.replace(base.text, word_dim=16, embed_dim=16),
        generator=dataclasses.replace(base.generator, gf_dim=4, z_dim=8, condition_dim=8),
        discriminator=dataclasses.replace(base.discriminator, df_dim=2),
        train=dataclasses.replace(base.train, batch_size=4),
        damsm=dataclasses.replace(base.damsm, batch_size=8, cnn_width=4),
        critic=CriticConfig(batch_size=8, steps=20, train_samples=200, held_out=100),
    )


PRESETS = {"bird": _bird, "coco": _coco, "small": _small, "shapes": _shapes,
           "shapes32": _shapes32, "tiny": _tiny}


def preset(name: str, **overrides: Any) -> DMGANConfig:
    """A validated preset; `overrides` replace whole sections (e.g. text=TextConfig(...))."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; choose one of {sorted(PRESETS)}")
    cfg = PRESETS[name]()
    return cfg.replace(**overrides) if overrides else validate(cfg)


_PARSERS = {"int": int, "float": float, "str": str,
            "bool": lambda v: {"true": True, "1": True, "false": False, "0": False}[v.lower()]}


def override(cfg: DMGANConfig, assignments: list[str]) -> DMGANConfig:
    """Apply "section.field=value" assignments (e.g. "loss.damsm_weight=20"); validated.

    Values are parsed by the field's type (int, float, bool as true/false, str).
    """
    for item in assignments:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        part = getattr(cfg, section, None) if dot and sep else None
        if not dataclasses.is_dataclass(part):
            raise ConfigError(f"--set {item!r}: expected section.field=value, e.g. "
                              f"loss.damsm_weight=20")
        types = {f.name: f.type for f in dataclasses.fields(part)}
        if name not in types:
            renamed = RENAMED.get((section, name))
            hint = (f"it is now {section}.{renamed}" if renamed else
                    "it was retired (docs/research.md)" if (section, name) in RETIRED else
                    f"fields: {', '.join(sorted(types))}")
            raise ConfigError(f"--set {item!r}: config.{section} has no field '{name}' ({hint})")
        parse = _PARSERS.get(str(types[name]))
        if parse is None:
            raise ConfigError(f"--set {item!r}: config.{section}.{name} cannot be set from "
                              f"the command line")
        try:
            parsed = parse(value.strip())
        except (ValueError, KeyError):
            raise ConfigError(f"--set {item!r}: {value!r} is not a valid "
                              f"{types[name]}") from None
        cfg = dataclasses.replace(cfg, **{section: dataclasses.replace(part, **{name: parsed})})
    return validate(cfg)


def config_for(preset_name: str, *, vocab_size: int | None = None, batch_size: int | None = None,
               memory: bool = True, sets: list[str] | None = None) -> DMGANConfig:
    """A preset with the command line's changes: the vocabulary size of a custom dataset,
    the batch size (GAN and DAMSM), the no-memory ablation, and `section.field=value`
    assignments (override)."""
    cfg = preset(preset_name)
    if vocab_size:
        cfg = cfg.replace(text=dataclasses.replace(cfg.text, vocab_size=vocab_size))
    if batch_size:
        cfg = cfg.replace(train=dataclasses.replace(cfg.train, batch_size=batch_size),
                          damsm=dataclasses.replace(cfg.damsm, batch_size=batch_size))
    if not memory:  # no stage reads the words, so nothing learns their context either
        cfg = cfg.replace(generator=dataclasses.replace(cfg.generator, memory=False,
                                                        word_context=0))
    return override(cfg, sets) if sets else cfg


_FIELD_LINE = re.compile(r"^\s+(\w+): [^=#]+(?:= [^#]+)?#\s*(.+)$")


def field_descriptions(section: type) -> dict[str, str]:
    """{field: its one-line description}, read from the trailing comment of its line."""
    found = {}
    for line in inspect.getsource(section).splitlines():
        match = _FIELD_LINE.match(line)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def config_reference() -> str:
    """Every config field (name, default, meaning) as a Markdown page, with each preset's
    values where they differ from the default (docs/configuration.md)."""
    presets = {name: make() for name, make in PRESETS.items()}
    lines = ["# Configuration reference", "",
             "Generated by `dmgan info --config-reference`; a test checks that this page is "
             "current.", "Change a field for one run with `--set SECTION.FIELD=VALUE`; "
             "`dmgan info --preset NAME` prints a preset in full.", ""]
    for key, section in SECTIONS.items():
        docs = field_descriptions(section)
        lines += [f"## {key}", "", "| field | default | meaning | presets that differ |",
                  "| --- | --- | --- | --- |"]
        for f in dataclasses.fields(section):
            default = "required" if f.default is dataclasses.MISSING else repr(f.default)
            differ = [f"{n}: {getattr(getattr(c, key), f.name)!r}" for n, c in presets.items()
                      if f.default is dataclasses.MISSING
                      or getattr(getattr(c, key), f.name) != f.default]
            lines.append(f"| `{key}.{f.name}` | `{default}` | {docs.get(f.name, '')} | "
                         f"{', '.join(differ)} |")
        lines.append("")
    return "\n".join(lines)
