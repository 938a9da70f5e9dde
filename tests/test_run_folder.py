"""A run folder's parts (dmgan.train.runs) and the checkpoint file's (dmgan.checkpoint),
each held to its contract: the order checkpoints are found in, what a resume skips and
why, the lock, the messages a user reads (the mutation check, docs/testing.md, found what
the whole-run tests let through)."""

from __future__ import annotations

import json
import os
import warnings

import pytest
import torch
from fixtures import warned_from
from torch import nn

from dmgan import __version__
from dmgan.checkpoint import (
    atomic_torch_save,
    generator_name,
    lineage_of,
    load_checkpoint,
    load_network,
    read_weights_only,
    save_checkpoint,
)
from dmgan.config import override, preset
from dmgan.errors import CheckpointError, DMGANError, PresetMismatchError, ResumeMismatchError
from dmgan.train import runs


def _cfg(name="tiny"):
    return preset(name)


def _training_checkpoint(path, step, **extra):
    save_checkpoint(path, config=_cfg(), networks={}, step=step, optimizers={}, **extra)


# --- dmgan.train.runs ---------------------------------------------------------------------

def test_checkpoints_are_found_newest_first_by_their_step(tmp_path):
    for name in ["ckpt-00000002.pt", "ckpt-00000010.pt", "ckpt-00000001.pt",
                 "ckpt-1.pt", "ckpt-00000003.pt.bak", ".tmp-ckpt-00000004.pt-x", "best.pt"]:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in runs.checkpoints(tmp_path)] == [
        "ckpt-00000010.pt", "ckpt-00000002.pt", "ckpt-00000001.pt"]


def test_the_newest_checkpoint_that_loads_is_resumed_and_damaged_ones_are_named(tmp_path):
    _training_checkpoint(tmp_path / "ckpt-00000002.pt", 2)
    save_checkpoint(tmp_path / "ckpt-00000003.pt", config=_cfg(), networks={}, step=3)  # no optimizers
    (tmp_path / "ckpt-00000004.pt").write_bytes(b"not a checkpoint")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg, payload, path = runs.latest_checkpoint(tmp_path, "tiny")
    assert path.name == "ckpt-00000002.pt" and payload["step"] == 2 and cfg.name == "tiny"
    assert len(caught) == 1 and warned_from(caught, __file__)  # the caller's line
    assert str(caught[0].message).startswith(
        "skipping damaged checkpoint ckpt-00000004.pt: cannot read ")
    (tmp_path / "ckpt-00000004.pt").unlink()
    with pytest.raises(PresetMismatchError):
        runs.latest_checkpoint(tmp_path, "shapes")
    (tmp_path / "ckpt-00000002.pt").unlink()
    assert runs.latest_checkpoint(tmp_path, "tiny") is None
    optimizers_only = tmp_path / "o"
    optimizers_only.mkdir()
    save_checkpoint(optimizers_only / "ckpt-00000005.pt", config=_cfg(), networks={},
                    optimizers={})
    assert runs.latest_checkpoint(optimizers_only, "tiny") is None  # a step is needed too


def test_a_run_checkpoint_keeps_only_the_newest(tmp_path):
    for step in (1, 2, 3):
        path = runs.save_run_checkpoint(tmp_path, 2, config=_cfg(), networks={}, step=step)
        assert path == tmp_path / runs.checkpoint_name(step)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-00000002.pt", "ckpt-00000003.pt"]
    assert runs.checkpoint_name(12) == "ckpt-00000012.pt"


def test_stale_temporaries_of_checkpoints_go_and_nothing_else(tmp_path):
    for name in [".tmp-ckpt-00000005.pt-abc", ".tmp-best.pt-abc", "ckpt-00000005.pt"]:
        (tmp_path / name).write_bytes(b"")
    runs.remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-best.pt-abc",
                                                          "ckpt-00000005.pt"]


def test_a_held_lock_names_its_holder_or_a_question_mark(tmp_path):
    import fcntl

    handle = runs.lock_run_folder(tmp_path)
    assert (tmp_path / ".lock").read_text().strip().isdigit()
    with pytest.raises(DMGANError) as exc:
        runs.lock_run_folder(tmp_path)
    pid = (tmp_path / ".lock").read_text().strip()
    assert str(exc.value) == (f"another training (process {pid}) is using {tmp_path}; wait for "
                              f"it to finish or use another --out")
    handle.close()
    other = tmp_path / "other"
    other.mkdir()
    with open(other / ".lock", "a+") as silent:  # a holder that wrote no process number
        fcntl.flock(silent.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(DMGANError, match=r"another training \(process \?\) is using"):
            runs.lock_run_folder(other)
    runs.lock_run_folder(other).close()  # the lock is free again


def test_a_resume_with_other_settings_names_each_difference(tmp_path):
    old = _cfg()
    new = override(old, ["train.lr_g=0.5", "loss.kl_weight=3"])
    assert sorted(runs.config_changes(old, new)) == [
        f"loss.kl_weight {old.loss.kl_weight!r} -> 3.0", f"train.lr_g {old.train.lr_g!r} -> 0.5"]
    assert runs.config_changes(old, new, sections=("loss",)) == [
        f"loss.kl_weight {old.loss.kl_weight!r} -> 3.0"]
    runs.check_resume(tmp_path, old, old, {"seed": 1, "data": "shapes"}, {"seed": 1})
    runs.check_resume(tmp_path, old, old, None, {"seed": 2})  # nothing recorded: nothing to match
    with pytest.raises(ResumeMismatchError) as exc:
        runs.check_resume(tmp_path, old, override(old, ["loss.kl_weight=3"]),
                          {"seed": 1, "data": "shapes"}, {"seed": 2, "data": "shapes", "new": 1})
    assert str(exc.value) == (
        f"--resume: {tmp_path} was started with other settings (loss.kl_weight "
        f"{old.loss.kl_weight!r} -> 3.0; seed 1 -> 2); resume with the same ones, or start a "
        f"new run folder")


def test_config_json_is_the_config_and_the_run_options_indented(tmp_path):
    runs.write_config(tmp_path, _cfg(), {"options": {"seed": 3}})
    text = (tmp_path / "config.json").read_text()
    assert text == json.dumps({"config": _cfg().to_dict(), "options": {"seed": 3}}, indent=2)


def test_the_json_log_appends_a_line_a_record_or_nothing(tmp_path):
    log = runs.JsonLog(tmp_path / "log.jsonl", True)
    log.write({"step": 1, "word": "café"})
    log.write({"step": 2})
    lines = (tmp_path / "log.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == [{"step": 1, "word": "café"}, {"step": 2}]
    runs.JsonLog(tmp_path / "off.jsonl", False).write({"step": 1})
    assert not (tmp_path / "off.jsonl").exists()


def test_the_clock_counts_minutes_from_its_start(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(runs.time, "monotonic", lambda: now[0])
    clock = runs.Clock(0.5)
    assert clock.limit == 30.0 and clock.elapsed() == 0.0 and not clock.out_of_time()
    now[0] = 1029.5
    assert clock.elapsed() == 29.5 and not clock.out_of_time()
    now[0] = 1030.0
    assert clock.out_of_time()
    unlimited = runs.Clock(None)
    now[0] = 1e9
    assert unlimited.limit is None and not unlimited.out_of_time()


def test_the_rng_state_carries_cuda_generators_where_there_are_some(monkeypatch):
    noise = torch.Generator().manual_seed(5)
    state = runs.rng_state(noise)
    assert set(state) == {"torch", "noise"} or torch.cuda.is_available()
    fake = [torch.tensor([1, 2], dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: fake)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    state = runs.rng_state(noise)
    assert state["cuda"] is fake
    expected = noise.get_state()
    noise.manual_seed(9)
    runs.set_rng_state(state, noise)
    assert restored == [fake] and torch.equal(noise.get_state(), expected)
    runs.set_rng_state({"torch": state["torch"], "noise": state["noise"]}, noise)
    assert restored == [fake]  # a CPU run's state: the CUDA generators left as they are
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    runs.set_rng_state(state, noise)
    assert restored == [fake]  # recorded on a GPU, resumed on a CPU


# --- dmgan.checkpoint ---------------------------------------------------------------------

def test_a_checkpoint_holds_its_format_version_config_networks_and_extras(tmp_path):
    lin = nn.Linear(2, 3)
    save_checkpoint(tmp_path / "c.pt", config=_cfg(), networks={"a": lin, "b": {"w": torch.ones(1)}},
                    step=4)
    raw = torch.load(tmp_path / "c.pt", weights_only=True)
    assert (raw["format"], raw["format_version"], raw["dmgan_version"]) == (
        "dmgan-checkpoint", 1, __version__)
    assert raw["config"] == _cfg().to_dict() and raw["step"] == 4
    assert set(raw["networks"]) == {"a", "b"} and torch.equal(raw["networks"]["a"]["weight"],
                                                              lin.weight)
    cfg, payload = load_checkpoint(tmp_path / "c.pt", expect_preset="tiny")
    assert cfg == _cfg() and payload["step"] == 4


def _broken(tmp_path, **changes):
    path = tmp_path / "x.pt"
    save_checkpoint(path, config=_cfg(), networks={})
    raw = torch.load(path, weights_only=True)
    raw.update(changes)
    atomic_torch_save({k: v for k, v in raw.items() if v is not None}, path)
    return path


def test_a_checkpoint_that_cannot_be_read_is_refused_in_these_words(tmp_path):
    path = _broken(tmp_path, format="other")
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert str(exc.value) == (f"{path} is not a dmgan checkpoint (a released .pth file? load "
                              f"it with dmgan.released.load_released)")
    atomic_torch_save([1, 2], path)
    with pytest.raises(CheckpointError, match="is not a dmgan checkpoint"):
        load_checkpoint(path)
    path = _broken(tmp_path, format_version=2)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert str(exc.value) == (f"{path} has format version 2; this dmgan reads up to 1: "
                              f"upgrade dmgan")
    load_checkpoint(_broken(tmp_path, format_version=None))  # written before versions: read
    path = _broken(tmp_path, config=None)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert str(exc.value) == (f"{path} has no config (a dmgan checkpoint stores the config it "
                              f"was made with)")
    path = _broken(tmp_path, config={"generator": {"gf_dim": -1}})
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert str(exc.value).startswith(f"{path}: its config is broken: ")
    path = _broken(tmp_path)
    with pytest.raises(PresetMismatchError) as exc:
        load_checkpoint(path, expect_preset="bird")
    assert str(exc.value) == f"{path} holds a 'tiny' model, not 'bird'"
    with pytest.raises(CheckpointError) as exc:
        read_weights_only(tmp_path / "none.pt")
    assert str(exc.value) == f"checkpoint file not found: {tmp_path / 'none.pt'}"
    (tmp_path / "junk.pt").write_bytes(b"\x00junk")
    with pytest.raises(CheckpointError) as exc:
        read_weights_only(tmp_path / "junk.pt")
    assert str(exc.value).startswith(f"cannot read {tmp_path / 'junk.pt'} as a weights-only "
                                     f"torch file: ")


def test_a_failed_torch_write_is_an_os_error_and_leaves_nothing(tmp_path, monkeypatch):
    def full(obj, f):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(DMGANError) as exc:
        atomic_torch_save({"a": 1}, tmp_path / "c.pt")
    assert str(exc.value) == f"cannot write {tmp_path / 'c.pt'}: writing failed (disk full)"
    assert list(tmp_path.iterdir()) == []


def test_a_network_that_does_not_fit_is_refused_in_these_words():
    net = nn.Linear(2, 3)
    good = {k: v.clone() for k, v in net.state_dict().items()}

    def refused(state, name="g"):
        with pytest.raises(CheckpointError) as exc:
            load_network(nn.Linear(2, 3), {"networks": {"g": state, "d": {}}}, name, "m.pt")
        return str(exc.value)

    assert refused(good, "x") == "checkpoint m.pt holds no 'x' (it has ['d', 'g'])"
    with pytest.raises(CheckpointError, match=r"holds no 'g' \(it has \[\]\)"):
        load_network(net, {}, "g", "m.pt")
    assert refused({"weight": good["weight"]}) == "checkpoint m.pt: 'g' lacks key 'bias'"
    assert refused({**good, "bias": torch.zeros(4)}) == (
        "checkpoint m.pt: 'g.bias' has shape (4,), the model (3,)")
    assert refused({**good, "extra": torch.zeros(1)}) == (
        "checkpoint m.pt: 'g' has unexpected key 'extra'")
    for bad in (float("nan"), float("inf")):
        weight = good["weight"].clone()
        weight[1, 1] = bad
        assert refused({**good, "weight": weight}) == (
            "checkpoint m.pt: 'g.weight' holds NaN or infinite values (a diverged training run?)")
    counts = {**good, "n": torch.tensor(3)}
    with_count = nn.Linear(2, 3)
    with_count.register_buffer("n", torch.tensor(0))
    load_network(with_count, {"networks": {"g": counts}}, "g")  # integer buffers: no NaN check
    assert torch.equal(with_count.weight, good["weight"]) and int(with_count.n) == 3


def test_inference_takes_the_ema_generator_when_there_is_one():
    assert generator_name({}) == "generator"
    assert generator_name({"networks": {"generator": {}}}) == "generator"
    assert generator_name({"networks": {"generator": {}, "generator_ema": {}}}) == "generator_ema"


def test_lineage_lists_each_command_once_inputs_first():
    damsm = {"command": "dmgan pretrain-damsm"}
    critic = {"lineage": ["dmgan pretrain-damsm"], "command": "dmgan train-critic"}
    run = {"lineage": ["dmgan pretrain-damsm", "dmgan train-critic"], "command": "dmgan train"}
    assert lineage_of(run) == ["dmgan pretrain-damsm", "dmgan train-critic", "dmgan train"]
    assert lineage_of(damsm, None, critic, {}, {"command": None}, {"command": ""}) == [
        "dmgan pretrain-damsm", "dmgan train-critic"]
    assert lineage_of() == [] and lineage_of(None) == []


def test_a_run_folder_is_made_with_its_parents_or_refused_in_these_words(tmp_path):
    assert runs.make_run_folder(tmp_path / "a" / "b" / "run") == tmp_path / "a" / "b" / "run"
    assert (tmp_path / "a" / "b" / "run").is_dir()
    assert runs.make_run_folder(tmp_path / "a") == tmp_path / "a"  # an existing one is fine
    (tmp_path / "file").write_text("x")
    with pytest.raises(DMGANError) as exc:
        runs.make_run_folder(tmp_path / "file")
    assert str(exc.value) == f"--out {tmp_path / 'file'} is a file, not a folder"
    with pytest.raises(DMGANError) as exc:
        runs.make_run_folder(tmp_path / "file", "--outdir")
    assert str(exc.value) == f"--outdir {tmp_path / 'file'} is a file, not a folder"
    with pytest.raises(DMGANError) as exc:
        runs.make_run_folder(tmp_path / "file" / "run")
    assert str(exc.value) == f"cannot create {tmp_path / 'file' / 'run'}: Not a directory"


class _RunsCode:
    """A pickled object whose loading would call a function: a weights-only load refuses it."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_a_file_that_would_run_code_is_refused_with_the_first_line_of_the_reason(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"networks": _RunsCode()}, path)  # written here, with the plain pickler
    with pytest.raises(CheckpointError) as exc:
        read_weights_only(path)
    head = f"cannot read {path} as a weights-only torch file: UnpicklingError: "
    message = str(exc.value)
    assert message.startswith(head + "Weights only load failed.")
    detail = message[len(head):]
    assert len(detail) == 200 and "\n" not in detail  # the first line, cut at 200 characters
    with pytest.raises(CheckpointError, match="weights-only"):
        load_checkpoint(path)


def test_every_checkpoint_is_read_weights_only_onto_the_cpu_whatever_torchs_default(
        tmp_path, monkeypatch):
    """torch >= 2.6 loads weights-only by default, the torch versions dmgan admits (>= 2.1)
    did not: the reader asks for it, and for the CPU, itself."""
    _training_checkpoint(tmp_path / "c.pt", 1)
    asked, real_load = [], torch.load

    def spy(*args, **kwargs):
        asked.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_checkpoint(tmp_path / "c.pt")
    assert asked == [{"map_location": "cpu", "weights_only": True}]
