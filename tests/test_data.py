"""Tokenizer, vocabulary, safe pickles, and the CUB / COCO / custom layouts."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from fixtures import make_coco, make_cub, py2_pickle
from PIL import Image
from torch.utils.data import DataLoader

from dmgan import DMGANError
from dmgan.data.collate import collate
from dmgan.data.datasets import (
    DataError,
    custom_split,
    load_cub,
    open_dataset,
    read_caption_file,
)
from dmgan.data.transforms import crop_box, fit_caption, stage_images
from dmgan.data.vocab import (
    CaptionError,
    Vocabulary,
    load_captions_pickle,
    safe_unpickle,
    tokenize,
)


def test_tokenize_as_released():
    assert tokenize("A Bird, with a RED crown!") == ["a", "bird", "with", "a", "red", "crown"]
    assert tokenize("café\ufffd\ufffdcolour 3rd") == ["caf", "colour", "3rd"]
    assert tokenize("日本 ok") == ["ok"]


def test_vocabulary_order_encode_and_json(tmp_path):
    v = Vocabulary.build([["a", "red", "bird"], ["a", "blue", "bird"]])
    assert v.words == ["<end>", "a", "red", "bird", "blue"]
    enc = v.encode("A red zebra-bird")
    assert enc.ids == [1, 2, 3] and enc.unknown == ["zebra"]
    with pytest.raises(CaptionError, match="zebra"):
        v.encode("zebra giraffe")
    with pytest.raises(CaptionError, match="no words"):
        v.encode(" ,. ")
    v.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json") == v


def test_py2_captions_pickle_loads(tmp_path):
    ixtoword = {0: "<end>", 1: "a", 2: "bird"}
    data = py2_pickle([[[1, 2]], [[2]], ixtoword, {v: k for k, v in ixtoword.items()}])
    (tmp_path / "captions.pickle").write_bytes(data)
    caps = load_captions_pickle(tmp_path / "captions.pickle")
    assert caps.train == [[1, 2]] and caps.test == [[2]] and caps.vocab.words == ["<end>", "a", "bird"]


@pytest.mark.parametrize("payload", [
    b"cos\nsystem\n(S'touch PWNED'\ntR.",  # protocol 0 GLOBAL + REDUCE
    pickle.dumps(__import__("collections").OrderedDict(a=1), protocol=2),
    b"\x80\x02cbuiltins\neval\nq\x00X\x0b\x00\x00\x00open('x','w')q\x01\x85q\x02Rq\x03.",
])
def test_malicious_pickles_are_refused_and_run_nothing(tmp_path, payload, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DMGANError, match="refused"):
        safe_unpickle(payload, source="captions.pickle")
    assert list(tmp_path.iterdir()) == []
    assert safe_unpickle(pickle.dumps([b"x", ("y", 1.5), {"k": None}], protocol=2)) == [
        b"x", ("y", 1.5), {"k": None}]


def test_crop_geometry_on_a_known_box():
    # box x=10.9, y=20.2, w=40.7, h=30 (floats truncate first) in a 100 x 80 image
    assert crop_box((10.9, 20.2, 40.7, 30.0), 100, 80) == (0, 5, 60, 65)
    # r = int(40 * 0.75) = 30, centre (30, 35) -> clipped at the left edge
    assert crop_box((10, 20, 40, 30), 50, 50) == (0, 5, 50, 50)


def test_fit_caption_pads_and_subsamples_in_order():
    rng = np.random.default_rng(0)
    ids, n = fit_caption([5, 6, 7], 5, rng)
    assert ids.tolist() == [5, 6, 7, 0, 0] and n == 3
    long = list(range(1, 31))
    ids, n = fit_caption(long, 18, rng)
    assert n == 18 and len(set(ids.tolist())) == 18 and ids.tolist() == sorted(ids.tolist())


def test_stage_images_sizes_and_range():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 130, 3), dtype=np.uint8))
    out = stage_images(img, (16, 32, 64), np.random.default_rng(1), augment=True)
    assert [tuple(o.shape) for o in out] == [(3, 16, 16), (3, 32, 32), (3, 64, 64)]
    assert all(o.min() >= -1 and o.max() <= 1 for o in out)


def test_cub_layout(tmp_path):
    birds = make_cub(tmp_path)
    records, vocab = load_cub(birds, "train")
    assert len(records) == 3 and (birds / "captions.pickle").exists()  # built and cached
    assert [r.class_id for r in records] == [1, 1, 2]
    assert records[0].bbox == (11.5, 8.25, 60.75, 41.0)
    assert all(len(r.captions) == 10 for r in records)
    assert "caf" in vocab.index and "" not in vocab.index
    again, vocab2 = load_cub(birds, "train")  # from the cached pickle
    assert vocab2 == vocab and [r.captions for r in again] == [r.captions for r in records]

    ds = open_dataset(birds, "train", image_sizes=(64, 128, 256), max_words=18)
    s = ds[1]  # a greyscale image
    assert [tuple(i.shape) for i in s.images] == [(3, 64, 64), (3, 128, 128), (3, 256, 256)]
    assert 1 <= s.length <= 18 and s.caption.shape == (18,)
    assert torch.equal(ds[1].images[0], s.images[0])  # same (seed, epoch, index): same sample
    ds.set_epoch(1)
    loader = DataLoader(ds, batch_size=2, collate_fn=collate, num_workers=2)
    batch = next(iter(loader))
    assert batch.images[2].shape == (2, 3, 256, 256) and batch.captions.shape == (2, 18)
    assert batch.class_ids.tolist() == [1, 1]


def test_cub_without_class_info_and_with_bad_files(tmp_path):
    birds = make_cub(tmp_path, with_class_info=False)
    records, _ = load_cub(birds, "test")
    assert [r.class_id for r in records] == [0, 1]
    # a filenames list naming a missing image
    (birds / "CUB_200_2011" / "images" / f"{records[0].key}.jpg").unlink()
    with pytest.raises(DataError, match="image not found.*jpg"):
        load_cub(birds, "test")
    with pytest.warns(UserWarning, match="skipped 1 of 2"):
        kept, _ = load_cub(birds, "test", skip_bad=True)
    assert len(kept) == 1


def test_too_few_captions_names_the_file(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("one bird\n\n two birds\n")
    with pytest.raises(DataError, match=r"x\.txt has 2 captions, 10 expected"):
        read_caption_file(p, 10)


def test_corrupt_image_names_the_file(tmp_path):
    birds = make_cub(tmp_path)
    records, _ = load_cub(birds, "train")
    records[0].image.write_bytes(b"\xff\xd8\xff not really a jpeg")
    ds = open_dataset(birds, "train", image_sizes=(64,), max_words=18)
    with pytest.raises(DMGANError, match="cannot decode image .*jpg"):
        ds[0]
    ds_skip = open_dataset(birds, "train", image_sizes=(64,), max_words=18, skip_bad=True)
    with pytest.warns(UserWarning, match="skipped sample"):
        assert ds_skip[0].key == records[1].key


def test_coco_layout(tmp_path):
    coco = make_coco(tmp_path)
    ds = open_dataset(coco, "test", image_sizes=(32, 64), max_words=12)
    assert len(ds) == 2 and ds[0].images[1].shape == (3, 64, 64)
    assert not ds.augment
    assert ds.records[0].key == "COCO_val2014_000000000000"


def test_custom_jsonl_and_txt(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(root / f"{i}.png")
        entry = {"image": f"{i}.png", "captions": [f"a photo number {i}", "something red"]}
        if i == 0:
            entry = {"image": "0.png", "caption": "only one", "split": "test", "class": 7}
        lines.append(json.dumps(entry))
    (root / "captions.jsonl").write_text("\n".join(lines))
    test = open_dataset(root, "test", image_sizes=(32,), max_words=8)
    train = open_dataset(root, "train", image_sizes=(32,), max_words=8)
    assert len(test) + len(train) == 12
    expected_test = {"0.png"} | {f"{i}.png" for i in range(1, 12) if custom_split(f"{i}.png") == "test"}
    assert {r.key for r in test.records} == expected_test
    assert test.records[0].class_id == 7
    assert train.vocab == test.vocab and "photo" in train.vocab.index

    (root / "captions.jsonl").unlink()
    (root / "3.txt").write_text("a green square\n")
    (root / "sub").mkdir()
    Image.new("RGBA", (30, 30)).save(root / "sub" / "x.png")
    (root / "sub" / "x.txt").write_text("an empty square\n")
    every = [r.key for s in ("train", "test") for r in open_dataset(
        root, s, image_sizes=(16,), max_words=8).records]
    assert sorted(every) == ["3.png", "sub/x.png"]


def test_custom_bad_jsonl_line(tmp_path):
    (tmp_path / "captions.jsonl").write_text('{"image": "a.png", "captions": ["x"]}\nnot json\n')
    with pytest.raises(DataError, match=r"captions\.jsonl:2: not JSON"):
        open_dataset(tmp_path, "train", image_sizes=(16,), max_words=8)


def test_processes_take_disjoint_shards_that_cover_the_epoch():
    """What each training process reads (dmgan.data.loader.epoch_batches): disjoint shards of
    the same seeded permutation, together every sample of the full batches once, each epoch
    another order."""
    from dmgan.data.loader import epoch_batches

    n, batch, world = 103, 4, 3
    for epoch in (0, 1):
        shards = [[i for b in epoch_batches(n, batch, epoch, 5, rank, world) for i in b]
                  for rank in range(world)]
        assert all(len(s) == len(shards[0]) for s in shards)
        flat = [i for s in shards for i in s]
        assert len(flat) == len(set(flat)) == (n // (batch * world)) * batch * world
        assert all(len(b) == batch for r in range(world)
                   for b in epoch_batches(n, batch, epoch, 5, r, world))
    first = epoch_batches(n, batch, 0, 5, 0, world)
    assert first != epoch_batches(n, batch, 1, 5, 0, world)
    assert first == epoch_batches(n, batch, 0, 5, 0, world)  # the seed fixes it


def test_a_pickle_bomb_of_shared_references_is_refused_at_once(tmp_path):
    """A few hundred bytes whose shared references describe 30**15 objects ("billion laughs")."""
    import pickle
    import time

    from dmgan.data.vocab import load_captions_pickle

    bomb = ["lol"]
    for _ in range(15):
        bomb = [bomb] * 30
    path = tmp_path / "captions.pickle"
    path.write_bytes(pickle.dumps([bomb, [], {0: "<end>"}, {}], protocol=2))
    start = time.perf_counter()
    with pytest.raises(DMGANError, match="decompression bomb"):
        load_captions_pickle(path)
    assert time.perf_counter() - start < 5
    # an honest file with shared references (repeated words) still loads
    words = {0: "<end>", 1: "bird", 2: "red"}
    path.write_bytes(pickle.dumps([[[1, 2]] * 50, [[2, 1]], words, {v: k for k, v in words.items()}],
                                  protocol=2))
    assert load_captions_pickle(path).vocab.words == ["<end>", "bird", "red"]


@pytest.mark.parametrize("box, needle", [
    ("nan 8 60 40", "finite numbers"), ("inf 8 60 40", "finite numbers"),
    ("10 8 0 40", "positive width"), ("10 8 60 -3", "positive width"),
    ("5000 4000 60 40", "lies outside"),
])
def test_bad_bounding_boxes_are_clear_errors(tmp_path, box, needle):
    birds = make_cub(tmp_path)
    path = birds / "CUB_200_2011" / "bounding_boxes.txt"
    lines = path.read_text().splitlines()
    lines[0] = "1 " + box
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DMGANError, match=needle):
        data = open_dataset(birds, "train", image_sizes=(64,), max_words=18)
        data[0]


def test_bad_boxes_and_huge_images_are_skipped_under_skip_bad(tmp_path):
    from dmgan.data.datasets import load_cub

    birds = make_cub(tmp_path)
    path = birds / "CUB_200_2011" / "bounding_boxes.txt"
    lines = path.read_text().splitlines()
    lines[0] = "1 nan 8 60 40"
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="skipped 1 of 3"):
        records, _ = load_cub(birds, "train", skip_bad=True)
    assert len(records) == 2
    # an image over the pixel limit: the sample is skipped, the next one served
    from PIL import Image

    from dmgan import imageio

    Image.new("RGB", (300, 300)).save(records[0].image)  # 90,000 pixels, the others ~12,000
    data = open_dataset(birds, "train", image_sizes=(64,), max_words=18, skip_bad=True)
    old = imageio.MAX_PIXELS
    try:
        imageio.MAX_PIXELS = 50_000  # the limit is a setting of dmgan.imageio
        with pytest.warns(UserWarning, match="refused image"):
            sample = data[0]
        assert sample.key == records[1].key
    finally:
        imageio.MAX_PIXELS = old


def test_damsm_data_smaller_than_a_batch_is_refused(tmp_path):
    import dataclasses

    from dmgan import preset
    from dmgan.data.datasets import load_cub
    from dmgan.train.damsm import pretrain_damsm

    birds = make_cub(tmp_path)
    _, vocab = load_cub(birds, "train")
    cfg = preset("tiny")
    cfg = cfg.replace(text=dataclasses.replace(cfg.text, vocab_size=len(vocab),
                                               captions_per_image=10),
                      damsm=dataclasses.replace(cfg.damsm, batch_size=8))
    with pytest.raises(DMGANError, match="cannot fill one DAMSM batch of 8"):
        pretrain_damsm(cfg, data=str(birds), out=tmp_path / "d", max_steps=2)


def test_the_run_long_loader_follows_the_epoch_in_persistent_workers():
    """One DataLoader for a run: its worker outlives the epoch, and every sample it gives
    is the one the dataset gives for that epoch (near-miss captions are drawn per epoch)."""
    from dmgan.data.loader import epoch_batches, epoch_loader
    from dmgan.data.shapes import ShapesDataset

    def fresh():
        return ShapesDataset(length=24, near_misses=True, image_sizes=(16,), cache_images=True)

    order, loader = epoch_loader(fresh(), 8, seed=3, workers=1)
    assert loader.persistent_workers
    direct = fresh()
    for epoch, first in ((0, 1), (1, 0), (2, 2)):
        order.start(epoch, first)
        got = list(loader)
        expect = epoch_batches(24, 8, epoch, 3)[first:]
        assert len(got) == len(expect)
        direct.set_epoch(epoch)
        for batch, idx in zip(got, expect, strict=True):
            want = [direct[i] for i in idx]
            assert batch.keys == [w.key for w in want]
            for k, w in enumerate(want):
                n = w.negative_length
                assert torch.equal(batch.negatives[k][:n], w.negative[:n])
                assert torch.equal(batch.images[0][k], w.images[0])


def test_shapes_cache_gives_the_same_images_and_stops_at_its_budget(monkeypatch):
    from dmgan.data import shapes

    plain = shapes.ShapesDataset(length=10, image_sizes=(16, 32))
    cached = shapes.ShapesDataset(length=10, image_sizes=(16, 32), cache_images=True)
    monkeypatch.setattr(shapes, "CACHE_BYTES", 3 * (16 * 16 + 32 * 32) * 3)
    for _ in range(2):  # drawn, then read back
        for i in range(10):
            assert all(torch.equal(a, b) for a, b in zip(plain[i].images, cached[i].images, strict=True))
    assert len(cached._cache) == 3


def test_every_seed_a_command_takes_orders_the_data(tmp_path):
    """One seed rule for every command: --seed takes any integer (reduced modulo 2**32), and
    the data order of the largest one fits the generator (pretrain-damsm --seed -1 used to
    end in an overflow)."""
    import argparse

    from fixtures import run_cli

    from dmgan.arguments import SEED
    from dmgan.data.loader import epoch_batches

    assert [SEED(x) for x in ("0", "-1", str(2**32), str(2**32 + 5), "-4294967296")] == [
        0, 2**32 - 1, 0, 5, 0]
    with pytest.raises(argparse.ArgumentTypeError) as exc:
        SEED("1.5")
    assert str(exc.value) == "'1.5' is not an integer"
    assert epoch_batches(20, 4, 3, (2**32 - 1) * 7919) != epoch_batches(20, 4, 3, 5)
    assert epoch_batches(20, 4, 3, 5) == epoch_batches(20, 4, 3, 5)
    res = run_cli("pretrain-damsm", "--preset", "tiny", "--data", "shapes", "--out",
                  str(tmp_path / "d"), "--seed", "-1", "--max-steps", "1", "--workers", "0",
                  "--device", "cpu")
    assert res.returncode == 0, res.stderr[-1500:]


def test_the_batch_sampler_hands_out_an_epochs_batches_from_where_it_starts():
    """EpochBatches: epoch 0 from its first batch until start() says otherwise; start(epoch,
    first) skips the batches a resumed run already took (its length too); the shard is this
    process's. EpochIndexed tells the dataset a new epoch once, and only a dataset that
    keeps one."""
    from dmgan.data.loader import EpochBatches, EpochIndexed, epoch_batches, epoch_loader

    order = EpochBatches(40, 4, seed=7)
    want = epoch_batches(40, 4, 0, 7)
    assert (order.rank, order.world) == (0, 1) and order.per_epoch == len(want) == 10
    assert list(order) == [[(0, i) for i in b] for b in want] and len(order) == 10
    order.start(2, 3)
    want = epoch_batches(40, 4, 2, 7)
    assert list(order) == [[(2, i) for i in b] for b in want[3:]] and len(order) == 7
    order.start(2)
    assert len(order) == 10
    shard = EpochBatches(40, 4, seed=7, rank=1, world=2)
    assert list(shard)[0] == [(0, i) for i in epoch_batches(40, 4, 0, 7, 1, 2)[0]]
    shard.start(3)
    assert [[i for _, i in b] for b in shard] == epoch_batches(40, 4, 3, 7, 1, 2)

    class Kept:
        epoch, told = 0, []

        def __len__(self):
            return 5

        def set_epoch(self, epoch):
            self.told.append(epoch)
            self.epoch = epoch

        def __getitem__(self, i):
            return (self.epoch, i)

    kept = EpochIndexed(Kept())
    assert [kept[(0, 1)], kept[(4, 2)], kept[(4, 3)], kept[(1, 0)]] == [
        (0, 1), (4, 2), (4, 3), (1, 0)]
    assert kept.dataset.told == [4, 1] and len(kept) == 5

    class Plain:
        def __getitem__(self, i):
            return i

        def set_epoch(self, epoch):
            raise AssertionError("a dataset without an epoch is never told one")

    assert EpochIndexed(Plain())[(3, 9)] == 9
    sampler, loader = epoch_loader(list(range(12)), 4, seed=1)
    assert (loader.num_workers, loader.pin_memory, sampler.rank, sampler.world) == (0, False, 0, 1)
    sampler, loader = epoch_loader(list(range(12)), 2, seed=1, rank=1, world=3, pin_memory=True)
    assert (sampler.rank, sampler.world, loader.pin_memory) == (1, 3, True)


def test_a_seeds_data_order_is_the_same_in_every_version():
    """The order a seed gives is recorded here: a run resumed by a later dmgan, or rerun to
    check a result, reads its data in the order it did (the order torch 2.x's randperm
    draws from the seed's generator)."""
    from dmgan.data.loader import epoch_batches

    assert epoch_batches(10, 2, 1, 3) == [[1, 9], [5, 6], [4, 3], [8, 0], [2, 7]]
    assert epoch_batches(10, 2, 0, 2**60) == [[4, 1], [7, 5], [3, 9], [0, 8], [6, 2]]
    assert epoch_batches(10, 5, 2, (2**32 - 1) * 1000) == [[2, 1, 8, 9, 7], [4, 3, 0, 5, 6]]
    assert epoch_batches(1, 1, 0, 0) == [[0]]  # one sample fills one batch of one
    with pytest.raises(DMGANError) as exc:
        epoch_batches(7, 4, 0, 0, world=2)
    assert str(exc.value) == "7 samples cannot fill one batch of 4 x 2 processes"
