"""CLIP score: how well an image matches its caption by a CLIP model (the text-image metric
GALIP, GigaGAN and torchmetrics report beside FID): 100 x max(cosine(image, text), 0),
averaged over the pairs.

The model is read from a local folder in the Hugging Face layout, never downloaded:
`config.json` (text_config, vision_config, projection_dim), `model.safetensors` (needs
the safetensors package) or `pytorch_model.bin` (read with weights_only=True), with
CLIPModel's parameter names, `vocab.json` and `merges.txt` (the
byte-level BPE tokenizer), and optionally `preprocessor_config.json` (image size, mean,
std). The networks and the tokenizer are implemented here in plain torch (no
transformers needed) and equal transformers' (tests/test_clip_reference.py); results are
recorded with the model's name.
"""

from __future__ import annotations

import json
import math
import os
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dmgan.errors import DMGANError

MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's image normalisation
STD = (0.26862954, 0.26130258, 0.27577711)


# --- the tokenizer ---------------------------------------------------------------------

@lru_cache(maxsize=1)
def _byte_alphabet() -> dict[int, str]:
    """Byte-level BPE's reversible map from the 256 byte values to printable characters:
    printable Latin-1 bytes stand for themselves, the others get code points from 256 up."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


SPECIAL = ("<|startoftext|>", "<|endoftext|>")
CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")


def _kind(ch: str) -> str:
    """"L" a letter, "N" a number (any Unicode letter or number: "²" is a number), " " a
    space, "S" anything else (punctuation, symbols, "_")."""
    if ch.isspace():
        return " "
    cat = unicodedata.category(ch)[0]
    return cat if cat in "LN" else "S"


def split_pieces(text: str) -> list[str]:
    """CLIP's pre-tokenizer: the special tokens as typed, the contractions, runs of letters,
    single numbers, runs of other symbols (Unicode classes, as the reference's
    `'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+`); spaces separate."""
    pieces, i = [], 0
    while i < len(text):
        special = next((t for t in SPECIAL if text.startswith(t, i)), None)
        if special:
            pieces.append(special)
            i += len(special)
            continue
        short = next((c for c in CONTRACTIONS if text.startswith(c, i)), None)
        if short:
            pieces.append(short)
            i += len(short)
            continue
        kind = _kind(text[i])
        if kind == " ":
            i += 1
            continue
        j = i + 1
        if kind == "L":
            while j < len(text) and _kind(text[j]) == "L":
                j += 1
        elif kind == "S":  # a symbol run stops where a special token or contraction starts
            while (j < len(text) and _kind(text[j]) == "S"
                   and not any(text.startswith(t, j) for t in (*SPECIAL, *CONTRACTIONS))):
                j += 1
        pieces.append(text[i:j])
        i = j
    return pieces


class ClipTokenizer:
    """CLIP's byte-level BPE as the reference (transformers' CLIPTokenizer) does it: the text
    NFC-normalised, its whitespace runs made one space, lower-cased; split by split_pieces;
    each piece's bytes merged pairwise by the ranks in merges.txt (the last symbol of a word
    carries "</w>"); a special token typed in the text is that token; a symbol the
    vocabulary lacks is the unknown token (<|endoftext|>); wrapped in <|startoftext|> ...
    <|endoftext|>."""

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], max_length: int = 77):
        self.vocab, self.max_length = vocab, max_length
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.bos, self.eos = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
        self.unk = self.eos  # CLIP's unknown token is its end token
        self._cache: dict[str, list[str]] = {}

    @classmethod
    def from_folder(cls, folder: Path, max_length: int) -> ClipTokenizer:
        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        lines = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
        merges = [tuple(line.split()) for line in lines
                  if line.strip() and not line.startswith("#version")]
        return cls(vocab, [m for m in merges if len(m) == 2], max_length)

    def _bpe(self, word: str) -> list[str]:
        if word in self._cache:
            return self._cache[word]
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        while len(symbols) > 1:
            pairs = [(self.ranks.get((a, b), math.inf), i)
                     for i, (a, b) in enumerate(zip(symbols, symbols[1:], strict=False))]
            rank, _ = min(pairs)
            if rank == math.inf:
                break
            a, b = next((symbols[i], symbols[i + 1]) for r, i in pairs if r == rank)
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
                    merged.append(a + b)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        self._cache[word] = symbols
        return symbols

    def encode(self, text: str) -> list[int]:
        """Token ids with <|startoftext|> and <|endoftext|>, at most max_length (the end
        token is kept when the text is cut)."""
        alphabet = _byte_alphabet()
        text = re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip().lower()
        ids = []
        for piece in split_pieces(text):
            if piece in SPECIAL:
                ids.append(self.vocab[piece])
                continue
            word = "".join(alphabet[b] for b in piece.encode("utf-8"))
            ids += [self.vocab.get(s, self.unk) for s in self._bpe(word)]
        ids = ids[: self.max_length - 2]
        return [self.bos, *ids, self.eos]


# --- the networks (Hugging Face CLIPModel's parameter names) ----------------------------

def _activation(name: str):
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name in ("gelu", "gelu_new", "gelu_pytorch_tanh"):
        return (lambda x: F.gelu(x, approximate="tanh")) if name != "gelu" else F.gelu
    raise DMGANError(f"CLIP config: unknown hidden_act {name!r}")


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape

        def split(y):
            return y.view(b, t, self.heads, d // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.q_proj(x)), split(self.k_proj(x)),
                                             split(self.v_proj(x)), attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


class _MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, act: str):
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Linear(dim, hidden), nn.Linear(hidden, dim), _activation(act)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class _Layer(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        d, eps = c["hidden_size"], c.get("layer_norm_eps", 1e-5)
        self.self_attn = _Attention(d, c["num_attention_heads"])
        self.layer_norm1, self.layer_norm2 = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
        self.mlp = _MLP(d, c["intermediate_size"], c.get("hidden_act", "quick_gelu"))

    def forward(self, x, mask=None):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class _Encoder(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.layers = nn.ModuleList(_Layer(c) for _ in range(c["num_hidden_layers"]))

    def forward(self, x, mask=None):
        for layer in self.layers:
            x = layer(x, mask)
        return x


class _TextEmbeddings(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.token_embedding = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.position_embedding = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])


class _VisionEmbeddings(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        d, p = c["hidden_size"], c["patch_size"]
        self.class_embedding = nn.Parameter(torch.zeros(d))
        self.patch_embedding = nn.Conv2d(3, d, p, stride=p, bias=False)
        self.position_embedding = nn.Embedding((c["image_size"] // p) ** 2 + 1, d)


class _TextModel(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.embeddings, self.encoder = _TextEmbeddings(c), _Encoder(c)
        self.final_layer_norm = nn.LayerNorm(c["hidden_size"], eps=c.get("layer_norm_eps", 1e-5))
        self.eos_token_id = c.get("eos_token_id", 2)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        b, t = ids.shape
        pos = torch.arange(t, device=ids.device)
        x = self.embeddings.token_embedding(ids) + self.embeddings.position_embedding(pos)
        # causal, and padding never attended to
        allowed = torch.ones(t, t, dtype=torch.bool, device=ids.device).tril()
        allowed = allowed & (pos[None, :] < lengths[:, None])[:, None, None, :]
        x = self.final_layer_norm(self.encoder(x, allowed))
        # the end token's state: the highest id in the original vocabulary (configs with
        # eos_token_id 2 predate the rule), else the first end token
        if self.eos_token_id == 2:
            last = ids.masked_fill(pos[None, :] >= lengths[:, None], -1).argmax(-1)
        else:
            last = (ids == self.eos_token_id).int().argmax(-1)
        return x[torch.arange(b, device=ids.device), last]


class _VisionModel(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        eps = c.get("layer_norm_eps", 1e-5)
        self.embeddings, self.encoder = _VisionEmbeddings(c), _Encoder(c)
        self.pre_layrnorm = nn.LayerNorm(c["hidden_size"], eps=eps)  # (sic: the HF name)
        self.post_layernorm = nn.LayerNorm(c["hidden_size"], eps=eps)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        e = self.embeddings
        x = e.patch_embedding(pixels).flatten(2).transpose(1, 2)
        x = torch.cat([e.class_embedding.expand(len(x), 1, -1), x], dim=1)
        x = self.pre_layrnorm(x + e.position_embedding.weight[None])
        return self.post_layernorm(self.encoder(x)[:, 0])


class ClipModel(nn.Module):
    """CLIP's two towers and projections, with Hugging Face CLIPModel's parameter names."""

    def __init__(self, config: dict):
        super().__init__()
        t, v = config["text_config"], config["vision_config"]
        dim = config.get("projection_dim", 512)
        self.text_model, self.vision_model = _TextModel(t), _VisionModel(v)
        self.text_projection = nn.Linear(t["hidden_size"], dim, bias=False)
        self.visual_projection = nn.Linear(v["hidden_size"], dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(config.get("logit_scale_init_value", 2.6592)))
        self.image_size = v["image_size"]

    def encode_text(self, ids, lengths):
        return self.text_projection(self.text_model(ids, lengths))

    def encode_image(self, pixels):
        return self.visual_projection(self.vision_model(pixels))


# --- loading and the score ---------------------------------------------------------------

class Clip:
    """A CLIP model folder, loaded: `score(images, texts)`."""

    def __init__(self, folder: str | os.PathLike, device: str | torch.device = "cpu"):
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise DMGANError(f"CLIP model folder not found or incomplete: {folder} (needs "
                             f"config.json, model.safetensors or pytorch_model.bin, vocab.json, "
                             f"merges.txt; nothing is downloaded)")
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        self.name = config.get("_name_or_path") or folder.name
        self.model = ClipModel(config).eval().requires_grad_(False).to(device)
        self.model.load_state_dict(_read_weights(folder), strict=True)
        self.device = torch.device(device)
        pre = folder / "preprocessor_config.json"
        p = json.loads(pre.read_text(encoding="utf-8")) if pre.is_file() else {}
        self.mean = torch.tensor(p.get("image_mean", MEAN)).view(1, 3, 1, 1)
        self.std = torch.tensor(p.get("image_std", STD)).view(1, 3, 1, 1)
        self.tokenizer = ClipTokenizer.from_folder(
            folder, config["text_config"].get("max_position_embeddings", 77))

    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> CLIP's input as the reference (transformers'
        CLIPImageProcessor) makes it from the saved picture: rounded to 8 bits, the shorter
        side resized to the model's size by PIL's bicubic (the longer side floored), the
        centre cropped square, scaled to [0, 1] and normalised."""
        from PIL import Image

        from dmgan.imageio import to_uint8

        size = self.model.image_size
        out = []
        for picture in to_uint8(images):
            img = Image.fromarray(picture)
            w, h = img.size
            short, long = (w, h) if w <= h else (h, w)
            new_long = int(size * long / short)
            img = img.resize((size, new_long) if w <= h else (new_long, size), Image.BICUBIC)
            w, h = img.size
            top, left = (h - size) // 2, (w - size) // 2
            crop = np.asarray(img)[top:top + size, left:left + size]
            out.append(torch.from_numpy(crop.astype(np.float32) / 255).permute(2, 0, 1))
        x = torch.stack(out)
        return (x - self.mean) / self.std

    @torch.inference_mode()
    def score(self, images: torch.Tensor, texts: list[str], batch_size: int = 50) -> np.ndarray:
        """Per pair: 100 x max(cosine(image embedding, text embedding), 0)."""
        if len(images) != len(texts):
            raise DMGANError(f"{len(images)} images but {len(texts)} captions")
        out = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            ids = [self.tokenizer.encode(t) for t in chunk]
            lengths = torch.tensor([len(i) for i in ids])
            padded = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
            for k, row in enumerate(ids):
                padded[k, : len(row)] = torch.tensor(row)
            txt = self.model.encode_text(padded.to(self.device), lengths.to(self.device))
            img = self.model.encode_image(
                self.pixels(images[start:start + batch_size]).to(self.device))
            cos = F.cosine_similarity(img.float(), txt.float(), dim=-1)
            out.append((100 * cos.clamp(min=0)).cpu().numpy())
        return np.concatenate(out)


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / "model.safetensors").is_file():
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise DMGANError(f"{folder} holds model.safetensors: pip install safetensors (or "
                             f"use a folder with pytorch_model.bin)") from None
        state = load_file(str(folder / "model.safetensors"))
    elif (folder / "pytorch_model.bin").is_file():
        state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise DMGANError(f"{folder} has no model.safetensors or pytorch_model.bin")
    # position ids are buffers in some files, not weights of the model
    return {k: v for k, v in state.items() if not k.endswith("position_ids")}
