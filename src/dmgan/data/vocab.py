"""Tokenizer and vocabulary as the released pipeline has them, and safe captions.pickle import.

Tokens: the caption lowercased, split into `\\w+` runs, each token stripped of non-ASCII
characters (empty ones dropped). Index 0 is the end/padding token `<end>`; the other
words are numbered in order of first appearance over the train then the test captions.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmgan.errors import DMGANError
from dmgan.fileio import atomic_write, atomic_write_text

END_TOKEN = "<end>"
_WORD = re.compile(r"\w+")
VOCAB_FORMAT = "dmgan-vocabulary"


def tokenize(caption: str) -> list[str]:
    """'A Bird, with a RED crown!' -> ['a', 'bird', 'with', 'a', 'red', 'crown']."""
    caption = caption.replace("\ufffd\ufffd", " ")
    out = []
    for token in _WORD.findall(caption.lower()):
        token = token.encode("ascii", "ignore").decode("ascii")
        if token:
            out.append(token)
    return out


# Words that carry no content by themselves: a caption made only of these (and unknown
# words) describes nothing, so generating from it is refused like an unknown caption.
FILLERS = frozenset(
    "a an the on in at of to with and or is are there that this it its by for from as "
    "be has have near into onto against".split())


class CaptionError(DMGANError):
    """A user's caption that cannot be encoded (no known word, empty)."""


MAX_CAPTION_CHARS = 1000  # the longest caption the pipeline, the CLI and the server take


def check_caption_length(caption: str, limit: int = MAX_CAPTION_CHARS) -> None:
    """One limit and one message wherever a caption comes in."""
    if len(caption) > limit:
        raise CaptionError(f"a caption may be {limit} characters long at most; this one has "
                           f"{len(caption)}")


@dataclass
class EncodedCaption:
    ids: list[int]
    unknown: list[str]  # words of the caption that the vocabulary lacks, in order


class Vocabulary:
    """Word <-> index. Index 0 is `<end>` (padding); words never map to 0."""

    def __init__(self, words: Sequence[str]):
        if not words or words[0] != END_TOKEN:
            raise DMGANError(f"a vocabulary starts with '{END_TOKEN}' at index 0")
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise DMGANError("a vocabulary lists a word twice")

    def __len__(self) -> int:
        return len(self.words)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words

    @classmethod
    def build(cls, captions: Iterable[Sequence[str]]) -> Vocabulary:
        """From tokenized captions (train first, then test), in order of first appearance."""
        seen: dict[str, None] = {}
        for tokens in captions:
            for t in tokens:
                seen.setdefault(t, None)
        seen.pop(END_TOKEN, None)
        return cls([END_TOKEN, *seen])

    def encode_tokens(self, tokens: Sequence[str]) -> EncodedCaption:
        ids, unknown = [], []
        for t in tokens:
            i = self.index.get(t)
            if i is None or i == 0:
                unknown.append(t)
            else:
                ids.append(i)
        return EncodedCaption(ids, unknown)

    def encode(self, caption: str) -> EncodedCaption:
        """A user's sentence -> ids. Unknown words are returned by name; none known is an error."""
        tokens = tokenize(caption)
        if not tokens:
            raise CaptionError(f"caption {caption[:80]!r} has no words")
        enc = self.encode_tokens(tokens)
        if not enc.ids:
            raise CaptionError(f"no word of the caption {caption[:80]!r} is in the vocabulary "
                               f"(unknown: {', '.join(sorted(set(enc.unknown)))})")
        if all(self.words[i] in FILLERS for i in enc.ids):
            raise CaptionError(f"the caption {caption[:80]!r} has no known word that describes "
                               f"anything (only fillers like 'a', 'the', 'on'"
                               + (f"; unknown: {', '.join(sorted(set(enc.unknown)))}"
                                  if enc.unknown else "")
                               + "); dmgan info --checkpoint MODEL lists the vocabulary")
        return enc

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.words[i] for i in ids if i != 0)

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, json.dumps({"format": VOCAB_FORMAT, "version": 1,
                                            "words": self.words}))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        path = Path(path)
        if not path.is_file():
            raise DMGANError(f"vocabulary file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DMGANError(f"{path} is not a JSON vocabulary: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != VOCAB_FORMAT:
            raise DMGANError(f"{path} is not a dmgan vocabulary file")
        words = data.get("words")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise DMGANError(f"{path}: 'words' must be a list of strings")
        return cls(words)


# --- captions.pickle -------------------------------------------------------------------

_PLAIN = (list, tuple, dict, str, bytes, int, float, bool, type(None))


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds only what pickle opcodes build by themselves (lists, tuples, dicts, strings,
    numbers); every global lookup is refused, so no code can run. The one exception is
    `_codecs.encode`, which Python 3 uses to write bytes at protocol 2 (str -> bytes)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            import codecs

            return codecs.encode
        raise pickle.UnpicklingError(
            f"refused '{module}.{name}': only lists, tuples, dicts, strings, bytes and numbers "
            f"are admitted")


def _check_plain(obj: Any, budget: int) -> None:
    """Every object is plain data, visited through every reference (as a reader will).

    A pickle of N bytes holds at most about N objects, each opcode being at least a byte;
    references to one object shared many times (memo gets, two bytes each) can make a
    tiny file describe an exponential structure (a "billion laughs"). Visits beyond
    `budget` refuse the file instead of hanging on it.
    """
    stack, visits = [(obj, 0)], 0
    while stack:
        x, depth = stack.pop()
        visits += 1
        if visits > budget:
            raise pickle.UnpicklingError(
                "refused: shared references make this pickle expand far beyond its size "
                "(a decompression bomb)")
        if depth > 20 or not isinstance(x, _PLAIN):
            raise pickle.UnpicklingError(f"refused an object of type {type(x).__name__}")
        if isinstance(x, (list, tuple)):
            stack.extend((y, depth + 1) for y in x)
        elif isinstance(x, dict):
            stack.extend((y, depth + 1) for kv in x.items() for y in kv)


MAX_PICKLE_BYTES = 1 << 30  # a captions.pickle of COCO is about 30 MB


def safe_unpickle(data: bytes, *, source: str = "pickle") -> Any:
    """Unpickle plain data only (Python 2 protocol-2 files included; their str as latin-1)."""
    if len(data) > MAX_PICKLE_BYTES:
        raise DMGANError(f"{source}: refused: {len(data)} bytes is more than a captions file "
                         f"needs ({MAX_PICKLE_BYTES} at most)")
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
        _check_plain(obj, budget=2 * len(data) + 1000)
    except pickle.UnpicklingError as exc:
        raise DMGANError(f"{source}: {exc}") from None
    except Exception as exc:  # truncated or not a pickle at all
        raise DMGANError(f"{source} is not a readable pickle: {type(exc).__name__}: {exc}") from None
    return obj


def _text(x: Any) -> str:
    return x.decode("latin1") if isinstance(x, bytes) else x


@dataclass
class CaptionsFile:
    train: list[list[int]]
    test: list[list[int]]
    vocab: Vocabulary


def load_captions_pickle(path: str | os.PathLike) -> CaptionsFile:
    """The released `captions.pickle`: [train_captions, test_captions, ixtoword, wordtoix]."""
    path = Path(path)
    if not path.is_file():
        raise DMGANError(f"captions file not found: {path}")
    obj = safe_unpickle(path.read_bytes(), source=str(path))
    if not isinstance(obj, (list, tuple)) or len(obj) != 4:
        raise DMGANError(f"{path}: expected [train_captions, test_captions, ixtoword, wordtoix]")
    train, test, ixtoword, _wordtoix = obj
    if not isinstance(ixtoword, dict) or not all(isinstance(k, int) for k in ixtoword):
        raise DMGANError(f"{path}: ixtoword must map integers to words")
    n = len(ixtoword)
    if sorted(ixtoword) != list(range(n)):
        raise DMGANError(f"{path}: ixtoword indices are not 0..{n - 1}")
    words = [_text(ixtoword[i]) for i in range(n)]

    def caps(part: Any, name: str) -> list[list[int]]:
        if not isinstance(part, (list, tuple)) or not all(
            isinstance(c, (list, tuple)) and all(isinstance(i, int) and 0 < i < n for i in c)
            for c in part
        ):
            raise DMGANError(f"{path}: {name} captions must be lists of word indices in 1..{n - 1}")
        return [list(c) for c in part]

    return CaptionsFile(caps(train, "train"), caps(test, "test"), Vocabulary(words))


def save_captions_pickle(path: str | os.PathLike, captions: CaptionsFile) -> None:
    """Write the released layout (protocol 2, plain containers), atomically."""
    ixtoword = dict(enumerate(captions.vocab.words))
    wordtoix = {w: i for i, w in ixtoword.items()}
    payload = [captions.train, captions.test, ixtoword, wordtoix]
    atomic_write(path, lambda f: pickle.dump(payload, f, protocol=2))
