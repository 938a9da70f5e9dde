"""The Python API as a diffusers user types it: model folders (save_pretrained /
from_pretrained), prompt=, return_dict, indexing, torch_dtype, seed and generator as one
thing, clear refusals for what a GAN has no use for, one caption length limit everywhere."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from fixtures import run_cli, warned_from

from dmgan import DMGAN, preset
from dmgan.data.shapes import caption_needs, vocabulary, world_reads
from dmgan.data.vocab import MAX_CAPTION_CHARS, CaptionError
from dmgan.errors import CheckpointError, DMGANError
from dmgan.pipeline import DMGANPipeline, bundled_model_path

CAPTION = "a large red circle on the left on a blue background"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "shapes.pt"
    cfg = preset("shapes")
    model = DMGAN(cfg, vocab=vocabulary().words,
                  reads={"needs": caption_needs(cfg), "world": world_reads()},
                  provenance={"preset": "shapes", "commands": ["dmgan train ..."], "steps": 7})
    model.trained_steps = 7
    model.save(path)
    return path


@pytest.fixture(scope="module")
def pipe(model_path):
    return DMGANPipeline.from_pretrained(model_path)


def _same(a, b) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b, strict=True))


def test_a_model_folder_holds_what_people_expect_and_draws_the_same(tmp_path, pipe, model_path):
    folder = pipe.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "config.json", "model.safetensors", "provenance.json", "vocab.txt"]
    assert (folder / "vocab.txt").read_text().splitlines() == vocabulary().words
    config = json.loads((folder / "config.json").read_text())
    assert config["config"]["name"] == "shapes" and config["trained_steps"] == 7
    record = json.loads((folder / "provenance.json").read_text())
    assert record["provenance"]["commands"] == ["dmgan train ..."]
    assert record["reads"]["world"]["max_objects"] == 2
    card = (folder / "README.md").read_text()
    assert "dmgan train ..." in card and "16 / 32 / 64 px" in card
    from safetensors.torch import load_file

    names = set(load_file(folder / "model.safetensors"))
    assert {n.split(".")[0] for n in names} == {"generator", "text_encoder"}
    again = DMGANPipeline.from_pretrained(folder)
    assert again.world == pipe.world and again.needs == pipe.needs
    assert _same(again(CAPTION, seed=5, num_images=2).images, pipe(CAPTION, seed=5, num_images=2).images)
    # the folder is a --checkpoint like the file
    out = tmp_path / "a.png"
    assert run_cli("generate", CAPTION, "--checkpoint", str(folder), "-o", str(out)).returncode == 0
    direct = tmp_path / "b.png"
    run_cli("generate", CAPTION, "--checkpoint", str(model_path), "-o", str(direct))
    assert out.read_bytes() == direct.read_bytes()
    res = run_cli("info", "--checkpoint", str(folder))
    assert res.returncode == 0 and "dmgan train ..." in res.stdout


def test_a_broken_model_folder_gets_a_clear_error(tmp_path, pipe):
    folder = pipe.save_pretrained(tmp_path / "model")
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="cannot read .*model.safetensors"):
        DMGANPipeline.from_pretrained(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        DMGANPipeline.from_pretrained(folder)
    res = run_cli("generate", CAPTION, "--checkpoint", str(folder), "-o", str(tmp_path / "x.png"))
    assert res.returncode == 2 and "no model.safetensors" in res.stderr
    from dmgan.data.vocab import Vocabulary

    folded = DMGAN(preset("shapes"), vocab=vocabulary().words).optimize_for_inference(
        channels_last=False)  # no file behind it, and its batch norms folded
    with pytest.raises(DMGANError, match="came from no file"):
        DMGANPipeline(folded, Vocabulary(folded.vocab)).save_pretrained(tmp_path / "x")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="not a dmgan model folder"):
        DMGANPipeline.from_pretrained(empty)


def test_the_bundled_model_saves_as_a_folder(tmp_path):
    pipe = DMGANPipeline.from_pretrained()
    folder = pipe.save_pretrained(tmp_path / "bundled")
    assert pipe.source == bundled_model_path()
    again = DMGANPipeline.from_pretrained(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _same(again(CAPTION, seed=1).images, pipe(CAPTION, seed=1).images)


def test_prompt_return_dict_and_indexing_as_in_diffusers(pipe):
    out = pipe(prompt=CAPTION, seed=2)
    assert out[0] is out.images and out["images"] is out.images and out.to_tuple() == (out.images,)
    with pytest.raises(KeyError):
        out["nsfw_content_detected"]
    (images,) = pipe(CAPTION, seed=2, return_dict=False)
    assert _same(images, out.images)
    assert _same(pipe(captions=CAPTION, seed=2).images, out.images)
    with pytest.raises(DMGANError, match="not both"):
        pipe(CAPTION, captions=CAPTION)
    with pytest.raises(CaptionError, match="no caption"):
        pipe()


def test_what_a_gan_has_no_use_for_is_refused_with_the_reason(pipe):
    for name, value in [("negative_prompt", "blurry"), ("guidance_scale", 7.5),
                        ("num_inference_steps", 50)]:
        with pytest.raises(DMGANError, match="one pass"):
            pipe(CAPTION, **{name: value})
    with pytest.raises(TypeError, match="num_imgs.*it takes prompt"):
        pipe(CAPTION, num_imgs=2)


def test_seed_and_generator_are_one_thing(pipe):
    """seed=s is a list of generators seeded s, s + 1, ...; one generator seeded s draws
    image 0 as seed=s does; every caption of a call gets the same noises."""
    two = [CAPTION, "a small green square at the top on a white background"]
    by_seed = pipe(two, seed=3, num_images=2, output_type="pt").images
    gens = [torch.Generator().manual_seed(3 + j) for j in range(2)]
    by_list = pipe(two, generator=gens, num_images=2, output_type="pt").images
    assert torch.equal(by_seed, by_list)
    one = pipe(CAPTION, generator=torch.Generator().manual_seed(3), output_type="pt").images
    assert torch.equal(one, by_seed[:1])
    later = pipe(CAPTION, seed=4, output_type="pt").images
    assert torch.equal(later, by_seed[1:2])  # image j alone is seed + j
    with pytest.raises(DMGANError, match="one per image: 2 needed, 1 given"):
        pipe(CAPTION, generator=gens[:1], num_images=2)


def test_torch_dtype_picks_the_precision(model_path):
    pipe = DMGANPipeline.from_pretrained(model_path, torch_dtype=torch.float32)
    assert pipe.amp == "off"
    try:
        expected = DMGANPipeline.from_pretrained(model_path, amp="bf16").amp
    except DMGANError as exc:  # a CPU without bf16 units: the same refusal either way
        with pytest.raises(DMGANError, match=str(exc)[:40]):
            DMGANPipeline.from_pretrained(model_path, torch_dtype=torch.bfloat16)
    else:
        assert DMGANPipeline.from_pretrained(model_path, torch_dtype=torch.bfloat16).amp == expected
    with pytest.raises(DMGANError, match="torch_dtype must be"):
        DMGANPipeline.from_pretrained(model_path, torch_dtype=torch.int8)
    with pytest.raises(DMGANError, match="disagree"):
        DMGANPipeline.from_pretrained(model_path, torch_dtype=torch.float32, amp="bf16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_device_it_cannot_use_is_refused_in_the_apis_words(pipe, model_path):
    with pytest.raises(DMGANError, match=r"^device cuda: .*use 'cpu' \(or 'auto'\)$"):
        pipe.to("cuda")
    with pytest.raises(DMGANError, match=r"^device 'tpu'"):
        DMGANPipeline.from_pretrained(model_path, device="tpu")


def test_warnings_point_at_the_callers_line(pipe):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe("a red zebra circle")
    assert caught and warned_from(caught, __file__)


def test_one_caption_length_limit_everywhere(tmp_path, pipe, model_path):
    longest = ("red " * MAX_CAPTION_CHARS)[:MAX_CAPTION_CHARS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe(longest)
    message = f"a caption may be {MAX_CAPTION_CHARS} characters long at most; this one has"
    with pytest.raises(CaptionError, match=message):
        pipe(longest + "x")
    res = run_cli("generate", longest + "x", "--checkpoint", str(model_path),
                  "-o", str(tmp_path / "x.png"))
    assert res.returncode == 2 and message in res.stderr
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from dmgan.serve.app import create_app

    client = TestClient(create_app(pipe))
    res = client.post("/api/generate", json={"caption": longest + "x"})
    assert res.status_code == 413 and message in res.json()["detail"]


def test_words_a_long_caption_loses_are_said(tmp_path, pipe, model_path):
    words = pipe.model.config.text.words_eval
    caption = " ".join(["red circle"] * words)
    with pytest.warns(UserWarning, match=f"more words than the model reads \\({words}\\): "
                                         f"{words} left out"):
        out = pipe(caption)
    assert out.dropped_words == [words]
    res = run_cli("generate", caption, "--checkpoint", str(model_path),
                  "-o", str(tmp_path / "x.png"))
    assert res.returncode == 0 and f"{words} left out" in res.stderr
