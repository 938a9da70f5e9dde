"""Property tests (hypothesis) over the tokenizer, the vocabulary and batch collation."""

from __future__ import annotations

import re

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dmgan.data.collate import Sample, collate
from dmgan.data.transforms import fit_caption
from dmgan.data.vocab import CaptionError, Vocabulary, tokenize

WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=8)


@given(st.text(max_size=300))
def test_tokens_are_lowercase_ascii_word_runs(text):
    tokens = tokenize(text)
    for t in tokens:
        assert t and t.isascii() and t == t.lower() and re.fullmatch(r"\w+", t)
    assert tokenize(" ".join(tokens)) == tokens  # idempotent on its own output


@given(st.lists(st.lists(WORDS, min_size=1, max_size=12), min_size=1, max_size=20))
def test_vocabulary_indexes_every_word_once_and_round_trips(captions):
    vocab = Vocabulary.build(captions)
    assert vocab.words[0] == "<end>" and len(set(vocab.words)) == len(vocab.words)
    for cap in captions:
        enc = vocab.encode_tokens(cap)
        assert enc.unknown == [] and 0 not in enc.ids
        assert vocab.decode(enc.ids) == " ".join(cap)


@given(st.lists(WORDS, min_size=1, max_size=10), st.lists(WORDS, min_size=1, max_size=10))
def test_unknown_words_are_named_never_dropped_silently(known, other):
    vocab = Vocabulary.build([known])
    caption = " ".join(known + other)
    try:
        enc = vocab.encode(caption)
    except CaptionError:
        raise AssertionError("a caption with known words must encode") from None
    assert len(enc.ids) + len(enc.unknown) == len(tokenize(caption))
    assert set(enc.unknown) == {w for w in tokenize(caption) if w not in vocab.index}


@given(st.lists(st.integers(1, 500), min_size=1, max_size=60), st.integers(1, 30),
       st.integers(0, 2**32 - 1))
def test_fit_caption_keeps_words_in_order(ids, limit, seed):
    out, n = fit_caption(ids, limit, np.random.default_rng(seed))
    assert out.shape == (limit,) and n == min(len(ids), limit)
    assert (out[n:] == 0).all() and (out[:n] != 0).all()
    it = iter(ids)  # a subsequence of the original, in order
    assert all(any(x == y for y in it) for x in out[:n].tolist())


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=6), st.integers(1, 3))
def test_collate_stacks_whatever_the_lengths(lengths, stages):
    samples = []
    for i, n in enumerate(lengths):
        cap = torch.zeros(12, dtype=torch.int64)
        cap[:n] = torch.arange(1, n + 1)
        images = [torch.zeros(3, 4 * 2**s, 4 * 2**s) for s in range(stages)]
        samples.append(Sample(images=images, caption=cap, length=n, class_id=i, key=str(i)))
    batch = collate(samples)
    assert batch.captions.shape == (len(lengths), 12)
    assert batch.lengths.tolist() == lengths and batch.keys == [str(i) for i in range(len(lengths))]
    assert [x.shape[0] for x in batch.images] == [len(lengths)] * stages
