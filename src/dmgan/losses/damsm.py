"""DAMSM word and sentence losses (AttnGAN's matching losses), vectorised over the batch.

Dimension letters: B batch (images j, captions i), D feature size, T words,
R = H*W image regions (17 x 17 for Inception's Mixed_6e).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

_EPS = 1e-8


@dataclass
class WordLoss:
    loss0: torch.Tensor  # image -> caption direction
    loss1: torch.Tensor  # caption -> image direction
    diagonal_attention: torch.Tensor  # (B, T, H, W): caption i's words over image i
    lengths: torch.Tensor  # (B,)

    @property
    def attention(self) -> list[torch.Tensor]:
        """Per caption i, (1, T_i, H, W). Built on demand: slicing by length syncs with the
        device once per sample, which training (that never reads it) should not pay."""
        return [self.diagonal_attention[i:i + 1, :n]
                for i, n in enumerate(self.lengths.tolist())]


def _same_class_mask(class_ids: torch.Tensor | None, b: int, device) -> torch.Tensor | None:
    """(B, B) True where i != j share a class: those pairs are not negatives."""
    if class_ids is None:
        return None
    class_ids = torch.as_tensor(class_ids, device=device).view(-1)
    if class_ids.numel() != b:
        raise ValueError(f"{class_ids.numel()} class ids for a batch of {b}")
    same = class_ids.unsqueeze(0) == class_ids.unsqueeze(1)
    return same & ~torch.eye(b, dtype=torch.bool, device=device)


def _two_way_ce(scores: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of (B, B) scores against the diagonal, rows then columns."""
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    labels = torch.arange(scores.shape[0], device=scores.device)
    return F.cross_entropy(scores, labels), F.cross_entropy(scores.t(), labels)


def words_loss(
    regions: torch.Tensor,
    words: torch.Tensor,
    lengths: torch.Tensor,
    class_ids: torch.Tensor | None = None,
    *,
    gamma1: float = 4.0,
    gamma2: float = 5.0,
    gamma3: float = 10.0,
) -> WordLoss:
    """regions (B, D, H, W), words (B, D, T), lengths (B,).

    For every caption i and image j: each word attends over the regions of j
    (softmax over i's words per region, then over regions per word, sharpened by
    gamma1); the word's similarity to its attended context is pooled over the
    words with gamma2, and the B x B matrix of those scores (times gamma3) is
    matched against the diagonal in both directions.
    """
    b, d, height, width = regions.shape
    if words.shape[0] != b or words.shape[1] != d:
        raise ValueError(f"words {tuple(words.shape)} do not fit regions {tuple(regions.shape)}")
    t = words.shape[2]
    ctx = regions.reshape(b, d, height * width)  # (B_j, D, R)
    pad = torch.arange(t, device=words.device).unsqueeze(0) >= lengths.to(words.device).unsqueeze(1)

    # (B_i, B_j, T, R): words of caption i against regions of image j
    raw = torch.einsum("idt,jdr->ijtr", words, ctx)
    scores = raw.masked_fill(pad[:, None, :, None], float("-inf"))
    attn = torch.softmax(scores, dim=2)  # over words, per region
    attn = torch.softmax(attn * gamma1, dim=3)  # over regions, per word

    # cosine of each word with its context (the regions weighted by attn), (B_i, B_j, T)
    if ctx.shape[2] < d:
        # fewer regions than features (the small encoders' 4 x 4 grid): the context's dot
        # product with the word and its squared norm follow from the (B_i, B_j, T, R)
        # scores and each image's R x R Gram matrix, without the (B_i, B_j, D, T) contexts:
        # w . (C a) = a . (C^T w) and |C a|^2 = a^T (C^T C) a: the same values to rounding,
        # a quarter of the FLOPs at 16 regions and D = 64.
        dot = (attn * raw).sum(3)
        gram = torch.bmm(ctx.transpose(1, 2), ctx)  # (B_j, R, R)
        sq = (torch.einsum("ijtr,jrs->ijts", attn, gram) * attn).sum(3)
        context_norm = sq.clamp(min=_EPS * _EPS).sqrt()
    else:
        context = torch.einsum("jdr,ijtr->ijdt", ctx, attn)  # (B_i, B_j, D, T)
        dot = (words.unsqueeze(1) * context).sum(2)
        context_norm = context.norm(dim=2)
    cos = dot / (words.norm(dim=1).unsqueeze(1) * context_norm).clamp(min=_EPS)
    # log-sum-exp over each caption's own words; padded words contribute nothing
    sim = torch.exp(cos * gamma2).masked_fill(pad.unsqueeze(1), 0.0).sum(2).log()  # (B_i, B_j)
    scores_ij = sim.t() * gamma3  # rows: images, columns: captions
    loss0, loss1 = _two_way_ce(scores_ij, _same_class_mask(class_ids, b, words.device))

    diag = torch.arange(b, device=words.device)
    att_diag = attn[diag, diag].reshape(b, t, height, width)
    return WordLoss(loss0=loss0, loss1=loss1, diagonal_attention=att_diag, lengths=lengths)


def sentence_loss(
    image_code: torch.Tensor,
    sentence: torch.Tensor,
    class_ids: torch.Tensor | None = None,
    *,
    gamma3: float = 10.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """image_code (B, D), sentence (B, D): cosine scores times gamma3, matched both ways."""
    num = image_code @ sentence.t()
    den = image_code.norm(dim=1, keepdim=True) * sentence.norm(dim=1, keepdim=True).t()
    scores = num / den.clamp(min=_EPS) * gamma3
    return _two_way_ce(scores, _same_class_mask(class_ids, image_code.shape[0], image_code.device))


def near_miss_loss(code: torch.Tensor, sentence: torch.Tensor, negative: torch.Tensor, *,
                  gamma3: float) -> torch.Tensor:
    """Each image (B, D) against its own sentence and its near-miss sentence (B, D): a two-way
    softmax of cosine scores times gamma3, the true sentence the target."""
    pos = F.cosine_similarity(code, sentence, dim=1, eps=1e-8)
    neg = F.cosine_similarity(code, negative, dim=1, eps=1e-8)
    logits = torch.stack((pos, neg), dim=1) * gamma3
    return F.cross_entropy(logits, torch.zeros(len(code), dtype=torch.long, device=code.device))
