"""Typed configuration: one dataclass per part of the system, and named presets.

Configs are plain data. Network constructors never read them; `dmgan.models`
translates a config into the explicit keyword arguments of each constructor.
A config round-trips through `to_dict` / `from_dict` (JSON-friendly), which is
how checkpoints and run folders store it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from dmgan.errors import ConfigError

MASK_MODES = ("released", "exact")
ADVERSARIAL = ("bce", "hinge")


@dataclass(frozen=True)
class TextConfig:
    vocab_size: int  # words in the vocabulary, index 0 = end/padding token
    word_dim: int = 300  # word embedding size fed to the LSTM
    embed_dim: int = 256  # D: word/sentence feature size (both LSTM directions together)
    words_train: int = 18  # words per caption during training (longer: in-order subsample)
    words_eval: int = 25  # words per caption at evaluation
    captions_per_image: int = 10
    dropout: float = 0.5  # after the embedding, as in the released encoder


@dataclass(frozen=True)
class GeneratorConfig:
    gf_dim: int = 64  # channels of the memory stages (the initial stage starts at gf_dim * 16)
    z_dim: int = 100  # noise size
    condition_dim: int = 100  # conditioning-augmentation code size
    num_stages: int = 3  # initial stage + (num_stages - 1) dynamic-memory stages
    base_size: int = 64  # resolution of the initial stage's image (a power of two >= 8)
    res_blocks: int = 2  # residual blocks per memory stage
    # "released": padding mask applied as the released code did (rows of the mask
    # interleaved across the batch; bit-faithful to the released weights);
    # "exact": each sample masks its own padding.
    mask_mode: str = "released"
    # False: the ablation "no dynamic memory": each stage passes its image features straight
    # to its residual blocks (writing and response gates unused)
    memory: bool = True
    # the initial stage reads the words (a memory read) at this size, a power of two from
    # 4 to base_size, so that it can place each object where its own words say; 0: it reads
    # the sentence code only (released)
    init_words: int = 0
    # layers of order-aware self-attention over the words (nn.word_context) before any
    # stage reads them, learned by the GAN; 0: the frozen encoder's words as they are
    # (released). May be switched on for train --init-from a run without it.
    word_context: int = 0

    @property
    def image_sizes(self) -> tuple[int, ...]:
        return tuple(self.base_size * 2**i for i in range(self.num_stages))


@dataclass(frozen=True)
class DiscriminatorConfig:
    df_dim: int = 32  # channels of the first discriminator conv
    unconditional: bool = True  # also judge real/fake without the sentence
    # the match head also reads the words (attention over the words per place); not in the
    # released model. May be switched on for train --init-from a run without it.
    word_match: bool = False
    # layers of order-aware self-attention over the words before the match head reads
    # them (needs word_match); 0: none. May be switched on like word_match.
    word_context: int = 0


@dataclass(frozen=True)
class LossConfig:
    gamma1: float = 4.0  # DAMSM: sharpness of the word-to-region attention
    gamma2: float = 5.0  # DAMSM: how much the best-matching words dominate
    gamma3: float = 10.0  # DAMSM: smoothing of the image-caption posterior
    damsm_weight: float = 5.0  # LAMBDA: weight of the DAMSM loss in the generator loss
    kl_weight: float = 1.0  # conditioning KL, added as is in the released recipe
    # "bce" (released): binary cross-entropy on the real/fake and match logits;
    # "hinge": the hinge loss (D: relu(1 - real) + relu(1 + fake); G: -fake)
    adversarial: str = "bce"
    # matching-aware zero-centred gradient penalty on real images with their own sentences
    # (DF-GAN): ma_gp_weight * mean(|grad of the match logit wrt (image, sentence)|^ma_gp_power);
    # 0 turns it off (released)
    ma_gp_weight: float = 0.0
    ma_gp_power: float = 6.0
    # G also pays g_contrast_weight * softplus(D's match logit of its image with the
    # step's mismatched caption - with its own caption), summed over stages: the Ds'
    # preference for the right caption (which the contrast captions teach them on real
    # images: which object is where) asked of the fakes too. 0: off (released)
    g_contrast_weight: float = 0.0
    # G also pays damsm_contrast_weight * the DAMSM's two-way cross-entropy of its image's
    # sentence-level score with its own caption against the step's contrast caption (the
    # true caption with one thing changed): the frozen DAMSM, which learned those contrasts on
    # real images, judges the fakes as a critic does, at no extra cost. 0: off (released)
    damsm_contrast_weight: float = 0.0
    # G also pays pixel_weight * the mean difference between each stage's image and the real
    # image of its caption, squared ("l2") or absolute ("l1", pix2pix's term). Only for data
    # whose caption fixes the picture (the built-in shapes, up to a pixel of jitter): where a
    # caption fits many pictures (birds, COCO) it pulls G towards their blurred mean.
    # 0: off (released)
    pixel_weight: float = 0.0
    pixel_norm: str = "l2"
    # the term on the first pixel_stages stages only (the small pictures: layout and colours),
    # leaving the larger ones to the other terms; 0: every stage
    pixel_stages: int = 0
    # the term counts the pixels where the real picture is not its background (1 + this)
    # times: the objects, a small share of the pixels, weigh as much as the background they
    # sit on (the background: the median colour of the picture's border). 0: every pixel alike
    pixel_object_weight: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 10
    epochs: int = 800
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    ema_decay: float = 0.999
    # decay at step t is min(ema_decay, (1 + t) / (10 + t)) when True: an EMA that is useful
    # in short runs (the released recipe uses the fixed decay from step 0)
    ema_warmup: bool = False
    d_steps: int = 1  # discriminator updates per generator update (released: 1)
    # mismatched pairs for D: real image i with the batch's most similar sentence of another
    # class (True), or with sentence i + 1 (False, released)
    hard_negatives: bool = False
    # mismatched pairs for D from the data's contrast captions (the true caption with one
    # attribute changed; the built-in shapes data makes them); overrides hard_negatives
    contrast_negatives: bool = False
    # the condition code G trains on: drawn around the sentence's mean code (conditioning
    # augmentation, True, released) or the mean code itself, as at generation (False)
    sample_condition: bool = True


@dataclass(frozen=True)
class DamsmConfig:
    batch_size: int = 48
    epochs: int = 600
    image_size: int = 299
    words: int = 18
    lr: float = 2e-3
    lr_decay: float = 0.98  # per epoch while lr > lr_floor
    lr_floor: float = 2e-4
    rnn_grad_clip: float = 0.25
    # "inception": the released Inception-v3 encoder (trunk frozen, projections trained);
    # "cnn": a small CNN trained from scratch (for the built-in shapes data)
    image_encoder: str = "inception"
    cnn_width: int = 32  # channels of the first conv of the "cnn" encoder
    # each image's contrast caption (see TrainConfig.contrast_negatives) joins the captions
    # it must be told apart from in the sentence loss
    contrast_negatives: bool = False


@dataclass(frozen=True)
class DataConfig:
    # built-in shapes data: the share of captions that name the background (the rest leave
    # it out, so "a red circle" is a caption the model has seen)
    shapes_background_phrase: float = 1.0
    # built-in shapes data: the share of two-object contrast captions that bind the words
    # to the other objects (half trade the objects' colours, half their places; 0: such a
    # trade is two of seven equally likely changes). The shapes DAMSM pre-trained with 0
    # tells a caption from its colour-traded twin 0.56 of the time and from its place-traded
    # twin 0.43 (chance 0.5); fine-tuned 4,000 steps with 0.8, 0.87 and 0.73
    # (bench/damsm_attributes.py; bench/README.md, recipe study)
    shapes_swap_share: float = 0.0
    # built-in shapes data: the share of captions that leave the background out whose
    # contrast caption is the same caption naming the background in an object's colour
    # ("a red circle" -> "a red circle on a red background"): a picture painted all in the
    # object's colour then fits the negative better than its own caption
    shapes_background_negative: float = 0.0
    # built-in shapes data: the background of the pictures whose caption leaves it out:
    # "any" (any colour no object has, as in the captions that name it), or a colour name
    # (that colour; white, else black, when an object has it), so "a red circle" names
    # one picture, as "a red circle on a white background" does
    shapes_unnamed_background: str = "any"
    # built-in shapes data: the share of the captions that name the background whose
    # background phrase opens the caption ("on a blue background a red circle on the
    # left"); in the templates it mostly comes last, so that "the last colour word" names
    # the background in 7 of 8 of them
    shapes_background_first: float = 0.0
    # built-in shapes data: the share of contrast captions (those that do not trade two
    # objects' colours or places) whose one change is an object's shape; 0: shape is one of
    # five to seven equally likely changes. The DAMSM learns to read shape words from these
    # captions alone (bench/README.md, recipe study)
    shapes_contrast_shape_share: float = 0.0
    # built-in shapes data: the share of training scenes with two objects (0.5; the held-out
    # captions of every evaluation keep 0.5)
    shapes_two_object_share: float = 0.5
    # built-in shapes data: how far each object may stray from its place, a fraction of the
    # side on each axis (0.04: up to 1.3 px at 32 px). The pixel term's best picture for a
    # caption is the mean of the pictures it may have, so with jitter that is a blur in which
    # a small diamond, square and circle look alike; 0 gives each caption one picture
    shapes_jitter: float = 0.04


@dataclass(frozen=True)
class DMGANConfig:
    name: str
    text: TextConfig
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    damsm: DamsmConfig = field(default_factory=DamsmConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DMGANConfig:
        parts = {
            "text": TextConfig,
            "generator": GeneratorConfig,
            "discriminator": DiscriminatorConfig,
            "loss": LossConfig,
            "train": TrainConfig,
            "damsm": DamsmConfig,
            "data": DataConfig,
        }
        if not isinstance(data, dict) or "name" not in data or "text" not in data:
            raise ConfigError("a config needs at least 'name' and 'text'")
        if not isinstance(data["name"], str):
            raise ConfigError("config.name must be a string")
        kwargs: dict[str, Any] = {"name": data["name"]}
        for key, kind in parts.items():
            if key not in data:
                continue
            if not isinstance(data[key], dict):
                raise ConfigError(f"config.{key} must be a mapping of fields")
            types = {f.name: str(f.type) for f in dataclasses.fields(kind)}
            unknown = set(data[key]) - set(types)
            if unknown:
                raise ConfigError(f"unknown field(s) in config.{key}: {sorted(unknown)}")
            for name, value in data[key].items():
                if not _has_type(value, types[name]):
                    raise ConfigError(f"config.{key}.{name} must be {types[name]}, got "
                                      f"{value!r}")
            kwargs[key] = kind(**data[key])
        unknown = set(data) - set(parts) - {"name"}
        if unknown:
            raise ConfigError(f"unknown config section(s): {sorted(unknown)}")
        return validate(cls(**kwargs))

    def replace(self, **sections: Any) -> DMGANConfig:
        return validate(dataclasses.replace(self, **sections))


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


def validate(cfg: DMGANConfig) -> DMGANConfig:
    """Check every value a network or a loop relies on; raise ConfigError naming the field."""
    from dmgan.data.shapes import COLOUR_NAMES

    t, g, d, tr = cfg.text, cfg.generator, cfg.discriminator, cfg.train
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
        (g.init_words == 0 or (_is_pow2(g.init_words) and 4 <= g.init_words <= g.base_size),
         "generator.init_words must be 0 or a power of two from 4 to generator.base_size"),
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
        (cfg.loss.adversarial in ADVERSARIAL, f"loss.adversarial must be one of {ADVERSARIAL}"),
        (cfg.loss.ma_gp_weight >= 0 and cfg.loss.ma_gp_power > 0,
         "loss.ma_gp_weight must be >= 0 and loss.ma_gp_power > 0"),
        (cfg.loss.damsm_weight >= 0 and cfg.loss.kl_weight >= 0,
         "loss.damsm_weight and loss.kl_weight must be >= 0"),
        (cfg.loss.g_contrast_weight >= 0, "loss.g_contrast_weight must be >= 0"),
        (cfg.loss.pixel_weight >= 0 and cfg.loss.pixel_norm in ("l1", "l2"),
         "loss.pixel_weight must be >= 0 and loss.pixel_norm 'l1' or 'l2'"),
        (cfg.loss.pixel_object_weight >= 0, "loss.pixel_object_weight must be >= 0"),
        (0 <= cfg.loss.pixel_stages <= cfg.generator.num_stages,
         "loss.pixel_stages must be from 0 (every stage) to generator.num_stages"),
        (tr.epochs >= 0, "train.epochs must be >= 0"),
        (tr.lr_g > 0 and tr.lr_d > 0, "train.lr_g and lr_d must be > 0"),
        (0.0 <= tr.ema_decay < 1.0, "train.ema_decay must be in [0, 1)"),
        (cfg.damsm.batch_size >= 2, "damsm.batch_size must be >= 2 (each caption is told apart "
                                    "from the batch's other images)"),
        (min(cfg.loss.gamma1, cfg.loss.gamma2, cfg.loss.gamma3) > 0,
         "loss.gamma1, gamma2 and gamma3 must be > 0"),
        (0.0 <= tr.beta1 < 1.0 and 0.0 <= tr.beta2 < 1.0, "train.beta1 and beta2 must be in [0, 1)"),
        (cfg.damsm.epochs >= 0 and cfg.damsm.lr > 0 and cfg.damsm.lr_floor >= 0,
         "damsm.epochs must be >= 0, damsm.lr > 0 and damsm.lr_floor >= 0"),
        (0.0 < cfg.damsm.lr_decay <= 1.0, "damsm.lr_decay must be in (0, 1]"),
        (cfg.damsm.image_size >= 8 and cfg.damsm.words > 0 and cfg.damsm.cnn_width > 0,
         "damsm.image_size must be >= 8, damsm.words and damsm.cnn_width > 0"),
        (cfg.damsm.rnn_grad_clip > 0, "damsm.rnn_grad_clip must be > 0"),
        (0.0 <= cfg.data.shapes_background_phrase <= 1.0,
         "data.shapes_background_phrase must be in [0, 1]"),
        (0.0 <= cfg.data.shapes_swap_share <= 1.0, "data.shapes_swap_share must be in [0, 1]"),
        (0.0 <= cfg.data.shapes_background_negative <= 1.0,
         "data.shapes_background_negative must be in [0, 1]"),
        (0.0 <= cfg.data.shapes_background_first <= 1.0,
         "data.shapes_background_first must be in [0, 1]"),
        (cfg.data.shapes_unnamed_background in ("any", *COLOUR_NAMES),
         f"data.shapes_unnamed_background must be 'any' or one of {', '.join(COLOUR_NAMES)}"),
        (0.0 <= cfg.data.shapes_contrast_shape_share <= 1.0,
         "data.shapes_contrast_shape_share must be in [0, 1]"),
        (0.0 <= cfg.data.shapes_two_object_share <= 1.0,
         "data.shapes_two_object_share must be in [0, 1]"),
        (0.0 <= cfg.data.shapes_jitter <= 0.1, "data.shapes_jitter must be in [0, 0.1]"),
        (cfg.damsm.image_encoder in ("inception", "cnn"),
         "damsm.image_encoder must be 'inception' or 'cnn'"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"invalid config '{cfg.name}': {message}")
    return cfg


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


def _shapes() -> DMGANConfig:
    # The built-in captioned-shapes dataset (dmgan.data.shapes): 16/32/64 px, small
    # channel counts, fast on 2 CPU cores. vocab_size is the shapes vocabulary's size.
    return DMGANConfig(
        name="shapes",
        text=TextConfig(vocab_size=53, word_dim=64, embed_dim=64, words_train=30, words_eval=30,
                        captions_per_image=1, dropout=0.1),
        # the first stage reads the words at 8 px: with the sentence code alone, two objects
        # settled at each other's places in a third of two-object captions (bench/README.md,
        # "The first stage reads the words")
        generator=GeneratorConfig(gf_dim=16, z_dim=32, condition_dim=32, num_stages=3,
                                  base_size=16, res_blocks=1, mask_mode="exact", init_words=8),
        discriminator=DiscriminatorConfig(df_dim=16),
        # measured on 5-minute CPU runs: LAMBDA 10 and lr 5e-4 learn colours faster than the
        # released LAMBDA 5 / lr 2e-4 (oracle colour accuracy 0.38 vs 0.27 after ~650 steps)
        loss=LossConfig(damsm_weight=10.0),
        # contrast captions (one attribute changed) as D's mismatched pairs and as extra
        # DAMSM negatives: the only signal that makes D and the DAMSM read shape words (a
        # DAMSM trained without them tells shapes apart 0.48 of the time, colours 1.00;
        # bench/damsm_attributes.py); a fifth of the captions leave the background out
        # (bench/README.md, recipe study)
        train=TrainConfig(batch_size=32, epochs=100, lr_g=5e-4, lr_d=5e-4, ema_warmup=True,
                          contrast_negatives=True),
        damsm=DamsmConfig(batch_size=64, epochs=20, image_size=64, words=30, lr=2e-3,
                          image_encoder="cnn", contrast_negatives=True),
        data=DataConfig(shapes_background_phrase=0.8),
    )


def _shapes32() -> DMGANConfig:
    # The demo's recipe: the shapes preset with two stages (16 -> 32 px) and the DAMSM reading
    # 32 px images. A GAN step costs about half as much on 2 CPU cores, so a 15-minute demo
    # gets 2.6x the GAN steps; the oracle reads real 32 px pictures as well as 64 px ones.
    # An EMA of about 200 steps: with 0.999 the EMA G of a 3,000-step run lagged the live one
    # (bench/README.md, "A demo that learns in 15 minutes"). G also pays the squared pixel
    # difference to the caption's real picture (the caption fixes it up to a pixel), and
    # captions without the background are drawn on white: at 3,000 steps position 0.98-0.99
    # against 0.83 and every attribute right 0.24-0.28 against 0.14, and the object of a
    # caption without the background shows (hidden in 0.01 of them, against 0.60) (bench/README.md,
    # "The caption's own picture as a teacher"). In that term the objects' pixels weigh ten
    # times the background's, and both nets learn at 2e-3: at 3,000 steps colour 1.00 and
    # shape 0.69 against 0.65 and 0.36 (bench/README.md, "Objects that weigh, and a faster
    # rate"). Objects sit exactly at their places (no jitter): each caption has one picture,
    # whose sharp edges the pixel term then asks for (with jitter its best picture is a blur
    # in which small shapes look alike): shape 0.79-0.84 at 2,500 steps against 0.57-0.60
    # (bench/README.md, "One picture per caption").
    base = _shapes()
    return dataclasses.replace(
        base,
        name="shapes32",
        generator=dataclasses.replace(base.generator, num_stages=2),
        loss=dataclasses.replace(base.loss, pixel_weight=300.0, pixel_object_weight=9.0),
        train=dataclasses.replace(base.train, ema_decay=0.995, lr_g=2e-3, lr_d=2e-3),
        damsm=dataclasses.replace(base.damsm, image_size=32),
        data=dataclasses.replace(base.data, shapes_unnamed_background="white", shapes_jitter=0.0),
    )


def _tiny() -> DMGANConfig:
    # The shapes data with networks of a few channels: a run in seconds (tests, fault
    # injection, trying a command); it learns little.
    base = _shapes()
    return dataclasses.replace(
        base,
        name="tiny",
        text=dataclasses.replace(base.text, word_dim=16, embed_dim=16),
        generator=dataclasses.replace(base.generator, gf_dim=4, z_dim=8, condition_dim=8),
        discriminator=dataclasses.replace(base.discriminator, df_dim=2),
        train=dataclasses.replace(base.train, batch_size=4),
        damsm=dataclasses.replace(base.damsm, batch_size=8, cnn_width=4),
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
            raise ConfigError(f"--set {item!r}: config.{section} has no field '{name}' "
                              f"(fields: {', '.join(sorted(types))})")
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
