"""The built-in captioned-shapes dataset and its oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmgan import build_generator, preset
from dmgan.data.collate import collate
from dmgan.data.oracle import ShapesOracle, judge, load_oracle, oracle_loss, targets
from dmgan.data.shapes import PAIRS, ShapesDataset, vocabulary
from dmgan.data.vocab import tokenize


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


def test_swap_share_makes_two_object_contrasts_trade_colours_or_places():
    from dmgan.data.shapes import contrast_scene, traded

    data = ShapesDataset(split="train", length=300, image_sizes=(16,))
    kinds = {"colour": 0, "position": 0}
    by_chance = two = 0
    for i in range(300):
        scene = data.scene(i)[0]
        if len(scene.objects) != 2 or scene.objects[0].colour == scene.objects[1].colour:
            continue
        two += 1
        b = contrast_scene(scene, np.random.default_rng(i), swap_share=1.0)
        kind = next(k for k in kinds if b == traded(scene, k))
        kinds[kind] += 1
        if kind == "position":  # the objects keep everything but their places
            assert [o.position for o in b.objects] == [o.position for o in scene.objects][::-1]
        else:
            assert [o.colour for o in b.objects] == [o.colour for o in scene.objects][::-1]
            assert [o.shape for o in b.objects] == [o.shape for o in scene.objects]
        c = contrast_scene(scene, np.random.default_rng(i))
        by_chance += c in (traded(scene, "colour"), traded(scene, "position"))
    assert two > 50 and min(kinds.values()) > two / 4
    assert by_chance < two / 2  # without the share, two kinds of seven
    # the caption of another scene keeps the sample's wording
    scene = data.scene(3)[0]
    assert data.caption_for(3, scene) == data.scene(3)[1]
    with pytest.raises(ValueError, match="swap_share"):
        ShapesDataset(split="train", length=3, swap_share=1.5)
