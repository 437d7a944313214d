"""The harness's labelled cases: each renders one class instance twice, as a clean synthetic
image and as a "real" one whose generative process differs in one kind of way (the gap).

A case samples content parameters (class geometry, pose, gray levels) once per image; the
synthetic and real renderers share them. `oracle` images are the synthetic set's own content
pushed through the real renderer: the best any appearance-only refiner could do.
"""

from __future__ import annotations

import colorsys
import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import render as rd
from .shapes import FILLED, ICONS, LETTERS


class Case:
    name = ""
    gap = ""  # one line: what differs between synthetic and real
    size = 16
    channels = 1
    classes: tuple[str, ...] = ()
    tuning = True  # False: reported only, never used to choose settings
    version = 1  # bump when the renderers change: the cached data set is rebuilt
    counts: dict[str, int] = {}  # images per class where a split has fewer than data.SCALES

    def sample(self, rng: np.random.Generator, label: int, real: bool) -> dict:
        """Content parameters; real images come from a wider pose range (a content gap that
        refinement cannot and must not close, as between renders and photographs)."""
        raise NotImplementedError

    def synthetic(self, params: dict, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def real(self, params: dict, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def recorded(self, split: str, k: int, seed: int) -> np.ndarray | None:
        """The k-th image of a split when the case reads recorded data (None: render it)."""
        return None


def _transformed(parts, matrix):
    return [(rd.apply(matrix, points), value) for points, value in parts]


class Acquisition(Case):
    name = "acquisition"
    gap = (
        "clean renders vs blur, low resolution, vignetting, low contrast, noise, 4-bit quantisation"
    )
    classes = tuple(FILLED)

    def sample(self, rng, label, real):
        pose = (22.0, (0.62, 1.05), 0.12) if real else (12.0, (0.72, 1.0), 0.08)
        return {
            "label": label,
            "matrix": rd.affine(rng, *pose),
            "fg": rng.uniform(0.85, 1.0),
            "bg": rng.uniform(0.0, 0.12),
        }

    def _clean(self, p):
        mask = rd.fill_polygons(_transformed(FILLED[self.classes[p["label"]]], p["matrix"]), 16)
        return p["bg"] + (p["fg"] - p["bg"]) * mask

    def synthetic(self, p, rng):
        return self._clean(p)

    # The real camera: ranges drawn per image (sensor: pixels across before resampling to 16).
    camera = {
        "low": (0.15, 0.32),
        "high": (0.62, 0.85),
        "blur": (0.5, 0.9),
        "vignette": (0.2, 0.5),
        "sensor": (10, 13),
        "noise": (0.02, 0.05),
        "levels": 16,
    }

    def real(self, p, rng):
        cam = self.camera
        img = self._clean(p)
        lo, hi = rng.uniform(*cam["low"]), rng.uniform(*cam["high"])
        img = lo + (hi - lo) * img
        img = rd.blur(img, rng.uniform(*cam["blur"]))
        img = img * rd.vignette(16, rng.uniform(*cam["vignette"]), rng)
        img = rd.low_resolution(img, int(rng.integers(*cam["sensor"])))
        img = img + rng.normal(0.0, rng.uniform(*cam["noise"]), img.shape)
        return rd.quantise(img, cam["levels"])


class Texture(Case):
    name = "texture"
    gap = "hard-edged procedural fills vs soft, wobbly, duty-varied fills on 1/f background, grain, illumination ramps"
    classes = ("hstripes", "vstripes", "diag", "antidiag", "checker", "dots", "grid", "rings",
               "blobs", "zigzag")  # fmt: skip

    def sample(self, rng, label, real):
        return {
            "label": label,
            "angle": np.deg2rad(rng.uniform(-18, 18) if real else rng.uniform(-10, 10)),
            "period": rng.uniform(3.5, 6.5) if real else rng.uniform(4.0, 6.0),
            "phase": rng.uniform(0, 1, size=2),
            "centre": rng.uniform(0.2, 0.8, size=2) * 16,
            "noise_seed": int(rng.integers(1 << 31)),
            "fg": rng.uniform(0.7, 0.9),
            "bg": rng.uniform(0.1, 0.3),
        }

    def _signal(self, p, wobble: np.ndarray | None) -> np.ndarray:
        """Class signal g on the 4x grid: g > 0 is ink."""
        n = 16 * rd.SUPERSAMPLE
        y, x = (np.mgrid[0:n, 0:n] + 0.5) / rd.SUPERSAMPLE
        if wobble is not None:
            x, y = x + wobble[0], y + wobble[1]
        c, s = np.cos(p["angle"]), np.sin(p["angle"])
        u, v = c * x + s * y, -s * x + c * y
        per, (f1, f2) = p["period"], p["phase"]
        cos = np.cos
        name = self.classes[p["label"]]
        if name == "hstripes":
            return cos(2 * np.pi * (v / per + f1))
        if name == "vstripes":
            return cos(2 * np.pi * (u / per + f1))
        if name == "diag":
            return cos(2 * np.pi * ((u + v) / (per * np.sqrt(2)) + f1))
        if name == "antidiag":
            return cos(2 * np.pi * ((u - v) / (per * np.sqrt(2)) + f1))
        if name == "checker":
            return cos(2 * np.pi * (u / per + f1)) * cos(2 * np.pi * (v / per + f2)) * 2
        if name == "dots":
            du, dv = u / per + f1, v / per + f2
            d = np.hypot(du - np.round(du), dv - np.round(dv))
            return (0.28 - d) * 4
        if name == "grid":
            du, dv = u / per + f1, v / per + f2
            d = np.minimum(np.abs(du - np.round(du)), np.abs(dv - np.round(dv)))
            return (0.14 - d) * 5
        if name == "rings":
            r = np.hypot(x - p["centre"][0], y - p["centre"][1])
            return cos(2 * np.pi * (r / per + f1))
        if name == "blobs":
            noise = rd.smooth_noise(np.random.default_rng(p["noise_seed"]), (n, n), per * 1.6)
            return noise
        if name == "zigzag":
            tri = np.abs(((u / (per * 1.3) + f2) % 1.0) - 0.5) * 2 - 0.5
            return cos(2 * np.pi * (v / per + 0.8 * tri + f1))
        raise ValueError(name)

    def _down(self, a):
        k = rd.SUPERSAMPLE
        return a.reshape(16, k, 16, k).mean(axis=(1, 3))

    def synthetic(self, p, rng):
        ink = self._down((self._signal(p, None) > 0).astype(np.float64))
        return p["bg"] + (p["fg"] - p["bg"]) * ink

    def real(self, p, rng):
        n = 16 * rd.SUPERSAMPLE
        wobble = 0.45 * np.stack([rd.smooth_noise(rng, (n, n), 10.0) for _ in range(2)])
        g = self._signal(p, wobble)
        sharp, duty = rng.uniform(2.0, 6.0), rng.uniform(-0.3, 0.3)
        ink = self._down(1.0 / (1.0 + np.exp(-sharp * (g + duty))))
        fg, bg = p["fg"] - rng.uniform(0.0, 0.2), p["bg"] + rng.uniform(0.0, 0.15)
        img = bg + (fg - bg) * ink
        return self._camera(img, rng)

    def _camera(self, img, rng):
        img = img + rng.uniform(0.06, 0.12) * rd.pink_noise(rng, 16)
        img = img * rd.gradient(16, rng.uniform(0.2, 0.5), rng)
        img = img + rng.normal(0.0, rng.uniform(0.03, 0.06), img.shape)
        return rd.quantise(img, 256)


class Stroke(Case):
    name = "stroke"
    gap = "thin uniform pen strokes vs wandering, slanted, overshooting, thick variable-width hand-drawn strokes"
    classes = tuple(LETTERS)

    def sample(self, rng, label, real):
        pose = (15.0, (0.75, 1.05), 0.1) if real else (8.0, (0.85, 1.02), 0.06)
        return {
            "label": label,
            "matrix": rd.affine(rng, *pose, shear=0.08),
            "radius": rng.uniform(0.022, 0.03),
            "ink": rng.uniform(0.05, 0.2),
            "paper": rng.uniform(0.8, 0.95),
        }

    def synthetic(self, p, rng):
        letter = LETTERS[self.classes[p["label"]]]
        strokes = [rd.resample(rd.apply(p["matrix"], s), 0.01) for s in letter]
        mask = rd.brush(strokes, [np.full(len(s), p["radius"]) for s in strokes], 16)
        return p["paper"] + (p["ink"] - p["paper"]) * mask

    def real(self, p, rng):
        slant = np.array([[1.0, rng.uniform(-0.3, 0.3)], [0.0, 1.0]])
        base = rng.uniform(0.055, 0.095)  # a broader pen than the synthetic one
        strokes, radii = [], []
        for s in LETTERS[self.classes[p["label"]]]:
            s = s + rng.normal(0.0, 0.05, s.shape)  # control points wander
            s = (s - 0.5) @ slant.T + 0.5
            head = s[:1] + (s[:1] - s[1:2]) * rng.uniform(0, 0.3)  # overshoot at both ends
            tail = s[-1:] + (s[-1:] - s[-2:-1]) * rng.uniform(0, 0.3)
            s = (
                np.concatenate([head, s[1:-1], tail])
                if len(s) > 2
                else np.concatenate([head, tail])
            )
            dense = rd.resample(rd.apply(p["matrix"], s), 0.008)
            m = len(dense)
            kernel = np.ones(9) / 3
            wobble = np.stack(
                [np.convolve(rng.normal(0, 1, m + 16), kernel, "same")[8:-8] for _ in range(2)], 1
            )
            dense = dense + 0.008 * wobble
            t = np.linspace(0.0, 1.0, m)
            pressure = 1.0 + 0.5 * np.sin(2 * np.pi * (rng.uniform(0.5, 1.5) * t + rng.uniform()))
            taper = 0.5 + 0.5 * np.sin(np.pi * t) ** 0.5
            radii.append(base * pressure * taper)
            strokes.append(dense)
        mask = rd.brush(strokes, radii, 16)
        ink = rng.uniform(0.05, 0.35)
        img = p["paper"] + (ink - p["paper"]) * mask
        img = rd.blur(img, 0.35) + rng.normal(0.0, 0.015, img.shape)
        return rd.quantise(img, 256)


def _hsv(h, s, v):
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v))


class Colour(Case):
    name = "colour"
    gap = "flat-coloured RGB icons vs colour cast, tone curve, desaturation, shading, blur, per-channel sensor noise"
    channels = 3
    classes = tuple(ICONS)
    tuning = False

    def sample(self, rng, label, real):
        pose = (25.0, (0.62, 1.05), 0.12) if real else (15.0, (0.72, 1.0), 0.08)
        return {
            "label": label,
            "matrix": rd.affine(rng, *pose),
            "fg": _hsv(rng.uniform(), rng.uniform(0.6, 1.0), rng.uniform(0.75, 1.0)),
            "bg": _hsv(rng.uniform(), rng.uniform(0.3, 0.8), rng.uniform(0.15, 0.45)),
        }

    def synthetic(self, p, rng):
        mask = rd.fill_polygons(_transformed(ICONS[self.classes[p["label"]]], p["matrix"]), 16)
        return p["bg"] + (p["fg"] - p["bg"]) * mask[..., None]

    def real(self, p, rng):
        img = self.synthetic(p, rng)
        img = img * rng.uniform(0.7, 1.3, size=3)  # white balance / colour cast
        luma = img @ np.array([0.299, 0.587, 0.114])
        img = img + rng.uniform(0.3, 0.6) * (luma[..., None] - img)  # desaturate
        img = np.clip(img, 0, 1) ** rng.uniform(0.6, 0.8)  # lifted shadows
        img = img * rd.gradient(16, rng.uniform(0.3, 0.6), rng)[..., None]
        img = rd.blur(img, rng.uniform(0.4, 0.8))
        chroma = np.stack([rd.smooth_noise(rng, (16, 16), 2.0) for _ in range(3)], axis=-1)
        img = img + 0.04 * chroma
        img = img + rng.normal(0, 1, img.shape) * np.array([0.03, 0.04, 0.06]) * rng.uniform(
            0.8, 1.5
        )
        return rd.quantise(img, 64)


class Tinted(Acquisition):
    """Acquisition's shapes and gap, each image in its own random foreground and background
    colour: the RGB tuning case. The label classifier must read shapes across colours (it
    needs about 4x its default steps here), and the label loss must not repaint them."""

    name = "tinted"
    gap = "acquisition's gap on shapes drawn in a random RGB foreground and background colour per image"
    channels = 3

    def sample(self, rng, label, real):
        params = super().sample(rng, label, real)
        params["fg_rgb"], params["bg_rgb"] = rng.uniform(0.0, 1.0, 3), rng.uniform(0.0, 1.0, 3)
        return params

    def _tint(self, gray, p):
        return gray[..., None] * p["fg_rgb"] + (1.0 - gray[..., None]) * p["bg_rgb"]

    def synthetic(self, p, rng):
        return self._tint(super().synthetic(p, rng), p)

    def real(self, p, rng):
        return self._tint(super().real(p, rng), p)


class AcquisitionCameraB(Acquisition):
    """acquisition's content seen by a second camera: darker, blurrier, coarser, noisier. A
    related real process for the transfer experiment (benchmarks/harness/transfer.py)."""

    name = "acquisition-b"
    gap = "acquisition's gap through another camera: darker, blurrier, 8-10 px sensor, 8 levels"
    tuning = False
    camera = {
        "low": (0.02, 0.12),
        "high": (0.45, 0.65),
        "blur": (0.9, 1.3),
        "vignette": (0.4, 0.7),
        "sensor": (8, 11),
        "noise": (0.04, 0.07),
        "levels": 8,
    }


class TextureCameraB(Texture):
    """texture's content seen by a second camera: blurred, stronger grain and shading, coarser
    quantisation. A related real process for the transfer experiment."""

    name = "texture-b"
    gap = "texture's gap through another camera: blur, stronger grain and shading, 32 levels"
    tuning = False

    def _camera(self, img, rng):
        img = rd.blur(img, rng.uniform(0.5, 0.8))
        img = img + rng.uniform(0.10, 0.18) * rd.pink_noise(rng, 16)
        img = img * rd.gradient(16, rng.uniform(0.4, 0.7), rng)
        img = img + rng.normal(0.0, rng.uniform(0.05, 0.08), img.shape)
        return rd.quantise(img, 32)


@functools.cache
def _scans():
    from sklearn.datasets import load_digits  # evaluation-only dependency

    return load_digits()


@functools.cache
def _font_files() -> tuple[str, ...]:
    """TrueType fonts of this machine (sorted, so a machine draws the same set each time)."""
    found = []
    for root in ("/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts"):
        found += [str(p) for p in Path(root).rglob("*.ttf")] if Path(root).is_dir() else []
    return tuple(sorted(found))


def _upsample(image8: np.ndarray, size: int) -> np.ndarray:
    """8x8 block counts to a size x size image, bilinear (as a scan resampled for a model)."""
    img = Image.fromarray(image8.astype(np.float32), mode="F")
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float64)


class Digits(Case):
    """Font-rendered digits vs real handwritten ones: scikit-learn's digits (UCI optdigits,
    1,797 scans by 43 writers; 32x32 bitmaps counted in 4x4 blocks, 0-16, resampled to 16x16).
    The real side is recorded data, not a renderer: the gap is handwriting (content, which no
    refiner should close) plus a known acquisition (block counting, 17 levels, resampling),
    which the oracle applies to the font renders."""

    name = "digits"
    gap = "font-rendered digits vs handwritten scans (scikit-learn digits): handwriting, 4x4 block counts, 17 levels"
    classes = tuple("0123456789")
    # scikit-learn has 174-183 scans per digit: 80 for training, 14 to tune, 80 to test.
    counts = {"real": 80, "val": 14, "test": 80}

    def sample(self, rng, label, real):
        fonts = _font_files()
        return {
            "label": label,
            "font": fonts[int(rng.integers(len(fonts)))] if fonts else "",
            "angle": rng.uniform(-10.0, 10.0),
            "height": rng.uniform(0.8, 1.0),  # of the 32-px box the scans were normalised to
            "aspect": rng.uniform(0.75, 1.15),
            "shift": rng.uniform(-1.5, 1.5, 2),
        }

    def _bitmap(self, p) -> np.ndarray:
        """The digit in the font as a 32x32 ink image in [0, 1], normalised like the scans."""
        canvas = Image.new("L", (96, 96), 0)
        font = ImageFont.truetype(p["font"], 64) if p["font"] else ImageFont.load_default(64)
        ImageDraw.Draw(canvas).text((48, 48), self.classes[p["label"]], fill=255, font=font,
                                    anchor="mm")  # fmt: skip
        canvas = canvas.rotate(p["angle"], resample=Image.Resampling.BILINEAR)
        glyph = canvas.crop(canvas.getbbox())
        h = max(4, round(32 * p["height"]))
        w = max(2, min(32, round(glyph.width * h / glyph.height * p["aspect"])))
        glyph = glyph.resize((w, h), Image.Resampling.LANCZOS)
        box = Image.new("L", (32, 32), 0)
        box.paste(glyph, (round((32 - w) / 2 + p["shift"][0]), round((32 - h) / 2 + p["shift"][1])))
        return np.asarray(box, dtype=np.float64) / 255.0

    def synthetic(self, p, rng):
        # A render without anti-aliasing: binary ink at every other pixel of the 32x32 glyph.
        return (self._bitmap(p)[::2, ::2] > 0.5).astype(np.float64)

    def real(self, p, rng):
        """The scans' acquisition on a font render (the oracle): binarise at 32x32, count
        4x4 blocks, resample to 16x16."""
        counts = (self._bitmap(p) > 0.5).reshape(8, 4, 8, 4).sum(axis=(1, 3))
        return np.clip(_upsample(counts / 16.0, self.size), 0.0, 1.0)

    def recorded(self, split: str, k: int, seed: int) -> np.ndarray | None:
        """The k-th real image of a split: scikit-learn's scans, split per class by the seed."""
        if split == "synthetic":
            return None
        digits = _scans()
        label, j = k % 10, k // 10
        members = np.flatnonzero(digits.target == label)
        order = np.random.default_rng([seed, 11, label]).permutation(members)
        start = {"real": 0, "val": self.counts["real"]}.get(
            split, self.counts["real"] + self.counts["val"]
        )
        return np.clip(_upsample(digits.images[order[start + j]] / 16.0, self.size), 0.0, 1.0)


# Appended cases keep the earlier ones' indices (CASE_INDEX seeds each case's data).
CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Acquisition(),
        Texture(),
        Stroke(),
        Colour(),
        Tinted(),
        AcquisitionCameraB(),
        TextureCameraB(),
        Digits(),
    )
}
CASE_INDEX = {name: i for i, name in enumerate(CASES)}
