"""Caption parsing, the vocabulary file and the restricted captions.pickle reader, held to
their exact contract: each message a user reads, each limit at its boundary, the layouts
the released files use (the mutation check, docs/testing.md, found what the other tests
let through)."""

from __future__ import annotations

import json
import pickle

import pytest

from dmgan.data import vocab as vocab_module
from dmgan.data.vocab import (
    END_TOKEN,
    CaptionError,
    CaptionsFile,
    Vocabulary,
    _check_plain,
    load_captions_pickle,
    safe_unpickle,
    save_captions_pickle,
)
from dmgan.errors import DMGANError

WORDS = [END_TOKEN, "red", "circle", "a", "on", "left"]


def _message(exc_info) -> str:
    return str(exc_info.value)


@pytest.mark.parametrize(("caption", "message"), [
    ("!!! ...", "caption '!!! ...' has no words"),
    ("zebra yak zebra", "no word of the caption 'zebra yak zebra' is in the vocabulary "
                        "(unknown: yak, zebra)"),
    ("a on", "the caption 'a on' has no known word that describes anything (only fillers "
             "like 'a', 'the', 'on'); dmgan info --checkpoint MODEL lists the vocabulary"),
    ("a yak on zebra yak", "the caption 'a yak on zebra yak' has no known word that describes "
                           "anything (only fillers like 'a', 'the', 'on'; unknown: yak, zebra); "
                           "dmgan info --checkpoint MODEL lists the vocabulary"),
])
def test_a_caption_that_cannot_be_drawn_is_refused_in_these_words(caption, message):
    with pytest.raises(CaptionError) as exc:
        Vocabulary(WORDS).encode(caption)
    assert _message(exc) == message


def test_a_refused_caption_is_quoted_up_to_80_characters():
    for caption, start in [("?" * 200, "caption "), ("q" * 200, "no word of the caption "),
                           ("a " * 100, "the caption ")]:
        with pytest.raises(CaptionError) as exc:
            Vocabulary(WORDS).encode(caption)
        assert _message(exc).startswith(start + repr(caption[:80]) + " ")


def test_encode_keeps_known_words_in_order_and_names_the_unknown_ones():
    enc = Vocabulary(WORDS).encode("A red yak-circle on the LEFT, yak")
    assert enc.ids == [3, 1, 2, 4, 5]
    assert enc.unknown == ["yak", "the", "yak"]
    # the padding token is no word of a caption
    assert Vocabulary(WORDS).encode_tokens(["<end>", END_TOKEN, "red"]).unknown == [
        "<end>", END_TOKEN]


def test_a_vocabulary_starts_with_the_end_token_and_lists_each_word_once():
    with pytest.raises(DMGANError) as exc:
        Vocabulary(["red", END_TOKEN])
    assert _message(exc) == "a vocabulary starts with '<end>' at index 0"
    with pytest.raises(DMGANError, match="starts with"):
        Vocabulary([])
    with pytest.raises(DMGANError) as exc:
        Vocabulary([END_TOKEN, "red", "red"])
    assert _message(exc) == "a vocabulary lists a word twice"
    v = Vocabulary(WORDS)
    assert len(v) == 6 and v.index["left"] == 5 and v.decode([1, 0, 2, 0]) == "red circle"


def test_vocabularies_are_equal_by_their_words_in_order():
    assert Vocabulary(WORDS) == Vocabulary(list(WORDS))
    assert Vocabulary(WORDS) != Vocabulary([END_TOKEN, "circle", "red", "a", "on", "left"])
    assert (Vocabulary(WORDS) == WORDS) is False  # another type: not equal, no error
    assert Vocabulary(WORDS).__eq__(WORDS) is False


def test_build_numbers_words_by_first_appearance_and_never_takes_the_end_token():
    v = Vocabulary.build([["red", "circle"], [END_TOKEN, "circle", "blue"], ["red"]])
    assert v.words == [END_TOKEN, "red", "circle", "blue"]
    assert Vocabulary.build([]).words == [END_TOKEN]


def test_the_vocabulary_file_round_trips_and_refuses_what_is_not_one(tmp_path):
    path = tmp_path / "v.json"
    Vocabulary(WORDS).save(path)
    assert json.loads(path.read_text()) == {"format": "dmgan-vocabulary", "version": 1,
                                            "words": WORDS}
    assert Vocabulary.load(path).words == WORDS
    cases = [
        (None, f"vocabulary file not found: {tmp_path / 'none.json'}"),
        ("{not json", None),
        (json.dumps([1, 2]), f"{tmp_path / 'bad.json'} is not a dmgan vocabulary file"),
        (json.dumps({"format": "other", "words": WORDS}),
         f"{tmp_path / 'bad.json'} is not a dmgan vocabulary file"),
        (json.dumps({"format": "dmgan-vocabulary", "words": "red"}),
         f"{tmp_path / 'bad.json'}: 'words' must be a list of strings"),
        (json.dumps({"format": "dmgan-vocabulary", "words": [END_TOKEN, 3]}),
         f"{tmp_path / 'bad.json'}: 'words' must be a list of strings"),
    ]
    for text, message in cases:
        target = tmp_path / ("none.json" if text is None else "bad.json")
        if text is not None:
            target.write_text(text)
        with pytest.raises(DMGANError) as exc:
            Vocabulary.load(target)
        if message is None:
            assert _message(exc).startswith(f"{target} is not a JSON vocabulary: ")
        else:
            assert _message(exc) == message
    (tmp_path / "latin.json").write_bytes(b'{"words": "\xff"}')
    with pytest.raises(DMGANError, match="is not a JSON vocabulary"):
        Vocabulary.load(tmp_path / "latin.json")


def _nested(depth: int, dict_: bool = False):
    x: object = 0
    for _ in range(depth):
        x = {"k": x} if dict_ else [x]
    return x


def test_plain_data_is_admitted_to_depth_20_and_refused_beyond():
    for dict_ in (False, True):
        # the innermost value sits at depth 20: a dict's keys and values one below it, as
        # a list's items are
        _check_plain(_nested(20, dict_), budget=10_000)
        with pytest.raises(pickle.UnpicklingError) as exc:
            _check_plain(_nested(21, dict_), budget=10_000)
        assert _message(exc) == "refused an object of type int"
    assert safe_unpickle(pickle.dumps(_nested(19), protocol=2)) == _nested(19)
    with pytest.raises(DMGANError) as exc:
        safe_unpickle(pickle.dumps(_nested(21), protocol=2), source="c.pickle")
    assert _message(exc) == "c.pickle: refused an object of type int"


def test_objects_built_without_a_global_are_still_refused():
    # protocol 4 builds sets and frozensets by opcode, with no class lookup to refuse
    with pytest.raises(DMGANError) as exc:
        safe_unpickle(pickle.dumps([1, {2, 3}], protocol=4))
    assert _message(exc) == "pickle: refused an object of type set"


def test_every_visit_counts_against_the_budget():
    flat = [1, 2, 3]  # four visits: the list and its items
    _check_plain(flat, budget=4)
    with pytest.raises(pickle.UnpicklingError) as exc:
        _check_plain(flat, budget=3)
    assert _message(exc) == ("refused: shared references make this pickle expand far beyond "
                             "its size (a decompression bomb)")
    pair = {"a": 1}  # the dict, its key and its value
    _check_plain(pair, budget=3)
    with pytest.raises(pickle.UnpicklingError):
        _check_plain(pair, budget=2)


def _visits(obj) -> int:
    if isinstance(obj, (list, tuple)):
        return 1 + sum(_visits(x) for x in obj)
    if isinstance(obj, dict):
        return 1 + sum(_visits(k) + _visits(v) for k, v in obj.items())
    return 1


def test_a_pickle_may_expand_to_twice_its_size_plus_1000_visits():
    """A file of N bytes may describe 2N + 1000 visited objects (shared references); one
    more is a decompression bomb. Found by search: a shared inner list repeated."""
    found = {}
    for inner in range(1, 60):
        shared = list(range(inner))
        for outer in range(1, 400):
            for tail in range(3):
                obj = [shared] * outer + [None] * tail
                data = pickle.dumps(obj, protocol=2)
                over = _visits(obj) - (2 * len(data) + 1000)
                if over in (0, 1):
                    found.setdefault(over, data)
        if len(found) == 2:
            break
    assert set(found) == {0, 1}
    assert safe_unpickle(found[0])  # exactly the budget: admitted
    with pytest.raises(DMGANError, match="decompression bomb"):
        safe_unpickle(found[1])


def test_globals_are_refused_by_name_but_python3_bytes_are_read():
    import collections

    with pytest.raises(DMGANError) as exc:
        safe_unpickle(pickle.dumps(collections.OrderedDict(a=1), protocol=2), source="f")
    assert _message(exc) == ("f: refused 'collections.OrderedDict': only lists, tuples, dicts, "
                             "strings, bytes and numbers are admitted")
    assert safe_unpickle(pickle.dumps([b"\xff\x00ab", "\xe9"], protocol=2)) == [b"\xff\x00ab",
                                                                                "\xe9"]


def test_the_size_limit_admits_its_own_size(monkeypatch):
    data = pickle.dumps([1, 2], protocol=2)
    monkeypatch.setattr(vocab_module, "MAX_PICKLE_BYTES", len(data))
    assert safe_unpickle(data) == [1, 2]
    monkeypatch.setattr(vocab_module, "MAX_PICKLE_BYTES", len(data) - 1)
    with pytest.raises(DMGANError) as exc:
        safe_unpickle(data, source="big.pickle")
    assert _message(exc) == (f"big.pickle: refused: {len(data)} bytes is more than a captions "
                             f"file needs ({len(data) - 1} at most)")


def test_a_file_that_is_no_pickle_says_so():
    with pytest.raises(DMGANError) as exc:
        safe_unpickle(b"", source="empty.pickle")
    assert _message(exc) == "empty.pickle is not a readable pickle: EOFError: Ran out of input"
    with pytest.raises(DMGANError) as exc:
        safe_unpickle(b"\x80\x02]q", source="cut.pickle")
    assert _message(exc) == "cut.pickle: pickle data was truncated"


def _write(path, obj) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))  # test data, written here


def test_a_released_captions_pickle_reads_as_its_four_parts(tmp_path):
    path = tmp_path / "captions.pickle"
    ixtoword = {0: b"<end>", 1: b"red", 2: "bird"}  # Python 2 files hold bytes words
    _write(path, [[(1, 2), [2]], ((1,),), ixtoword, {}])
    caps = load_captions_pickle(path)
    assert caps.train == [[1, 2], [2]] and caps.test == [[1]]
    assert all(type(c) is list for c in caps.train + caps.test)
    assert caps.vocab.words == ["<end>", "red", "bird"]


@pytest.mark.parametrize(("obj", "message"), [
    ({"a": 1}, "expected [train_captions, test_captions, ixtoword, wordtoix]"),
    ([[], [], {}], "expected [train_captions, test_captions, ixtoword, wordtoix]"),
    ([[], [], [b"<end>"], {}], "ixtoword must map integers to words"),
    ([[], [], {0: "<end>", "1": "red"}, {}], "ixtoword must map integers to words"),
    ([[], [], {0: "<end>", 2: "red"}, {}], "ixtoword indices are not 0..1"),
    ([[[0]], [], {0: "<end>", 1: "red"}, {}],
     "train captions must be lists of word indices in 1..1"),
    ([[], [[2]], {0: "<end>", 1: "red"}, {}],
     "test captions must be lists of word indices in 1..1"),
    ([[], ["1"], {0: "<end>", 1: "red"}, {}],
     "test captions must be lists of word indices in 1..1"),
    ([[], [[1.0]], {0: "<end>", 1: "red"}, {}],
     "test captions must be lists of word indices in 1..1"),
    ([{}, [], {0: "<end>", 1: "red"}, {}],
     "train captions must be lists of word indices in 1..1"),
])
def test_a_captions_pickle_of_another_layout_is_refused_in_these_words(tmp_path, obj, message):
    path = tmp_path / "captions.pickle"
    _write(path, obj)
    with pytest.raises(DMGANError) as exc:
        load_captions_pickle(path)
    assert _message(exc) == f"{path}: {message}"
    with pytest.raises(DMGANError) as exc:
        load_captions_pickle(tmp_path / "none.pickle")
    assert _message(exc) == f"captions file not found: {tmp_path / 'none.pickle'}"


def test_captions_are_saved_in_the_released_layout(tmp_path):
    path = tmp_path / "captions.pickle"
    save_captions_pickle(path, CaptionsFile([[1, 2]], [[2]], Vocabulary([END_TOKEN, "a", "b"])))
    data = path.read_bytes()
    assert data[:2] == b"\x80\x02"  # protocol 2, as the released code wrote
    assert pickle.loads(data) == [[[1, 2]], [[2]], {0: END_TOKEN, 1: "a", 2: "b"},
                                  {END_TOKEN: 0, "a": 1, "b": 2}]
    assert list(tmp_path.iterdir()) == [path]  # no temporary left beside it


def test_python2_strings_read_as_latin1_words(tmp_path):
    from fixtures import py2_pickle

    path = tmp_path / "captions.pickle"
    path.write_bytes(py2_pickle([[[1, 2]], [], {0: "<end>", 1: "caf\xe9", 2: "na\xefve"}, {}]))
    assert load_captions_pickle(path).vocab.words == ["<end>", "caf\xe9", "na\xefve"]


def test_a_refused_captions_pickle_is_named_by_its_path(tmp_path):
    path = tmp_path / "captions.pickle"
    path.write_bytes(pickle.dumps([[], [], {0: "<end>"}, {1, 2}], protocol=4))
    with pytest.raises(DMGANError) as exc:
        load_captions_pickle(path)
    assert _message(exc) == f"{path}: refused an object of type set"
