"""The command line's arguments: typed values, shared option groups, and every command's
options with help texts, defaults and an example (`dmgan COMMAND --help`). The commands
themselves are in dmgan.cli."""

from __future__ import annotations

import argparse
import os

from dmgan.config import PRESETS
from dmgan.data.vocab import MAX_CAPTION_CHARS


def _int_in(lo: int, hi: int | None = None):
    """An argparse type: an integer in [lo, hi] (a usage error, exit 2, otherwise)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < lo or (hi is not None and value > hi):
            where = f">= {lo}" if hi is None else f"between {lo} and {hi}"
            raise argparse.ArgumentTypeError(f"{value} is out of range: must be {where}")
        return value

    return parse


def _float_in(lo: float, hi: float | None = None, *, open_low: bool = False):
    """An argparse type: a finite number in [lo, hi] ((lo, hi] with open_low)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        low_ok = value > lo if open_low else value >= lo
        if not (low_ok and (hi is None or value <= hi)) or value != value:
            bound = f"> {lo}" if open_low else f">= {lo}"
            raise argparse.ArgumentTypeError(
                f"{text} is out of range: must be {bound}" + (f" and <= {hi}" if hi is not None else ""))
        return value

    return parse


def SEED(text: str) -> int:  # noqa: N802 (an argparse type, named like the others)
    """Any integer; reduced modulo 2**32 into the range every generator here accepts
    (so -1 is 4294967295, and 2**32 + 5 is 5)."""
    try:
        return int(text) % 2**32
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


POSITIVE, NON_NEGATIVE = _int_in(1), _int_in(0)
MINUTES, FRACTION = _float_in(0.0, open_low=True), _float_in(0.0, 1.0)


def ON_OFF(text: str) -> bool:  # noqa: N802
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected on or off")
    return text == "on"


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option that has one; examples kept as written."""

    def _get_help_string(self, action):
        nothing = action.default is None or action.default is False or action.default == []
        if nothing or action.default is argparse.SUPPRESS or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


# --- options shared by several commands (parent parsers) --------------------------------

def _parent(*adders) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    for add in adders:
        add(p)
    return p


def _device(p):
    p.add_argument("--device", default="auto",
                   help="auto (the GPU when torch sees one), cpu, cuda or cuda:N")


def _seed(p):
    p.add_argument("--seed", type=SEED, default=0, help="random seed; any integer (taken "
                   "modulo 2**32)")


def _model(p):
    p.add_argument("--checkpoint", help="a dmgan model file (dmgan export, convert-released, "
                   "or a training checkpoint); default: the bundled shapes model")
    p.add_argument("--amp", default="off", choices=["off", "bf16"],
                   help="bf16: mixed precision, about 2x faster on a GPU or on a CPU with "
                        "bf16 units (AVX512-BF16, AMX); images within a level or two of fp32's")
    p.add_argument("--backend", default="eager", choices=["eager", "compile", "jit", "onnx"],
                   help="run the generator as written (eager), through torch.compile, a "
                        "frozen TorchScript trace (jit), or ONNX Runtime (onnx: the 'onnx' "
                        "extra); the same images to float rounding")


def _sets(p):
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="change one config value of the preset, e.g. --set loss.damsm_weight=20 "
                        "(repeatable; dmgan info --preset P lists the fields)")


def _threads(p):
    p.add_argument("--threads", type=POSITIVE, help="CPU threads (default: OMP_NUM_THREADS, "
                   "else the count a short probe measured fastest on this machine, cached)")


def _training(p):
    """What train and demo share (TrainOptions fields, by name)."""
    p.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"],
                   help="mixed precision: bf16 is the fast path on a GPU and on a CPU with "
                        "bf16 units (AVX512-BF16, AMX); fp16 needs a GPU")
    p.add_argument("--compile", action="store_true", help="torch.compile the generator")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="record each step's D and G updates once as a CUDA graph and replay "
                        "it (GPU only; for small networks, whose steps are launch-bound)")
    p.add_argument("--channels-last", type=ON_OFF, default="on", metavar="{on,off}",
                   help="channels_last memory layout (measured faster on CPU and GPU)")
    p.add_argument("--workers", type=NON_NEGATIVE, default=2, help="data loader processes")
    p.add_argument("--log-every", type=POSITIVE, default=50,
                   help="steps between log.jsonl records (the progress line moves every step)")
    p.add_argument("--sample-every", type=POSITIVE, default=500,
                   help="steps between sample grids (samples/)")
    p.add_argument("--ckpt-every", type=POSITIVE, default=500, help="steps between checkpoints")
    p.add_argument("--keep", type=POSITIVE, default=3, help="checkpoints kept")
    p.add_argument("--tensorboard", action="store_true",
                   help="also log to TensorBoard (needs the 'tensorboard' extra)")
    p.add_argument("--eval-every", type=NON_NEGATIVE,
                   help="judge the EMA generator every N steps into metrics.jsonl and keep the "
                        "best snapshot as best.pt (default: with every checkpoint; 0: never)")
    p.add_argument("--eval-captions", type=POSITIVE, default=200,
                   help="fixed held-out captions judged at each evaluation")
    p.add_argument("--min-damsm-r1", type=FRACTION, default=0.5,
                   help="refuse DAMSM encoders whose recorded test R@1 is below this")
    p.add_argument("--minutes", type=MINUTES, help="stop after this much time")
    p.add_argument("--no-memory", action="store_true",
                   help="ablation: memory stages pass image features straight through")


def _command(sub, name: str, help: str, example: str, parents=()) -> argparse.ArgumentParser:
    s = sub.add_parser(name, help=help, description=help, parents=list(parents),
                       formatter_class=_Help, epilog="example:\n  " + example)
    s.set_defaults(command=name)
    return s


def build_parser() -> argparse.ArgumentParser:
    from dmgan import __version__

    p = argparse.ArgumentParser(prog="dmgan", description="DM-GAN text-to-image synthesis",
                                formatter_class=_Help,
                                epilog="example:\n  dmgan generate \"a large red circle on a "
                                       "blue background\" -o circle.png")
    p.add_argument("--version", action="version", version=f"dmgan {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    device, seed, model = _parent(_device), _parent(_seed), _parent(_model)
    presets = sorted(PRESETS)

    s = _command(sub, "generate", "images from sentences",
                 'dmgan generate "a small blue square on the left" -n 4 -o squares.png',
                 [model, seed, device])
    s.add_argument("captions", nargs="*", help="one or more captions")
    s.add_argument("--file", help="a UTF-8 text file, one caption a line")
    s.add_argument("-n", type=POSITIVE, default=1, help="images per caption (seeds SEED, SEED+1, ...)")
    s.add_argument("-o", "--output", default="out.png",
                   help="a PNG: one image, or a grid (a row per caption) when there are several")
    s.add_argument("--outdir", help="instead of -o: one numbered PNG per image in this folder")
    s.add_argument("--stages", action="store_true", help="every stage's image, side by side")
    s.add_argument("--size", type=_int_in(8, 4096), help="upsample each image to SIZE px for viewing")
    s.add_argument("--resample", default="nearest", choices=["nearest", "bicubic"],
                   help="how --size upsamples (recorded in manifest.jsonl)")

    s = _command(sub, "explain", "what the memory chose for one caption (the "
                 "paper's Fig. 6)", 'dmgan explain "a red circle on the left" -o explain.png',
                 [model, seed, device])
    s.add_argument("caption", help="the caption to explain")
    s.add_argument("-o", "--output", default="explain.png", help="the PNG to write")

    s = _command(sub, "serve", "a web page and HTTP API (needs the 'serve' extra)",
                 "dmgan serve --port 8000", [model, device])
    s.add_argument("--host", default="127.0.0.1", help="address to listen on")
    s.add_argument("--port", type=_int_in(1, 65535), default=8000, help="port to listen on")
    s.add_argument("--max-chars", type=_int_in(1, MAX_CAPTION_CHARS), default=MAX_CAPTION_CHARS,
                   help="longest caption accepted (at most the pipeline's limit)")
    s.add_argument("--max-images", type=POSITIVE, default=4, help="most images per request")
    s.add_argument("--queue", type=NON_NEGATIVE, default=8, help="requests allowed to wait")

    s = _command(sub, "demo", "the built-in shapes data: pre-train DAMSM, train "
                 "DM-GAN, report attribute accuracy (about --minutes on 2 CPU cores)",
                 "dmgan demo --minutes 15 --out runs/demo", [seed, device, _parent(_threads)])
    s.add_argument("--out", default="runs/demo", help="run folder (report.json, model.pt)")
    s.add_argument("--preset", default="shapes32", choices=["shapes32", "shapes", "tiny"],
                   help="network and recipe: shapes32 (two stages, 32 px: twice the steps in "
                        "the same minutes), shapes (the bundled model's 64 px networks), tiny "
                        "(a few channels: a run in seconds that learns little)")
    s.add_argument("--judge", type=POSITIVE, default=500, help="held-out captions judged")
    _training(s)
    _sets(s)
    s.set_defaults(minutes=15.0)

    s = _command(sub, "train", "train DM-GAN (the released recipe)",
                 "dmgan train --preset shapes --data shapes --damsm runs/damsm/damsm.pt "
                 "--out runs/shapes --minutes 30", [seed, device, _parent(_threads)])
    s.add_argument("--preset", required=True, choices=presets, help="network and recipe")
    s.add_argument("--data", required=True, help="'shapes' (built in) or a dataset folder")
    s.add_argument("--damsm", help="DAMSM checkpoint from dmgan pretrain-damsm")
    s.add_argument("--out", required=True, help="run folder")
    s.add_argument("--resume", action="store_true", help="continue from the newest checkpoint "
                   "(refused when a defining option differs from the run's)")
    s.add_argument("--init-from", metavar="CHECKPOINT",
                   help="start from another run's networks (a training checkpoint or an "
                        "exported model of the same preset; e.g. to fine-tune on a new DAMSM)")
    s.add_argument("--critic", metavar="CHECKPOINT",
                   help="frozen discriminators that read the words (dmgan train-critic) to "
                        "judge the caption-preference term, loss.caption_preference_weight, in "
                        "place of the run's own")
    s.add_argument("--max-steps", type=POSITIVE, help="stop after this many steps")
    s.add_argument("--vocab-size", type=_int_in(2), help="override the preset's (custom datasets)")
    s.add_argument("--batch-size", type=_int_in(2),
                   help="images per step (>= 2: mismatched pairs and batch norm need two)")
    s.add_argument("--inception-weights",
                   help="Inception weights (pytorch-fid) for FID at each evaluation (not shapes)")
    _training(s)
    _sets(s)

    s = _command(sub, "pretrain-damsm", "train the DAMSM text and image "
                 "encoders", "dmgan pretrain-damsm --preset shapes --data shapes --out "
                 "runs/damsm --target-r1 0.95", [seed, device, _parent(_threads)])
    s.add_argument("--preset", required=True, choices=presets, help="network and recipe")
    s.add_argument("--data", required=True, help="'shapes' (built in) or a dataset folder")
    s.add_argument("--out", required=True, help="folder for damsm.pt and its log")
    s.add_argument("--epochs", type=POSITIVE, help="epochs (default: the preset's)")
    s.add_argument("--minutes", type=MINUTES, help="stop after this much time")
    s.add_argument("--max-steps", type=POSITIVE, help="stop after this many steps")
    s.add_argument("--target-r1", type=_float_in(0.0, 1.0, open_low=True),
                   help="stop once the test R@1 (checked every 200 steps) reaches this")
    s.add_argument("--target-near-miss", type=_float_in(0.0, 1.0, open_low=True),
                   help="stop once, on test images, the own caption beats the caption with one "
                        "thing changed this often (checked every 200 steps; data that makes "
                        "near-miss captions, e.g. shapes; with --target-r1, both)")
    s.add_argument("--init-from", metavar="DAMSM",
                   help="start from these encoders (a DAMSM checkpoint of the same preset), "
                        "e.g. to fine-tune them with other data options")
    s.add_argument("--vocab-size", type=_int_in(2), help="override the preset's (custom datasets)")
    s.add_argument("--batch-size", type=_int_in(2),
                   help="images per step (>= 2: mismatched pairs and batch norm need two)")
    s.add_argument("--workers", type=NON_NEGATIVE, default=2, help="data loader processes")
    _sets(s)

    s = _command(sub, "train-critic", "teach word-reading discriminators on real shapes "
                 "pictures which caption is theirs (for train --critic)",
                 "dmgan train-critic --preset shapes --damsm runs/damsm/damsm.pt --out "
                 "runs/critic", [seed, device, _parent(_threads)])
    s.add_argument("--preset", required=True, choices=presets,
                   help="network and data options (its discriminators must read the words)")
    s.add_argument("--damsm", required=True, help="DAMSM checkpoint whose text encoder reads "
                   "the captions")
    s.add_argument("--out", required=True, help="folder for critic.pt and its log")
    s.add_argument("--max-steps", type=POSITIVE, help="steps (default: the preset's critic.steps)")
    s.add_argument("--init-from", metavar="CRITIC", help="go on from this critic")
    s.add_argument("--log-every", type=POSITIVE, default=500,
                   help="steps between held-out measurements (log.jsonl) and checkpoints")
    s.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in --out (the same settings)")
    s.add_argument("--minutes", type=MINUTES, help="stop after this much time, with a "
                   "checkpoint to --resume from")
    _sets(s)

    s = _command(sub, "eval", "evaluate generated images: FID, Inception Score, "
                 "R-precision, the shapes oracle", "dmgan eval --checkpoint model.pt --data "
                 "shapes   (or: --images DIR --real REAL_DIR --inception-weights FILE)",
                 [seed, device])
    s.add_argument("--images", help="folder of generated images")
    s.add_argument("--checkpoint", help="generate the images with this model file ...")
    s.add_argument("--data", help="... for the test captions of 'shapes' or a dataset folder")
    s.add_argument("--num-images", type=POSITIVE,
                   help="with --checkpoint: how many (default: all; shapes: 500)")
    s.add_argument("--save-images", help="with --checkpoint: keep the images (and their "
                   "captions.jsonl) in this folder")
    s.add_argument("--metrics", nargs="+",
                   choices=["fid", "is", "r_precision", "oracle", "compositional", "clip_score"],
                   help="default: oracle for --data shapes, else fid is")
    s.add_argument("--clip-model", help="CLIP score: a local CLIP model folder in the Hugging "
                   "Face layout (config.json, model.safetensors, vocab.json, merges.txt)")
    s.add_argument("--mode", default="pytorch-fid", choices=["pytorch-fid", "dmgan-legacy"],
                   help="Inception preprocessing and weights (recorded with every result)")
    s.add_argument("--inception-weights", help="pt_inception-2015-12-05-*.pth (pytorch-fid) or "
                   "inception_v3_google-*.pth (dmgan-legacy)")
    s.add_argument("--ref-stats", help="FID reference statistics .npz (mu, sigma)")
    s.add_argument("--real", help="FID reference: a folder of real images (statistics cached)")
    s.add_argument("--cache-dir", default=os.path.join(os.path.expanduser("~"), ".cache", "dmgan"),
                   help="where statistics of real folders are cached")
    s.add_argument("--splits", type=POSITIVE, default=10, help="Inception Score splits")
    s.add_argument("--captions", help="R-precision on a folder: its captions.jsonl "
                   "(image, caption, class), as --save-images writes it")
    s.add_argument("--vocab", help="R-precision on a folder: the vocabulary JSON that export "
                   "and convert-released write beside the model (<stem>.vocab.json)")
    s.add_argument("--preset", default="bird", choices=presets,
                   help="the preset of --text-encoder/--image-encoder")
    s.add_argument("--text-encoder", help="DAMSM text encoder (released format)")
    s.add_argument("--image-encoder", help="DAMSM image encoder (released format); a "
                   "--checkpoint's own is used when it has one")
    s.add_argument("--folds", type=POSITIVE, default=10, help="R-precision folds (mean, std)")
    s.add_argument("--legacy-off-by-one", action="store_true",
                   help="reproduce the released R-precision slice (drops a sample per fold)")
    s.add_argument("--batch-size", type=POSITIVE, default=50, help="images per forward pass")
    s.add_argument("--out", help="append results as JSON lines to this file")

    s = _command(sub, "info", "a preset's configuration and network sizes, or a model "
                 "file's provenance and vocabulary", "dmgan info --checkpoint   (the bundled "
                 "model's words)")
    s.add_argument("--preset", default="bird", choices=presets, help="preset to describe")
    s.add_argument("--checkpoint", nargs="?", const="bundled", metavar="MODEL",
                   help="describe a model file instead (no value: the bundled shapes model), "
                        "with the words it knows")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--config-reference", action="store_true",
                   help="every config field with its default and meaning (Markdown)")

    s = _command(sub, "export", "a training checkpoint -> a small model file and "
                 "its vocabulary JSON", "dmgan export --checkpoint runs/shapes/best.pt -o model.pt")
    s.add_argument("--checkpoint", required=True, help="training checkpoint (ckpt-*.pt, best.pt)")
    s.add_argument("-o", "--output", required=True, help="the model file to write")
    s.add_argument("--half", action="store_true", help="store the generator in fp16")
    s.add_argument("--note", help="a note stored with the file's provenance")

    s = _command(sub, "convert-released", "released bird/coco files -> "
                 "one dmgan model file and its vocabulary JSON", "dmgan convert-released "
                 "--preset bird --netG bird_DMGAN.pth --text-encoder text_encoder200.pth "
                 "--captions captions.pickle -o bird.pt")
    s.add_argument("--preset", required=True, choices=["bird", "coco"], help="which release")
    s.add_argument("--netG", required=True, help="bird_DMGAN.pth / coco_DMGAN.pth")
    s.add_argument("--text-encoder", required=True, help="text_encoder200.pth")
    s.add_argument("--image-encoder", help="image_encoder200.pth (for R-precision)")
    s.add_argument("--captions", required=True, help="the dataset's captions.pickle (vocabulary)")
    s.add_argument("-o", "--output", required=True, help="the model file to write")

    s = _command(sub, "check-released", "check that released DM-GAN .pth "
                 "files load into a preset", "dmgan check-released --preset bird --netG "
                 "bird_DMGAN.pth")
    s.add_argument("--preset", required=True, choices=presets, help="the preset to load into")
    s.add_argument("--netG", help="released generator, e.g. bird_DMGAN.pth")
    s.add_argument("--text-encoder", help="released DAMSM text encoder, e.g. text_encoder200.pth")
    s.add_argument("--netD", nargs="+", help="released netD0.pth netD1.pth netD2.pth")

    s = _command(sub, "shapes-oracle", "accuracy of the shapes oracle on "
                 "real images (or train a new one)", "dmgan shapes-oracle --held-out 2000")
    s.add_argument("--oracle", help="oracle file (default: the bundled one)")
    s.add_argument("--train", action="store_true", help="train a new oracle")
    s.add_argument("--steps", type=POSITIVE, default=3000, help="with --train: steps")
    s.add_argument("--seed", type=SEED, default=1234, help="with --train: random seed")
    s.add_argument("--held-out", type=POSITIVE, default=2000, help="test images judged")
    s.add_argument("--out", help="with --train: save the oracle here")
    return p


