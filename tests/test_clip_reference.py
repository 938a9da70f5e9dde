"""dmgan's CLIP score against the reference (transformers' CLIPTokenizer,
CLIPImageProcessor and CLIPModel) on a tiny random CLIP built here: token ids, the pixels
fed to the vision tower, and the score. Where transformers is installed the test builds the
reference live (and checks that the recorded numbers still are its output); elsewhere it
reads them from tests/data/clip_reference.json, recorded with transformers 5.25 (the
pixels as the 8-bit crops they are made from)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dmgan.imageio import to_uint8
from dmgan.metrics.clip import Clip, ClipTokenizer, _byte_alphabet

RECORD = Path(__file__).parent / "data" / "clip_reference.json"
HAVE_TRANSFORMERS = importlib.util.find_spec("transformers") is not None
CAPTIONS = ["a red circle", "Café au lait", "cafe\u0301 noir", "x² + y²", "smile :_) now",
            "it's <|endoftext|> here", "snow ☃ man", "don't STOP", "tabs\tand\nnewlines",
            "3.14 pies", "naïve Ünïcödé", "a__b", "emoji 🎉 party", "the cat's toy's",
            "русский текст", "中文 字"]
IMAGE_SHAPES = [(34, 55), (55, 34), (64, 64), (29, 31)]  # the long side floors, not rounds


def _tokenizer_files(folder: Path) -> None:
    """Every byte symbol (alone and word-final), a few merges, the special tokens."""
    alphabet = list(_byte_alphabet().values())
    merges = [("c", "a"), ("ca", "f"), ("r", "e"), ("re", "d</w>"), ("c", "i"), ("ci", "r"),
              ("cir", "c"), ("l", "e</w>"), ("circ", "le</w>")]
    tokens = [*alphabet, *(a + "</w>" for a in alphabet), *("".join(m) for m in merges),
              "<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges)
                                       + "\n")


def _images() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.rand(1, 3, h, w, generator=gen) * 2 - 1 for h, w in IMAGE_SHAPES]


def _reference(folder: Path, act: str) -> dict:
    """The reference's token ids, pixels and scores for the tiny CLIP in `folder`."""
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    processor = CLIPImageProcessor.from_pretrained(folder)
    model = CLIPModel.from_pretrained(folder).eval()
    ids = [tok(c)["input_ids"] for c in CAPTIONS]
    pixels = [processor(images=[Image.fromarray(to_uint8(x)[0])], return_tensors="pt")
              ["pixel_values"][0] for x in _images()]
    with torch.no_grad():
        cosines = []  # unclipped: a random CLIP's cosines are as often below 0 as above
        for caption, x in zip(CAPTIONS[:len(pixels)], pixels, strict=False):
            t = model.get_text_features(**tok([caption], return_tensors="pt"))
            i = model.get_image_features(pixel_values=x[None])
            t = getattr(t, "pooler_output", t)
            i = getattr(i, "pooler_output", i)
            cosines.append(float(torch.cosine_similarity(t, i)[0]))
    return {"ids": ids, "crops": [_crop(p) for p in pixels], "cosines": cosines, "act": act}


def _normalise(crop) -> np.ndarray:
    from dmgan.metrics.clip import MEAN, STD

    x = np.asarray(crop, np.float32) / 255
    return (x - np.asarray(MEAN, np.float32)[:, None, None]) / np.asarray(STD, np.float32)[:, None, None]


def _crop(pixels: torch.Tensor) -> list:
    """The 8-bit crop that normalised pixels were made from (checked to give them back)."""
    from dmgan.metrics.clip import MEAN, STD

    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    crop = ((pixels * std + mean) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    np.testing.assert_allclose(_normalise(crop), pixels.numpy(), atol=2e-6)
    return crop.tolist()


def _tiny_clip(folder: Path, act: str) -> None:
    """A tiny random CLIP saved by transformers, or by hand from the record's weights seed."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    folder.mkdir(parents=True, exist_ok=True)
    _tokenizer_files(folder)
    vocab_size = len(json.loads((folder / "vocab.json").read_text()))
    config = CLIPConfig(
        text_config={"vocab_size": vocab_size, "hidden_size": 16, "intermediate_size": 32,
                     "num_hidden_layers": 2, "num_attention_heads": 2,
                     "max_position_embeddings": 77, "hidden_act": act,
                     "bos_token_id": vocab_size - 2, "eos_token_id": vocab_size - 1,
                     "pad_token_id": vocab_size - 1},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8,
                       "hidden_act": act},
        projection_dim=8)
    torch.manual_seed(0)
    model = CLIPModel(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(std=0.3)
    model.save_pretrained(folder, safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": 32},
                       crop_size={"height": 32, "width": 32}).save_pretrained(folder)


@pytest.fixture(scope="module", params=["quick_gelu", "gelu"])
def reference(request, tmp_path_factory):
    if not HAVE_TRANSFORMERS:
        return None, json.loads(RECORD.read_text())[request.param]
    folder = tmp_path_factory.mktemp(f"clip-{request.param}")
    _tiny_clip(folder, request.param)
    return folder, _reference(folder, request.param)


def test_the_token_ids_are_the_references(reference, tmp_path):
    folder, ref = reference
    if folder is None:
        folder = tmp_path
        _tokenizer_files(folder)
    ours = ClipTokenizer.from_folder(folder, 77)
    for caption, want in zip(CAPTIONS, ref["ids"], strict=True):
        assert ours.encode(caption) == want, caption


def test_the_pixels_are_the_references(reference):
    _, ref = reference
    holder = Clip.__new__(Clip)  # the preprocessing alone: no model needed
    holder.model = type("M", (), {"image_size": 32})()
    from dmgan.metrics.clip import MEAN, STD

    holder.mean, holder.std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    for x, crop in zip(_images(), ref["crops"], strict=True):
        got = holder.pixels(x)[0]
        np.testing.assert_allclose(got.numpy(), _normalise(crop), atol=2e-6)


@pytest.mark.skipif(not HAVE_TRANSFORMERS, reason="the score needs the reference's weights")
def test_the_score_is_the_references(reference):
    folder, ref = reference
    clip = Clip(folder)
    got = []
    for x, caption in zip(_images(), CAPTIONS, strict=False):
        ids = torch.tensor([clip.tokenizer.encode(caption)])
        t = clip.model.encode_text(ids, torch.tensor([ids.shape[1]]))
        i = clip.model.encode_image(clip.pixels(x))
        got.append(float(torch.cosine_similarity(t, i)[0]))
        assert float(clip.score(x, [caption])[0]) == pytest.approx(100 * max(got[-1], 0), abs=1e-4)
    np.testing.assert_allclose(got, ref["cosines"], atol=1e-5)


@pytest.mark.skipif(not HAVE_TRANSFORMERS, reason="compares the record with transformers")
def test_the_record_is_the_references_output(reference):
    _, ref = reference
    record = json.loads(RECORD.read_text())[ref["act"]]
    assert record["ids"] == ref["ids"] and record["crops"] == ref["crops"]
    np.testing.assert_allclose(record["cosines"], ref["cosines"], atol=1e-6)
