"""The pipeline's noise and output, and `dmgan generate`'s chunks and files, held to their
exact contract on the bundled model: which noise each image gets, what each refusal says,
what each warning says, how images and their manifest lines are numbered (the mutation
check, docs/testing.md)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from dmgan import generate as generate_module
from dmgan.data.vocab import CaptionError
from dmgan.errors import DMGANError
from dmgan.generate import generate_files
from dmgan.pipeline import DMGANPipeline

CAPTION = "a small red circle on the left"


@pytest.fixture
def pipe():
    # one per test (a small model: milliseconds): the mutation check links a test to the
    # code its own setup runs
    return DMGANPipeline.from_pretrained()


def _pixels(images) -> list[np.ndarray]:
    return [np.asarray(img, dtype=np.int16) for img in images]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_the_noise_of_image_j_is_the_generator_of_seed_plus_j(pipe):
    z = pipe.model.config.generator.z_dim
    noise = pipe._noise(5, 3, 2, None)
    want = torch.stack([torch.randn(z, generator=torch.Generator().manual_seed(s))
                        for s in (7, 8, 9)])
    assert noise.shape == (3, z) and torch.equal(noise, want)
    one = torch.Generator().manual_seed(3)
    assert torch.equal(pipe._noise(0, 2, 0, one),
                       torch.randn(2, z, generator=torch.Generator().manual_seed(3)))
    listed = [torch.Generator().manual_seed(s) for s in (4, 11)]
    assert torch.equal(pipe._noise(0, 2, 0, listed), torch.stack(
        [torch.randn(z, generator=torch.Generator().manual_seed(s)) for s in (4, 11)]))
    with pytest.raises(DMGANError) as exc:
        pipe._noise(0, 2, 0, [torch.Generator()] * 3)
    assert str(exc.value) == "a list of generators gives one per image: 2 needed, 3 given"


def test_images_asked_in_chunks_are_the_images_of_one_call(pipe):
    whole = _pixels(_quiet(pipe, CAPTION, seed=4, num_images=5).images)
    parts = _pixels(_quiet(pipe, CAPTION, seed=4, num_images=2).images)
    parts += _pixels(_quiet(pipe, CAPTION, seed=4, num_images=3, first_image=2).images)
    assert _same(whole, parts)
    assert _same(whole[3:4], _pixels(_quiet(pipe, CAPTION, seed=7).images))
    assert not _same(whole[:1], whole[1:2])  # another noise, another picture
    per_prompt = _pixels(_quiet(pipe, CAPTION, seed=4, num_images=1,
                                num_images_per_prompt=2).images)
    assert _same(per_prompt, whole[:2])  # diffusers' name wins when both are given


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"prompt": "a", "captions": "b"}, DMGANError,
     "give the captions once: prompt= or captions=, not both"),
    ({"prompt": CAPTION, "output_type": "jpg"}, DMGANError,
     "output_type must be one of pil, np, pt, got 'jpg'"),
    ({}, CaptionError, "no caption given (prompt=)"),
    ({"prompt": []}, CaptionError, "no caption given"),
    ({"prompt": [CAPTION, 3]}, CaptionError, "a caption is text, not int"),
    ({"prompt": CAPTION, "num_images": 0}, DMGANError, "num_images must be >= 1, got 0"),
    ({"prompt": CAPTION, "num_images_per_prompt": -1}, DMGANError,
     "num_images must be >= 1, got -1"),
    ({"prompt": "x" * 1001}, CaptionError,
     "a caption may be 1000 characters long at most; this one has 1001"),
])
def test_a_call_that_cannot_be_drawn_is_refused_in_these_words(pipe, kwargs, error, message):
    with pytest.raises(error) as exc:
        pipe(**kwargs)
    assert str(exc.value) == message


def test_captions_given_as_captions_are_the_prompt(pipe):
    a = _pixels(_quiet(pipe, captions=CAPTION, seed=2).images)
    assert _same(a, _pixels(_quiet(pipe, CAPTION, seed=2).images))


def test_every_output_type_holds_the_same_pixels(pipe):
    out = _quiet(pipe, [CAPTION, "a big blue square on the right"], seed=1, num_images=2)
    arr = _quiet(pipe, [CAPTION, "a big blue square on the right"], seed=1, num_images=2,
                 output_type="np")
    ten = _quiet(pipe, [CAPTION, "a big blue square on the right"], seed=1, num_images=2,
                 output_type="pt")
    size = out.images[0].size[0]
    assert arr.images.shape == (4, size, size, 3) and arr.images.dtype == np.float32
    assert ten.images.shape == (4, 3, size, size) and ten.images.dtype == torch.float32
    pixels = np.stack([np.asarray(img, dtype=np.float32) / 255.0 for img in out.images])
    assert np.array_equal(arr.images, pixels)
    assert torch.equal(ten.images, torch.from_numpy(pixels).permute(0, 3, 1, 2))
    stages = arr.stage_images[3]  # per image, its stages: sizes differ, so a list
    assert isinstance(stages, list) and len(stages) == len(out.stage_images[3])
    assert np.array_equal(stages[-1], pixels[3])
    assert [s.shape[0] for s in stages] == [img.size[0] for img in out.stage_images[3]]
    assert out.captions == [CAPTION, CAPTION, "a big blue square on the right",
                            "a big blue square on the right"]
    images, = _quiet(pipe, CAPTION, seed=1, return_dict=False)
    assert _same(_pixels(images), _pixels(out.images[:1]))


def test_each_caption_says_what_it_lost_and_the_images_say_which_words_they_saw(pipe):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = pipe(["a small red zebra circle on the left", CAPTION], num_images=2)
    messages = [str(w.message) for w in caught]
    assert "unknown word(s) ignored: zebra" in messages
    assert messages.count("unknown word(s) ignored: zebra") == 1  # once per caption
    assert out.unknown_words == [["zebra"], ["zebra"], [], []]
    assert out.words[0] == out.words[2] == ["a", "small", "red", "circle", "on", "the", "left"]
    assert out.dropped_words == [0, 0]
    long = " ".join(["a small red circle on the left"] * 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = pipe(long)
    read = pipe.model.config.text.words_eval
    assert out.dropped_words == [56 - read]
    assert (f"the caption has more words than the model reads ({read}): {56 - read} left out"
            in [str(w.message) for w in caught])


def test_a_caption_beyond_the_world_is_warned_by_what_it_asks(pipe):
    assert pipe.world is not None  # the bundled model's file records its world
    most = pipe.world["max_objects"]
    assert pipe._beyond_the_world(CAPTION) is None
    assert pipe._beyond_the_world("a red circle and a blue square") is None
    three = pipe._beyond_the_world("a red circle, a blue square and a green triangle")
    assert three == (f"this model draws at most {most} objects; the caption asks for 3 "
                     f"objects, so the picture will not show them all")
    word = pipe.world["beyond_count_words"][0]
    assert pipe._beyond_the_world(f"{word} red circles") == (
        f"this model draws at most {most} objects; the caption asks for '{word}', so the "
        f"picture will not show them all")


def test_explain_gives_each_image_its_own_maps(pipe):
    out = _quiet(pipe, CAPTION, seed=0, num_images=2, explain=True)
    assert len(out.attention) == len(out.writing_gates) == len(out.response_gates) == 2
    words = len(out.words[0])
    for maps, gates, responses in zip(out.attention, out.writing_gates, out.response_gates,
                                      strict=True):
        assert len(maps) == len(gates) == len(responses) >= 1
        assert all(g.shape == (words,) for g in gates)
        assert all(m.shape[0] == words and m.shape[1:] == r.shape
                   for m, r in zip(maps, responses, strict=True))
    assert not np.array_equal(out.response_gates[0][0], out.response_gates[1][0])
    plain = _quiet(pipe, CAPTION, seed=0, num_images=2)
    assert plain.attention == plain.writing_gates == plain.response_gates == []


# --- dmgan generate's files ---------------------------------------------------------------

def test_generate_draws_in_chunks_and_numbers_every_image(pipe, tmp_path, monkeypatch):
    monkeypatch.setattr(generate_module, "GENERATE_CHUNK", 2)
    calls = []
    real_call = DMGANPipeline.__call__

    def counted(self, *a, **k):
        calls.append((k.get("num_images"), k.get("first_image")))
        return real_call(self, *a, **k)

    monkeypatch.setattr(DMGANPipeline, "__call__", counted)
    (tmp_path / "000007.png").write_bytes(b"")  # numbering goes on after the files there
    written = _quiet(generate_files, pipe, [CAPTION], seed=3, n=5, outdir=tmp_path)
    assert calls == [(2, 0), (2, 2), (1, 4)]
    assert [p.name for p in written] == [f"{i:06d}.png" for i in range(8, 13)]
    lines = [json.loads(x) for x in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert [x["image_seed"] for x in lines] == [3, 4, 5, 6, 7]
    assert [x["file"] for x in lines] == [p.name for p in written]
    assert all(x["caption"] == CAPTION and x["seed"] == 3 for x in lines)
    from PIL import Image

    alone = _pixels(_quiet(pipe, CAPTION, seed=6).images)
    assert _same(_pixels([Image.open(written[3]).convert("RGB")]), alone)


def test_a_grid_places_each_image_by_caption_and_seed(pipe, tmp_path):
    out = tmp_path / "grid.png"
    _quiet(generate_files, pipe, [CAPTION, "a big blue square on the right"], seed=2, n=3,
           output=out)
    lines = [json.loads(x) for x in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert [(x["row"], x["column"], x["image_seed"]) for x in lines] == [
        (r, c, 2 + c) for r in range(2) for c in range(3)]
    from PIL import Image

    grid = Image.open(out)
    tile = _quiet(pipe, CAPTION, seed=2).images[0].size[0]
    assert grid.size[0] >= 3 * tile and grid.size[1] >= 2 * tile
    single = tmp_path / "one.png"
    _quiet(generate_files, pipe, [CAPTION], seed=2, n=1, output=single)
    last = json.loads((tmp_path / "manifest.jsonl").read_text().splitlines()[-1])
    assert "row" not in last and "column" not in last and last["file"] == "one.png"
    assert _same(_pixels([Image.open(single).convert("RGB")]),
                 _pixels(_quiet(pipe, CAPTION, seed=2).images))


def test_generate_refuses_before_it_writes(pipe, tmp_path, monkeypatch):
    monkeypatch.setattr(generate_module, "GRID_MAX_IMAGES", 3)
    with pytest.raises(DMGANError) as exc:
        generate_files(pipe, [CAPTION, CAPTION], n=2, output=tmp_path / "g.png")
    assert str(exc.value) == ("one grid holds at most 3 images (built in memory); this asks "
                              "for 4: use --outdir FOLDER, which writes the images one by one "
                              "as they are drawn")
    _quiet(generate_files, pipe, [CAPTION], n=3, output=tmp_path / "three.png")  # at the limit
    (tmp_path / "file").write_text("x")
    with pytest.raises(DMGANError) as exc:
        generate_files(pipe, [CAPTION], outdir=tmp_path / "file")
    assert str(exc.value) == f"--outdir {tmp_path / 'file'} is a file, not a folder"
    with pytest.raises(CaptionError):
        generate_files(pipe, [CAPTION, "zebra yak"], outdir=tmp_path / "new")
    assert not (tmp_path / "new").exists()  # the bad second caption stopped it before


# --- the pipeline's other parts -----------------------------------------------------------

def test_each_torch_dtype_names_one_precision():
    from dmgan.pipeline import _amp_for_dtype

    pairs = {torch.float32: "off", torch.bfloat16: "bf16", torch.float16: "fp16",
             "float32": "off", "bfloat16": "bf16", "float16": "fp16", "auto": "off"}
    assert {d: _amp_for_dtype(d, "off") for d in pairs} == pairs
    assert _amp_for_dtype(torch.bfloat16, "bf16") == "bf16"  # the same thing said twice
    with pytest.raises(DMGANError) as exc:
        _amp_for_dtype(torch.bfloat16, "fp16")
    assert str(exc.value) == "torch_dtype=torch.bfloat16 and amp='fp16' disagree: give one of them"
    with pytest.raises(DMGANError) as exc:
        _amp_for_dtype(torch.int8, "off")
    assert str(exc.value) == ("torch_dtype must be torch.float32, torch.bfloat16 or "
                              "torch.float16, got torch.int8")


def test_diffusion_only_arguments_and_unknown_ones_are_refused_in_these_words(pipe):
    with pytest.raises(DMGANError) as exc:
        pipe(CAPTION, negative_prompt="x", guidance_scale=7.5)
    assert str(exc.value) == (
        "guidance_scale, negative_prompt: DM-GAN draws a picture in one pass of its "
        "generator; it has no guidance, negative prompt, denoising steps or latents to set, "
        "and its image size is the model's")
    with pytest.raises(TypeError) as exc:
        pipe(CAPTION, zeta=1, alpha=2)
    assert str(exc.value) == (
        "DMGANPipeline() got unexpected keyword argument(s) alpha, zeta; it takes prompt, "
        "seed, num_images (num_images_per_prompt), generator, output_type, explain, "
        "first_image, return_dict")


def test_an_output_answers_only_to_its_own_names(pipe):
    out = _quiet(pipe, CAPTION)
    assert out["images"] is out.images and out[0] is out.images
    with pytest.raises(KeyError) as exc:
        out["latents"]
    assert exc.value.args == ("latents",)


def test_a_model_optimized_in_memory_cannot_be_saved_from_its_folded_weights(tmp_path):
    from dmgan.api import DMGAN
    from dmgan.data.vocab import Vocabulary

    source = DMGANPipeline.from_pretrained()
    model = DMGAN.from_checkpoint(source.source)
    folded = DMGANPipeline(model.optimize_for_inference(), Vocabulary(model.vocab))
    with pytest.raises(DMGANError) as exc:
        folded.save_pretrained(tmp_path / "m")
    assert str(exc.value) == ("this pipeline's model was optimized for inference and came "
                              "from no file; save the DMGAN before optimize_for_inference()")
    plain = DMGANPipeline(DMGAN.from_checkpoint(source.source), Vocabulary(model.vocab))
    assert plain.save_pretrained(tmp_path / "p") == tmp_path / "p"  # unfolded: its own weights


def test_a_compiled_graph_is_built_with_the_pipelines_precision_and_dropped_on_a_move(
        monkeypatch):
    import dmgan.inference

    built = []

    def spy(generator, backend, **kwargs):  # what is asked for, run eagerly (no compile time)
        built.append((backend, kwargs))
        return lambda *inputs: generator(*inputs, sample_condition=False).images

    monkeypatch.setattr(dmgan.inference, "build_runner", spy)
    pipe = DMGANPipeline.from_pretrained(backend="compile", amp="bf16")
    first = _pixels(_quiet(pipe, CAPTION, seed=1).images)
    assert built == [("compile", {"amp": "bf16"})]
    assert pipe.to("cpu") is pipe and pipe._runner is None  # the graph holds the old device
    assert _same(_pixels(_quiet(pipe, CAPTION, seed=1).images), first) and len(built) == 2


def test_the_explanation_figure_is_the_one_of_its_caption_and_seed(pipe, tmp_path):
    from PIL import Image

    from dmgan.generate import explain_file
    from dmgan.viz import explanation_figure

    def figure(seed):
        out = _quiet(pipe, CAPTION, seed=seed, explain=True)
        return explanation_figure(CAPTION, out.stage_images[0], out.words[0], out.attention[0],
                                  out.writing_gates[0], out.response_gates[0])

    path = _quiet(explain_file, pipe, CAPTION, seed=3, output=tmp_path / "e3.png")
    assert path == tmp_path / "e3.png"
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")),
                          np.asarray(figure(3).convert("RGB")))
    default = _quiet(explain_file, pipe, CAPTION, output=tmp_path / "e0.png")
    assert np.array_equal(np.asarray(Image.open(default).convert("RGB")),
                          np.asarray(figure(0).convert("RGB")))


def test_encode_gives_the_ids_the_model_reads_and_the_unknown_words(pipe):
    ids, unknown = pipe.encode("a small red zebra circle on the left", seed=0)
    assert [pipe.vocab.words[i] for i in ids] == ["a", "small", "red", "circle", "on", "the",
                                                  "left"]
    assert unknown == ["zebra"]
    long = " ".join(["a small red circle on the left"] * 8)
    read = pipe.model.config.text.words_eval
    kept = [pipe.encode(long, seed=s)[0] for s in (0, 0, 1)]
    assert len(kept[0]) == read and kept[0] == kept[1]  # a seed keeps the same words
    assert kept[0] != kept[2]
    assert pipe.encode_counted(long, seed=0)[2] == 56 - read


def test_a_long_captions_words_are_kept_by_the_seed_of_the_call(pipe):
    long = " ".join(["a small red circle on the left"] * 8)
    a, b, c = (_quiet(pipe, long, seed=s).words[0] for s in (0, 0, 1))
    assert a == b == [pipe.vocab.words[i] for i in pipe.encode(long, seed=0)[0]]
    assert a != c


def test_a_pipeline_is_built_from_a_model_and_its_own_vocabulary(pipe, tmp_path, monkeypatch):
    from dmgan import DMGAN
    from dmgan import pipeline as pipeline_module
    from dmgan.data.vocab import Vocabulary
    from dmgan.errors import CheckpointError

    built = DMGANPipeline(pipe.model, pipe.vocab)
    assert (built.amp, built.backend, built.source, built.needs, built.world) == (
        "off", "eager", None, pipe.needs, pipe.world)
    with pytest.raises(CheckpointError) as exc:
        DMGANPipeline(pipe.model, Vocabulary(["<end>", "a"]))
    assert str(exc.value) == (f"the vocabulary has 2 words but preset 'shapes' expects "
                              f"{len(pipe.vocab)}: not this model's vocabulary")
    DMGAN.from_preset("tiny").save(tmp_path / "novocab.pt")
    with pytest.raises(CheckpointError) as exc:
        DMGANPipeline.from_pretrained(tmp_path / "novocab.pt")
    assert str(exc.value) == (f"{tmp_path / 'novocab.pt'} has no vocabulary; convert released "
                              f"files with dmgan convert-released (it takes captions.pickle)")
    monkeypatch.setattr(pipeline_module, "bundled_model_path", lambda: tmp_path / "none.pt")
    with pytest.raises(DMGANError) as exc:
        DMGANPipeline.from_pretrained()
    assert str(exc.value) == "this installation has no bundled model; pass --checkpoint"


def _manifest(folder) -> list[dict]:
    return [json.loads(x) for x in (folder / "manifest.jsonl").read_text().splitlines()]


def test_generate_shows_each_image_as_asked_and_says_how(pipe, tmp_path):
    from PIL import Image

    from dmgan.generate import ViewOptions
    from dmgan.viz import stage_strip, upsample

    out = _quiet(pipe, CAPTION, seed=0)
    for view, want in [
        (ViewOptions(size=128, resample="bicubic"), upsample(out.images[0], 128, "bicubic")),
        (ViewOptions(stages=True, size=96, resample="bicubic"),
         stage_strip(out.stage_images[0], 96, "bicubic")),
        (ViewOptions(stages=True), stage_strip(out.stage_images[0])),
    ]:
        path = _quiet(generate_files, pipe, [CAPTION], output=tmp_path / "v.png", view=view)[0]
        assert np.array_equal(np.asarray(Image.open(path).convert("RGB")),
                              np.asarray(want.convert("RGB")))
        line = _manifest(tmp_path)[-1]
        assert (line["size"], line["resample"], line["stages"]) == (
            view.size, view.resample if view.size else None, view.stages)
    assert upsample(out.images[0], 128, "bicubic").tobytes() != upsample(
        out.images[0], 128, "nearest").tobytes()  # the resampling shows


def test_generate_defaults_and_the_files_it_returns(pipe, tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    written = _quiet(generate_files, pipe, [CAPTION])
    assert [Path(p).resolve() for p in written] == [tmp_path / "out.png"]
    assert _same(_pixels([Image.open(tmp_path / "out.png").convert("RGB")]),
                 _pixels(_quiet(pipe, CAPTION, seed=0).images))
    two = _quiet(generate_files, pipe, [CAPTION], n=2, output=tmp_path / "two.png")
    assert two == [tmp_path / "two.png"]
    tile = _quiet(pipe, CAPTION).images[0].size
    assert Image.open(tmp_path / "two.png").size[0] > tile[0]  # two images: a grid
    nested = tmp_path / "a" / "b"
    files = _quiet(generate_files, pipe, [CAPTION], n=2, outdir=nested)
    assert files == [nested / "000000.png", nested / "000001.png"]


def test_the_manifest_goes_on_after_a_line_without_its_newline(pipe, tmp_path):
    (tmp_path / "manifest.jsonl").write_text('{"file": "old.png"}')
    _quiet(generate_files, pipe, [CAPTION], outdir=tmp_path)
    lines = _manifest(tmp_path)
    assert lines[0] == {"file": "old.png"} and lines[1]["file"] == "000000.png"


def test_captions_come_from_the_line_and_a_file_or_say_what_is_missing(tmp_path):
    from dmgan.generate import read_captions

    (tmp_path / "c.txt").write_text("a red circle on the left\n\n  a blue square \n")
    assert read_captions(["x"], str(tmp_path / "c.txt")) == [
        "x", "a red circle on the left", "a blue square"]
    with pytest.raises(DMGANError) as exc:
        read_captions([], str(tmp_path / "none.txt"))
    assert str(exc.value) == f"caption file not found: {tmp_path / 'none.txt'}"
    with pytest.raises(DMGANError) as exc:
        read_captions([], None)
    assert str(exc.value) == "give a caption (or --file with one caption a line)"
    (tmp_path / "bad.txt").write_bytes(b"red \xff circle")
    with pytest.raises(DMGANError) as exc:
        read_captions([], str(tmp_path / "bad.txt"))
    assert str(exc.value) == f"{tmp_path / 'bad.txt'} is not UTF-8 text (invalid start byte at byte 4)"


def test_the_small_defaults_of_a_call_and_of_generate(pipe, tmp_path, monkeypatch):
    from dmgan import DMGAN
    from dmgan.config import override
    from dmgan.generate import explain_file

    assert _same(_pixels(_quiet(pipe, CAPTION).images),
                 _pixels(_quiet(pipe, CAPTION, seed=0).images))
    assert isinstance(_quiet(pipe, CAPTION, return_dict=False), tuple)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe("a small yak red zebra circle on the left")
    assert "unknown word(s) ignored: yak, zebra" in [str(w.message) for w in caught]
    _quiet(generate_files, pipe, [CAPTION], outdir=tmp_path)
    assert _manifest(tmp_path)[-1]["model"] == ""
    monkeypatch.chdir(tmp_path)
    assert _quiet(explain_file, pipe, CAPTION) == Path("explain.png")
    assert (tmp_path / "explain.png").is_file()
    flat = DMGAN(override(pipe.model.config, ["generator.memory=false", "generator.word_context=0",
                                              "generator.first_stage_read_px=0"]),
                 pipe.model.vocab)
    with pytest.raises(DMGANError) as exc:
        _quiet(explain_file, DMGANPipeline(flat, pipe.vocab), CAPTION)
    assert str(exc.value) == "this model has no memory stage to explain"


def test_a_two_stage_model_has_one_memory_stage_to_explain(pipe, tmp_path):
    from dmgan import DMGAN
    from dmgan.config import preset
    from dmgan.data.vocab import Vocabulary
    from dmgan.generate import explain_file

    cfg = preset("shapes32")
    words = pipe.vocab.words + [f"w{i}" for i in range(cfg.text.vocab_size - len(pipe.vocab))]
    two = DMGANPipeline(DMGAN(cfg, words), Vocabulary(words))
    path = _quiet(explain_file, two, CAPTION, output=tmp_path / "two.png")
    assert path.is_file()
    assert len(_quiet(two, CAPTION, explain=True).attention[0]) == 1
