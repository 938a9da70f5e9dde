"""DAMSM text encoder: embedding -> dropout -> one-layer bidirectional LSTM.

Dimension letters: B batch, T words (the longest caption in the batch), D feature size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


@dataclass
class TextEncoding:
    words: torch.Tensor  # (B, D, T) per-word features; zero past each caption's length
    sentence: torch.Tensor  # (B, D) last hidden states of both directions
    mask: torch.Tensor  # (B, T) True where a word is padding


def padding_mask(lengths: torch.Tensor, num_words: int) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool, True at padding positions."""
    positions = torch.arange(num_words, device=lengths.device)
    return positions.unsqueeze(0) >= lengths.unsqueeze(1)


class TextEncoder(nn.Module):
    def __init__(
        self,
        *,
        vocab_size: int,  # words in the vocabulary, index 0 = padding
        word_dim: int = 300,  # embedding size
        embed_dim: int = 256,  # D: output size, both directions together
        dropout: float = 0.5,  # applied to the embeddings
    ):
        super().__init__()
        self.embed_dim = embed_dim
        self.embedding = nn.Embedding(vocab_size, word_dim)
        self.drop = nn.Dropout(dropout)
        self.rnn = nn.LSTM(word_dim, embed_dim // 2, num_layers=1, batch_first=True,
                           bidirectional=True)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)

    def forward(self, captions: torch.Tensor, lengths: torch.Tensor) -> TextEncoding:
        """captions: (B, L) word ids (0 = padding), lengths: (B,) in any order."""
        if captions.dim() != 2 or lengths.shape != captions.shape[:1]:
            raise ValueError(f"captions (B, L) and lengths (B,) expected, got "
                             f"{tuple(captions.shape)} and {tuple(lengths.shape)}")
        lengths_cpu = lengths.detach().to("cpu", torch.int64)
        if int(lengths_cpu.min()) < 1 or int(lengths_cpu.max()) > captions.shape[1]:
            raise ValueError("every caption length must be in [1, captions.shape[1]]")
        emb = self.drop(self.embedding(captions))
        packed = pack_padded_sequence(emb, lengths_cpu, batch_first=True, enforce_sorted=False)
        out, (h_n, _) = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True)  # (B, T, D), T = max length
        words = out.transpose(1, 2)
        # h_n: (2, B, D/2), forward then backward direction -> (B, D)
        sentence = h_n.transpose(0, 1).reshape(captions.shape[0], self.embed_dim)
        mask = padding_mask(lengths.to(captions.device), words.shape[2])
        return TextEncoding(words=words, sentence=sentence, mask=mask)
