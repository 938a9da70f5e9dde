"""Inception-v3 (both variants) and the DAMSM image encoder against the reference vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import SMALL, formula_state_dict

from dmgan import CheckpointError, DMGANError, load_released
from dmgan.metrics.features import MODES, extract, load_inception, preprocess
from dmgan.nn import ImageEncoder, InceptionV3

SHAPES = json.loads((SMALL / "inception_state_dict_shapes.json").read_text())


@pytest.fixture(scope="module")
def vectors():
    with np.load(SMALL / "inception_vectors.npz") as data:
        return {k: data[k] for k in data.files}


def assert_close_scaled(actual: torch.Tensor, expected: np.ndarray, name: str) -> None:
    """1e-4 relative, with the absolute part scaled to the array's largest magnitude.

    With the formula weights, activations reach ~3e4 (batch norm eps 1e-3 over unit
    running variances), so float32 rounding leaves absolute errors of ~1e-5 of the
    largest value; the normwise relative error is ~1e-5 (measured 2.7e-5 at most).
    """
    exp = torch.from_numpy(expected).float()
    scale = exp.abs().max().item()
    torch.testing.assert_close(actual.float(), exp, rtol=1e-4, atol=1e-4 * scale,
                               msg=lambda m: f"{name}: {m}")
    assert ((actual.double() - exp.double()).norm() / exp.double().norm()).item() < 1e-4


def test_damsm_image_encoder(vectors, tmp_path):
    state = formula_state_dict(SHAPES["damsm_image_encoder_nef32"])
    path = tmp_path / "image_encoder200.pth"
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, path,
               _use_new_zipfile_serialization=False)
    enc = load_released(ImageEncoder(embed_dim=32), path).eval()
    with torch.no_grad():
        regions, code = enc(torch.from_numpy(vectors["damsm_image.input"]))
    assert regions.shape == (2, 32, 17, 17)
    assert_close_scaled(regions, vectors["damsm_image.features"], "features")
    assert_close_scaled(code, vectors["damsm_image.cnn_code"], "cnn_code")


def test_fid_inception(vectors, tmp_path):
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(formula_state_dict(SHAPES["fid_inception"]), path)
    mode = MODES["pytorch-fid"]
    net = load_inception(path, mode)
    images = torch.from_numpy(vectors["fid.input_uint8"])
    feats = extract(list(images), net, mode, batch_size=2)
    assert_close_scaled(torch.from_numpy(feats["pool3"]), vectors["fid.pool3"], "pool3")
    assert_close_scaled(torch.from_numpy(feats["logits"]), vectors["fid.logits"], "logits")
    # the preprocessing equals the reference recipe applied to the batch at once
    x = F.interpolate(images.float() / 255, size=(299, 299), mode="bilinear",
                      align_corners=False) * 2 - 1
    assert torch.allclose(torch.stack([preprocess(i, mode) for i in images]), x, atol=1e-6)


def test_torchvision_variant_has_the_imagenet_key_set():
    fid_keys = set(SHAPES["fid_inception"])
    tv = InceptionV3(variant="torchvision").state_dict()
    assert {k for k in tv if not k.startswith("AuxLogits.")} == fid_keys
    assert tv["fc.weight"].shape == (1000, 2048)
    assert tv["AuxLogits.conv1.conv.weight"].shape == (768, 128, 5, 5)
    assert tv["AuxLogits.fc.weight"].shape == (1000, 768)


def test_missing_weights_say_which_file(tmp_path):
    with pytest.raises(DMGANError, match="pt_inception-2015-12-05-6726825d.pth"):
        load_inception(tmp_path / "nope.pth", MODES["pytorch-fid"])
    with pytest.raises(DMGANError, match="inception_v3_google"):
        load_inception(None, MODES["dmgan-legacy"])
    wrong = tmp_path / "wrong.pth"
    torch.save(formula_state_dict(SHAPES["fid_inception"]), wrong)
    with pytest.raises(CheckpointError, match="AuxLogits"):  # FID file given to legacy mode
        load_inception(wrong, MODES["dmgan-legacy"])


@pytest.mark.parametrize("mode_name", ["pytorch-fid", "dmgan-legacy"])
def test_features_do_not_depend_on_batch_size(mode_name):
    torch.manual_seed(0)
    mode = MODES[mode_name]
    net = InceptionV3(variant=mode.variant).eval()
    gen = torch.Generator().manual_seed(1)
    images = [torch.randint(0, 256, (3, 40 + 8 * i, 48), dtype=torch.uint8, generator=gen)
              for i in range(5)]
    one = extract(images, net, mode, batch_size=1)
    many = extract(images, net, mode, batch_size=3)
    for key in ("pool3", "logits"):
        np.testing.assert_allclose(one[key], many[key], rtol=1e-4, atol=1e-4)


def test_image_encoder_freezes_trunk_and_feeds_generator_loss():
    from dmgan import build_discriminators, build_generator, preset
    from dmgan.losses import generator_loss
    from dmgan.nn.text_encoder import TextEncoding

    cfg = preset("small")
    torch.manual_seed(0)
    g, ds = build_generator(cfg).train(), build_discriminators(cfg)
    enc = ImageEncoder(embed_dim=32).freeze_trunk().eval()
    assert {n for n, p in enc.named_parameters() if p.requires_grad} == {
        "emb_features.weight", "emb_cnn_code.weight", "emb_cnn_code.bias"}
    lengths = torch.tensor([4, 2])
    words = torch.randn(2, 32, 4)
    text = TextEncoding(words=words, sentence=torch.randn(2, 32),
                        mask=torch.arange(4)[None] >= lengths[:, None])
    out = g(torch.randn(2, 20), text.sentence, text.words, text.mask)
    loss = generator_loss(ds, out, text, lengths, enc, cfg.loss, class_ids=torch.tensor([1, 2]))
    assert torch.isfinite(loss.total) and loss.damsm_words > 0 and loss.damsm_sentence > 0
    loss.total.backward()
    assert g.to_rgb[-1].weight.grad is not None


def test_legacy_preprocessing_uses_imagenet_constants_folded_into_minus_one_to_one():
    """dmgan-legacy: [0, 1] pixels through torchvision's ImageNet input transform,
    x * (std / 0.5) + (mean - 0.5) / 0.5 with mean (0.485, 0.456, 0.406) and std
    (0.229, 0.224, 0.225) (torchvision's documented ImageNet constants): black and white
    pixels land on these numbers, worked out by hand."""
    mode = MODES["dmgan-legacy"]
    for value, want in ((0, (-0.03, -0.088, -0.188)), (255, (0.428, 0.36, 0.262))):
        image = torch.full((3, 20, 30), value, dtype=torch.uint8)
        x = preprocess(image, mode)
        assert x.shape == (3, 299, 299)
        for channel, expected in enumerate(want):
            torch.testing.assert_close(x[channel], torch.full((299, 299), expected),
                                       rtol=0, atol=1e-5)
    fid = preprocess(torch.full((3, 20, 30), 255, dtype=torch.uint8), MODES["pytorch-fid"])
    torch.testing.assert_close(fid, torch.ones(3, 299, 299))  # the FID mode: [-1, 1] as is


def test_legacy_features_equal_the_recorded_ones():
    """Features of two fixed images through the legacy mode and formula weights, recorded on
    2026-12-04 (tests/data/legacy_fid_features.npz): a change to the preprocessing or the
    torchvision variant moves them."""
    from conftest import DATA

    net = InceptionV3(variant="torchvision").eval()
    net.load_state_dict(formula_state_dict({k: list(v.shape) for k, v in net.state_dict().items()}))
    with np.load(DATA / "legacy_fid_features.npz") as rec:
        feats = extract(list(torch.from_numpy(rec["images"])), net, MODES["dmgan-legacy"],
                        batch_size=2)
        np.testing.assert_allclose(feats["pool3"][:, :64], rec["pool3"], rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(feats["logits"][:, :32], rec["logits"], rtol=1e-4, atol=1e-3)
