"""The losses beyond the released ones, each against its formula: the DAMSM's near-miss
term, the pixel term and its object weighting."""

from __future__ import annotations

import pytest
import torch

from dmgan import preset
from dmgan.config import override
from dmgan.errors import ConfigError
from dmgan.models import build_image_encoder


def test_damsm_near_miss_loss_is_a_two_way_softmax():
    from dmgan.losses.damsm import near_miss_loss

    torch.manual_seed(0)
    code, sent, neg = torch.randn(5, 8), torch.randn(5, 8), torch.randn(5, 8)
    f = torch.nn.functional
    pos, bad = f.cosine_similarity(code, sent), f.cosine_similarity(code, neg)
    expect = -torch.log(torch.exp(10 * pos) / (torch.exp(10 * pos) + torch.exp(10 * bad))).mean()
    torch.testing.assert_close(near_miss_loss(code, sent, neg, gamma3=10.0), expect)


def _generator_loss_inputs(cfg, b=3, t=4):
    """Ds, an image encoder, a fake GeneratorOutput and a maker of encoded captions."""
    from dmgan.models import build_discriminators
    from dmgan.nn.generator import GeneratorOutput
    from dmgan.nn.text_encoder import TextEncoding

    torch.manual_seed(0)
    dim = cfg.text.embed_dim
    out = GeneratorOutput(images=[torch.rand(b, 3, s, s) * 2 - 1 for s in cfg.generator.image_sizes],
                          attention=[], writing_gates=[], response_gates=[],
                          mu=torch.randn(b, cfg.generator.condition_dim),
                          logvar=torch.randn(b, cfg.generator.condition_dim))

    def text():
        return TextEncoding(words=torch.randn(b, dim, t), sentence=torch.randn(b, dim),
                            mask=torch.zeros(b, t, dtype=torch.bool))

    return build_discriminators(cfg), build_image_encoder(cfg), out, text, torch.full((b,), t)


def test_the_pixel_term_is_the_mean_difference_per_stage():
    """loss.pixel_weight: G pays the weight times each stage's mean squared difference to the
    real image, summed over stages; off (the released presets), nothing is added and the
    real images are not needed."""
    from dmgan.losses import generator_loss

    cfg = preset("tiny")
    ds, image_encoder, out, text, lengths = _generator_loss_inputs(cfg)
    own = text()
    real = [x.flip(0) for x in out.images]  # another picture per sample
    plain = generator_loss(ds, out, own, lengths, image_encoder, cfg.loss)
    assert plain.pixel is None
    on = override(cfg, ["loss.pixel_weight=4"]).loss
    paid = generator_loss(ds, out, own, lengths, image_encoder, on, real=real)
    want = 4 * sum(((f - r) ** 2).mean() for f, r in zip(out.images, real, strict=True))
    assert want.item() > 0
    torch.testing.assert_close(paid.pixel, want)
    torch.testing.assert_close(paid.total - plain.total, want, rtol=1e-5, atol=1e-4)
    same = generator_loss(ds, out, own, lengths, image_encoder, on, real=out.images)
    torch.testing.assert_close(same.total, plain.total, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="real images"):
        generator_loss(ds, out, own, lengths, image_encoder, on)
    with pytest.raises(ConfigError, match="pixel_weight"):
        override(cfg, ["loss.pixel_weight=-1"])
    assert all(preset(name).loss.pixel_weight == 0 for name in ("bird", "coco", "tiny"))


def test_the_pixel_term_can_weigh_the_objects_more():
    """loss.pixel_object_weight: the pixels where the real picture is not its background (the
    median colour of its border, found per picture) count 1 + the weight times; an object
    touching the border does not change the background found."""
    from dmgan.data.shapes import ShapesDataset
    from dmgan.losses.generator import object_mask, pixel_difference

    real = torch.full((2, 3, 8, 8), -0.5)
    real[0, :, 2:4, 3:6] = 0.7  # a 2 x 3 object inside
    real[1, 0] = 0.2  # another background colour (red channel)...
    real[1, :, 0:3, 0:2] = -1.0  # ...with a 3 x 2 object in the corner
    mask = object_mask(real)
    assert mask.shape == (2, 1, 8, 8)
    assert mask[0].sum() == 6 and mask[0, 0, 2:4, 3:6].all()
    assert mask[1].sum() == 6 and mask[1, 0, 0:3, 0:2].all()
    fake = torch.zeros_like(real)
    per_pixel = (fake - real) ** 2
    want = (per_pixel * (1 + 9 * mask)).mean()
    torch.testing.assert_close(pixel_difference(fake, real, 9.0), want)
    torch.testing.assert_close(pixel_difference(fake, real, 0.0), per_pixel.mean())
    # on the shapes data the mask is the objects: a tenth to a fifth of a 32 px picture
    data = ShapesDataset(length=20, image_sizes=(32,))
    share = torch.stack([object_mask(data[i].images[0][None]).mean() for i in range(20)])
    assert 0.02 < share.min() and share.max() < 0.4
    with pytest.raises(ConfigError, match="pixel_object_weight"):
        override(preset("tiny"), ["loss.pixel_object_weight=-1"])


def test_the_pixel_term_counts_only_captions_that_fix_their_picture():
    """A caption that leaves things free has many pictures (their mean is a blur): with
    fixes_picture, the pixel term counts only the captions that say everything."""
    from dmgan.losses import generator_loss

    cfg = override(preset("tiny"), ["loss.pixel_weight=4"])
    ds, image_encoder, out, text, lengths = _generator_loss_inputs(cfg)
    own = text()
    real = [x.flip(0) for x in out.images]
    every = generator_loss(ds, out, own, lengths, image_encoder, cfg.loss, real=real)
    ones = generator_loss(ds, out, own, lengths, image_encoder, cfg.loss, real=real,
                          fixes_picture=torch.ones(3))
    torch.testing.assert_close(ones.pixel, every.pixel)
    picked = torch.tensor([1.0, 0.0, 1.0])
    some = generator_loss(ds, out, own, lengths, image_encoder, cfg.loss, real=real,
                          fixes_picture=picked)
    want = 4 * sum(((f - r) ** 2).flatten(1).mean(1)[[0, 2]].sum() / 3
                   for f, r in zip(out.images, real, strict=True))
    torch.testing.assert_close(some.pixel, want)


def test_with_pixel_candidates_the_pixel_term_counts_every_caption():
    """Drawn as the nearest of several noises' pictures, a caption that leaves things free
    has a real picture to be pulled toward (not the blur of its many): every caption counts."""
    from dmgan.losses import generator_loss
    from dmgan.losses.generator import pixel_distances

    cfg = override(preset("tiny"), ["loss.pixel_weight=4", "loss.pixel_candidates=3"])
    ds, image_encoder, out, text, lengths = _generator_loss_inputs(cfg)
    own = text()
    real = [x.flip(0) for x in out.images]
    every = generator_loss(ds, out, own, lengths, image_encoder, cfg.loss, real=real)
    some = generator_loss(ds, out, own, lengths, image_encoder, cfg.loss, real=real,
                          fixes_picture=torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(some.pixel, every.pixel)
    # the object weight counts on the captions that fix their picture only: weighted, a free
    # object drawn twice would pay
    weighted = override(cfg, ["loss.pixel_object_weight=9"]).loss
    fixed = torch.tensor([1.0, 0.0, 1.0])
    real = [x.roll(1, 0) for x in out.images]
    got = generator_loss(ds, out, own, lengths, image_encoder, weighted, real=real,
                         fixes_picture=fixed).pixel
    want = sum(torch.where(fixed.bool(), pixel_distances(f, r, 9.0), pixel_distances(f, r)).mean()
               for f, r in zip(out.images, real, strict=True))
    torch.testing.assert_close(got, 4 * want)
    assert not torch.allclose(got, 4 * sum(pixel_distances(f, r, 9.0).mean()
                                           for f, r in zip(out.images, real, strict=True)))
    with pytest.raises(ConfigError, match="pixel_candidates"):
        override(preset("tiny"), ["loss.pixel_candidates=0"])


def test_the_nearest_noise_is_the_one_whose_pictures_are_nearest_the_real_ones():
    """Per caption, of K noises G draws from (the condition code's draw shared), the step
    trains on the one whose pictures are nearest to the caption's real ones (every pixel
    alike, summed over stages); a caption that fixes its picture keeps its first noise."""
    from dmgan.losses.generator import pixel_distances
    from dmgan.models import build_generator
    from dmgan.nn.text_encoder import TextEncoding
    from dmgan.train.step import StepNoises, draw_noises, nearest_noise

    cfg = override(preset("tiny"), ["loss.pixel_weight=1", "loss.pixel_object_weight=9",
                                    "loss.pixel_candidates=4"])
    torch.manual_seed(0)
    g = build_generator(cfg).eval()  # eval: each picture does not depend on the batch
    b, t, dim = 3, 5, cfg.text.embed_dim
    text = TextEncoding(words=torch.randn(b, dim, t), sentence=torch.randn(b, dim),
                        mask=torch.zeros(b, t, dtype=torch.bool))
    drawn = StepNoises.split(cfg, draw_noises(cfg, b, torch.Generator().manual_seed(1), "cpu"))
    assert drawn.second is None and drawn.candidates.shape == (3 * b, cfg.generator.z_dim)
    z, cond = drawn.d_steps[-1], drawn.condition
    every = torch.cat([z, drawn.candidates]).view(4, b, -1)

    def draw(noise):
        return g(noise, text.sentence, text.words, text.mask, condition_noise=cond).images

    # the real pictures: candidate j's drawing of caption i for a chosen j per caption
    want = torch.tensor([2, 0, 3])
    real = [torch.stack([draw(every[j])[s][i] for i, j in enumerate(want.tolist())])
            for s in range(cfg.generator.num_stages)]
    chosen = nearest_noise(g, real, text, z, drawn.candidates, cond)
    torch.testing.assert_close(chosen, every[want, torch.arange(b)])
    fixed = nearest_noise(g, real, text, z, drawn.candidates, cond,
                          fixes_picture=torch.tensor([1.0, 1.0, 0.0]))
    torch.testing.assert_close(fixed, every[torch.tensor([0, 0, 3]), torch.arange(b)])
    # nearest, not first
    real = [x + 0.3 * torch.randn_like(x) for x in draw(every[1])]
    chosen = nearest_noise(g, real, text, z, drawn.candidates, cond)
    apart = torch.stack([sum(pixel_distances(f, r)
                             for f, r in zip(draw(every[j]), real, strict=True))
                         for j in range(4)])
    torch.testing.assert_close(chosen, every[apart.argmin(0), torch.arange(b)])


def test_a_caption_fixes_its_picture_when_it_says_everything():
    from dmgan.config import DataConfig
    from dmgan.data.shapes import PARTS, ShapesDataset

    world = DataConfig(shapes_partial_share=0.5, shapes_background_phrase=0.8)
    data = ShapesDataset(length=200, image_sizes=(16,), options=world)
    kinds = set()
    for i in range(200):
        a = data[i].attributes
        everything = all(sorted(s) == sorted(PARTS) for s in a["said"])
        assert a["fixes_picture"] == (everything and a["background_named"])
        kinds.add(a["fixes_picture"])
    assert kinds == {True, False}
    plain = ShapesDataset(length=50, image_sizes=(16,), options=DataConfig(
        shapes_background_phrase=0.5, shapes_unnamed_background="white"))
    assert all(plain[i].attributes["fixes_picture"] for i in range(50))  # white: one picture


def test_the_diversity_term_falls_as_the_noise_moves_the_picture():
    """loss.diversity_weight (mode seeking): per caption, 1 / (mean |picture a - picture b| /
    mean |noise a - noise b|); only the captions that leave things free count."""
    from dmgan.losses.generator import DIVERSITY_EPS, diversity_term

    torch.manual_seed(0)
    a = torch.rand(4, 3, 8, 8)
    z_a, z_b = torch.randn(4, 5), torch.randn(4, 5)
    near, far = a + 0.01, a + 0.5
    ratio = 0.5 / (z_a - z_b).abs().mean(1)
    torch.testing.assert_close(diversity_term(a, far, z_a, z_b),
                               (1 / (ratio + DIVERSITY_EPS)).mean())
    assert diversity_term(a, far, z_a, z_b) < diversity_term(a, near, z_a, z_b) / 10
    free = torch.tensor([1, 0, 0, 1])
    want = (1 / (ratio + DIVERSITY_EPS))[[0, 3]].sum() / 4
    torch.testing.assert_close(diversity_term(a, far, z_a, z_b, free), want)
    assert diversity_term(a, far, z_a, z_b, torch.zeros(4)) == 0
    with pytest.raises(ConfigError, match="diversity_weight"):
        override(preset("tiny"), ["loss.diversity_weight=-1"])


def test_the_diversity_term_counts_captions_that_leave_things_free():
    """In the generator loss the second drawing covers the first captions of the batch; the
    captions that fix their picture add nothing; without a second drawing it says what it
    needs."""
    from dmgan.losses import generator_loss
    from dmgan.losses.generator import diversity_term
    from dmgan.nn.generator import GeneratorOutput

    cfg = override(preset("tiny"), ["loss.diversity_weight=3"])
    ds, image_encoder, out, text, lengths = _generator_loss_inputs(cfg)
    own = text()
    other = GeneratorOutput(images=[x[:2].flip(0) for x in out.images], attention=[],
                            writing_gates=[], response_gates=[], mu=out.mu[:2],
                            logvar=out.logvar[:2])
    z_a, z_b = torch.randn(3, 4), torch.randn(2, 4)
    fixes = torch.tensor([True, False, False])
    got = generator_loss(ds, out, own, lengths, image_encoder, cfg.loss,
                         fixes_picture=fixes, second=(other, z_a, z_b))
    want = 3 * diversity_term(out.images[-1][:2], other.images[-1], z_a[:2], z_b,
                              torch.tensor([0, 1]))
    torch.testing.assert_close(got.diversity, want)
    assert got.diversity > 0
    without = generator_loss(ds, out, own, lengths, image_encoder, cfg.loss.__class__())
    assert without.diversity is None
    with pytest.raises(ValueError, match="second drawing"):
        generator_loss(ds, out, own, lengths, image_encoder, cfg.loss)
