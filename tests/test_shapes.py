"""The built-in captioned-shapes dataset and its oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmgan import build_generator, preset
from dmgan.config import DataConfig
from dmgan.data.collate import collate
from dmgan.data.shapes import COLOURS, PAIRS, ShapesDataset, vocabulary
from dmgan.data.vocab import tokenize
from dmgan.metrics.oracle import ShapesOracle, judge, load_oracle, oracle_loss, targets


def test_same_seed_same_samples_other_seed_other_samples():
    a, b = ShapesDataset(length=20, seed=3), ShapesDataset(length=20, seed=3)
    c = ShapesDataset(length=20, seed=4)
    for i in range(20):
        sa, sb = a[i], b[i]
        assert sa.attributes == sb.attributes
        assert all(torch.equal(x, y) for x, y in zip(sa.images, sb.images, strict=True))
    assert [a[i].attributes for i in range(20)] != [c[i].attributes for i in range(20)]
    # splits differ too
    assert [a[i].attributes for i in range(5)] != [
        ShapesDataset(split="test", length=5, seed=3)[i].attributes for i in range(5)]


def test_captions_name_the_attributes_and_fit_the_preset():
    cfg = preset("shapes")
    ds = ShapesDataset(length=400, max_words=cfg.text.words_train)
    vocab = vocabulary()
    assert len(vocab) == cfg.text.vocab_size
    templates = set()
    for i in range(400):
        s = ds[i]
        cap = s.attributes["caption"]
        words = tokenize(cap)
        assert s.length == len(words) <= cfg.text.words_train  # never subsampled
        assert vocab.decode(s.caption[: s.length].tolist()) == " ".join(words)
        for o in s.attributes["objects"]:
            assert o["colour"] in words
        assert s.attributes["background"] in words
        assert s.attributes["background"] not in {o["colour"] for o in s.attributes["objects"]}
        if len(s.attributes["objects"]) == 2:
            pair = tuple(sorted(o["position"] for o in s.attributes["objects"]))
            assert pair in {tuple(sorted(p)) for p in PAIRS}
        templates.add(" ".join(w for w in words[:3]))
    assert len(templates) > 20  # varied word order and synonyms


def test_images_show_the_background_colour():
    s = ShapesDataset(length=1, image_sizes=(16, 32, 64))[0]
    assert [i.shape[-1] for i in s.images] == [16, 32, 64]
    corner = ((s.images[-1][:, 0, 0] + 1) * 127.5).round().tolist()
    from dmgan.data.shapes import COLOURS

    assert corner == list(COLOURS[s.attributes["background"]])


def test_oracle_learns_and_judges():
    torch.manual_seed(0)
    ds = ShapesDataset(length=64, image_sizes=(64,), seed=9)
    batch = collate([ds[i] for i in range(64)])
    oracle = ShapesOracle(width=8)
    opt = torch.optim.Adam(oracle.parameters(), lr=3e-3)
    t = targets(batch.attributes)
    first = oracle_loss(oracle(batch.images[-1]), t).item()
    for _ in range(30):
        loss = oracle_loss(oracle(batch.images[-1]), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first * 0.7
    hits = judge(oracle, batch.images[-1], batch.attributes)
    n_objects = sum(len(a["objects"]) for a in batch.attributes)
    assert all(len(hits[k]) == n_objects for k in ("colour", "shape", "size", "position"))
    assert len(hits["background"]) == 64


def test_bundled_oracle_reads_held_out_images():
    oracle, report = load_oracle()
    acc = report["held_out_accuracy"]
    assert min(acc.values()) > 0.95, acc
    ds = ShapesDataset(split="test", length=100, image_sizes=(16, 32, 64), seed=77)
    batch = collate([ds[i] for i in range(100)])
    hits = judge(oracle, batch.images[-1], batch.attributes)
    assert all(np.mean(v) > 0.9 for v in hits.values()), {k: np.mean(v) for k, v in hits.items()}


def test_shapes_preset_generator_runs_at_16_32_64():
    cfg = preset("shapes")
    g = build_generator(cfg).eval()
    ds = ShapesDataset(length=2, image_sizes=cfg.generator.image_sizes)
    b = collate([ds[0], ds[1]])
    from dmgan.models import build_text_encoder

    te = build_text_encoder(cfg).eval()
    enc = te(b.captions, b.lengths)
    out = g(torch.randn(2, cfg.generator.z_dim), enc.sentence, enc.words, enc.mask)
    assert [i.shape[-1] for i in out.images] == [16, 32, 64]


def test_swap_share_makes_two_object_near_misses_trade_colours_or_places():
    from dmgan.data.shapes import near_miss_scene, traded

    data = ShapesDataset(split="train", length=300, image_sizes=(16,))
    kinds = {"colour": 0, "position": 0}
    by_chance = two = 0
    for i in range(300):
        scene = data.scene(i)[0]
        if len(scene.objects) != 2 or scene.objects[0].colour == scene.objects[1].colour:
            continue
        two += 1
        b = near_miss_scene(scene, np.random.default_rng(i), swap_share=1.0)
        kind = next(k for k in kinds if b == traded(scene, k))
        kinds[kind] += 1
        if kind == "position":  # the objects keep everything but their places
            assert [o.position for o in b.objects] == [o.position for o in scene.objects][::-1]
        else:
            assert [o.colour for o in b.objects] == [o.colour for o in scene.objects][::-1]
            assert [o.shape for o in b.objects] == [o.shape for o in scene.objects]
        c = near_miss_scene(scene, np.random.default_rng(i))
        by_chance += c in (traded(scene, "colour"), traded(scene, "position"))
    assert two > 50 and min(kinds.values()) > two / 4
    assert by_chance < two / 2  # without the share, two kinds of seven
    # the caption of another scene keeps the sample's wording
    scene = data.scene(3)[0]
    assert data.caption_for(3, scene) == data.scene(3)[1]
    with pytest.raises(ValueError, match="swap_share"):
        ShapesDataset(split="train", length=3, options=DataConfig(shapes_swap_share=1.5))


def test_without_jitter_each_caption_has_one_picture():
    """jitter=0: the picture of a scene is the same whatever the sample's draws (its one
    picture, rendered without a generator); the captions, near misses and scenes are those of
    the jittered data, and the pictures differ from them only by where the objects sit."""
    from dmgan.data.shapes import render

    sharp = ShapesDataset(split="train", length=30, image_sizes=(32,), near_misses=True,
                          options=DataConfig(shapes_jitter=0.0))
    jittered = ShapesDataset(split="train", length=30, image_sizes=(32,), near_misses=True)
    moved = 0
    for i in range(30):
        a, b = sharp[i], jittered[i]
        assert a.attributes == b.attributes
        assert torch.equal(a.caption, b.caption) and torch.equal(a.negative, b.negative)
        one = np.asarray(render(sharp.scene(i)[0], 32), dtype=np.float32) / 127.5 - 1
        torch.testing.assert_close(a.images[0], torch.from_numpy(one).permute(2, 0, 1))
        assert torch.equal(a.images[0][:, 0, 0], b.images[0][:, 0, 0])  # the background
        moved += not torch.equal(a.images[0], b.images[0])
    assert moved == 30
    with pytest.raises(ValueError, match="jitter"):
        ShapesDataset(split="train", length=3, options=DataConfig(shapes_jitter=0.5))
    from dmgan.config import ConfigError, override

    assert override(preset("shapes"), ["data.shapes_jitter=0"]).data.shapes_jitter == 0
    with pytest.raises(ConfigError, match="shapes_jitter"):
        override(preset("shapes"), ["data.shapes_jitter=-1"])


def test_near_misses_differ_from_the_caption_when_the_background_is_left_out():
    """A caption without the background phrase never gets the background as its one change
    (that negative would be the true caption)."""
    from dmgan.data.shapes import near_miss_scene

    data = ShapesDataset(split="train", length=200, image_sizes=(16,), near_misses=True,
                         options=DataConfig(shapes_background_phrase=0.0))
    for i in range(200):
        scene, caption, _, named = data.scene(i)
        assert not named
        for k in range(4):
            other = near_miss_scene(scene, np.random.default_rng([i, k]), background=False)
            assert other.background == scene.background
            assert data.caption_for(i, other) != caption
        assert data._draw(i)[4] != caption
    # the config's data section reaches the data the training opens
    from dmgan.config import override, preset
    from dmgan.data.open import open_split

    cfg = override(preset("tiny"), ["data.shapes_background_phrase=0"])
    opened = open_split(cfg, "shapes", "train", seed=0, max_words=30)
    assert opened.background_phrase == 0.0 and opened.near_misses
    assert not any(opened.scene(i)[3] for i in range(20))


def test_an_unnamed_background_can_be_one_colour():
    """`unnamed_background`: a caption that leaves the background out gets a plain one
    (white, or black when an object is white); the captions, and the scenes of the
    captions that name it, stay as they were."""
    from dmgan.data.shapes import plain_background

    kw = dict(split="train", length=120, image_sizes=(16,))
    plain = ShapesDataset(options=DataConfig(shapes_background_phrase=0.5,
                                             shapes_unnamed_background="white"), **kw)
    anyc = ShapesDataset(options=DataConfig(shapes_background_phrase=0.5), **kw)
    unnamed = 0
    for i in range(120):
        (scene, caption, _, named), (other, caption2, _, _) = plain.scene(i), anyc.scene(i)
        assert caption == caption2 and scene.objects == other.objects
        if named:
            assert scene == other
            continue
        unnamed += 1
        colours = {o.colour for o in scene.objects}
        assert scene.background == next(c for c in ("white", "black", "red")
                                         if c not in colours)
        corner = plain[i].images[0][:, 0, 0]  # the corner pixel shows the background
        want = torch.tensor(COLOURS[scene.background], dtype=torch.float32) / 127.5 - 1
        assert torch.allclose(corner, want, atol=0.02)
    assert 30 < unnamed < 90
    two = ShapesDataset(split="train", length=1, image_sizes=(16,)).scene(0)[0]
    assert plain_background(two, "red") in {"red", "white", "black"} - {
        o.colour for o in two.objects}
    with pytest.raises(ValueError, match="unnamed_background"):
        ShapesDataset(split="train", length=3, options=DataConfig(shapes_unnamed_background="pink"))


def test_the_background_phrase_can_open_the_caption():
    """`background_first`: that share of the captions that name the background say it first,
    the rest worded as without it; near-miss captions and `caption_for` follow suit."""
    kw = dict(split="train", length=200, image_sizes=(16,), near_misses=True)
    data = ShapesDataset(options=DataConfig(shapes_background_phrase=0.5,
                                            shapes_background_first=1.0), **kw)
    plain = ShapesDataset(options=DataConfig(shapes_background_phrase=0.5), **kw)
    first = 0
    for i in range(200):
        scene, caption, _, named, negative, _ = data._draw(i)
        other = plain._draw(i)
        assert other[0] == scene
        if not named:
            assert caption == other[1]
            continue
        first += 1
        opening = f"on a {scene.background} background "
        assert caption.replace("on an ", "on a ", 1).startswith(opening)
        assert negative.split()[:2] in (["on", "a"], ["on", "an"]) and negative != caption
        assert data.caption_for(i, scene) == caption
    assert 50 < first < 150
    with pytest.raises(ValueError, match="background_first"):
        ShapesDataset(split="train", length=3, options=DataConfig(shapes_background_first=2.0))


# --- near misses and captions without the background -------------------------------------

def test_near_miss_captions_change_one_thing_and_keep_the_image():
    from dmgan.data.shapes import ShapesDataset, near_miss_scene, sample_scene

    plain = ShapesDataset(length=40, max_words=30, seed=5)
    contrast = ShapesDataset(length=40, max_words=30, seed=5, near_misses=True)
    for i in range(40):
        a, b = plain[i], contrast[i]
        assert torch.equal(a.images[-1], b.images[-1]) and torch.equal(a.caption, b.caption)
        assert plain[i].negative is None and b.negative is not None
        neg = b.negative[: b.negative_length].tolist()
        assert neg != b.caption[: b.length].tolist()
        # worded like the caption: all but a few words shared, in order
        import difflib

        match = difflib.SequenceMatcher(a=b.caption[: b.length].tolist(), b=neg)
        assert sum(m.size for m in match.get_matching_blocks()) >= b.length // 2
    import numpy as np

    rng = np.random.default_rng(0)
    for _ in range(200):
        scene = sample_scene(rng)
        other = near_miss_scene(scene, rng)
        assert other != scene
        assert other.background not in {o.colour for o in other.objects}
    batch = collate_of(contrast, 4)
    assert batch.negatives.shape == (4, 30) and batch.negative_lengths.shape == (4,)


def collate_of(dataset, n):
    from dmgan.data.collate import collate

    return collate([dataset[i] for i in range(n)])


def test_captions_without_a_background_phrase_are_not_judged_on_it():
    from dmgan.config import DataConfig
    from dmgan.data.shapes import ShapesDataset
    from dmgan.metrics.oracle import judge, load_oracle
    from dmgan.metrics.shapes import caption_hits

    data = ShapesDataset(split="test", length=30, image_sizes=(64,), max_words=30,
                         options=DataConfig(shapes_background_phrase=0.0))
    batch = collate_of(data, 30)
    assert all(not a["background_named"] for a in batch.attributes)
    assert all("background" not in a["caption"] and " against " not in a["caption"]
               for a in batch.attributes)
    hits = judge(load_oracle()[0], batch.images[-1], batch.attributes)
    assert hits["background"] == [] and len(hits["colour"]) >= 30
    assert all(caption_hits(hits, batch.attributes))  # real images: everything else right
    half = ShapesDataset(length=400, options=DataConfig(shapes_background_phrase=0.5))
    named = [half.scene(i)[3] for i in range(400)]
    assert 120 < sum(named) < 280


# --- a world that speaks like people ------------------------------------------------------

def _place_words(caption: str) -> set[str]:
    from dmgan.data.shapes import PLACE_WORDS

    return PLACE_WORDS & set(caption.split())


def test_partial_captions_say_what_they_say_and_leave_the_rest_to_chance():
    """data.shapes_partial_share: that share of the captions leaves out each object's size,
    colour and place at random (its shape it always says); the picture still has them all,
    drawn as the world draws them. At 0 the data is as it was."""
    from dmgan.data.shapes import _SYN, PARTS

    world = DataConfig(shapes_partial_share=1.0)
    data = ShapesDataset(length=300, image_sizes=(16,), options=world)
    said_counts = {p: 0 for p in PARTS}
    ones = 0
    for i in range(300):
        a = data[i].attributes
        assert len(a["said"]) == len(a["objects"])
        if len(a["objects"]) != 1:
            continue
        ones += 1
        o, said, words = a["objects"][0], set(a["said"][0]), a["caption"].split()
        for p in said:
            said_counts[p] += 1
        assert (o["colour"] in words) == ("colour" in said)
        assert any(s in a["caption"] for s in _SYN[o["shape"]])  # the noun, always
        size_words = {w for syn in _SYN[o["size"]] for w in syn.split()}
        assert bool(size_words & set(words)) == ("size" in said)
        assert bool(_place_words(a["caption"])) == ("position" in said)
    assert ones > 100 and all(ones * 0.35 < n < ones * 0.65 for n in said_counts.values())
    plain, default = ShapesDataset(length=50, image_sizes=(16,)), ShapesDataset(
        length=50, image_sizes=(16,), options=DataConfig(shapes_partial_share=0.0))
    assert [plain.scene(i)[1] for i in range(50)] == [default.scene(i)[1] for i in range(50)]
    assert all(plain[i].attributes["said"] == [list(sorted(PARTS))] * len(plain.scene(i)[0].objects)
               for i in range(10))


def test_two_objects_of_one_shape_can_be_counted():
    """data.shapes_plural_share: "two red squares": two objects of one shape said together,
    with what they share; a near miss of such a caption reads otherwise."""
    world = DataConfig(shapes_partial_share=1.0, shapes_plural_share=1.0)
    data = ShapesDataset(length=400, image_sizes=(16,), options=world, near_misses=True)
    counted = 0
    for i in range(400):
        a = data[i].attributes
        if not a["plural"]:
            continue
        counted += 1
        first, second = a["objects"]
        assert first["shape"] == second["shape"] and a["said"][0] == a["said"][1]
        assert "two" in a["caption"].split()
        for p in set(a["said"][0]) - {"position"}:
            assert first[p] == second[p]
        assert data._draw(i)[4] != a["caption"]
    assert counted > 20


def test_held_out_pairs_never_train_and_have_their_own_report_set():
    """data.shapes_held_out: a fixed quarter of the colour-shape pairs (8 of 32) and of the
    shape-place pairs (5 of 20) is in no training picture nor near-miss caption; the test
    split keeps every pair, and combinations="held_out" gives the report's own rows."""
    from dmgan.data.shapes import (
        COLOUR_NAMES,
        HELD_OUT_COLOUR_SHAPE,
        HELD_OUT_SHAPE_PLACE,
        POSITIONS,
        SHAPES,
        held_out,
    )

    assert len(HELD_OUT_COLOUR_SHAPE) * 4 == len(COLOUR_NAMES) * len(SHAPES)
    assert len(HELD_OUT_SHAPE_PLACE) * 4 == len(SHAPES) * len(POSITIONS)
    world = DataConfig(shapes_held_out=True)
    train = ShapesDataset(length=500, image_sizes=(16,), options=world, near_misses=True)
    assert not any(held_out(train.scene(i)[0]) for i in range(500))
    test = ShapesDataset(split="test", length=300, image_sizes=(16,), options=world)
    assert 0 < sum(held_out(test.scene(i)[0]) for i in range(300)) < 300
    rows = ShapesDataset(split="test", length=100, image_sizes=(16,), options=world,
                         combinations="held_out")
    assert all(held_out(rows.scene(i)[0]) for i in range(100))
    with pytest.raises(ValueError, match="combinations"):
        ShapesDataset(length=3, combinations="some")


def test_a_model_of_partial_captions_needs_no_place():
    from dmgan.config import override
    from dmgan.data.shapes import caption_needs

    cfg = preset("shapes")
    assert [n["part"] for n in caption_needs(cfg)] == ["place"]
    partial = override(cfg, ["data.shapes_partial_share=0.5"])
    assert caption_needs(partial) == []


def test_another_picture_of_a_caption_keeps_what_it_says_and_draws_the_rest_again():
    """redraw_free (the compositional report's real pictures of a caption): every shape and
    every said part kept, the free ones drawn again in the world's proportions (colours
    never the background's, two objects' places a pair)."""
    from dmgan.data.shapes import PARTS, redraw_free

    data = ShapesDataset(length=200, image_sizes=(16,),
                         options=DataConfig(shapes_partial_share=1.0))
    rng = np.random.default_rng(0)
    changed = {p: 0 for p in PARTS}
    free_colours = []
    for i in range(200):
        scene, said = data.scene(i)[0], data[i].attributes["said"]
        other = redraw_free(scene, said, rng)
        assert other.background == scene.background
        for o, n, parts in zip(scene.objects, other.objects, said, strict=True):
            assert n.shape == o.shape and n.colour != scene.background
            for p in parts:
                assert getattr(n, p) == getattr(o, p)
            for p in set(PARTS) - set(parts):
                changed[p] += getattr(n, p) != getattr(o, p)
                if p == "colour":
                    free_colours.append(n.colour)
        if len(other.objects) == 2:
            assert {o.position for o in other.objects} in ({"left", "right"}, {"top", "bottom"})
    # a free size changes half the time, a free colour 6 times in 7, a free place often
    assert all(n > 30 for n in changed.values()), changed
    assert len(set(free_colours)) == len(COLOURS)
    every = tuple(PARTS for _ in data.scene(0)[0].objects)  # a caption that says it all
    assert redraw_free(data.scene(0)[0], every, rng) == data.scene(0)[0]
