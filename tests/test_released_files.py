"""The released bird/coco files map key for key onto our presets, and bad files are refused."""

from __future__ import annotations

import pytest
import torch
from conftest import formula_state_dict, official_shapes

from dmgan import (
    DMGAN,
    CheckpointError,
    build_discriminators,
    build_generator,
    build_text_encoder,
    load_released,
    preset,
)
from dmgan.released import released_key_map, to_released


def _networks(cfg):
    ds = build_discriminators(cfg, init=False)
    return {"text_encoder": build_text_encoder(cfg), "netG": build_generator(cfg, init=False),
            **{f"netD{i}": d for i, d in enumerate(ds)}}


@pytest.mark.parametrize("name", ["bird", "coco"])
def test_every_official_key_and_shape_maps(name):
    shapes = official_shapes(name)
    for net_name, net in _networks(preset(name)).items():
        mapping = released_key_map(net)
        assert set(mapping) == set(shapes[net_name]), net_name
        own = net.state_dict()
        for rkey, shape in shapes[net_name].items():
            assert list(own[mapping[rkey]].shape) == shape, (net_name, rkey)


@pytest.mark.parametrize("name", ["bird", "coco"])
def test_formula_weights_load_without_num_batches_tracked(name, tmp_path):
    shapes = official_shapes(name)
    for net_name, net in _networks(preset(name)).items():
        state = formula_state_dict(shapes[net_name])
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        path = tmp_path / f"{net_name}.pth"
        torch.save(state, path, _use_new_zipfile_serialization=False)  # the old format
        load_released(net, path)
        back = to_released(net)
        for key, value in state.items():
            assert torch.equal(back[key], value), key
        del state, back


def test_other_preset_is_refused_with_key_and_shapes(tmp_path):
    bird_te = formula_state_dict(official_shapes("bird")["text_encoder"])
    path = tmp_path / "text_encoder200.pth"
    torch.save(bird_te, path)
    with pytest.raises(CheckpointError) as err:
        load_released(build_text_encoder(preset("coco")), path, what="coco text encoder")
    msg = str(err.value)
    assert "encoder.weight" in msg and "(5450, 300)" in msg and "(27297, 300)" in msg


def test_missing_and_unexpected_keys_are_named():
    cfg = preset("small")
    g = build_generator(cfg)
    state = to_released(g)
    missing = dict(state)
    del missing["h_net3.residual.1.block.3.weight"]
    with pytest.raises(CheckpointError, match=r"h_net3\.residual\.1\.block\.3\.weight.*missing"):
        load_released(build_generator(cfg), missing)
    extra = dict(state, **{"h_net4.A.weight": torch.zeros(1, 32)})
    with pytest.raises(CheckpointError, match=r"unexpected key 'h_net4\.A\.weight'"):
        load_released(build_generator(cfg), extra)


def test_data_parallel_prefix_is_accepted():
    cfg = preset("small")
    g = build_generator(cfg)
    state = {"module." + k: v for k, v in to_released(g).items()}
    g2 = load_released(build_generator(cfg), state)
    assert all(torch.equal(a, b) for a, b in zip(g.state_dict().values(),
                                                  g2.state_dict().values(), strict=True))


@pytest.mark.parametrize("content", [b"", b"not a torch file at all", b"PK\x03\x04truncated"])
def test_unreadable_files_give_checkpoint_errors(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_released(build_text_encoder(preset("small")), path)
    with pytest.raises(CheckpointError, match="not found"):
        load_released(build_text_encoder(preset("small")), tmp_path / "nope.pth")


def test_malicious_pickle_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    torch.save({"encoder.weight": Evil()}, path)
    with pytest.raises(CheckpointError):
        load_released(build_text_encoder(preset("small")), path)
    assert not marker.exists()


def test_from_released(tmp_path):
    from conftest import SMALL

    model = DMGAN.from_released("small", netG=SMALL / "netG.pth",
                                text_encoder=SMALL / "text_encoder.pth")
    out = model.generate(torch.tensor([[5, 6, 7], [8, 9, 0]]), torch.tensor([3, 2]), seed=1)
    assert [tuple(i.shape) for i in out.images] == [(2, 3, 64, 64), (2, 3, 128, 128),
                                                    (2, 3, 256, 256)]
