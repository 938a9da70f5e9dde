"""The training step's D and G updates through GraphedUpdate (train --cuda-graphs): the
buffered, word-padded calls equal the plain step; the recording itself where CUDA is."""

from __future__ import annotations

import pytest
import torch

from dmgan import build_discriminators, build_generator, preset
from dmgan.models import build_image_encoder, build_text_encoder
from dmgan.nn.text_encoder import TextEncoding, padding_mask
from dmgan.train.graphs import GraphedUpdate, pad_words
from dmgan.train.runtime import Runtime
from dmgan.train.step import EMA, GANParts, train_step

CUDA = torch.cuda.is_available()


def _parts(cfg, dev, capturable=False):
    torch.manual_seed(0)
    g = build_generator(cfg).to(dev).train()
    ds = build_discriminators(cfg).to(dev).train()
    te = build_text_encoder(cfg).to(dev).eval().requires_grad_(False)
    ie = build_image_encoder(cfg).to(dev).eval().requires_grad_(False)
    adam = {"lr": 2e-4, "betas": (0.5, 0.999), "foreach": True, "capturable": capturable}
    return GANParts(g=g, g_run=g, ds=ds, opt_g=torch.optim.Adam(g.parameters(), **adam),
                    opt_ds=[torch.optim.Adam(d.parameters(), **adam) for d in ds],
                    ema=EMA(g, cfg.train.ema_decay, False), text_encoder=te, image_encoder=ie,
                    scaler=torch.amp.GradScaler("cuda", enabled=False))


def _batches(cfg, dev, sizes):
    gen = torch.Generator().manual_seed(1)
    t = cfg.text.words_train
    out = []
    for b in sizes:
        lengths = torch.randint(2, t, (b,), generator=gen)
        caps = torch.randint(1, cfg.text.vocab_size, (b, int(lengths.max())), generator=gen)
        caps = caps.masked_fill(padding_mask(lengths, caps.shape[1]), 0)
        neg = torch.randint(1, cfg.text.vocab_size, (b, 4), generator=gen)
        real = [torch.rand(b, 3, s, s, generator=gen).mul(2).sub(1)
                for s in cfg.generator.image_sizes]
        out.append({"real": [x.to(dev) for x in real], "captions": caps.to(dev),
                    "lengths": lengths.to(dev), "class_ids": torch.arange(b, device=dev),
                    "negatives": neg.to(dev), "negative_lengths": torch.full((b,), 4, device=dev)})
    return out


def _train(cfg, dev, batches, graphed_with=None, capturable=False):
    parts = _parts(cfg, dev, capturable)
    rt = Runtime(dev)
    graphed = None if graphed_with is None else GraphedUpdate(
        parts, cfg, rt, "off", num_words=cfg.text.words_train, **graphed_with)
    init = _flat(parts)
    torch.manual_seed(5)
    noise_gen = torch.Generator().manual_seed(3)
    losses = [train_step(parts, cfg, rt, noise_gen=noise_gen, step=i, graphed=graphed, **batch)
              for i, batch in enumerate(batches)]
    return losses, (init, _flat(parts)), graphed


def _flat(parts):
    return torch.cat([p.detach().flatten().clone() for p in
                      [*parts.g.parameters(), *parts.ds.parameters(), *parts.ema.net.parameters()]])


def _assert_same_training(losses, params, plain_losses, plain, *, rtol, atol, drift=0.02):
    """Losses equal to rounding at every step; the parameters too, but for those whose
    gradient is about zero, where rounding can turn Adam's normalised update by up to its
    rate: they differ from the plain run's by far less than training moved them (mean
    difference under `drift` times the mean move; a run that trains on other inputs
    differs by about the move itself)."""
    for a, b in zip(losses, plain_losses, strict=True):
        assert a.keys() == b.keys()
        torch.testing.assert_close(torch.stack(list(a.values())), torch.stack(list(b.values())),
                                   rtol=rtol, atol=atol)
    (init, after), (_, plain_after) = params, plain
    moved = (plain_after - init).abs().mean()
    assert moved > 0 and (after - plain_after).abs().mean() < drift * moved


def test_padding_the_words_adds_masked_zero_positions():
    text = TextEncoding(words=torch.randn(2, 3, 4), sentence=torch.randn(2, 3),
                        mask=torch.tensor([[False] * 4, [False, False, True, True]]))
    padded = pad_words(text, 6)
    assert padded.words.shape == (2, 3, 6) and padded.words[:, :, 4:].abs().sum() == 0
    assert padded.mask.dtype == torch.bool and padded.mask[:, 4:].all()
    assert torch.equal(padded.mask[:, :4], text.mask) and pad_words(text, 4) is text


@pytest.mark.parametrize("name", ["shapes", "tiny"])
def test_buffered_padded_updates_equal_the_plain_step(name):
    """Everything GraphedUpdate does but the recording: inputs copied into fixed buffers,
    words padded to the preset's longest caption, a batch of another size run eagerly."""
    cfg = preset(name)
    batches = _batches(cfg, torch.device("cpu"), [4, 4, 4, 3, 4])
    plain_losses, plain, _ = _train(cfg, torch.device("cpu"), batches)
    losses, buffered, graphed = _train(cfg, torch.device("cpu"), batches,
                                       graphed_with={"capture": False})
    assert graphed.eager_calls == 1 and graphed.calls == 5  # the batch of 3
    # the first two steps to float rounding (the padded words change the order of a few
    # sums); after that Adam lets rounding grow about tenfold a step (2 threads, the
    # shapes preset: relative 1e-7, 1e-6, 1e-5, 5e-5 at steps 1-4), so later steps are
    # held to 1e-3, and the parameters to the drift bound (an input not copied differs
    # by the whole step)
    for a, b in zip(losses[:2], plain_losses[:2], strict=True):
        torch.testing.assert_close(torch.stack(list(a.values())), torch.stack(list(b.values())),
                                   rtol=1e-5, atol=1e-5)
    _assert_same_training(losses, buffered, plain_losses, plain, rtol=1e-3, atol=1e-5)


def test_cuda_graphs_are_refused_off_a_gpu_with_fp16_and_without_capturable_optimizers():
    from dmgan.errors import DMGANError
    from dmgan.train.graphs import check_cuda_graphs

    cfg = preset("tiny")
    parts = _parts(cfg, torch.device("cpu"))
    with pytest.raises(DMGANError, match="needs a CUDA device"):
        GraphedUpdate(parts, cfg, Runtime(torch.device("cpu")), "off", num_words=8)
    with pytest.raises(DMGANError, match="fp16"):
        check_cuda_graphs(torch.device("cuda"), "fp16", 1)
    with pytest.raises(DMGANError, match="one process"):
        check_cuda_graphs(torch.device("cuda"), "off", 2)
    if CUDA:
        with pytest.raises(DMGANError, match="capturable"):
            GraphedUpdate(_parts(cfg, torch.device("cuda")), cfg, Runtime(torch.device("cuda")),
                          "off", num_words=8)


def test_train_cuda_graphs_without_cuda_is_one_line_and_exit_2(tmp_path, capsys):
    from dmgan.cli import main

    if CUDA:
        pytest.skip("this machine has CUDA")
    code = main(["train", "--preset", "tiny", "--data", "shapes", "--out", str(tmp_path / "r"),
                 "--cuda-graphs", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "--cuda-graphs needs a CUDA device" in err
    # the demo says so before its DAMSM minutes, not after them
    code = main(["demo", "--minutes", "15", "--out", str(tmp_path / "d"), "--cuda-graphs",
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "--cuda-graphs needs a CUDA device" in err and "Traceback" not in err
    assert not (tmp_path / "d" / "damsm").exists()


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
@pytest.mark.parametrize("name", ["shapes", "tiny"])
def test_recorded_updates_follow_the_eager_step_on_cuda(name):
    """Recorded after 3 eager calls, replayed for the rest (one batch of another size runs
    eagerly between replays): the networks follow the eager run to rounding. On a GPU that
    rounding is larger (TF32 convolutions, kernels that add in any order): on an H200 the
    losses of the padded, buffered calls and of the plain step differed by up to 1e-3, and
    the shapes networks' parameters by 0.043 of what 10 steps moved them (on a CPU, under
    0.02)."""
    cfg = preset(name)
    dev = torch.device("cuda")
    batches = _batches(cfg, dev, [4] * 6 + [3] + [4] * 3)
    plain_losses, plain, _ = _train(cfg, dev, batches, capturable=True)
    losses, replayed, graphed = _train(cfg, dev, batches, graphed_with={"warmup": 3},
                                       capturable=True)
    assert graphed.recorded_at == 4 and graphed.eager_calls == 1
    _assert_same_training(losses, replayed, plain_losses, plain, rtol=5e-3, atol=1e-4,
                          drift=0.1)


def test_an_optimizer_state_saved_under_cuda_graphs_resumes_without_them():
    """A run recorded on a GPU saves Adam with capturable=True; resumed on a CPU (or without
    --cuda-graphs) it goes on with this run's setting and the same moments."""
    from dmgan.train.gan import load_optimizer

    def adam(p, capturable=False):
        return torch.optim.Adam([p], lr=0.1, foreach=True, capturable=capturable)

    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    opt = adam(p)
    p.grad = torch.tensor([0.5, 0.1, -0.3])
    opt.step()
    state = opt.state_dict()
    on_gpu = {**state, "param_groups": [{**g, "capturable": True} for g in state["param_groups"]]}

    q = torch.nn.Parameter(p.detach().clone())
    plain = adam(q)
    plain.load_state_dict(on_gpu)
    q.grad = p.grad.clone()
    with pytest.raises(AssertionError, match="capturable"):
        plain.step()  # what a resume did before

    r = torch.nn.Parameter(p.detach().clone())
    resumed = adam(r)
    load_optimizer(resumed, on_gpu, capturable=False)
    assert resumed.param_groups[0]["capturable"] is False
    r.grad = p.grad.clone()
    resumed.step()
    opt.step()
    torch.testing.assert_close(r.detach(), p.detach())  # to float rounding
