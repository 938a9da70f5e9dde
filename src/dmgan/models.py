"""Config -> networks. The only place where a config meets the network constructors."""

from __future__ import annotations

from torch import nn

from dmgan.config import DMGANConfig
from dmgan.nn import Discriminator, Generator, ImageEncoder, TextEncoder
from dmgan.nn.image_encoder import SmallImageEncoder
from dmgan.nn.layers import init_released


def build_text_encoder(cfg: DMGANConfig) -> TextEncoder:
    t = cfg.text
    return TextEncoder(vocab_size=t.vocab_size, word_dim=t.word_dim, embed_dim=t.embed_dim,
                       dropout=t.dropout)


def build_image_encoder(cfg: DMGANConfig) -> ImageEncoder | SmallImageEncoder:
    """The DAMSM image encoder: Inception-v3 trunk + projections to D, or a small CNN."""
    if cfg.damsm.image_encoder == "cnn":
        return SmallImageEncoder(embed_dim=cfg.text.embed_dim, width=cfg.damsm.cnn_width,
                                 image_size=cfg.damsm.image_size)
    return ImageEncoder(embed_dim=cfg.text.embed_dim)


def build_generator(cfg: DMGANConfig, *, init: bool = True) -> Generator:
    g = cfg.generator
    net = Generator(embed_dim=cfg.text.embed_dim, gf_dim=g.gf_dim, z_dim=g.z_dim,
                    condition_dim=g.condition_dim, num_stages=g.num_stages,
                    base_size=g.base_size, res_blocks=g.res_blocks, mask_mode=g.mask_mode,
                    use_memory=g.memory, first_stage_read_px=g.first_stage_read_px,
                    word_context=g.word_context, writing_gate=g.writing_gate,
                    response_gate=g.response_gate)
    if init:
        init_released(net)
        if net.context is not None:  # see WordContext: the added part starts at zero
            net.context.reset_out()
    return net


def build_discriminators(cfg: DMGANConfig, *, init: bool = True) -> nn.ModuleList:
    """One discriminator per generator stage, for 64, 128, 256 px in the released presets."""
    ds = nn.ModuleList(
        Discriminator(image_size=size, df_dim=cfg.discriminator.df_dim,
                      embed_dim=cfg.text.embed_dim,
                      unconditional=cfg.discriminator.unconditional,
                      word_match=cfg.discriminator.word_match,
                      word_context=cfg.discriminator.word_context)
        for size in cfg.generator.image_sizes
    )
    if init:
        init_released(ds)
        for d in ds:
            if d.word_match:  # see Discriminator: the words' part starts at zero
                nn.init.zeros_(d.word_joint.weight)
            if d.word_context is not None:
                d.word_context.reset_out()
    return ds
