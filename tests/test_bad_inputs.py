"""Bad input across the commands: a clear message, exit status 2, no traceback, and the
output file that was already there left as it was. In-process (dmgan.cli.main)."""

from __future__ import annotations

import errno
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dmgan import DMGAN, DMGANError, preset
from dmgan.cli import main
from dmgan.data.shapes import vocabulary

OLD = b"previous output, must survive"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    torch.manual_seed(0)
    model = d / "model.pt"
    DMGAN(preset("shapes"), vocab=vocabulary().words).save(model)
    raw = model.read_bytes()
    (d / "truncated.pt").write_bytes(raw[: len(raw) // 3])
    (d / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    (d / "empty.pt").write_bytes(b"")
    torch.save({"ca_net.fc.weight": torch.zeros(4, 4)}, d / "released.pth")

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {d / 'PWNED'}",))

    (d / "evil.pt").write_bytes(pickle.dumps({"format": Evil()}))
    (d / "evil.pickle").write_bytes(pickle.dumps([Evil()], protocol=2))
    (d / "trunc.pickle").write_bytes(pickle.dumps([[1, 2], [3]], protocol=2)[:9])
    (d / "latin1.txt").write_bytes(b"a red \xe9\xff disk\n")
    imgs = d / "imgs"
    imgs.mkdir()
    Image.new("RGB", (32, 32), "red").save(imgs / "ok.png")
    (d / "corrupt").mkdir()
    (d / "corrupt" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    (d / "empty_img").mkdir()
    (d / "empty_img" / "zero.png").write_bytes(b"")
    (d / "trunc_img").mkdir()
    good = imgs / "ok.png"
    (d / "trunc_img" / "half.png").write_bytes(good.read_bytes()[:40])
    np.savez(d / "bad_stats.npz", m=np.zeros(3))
    from dmgan.nn import InceptionV3

    torch.save(InceptionV3(variant="fid").state_dict(), d / "fid.pth")
    payload = torch.load(model, weights_only=True)
    for key, value in payload["networks"]["generator"].items():
        if value.is_floating_point():
            payload["networks"]["generator"][key] = torch.full_like(value, float("nan"))
            break
    torch.save(payload, d / "nan.pt")
    payload = torch.load(model, weights_only=True)
    payload["config"]["generator"]["gf_dim"] = "16"
    torch.save(payload, d / "badtype.pt")
    del payload["config"]
    torch.save(payload, d / "noconfig.pt")
    (d / "a_file").write_text("not a folder")
    escape = d / "escape"
    escape.mkdir()
    Image.new("RGB", (32, 32), "red").save(d / "outside.png")
    (escape / "captions.jsonl").write_text(
        json.dumps({"image": "../outside.png", "caption": "a red disk"}) + "\n")
    absolute = d / "absolute"
    absolute.mkdir()
    (absolute / "captions.jsonl").write_text(
        json.dumps({"image": str(d / "outside.png"), "caption": "a red disk"}) + "\n")
    return d




def _run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: usage error
        code = exc.code
    err = capsys.readouterr().err
    return code, err


GEN = "generate"

CASES = [
    # (name, argv template, expected text in stderr)
    ("missing checkpoint", [GEN, "a red disk", "--checkpoint", "{d}/none.pt"], "not found"),
    ("truncated checkpoint", [GEN, "a red disk", "--checkpoint", "{d}/truncated.pt"], "cannot read"),
    ("random-bytes checkpoint", [GEN, "a red disk", "--checkpoint", "{d}/random.pt"], "cannot read"),
    ("empty checkpoint", [GEN, "a red disk", "--checkpoint", "{d}/empty.pt"], "cannot read"),
    ("released file as checkpoint", [GEN, "a red disk", "--checkpoint", "{d}/released.pth"],
     "not a dmgan checkpoint"),
    ("malicious pickle checkpoint", [GEN, "a red disk", "--checkpoint", "{d}/evil.pt"], "cannot read"),
    ("empty caption", [GEN, "", "--checkpoint", "{d}/model.pt"], "has no words"),
    ("unknown words only", [GEN, "zebra giraffe", "--checkpoint", "{d}/model.pt"], "no word of"),
    ("10,000-word caption", [GEN, " ".join(["red"] * 10000), "--checkpoint", "{d}/model.pt"],
     "characters long at most"),
    ("non-UTF-8 caption file", [GEN, "--file", "{d}/latin1.txt", "--checkpoint", "{d}/model.pt"],
     "not UTF-8"),
    ("missing caption file", [GEN, "--file", "{d}/nofile.txt", "--checkpoint", "{d}/model.pt"],
     "caption file not found"),
    ("no caption at all", [GEN, "--checkpoint", "{d}/model.pt"], "give a caption"),
    ("output folder missing", [GEN, "a red disk", "--checkpoint", "{d}/model.pt", "-o",
                               "{d}/no/dir/x.png"], "output folder does not exist"),
    ("unwritable output", [GEN, "a red disk", "--checkpoint", "{d}/model.pt", "-o",
                           "/proc/dmgan-test.png"], "cannot write"),
    ("zero images", [GEN, "a red disk", "--checkpoint", "{d}/model.pt", "-n", "0"],
     "argument -n: 0 is out of range"),
    ("non-PNG output", [GEN, "a red disk", "--checkpoint", "{d}/model.pt", "-o", "{d}/x.jpg"],
     "must be a .png"),
    ("explain: unknown words only", ["explain", "zebra", "--checkpoint", "{d}/model.pt"], "no word"),
    ("unknown preset", ["info", "--preset", "birds"], "invalid choice"),
    ("eval: missing folder", ["eval", "--images", "{d}/nowhere", "--metrics", "is"], "not found"),
    ("eval: corrupt image", ["eval", "--images", "{d}/corrupt", "--metrics", "is",
                             "--inception-weights", "{d}/fid.pth"], "bad.png"),
    ("eval: empty image file", ["eval", "--images", "{d}/empty_img", "--metrics", "is",
                                "--inception-weights", "{d}/fid.pth"], "zero.png"),
    ("eval: truncated image", ["eval", "--images", "{d}/trunc_img", "--metrics", "is",
                               "--inception-weights", "{d}/fid.pth"], "half.png"),
    ("eval: FID without reference", ["eval", "--images", "{d}/imgs", "--metrics", "fid",
                                     "--inception-weights", "{d}/released.pth"],
     "FID needs reference"),
    ("eval: bad statistics file", ["eval", "--images", "{d}/imgs", "--metrics", "fid",
                                   "--ref-stats", "{d}/bad_stats.npz", "--inception-weights",
                                   "{d}/fid.pth"], "'mu' and 'sigma'"),
    ("eval: missing Inception weights", ["eval", "--images", "{d}/imgs", "--metrics", "is",
                                         "--inception-weights", "{d}/none.pth"], "pt_inception"),
    ("train: negative batch size", ["train", "--preset", "shapes", "--data", "shapes", "--out",
                                    "{d}/run", "--batch-size", "-1"], "out of range: must be >= 2"),
    ("train: missing data", ["train", "--preset", "shapes", "--data", "{d}/nodata", "--out",
                             "{d}/run", "--damsm", "{d}/model.pt"], "not found"),
    ("pretrain: missing data", ["pretrain-damsm", "--preset", "shapes", "--data", "{d}/nodata",
                                "--out", "{d}/dm"], "data folder not found"),
    ("convert: malicious captions.pickle", ["convert-released", "--preset", "bird", "--netG",
                                            "{d}/released.pth", "--text-encoder",
                                            "{d}/released.pth", "--captions", "{d}/evil.pickle",
                                            "-o", "{d}/out.pt"], "refused"),
    ("convert: truncated captions.pickle", ["convert-released", "--preset", "bird", "--netG",
                                            "{d}/released.pth", "--text-encoder",
                                            "{d}/released.pth", "--captions", "{d}/trunc.pickle",
                                            "-o", "{d}/out.pt"], "not a readable pickle"),
    ("oracle: random bytes", ["shapes-oracle", "--oracle", "{d}/random.pt", "--held-out", "10"],
     "cannot read"),
    ("export: not a training checkpoint", ["export", "--checkpoint", "{d}/released.pth", "-o",
                                           "{d}/small.pt"], "not a dmgan checkpoint"),
    ("generate: NaN weights", [GEN, "a red disk", "--checkpoint", "{d}/nan.pt"],
     "NaN or infinite"),
    ("generate: config value of the wrong type", [GEN, "a red disk", "--checkpoint",
                                                  "{d}/badtype.pt"], "gf_dim must be int"),
    ("generate: no config", [GEN, "a red disk", "--checkpoint", "{d}/noconfig.pt"],
     "has no config"),
    ("train: --out is a file", ["train", "--preset", "tiny", "--data", "shapes", "--out",
                                "{d}/a_file", "--damsm", "{d}/model.pt"], "is a file"),
    ("pretrain: --out is a file", ["pretrain-damsm", "--preset", "tiny", "--data", "shapes",
                                   "--out", "{d}/a_file"], "is a file"),
    ("eval: --save-images is a file", ["eval", "--checkpoint", "{d}/model.pt", "--data",
                                       "{d}/escape", "--save-images", "{d}/a_file"], "is a file"),
    ("eval: --cache-dir is a file", ["eval", "--images", "{d}/imgs", "--cache-dir",
                                     "{d}/a_file"], "is a file"),
    ("pretrain: image path outside the data", ["pretrain-damsm", "--preset", "tiny", "--data",
                                               "{d}/escape", "--out", "{d}/dm2"],
     "inside the dataset folder"),
    ("pretrain: absolute image path", ["pretrain-damsm", "--preset", "tiny", "--data",
                                       "{d}/absolute", "--out", "{d}/dm3"],
     "inside the dataset folder"),
    ("check-released: other preset", ["check-released", "--preset", "coco", "--netG",
                                      "{d}/released.pth"], "does not fit"),
]


_TRAIN = ["train", "--preset", "tiny", "--data", "shapes", "--out", "{d}/run"]
# numbers nobody checked: each is a usage error (exit 2, the option named), before any work
CASES += [
    (f"numbers: {' '.join(extra)}", argv + list(extra), needle)
    for argv, extra, needle in [
        (_TRAIN, ("--seed", "x1"), "not an integer"),
        (_TRAIN, ("--batch-size", "1"), "must be >= 2"),
        (_TRAIN, ("--batch-size", "0"), "must be >= 2"),
        (_TRAIN, ("--vocab-size", "0"), "must be >= 2"),
        (_TRAIN, ("--ckpt-every", "0"), "--ckpt-every"),
        (_TRAIN, ("--log-every", "0"), "--log-every"),
        (_TRAIN, ("--workers", "-1"), "--workers"),
        (_TRAIN, ("--minutes", "0"), "must be > 0.0"),
        (_TRAIN, ("--minutes", "nan"), "--minutes"),
        (_TRAIN, ("--max-steps", "-5"), "--max-steps"),
        (_TRAIN, ("--keep", "0"), "--keep"),
        (_TRAIN, ("--min-damsm-r1", "2"), "--min-damsm-r1"),
        ([GEN, "a red disk"], ("-n", "0"), "must be >= 1"),
        (["demo"], ("--minutes", "0"), "--minutes"),
        (["demo"], ("--minutes", "0.3"), "more than 0.5"),
        (["shapes-oracle"], ("--held-out", "0"), "--held-out"),
        (["serve"], ("--port", "70000"), "between 1 and 65535"),
        (["serve"], ("--queue", "-2"), "--queue"),
        (["eval", "--images", "{d}/imgs"], ("--splits", "0"), "--splits"),
        (["eval", "--images", "{d}/imgs"], ("--folds", "0"), "--folds"),
        (["pretrain-damsm", "--preset", "tiny", "--data", "shapes", "--out", "{d}/dm"],
         ("--target-r1", "0"), "--target-r1"),
        (["pretrain-damsm", "--preset", "tiny", "--data", "shapes", "--out", "{d}/dm"],
         ("--target-near-miss", "1.5"), "--target-near-miss"),
        (["demo"], ("--preset", "bird"), "--preset"),
    ]
]


def _contents(*folders: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for f in folders for p in f.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name,argv,needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, argv, needle, files, capsys, tmp_path):
    out = tmp_path / "out.png"
    out.write_bytes(OLD)
    argv = [a.replace("{d}", str(files)) for a in argv]
    if argv[0] == GEN and "-o" not in argv:
        argv += ["-o", str(out)]
    before = _contents(files, tmp_path)
    code, err = _run(argv, capsys)
    assert code == 2, (name, err)
    assert needle in err, (name, err)
    assert "Traceback" not in err
    # nothing already written is lost: every file of the fixtures and of the output folder
    # is still there, byte for byte (out.png among them, where the command writes)
    after = _contents(files, tmp_path)
    assert all(after.get(p) == data for p, data in before.items()), name
    assert not (files / "PWNED").exists()


def test_full_disk_while_saving_keeps_the_old_file(files, capsys, tmp_path, monkeypatch):
    out = tmp_path / "out.png"
    out.write_bytes(OLD)

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    code, err = _run([GEN, "a red disk", "--checkpoint", str(files / "model.pt"), "-o", str(out)],
                     capsys)
    assert code == 2 and "No space left on device" in err
    assert out.read_bytes() == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "LA", "CMYK"])
def test_unusual_image_modes_work(tmp_path, mode):
    from dmgan.imageio import read_image

    if mode == "I;16":
        img = Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))
    else:
        img = Image.new("RGB", (64, 64), (200, 30, 30)).convert(mode)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    img.save(path)
    rgb = read_image(path)
    assert rgb.mode == "RGB" and rgb.size == (64, 64)
    if mode == "I;16":
        arr = np.asarray(rgb)
        assert arr.max() > 200 and arr.min() == 0  # scaled, not clipped to white


@pytest.mark.parametrize("size", [(1, 100_000), (100_000, 2), (9000, 9000)])
def test_huge_or_thin_images_are_refused_before_decoding(tmp_path, size):
    from dmgan.imageio import read_image

    path = tmp_path / "x.png"
    Image.new("L", size).save(path)
    with pytest.raises(DMGANError, match="refused image"):
        read_image(path)


def test_a_decompression_bomb_is_a_clear_error(tmp_path, monkeypatch):
    from dmgan.imageio import read_image

    path = tmp_path / "x.png"
    Image.new("RGB", (600, 600)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL raises above 2x this
    with pytest.raises(DMGANError, match="refused image"):
        read_image(path)


def test_a_failed_eval_leaves_no_temporary_folder(files, capsys, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code, err = _run(["eval", "--checkpoint", str(files / "model.pt"), "--data",
                      str(files / "nowhere")], capsys)
    assert code == 2 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_full_disk_inside_torch_save_is_a_clear_error(tmp_path, monkeypatch):
    import io

    from dmgan.checkpoint import atomic_torch_save

    path = tmp_path / "ckpt.pt"
    path.write_bytes(OLD)

    real_save = torch.save

    def failing_save(obj, f, *a, **k):
        real_save(obj, io.BytesIO())
        raise RuntimeError("[enforce fail at inline_container.cc] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(DMGANError, match="cannot write .*writing failed"):
        atomic_torch_save({"x": torch.zeros(3)}, path)
    assert path.read_bytes() == OLD and [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_eval_numbers_that_cannot_work(files, capsys, tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    Image.new("RGB", (32, 32), "red").save(one / "a.png")
    weights = str(files / "fid.pth")
    np.savez(tmp_path / "nan.npz", mu=np.full(2048, np.nan), sigma=np.eye(2048))
    np.savez(tmp_path / "ok.npz", mu=np.zeros(2048), sigma=np.eye(2048))
    for argv, needle in [
        (["--images", str(one), "--metrics", "is"], "needs at least 10 images"),
        (["--images", str(one), "--metrics", "fid", "--ref-stats", str(tmp_path / "ok.npz")],
         "at least 2 images"),
    ]:
        code, err = _run(["eval", *argv, "--inception-weights", weights], capsys)
        assert code == 2 and needle in err and "Traceback" not in err, (argv, err)
    two = tmp_path / "two"
    two.mkdir()
    for k in range(2):
        Image.new("RGB", (32, 32), (k * 100, 0, 0)).save(two / f"{k}.png")
    code, err = _run(["eval", "--images", str(two), "--metrics", "fid", "--ref-stats",
                      str(tmp_path / "nan.npz"), "--inception-weights", weights], capsys)
    assert code == 2 and "NaN or infinite" in err


def test_an_output_that_is_a_symlink_loop(files, capsys, tmp_path):
    loop = tmp_path / "x.png"
    loop.symlink_to(loop)
    code, err = _run([GEN, "a red disk", "--checkpoint", str(files / "model.pt"), "-o",
                      str(loop)], capsys)
    assert code == 2 and "cannot write" in err and "Traceback" not in err
    assert loop.is_symlink()


def test_any_integer_seed_is_reduced_into_range(files, tmp_path, capsys):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    big = str(2**64 * 7 + 5)
    assert _run([GEN, "a red disk", "--checkpoint", str(files / "model.pt"), "--seed", big,
                 "-o", str(a)], capsys)[0] == 0
    assert _run([GEN, "a red disk", "--checkpoint", str(files / "model.pt"), "--seed", "5",
                 "-o", str(b)], capsys)[0] == 0
    assert a.read_bytes() == b.read_bytes()
    assert _run([GEN, "a red disk", "--checkpoint", str(files / "model.pt"), "--seed", "-1",
                 "-o", str(a)], capsys)[0] == 0
