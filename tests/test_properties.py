"""Property tests (hypothesis) over the tokenizer, the vocabulary and batch collation."""

from __future__ import annotations

import re

import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dmgan.data.collate import Sample, collate
from dmgan.data.transforms import fit_caption
from dmgan.data.vocab import FILLERS, CaptionError, Vocabulary, tokenize

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
    """(A caption whose known words are all fillers, "a on the", is refused on purpose:
    test_bad_inputs.)"""
    assume(any(w not in FILLERS for w in known))
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


# Every numeric option of every command, with its parser: a value is either accepted (and
# then in range) or refused as a usage error (exit 2), never a traceback.
def _numeric_options():
    import argparse

    from dmgan.cli import build_parser

    out = []
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        for action in parser._actions:
            if action.option_strings and callable(action.type) and action.type not in (str,):
                out.append((name, action.option_strings[0]))
    return out


NUMERIC = _numeric_options()
NUMBERS = st.one_of(st.integers(-2**70, 2**70).map(str), st.floats(allow_nan=True).map(str),
                    st.text(max_size=12))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(NUMERIC), NUMBERS)
def test_numeric_options_accept_or_refuse_cleanly(option, value):
    import contextlib
    import io

    from dmgan.cli import build_parser

    command, flag = option
    required = {"check-released": ["--preset", "bird"],
                "convert-released": ["--preset", "bird", "--netG", "g", "--text-encoder", "t",
                                     "--captions", "c", "-o", "o"],
                "export": ["--checkpoint", "c", "-o", "o"],
                "explain": ["a red disk"],
                "pretrain-damsm": ["--preset", "tiny", "--data", "shapes", "--out", "o"],
                "train": ["--preset", "tiny", "--data", "shapes", "--out", "o"],
                "train-critic": ["--preset", "tiny", "--damsm", "d", "--out", "o"],
                }.get(command, [])
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = build_parser().parse_args([command, *required, f"{flag}={value}"])
    except SystemExit as exc:
        assert exc.code == 2 and "error: argument" in err.getvalue()
        return
    got = getattr(args, flag.lstrip("-").replace("-", "_"))
    assert got == got  # not NaN
    if isinstance(got, int) and flag == "--seed":
        assert 0 <= got < 2**32


def test_every_numeric_option_is_covered():
    assert len(NUMERIC) >= 25
    assert ("serve", "--port") in NUMERIC and ("train", "--batch-size") in NUMERIC
