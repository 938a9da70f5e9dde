"""Our networks and losses reproduce the released implementation's recorded vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import SMALL, assert_close, formula_state_dict, t

from dmgan import build_discriminators, build_generator, build_text_encoder, load_released, preset
from dmgan.losses import discriminator_loss, kl_loss, sentence_loss, words_loss

CFG = preset("small")


def test_formula_rebuilds_the_small_files():
    shapes = json.loads((SMALL / "state_dict_shapes.json").read_text())
    for name in ("netG", "netD0", "netD1", "netD2", "text_encoder"):
        stored = torch.load(SMALL / f"{name}.pth", map_location="cpu", weights_only=True)
        built = formula_state_dict(shapes[name])
        assert list(stored) == list(shapes[name])
        for key, value in built.items():
            torch.testing.assert_close(stored[key], value, rtol=0, atol=0, msg=key)


@pytest.fixture(scope="module")
def text_encoder():
    return load_released(build_text_encoder(CFG), SMALL / "text_encoder.pth").eval()


@pytest.fixture
def generator():
    # fresh per test: a train-mode forward updates the batch-norm running statistics
    return load_released(build_generator(CFG), SMALL / "netG.pth")


def test_text_encoder(text_encoder, vectors):
    with torch.no_grad():
        enc = text_encoder(t(vectors["captions"]), t(vectors["cap_lens"]))
    assert_close(enc.words, vectors["words_emb"], name="words_emb")
    assert_close(enc.sentence, vectors["sent_emb"], name="sent_emb")
    assert torch.equal(enc.mask, t(vectors["mask"]))


def test_text_encoder_accepts_any_length_order(text_encoder, vectors):
    perm = torch.tensor([2, 0, 1])
    caps, lens = t(vectors["captions"])[perm], t(vectors["cap_lens"])[perm]
    with torch.no_grad():
        enc = text_encoder(caps, lens)
    assert_close(enc.words, vectors["words_emb"][perm.numpy()], name="words_emb permuted")
    assert_close(enc.sentence, vectors["sent_emb"][perm.numpy()], name="sent_emb permuted")


def _run(generator, vectors, mode):
    generator.train(mode == "train")
    with torch.no_grad():
        return generator(t(vectors["noise"]), t(vectors["sent_emb"]), t(vectors["words_emb"]),
                         t(vectors["mask"]), sample_condition=False)


def test_generator_train_mode(generator, vectors):
    out = _run(generator, vectors, "train")
    for i in range(3):
        assert_close(out.images[i], vectors[f"train.fake_img{i}"], name=f"fake_img{i}")
    for i in range(2):
        assert_close(out.attention[i], vectors[f"train.att{i}"], name=f"att{i}")
        assert_close(out.writing_gates[i], vectors[f"train.h_net{i + 2}.writing_gate"],
                     name=f"h_net{i + 2}.writing_gate")
        assert_close(out.response_gates[i], vectors[f"train.h_net{i + 2}.response_gate"],
                     name=f"h_net{i + 2}.response_gate")
    assert_close(out.mu, vectors["train.mu"], name="mu")
    assert_close(out.logvar, vectors["train.logvar"], name="logvar")


def _fraction_close(actual: torch.Tensor, expected: np.ndarray) -> float:
    expected_t = torch.from_numpy(expected).double()
    ok = (actual.double() - expected_t).abs() <= 1e-5 + 1e-4 * expected_t.abs()
    return ok.double().mean().item()


def test_generator_eval_mode(generator, vectors):
    out = _run(generator, vectors, "eval")
    # Well-conditioned part: everything up to and including the first memory stage.
    assert_close(out.images[0], vectors["eval.fake_img0"], name="fake_img0")
    assert_close(out.attention[0], vectors["eval.att0"], name="att0")
    for i in range(2):
        assert_close(out.writing_gates[i], vectors[f"eval.h_net{i + 2}.writing_gate"],
                     name=f"h_net{i + 2}.writing_gate")
    assert_close(out.response_gates[0], vectors["eval.h_net2.response_gate"],
                 name="h_net2.response_gate")
    assert_close(out.mu, vectors["eval.mu"], name="mu")
    assert_close(out.logvar, vectors["eval.logvar"], name="logvar")
    # With the formula weights, eval-mode batch norm (running statistics) lets activations
    # grow to ~1e3 after stage 2 and ~1e5 after stage 3, where float32 rounding decides
    # some saturated softmax/tanh values: our own float32 and float64 runs disagree on 11%
    # of the 256 px pixels. There we require agreement on nearly all elements and a mean
    # error near the measured one (measured 2026-12-04: 99.93%, 99.0%, 99.95%, 87.9% of the
    # elements; mean error 1.3e-5 on the 256 px image), and check the train-mode pass, which
    # is well conditioned, element for element above.
    assert _fraction_close(out.images[1], vectors["eval.fake_img1"]) > 0.999
    assert _fraction_close(out.attention[1], vectors["eval.att1"]) > 0.985
    assert _fraction_close(out.response_gates[1], vectors["eval.h_net3.response_gate"]) > 0.999
    assert _fraction_close(out.images[2], vectors["eval.fake_img2"]) > 0.87
    assert (out.images[2] - t(vectors["eval.fake_img2"])).abs().mean().item() < 1e-4
    # the control: the same network on other noise agrees on 38% with a mean error of 0.39
    other = dict(vectors, noise=vectors["noise"][::-1].copy())
    wrong = _run(generator, other, "eval").images[2]
    assert _fraction_close(wrong, vectors["eval.fake_img2"]) < 0.87
    assert (wrong - t(vectors["eval.fake_img2"])).abs().mean().item() > 1e-4


def test_kl(vectors):
    assert_close(kl_loss(t(vectors["eval.mu"]), t(vectors["eval.logvar"])), vectors["kl_loss"],
                 name="kl_loss")


def real_image(i: int) -> torch.Tensor:
    size = 64 * 2**i
    k = np.arange(3 * 3 * size * size, dtype=np.float64)
    return torch.from_numpy(np.tanh(2 * np.sin(0.3 * k + i)).astype(np.float32)
                            ).reshape(3, 3, size, size)


@pytest.mark.parametrize("i", [0, 1, 2])
def test_discriminator(i, vectors):
    real = real_image(i)
    key = f"real_img{i}"
    assert_close(real if i == 0 else real[:, :, :2, :2], vectors[key], name=key)
    d = load_released(build_discriminators(CFG)[i], SMALL / f"netD{i}.pth").eval()
    with torch.no_grad():
        out = d.judge(real, t(vectors["sent_emb"]))
    assert_close(out.features, vectors[f"D{i}.features_real"], name="features")
    assert_close(torch.sigmoid(out.cond_logits), vectors[f"D{i}.cond_logits_real"], name="cond")
    assert_close(torch.sigmoid(out.uncond_logits), vectors[f"D{i}.uncond_logits_real"],
                 name="uncond")

    fresh = load_released(build_discriminators(CFG)[i], SMALL / f"netD{i}.pth").train()
    loss = discriminator_loss(fresh, real, t(vectors[f"eval.fake_img{i}"]), t(vectors["sent_emb"]))
    assert_close(loss.total, vectors[f"D{i}.errD"], name="errD")


@pytest.mark.parametrize("masked", [False, True])
def test_damsm_losses(masked, vectors):
    regions, code = t(vectors["damsm.region_features"]), t(vectors["damsm.cnn_code"])
    class_ids = t(vectors["damsm.class_ids"]) if masked else None
    prefix = "damsm.masked." if masked else "damsm."
    w = words_loss(regions, t(vectors["words_emb"]), t(vectors["cap_lens"]), class_ids,
                   gamma1=4.0, gamma2=5.0, gamma3=10.0)
    s0, s1 = sentence_loss(code, t(vectors["sent_emb"]), class_ids, gamma3=10.0)
    assert_close(w.loss0, vectors[prefix + "w_loss0"], name="w_loss0")
    assert_close(w.loss1, vectors[prefix + "w_loss1"], name="w_loss1")
    assert_close(s0, vectors[prefix + "s_loss0"], name="s_loss0")
    assert_close(s1, vectors[prefix + "s_loss1"], name="s_loss1")
    if not masked:
        for i in range(3):
            assert_close(w.attention[i], vectors[f"damsm.att{i}"], name=f"att{i}")
