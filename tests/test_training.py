"""Training: finite losses, loadable checkpoints, exact resume, two processes, bad arguments."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fixtures import run_cli

from dmgan import DMGAN, preset
from dmgan.checkpoint import load_checkpoint
from dmgan.errors import CheckpointError
from dmgan.train.damsm import pretrain_damsm
from dmgan.train.gan import TrainOptions, train_gan


def tiny_config():
    return preset("tiny")


@pytest.fixture(scope="module")
def damsm(tmp_path_factory):
    out = tmp_path_factory.mktemp("damsm")
    result = pretrain_damsm(tiny_config(), data="shapes", out=out, max_steps=3, workers=0)
    return result.path


def _opts(out, damsm, **kw):
    base = dict(data="shapes", out=Path(out), damsm=damsm, workers=0, log_every=2,
                sample_every=100, ckpt_every=3, keep=5, progress=False, samples=2,
                eval_every=0, min_damsm_r1=0.0)
    return TrainOptions(**(base | kw))


def test_damsm_pretraining_saves_loadable_encoders(damsm):
    cfg, payload = load_checkpoint(damsm)
    assert payload["kind"] == "damsm" and payload["step"] == 3
    # the recorded R@1 is the saved encoders' on the test split, measured again here
    from dmgan.data.open import open_split
    from dmgan.train.damsm import load_damsm, retrieval_r1

    te, ie, _ = load_damsm(damsm, cfg)
    test = open_split(cfg, "shapes", "test", max_words=cfg.damsm.words,
                      image_sizes=(cfg.generator.image_sizes[-1],))
    assert payload["test_r_at_1"] == retrieval_r1(te, ie, test, device="cpu")
    assert {"text_encoder", "image_encoder"} <= set(payload["networks"])
    log = (damsm.parent / "damsm-log.jsonl").read_text().splitlines()
    assert log and "test_r_at_1" in log[-1]


def test_a_few_steps_give_finite_losses_and_a_usable_checkpoint(tmp_path, damsm):
    result = train_gan(tiny_config(), _opts(tmp_path / "run", damsm, max_steps=4))
    assert result.step == 4 and result.last_checkpoint.name == "ckpt-00000004.pt"
    records = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert records and all(v == v for r in records for v in r.values() if isinstance(v, float))
    assert {"g_total", "d0", "d1", "d2", "g_words", "kl", "images_per_s"} <= set(records[-1])
    assert (tmp_path / "run" / "config.json").is_file()
    assert list((tmp_path / "run" / "samples").glob("step-*.png"))
    model = DMGAN.from_checkpoint(result.last_checkpoint)  # the snapshot alone is enough
    out = model.generate(torch.tensor([[3, 4, 5]]), torch.tensor([3]), seed=0)
    assert out.images[-1].shape == (1, 3, 64, 64)


def test_the_diversity_term_trains_on_captions_that_leave_things_free(tmp_path, damsm):
    """With loss.diversity_weight on partial captions, G draws half the batch again from a
    second noise each step and the log records the term."""
    from dmgan.config import override

    cfg = override(tiny_config(), ["loss.diversity_weight=1", "data.shapes_partial_share=1"])
    train_gan(cfg, _opts(tmp_path / "run", damsm, max_steps=2, log_every=1))
    records = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(records) == 2
    assert all(0 < r["g_diversity"] < float("inf") for r in records)


def test_pixel_candidates_train_on_every_caption(tmp_path, damsm):
    """With loss.pixel_candidates, each step draws G's pictures from several noises and trains
    on the nearest; with the diversity term both share the condition code's draw."""
    from dmgan.config import override

    cfg = override(tiny_config(), ["loss.pixel_weight=10", "loss.pixel_candidates=3",
                                   "loss.diversity_weight=1", "data.shapes_partial_share=1"])
    train_gan(cfg, _opts(tmp_path / "run", damsm, max_steps=2, log_every=1))
    records = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(records) == 2
    assert all(0 < r["g_pixel"] < float("inf") for r in records)


def _weights(path):
    _, payload = load_checkpoint(path)
    return payload


def _logged_steps(run: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines()]


def _same_networks(a: dict, b: dict) -> bool:
    return all(torch.equal(v, b["networks"][n][k]) for n in a["networks"]
               for k, v in a["networks"][n].items())


def test_resume_is_bit_identical(tmp_path, damsm, capsys):
    """A resumed run reads its checkpoint and runs only the steps left (its log goes on from
    the saved step), ending bit for bit where the uninterrupted run ends; a checkpoint whose
    weights were changed ends elsewhere, so the checkpoint is really what it went on from."""
    cfg = tiny_config()
    straight = train_gan(cfg, _opts(tmp_path / "a", damsm, max_steps=6, log_every=1))
    first = train_gan(cfg, _opts(tmp_path / "b", damsm, max_steps=6, stop_at_step=3,
                                 log_every=1))
    assert first.step == 3 and _logged_steps(tmp_path / "b") == [1, 2, 3]
    capsys.readouterr()
    resumed = train_gan(cfg, _opts(tmp_path / "b", damsm, max_steps=6, resume=True, log_every=1))
    assert "resumed from ckpt-00000003.pt at step 3" in capsys.readouterr().out
    assert resumed.step == 6
    assert _logged_steps(tmp_path / "b") == [1, 2, 3, 4, 5, 6]  # steps 4-6 only, once each
    a, b = _weights(straight.last_checkpoint), _weights(resumed.last_checkpoint)
    assert _same_networks(a, b)
    assert a["step"] == b["step"] == 6
    sa, sb = a["optimizers"]["generator"]["state"], b["optimizers"]["generator"]["state"]
    assert all(torch.equal(sa[k]["exp_avg"], sb[k]["exp_avg"]) for k in sa)
    # the same, from a checkpoint whose generator was nudged: another end
    train_gan(cfg, _opts(tmp_path / "c", damsm, max_steps=6, stop_at_step=3, log_every=1))
    from dmgan.checkpoint import atomic_torch_save

    path = tmp_path / "c" / "ckpt-00000003.pt"
    payload = torch.load(path, weights_only=True)
    weight = next(k for k, v in payload["networks"]["generator"].items() if v.is_floating_point())
    payload["networks"]["generator"][weight] += 1e-3
    atomic_torch_save(payload, path)
    nudged = train_gan(cfg, _opts(tmp_path / "c", damsm, max_steps=6, resume=True, log_every=1))
    assert not _same_networks(a, _weights(nudged.last_checkpoint))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str, damsm: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist

    from dmgan.train import gan

    seen = {}
    real_build_g, real_build_d = gan.build_generator, gan.build_discriminators

    def keep_g(cfg):
        seen["g"] = real_build_g(cfg)
        return seen["g"]

    def keep_d(cfg):
        seen["d"] = real_build_d(cfg)
        return seen["d"]

    gan.build_generator, gan.build_discriminators = keep_g, keep_d
    import contextlib

    from dmgan.train.runtime import Runtime, mean_across_ranks

    try:
        with open(Path(out) / f"stdout{rank}.txt", "w") as f, contextlib.redirect_stdout(f):
            gan.train_gan(tiny_config(), _opts(Path(out) / "run", Path(damsm), max_steps=3,
                                               device="cpu", log_every=1))
    finally:
        gan.build_generator, gan.build_discriminators = real_build_g, real_build_d
    mean = mean_across_ranks({"x": torch.tensor(float(rank)), "y": torch.tensor(2.0 * rank)},
                             Runtime(torch.device("cpu"), rank, world))
    torch.save({"g": seen["g"].state_dict(), "d": seen["d"].state_dict(),
                "mean": {k: float(v) for k, v in mean.items()}}, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow  # a whole run (README quick tests leave it out)
def test_two_gloo_processes_hold_identical_weights(tmp_path, damsm):
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), str(damsm)), nprocs=2, join=True)
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for part in ("g", "d"):
        for key, value in r0[part].items():
            assert torch.equal(value, r1[part][key]), (part, key)
    assert (tmp_path / "run" / "ckpt-00000003.pt").is_file()  # rank 0 saved
    # rank 0 alone reports; logged statistics are means over the processes
    assert "train: 3/3 (100%) step" in (tmp_path / "stdout0.txt").read_text()
    assert (tmp_path / "stdout1.txt").read_text() == ""
    assert r0["mean"] == r1["mean"] == {"x": 0.5, "y": 1.0}


def _dmgan(*args, cwd=None):
    return run_cli(*args, cwd=cwd)  # in-process: no interpreter start per call


def test_bad_arguments_give_clear_errors(tmp_path, damsm):
    res = _dmgan("train", "--preset", "bird", "--data", str(tmp_path / "nowhere"), "--out",
                 str(tmp_path / "r"), "--damsm", str(damsm))
    assert res.returncode == 2 and "data folder not found" in res.stderr
    res = _dmgan("train", "--preset", "tiny", "--data", "shapes", "--out", str(tmp_path / "r"),
                 "--damsm", str(damsm))
    assert res.returncode == 2 and "below the 0.5 needed to train on it" in res.stderr
    assert "Traceback" not in res.stderr
    res = _dmgan("train", "--preset", "shapes", "--data", "shapes", "--out", str(tmp_path / "r"))
    assert res.returncode == 2 and "--damsm" in res.stderr
    res = _dmgan("train", "--preset", "shapes", "--data", "shapes", "--out", str(tmp_path / "r"),
                 "--damsm", str(damsm))
    assert res.returncode == 2 and "other text/encoder settings" in res.stderr
    res = _dmgan("train", "--preset", "shapes", "--data", "shapes", "--resume", "--out",
                 str(tmp_path / "missing"), "--damsm", str(damsm))
    assert res.returncode == 2 and "run folder not found" in res.stderr
    # a run folder whose checkpoint belongs to another preset
    run = tmp_path / "other"
    run.mkdir()
    DMGAN.from_preset("small").save(run / "ckpt-00000005.pt")
    res = _dmgan("train", "--preset", "shapes", "--data", "shapes", "--resume", "--out", str(run),
                 "--damsm", str(damsm))
    assert res.returncode == 2 and "holds a 'small' model, not 'shapes'" in res.stderr
    res = _dmgan("train", "--preset", "shapes", "--data", "shapes", "--out", str(tmp_path / "r"),
                 "--damsm", str(damsm), "--amp", "fp16", "--device", "cpu")
    assert res.returncode == 2 and "fp16 needs a CUDA device" in res.stderr


def test_bf16_autocast_runs_on_cpu(tmp_path, damsm, monkeypatch):
    from dmgan import device

    monkeypatch.setattr(device, "cpu_has_bf16", lambda: False)  # a CPU without bf16 units
    with pytest.warns(UserWarning, match="slower than fp32"):
        result = train_gan(tiny_config(), _opts(tmp_path / "bf16", damsm, max_steps=2, amp="bf16",
                                                device="cpu"))
    assert result.step == 2
    _, payload = load_checkpoint(result.last_checkpoint)
    assert all(torch.isfinite(v).all() for v in payload["networks"]["generator"].values()
               if v.is_floating_point())


def test_no_memory_ablation_trains(tmp_path, damsm):
    cfg = tiny_config()
    cfg = cfg.replace(generator=dataclasses.replace(cfg.generator, memory=False))
    result = train_gan(cfg, _opts(tmp_path / "nomem", damsm, max_steps=2))
    assert result.step == 2


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(tmp_path, damsm, monkeypatch):
    from dmgan import DMGANError
    from dmgan.train import step as gan

    real = gan.generator_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        out = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            out.total = out.total * float("nan")
        return out

    monkeypatch.setattr(gan, "generator_loss", poisoned)
    with pytest.raises(DMGANError, match=r"non-finite loss .* at step 3 .*ckpt-00000002\.pt"):
        train_gan(tiny_config(), _opts(tmp_path / "nan", damsm, max_steps=6, log_every=1,
                                       ckpt_every=2))
    names = sorted(p.name for p in (tmp_path / "nan").glob("ckpt-*.pt"))
    assert names == ["ckpt-00000002.pt"]
    _, payload = load_checkpoint(tmp_path / "nan" / "ckpt-00000002.pt")
    assert all(torch.isfinite(v).all() for v in payload["networks"]["generator"].values()
               if v.is_floating_point())


@pytest.mark.slow  # a whole run (README quick tests leave it out)
def test_sigkill_and_resume_end_bit_identical(tmp_path):
    """tests/fault_injection.py with a few kills (the full run uses 10)."""
    script = Path(__file__).resolve().parent / "fault_injection.py"
    res = subprocess.run([sys.executable, str(script), "--kills", "2", "--steps", "80",
                          "--out", str(tmp_path / "summary.json")], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    import json

    summary = json.loads((tmp_path / "summary.json").read_text())
    # every kill was followed by a resume that went on from a saved step, never from 0, and
    # the run ended where the uninterrupted one ends
    assert summary["bit_identical"] and summary["kills"] == 2 and summary["resumes"] == 2
    starts = summary["resumed_at"]  # as each resumed worker said (a killed one may not have)
    assert starts and all(n > 0 for n in starts) and starts == sorted(starts)
    assert summary["final_resumed_at"] and summary["final_resumed_at"] > 0
    assert summary["restarts_from_step_0"] == 0


def test_resume_refuses_other_settings(tmp_path, damsm):
    from dmgan import DMGANError
    from dmgan.config import override

    run = tmp_path / "r"
    train_gan(tiny_config(), _opts(run, damsm, max_steps=2))
    with pytest.raises(DMGANError, match=r"train\.batch_size 4 -> 6"):
        train_gan(override(tiny_config(), ["train.batch_size=6"]),
                  _opts(run, damsm, max_steps=3, resume=True))
    with pytest.raises(DMGANError, match=r"seed 0 -> 5"):
        train_gan(tiny_config(), _opts(run, damsm, max_steps=3, resume=True, seed=5))
    res = _dmgan("train", "--preset", "tiny", "--data", "shapes", "--out", str(run), "--resume",
                 "--damsm", str(damsm), "--min-damsm-r1", "0", "--max-steps", "3",
                 "--batch-size", "6", "--workers", "0")
    assert res.returncode == 2 and "started with other settings" in res.stderr
    assert "Traceback" not in res.stderr
    res = _dmgan("train", "--preset", "tiny", "--data", "shapes", "--out", str(run),
                 "--damsm", str(damsm), "--min-damsm-r1", "0", "--max-steps", "3", "--workers", "0")
    assert res.returncode == 2 and "already holds a run's checkpoints" in res.stderr  # no --resume
    assert "Traceback" not in res.stderr
    assert train_gan(tiny_config(), _opts(run, damsm, max_steps=3, resume=True)).step == 3
    _, payload = load_checkpoint(run / "ckpt-00000003.pt")
    assert payload["options"]["seed"] == 0 and payload["options"]["data"] == "shapes"
    assert payload["options"]["world_size"] == 1 and "minutes" not in payload["options"]
    assert "grad_scaler" in payload
    with pytest.raises(DMGANError, match=r"amp 'off' -> 'bf16'"):  # any option, named
        train_gan(tiny_config(), _opts(run, damsm, max_steps=4, resume=True, amp="bf16"))
    # budgets, logging, loading and the device may change
    assert train_gan(tiny_config(), _opts(run, damsm, max_steps=4, resume=True, workers=1,
                                          log_every=1, keep=2, device="cpu")).step == 4


def test_training_options_round_trip_through_config_json(tmp_path, damsm):
    import json

    opts = _opts(tmp_path / "r", damsm, max_steps=1, amp="off", threads=1, extra={"a": 1})
    train_gan(tiny_config(), opts)
    stored = json.loads((tmp_path / "r" / "config.json").read_text())["options"]
    assert TrainOptions.from_dict(stored) == opts
    assert stored["threads"] == 1 and stored["out"] == str(tmp_path / "r")


def test_two_trainings_on_one_run_folder_are_refused(tmp_path, damsm):
    from dmgan import DMGANError
    from dmgan.train.runs import lock_run_folder

    run = tmp_path / "r"
    run.mkdir()
    held = lock_run_folder(run)  # as a first training process would
    try:
        res = _dmgan("train", "--preset", "tiny", "--data", "shapes", "--out", str(run),
                     "--damsm", str(damsm), "--min-damsm-r1", "0", "--max-steps", "1",
                     "--workers", "0")
        assert res.returncode == 2 and f"another training (process {os.getpid()})" in res.stderr
    finally:
        held.close()
    with pytest.raises(DMGANError, match="another training"):
        with open(run / ".lock") as _:
            first = lock_run_folder(run)
            lock_run_folder(run)
    first.close()
    assert train_gan(tiny_config(), _opts(run, damsm, max_steps=1)).step == 1


@pytest.mark.parametrize("bad, message", [
    ({"ckpt_every": 0}, "ckpt_every must be >= 1"), ({"keep": 0}, "keep must be >= 1"),
    ({"minutes": 0.0}, "minutes must be a number > 0"), ({"max_steps": -5}, "max_steps"),
    ({"workers": -1}, "workers"), ({"minutes": float("nan")}, "minutes"),
])
def test_training_options_are_checked_for_library_callers(tmp_path, bad, message):
    from dmgan.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        TrainOptions(data="shapes", out=tmp_path, **bad)
    assert TrainOptions(data="shapes", out=tmp_path, seed=-1).seed == 2**32 - 1


def test_batch_size_one_is_refused_with_the_reason():
    from dmgan.config import override
    from dmgan.errors import ConfigError

    with pytest.raises(ConfigError, match="batch norm needs two images"):
        override(tiny_config(), ["train.batch_size=1"])


def test_a_grad_scaler_state_round_trips_through_a_checkpoint(tmp_path):
    """fp16 training saves its GradScaler: the state (scale, growth tracker) read back from a
    checkpoint (weights_only) restores a scaler exactly (CPU scaler: the state is the same)."""
    from dmgan.checkpoint import save_checkpoint

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**14, growth_interval=7)
    scaler._lazy_init_scale_growth_tracker(torch.device("cpu"))
    scaler._scale.fill_(4096.0)
    scaler._growth_tracker.fill_(3)
    state = scaler.state_dict()
    save_checkpoint(tmp_path / "c.pt", config=tiny_config(), networks={}, grad_scaler=state)
    _, payload = load_checkpoint(tmp_path / "c.pt")
    back = torch.amp.GradScaler("cpu")
    back.load_state_dict(payload["grad_scaler"])
    assert back.state_dict() == state and back.get_scale() == 4096.0
    assert back.state_dict()["_growth_tracker"] == 3 and back.state_dict()["growth_interval"] == 7


def test_init_from_starts_a_new_run_from_trained_networks(tmp_path, damsm):
    cfg = tiny_config()
    source = train_gan(cfg, _opts(tmp_path / "a", damsm, max_steps=3)).last_checkpoint
    from dmgan.models import build_discriminators, build_generator
    from dmgan.train.gan import init_networks

    g, ema, ds = build_generator(cfg), build_generator(cfg), build_discriminators(cfg)
    assert init_networks(source, cfg, g, ema, ds) == 3
    nets = _weights(source)["networks"]
    for net, name in [(g, "generator"), (ema, "generator_ema"), (ds[1], "discriminator1")]:
        assert all(torch.equal(v, nets[name][k]) for k, v in net.state_dict().items()), name
    # a new run: step 0, fresh optimizers, the source's networks as the start
    run = train_gan(cfg, _opts(tmp_path / "b", damsm, max_steps=1, init_from=source))
    assert run.step == 1
    after = _weights(run.last_checkpoint)
    assert after["options"]["init_from"] == str(source.resolve())
    assert all(v["step"].item() == 1 for v in after["optimizers"]["generator"]["state"].values())
    # an exported model has no discriminators: they start afresh
    from dmgan.export import export_model

    export_model(source, tmp_path / "model.pt")
    g2, ema2, ds2 = build_generator(cfg), build_generator(cfg), build_discriminators(cfg)
    fresh = {k: v.clone() for k, v in ds2[0].state_dict().items()}
    init_networks(tmp_path / "model.pt", cfg, g2, ema2, ds2)
    assert all(torch.equal(v, nets["generator_ema"][k]) for k, v in g2.state_dict().items())
    assert all(torch.equal(v, fresh[k]) for k, v in ds2[0].state_dict().items())


def test_init_from_may_give_the_discriminators_word_matching(tmp_path, damsm):
    from dmgan.config import override
    from dmgan.models import build_discriminators, build_generator
    from dmgan.train.gan import init_networks

    cfg = tiny_config()
    source = train_gan(cfg, _opts(tmp_path / "a", damsm, max_steps=2)).last_checkpoint
    words_cfg = override(cfg, ["discriminator.word_match=true"])
    g, ema, ds = build_generator(words_cfg), build_generator(words_cfg), \
        build_discriminators(words_cfg)
    init_networks(source, words_cfg, g, ema, ds)
    nets = _weights(source)["networks"]
    for i, d in enumerate(ds):
        own = d.state_dict()
        assert all(torch.equal(own[k], v) for k, v in nets[f"discriminator{i}"].items())
        assert not own["word_joint.weight"].any()  # adds nothing yet
    # and trains with near-miss captions as the mismatched pairs (their words too)
    run = train_gan(override(words_cfg, ["train.near_miss_negatives=true"]),
                    _opts(tmp_path / "b", damsm, max_steps=2, init_from=source))
    after = _weights(run.last_checkpoint)["networks"]["discriminator0"]
    assert after["word_joint.weight"].any()
    # the other way (dropping the words) is refused
    with pytest.raises(CheckpointError, match="word_match"):
        init_networks(run.last_checkpoint, cfg, build_generator(cfg), build_generator(cfg),
                      build_discriminators(cfg))


def test_init_from_may_give_g_and_the_discriminators_word_context(tmp_path, damsm):
    from dmgan.config import override
    from dmgan.models import build_discriminators, build_generator
    from dmgan.train.gan import init_networks

    cfg = override(tiny_config(), ["discriminator.word_match=true"])
    source = train_gan(cfg, _opts(tmp_path / "a", damsm, max_steps=2)).last_checkpoint
    ctx_cfg = override(cfg, ["generator.word_context=1", "discriminator.word_context=1"])
    g, ema, ds = build_generator(ctx_cfg), build_generator(ctx_cfg), \
        build_discriminators(ctx_cfg)
    init_networks(source, ctx_cfg, g, ema, ds)
    nets = _weights(source)["networks"]
    for net, name in [(g, "generator"), (ema, "generator_ema"), (ds[0], "discriminator0")]:
        own = net.state_dict()
        assert all(torch.equal(own[k], v) for k, v in nets[name].items()), name
    ema_own, g_own = ema.state_dict(), g.state_dict()
    assert all(torch.equal(ema_own[k], v) for k, v in g_own.items() if k.startswith("context."))
    assert not g.context.out.weight.any() and not ds[0].word_context.out.weight.any()
    run = train_gan(override(ctx_cfg, ["train.near_miss_negatives=true"]),
                    _opts(tmp_path / "b", damsm, max_steps=2, init_from=source))
    after = _weights(run.last_checkpoint)["networks"]
    assert after["generator"]["context.out.weight"].any()
    assert after["discriminator0"]["word_context.out.weight"].any()
    assert after["discriminator0"]["word_places"].any()
    with pytest.raises(CheckpointError, match="word_context"):  # not dropped again
        init_networks(run.last_checkpoint, cfg, build_generator(cfg), build_generator(cfg),
                      build_discriminators(cfg))


def test_the_preference_term_asks_the_ds_preference_of_the_fakes(tmp_path, damsm):
    from dmgan.config import override
    from dmgan.losses import generator_adversarial_loss
    from dmgan.models import build_discriminators
    from dmgan.nn.text_encoder import TextEncoding

    cfg = override(tiny_config(), ["discriminator.word_match=true"])
    torch.manual_seed(0)
    ds = build_discriminators(cfg)
    for d in ds:
        torch.nn.init.normal_(d.word_joint.weight, std=0.1)
    b, dim, t = 3, cfg.text.embed_dim, 4
    images = [torch.randn(b, 3, s, s) for s in cfg.generator.image_sizes]
    own = TextEncoding(words=torch.randn(b, dim, t), sentence=torch.randn(b, dim),
                       mask=torch.zeros(b, t, dtype=torch.bool))
    other = TextEncoding(words=torch.randn(b, dim, t), sentence=torch.randn(b, dim),
                         mask=torch.zeros(b, t, dtype=torch.bool))
    adv, margin = generator_adversarial_loss(ds, images, own.sentence, words=own.words,
                                             mask=own.mask, near_miss=other)
    plain, none = generator_adversarial_loss(ds, images, own.sentence, words=own.words,
                                             mask=own.mask)
    torch.testing.assert_close(adv, plain)  # the released terms are untouched
    assert none.item() == 0.0
    want = sum(torch.nn.functional.softplus(
        d.cond_logits(d(x), other.sentence, other.words, other.mask)
        - d.cond_logits(d(x), own.sentence, own.words, own.mask)).mean()
        for d, x in zip(ds, images, strict=True))
    torch.testing.assert_close(margin, want)
    # in training: logged, and G trains with it
    run = train_gan(override(cfg, ["train.near_miss_negatives=true", "loss.caption_preference_weight=2"]),
                    _opts(tmp_path / "run", damsm, max_steps=2))
    records = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert run.step == 2 and any(r.get("g_preference", 0) > 0 for r in records)
    # judged by frozen critics (another run's word-reading Ds) instead
    judged = train_gan(override(cfg, ["train.near_miss_negatives=true",
                                      "loss.caption_preference_weight=2"]),
                       _opts(tmp_path / "judged", damsm, max_steps=2,
                             critic=run.last_checkpoint))
    records = [json.loads(x) for x in (tmp_path / "judged" / "log.jsonl").read_text().splitlines()]
    assert judged.step == 2 and any(r.get("g_preference", 0) > 0 for r in records)
    assert _weights(judged.last_checkpoint)["options"]["critic"] == str(run.last_checkpoint)
    plain = train_gan(tiny_config(), _opts(tmp_path / "plain", damsm, max_steps=1))
    with pytest.raises(CheckpointError, match="do not read the words"):
        train_gan(override(cfg, ["loss.caption_preference_weight=2"]),
                  _opts(tmp_path / "refused", damsm, max_steps=1,
                        critic=plain.last_checkpoint))


def test_train_critic_teaches_word_reading_ds_that_judge_a_run(tmp_path, damsm):
    """dmgan train-critic: the preset's word-reading Ds learn on real pictures (one-object ones
    too) which caption is theirs; the file is a critic that `train --critic` takes, that
    `train-critic --init-from` goes on from, and that records how it was made."""
    from dmgan.config import override

    words = ["--set", "discriminator.word_match=true", "--set", "discriminator.word_context=1"]
    base = ["train-critic", "--preset", "tiny", "--damsm", str(damsm), "--device", "cpu",
            "--max-steps", "4", "--log-every", "2"]
    res = _dmgan(*base, "--out", str(tmp_path / "none"))
    assert res.returncode == 2 and "do not read the words" in res.stderr
    res = _dmgan(*base, "--out", str(tmp_path / "c"), *words)
    assert res.returncode == 0, res.stderr[-2000:]
    one = int(re.search(r"\((\d+) of them with one object\)", res.stdout).group(1))
    assert one > 0
    critic = tmp_path / "c" / "critic.pt"
    cfg, payload = load_checkpoint(critic)
    assert payload["kind"] == "critic" and cfg.discriminator.word_match and payload["step"] == 4
    assert payload["command"].startswith("dmgan train-critic --preset tiny")
    assert sorted(payload["networks"]) == [f"discriminator{k}"
                                           for k in range(len(cfg.generator.image_sizes))]
    log = [json.loads(x) for x in (tmp_path / "c" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]
    held = log[-1]["held_out"]
    assert len(held) == len(cfg.generator.image_sizes)
    assert set(held[0]) == {"places", "colours", "doubled", "hidden", "near_miss"}
    assert all(0.0 <= v <= 1.0 for row in held for v in row.values())
    # teaching goes on from it; a file that is not a critic is refused
    more = _dmgan(*base, "--out", str(tmp_path / "more"), *words, "--init-from", str(critic))
    assert more.returncode == 0, more.stderr[-2000:]
    bad = _dmgan(*base, "--out", str(tmp_path / "bad"), *words, "--init-from", str(damsm))
    assert bad.returncode == 2 and "not a critic" in bad.stderr
    run = train_gan(override(tiny_config(), ["loss.caption_preference_weight=2",
                                             "discriminator.word_match=true",
                                             "discriminator.word_context=1"]),
                    _opts(tmp_path / "judged", damsm, max_steps=2, critic=critic))
    records = [json.loads(x) for x in (tmp_path / "judged" / "log.jsonl").read_text().splitlines()]
    assert run.step == 2 and any(r.get("g_preference", 0) > 0 for r in records)


def test_train_critic_resumes_bit_for_bit_from_its_checkpoint(tmp_path, damsm, capsys):
    """A critic run stopped by its time budget leaves a checkpoint; --resume reads it, runs
    only the steps left and writes the critic the uninterrupted run writes; a checkpoint
    whose weights were changed ends elsewhere; other settings are refused."""
    from dmgan.checkpoint import atomic_torch_save
    from dmgan.config import override
    from dmgan.errors import DMGANError, ResumeMismatchError
    from dmgan.train.critic import train_critic

    cfg = override(tiny_config(), ["discriminator.word_match=true",
                                   "discriminator.word_context=1"])

    def run(folder, **kw):
        return train_critic(cfg, damsm=damsm, out=tmp_path / folder, max_steps=4, log_every=2,
                            device="cpu", **kw)

    straight = run("a")
    stopped = run("b", minutes=1e-9)  # out of time after the first step
    assert stopped.path is None and stopped.steps == 1
    assert not (tmp_path / "b" / "critic.pt").exists()
    assert [p.name for p in (tmp_path / "b").glob("ckpt-*.pt")] == ["ckpt-00000001.pt"]
    capsys.readouterr()
    resumed = run("b", resume=True)
    assert "resumed from ckpt-00000001.pt at step 1" in capsys.readouterr().out
    logged = [json.loads(x)["step"] for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert logged == [2, 4] and resumed.steps == 4
    assert _same_networks(_weights(straight.path), _weights(resumed.path))
    # a nudged checkpoint: another critic
    path = tmp_path / "b" / "ckpt-00000002.pt"
    payload = torch.load(path, weights_only=True)
    name = next(k for k, v in payload["networks"]["discriminator0"].items()
                if v.is_floating_point())
    payload["networks"]["discriminator0"][name] += 1e-2
    atomic_torch_save(payload, path)
    nudged = run("b", resume=True)
    assert not _same_networks(_weights(straight.path), _weights(nudged.path))
    with pytest.raises(ResumeMismatchError, match="seed 0 -> 1"):
        run("b", resume=True, seed=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DMGANError, match="no critic checkpoint"):
        run("empty", resume=True)
    with pytest.raises(DMGANError, match="run folder not found"):
        run("missing", resume=True)
    # a new critic run (no resume) in that folder would replace its checkpoints: refused
    kept = sorted(p.name for p in (tmp_path / "b").glob("ckpt-*.pt"))
    with pytest.raises(DMGANError, match="already holds a run's checkpoints"):
        run("b")
    assert sorted(p.name for p in (tmp_path / "b").glob("ckpt-*.pt")) == kept


def test_init_from_refuses_other_networks_and_a_changed_source_on_resume(tmp_path, damsm):
    res = _dmgan("train", "--preset", "tiny", "--data", "shapes", "--out", str(tmp_path / "r"),
                 "--damsm", str(damsm), "--min-damsm-r1", "0", "--init-from",
                 str(tmp_path / "none.pt"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    DMGAN.from_preset("small").save(tmp_path / "small.pt")
    res = _dmgan("train", "--preset", "tiny", "--data", "shapes", "--out", str(tmp_path / "r"),
                 "--damsm", str(damsm), "--min-damsm-r1", "0", "--init-from",
                 str(tmp_path / "small.pt"), "--max-steps", "1")
    assert res.returncode == 2 and "network settings differ from preset 'tiny'" in res.stderr
    cfg = tiny_config()
    source = train_gan(cfg, _opts(tmp_path / "a", damsm, max_steps=2)).last_checkpoint
    train_gan(cfg, _opts(tmp_path / "b", damsm, max_steps=3, stop_at_step=2, ckpt_every=2,
                         init_from=source))
    with pytest.raises(Exception, match="init_from"):
        train_gan(cfg, _opts(tmp_path / "b", damsm, max_steps=3, resume=True))


def test_damsm_pretraining_can_start_from_a_damsm(tmp_path, damsm):
    cfg = tiny_config()
    result = pretrain_damsm(cfg, data="shapes", out=tmp_path / "d", max_steps=1, workers=0,
                            init_from=damsm)
    assert result.steps == 1
    res = _dmgan("pretrain-damsm", "--preset", "shapes", "--data", "shapes", "--out",
                 str(tmp_path / "e"), "--max-steps", "1", "--init-from", str(damsm))
    assert res.returncode == 2 and "other text/encoder settings" in res.stderr
