"""Our checkpoint format: round trips, preset checks, atomic writes."""

from __future__ import annotations

import pytest
import torch

from dmgan import DMGAN, CheckpointError, preset
from dmgan.checkpoint import load_checkpoint, save_checkpoint


def _caps():
    return torch.tensor([[4, 9, 2, 0], [7, 3, 5, 8]]), torch.tensor([3, 4])


def test_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = DMGAN.from_preset("small")
    path = tmp_path / "model.pt"
    model.save(path)
    loaded = DMGAN.from_checkpoint(path)
    assert loaded.config == model.config
    caps, lens = _caps()
    a = model.generate(caps, lens, seed=3)
    b = loaded.generate(caps, lens, seed=3)
    for x, y in zip(a.images + a.attention, b.images + b.attention, strict=True):
        assert torch.equal(x, y)
    # weights_only loading of the raw file works too
    payload = torch.load(path, weights_only=True)
    assert payload["config"]["name"] == "small" and payload["format_version"] == 1


def test_other_preset_is_refused(tmp_path):
    path = tmp_path / "small.pt"
    DMGAN.from_preset("small").save(path)
    with pytest.raises(CheckpointError, match="holds a 'small' model, not 'bird'"):
        DMGAN.from_checkpoint(path, expect_preset="bird")


def test_released_file_is_not_our_format(tmp_path):
    path = tmp_path / "netG.pth"
    torch.save({"ca_net.fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(CheckpointError, match="not a dmgan checkpoint"):
        load_checkpoint(path)


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    model = DMGAN.from_preset("small")
    model.save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(Exception, match="No space left"):
        save_checkpoint(path, config=preset("small"), networks={"g": model.generator})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary left behind
