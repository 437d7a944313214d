"""Write a case's data set to disk once (deterministic by seed), and read folders back.

Layout of DATA/<case>/ (PNG, 8-bit, class folders named after the classes):
  synthetic/<class>/      labelled synthetic set (what `refinekit train --synthetic` gets)
  oracle/<class>/         the same synthetic content through the real process (same names)
  real/                   unlabelled real training set, flat, shuffled names (`--real`)
  real_labelled/<class>/  the same real images in class folders (class-conditional variants)
  real50/, real50_labelled/<class>/  its first 5 images per class (the small-data variant)
  val/<class>/            labelled real images for choosing settings
  test/<class>/           labelled real images, reported only
  meta.json               case, seed, counts, classes, generator version
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .cases import CASE_INDEX, CASES, Case
from .render import to_uint8

VERSION = 2  # bump when the layout changes; each case has its own renderer version

# Images per class for each split.
SCALES = {
    "full": {"synthetic": 250, "real": 80, "val": 40, "test": 100},
    "tiny": {"synthetic": 6, "real": 5, "val": 3, "test": 3},
}
SMALL_REAL_PER_CLASS = 5
_SPLIT_CODE = {"synthetic": 0, "real": 1, "val": 2, "test": 3, "oracle": 4}


@dataclass(frozen=True)
class Folder:
    """Images of a labelled folder: x (N, H*W*C) float32 in [0, 1], y (N,), relative names."""

    x: np.ndarray
    y: np.ndarray
    names: list[str]


def _save(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(image)).save(path)


def _render(case: Case, seed: int, split: str, k: int, *, oracle: bool = False) -> np.ndarray:
    if not oracle and (image := case.recorded(split, k, seed)) is not None:
        return image
    label = k % len(case.classes)
    rng = np.random.default_rng([seed, CASE_INDEX[case.name], _SPLIT_CODE[split], k])
    params = case.sample(rng, label, real=split != "synthetic")
    if split == "synthetic" and not oracle:
        return case.synthetic(params, rng)
    # An oracle image reuses the synthetic content with its own nuisance randomness.
    nuisance = np.random.default_rng([seed, CASE_INDEX[case.name], _SPLIT_CODE["oracle"], k])
    return case.real(params, nuisance if oracle else rng)


def build(case_name: str, root: Path, *, seed: int = 0, scale: str = "full") -> Path:
    """Generate DATA/<case> unless a complete copy with the same settings exists; returns it."""
    case = CASES[case_name]
    counts = {k: min(n, case.counts.get(k, n)) for k, n in SCALES[scale].items()}
    meta = {
        "case": case.name,
        "gap": case.gap,
        "seed": seed,
        "scale": scale,
        "version": [VERSION, case.version],
        "size": case.size,
        "channels": case.channels,
        "classes": list(case.classes),
        "per_class": counts,
        "tuning": case.tuning,
    }
    final = root / case.name
    if (final / "meta.json").exists() and json.loads((final / "meta.json").read_text()) == meta:
        return final
    tmp = root / f".{case.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    n_cls = len(case.classes)
    for split in ("synthetic", "val", "test"):
        for k in range(counts[split] * n_cls):
            cls = case.classes[k % n_cls]
            image = _render(case, seed, split, k)
            _save(image, tmp / split / cls / f"{split[0]}{k:05d}.png")
            if split == "synthetic":
                _save(
                    _render(case, seed, split, k, oracle=True),
                    tmp / "oracle" / cls / f"s{k:05d}.png",
                )
    n_real = counts["real"] * n_cls
    names = np.random.default_rng([seed, CASE_INDEX[case.name], 99]).permutation(n_real)
    for k in range(n_real):
        cls = case.classes[k % n_cls]
        image = _render(case, seed, "real", k)
        name = f"r{names[k]:05d}.png"
        targets = ["real", f"real_labelled/{cls}"]
        if k < SMALL_REAL_PER_CLASS * n_cls:
            targets += ["real50", f"real50_labelled/{cls}"]
        for target in targets:
            _save(image, tmp / target / name)
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def load_labelled(folder: Path, classes: list[str], names: list[str] | None = None) -> Folder:
    """Read <folder>/<class>/*.png (or exactly `names`, relative paths) as a Folder."""
    if names is None:
        names = sorted(f"{cls}/{p.name}" for cls in classes for p in (folder / cls).glob("*.png"))
    index = {c: i for i, c in enumerate(classes)}
    x = np.stack([np.asarray(Image.open(folder / n), dtype=np.float32) / 255.0 for n in names])
    y = np.array([index[n.split("/")[0]] for n in names])
    return Folder(x.reshape(len(names), -1), y, list(names))


def preview(data: Path, rows: dict[str, Path], path: Path, zoom: int = 4) -> None:
    """A PNG with one row per named folder, one image per class (the first of each), zoomed."""
    meta = json.loads((data / "meta.json").read_text())
    tiles = []
    for folder in rows.values():
        row = []
        for cls in meta["classes"]:
            first = sorted((folder / cls).glob("*.png"))[0]
            img = np.asarray(Image.open(first).convert("RGB"))
            row.append(np.pad(img, ((1, 1), (1, 1), (0, 0)), constant_values=255))
        tiles.append(np.concatenate(row, axis=1))
    grid = np.concatenate(tiles, axis=0).repeat(zoom, axis=0).repeat(zoom, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    Image.fromarray(grid).save(tmp)
    os.replace(tmp, path)
