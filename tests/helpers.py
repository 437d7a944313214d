"""Helpers that several test modules share: test images and the FID paper's disturbances, photo
patches, the pinned feature-network digest, a PNG writer, the HTML inertness check, a fake
refiner, the final training state of a run, and the reliability tests' scripts and checks.

Fixtures live in conftest.py; test modules import these from here, never from each other.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path

import imageio.v3 as iio
import numpy as np

# ---------------------------------------------------------------------------------------------
# Test images the gap tests generate themselves, and the disturbances of the FID paper's
# validation (Heusel et al. 2017, appendix): Gaussian noise, Gaussian blur, black rectangles,
# swirl, salt-and-pepper. test_gap_images checks the generators.


def _soft(v: np.ndarray, sharpness: float) -> np.ndarray:
    """1 inside (v < 0), 0 outside, with a soft edge."""
    return 1.0 / (1.0 + np.exp(np.clip(v * sharpness, -50, 50)))


def scenes(
    count: int,
    size: int,
    seed: int,
    channels: int = 3,
    grain: float = 0.02,
    sharpness: float = 12.0,
    gaze: tuple[float, float] = (-0.18, 0.18),
) -> np.ndarray:
    """ "Real" images: aligned eyes, SimGAN's own domain (skin, sclera, iris, pupil, lid, brow).

    Position, shape, gaze, colours and lighting vary; the layout is shared, as in an aligned
    data set (the FID paper's validation used aligned faces). float32 (count, size, size,
    channels) in [0, 1]. `grain` is the sensor noise of a camera; `sharpness` of the edges
    (renders are sharper); `gaze` the range of the horizontal gaze offset (a class).
    """
    rng = np.random.default_rng(seed)
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size
    tint = np.array([1.0, 0.8, 0.65])[:channels] if channels == 3 else np.ones(1)
    out = np.empty((count, size, size, channels), np.float32)
    for i in range(count):
        image = rng.uniform(0.45, 0.75) * tint * (0.85 + 0.3 * yy[..., None])  # lit from above
        cy, cx = 0.5 + rng.normal(0, 0.04), 0.5 + rng.normal(0, 0.04)
        ry, rx = rng.uniform(0.16, 0.24), rng.uniform(0.34, 0.42)
        eye = _soft(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 - 1.0, sharpness)
        image = image * (1 - eye[..., None]) + eye[..., None] * rng.uniform(0.8, 0.95)
        gy, gx = cy + rng.normal(0, 0.03), cx + rng.uniform(*gaze)
        r_iris = ry * rng.uniform(0.8, 1.0)
        iris = _soft(np.hypot(yy - gy, xx - gx) / r_iris - 1.0, sharpness) * eye
        image = image * (1 - iris[..., None]) + iris[..., None] * rng.uniform(0.1, 0.5, channels)
        pupil = _soft(np.hypot(yy - gy, xx - gx) / (0.45 * r_iris) - 1.0, sharpness) * eye
        image = image * (1 - pupil[..., None]) + pupil[..., None] * 0.05
        lid_y = cy - ry * np.sqrt(np.clip(1 - ((xx - cx) / rx) ** 2, 0, 1))
        image = image * (1 - 0.6 * np.exp(-(((yy - lid_y) / 0.025) ** 2)))[..., None]
        brow_y = cy - ry - rng.uniform(0.12, 0.2)
        brow = np.exp(-(((yy - brow_y) / 0.04) ** 2)) * (np.abs(xx - cx) < rx)
        image = image * (1 - 0.5 * brow[..., None])
        image = image + rng.normal(0, grain, image.shape)
        out[i] = np.clip(image, 0, 1)
    return out


def gaussian_noise(images: np.ndarray, alpha: float, seed: int) -> np.ndarray:
    """(1 - alpha) X + alpha N, N uniform-range Gaussian noise clipped to [0, 1] (FID paper)."""
    rng = np.random.default_rng(seed)
    noise = np.clip(rng.normal(0.5, 0.25, images.shape), 0, 1)
    return ((1 - alpha) * images + alpha * noise).astype(np.float32)


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with reflected edges."""
    if sigma == 0:
        return images.copy()
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = images.astype(np.float64)
    for axis in (1, 2):
        padded = np.pad(
            out, [(radius, radius) if a == axis else (0, 0) for a in range(4)], mode="reflect"
        )
        out = sum(
            w * np.take(padded, np.arange(i, i + images.shape[axis]), axis=axis)
            for i, w in enumerate(taps)
        )
    return out.astype(np.float32)


def black_rectangles(images: np.ndarray, alpha: float, seed: int) -> np.ndarray:
    """Five black rectangles per image at random places, sides alpha x half the image side."""
    rng = np.random.default_rng(seed)
    out = images.copy()
    size = images.shape[1]
    side = int(round(alpha * size / 2))
    if side == 0:
        return out
    for image in out:
        for _ in range(5):
            top, left = rng.integers(0, size - side + 1, 2)
            image[top : top + side, left : left + side] = 0.0
    return out


def swirl(images: np.ndarray, strength: float) -> np.ndarray:
    """skimage-style swirl about the centre (radius = half the side), bilinear sampling."""
    if strength == 0:
        return images.copy()
    n, size = images.shape[0], images.shape[1]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    centre = (size - 1) / 2
    dy, dx = yy - centre, xx - centre
    rho = np.hypot(dy, dx)
    radius = (size / 2) / np.log(2)
    theta = np.arctan2(dy, dx) + strength * np.exp(-rho / radius)
    sy = np.clip(centre + rho * np.sin(theta), 0, size - 1)
    sx = np.clip(centre + rho * np.cos(theta), 0, size - 1)
    y0, x0 = np.floor(sy).astype(int), np.floor(sx).astype(int)
    y1, x1 = np.minimum(y0 + 1, size - 1), np.minimum(x0 + 1, size - 1)
    fy, fx = (sy - y0)[..., None], (sx - x0)[..., None]
    out = np.empty_like(images)
    for i in range(n):
        im = images[i]
        top = im[y0, x0] * (1 - fx) + im[y0, x1] * fx
        bottom = im[y1, x0] * (1 - fx) + im[y1, x1] * fx
        out[i] = top * (1 - fy) + bottom * fy
    return out


def salt_and_pepper(images: np.ndarray, p: float, seed: int) -> np.ndarray:
    """A fraction p of pixels set to black or white (all channels)."""
    rng = np.random.default_rng(seed)
    out = images.copy()
    hit = rng.random(images.shape[:3]) < p
    white = rng.random(images.shape[:3]) < 0.5
    out[hit & white] = 1.0
    out[hit & ~white] = 0.0
    return out


# Levels 0..3 of each disturbance, as in the FID paper's figures.
DISTURBANCES = {
    "gaussian_noise": (lambda x, a: gaussian_noise(x, a, 5), (0.0, 0.25, 0.5, 0.75)),
    "gaussian_blur": (gaussian_blur, (0.0, 1.0, 2.0, 4.0)),
    "black_rectangles": (lambda x, a: black_rectangles(x, a, 6), (0.0, 0.25, 0.5, 0.75)),
    "swirl": (swirl, (0.0, 1.0, 2.0, 4.0)),
    "salt_and_pepper": (lambda x, p: salt_and_pepper(x, p, 7), (0.0, 0.1, 0.2, 0.3)),
}


# ---------------------------------------------------------------------------------------------
# Natural-photo patches for the gap tests: scikit-image's bundled RGB photos (a test-only
# dependency), cut into two pixel-disjoint sets (the left and the right half of every photo), so
# "real vs real" is two disjoint samples of one distribution of natural images. Every photo is
# tiled into patch-sized cells that alternate between the two sets like a checkerboard, and each
# cell is used at most once, so no two patches share a pixel (overlapping patches let a
# classifier recognise a scene it trained on) and both sets cover the same scenes evenly (the
# left and right halves of a photo were told apart by a classifier). test_gap_photos checks them.

PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "ihc.png",
    "motorcycle_left.png",
)
SCALE = 1  # photos are shrunk by this factor (box filter)


@lru_cache(maxsize=4)
def _photos() -> tuple[np.ndarray, ...]:
    from pathlib import Path

    import imageio.v3 as iio
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    out = []
    for name in PHOTOS:
        image = iio.imread(folder / name)
        image = image[..., :3].astype(np.float32) / 255.0
        h, w = (image.shape[0] // SCALE) * SCALE, (image.shape[1] // SCALE) * SCALE
        small = image[:h, :w].reshape(h // SCALE, SCALE, w // SCALE, SCALE, 3).mean(axis=(1, 3))
        out.append(small)
    return tuple(out)


def photo_patches(count: int, size: int, half: int, seed: int) -> np.ndarray:
    """`count` distinct size x size RGB patches from the checkerboard cells of `half` (0 or 1),
    in seeded random order, float32 in [0, 1]; no two patches share a pixel."""
    rng = np.random.default_rng([seed, half])
    photos = _photos()
    cell = size
    cells = [
        (p, top, left)
        for p, photo in enumerate(photos)
        for top in range(0, photo.shape[0] - cell + 1, cell)
        for left in range(0, photo.shape[1] - cell + 1, cell)
        if (top // cell + left // cell) % 2 == half
    ]
    if count > len(cells):
        raise ValueError(f"only {len(cells)} patches of {size} pixels per half, not {count}")
    pick = rng.permutation(len(cells))[:count]
    return np.stack([photos[p][y : y + size, x : x + size] for p, y, x in (cells[k] for k in pick)])


# ---------------------------------------------------------------------------------------------
# The gap report's feature networks (test_gap_estimators, test_gap_report)

# SHA-256 of the frozen feature networks' float32 weights. If this changes, reports made
# before and after the change are not comparable: bump the JSON schema version too.
FEATURE_SHA256 = "8a94c571205d6fb196a46d750ea358a2c57f8c965633a8da69259e9f6b0b5a66"


def write_pngs(folder: Path, images: np.ndarray, names: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        name = names[i] if names else f"img_{i:04d}.png"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        pixels = np.round(image * 255).astype(np.uint8)
        iio.imwrite(folder / name, pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    return folder


# ---------------------------------------------------------------------------------------------
# Names from data never become markup in the HTML pages refinekit writes (test_html_pages)


class Page(HTMLParser):
    """Every start tag with its attributes, and the text between tags."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_data(self, data):
        self.text.append(data)


def assert_inert(html: str, shown: tuple[str, ...]) -> None:
    page = Page(html)
    names = [tag for tag, _ in page.tags]
    assert "script" not in names and "iframe" not in names and "object" not in names
    for tag, attrs in page.tags:
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name, value)
            assert name in {
                "lang", "charset", "class", "title", "width", "height", "viewbox", "role",
                "aria-label", "font-family", "font-size", "font-weight", "fill", "x", "y",
                "x1", "x2", "y1", "y2", "cx", "cy", "r", "stroke", "stroke-width",
                "stroke-opacity", "stroke-dasharray", "stroke-linejoin", "points",
                "text-anchor", "transform", "src", "alt", "colspan",
            }, (tag, name, value)  # fmt: skip
            if name == "src":
                assert (value or "").startswith("data:image/png;base64,")
    text = "".join(page.text)
    for name in shown:
        assert name in text, name  # shown to the reader as text, not parsed as markup


# ---------------------------------------------------------------------------------------------
# A fake refiner for `refinekit refine` (test_refine)

MODEL_ID = {"run": "/runs/fake", "step": 1}


class FakeRefiner:
    """Checks what refine sends it (float32 NxHxWxC in [0, 1], one shape, N <= batch size)."""

    def __init__(self, fn=None, channels=3, batch_size=4, model_id=None, delay=0.0):
        self.fn = fn or (lambda x: 1.0 - x)  # invert: exact in 8 and 16 bits, easy to check
        self.channels, self.batch_size, self.delay = channels, batch_size, delay
        self.model_id = dict(model_id or MODEL_ID)
        self.train_size = (16, 16)
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, images):
        assert images.dtype == np.float32 and images.ndim == 4
        assert images.shape[-1] == self.channels and 1 <= len(images) <= self.batch_size
        assert images.min() >= 0.0 and images.max() <= 1.0
        self.calls.append(images.shape)
        if self.delay:
            time.sleep(self.delay)
        return np.asarray(self.fn(images), np.float32)


# ---------------------------------------------------------------------------------------------
# Training runs (test_train, test_sharding, test_microbatch)

ARGS = [
    # the ResNet's training (the default, auto, fits candidates: test_auto_refiner)
    "--refiner",
    "resnet",
    "--preset",
    "tiny",
    "--batch-size",
    "8",
    "--steps",
    "6",
    "--pretrain-refiner-steps",
    "3",
    "--pretrain-disc-steps",
    "3",
    "--log-every",
    "3",
    "--checkpoint-every",
    "100",
    "--sample-every",
    "100",
]


def _final_state(run):
    """(last checkpoint step, its state on the host) of the run folder `run`."""
    import jax

    from refinekit import TrainConfig
    from refinekit.training import checkpoint
    from refinekit.training.state import make_mesh
    from refinekit.training.steps import StepFunctions

    config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    fns = StepFunctions(config, (*config.size, config.channels), make_mesh())
    step = checkpoint.steps(run)[-1]
    return step, jax.device_get(checkpoint.restore(run, step, fns.init_state()))


# ---------------------------------------------------------------------------------------------
# Reliability (test_reliability_*.py)


def _one_line_error(err: str, *needles: str) -> None:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)


def _copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to, symlinks=True)
    return to


_FAKE_CLI = textwrap.dedent(
    """
    import sys
    import refinekit.cli.refine as cli_refine
    from refinekit.cli import main

    class Invert:
        channels, batch_size, train_size = 3, 4, (16, 16)
        model_id = {"run": "/runs/fake", "step": 1}

        def __call__(self, images):
            return 1.0 - images

    cli_refine._load_refiner = lambda *args: Invert()
    sys.exit(main(sys.argv[1:]))
    """
)

_LOAD_SCRIPT = textwrap.dedent(
    """
    import sys
    from refinekit import TrainConfig
    from refinekit.errors import RefinekitError
    from refinekit.training.data import load_training_data

    config = TrainConfig(refiner="resnet", synthetic=sys.argv[1], real=sys.argv[2], out="unused", preset="tiny", batch_size=4)
    try:
        _, data = load_training_data(config)
    except RefinekitError as exc:
        print("error:", exc)
        sys.exit(2)
    print("\\n".join(["images %d" % len(data.synthetic), *data.skipped]))
    """
)


# Restrictions are applied by a launcher that then execs the command (a preexec_fn would fork
# this multithreaded JAX process, which JAX warns about).
_LAUNCHER = textwrap.dedent(
    """
    import ctypes, os, resource, signal, sys

    what, argument, command = sys.argv[1], sys.argv[2], sys.argv[3:]
    if what == "no-permission-override" and os.geteuid() == 0:
        # Drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set: the exec'd
        # process stays root (it can still run the interpreter under /root) but obeys
        # permission bits.
        libc = ctypes.CDLL(None, use_errno=True)
        for capability in (1, 2):
            if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                sys.exit(97)
    elif what == "file-size-limit":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(argument), int(argument)))
    os.execv(sys.executable, [sys.executable, *command])
    """
)


def launch(what: str, argument: str, args: list[str]) -> subprocess.CompletedProcess:
    """`python args...` under a restriction: "no-permission-override" or "file-size-limit"."""
    return subprocess.run(
        [sys.executable, "-c", _LAUNCHER, what, argument, *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
