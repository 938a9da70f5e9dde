"""The CLIP score: a tiny randomly initialised CLIP in the Hugging Face folder layout, built
here (nothing is downloaded), read by dmgan.metrics.clip and used by `dmgan eval`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dmgan.metrics.clip import Clip, ClipModel, ClipTokenizer

CONFIG = {
    "_name_or_path": "tiny-random-clip",
    "projection_dim": 8,
    "logit_scale_init_value": 2.6592,
    "text_config": {"vocab_size": 0, "hidden_size": 16, "intermediate_size": 32,
                    "num_hidden_layers": 2, "num_attention_heads": 2,
                    "max_position_embeddings": 20, "hidden_act": "quick_gelu", "eos_token_id": 2},
    "vision_config": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
                      "num_attention_heads": 2, "image_size": 32, "patch_size": 8,
                      "hidden_act": "quick_gelu"},
}


def _tokens():
    letters = sorted(set("abcdefghijklmnopqrstuvwxyz"))
    merges = [("r", "e"), ("re", "d</w>"), ("c", "i"), ("ci", "r"), ("cir", "c"), ("l", "e</w>"),
              ("circ", "le</w>")]
    tokens = letters + [c + "</w>" for c in letters] + ["re", "red</w>", "ci", "cir", "circ",
                                                        "le</w>", "circle</w>"]
    tokens += ["<|startoftext|>", "<|endoftext|>"]  # the end token has the highest id
    return {t: i for i, t in enumerate(tokens)}, merges


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-clip")
    vocab, merges = _tokens()
    config = json.loads(json.dumps(CONFIG))
    config["text_config"]["vocab_size"] = len(vocab)
    torch.manual_seed(0)
    model = ClipModel(config)
    for p in model.parameters():  # random, not the init's zeros and ones
        torch.nn.init.normal_(p, std=0.3)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state["text_model.embeddings.position_ids"] = torch.arange(20)[None]  # as some files have
    torch.save(state, folder / "pytorch_model.bin")  # read back with weights_only=True
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges))
    return folder


def test_the_tokenizer_applies_the_merges_in_rank_order(clip_dir):
    vocab, _ = _tokens()
    tok = ClipTokenizer.from_folder(clip_dir, max_length=20)
    ids = tok.encode("  Red\tcircle  red ")
    assert ids == [vocab["<|startoftext|>"], vocab["red</w>"], vocab["circle</w>"],
                   vocab["red</w>"], vocab["<|endoftext|>"]]
    assert tok.encode("rex")[1:-1] == [vocab["re"], vocab["x</w>"]]  # no merge for "ex</w>"
    long = tok.encode("red " * 50)
    assert len(long) == 20 and long[-1] == vocab["<|endoftext|>"]


def test_the_score_is_the_clipped_cosine_of_the_two_towers(clip_dir):
    clip = Clip(clip_dir)
    images = torch.rand(3, 3, 64, 64) * 2 - 1
    texts = ["red circle", "a red circle", "circle"]
    got = clip.score(images, texts)
    assert got.shape == (3,) and np.all((got >= 0) & (got <= 100))
    # by hand: the same towers, one pair at a time
    for k, text in enumerate(texts):
        ids = torch.tensor([clip.tokenizer.encode(text)])
        t = clip.model.encode_text(ids, torch.tensor([ids.shape[1]]))
        i = clip.model.encode_image(clip.pixels(images[k:k + 1]))
        want = 100 * max(float(torch.nn.functional.cosine_similarity(t, i).detach()), 0.0)
        assert got[k] == pytest.approx(want, abs=1e-4)
    # padding in a batch changes nothing
    assert clip.score(images[:1], texts[:1])[0] == pytest.approx(got[0], abs=1e-4)
    with pytest.raises(Exception, match="3 images but 2 captions"):
        clip.score(images, texts[:2])


def test_a_missing_folder_is_a_clear_error_never_a_download(tmp_path):
    from dmgan import DMGANError

    with pytest.raises(DMGANError, match="nothing is downloaded"):
        Clip(tmp_path / "no-such-clip")


def test_eval_records_the_clip_score_with_its_model(clip_dir, tmp_path):
    from dmgan.cli import main
    from dmgan.pipeline import bundled_model_path

    out = tmp_path / "r.jsonl"
    assert main(["eval", "--checkpoint", str(bundled_model_path()), "--data", "shapes",
                 "--num-images", "12", "--metrics", "clip_score", "--clip-model", str(clip_dir),
                 "--out", str(out), "--save-images", str(tmp_path / "imgs")]) == 0
    (row,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert row["metric"] == "clip_score" and "std" in row
    # the mean of the towers' clipped cosines over the images it drew, with their captions
    # (read back from the PNGs it kept: 8-bit rounding moves the score a little)
    from dmgan.data.transforms import to_tensor
    from dmgan.imageio import read_image

    lines = [json.loads(x) for x in (tmp_path / "imgs" / "captions.jsonl").read_text().splitlines()]
    images = torch.stack([to_tensor(np.asarray(read_image(tmp_path / "imgs" / x["image"])))
                          for x in lines])
    scores = Clip(clip_dir).score(images, [x["caption"] for x in lines])
    assert row["value"] > 1 and row["value"] == pytest.approx(float(np.mean(scores)), abs=0.05)
    assert row["std"] == pytest.approx(float(np.std(scores)), abs=0.05)
    assert row["mode"] == f"clip:{clip_dir.name}" and row["num_images"] == 12
    assert row["settings"]["clip_model"] == str(clip_dir)
    assert main(["eval", "--checkpoint", str(bundled_model_path()), "--data", "shapes",
                 "--metrics", "clip_score"]) == 2  # no model folder: exit 2
