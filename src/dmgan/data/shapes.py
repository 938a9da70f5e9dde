"""The built-in captioned-shapes dataset: generated from a seed, no files.

Each 64 px image (other sizes scale the same geometry) shows one or two objects on a
coloured background. An object has a shape, a colour, a size and a position; two
objects sit at opposite positions (left/right or top/bottom). Captions come from
several templates with synonyms and varied word order, so the text encoder meets real
language; the ground truth travels with every sample (Sample.attributes).

Sample i of a split is drawn from numpy's generator seeded with (seed, split, i): the
same seed gives the same images and captions on any machine.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from dmgan.config import SHAPES_COLOURS, DataConfig
from dmgan.data.collate import Sample
from dmgan.data.transforms import fit_caption, to_tensor
from dmgan.data.vocab import Vocabulary, tokenize

SHAPES = ("circle", "square", "triangle", "diamond")
COLOUR_NAMES = SHAPES_COLOURS  # the config validates colour names against the same tuple
COLOURS = dict(zip(COLOUR_NAMES, ((220, 40, 40), (40, 170, 60), (40, 80, 220), (240, 220, 50),
                                  (140, 60, 170), (245, 140, 30), (245, 245, 245), (20, 20, 20)),
                   strict=True))
SIZES = ("small", "large")
POSITIONS = ("left", "right", "top", "bottom", "center")
PAIRS = (("left", "right"), ("top", "bottom"))
_ANCHOR = {"left": (0.25, 0.5), "right": (0.75, 0.5), "top": (0.5, 0.25),
           "bottom": (0.5, 0.75), "center": (0.5, 0.5)}
_RADIUS = {"small": 0.11, "large": 0.19}  # fraction of the image side

_SYN = {
    "small": ("small", "little", "tiny"),
    "large": ("large", "big", "huge"),
    "circle": ("circle", "disk", "round shape"),
    "square": ("square", "box"),
    "triangle": ("triangle",),
    "diamond": ("diamond", "rhombus"),
    "left": ("on the left", "at the left side", "to the left"),
    "right": ("on the right", "at the right side", "to the right"),
    "top": ("at the top", "in the upper part", "near the top edge"),
    "bottom": ("at the bottom", "in the lower part", "near the bottom edge"),
    "center": ("in the center", "in the middle"),
}
# the words that name one place and no other ("left", "upper", "middle", ...): every
# training caption has one for each object
PLACE_WORDS = frozenset(
    w for pos in POSITIONS for phrase in _SYN[pos] for w in phrase.split()
    if sum(w in " ".join(_SYN[p]).split() for p in POSITIONS) == 1)
# Plural nouns, for captions that count ("two red squares").
_PLURAL = {"circle": "circles", "disk": "disks", "round shape": "round shapes",
           "square": "squares", "box": "boxes", "triangle": "triangles",
           "diamond": "diamonds", "rhombus": "rhombuses"}
COUNT_WORDS = {"two": 2}
# counts this world never draws: a caption with one is beyond it (the pipeline warns)
BEYOND_COUNT_WORDS = ("three", "four", "five", "six", "seven", "eight", "nine", "ten",
                      "several", "many", "some")
MAX_OBJECTS = 2
# The attributes a partial caption may leave out of an object (its shape it always says).
PARTS = ("size", "colour", "position")
# A fixed quarter of the colour-shape pairs (8 of 32: each colour once, each shape twice) and
# of the shape-place pairs (5 of 20) that no training picture or caption has
# (data.shapes_held_out): what a model draws for them tells whether it composes.
HELD_OUT_COLOUR_SHAPE = frozenset({
    ("red", "triangle"), ("green", "diamond"), ("blue", "circle"), ("yellow", "square"),
    ("purple", "triangle"), ("orange", "diamond"), ("white", "circle"), ("black", "square")})
HELD_OUT_SHAPE_PLACE = frozenset({
    ("circle", "top"), ("square", "bottom"), ("triangle", "left"), ("diamond", "right"),
    ("circle", "center")})


def held_out(scene: Scene) -> bool:
    """Whether the scene has a held-out colour-shape or shape-place pair."""
    return any((o.colour, o.shape) in HELD_OUT_COLOUR_SHAPE
               or (o.shape, o.position) in HELD_OUT_SHAPE_PLACE for o in scene.objects)


def object_words() -> dict[str, int]:
    """The nouns that name objects, with how many objects each names (plurals: with their
    count word, two): what the pipeline counts a caption's objects by."""
    out: dict[str, int] = {}
    for shape in SHAPES:
        for noun in _SYN[shape]:
            out[noun.split()[-1]] = 1
            out[_PLURAL[noun].split()[-1]] = 2
    return out


def world_reads() -> dict:
    """What a model of this world can draw, as its file records it (dmgan.export): at most
    MAX_OBJECTS objects, counted by their nouns; the count words beyond it."""
    return {"max_objects": MAX_OBJECTS, "object_words": object_words(),
            "beyond_count_words": list(BEYOND_COUNT_WORDS)}


def caption_needs(cfg) -> list[dict]:
    """What a model trained on this world with `cfg` (a DMGANConfig) needs its captions to
    name, as `export` writes it into the model file: per caption part, the words that name it
    and the warning for a caption without any of them. Every training caption names where
    each object is; the background is needed unless the captions left it out at times and G
    was taught (the pixel term) what to draw then."""
    place = {"part": "place", "words": sorted(PLACE_WORDS),
             "message": "this model learned from captions that name where each object is; "
                        "without a place it may fill the picture with the object's colour: "
                        "add one (\"... on the left\", \"... in the center\")"}
    d = cfg.data
    if d.shapes_partial_share > 0:  # captions that leave out a place are ones it learned
        place = None
    if d.shapes_background_phrase >= 1.0:
        why = "this model learned from captions that always name the background"
    elif d.shapes_background_first == 0 and (cfg.loss.pixel_weight == 0
                                             or d.shapes_unnamed_background == "any"):
        why = ("this model often draws a caption that leaves out the background with the "
               "background in an object's colour, hiding it")
    else:
        return [place] if place else []
    background = {"part": "background", "words": ["background"],
                  "message": f"{why}: name the background (\"... on a white background\")"}
    return [place, background] if place else [background]



_ONE = (
    "a {size} {colour} {shape} {pos} on a {bg} background",
    "{pos} there is a {size} {colour} {shape} on {bg}",
    "the picture shows a {colour} {shape} that is {size} {pos} with a {bg} background",
    "on a {bg} background a {size} {colour} {shape} sits {pos}",
    "a {colour} {size} {shape} {pos} against {bg}",
)
_TWO = (
    "a {size} {colour} {shape} {pos} and a {size2} {colour2} {shape2} {pos2} on a {bg} background",
    "{pos} a {size} {colour} {shape} and {pos2} a {size2} {colour2} {shape2} against {bg}",
    "there is a {colour} {shape} that is {size} {pos} and a {colour2} {shape2} that is {size2} {pos2}"
    " with a {bg} background",
)
# The same sentences without the background phrase: the background is then any colour
# (what a user who types "a red circle" gets).
_ONE_NO_BG = (
    "a {size} {colour} {shape} {pos}",
    "{pos} there is a {size} {colour} {shape}",
    "the picture shows a {colour} {shape} that is {size} {pos}",
    "a {colour} {size} {shape} {pos}",
)
_TWO_NO_BG = (
    "a {size} {colour} {shape} {pos} and a {size2} {colour2} {shape2} {pos2}",
    "{pos} a {size} {colour} {shape} and {pos2} a {size2} {colour2} {shape2}",
)
SPLIT_IDS = {"train": 0, "test": 1}


@dataclass(frozen=True)
class ShapeObject:
    shape: str
    colour: str
    size: str
    position: str


@dataclass(frozen=True)
class Scene:
    objects: tuple[ShapeObject, ...]
    background: str

    def as_dict(self) -> dict:
        return {"background": self.background,
                "objects": [vars(o) | {} for o in self.objects]}


def vocabulary() -> Vocabulary:
    """Every word the templates can produce, sorted: fixed for every seed and split."""
    words: set[str] = set(COLOUR_NAMES) | {"an", "and", "are", *COUNT_WORDS}
    for plural in _PLURAL.values():
        words.update(tokenize(plural))
    for options in _SYN.values():
        for phrase in options:
            words.update(tokenize(phrase))
    for template in _ONE + _TWO:
        words.update(w for w in tokenize(template.replace("{", " ").replace("}", " "))
                     if w not in {"size", "colour", "shape", "pos", "bg", "size2", "colour2",
                                  "shape2", "pos2"})
    return Vocabulary(["<end>", *sorted(words)])


def sample_scene(rng: np.random.Generator, max_objects: int = 2, two_share: float = 0.5) -> Scene:
    """One or (`two_share` of the time, when `max_objects` allows) two objects at random."""
    n = 1 if max_objects == 1 or rng.random() < 1.0 - two_share else 2
    positions = ([POSITIONS[rng.integers(len(POSITIONS))]] if n == 1
                 else list(PAIRS[rng.integers(len(PAIRS))]))
    if n == 2 and rng.random() < 0.5:
        positions.reverse()
    objects, used = [], set()
    for pos in positions:
        colour = COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))]
        used.add(colour)
        objects.append(ShapeObject(SHAPES[rng.integers(len(SHAPES))], colour,
                                   SIZES[rng.integers(len(SIZES))], pos))
    backgrounds = [c for c in COLOUR_NAMES if c not in used]
    return Scene(tuple(objects), backgrounds[rng.integers(len(backgrounds))])


def plain_background(scene: Scene, colour: str) -> str:
    """`colour`, or the first of white, black and the other colours that no object has."""
    used = {o.colour for o in scene.objects}
    return next(c for c in (colour, "white", "black", *COLOUR_NAMES) if c not in used)


def describe(scene: Scene, rng: np.random.Generator, *, name_background: bool = True,
             background_first: bool = False) -> str:
    """The scene in words; `background_first`: "on a BG background" opens the caption, the
    rest worded as a caption without it (only when `name_background`)."""
    def pick(key: str) -> str:
        options = _SYN.get(key, (key,))
        return options[rng.integers(len(options))]

    first = name_background and background_first
    text = _fill(scene, scene.objects, pick, rng, name_background and not first)
    if first:
        text = f"on a {scene.background} background {text}"
    return _articles(text)


def _articles(text: str) -> str:
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def _fill(scene: Scene, o: tuple[ShapeObject, ...], pick, rng: np.random.Generator,
          name_background: bool) -> str:
    one, two = (_ONE, _TWO) if name_background else (_ONE_NO_BG, _TWO_NO_BG)
    fields = {"size": pick(o[0].size), "colour": o[0].colour, "shape": pick(o[0].shape),
              "pos": pick(o[0].position), "bg": scene.background}
    if len(o) == 1:
        return one[rng.integers(len(one))].format(**fields)
    fields |= {"size2": pick(o[1].size), "colour2": o[1].colour, "shape2": pick(o[1].shape),
               "pos2": pick(o[1].position)}
    return two[rng.integers(len(two))].format(**fields)


_PARTIAL_OPENINGS = ("{}", "there is {}", "the picture shows {}")
_PLURAL_OPENINGS = ("{}", "there are {}", "the picture shows {}")


def describe_partial(scene: Scene, said: Sequence[frozenset[str]], rng: np.random.Generator, *,
                     name_background: bool, plural: bool = False) -> str:
    """The scene in words, each object with only its `said` attributes (PARTS; its shape it
    always says): "a circle", "a red square on the left and a big triangle". `plural`: two
    objects of one shape, said together with a count ("two red squares"; their said
    attributes must be equal but for the place)."""
    def pick(key: str) -> str:
        options = _SYN.get(key, (key,))
        return options[rng.integers(len(options))]

    def adjectives(o: ShapeObject, parts: frozenset[str]) -> list[str]:
        return ([pick(o.size)] if "size" in parts else []) + (
            [o.colour] if "colour" in parts else [])

    objs = scene.objects
    if plural:
        a, b = objs
        noun = _PLURAL[pick(a.shape)]
        text = " ".join(["two", *adjectives(a, said[0]), noun])
        if "position" in said[0]:
            text += f" {pick(a.position)} and {pick(b.position)}"
        text = _PLURAL_OPENINGS[rng.integers(len(_PLURAL_OPENINGS))].format(text)
    else:
        phrases = []
        for o, parts in zip(objs, said, strict=True):
            phrase = " ".join(["a", *adjectives(o, parts), pick(o.shape)])
            phrases.append(phrase + (f" {pick(o.position)}" if "position" in parts else ""))
        text = _PARTIAL_OPENINGS[rng.integers(len(_PARTIAL_OPENINGS))].format(" and ".join(phrases))
    if name_background:
        text += f" on a {scene.background} background"
    return _articles(text)


def can_count(scene: Scene, said: Sequence[frozenset[str]]) -> bool:
    """Whether two objects may be said with a count: one shape, and the same said attributes
    with the same values (the places aside)."""
    if len(scene.objects) != 2 or said[0] != said[1]:
        return False
    a, b = scene.objects
    return a.shape == b.shape and all(getattr(a, p) == getattr(b, p)
                                      for p in said[0] - {"position"})


JITTER = 0.04  # how far (a fraction of the side) each object may stray from its place


def render(scene: Scene, size: int, rng: np.random.Generator | None = None, *,
           jitter: float = JITTER) -> Image.Image:
    """Draw at 4x and downsample (anti-aliased). rng jitters each object's position by up to
    `jitter` of the side on each axis (the draws are taken with any jitter, 0 included, so
    what the generator draws next does not depend on it)."""
    big = size * 4
    img = Image.new("RGB", (big, big), COLOURS[scene.background])
    draw = ImageDraw.Draw(img)
    for obj in scene.objects:
        ax, ay = _ANCHOR[obj.position]
        if rng is not None:
            ax, ay = ax + rng.uniform(-jitter, jitter), ay + rng.uniform(-jitter, jitter)
        cx, cy, r = ax * big, ay * big, _RADIUS[obj.size] * big
        fill = COLOURS[obj.colour]
        if obj.shape == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        elif obj.shape == "square":
            s = r * 0.9
            draw.rectangle((cx - s, cy - s, cx + s, cy + s), fill=fill)
        elif obj.shape == "triangle":
            draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=fill)
        else:
            draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    return img.resize((size, size), Image.BOX)


def traded(scene: Scene, attribute: str) -> Scene:
    """A two-object scene whose objects trade one attribute ("colour", "shape", "size" or
    "position"): the same words, bound to the other objects."""
    a, b = scene.objects
    return Scene((replace(a, **{attribute: getattr(b, attribute)}),
                  replace(b, **{attribute: getattr(a, attribute)})), scene.background)


def redraw_free(scene: Scene, said: Sequence[Sequence[str]], rng: np.random.Generator) -> Scene:
    """Another scene of the same caption: each object's `said` parts (PARTS) and every shape
    kept, what the caption leaves free drawn again as the world draws it (any size, any colour
    but the background's, any place; two objects' places as a pair, unless one of them is
    said, which fixes the pair). The background stays: a caption that names none still gets
    the data's one plain background (data.shapes_unnamed_background)."""
    objs = list(scene.objects)
    if len(objs) == 2 and not any("position" in s for s in said):
        pair = [("left", "right"), ("top", "bottom")][int(rng.integers(2))]
        pair = pair if rng.random() < 0.5 else pair[::-1]
        objs = [replace(o, position=p) for o, p in zip(objs, pair, strict=True)]
    for j, o in enumerate(objs):
        if "size" not in said[j]:
            o = replace(o, size=SIZES[int(rng.integers(len(SIZES)))])
        if "colour" not in said[j]:
            free = [c for c in COLOUR_NAMES if c != scene.background]
            o = replace(o, colour=free[int(rng.integers(len(free)))])
        if len(objs) == 1 and "position" not in said[j]:
            o = replace(o, position=POSITIONS[int(rng.integers(len(POSITIONS)))])
        objs[j] = o
    return replace(scene, objects=tuple(objs))


def near_miss_scene(scene: Scene, rng: np.random.Generator, *, swap_share: float = 0.0,
                    background: bool = True) -> Scene:
    """The scene with one thing changed: an object's shape, colour, size or position, the
    background, or (two objects) their colours or shapes swapped. Its caption is a hard
    negative: it differs from the true one in a word or two.

    swap_share: the share of two-object scenes whose near miss binds the caption's words to
    the other objects: half the two objects trading places, half trading colours (places
    when they share a colour). These are the negatives that teach which object is where
    and has which colour. 0 draws the change uniformly among all kinds (and no extra
    random number).
    background: whether the caption names the background; when it does not, the background
    is never the one thing changed (the near-miss caption would be the true one)."""
    objs = list(scene.objects)
    if len(objs) == 2 and swap_share > 0 and rng.random() < swap_share:
        colours = objs[0].colour != objs[1].colour and rng.random() < 0.5
        return traded(scene, "colour" if colours else "position")
    k = int(rng.integers(len(objs)))
    o = objs[k]
    kinds = ["shape", "colour", "size", "position"] + (["background"] if background else [])
    if len(objs) == 2:
        kinds += ["swap_colour", "swap_shape"] if (objs[0].colour != objs[1].colour
                                                   or objs[0].shape != objs[1].shape) else []
    kind = kinds[int(rng.integers(len(kinds)))]
    used = {x.colour for x in objs}

    def other(values, current):
        rest = [v for v in values if v != current]
        return rest[int(rng.integers(len(rest)))]

    bg = scene.background
    if kind == "shape":
        objs[k] = ShapeObject(other(SHAPES, o.shape), o.colour, o.size, o.position)
    elif kind == "colour":
        free = [c for c in COLOUR_NAMES if c not in used and c != bg]
        objs[k] = ShapeObject(o.shape, free[int(rng.integers(len(free)))], o.size, o.position)
    elif kind == "size":
        objs[k] = ShapeObject(o.shape, o.colour, other(SIZES, o.size), o.position)
    elif kind == "position":
        if len(objs) == 1:
            objs[k] = ShapeObject(o.shape, o.colour, o.size, other(POSITIONS, o.position))
        else:  # the two objects trade places
            objs = list(traded(scene, "position").objects)
    elif kind == "background":
        free = [c for c in COLOUR_NAMES if c not in used and c != bg]
        bg = free[int(rng.integers(len(free)))]
    elif kind == "swap_colour" and objs[0].colour != objs[1].colour:
        objs = list(traded(scene, "colour").objects)
    elif kind == "swap_shape" and objs[0].shape != objs[1].shape:
        objs = list(traded(scene, "shape").objects)
    else:  # the swap changed nothing (same colours / shapes): change a shape instead
        objs[k] = ShapeObject(other(SHAPES, o.shape), o.colour, o.size, o.position)
    return Scene(tuple(objs), bg)


CACHE_BYTES = 1 << 30  # per dataset object (each data-loader worker holds its own)


@dataclass
class _Wording:
    """A sample's scene and how its caption words it."""

    rng: np.random.Generator  # the sample's generator, at the wording draws
    scene: Scene
    named: bool  # the caption names the background
    first: bool  # ... at its start
    said: tuple[frozenset[str], ...] | None  # per object, the PARTS said; None: every one
    plural: bool  # two objects said with a count

    def record(self, scene: Scene, plain_background: bool) -> dict:
        """What the sample's attributes add: per object the parts said, the count, and
        whether the caption fixes the picture (every part said, and the background named or
        plain: `plain_background`), as the pixel term needs."""
        said = self.said or tuple(frozenset(PARTS) for _ in scene.objects)
        return {"said": [sorted(p) for p in said],
                "plural": self.plural and can_count(scene, said),
                "fixes_picture": all(s == frozenset(PARTS) for s in said)
                and (self.named or plain_background)}


def class_id(scene: Scene) -> int:
    """Scenes with the same attributes share a class (DAMSM negatives skip them)."""
    key = repr(scene.as_dict()).encode()
    return int(hashlib.sha1(key).hexdigest()[:7], 16)


class ShapesDataset(Dataset):
    """`length` generated samples of one split; images at every stage size, in [-1, 1]."""

    def __init__(
        self,
        *,
        split: str = "train",
        length: int = 10000,
        image_sizes: Sequence[int] = (16, 32, 64),
        max_words: int = 24,
        max_objects: int = 2,
        seed: int = 0,
        options: DataConfig | None = None,
        near_misses: bool = False,
        cache_images: bool = False,
        combinations: str | None = None,
        vocab: Vocabulary | None = None,
    ):
        """options: the config's data section (its `shapes_*` fields: which captions name
        the background and which open with it, the near misses' swap share, the background
        of pictures whose caption names none, the jitter); default: DataConfig().
        near_misses: every sample also carries a near-miss caption (`near_miss_scene`),
        worded like its own caption, as a hard negative.
        cache_images: keep each sample's rendered images (uint8, every size) in memory, up
        to CACHE_BYTES, so later epochs do not draw them again (an image depends only on
        the seed, split and index).
        combinations: "all" scenes, only those without a held-out pair ("seen"), or only
        those with one ("held_out": the report's own rows); default: "seen" for the training
        split when options.shapes_held_out, else "all".
        vocab: the words the captions are encoded with (a model's own, when it learned an
        earlier vocabulary of this world; words it lacks are left out); default: the world's
        (`vocabulary()`)."""
        if split not in SPLIT_IDS:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        options = options or DataConfig()
        self.split, self.length, self.seed = split, length, seed
        self.image_sizes, self.max_words, self.max_objects = tuple(image_sizes), max_words, max_objects
        if not 0.0 <= options.shapes_background_phrase <= 1.0:
            raise ValueError(f"shapes_background_phrase must be in [0, 1], got "
                             f"{options.shapes_background_phrase}")
        if not 0.0 <= options.shapes_swap_share <= 1.0:
            raise ValueError(f"shapes_swap_share must be in [0, 1], got {options.shapes_swap_share}")
        if options.shapes_unnamed_background not in ("any", *COLOURS):
            raise ValueError(f"shapes_unnamed_background must be 'any' or a colour name, got "
                             f"{options.shapes_unnamed_background!r}")
        if not 0.0 <= options.shapes_background_first <= 1.0:
            raise ValueError(f"shapes_background_first must be in [0, 1], got "
                             f"{options.shapes_background_first}")
        if not 0.0 <= options.shapes_jitter <= 0.1:
            raise ValueError(f"shapes_jitter must be in [0, 0.1], got {options.shapes_jitter}")
        self.background_phrase = options.shapes_background_phrase
        self.near_misses, self.swap_share = near_misses, options.shapes_swap_share
        self.unnamed_background, self.jitter = options.shapes_unnamed_background, options.shapes_jitter
        self.background_first = options.shapes_background_first
        for name in ("shapes_partial_share", "shapes_plural_share"):
            if not 0.0 <= getattr(options, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(options, name)}")
        self.partial_share, self.plural_share = (options.shapes_partial_share,
                                                 options.shapes_plural_share)
        if combinations is None:
            combinations = "seen" if split == "train" and options.shapes_held_out else "all"
        if combinations not in ("all", "seen", "held_out"):
            raise ValueError(f"combinations must be 'all', 'seen' or 'held_out', got "
                             f"{combinations!r}")
        self.combinations = combinations
        self.cache_images = cache_images
        self._cache: dict[int, list[np.ndarray]] = {}
        self._cache_bytes = 0
        self.vocab = vocab or vocabulary()
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch  # only the word subsampling of over-long captions uses it

    def __len__(self) -> int:
        return self.length

    def scene(self, index: int) -> tuple[Scene, str, np.random.Generator, bool]:
        """(scene, caption, the sample's generator (drawing continues from it), whether the
        caption names the background)."""
        scene, caption, rng, named, *_ = self._draw(index)
        return scene, caption, rng, named

    def _start(self, index: int) -> _Wording:
        """The sample's scene and how its caption words it; its generator goes on to the
        wording draws (synonyms, template) and then the picture's."""
        rng = np.random.default_rng([self.seed, SPLIT_IDS[self.split], index])
        scene = sample_scene(rng, self.max_objects)
        if self.combinations != "all":  # redrawn until it has (or has no) held-out pair
            while held_out(scene) != (self.combinations == "held_out"):
                scene = sample_scene(rng, self.max_objects)
        named = self.background_phrase >= 1.0 or rng.random() < self.background_phrase
        if not named and self.unnamed_background != "any":
            scene = replace(scene, background=plain_background(scene, self.unnamed_background))
        first = named and self.background_first > 0 and rng.random() < self.background_first
        said, plural = None, False
        if self.partial_share > 0 and rng.random() < self.partial_share:
            said = tuple(frozenset(p for p in PARTS if rng.random() < 0.5) for _ in scene.objects)
            if len(scene.objects) == 2 and self.plural_share > 0 and rng.random() < self.plural_share:
                a, b = scene.objects
                plural = a.shape == b.shape
                if plural:  # said together: what they share, and their places or neither
                    common = frozenset(p for p in said[0]
                                       if p == "position" or getattr(a, p) == getattr(b, p))
                    said = (common, common)
        return _Wording(rng, scene, named, first, said, plural)

    def _describe(self, w: _Wording, scene: Scene, rng: np.random.Generator) -> str:
        if w.said is None:
            return describe(scene, rng, name_background=w.named, background_first=w.first)
        return describe_partial(scene, w.said, rng, name_background=w.named,
                                plural=w.plural and can_count(scene, w.said))

    def _draw(self, index: int):
        w = self._start(index)
        rng, scene = w.rng, w.scene
        wording = copy.deepcopy(rng)  # the near-miss caption reuses the same wording draws
        caption = self._describe(w, scene, rng)
        negative = None
        if self.near_misses:
            pick = np.random.default_rng([self.seed, SPLIT_IDS[self.split], index, self.epoch, 7])
            other = near_miss_scene(scene, pick, swap_share=self.swap_share, background=w.named)
            negative = self._describe(w, other, copy.deepcopy(wording))
            # a near miss must read otherwise (a change to an unsaid attribute does not), and
            # in training must not name a held-out pair
            for _ in range(20):
                if negative != caption and not (self.combinations == "seen" and held_out(other)):
                    break
                other = near_miss_scene(scene, pick, swap_share=self.swap_share,
                                        background=w.named)
                negative = self._describe(w, other, copy.deepcopy(wording))
        return scene, caption, rng, w.named, negative, w

    def caption_for(self, index: int, scene: Scene) -> str:
        """The caption sample `index` would have if its scene were `scene`: the same wording
        draws (synonyms, template, whether the background is named, which attributes are
        said), other content."""
        w = self._start(index)
        return self._describe(w, scene, w.rng)

    def _images(self, index: int, scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
        """The sample's images (uint8, H x W x 3) at every size, drawn or from the cache."""
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        img = render(scene, self.image_sizes[-1], rng, jitter=self.jitter)
        arrays = [np.asarray(img if s == self.image_sizes[-1]
                             else img.resize((s, s), Image.BILINEAR), dtype=np.uint8)
                  for s in self.image_sizes]
        size = sum(a.nbytes for a in arrays)
        if self.cache_images and self._cache_bytes + size <= CACHE_BYTES:
            for a in arrays:
                a.flags.writeable = False  # shared by every later read
            self._cache[index] = arrays
            self._cache_bytes += size
        return arrays

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.length:
            raise IndexError(index)
        scene, caption, rng, named, negative, w = self._draw(index)
        images = [to_tensor(a) for a in self._images(index, scene, rng)]
        ids = self.vocab.encode_tokens(tokenize(caption)).ids
        words, length = fit_caption(ids, self.max_words,
                                    np.random.default_rng([self.seed, self.epoch, index]))
        sample = Sample(images=images, caption=torch.from_numpy(words), length=length,
                        class_id=class_id(scene), key=f"shapes-{self.split}-{index}",
                        attributes=scene.as_dict() | {"caption": caption,
                                                      "background_named": named,
                                                      **w.record(
                                                          scene,
                                                          self.unnamed_background != "any")})
        if negative is not None:
            neg, neg_len = fit_caption(self.vocab.encode_tokens(tokenize(negative)).ids,
                                       self.max_words,
                                       np.random.default_rng([self.seed, self.epoch, index, 1]))
            sample.negative, sample.negative_length = torch.from_numpy(neg), neg_len
        return sample
