"""Refine a folder of synthetic images into a mirror folder, keeping everything else as it was.

    plan = plan_refine("syn/", "out/", shard=None)   # check the paths, list the files
    summary = run_refine(plan, refiner)              # refine, copy, write the manifest
    # or both at once: refine_folder("syn/", "out/", refiner)

OUT gets the same relative paths and file names as IN; each image keeps its format, width and
height (the refiner is fully convolutional and runs at native resolution), Pillow mode and bit
depth, and alpha is carried through untouched; every other file is copied byte for byte. IN is
never written. Each output goes to a temporary name in its folder and is renamed into place
(`refinekit.io.atomic`), and `OUT/refinekit-manifest.jsonl` (`manifest.py`) gets its line once
the batch it was written with is in place (one append and one sync per batch), so a killed run
resumes where it stopped (`resume.py`). docs/refine.md is the user's guide.

The work runs as a pipeline (`pipeline.py`): a thread pool decodes images ahead of the device,
images are grouped by shape into batches of the refiner's batch size (each shape compiles
once), and a second pool encodes and writes results while the device refines the next batch.

Channel conversion, when an image's colour channels differ from the model's (as in training,
`refinekit.io.pixels.convert_channels`), and back (`convert.py`):
- gray image, RGB model: the model sees the gray repeated; the output is the BT.601 luma of the
  refined RGB.
- RGB image, gray model: the model sees the BT.601 luma; the refined luma replaces the image's
  luma and its chroma (Cb, Cr) is kept, which is the same as adding the change in luma to R, G
  and B (then clipping to [0, 1]).

`--variants K` writes K outputs per image (NAME_v1 ... NAME_vK, each its own salt for a
refiner with per-image draws, the image's sidecar files copied per variant): `variants.py`.

Modules: plan (paths and the file list), shard, variants, resume, convert, results, manifest,
pipeline (generic threads), runner (the worker), run (`run_refine`). No JAX here: the refiner
is any callable with the attributes of `inference.Refiner`.
"""

from .convert import model_input, restore_pixels
from .pipeline import default_workers
from .plan import RefinePlan, check_paths, plan_refine
from .results import RefineSummary
from .resume import describe_model, same_model
from .run import refine_folder, run_refine
from .runner import RefinerLike
from .shard import parse_shard, shard_of

__all__ = [
    "RefinePlan",
    "RefineSummary",
    "RefinerLike",
    "check_paths",
    "default_workers",
    "describe_model",
    "model_input",
    "parse_shard",
    "plan_refine",
    "refine_folder",
    "restore_pixels",
    "run_refine",
    "same_model",
    "shard_of",
]
