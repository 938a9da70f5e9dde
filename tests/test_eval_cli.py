"""`dmgan eval` end to end on tiny folders, with locally made weight files."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import SMALL, formula_state_dict
from fixtures import run_cli
from PIL import Image

from dmgan import DMGAN, preset
from dmgan.data.vocab import Vocabulary
from dmgan.nn import InceptionV3


def _dmgan(*args, cwd=None):
    return run_cli(*args, cwd=cwd)  # in-process: no interpreter start per call


def _folder(path, n, seed, size=48):
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path / f"{i}.png")
    return path


@pytest.fixture(scope="module")
def fid_weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(InceptionV3(variant="fid").state_dict(), path)
    return path


@pytest.mark.slow  # a whole run (README quick tests leave it out)
def test_fid_and_is_with_real_folder_and_cache(tmp_path, fid_weights):
    gen, real = _folder(tmp_path / "gen", 6, 1), _folder(tmp_path / "real", 6, 2)
    cache, out = tmp_path / "cache", tmp_path / "metrics.jsonl"
    args = ["eval", "--images", str(gen), "--real", str(real), "--inception-weights",
            str(fid_weights), "--splits", "2", "--batch-size", "4", "--cache-dir", str(cache),
            "--out", str(out)]
    res = _dmgan(*args)
    assert res.returncode == 0, res.stderr
    assert "fid" in res.stdout and "inception_score" in res.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["metric"] for r in rows] == ["fid", "inception_score"]
    assert all(r["mode"] == "pytorch-fid" and r["num_images"] == 6 for r in rows)
    assert len(list(cache.iterdir())) == 1
    res2 = _dmgan(*args)  # cached real statistics, results appended
    assert res2.returncode == 0 and len(out.read_text().splitlines()) == 4
    assert json.loads(out.read_text().splitlines()[2])["value"] == pytest.approx(rows[0]["value"])

    same = _dmgan("eval", "--images", str(gen), "--real", str(gen), "--inception-weights",
                  str(fid_weights), "--metrics", "fid", "--cache-dir", str(cache))
    assert same.returncode == 0
    assert abs(float(same.stdout.splitlines()[1].split()[1])) < 1e-3


def test_missing_weights_and_bad_folder(tmp_path, fid_weights):
    gen = _folder(tmp_path / "gen", 2, 1)
    res = _dmgan("eval", "--images", str(gen), "--metrics", "is", "--inception-weights",
                 str(tmp_path / "none.pth"))
    assert res.returncode == 2 and "pt_inception-2015-12-05" in res.stderr
    assert "Traceback" not in res.stderr
    res = _dmgan("eval", "--images", str(tmp_path / "nowhere"), "--metrics", "is")
    assert res.returncode == 2 and "not found" in res.stderr
    # a broken image among good ones, with weights that load: the image is what is refused
    (gen / "broken.png").write_bytes(b"\x89PNG broken")
    res = _dmgan("eval", "--images", str(gen), "--metrics", "is", "--inception-weights",
                 str(fid_weights))
    assert res.returncode == 2 and "broken.png" in res.stderr and "Traceback" not in res.stderr


def test_r_precision_on_a_folder(tmp_path):
    """A case whose answer is known: an image encoder whose code is one constant vector (its
    last layer's weights zero) and two classes, each with one caption. Every image's
    negatives are the other class's caption, so an image hits exactly when its class's
    caption is the nearer of the two to that vector: one class always, the other never,
    R-precision 0.5 in every fold; with the released off-by-one slice, 2 or 1 of 3."""
    cfg = preset("small")
    gen = _folder(tmp_path / "gen", 12, 3, size=32)
    vocab = Vocabulary(["<end>"] + [f"w{i}" for i in range(1, cfg.text.vocab_size)])
    vocab.save(tmp_path / "vocab.json")
    captions = ["w1 w2 w3", "w7 w8 w9"]
    lines = [json.dumps({"image": f"{i}.png", "caption": captions[i % 2], "class": i % 2})
             for i in range(12)]
    (tmp_path / "captions.jsonl").write_text("\n".join(lines))
    shapes = json.loads((SMALL / "inception_state_dict_shapes.json").read_text())
    torch.manual_seed(0)
    enc = formula_state_dict(shapes["damsm_image_encoder_nef32"])
    enc["emb_cnn_code.weight"] = torch.zeros_like(enc["emb_cnn_code.weight"])
    enc["emb_cnn_code.bias"] = torch.randn_like(enc["emb_cnn_code.bias"])
    torch.save(enc, tmp_path / "image_encoder.pth")

    def run(*extra):
        res = _dmgan("eval", "--images", str(gen), "--metrics", "r_precision", "--preset",
                     "small", "--captions", str(tmp_path / "captions.jsonl"), "--vocab",
                     str(tmp_path / "vocab.json"), "--text-encoder",
                     str(SMALL / "text_encoder.pth"), "--image-encoder",
                     str(tmp_path / "image_encoder.pth"), "--folds", "3", *extra,
                     "--out", str(tmp_path / "r.jsonl"))
        assert res.returncode == 0, res.stderr
        row = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[-1])
        assert row["metric"] == "r_precision"
        return row["value"], row["std"]

    assert run() == (0.5, 0.0)
    # folds of 4 images (classes 0 1 0 1) with the last dropped: 2 of 3 hit when class 0 is
    # the nearer, 1 of 3 when class 1 is
    value, std = run("--legacy-off-by-one")
    assert std == 0.0 and min(abs(value - 2 / 3), abs(value - 1 / 3)) < 1e-12


def test_checkpoint_plus_dataset(tmp_path, fid_weights):
    from dmgan.data.datasets import open_dataset

    root = tmp_path / "mine"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / f"{i}.png")
        (root / f"{i}.txt").write_text(f"a photo of thing {i}\n")
    vocab = open_dataset(root, "test", image_sizes=(64,), max_words=8).vocab
    base = preset("small")
    cfg = base.replace(text=dataclasses.replace(base.text, vocab_size=len(vocab)))
    DMGAN(cfg).save(tmp_path / "model.pt")
    res = _dmgan("eval", "--checkpoint", str(tmp_path / "model.pt"), "--data", str(root),
                 "--metrics", "is", "--splits", "1", "--inception-weights", str(fid_weights),
                 "--save-images", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    made = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert made and Image.open(tmp_path / "out" / made[0]).size == (256, 256)
    assert (tmp_path / "out" / "captions.jsonl").is_file()


def test_generated_images_with_their_captions_are_a_dataset_folder(tmp_path):
    """One captions.jsonl schema: what eval --save-images writes opens as a custom dataset,
    and a dataset's captions.jsonl ("captions": a list) reads as an eval captions file."""
    from dmgan.data.datasets import open_dataset
    from dmgan.metrics.registry import read_captions_jsonl
    from dmgan.pipeline import bundled_model_path

    folder = tmp_path / "gen"
    res = _dmgan("eval", "--checkpoint", str(bundled_model_path()), "--data", "shapes",
                 "--num-images", "10", "--save-images", str(folder))
    assert res.returncode == 0, res.stderr
    data = open_dataset(folder, "train", image_sizes=(64,), max_words=30)
    test = open_dataset(folder, "test", image_sizes=(64,), max_words=30)
    assert len(data) + len(test) == 10
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "captions.jsonl").write_text(
        json.dumps({"image": "a.png", "captions": ["w1 w2", "w3"], "class": 4}) + "\n")
    vocab = Vocabulary(["<end>", "w1", "w2", "w3"])
    (item,) = read_captions_jsonl(tmp_path / "ds" / "captions.jsonl", tmp_path / "ds", vocab)
    assert item.caption == [1, 2] and item.class_id == 4 and item.text == "w1 w2"
