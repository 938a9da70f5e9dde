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


def test_older_files_load_under_the_new_names_and_retired_fields_are_refused_when_set():
    """A config written before the renames and retirements (the bundled model's file had one)
    reads under the new names; a retired field at the value that remains is dropped, at any
    other value refused with the reason, and --set names the new field."""
    from dmgan.config import DMGANConfig, override, preset
    from dmgan.errors import ConfigError

    old = preset("shapes").to_dict()
    old["generator"]["init_words"] = old["generator"].pop("first_stage_read_px")
    old["loss"]["g_contrast_weight"] = old["loss"].pop("caption_preference_weight")
    old["train"]["contrast_negatives"] = old["train"].pop("near_miss_negatives")
    old["damsm"]["contrast_negatives"] = old["damsm"].pop("near_miss_negatives")
    old["loss"] |= {"adversarial": "bce", "ma_gp_weight": 0.0, "ma_gp_power": 6.0,
                    "pixel_norm": "l2", "pixel_stages": 0, "damsm_contrast_weight": 0.0,
                    "pair_weight": 0.0}
    old["train"] |= {"hard_negatives": False, "sample_condition": True}
    old["data"] |= {"shapes_background_negative": 0.0, "shapes_two_object_share": 0.5,
                    "shapes_contrast_shape_share": 0.0}
    del old["critic"]  # files before the critic section
    assert DMGANConfig.from_dict(old) == preset("shapes")
    for section, name, value in (("loss", "adversarial", "hinge"),
                                 ("train", "sample_condition", False),
                                 ("data", "shapes_two_object_share", 0.8),
                                 ("loss", "pair_weight", 1.0)):
        changed = {**old, section: {**old[section], name: value}}
        with pytest.raises(ConfigError, match=f"{section}.{name}=.* was retired"):
            DMGANConfig.from_dict(changed)
    with pytest.raises(ConfigError, match="it is now generator.first_stage_read_px"):
        override(preset("tiny"), ["generator.init_words=8"])
    with pytest.raises(ConfigError, match="it was retired"):
        override(preset("tiny"), ["train.hard_negatives=true"])
