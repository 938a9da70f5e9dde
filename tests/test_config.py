from __future__ import annotations

import json

import pytest

from dmgan import ConfigError, DMGANConfig, preset
from dmgan.config import PRESETS, GeneratorConfig, TrainConfig


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(name):
    cfg = preset(name)
    assert DMGANConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_released_settings():
    bird, coco = preset("bird"), preset("coco")
    assert bird.generator.res_blocks == 2 and coco.generator.res_blocks == 3
    assert bird.loss.damsm_weight == 5 and coco.loss.damsm_weight == 50
    assert bird.generator.image_sizes == (64, 128, 256)
    assert (bird.text.vocab_size, coco.text.vocab_size) == (5450, 27297)


@pytest.mark.parametrize("bad", [
    {"train": TrainConfig(batch_size=-1)},
    {"generator": GeneratorConfig(num_stages=0)},
    {"generator": GeneratorConfig(base_size=48)},
    {"generator": GeneratorConfig(mask_mode="nope")},
])
def test_invalid_values_are_refused(bad):
    with pytest.raises(ConfigError, match="invalid config"):
        preset("bird", **bad)


def test_unknown_preset_and_fields():
    with pytest.raises(ConfigError, match="unknown preset 'birds'"):
        preset("birds")
    data = preset("small").to_dict()
    data["generator"]["gf"] = 3
    with pytest.raises(ConfigError, match="unknown field"):
        DMGANConfig.from_dict(data)
