"""Properties of the networks and losses beyond the recorded vectors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dmgan import build_discriminators, build_generator, preset
from dmgan.config import GeneratorConfig, override
from dmgan.losses import discriminator_loss, generator_adversarial_loss, kl_loss, words_loss
from dmgan.nn import Discriminator, MemoryStage
from dmgan.nn.memory import released_row_mask


def _words_loss_loop(regions, words, lengths, class_ids, g1, g2, g3):
    """A per-caption loop in the released style, as an independent check of the batched form."""
    b, d, h, w = regions.shape
    ctx = regions.reshape(b, d, h * w)
    sims = []
    for i in range(b):
        n = int(lengths[i])
        word = words[i, :, :n].unsqueeze(0).expand(b, d, n)
        attn = torch.bmm(ctx.transpose(1, 2), word)  # (b, R, n)
        attn = torch.softmax(attn, dim=2)
        attn = torch.softmax(attn.transpose(1, 2) * g1, dim=2)  # (b, n, R)
        wc = torch.bmm(ctx, attn.transpose(1, 2))  # (b, d, n)
        cos = F.cosine_similarity(word, wc, dim=1, eps=1e-8)
        sims.append(torch.log(torch.exp(cos * g2).sum(1, keepdim=True)))
    s = torch.cat(sims, 1) * g3
    if class_ids is not None:
        same = (class_ids[:, None] == class_ids[None, :]) & ~torch.eye(b, dtype=torch.bool)
        s = s.masked_fill(same, float("-inf"))
    labels = torch.arange(b)
    return F.cross_entropy(s, labels), F.cross_entropy(s.t(), labels)


@pytest.mark.parametrize("with_classes", [False, True])
def test_batched_words_loss_equals_loop(with_classes):
    torch.manual_seed(0)
    b, d, t = 6, 16, 9
    regions = torch.randn(b, d, 5, 5)
    words = torch.randn(b, d, t)
    lengths = torch.tensor([9, 3, 5, 1, 7, 9])
    words = words * (torch.arange(t)[None, :] < lengths[:, None]).unsqueeze(1)
    class_ids = torch.tensor([0, 1, 0, 2, 1, 3]) if with_classes else None
    got = words_loss(regions, words, lengths, class_ids, gamma1=4.0, gamma2=5.0, gamma3=10.0)
    want = _words_loss_loop(regions, words, lengths, class_ids, 4.0, 5.0, 10.0)
    torch.testing.assert_close(got.loss0, want[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.loss1, want[1], rtol=1e-5, atol=1e-5)
    assert [a.shape[1] for a in got.attention] == lengths.tolist()


@pytest.mark.parametrize("regions_side", [3, 5])  # 9 regions < 16 features: the Gram form
def test_words_loss_equals_loop_in_values_and_gradients(regions_side):
    torch.manual_seed(1)
    b, d, t = 5, 16, 7
    lengths = torch.tensor([7, 2, 5, 7, 1])
    regions = torch.randn(b, d, regions_side, regions_side, dtype=torch.float64)
    words = torch.randn(b, d, t, dtype=torch.float64)
    words = words * (torch.arange(t)[None, :] < lengths[:, None]).unsqueeze(1)
    grads = []
    for fn in (lambda r, w: words_loss(r, w, lengths, gamma1=4.0, gamma2=5.0, gamma3=10.0),
               lambda r, w: _words_loss_loop(r, w, lengths, None, 4.0, 5.0, 10.0)):
        r, w = regions.clone().requires_grad_(True), words.clone().requires_grad_(True)
        out = fn(r, w)
        loss0, loss1 = (out.loss0, out.loss1) if hasattr(out, "loss0") else out
        (loss0 + 2 * loss1).backward()
        grads.append((loss0.detach(), loss1.detach(), r.grad, w.grad))
    for got, want in zip(*grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def test_words_loss_sees_no_difference_between_a_region_grid_and_its_upsampled_copy():
    """Why the small DAMSM encoder keeps 4 x 4 regions of a 32 px input rather than an
    8 x 8 copy of them: the word attention's context, and so the loss, are the same, at a
    quarter of the cost."""
    from dmgan.nn.image_encoder import SmallImageEncoder

    torch.manual_seed(0)
    b, d, t = 5, 8, 6
    regions, words = torch.randn(b, d, 4, 4), torch.randn(b, d, t)
    lengths = torch.tensor([6, 2, 4, 6, 3])
    small = words_loss(regions, words, lengths, gamma1=4.0, gamma2=5.0, gamma3=10.0)
    copy = words_loss(regions.repeat_interleave(2, 2).repeat_interleave(2, 3), words, lengths,
                      gamma1=4.0, gamma2=5.0, gamma3=10.0)
    torch.testing.assert_close(small.loss0, copy.loss0)
    torch.testing.assert_close(small.loss1, copy.loss1)
    enc = SmallImageEncoder(embed_dim=d, width=4, image_size=32).eval()
    assert enc(torch.rand(2, 3, 32, 32))[0].shape == (2, d, 4, 4)
    assert enc(torch.rand(2, 3, 64, 64))[0].shape == (2, d, 4, 4)  # resized to 32 first
    assert SmallImageEncoder(embed_dim=d, width=4)(torch.rand(2, 3, 64, 64))[0].shape == (2, d, 8, 8)


def test_released_mask_interleaves_rows_and_exact_mask_does_not():
    mask = torch.tensor([[0, 0, 0], [0, 0, 1], [0, 1, 1]], dtype=torch.bool)
    rows = released_row_mask(mask, num_pixels=4)  # (B, T, Q)
    for b in range(3):
        for q in range(4):
            assert torch.equal(rows[b, :, q], mask[(b * 4 + q) % 3])
    assert torch.equal(released_row_mask(mask[:1], 4).expand(1, 3, 4), mask[:1].unsqueeze(2).expand(1, 3, 4))

    torch.manual_seed(0)
    stage = MemoryStage(gf_dim=4, embed_dim=6, res_blocks=1, mask_mode="exact").eval()
    h, words = torch.randn(3, 4, 4, 4), torch.randn(3, 6, 3)
    out = stage(h, words, mask)
    att = out.attention.flatten(2)  # (B, T, Q)
    assert torch.all(att.masked_select(mask.unsqueeze(2).expand_as(att)) == 0)
    torch.testing.assert_close(att.sum(1), torch.ones(3, 16))
    # exact mode: a sample's output does not depend on the rest of the batch
    alone = stage(h[1:2], words[1:2], mask[1:2])
    torch.testing.assert_close(alone.features, out.features[1:2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size,df", [(16, 4), (32, 4), (64, 4), (128, 2), (512, 2)])
def test_discriminator_any_power_of_two(size, df):
    d = Discriminator(image_size=size, df_dim=df, embed_dim=8)
    out = d.judge(torch.randn(2, 3, size, size), torch.randn(2, 8))
    assert out.features.shape == (2, df * 8, 4, 4)
    assert out.cond_logits.shape == (2,) and out.uncond_logits.shape == (2,)
    assert len(d.down) == len(d.squeeze) == max(0, (size // 64).bit_length() - 1)


def test_word_matching_discriminator_reads_the_words_where_it_looks():
    torch.manual_seed(0)
    plain = Discriminator(image_size=32, df_dim=4, embed_dim=8).eval()
    d = Discriminator(image_size=32, df_dim=4, embed_dim=8, word_match=True).eval()
    d.load_state_dict({**plain.state_dict(),
                       **{k: v for k, v in d.state_dict().items() if k.startswith("word_")}})
    torch.nn.init.zeros_(d.word_joint.weight)
    torch.nn.init.zeros_(d.word_joint.bias)
    images, sent = torch.randn(3, 3, 32, 32), torch.randn(3, 8)
    words = torch.randn(3, 8, 6)
    mask = torch.zeros(3, 6, dtype=torch.bool)
    mask[1, 4:] = True
    with torch.no_grad():
        f = d(images)
        # the word part starting at zero adds nothing: the D it was made from, unchanged
        torch.testing.assert_close(d.cond_logits(f, sent, words, mask), plain.cond_logits(f, sent))
        torch.nn.init.normal_(d.word_joint.weight)
        base = d.cond_logits(f, sent, words, mask)
        other = words.clone()
        other[:, :, 2] += 1.0
        assert (d.cond_logits(f, sent, other, mask) - base).abs().min() > 1e-4
        padded = words.clone()
        padded[1, :, 4:] = 100.0  # padding is never read
        torch.testing.assert_close(d.cond_logits(f, sent, padded, mask), base)
        read = d.read_words(f, words, mask)
        assert read.shape == (3, 8, 4, 4)
    with pytest.raises(ValueError, match="needs the caption's words"):
        d.cond_logits(f, sent)
    # trains: gradients reach the word reading through the match losses
    d.train()
    loss = discriminator_loss(d, images, images.flip(0), sent, words=words, mask=mask).total
    loss.backward()
    assert d.word_query.weight.grad.abs().sum() > 0


def test_a_training_step_backpropagates_through_everything():
    cfg = preset("small")
    torch.manual_seed(0)
    g, ds = build_generator(cfg).train(), build_discriminators(cfg).train()
    b, t = 3, 5
    words, sent = torch.randn(b, 32, t), torch.randn(b, 32)
    mask = torch.zeros(b, t, dtype=torch.bool)
    mask[2, 3:] = True
    out = g(torch.randn(b, cfg.generator.z_dim), sent, words, mask)
    # D step: two forwards of the same spectral-norm convs before one backward
    d_total = sum(discriminator_loss(d, img.detach() * 0.5, img, sent).total
                  for d, img in zip(ds, out.images, strict=True))
    d_total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for d in ds for p in d.parameters())
    g_total = generator_adversarial_loss(ds, out.images, sent)[0] + kl_loss(out.mu, out.logvar)
    g_total.backward()
    grads = [p.grad for p in g.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)


def test_spectral_norm_updates_u_v_every_forward_and_normalises():
    d = Discriminator(image_size=64, df_dim=2, embed_dim=4)
    conv = d.encoder[0]
    u0 = conv.u.clone()
    d.eval()
    d(torch.randn(1, 3, 64, 64))
    assert not torch.equal(u0, conv.u)  # released semantics: eval mode iterates too
    for _ in range(30):
        w = conv.normalized_weight()
    sigma = torch.linalg.matrix_norm(w.detach().view(w.shape[0], -1), ord=2)
    assert abs(sigma.item() - 1.0) < 1e-3


def test_stage_count_and_base_size_are_free():
    from dmgan.models import build_generator as bg

    cfg = preset("small").replace(generator=GeneratorConfig(gf_dim=4, z_dim=8, condition_dim=4,
                                                            num_stages=3, base_size=16,
                                                            res_blocks=1, mask_mode="exact"))
    g = bg(cfg).eval()
    out = g(torch.randn(2, 8), torch.randn(2, 32), torch.randn(2, 32, 4),
            torch.zeros(2, 4, dtype=torch.bool))
    assert [i.shape[-1] for i in out.images] == [16, 32, 64]
    assert len(build_discriminators(cfg)) == 3


def test_folded_batch_norm_keeps_the_function():
    from conftest import SMALL

    from dmgan import DMGAN, DMGANError, load_released
    from dmgan.nn.fuse import fold_batch_norm

    g = load_released(build_generator(preset("small")), SMALL / "netG.pth")
    torch.manual_seed(0)
    # rescale the formula weights' running statistics so eval-mode activations stay moderate
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            m.running_var.mul_(50.0)
    g.eval()
    args = (torch.randn(3, 20), torch.randn(3, 32), torch.randn(3, 32, 5),
            torch.zeros(3, 5, dtype=torch.bool))
    folded = fold_batch_norm(g).to(memory_format=torch.channels_last)
    with torch.no_grad():
        a, b = g(*args, sample_condition=False), folded(*args, sample_condition=False)
    for x, y in zip(a.images + a.attention, b.images + b.attention, strict=True):
        torch.testing.assert_close(y, x, rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    model = DMGAN.from_preset("small").optimize_for_inference()
    with pytest.raises(DMGANError, match="optimized for inference"):
        model.save("never.pt")


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("with_bias", [False, True])
def test_fused_upsample_conv_equals_upsample_then_conv(layout, with_bias, monkeypatch):
    """The four-phase 2x2 form of nearest-x2 + 3x3 conv: same values and gradients, same layout."""
    from dmgan.nn import layers
    from dmgan.nn.layers import layout as layout_of
    from dmgan.nn.layers import phase_kernels, upsample_conv3x3

    monkeypatch.setattr(layers, "PHASE_MIN_PIXELS", 1)  # the phase form even for a small input
    built = []
    monkeypatch.setattr(layers, "phase_kernels", lambda w: built.append(1) or phase_kernels(w))
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64).contiguous(memory_format=layout)
    x.requires_grad_(True)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True) if with_bias else None
    ref = F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest"), w, b, padding=1)
    out = upsample_conv3x3(x, w, b)
    assert out.shape == (2, 4, 10, 14) and built
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(ref)
    inputs = [x, w] + ([b] if with_bias else [])
    for got, want in zip(torch.autograd.grad(out, inputs, grad), torch.autograd.grad(ref, inputs, grad),
                         strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # a channels_last weight makes a channels_last output, as a plain conv does
    wl = w.detach().contiguous(memory_format=layout)
    assert layout_of(upsample_conv3x3(x.detach(), wl, None)) == layout


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_glu_equals_torch_glu_and_keeps_the_gradient_layout(layout):
    from dmgan.nn.layers import glu
    from dmgan.nn.layers import layout as layout_of

    x = torch.randn(3, 8, 4, 5, dtype=torch.float64).contiguous(memory_format=layout)
    x.requires_grad_(True)
    torch.testing.assert_close(glu(x), F.glu(x, dim=1), rtol=0, atol=0)
    grad = torch.randn(3, 4, 4, 5, dtype=torch.float64)
    (got,) = torch.autograd.grad(glu(x), x, grad)
    (want,) = torch.autograd.grad(F.glu(x, dim=1), x, grad)
    torch.testing.assert_close(got, want, rtol=1e-14, atol=1e-14)
    assert layout_of(got) == layout
    assert torch.autograd.gradcheck(glu, (x[:1, :, :2, :2].detach().requires_grad_(True),))
    with pytest.raises(ValueError, match="even number"):
        glu(torch.randn(2, 3))


@pytest.mark.parametrize("batch,side", [(1, 4), (8, 32)])  # outputs fewer / more than weights
def test_spectral_norm_conv_divides_outputs_or_weights_alike(batch, side):
    import copy

    from dmgan.nn.layers import SNConv2d

    torch.manual_seed(0)
    a = SNConv2d(in_ch=16, out_ch=32, kernel_size=4, stride=2, padding=1).double()
    torch.nn.init.normal_(a.bias)
    b = copy.deepcopy(a)
    x = torch.randn(batch, 16, side, side, dtype=torch.float64, requires_grad=True)
    got = a(x)
    want = F.conv2d(x, b.normalized_weight(), b.bias, 2, 1)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a.u, b.u, rtol=0, atol=0)
    grad = torch.randn_like(got)
    for p, q in zip(torch.autograd.grad(got, [x, a.weight, a.bias], grad),
                    torch.autograd.grad(want, [x, b.weight, b.bias], grad), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)


def test_generator_under_torch_compile_matches_eager():
    """The custom autograd functions (GLU, phase interleave) trace under torch.compile."""
    cfg = preset("tiny")
    torch.manual_seed(0)
    g = build_generator(cfg).train().to(memory_format=torch.channels_last)
    args = (torch.randn(4, cfg.generator.z_dim), torch.randn(4, cfg.text.embed_dim),
            torch.randn(4, cfg.text.embed_dim, 6), torch.zeros(4, 6, dtype=torch.bool))
    compiled = torch.compile(g, backend="aot_eager", fullgraph=True)
    outs = []
    for net in (g, compiled):
        out = net(*args, sample_condition=False)
        loss = sum(i.square().mean() for i in out.images)
        grads = torch.autograd.grad(loss, list(g.parameters()))
        outs.append((out.images[-1].detach(), grads))
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=1e-5, atol=1e-5)
    for a, b in zip(outs[1][1], outs[0][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_spectral_norm_reads_a_channels_last_weight_without_changing_anything():
    """SNConv2d reads a channels_last weight in its own order (no copy of the weight per
    forward); outputs, the updated u and v (in the released order) and the weight's
    gradient equal those of the contiguous weight (float64)."""
    from dmgan.nn.layers import SNConv2d

    torch.manual_seed(0)
    a = SNConv2d(in_ch=8, out_ch=16, kernel_size=4, stride=2, padding=1).double()
    b = SNConv2d(in_ch=8, out_ch=16, kernel_size=4, stride=2, padding=1).double()
    b.load_state_dict(a.state_dict())
    b.to(memory_format=torch.channels_last)
    assert not b.weight.is_contiguous()
    x = torch.randn(2, 8, 16, 16, dtype=torch.float64)
    for _ in range(2):  # the second forward starts from the updated u
        ya, yb = a(x), b(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(ya, yb, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(a.u, b.u, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(a.v, b.v, rtol=1e-12, atol=1e-12)
    ya.square().sum().backward()
    yb.square().sum().backward()
    torch.testing.assert_close(a.weight.grad, b.weight.grad, rtol=1e-10, atol=1e-12)


def _reading_generator(first_stage_read_px: int, *, memory: bool = True):
    cfg = preset("small").replace(generator=GeneratorConfig(
        gf_dim=4, z_dim=8, condition_dim=4, num_stages=2, base_size=16, res_blocks=1,
        mask_mode="exact", first_stage_read_px=first_stage_read_px, memory=memory))
    torch.manual_seed(0)
    return build_generator(cfg).eval()


@pytest.mark.parametrize("size", [4, 8, 16])
def test_initial_stage_reads_the_words_where_asked(size):
    g = _reading_generator(size)
    torch.manual_seed(1)
    noise, sentence, words = torch.randn(3, 8), torch.randn(3, 32), torch.randn(3, 32, 5)
    mask = torch.tensor([[0, 0, 0, 0, 0], [0, 0, 0, 1, 1], [0, 1, 1, 1, 1]], dtype=torch.bool)
    with torch.no_grad():
        out = g(noise, sentence, words, mask, sample_condition=False)
        other = words.clone()
        other[:, :, 0] = torch.randn(3, 32)  # another first word, the same sentence code
        changed = g(noise, sentence, other, mask, sample_condition=False)
        padding = words.clone()
        padding[1, :, 3:] = torch.randn(32, 2)  # only padded places of sample 1 differ
        padded = g(noise, sentence, padding, mask, sample_condition=False)
    att = out.init_attention
    assert att.shape == (3, 5, size, size)
    torch.testing.assert_close(att.sum(1), torch.ones(3, size, size))
    assert torch.all(att.flatten(2).masked_select(mask.unsqueeze(2).expand(3, 5, size * size)) == 0)
    # the first image follows the words themselves, not only the sentence code ...
    assert (changed.images[0] - out.images[0]).abs().max() > 1e-4
    # ... and never the padding
    torch.testing.assert_close(padded.images[0], out.images[0], rtol=0, atol=0)


def test_without_word_reading_the_first_image_follows_the_sentence_code_alone():
    for g in (_reading_generator(0), _reading_generator(8, memory=False)):
        assert not hasattr(g.init_stage, "words")
        torch.manual_seed(1)
        args = (torch.randn(2, 8), torch.randn(2, 32))
        mask = torch.zeros(2, 4, dtype=torch.bool)
        with torch.no_grad():
            a = g(*args, torch.randn(2, 32, 4), mask, sample_condition=False)
            b = g(*args, torch.randn(2, 32, 4), mask, sample_condition=False)
        assert a.init_attention is None
        torch.testing.assert_close(a.images[0], b.images[0], rtol=0, atol=0)


def test_word_reading_size_is_validated():
    from dmgan import ConfigError

    base = preset("shapes")
    for bad in (2, 6, 32):
        with pytest.raises(ConfigError, match="first_stage_read_px"):
            override(base, [f"generator.first_stage_read_px={bad}"])
    assert override(base, ["generator.first_stage_read_px=8"]).generator.first_stage_read_px == 8
    assert preset("bird").generator.first_stage_read_px == 0  # the released generator reads no words there


def test_folded_batch_norm_keeps_a_word_reading_generator():
    from dmgan.nn.fuse import fold_batch_norm

    g = _reading_generator(8)
    for m in g.modules():  # non-trivial running statistics
        if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    torch.manual_seed(2)
    args = (torch.randn(2, 8), torch.randn(2, 32), torch.randn(2, 32, 6),
            torch.zeros(2, 6, dtype=torch.bool))
    folded = fold_batch_norm(g)
    with torch.no_grad():
        a, b = g(*args, sample_condition=False), folded(*args, sample_condition=False)
    for x, y in zip(a.images + [a.init_attention], b.images + [b.init_attention], strict=True):
        torch.testing.assert_close(y, x, rtol=1e-4, atol=1e-4)


def test_word_context_starts_at_zero_reads_word_order_and_never_padding():
    from dmgan.nn.word_context import WordContext

    torch.manual_seed(0)
    ctx = WordContext(embed_dim=8, layers=2).eval()
    words = torch.randn(2, 8, 5)
    mask = torch.tensor([[0, 0, 0, 0, 0], [0, 0, 0, 1, 1]], dtype=torch.bool)
    with torch.no_grad():
        ctx.reset_out()  # adds nothing: the words as they came
        torch.testing.assert_close(ctx(words, mask), words, rtol=0, atol=0)
        torch.nn.init.normal_(ctx.out.weight)
        out = ctx(words, mask)
        assert (out - words).abs().max() > 1e-3
        # the same words in another order: word 0 reads them differently (positions count)
        swapped = words[:, :, [0, 2, 1, 3, 4]]
        assert (ctx(swapped, mask)[:, :, 0] - out[:, :, 0]).abs().max() > 1e-4
        padded = words.clone()
        padded[1, :, 3:] = 100.0  # what sits at the padding is never read
        torch.testing.assert_close(ctx(padded, mask)[1, :, :3], out[1, :, :3])
    # any caption length (sinusoidal positions, no table)
    assert ctx(torch.randn(1, 8, 40), None).shape == (1, 8, 40)


def test_word_context_settings_are_validated():
    from dmgan import ConfigError
    from dmgan.config import config_for

    base = preset("tiny")
    with pytest.raises(ConfigError, match="discriminator.word_context"):
        override(base, ["discriminator.word_context=1"])  # D reads no words without word_match
    with pytest.raises(ConfigError, match="generator.word_context"):
        override(base, ["generator.memory=false", "generator.word_context=1"])
    cfg = override(base, ["generator.word_context=1", "discriminator.word_match=true",
                          "discriminator.word_context=1"])
    g, d = build_generator(cfg), build_discriminators(cfg)[0]
    assert not g.context.out.weight.any() and not d.word_context.out.weight.any()
    assert not d.word_places.any()  # where each place is: learned, from zero
    # the no-memory ablation reads no words, so it learns no context
    assert config_for("shapes", memory=False).generator.word_context == 0
    with pytest.raises(ConfigError, match="generator.word_context"):
        config_for("shapes", memory=False, sets=["generator.word_context=1"])
    assert build_generator(preset("bird")).context is None  # released: none


@pytest.mark.parametrize("shape,layout", [((6, 8, 5, 5), torch.contiguous_format),
                                          ((6, 8, 5, 5), torch.channels_last),
                                          ((4, 10), torch.contiguous_format)])
def test_fused_batch_norm_glu_is_glu_of_batch_norm(shape, layout):
    import copy

    from dmgan.nn.layers import bn_glu, glu

    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(shape[1]) if len(shape) == 4 else torch.nn.BatchNorm1d(shape[1])
    torch.nn.init.normal_(bn.weight, 1.0, 0.3)
    torch.nn.init.normal_(bn.bias, 0.0, 0.3)
    plain = copy.deepcopy(bn)
    x = torch.randn(*shape).contiguous(memory_format=layout)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    for _ in range(2):  # the running statistics move alike, step after step
        out, ref = bn_glu(bn, x1), glu(plain(x2))
    assert torch.equal(out, ref)  # the forward is the same computation
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(bn, name), getattr(plain, name)), name
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x1.grad, x2.grad)  # recomputed in the backward, to rounding
    torch.testing.assert_close(bn.weight.grad, plain.weight.grad)
    torch.testing.assert_close(bn.bias.grad, plain.bias.grad)
    assert x1.grad.is_contiguous(memory_format=layout)
    bn.eval()  # evaluation and no-grad take the plain path
    with torch.no_grad():
        torch.testing.assert_close(bn_glu(bn, x), glu(bn(x)), rtol=0, atol=0)
    assert torch.equal(bn_glu(torch.nn.Identity(), x), glu(x))  # a folded batch norm


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("side", [4, 33])  # below and above PHASE_MIN_PIXELS
def test_gating_the_phases_before_interleaving_is_the_up_block(layout, side):
    from dmgan.nn.layers import glu, upsample_conv3x3, upsample_conv3x3_glu

    torch.manual_seed(0)
    x = torch.randn(2, 6, side, side).contiguous(memory_format=layout)
    w = torch.randn(10, 6, 3, 3).contiguous(memory_format=layout)
    b = torch.randn(10)
    with torch.no_grad():
        out, ref = upsample_conv3x3_glu(x, w, b), glu(upsample_conv3x3(x, w, b))
    assert out.shape == (2, 5, 2 * side, 2 * side) and out.is_contiguous(memory_format=layout)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_each_gate_can_be_switched_off_as_in_the_papers_ablation():
    """generator.writing_gate=false: every word is written whole and nothing of the image
    (memory = M_w(words)); generator.response_gate=false: the residual blocks take the image
    features and what was read side by side, ungated (the released code's doubled channels
    are that concatenation's width). On by default; the first stage's reading keeps both."""
    import torch.nn.functional as F

    from dmgan.nn.memory import MemoryStage

    torch.manual_seed(0)
    h, words = torch.randn(2, 8, 4, 4), torch.randn(2, 6, 3)
    mask = torch.tensor([[False, False, True], [False, False, False]])
    plain = MemoryStage(gf_dim=8, embed_dim=6, res_blocks=1, mask_mode="exact").eval()
    assert {"word_gate", "image_gate", "image_memory", "response_gate"} <= {
        n.split(".")[0] for n, _ in plain.named_parameters()}
    no_write = MemoryStage(gf_dim=8, embed_dim=6, res_blocks=1, mask_mode="exact",
                           writing_gate=False).eval()
    assert not {"word_gate", "image_gate", "image_memory"} & {
        n.split(".")[0] for n, _ in no_write.named_parameters()}
    r = no_write.read(h, words, mask)
    assert torch.equal(r.writing_gate, torch.ones(2, 1, 3))
    memory = F.relu(no_write.word_memory(words))  # by hand: the words alone
    key, value = F.relu(no_write.key(memory)), F.relu(no_write.value(memory))
    scores = torch.bmm(key.transpose(1, 2), h.reshape(2, 8, 16)).masked_fill(mask[:, :, None],
                                                                             float("-inf"))
    want = torch.bmm(value, torch.softmax(scores, dim=1)).view(2, 8, 4, 4)
    torch.testing.assert_close(r.read, want)
    # the gated stage with the same word memory, keys and values reads otherwise: its memory
    # also holds the pooled image
    plain.load_state_dict(no_write.state_dict(), strict=False)
    torch.testing.assert_close(plain.word_memory.weight, no_write.word_memory.weight)
    assert not torch.allclose(plain.read(h, words, mask).read, want)
    no_resp = MemoryStage(gf_dim=8, embed_dim=6, res_blocks=1, mask_mode="exact",
                          response_gate=False).eval()
    assert "response_gate" not in {n.split(".")[0] for n, _ in no_resp.named_parameters()}
    with torch.no_grad():
        r = no_resp.read(h, words, mask)
        assert r.fused is None and r.response_gate is None
        want = no_resp.upsample(no_resp.residual(torch.cat((h, r.read), dim=1)))
        torch.testing.assert_close(no_resp(h, words, mask).features, want)
    # from the config, and the released presets keep both gates
    cfg = override(preset("tiny"), ["generator.writing_gate=false",
                                    "generator.response_gate=false"])
    g = build_generator(cfg).eval()
    out = g(torch.randn(2, cfg.generator.z_dim), torch.randn(2, 16), torch.randn(2, 16, 3),
            torch.zeros(2, 3, dtype=torch.bool))
    assert all(torch.equal(w, torch.ones_like(w)) for w in out.writing_gates)
    assert g.init_stage.words.writing_gated and g.init_stage.words.response_gated
    assert all(preset(n).generator.writing_gate and preset(n).generator.response_gate
               for n in ("bird", "coco", "shapes"))


def test_the_condition_code_can_be_sampled_with_a_given_draw():
    """condition_noise: code = mu + eps * sigma with the given eps, so two pictures of a
    caption can differ by their noise alone (the diversity term); without it, eps is drawn."""
    cfg = preset("tiny")
    g = build_generator(cfg).eval()
    torch.manual_seed(0)
    d, t = cfg.text.embed_dim, 4
    sentence, words = torch.randn(2, d), torch.randn(2, d, t)
    mask = torch.zeros(2, t, dtype=torch.bool)
    z, eps = torch.randn(2, cfg.generator.z_dim), torch.randn(2, cfg.generator.condition_dim)
    with torch.no_grad():
        a = g(z, sentence, words, mask, condition_noise=eps).images[-1]
        b = g(z, sentence, words, mask, condition_noise=eps).images[-1]
        drawn = g(z, sentence, words, mask).images[-1]
        code, mu, logvar = g.ca(sentence, eps=eps)
    assert torch.equal(a, b) and not torch.allclose(a, drawn)
    torch.testing.assert_close(code, mu + eps * torch.exp(0.5 * logvar))
