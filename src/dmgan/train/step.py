"""One GAN training step, in phases (update each D, update G, update the EMA): what the
training loop (dmgan.train.gan) and the recorded CUDA graph (dmgan.train.graphs) both run."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch

from dmgan.config import DMGANConfig
from dmgan.device import autocast
from dmgan.errors import DMGANError
from dmgan.losses import discriminator_loss, generator_loss
from dmgan.losses.generator import pixel_distances
from dmgan.nn.text_encoder import TextEncoding
from dmgan.train.runtime import Runtime, average_gradients, broadcast_state


class EMA:
    """Exponential moving average of G's parameters; buffers copied from G."""

    def __init__(self, net: torch.nn.Module, decay: float, warmup: bool):
        self.net = copy.deepcopy(net).eval().requires_grad_(False)
        self.decay, self.warmup = decay, warmup

    @torch.no_grad()
    def update(self, net: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay
        if getattr(self, "_for", None) is not net:  # list the tensors once per live network
            self._for = net
            self._pairs = (list(self.net.parameters()), [p.detach() for p in net.parameters()],
                           list(self.net.buffers()), list(net.buffers()))
        ema_p, live_p, ema_b, live_b = self._pairs
        torch._foreach_lerp_(ema_p, live_p, 1.0 - d)  # one fused call, not one per tensor
        torch._foreach_copy_(ema_b, live_b)


@dataclass
class GANParts:
    """What one training step updates, and the frozen encoders it reads."""

    g: torch.nn.Module  # the generator whose parameters the optimizer holds
    g_run: torch.nn.Module  # what is called: g, or torch.compile(g)
    ds: torch.nn.ModuleList
    opt_g: torch.optim.Optimizer
    opt_ds: list[torch.optim.Optimizer]
    ema: EMA
    text_encoder: torch.nn.Module
    image_encoder: torch.nn.Module
    scaler: torch.amp.GradScaler
    critics: torch.nn.ModuleList | None = None  # frozen Ds for the preference term (opts.critic)


def train_step(parts: GANParts, cfg: DMGANConfig, rt: Runtime, *, real: list[torch.Tensor],
               captions: torch.Tensor, lengths: torch.Tensor, class_ids: torch.Tensor,
               noise_gen: torch.Generator | None, step: int, amp: str = "off",
               negatives: torch.Tensor | None = None,
               negative_lengths: torch.Tensor | None = None,
               fixes_picture: torch.Tensor | None = None,
               graphed: Callable[..., dict[str, torch.Tensor]] | None = None,
               ) -> dict[str, torch.Tensor]:
    """One step: the D updates (cfg.train.d_steps per stage), the G update, the EMA update.

    real: images per stage on the device; captions (B, T), lengths (B,), class_ids (B,);
    negatives (B, T'), negative_lengths (B,): near-miss captions (cfg.train.near_miss_negatives).
    fixes_picture (B,): the captions that fix their picture, the only ones the pixel term
    counts (None: every one).
    graphed: replay the D and G updates as a recorded CUDA graph (train --cuda-graphs).
    Returns the step's losses as detached 0-d tensors (no host sync here).
    """
    p, dev = parts, real[0].device
    # the frozen text encoder and the noise stay outside the updates (and outside a CUDA
    # graph): the encoder's packed LSTM reads the lengths on the host
    with torch.no_grad():
        text = p.text_encoder(captions, lengths)
        wrong = None
        if cfg.train.near_miss_negatives:
            if negatives is None:
                raise DMGANError("train.near_miss_negatives needs data that makes near-miss "
                                 "captions (the built-in shapes data)")
            wrong = p.text_encoder(negatives, negative_lengths)
    noises = draw_noises(cfg, len(lengths), noise_gen, dev)
    if graphed is not None:
        losses = graphed(real=real, text=text, lengths=lengths, class_ids=class_ids,
                         wrong=wrong, noises=noises, fixes_picture=fixes_picture)
    else:
        losses = update_networks(p, cfg, rt, amp, real=real, text=text, lengths=lengths,
                                 class_ids=class_ids, wrong=wrong, noises=noises,
                                 fixes_picture=fixes_picture)
    # --- phase: update the EMA generator --------------------------------------------
    p.ema.update(p.g, step)
    return losses


@dataclass
class StepNoises:
    """The noises one step draws, split from the flat list a CUDA graph takes as inputs."""

    d_steps: list[torch.Tensor]  # one per D step; the last is G's (B, Z)
    second: torch.Tensor | None  # the diversity term's other noise, for the first B // 2 captions
    condition: torch.Tensor | None  # the condition code's draw, shared by a caption's pictures
    candidates: torch.Tensor | None  # ((K - 1) * B, Z): G's other noises to choose from

    @classmethod
    def split(cls, cfg: DMGANConfig, noises: list[torch.Tensor]) -> StepNoises:
        lo, n = cfg.loss, cfg.train.d_steps
        rest = iter(noises[n:])
        second = next(rest) if lo.diversity_weight > 0 else None
        condition = next(rest) if lo.diversity_weight > 0 or lo.pixel_candidates > 1 else None
        candidates = next(rest) if lo.pixel_candidates > 1 else None
        return cls(noises[:n], second, condition, candidates)


def draw_noises(cfg: DMGANConfig, b: int, noise_gen: torch.Generator | None,
                dev: torch.device) -> list[torch.Tensor]:
    """One noise per D step, drawn in the order the updates use them; then (the diversity
    term) the second noise of half the batch's captions; then (the diversity term or pixel
    candidates) the condition code's draw that a caption's pictures share, so only the noise
    tells them apart; then (pixel candidates) G's other noises."""
    gen, lo = cfg.generator, cfg.loss

    def draw(*shape):
        return torch.randn(*shape, generator=noise_gen).to(dev)

    noises = [draw(b, gen.z_dim) for _ in range(cfg.train.d_steps)]
    if lo.diversity_weight > 0:
        noises.append(draw(max(1, b // 2), gen.z_dim))
    if lo.diversity_weight > 0 or lo.pixel_candidates > 1:
        noises.append(draw(b, gen.condition_dim))
    if lo.pixel_candidates > 1:
        noises.append(draw((lo.pixel_candidates - 1) * b, gen.z_dim))
    return noises


@torch.no_grad()
def nearest_noise(g: torch.nn.Module, real: list[torch.Tensor],
                  text: TextEncoding, z: torch.Tensor, candidates: torch.Tensor,
                  condition: torch.Tensor, fixes_picture: torch.Tensor | None = None,
                  ) -> torch.Tensor:
    """(B, Z): per caption, of the noise `z` and its K - 1 `candidates`, the one whose pictures
    are nearest to the caption's real ones by the mean squared pixel difference, every pixel
    alike, summed over stages (conditional IMLE: each real picture pulls the nearest of G's
    drawings, so the drawings come to cover what a caption leaves free instead of blurring
    into its mean). A caption that fixes its picture (`fixes_picture` (B,) of 0/1) keeps `z`:
    every drawing of it must be that picture. Device work only. In training mode G's batch
    norms see the K x B drawings here and the B chosen ones in the step, so the step's
    pictures are near, not equal, to the ones chosen."""
    b = len(z)
    k = 1 + len(candidates) // b
    zs = torch.cat([z, candidates])  # candidate j of caption i at j * B + i
    out = g(zs, text.sentence.repeat(k, 1), text.words.repeat(k, 1, 1), text.mask.repeat(k, 1),
            condition_noise=condition.repeat(k, 1))
    apart = sum(pixel_distances(fake, r.to(fake.dtype).repeat(k, 1, 1, 1))
                for fake, r in zip(out.images, real, strict=True))
    best = apart.view(k, b).argmin(0)
    if fixes_picture is not None:
        best = best.masked_fill(fixes_picture.bool(), 0)
    return zs.view(k, b, -1)[best, torch.arange(b, device=z.device)]


def update_networks(p: GANParts, cfg: DMGANConfig, rt: Runtime, amp: str, *,
                    real: list[torch.Tensor], text: TextEncoding, lengths: torch.Tensor,
                    class_ids: torch.Tensor, wrong: TextEncoding | None,
                    noises: list[torch.Tensor], autocast_cache: bool = True,
                    fixes_picture: torch.Tensor | None = None,
                    ) -> dict[str, torch.Tensor]:
    """The D updates and the G update of one step, from encoded captions and drawn noise:
    device work only (no host sync, no data-dependent shape), so a CUDA graph can record it."""
    lo = cfg.loss
    drawn = StepNoises.split(cfg, noises)
    second_noise, condition_noise = drawn.second, drawn.condition
    noises = drawn.d_steps

    def amp_context():
        return autocast(rt.device, amp, cache=autocast_cache)

    # --- phase: update each discriminator (extra D steps judge fresh fakes) ---------
    for z in noises[:-1]:
        with torch.no_grad(), amp_context():
            fakes = p.g_run(z, text.sentence, text.words, text.mask).images
        _update_discriminators(p, rt, amp_context, real, fakes, text, wrong)
    if drawn.candidates is not None:
        with amp_context():
            noises[-1] = nearest_noise(p.g_run, real, text, noises[-1], drawn.candidates,
                                       condition_noise, fixes_picture)
    with amp_context():
        out = p.g_run(noises[-1], text.sentence, text.words, text.mask,
                      condition_noise=condition_noise)
    d_losses = _update_discriminators(p, rt, amp_context, real, out.images, text, wrong)

    # --- phase: update the generator ------------------------------------------------
    p.ds.requires_grad_(False)
    with amp_context():
        second = None
        if second_noise is not None:  # the first captions again, from another noise
            n = len(second_noise)
            other = p.g_run(second_noise, text.sentence[:n], text.words[:n], text.mask[:n],
                            condition_noise=condition_noise[:n])
            second = (other, noises[-1], second_noise)
        gl = generator_loss(p.ds, out, text, lengths, p.image_encoder, lo, class_ids, wrong,
                            critics=p.critics, real=real, fixes_picture=fixes_picture,
                            second=second)
    p.opt_g.zero_grad(set_to_none=True)
    p.scaler.scale(gl.total).backward()
    p.ds.requires_grad_(True)
    average_gradients(p.g.parameters(), rt)
    p.scaler.step(p.opt_g)
    p.scaler.update()
    for module in (p.g, p.ds):
        broadcast_state(module, rt, buffers_only=True)
    return {"g_total": gl.total.detach(), "g_adv": gl.adversarial.detach(),
            "g_words": gl.damsm_words.detach(), "g_sentence": gl.damsm_sentence.detach(),
            "kl": gl.kl.detach(), **{f"d{i}": x for i, x in enumerate(d_losses)},
            **({"g_preference": gl.preference.detach()}
               if lo.caption_preference_weight > 0 else {}),
            **({"g_pixel": gl.pixel.detach()} if gl.pixel is not None else {}),
            **({"g_diversity": gl.diversity.detach()} if gl.diversity is not None else {})}


def _update_discriminators(p: GANParts, rt: Runtime, amp_context, real, fakes,
                           text: TextEncoding, wrong: TextEncoding | None = None):
    losses = []
    captions = {"words": text.words, "mask": text.mask}
    if wrong is not None:
        captions.update(wrong_sentence=wrong.sentence, wrong_words=wrong.words,
                        wrong_mask=wrong.mask)
    for d, opt_d, real_i, fake_i in zip(p.ds, p.opt_ds, real, fakes, strict=True):
        with amp_context():
            loss_d = discriminator_loss(d, real_i, fake_i, text.sentence, **captions).total
        opt_d.zero_grad(set_to_none=True)
        p.scaler.scale(loss_d).backward()
        average_gradients(d.parameters(), rt)
        p.scaler.step(opt_d)
        losses.append(loss_d.detach())
    return losses
