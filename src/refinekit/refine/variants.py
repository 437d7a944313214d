"""Variants: K refined outputs per synthetic image (`refine --variants K`), their names, their
salts (`--seed`), and the label files that go with each.

A refiner with per-image draws (the camera model: refiners/acquisition.py) keys an image's
draws by its pixels and a salt. Variant v (1..K) of seed N uses salt N * MAX_VARIANTS + v - 1,
so every (seed, variant) pair has its own salt, `--variants 1` is variant 1 of the same seed,
and seed 0 without variants is salt 0, what refine used before there were variants.

With K > 1, IMAGE.EXT is written as IMAGE_v1.EXT ... IMAGE_vK.EXT, and each sidecar of the
image (a file beside it whose name is the image's name without its suffix, a dot, and anything:
IMAGE.json, IMAGE.png.json, IMAGE.mask.npy) is copied once per variant as IMAGE_v1.json ...;
every other file is copied once, under its own name. No JAX here.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import UsageError

MAX_VARIANTS = 1024
MAX_SEED = 2**31 // MAX_VARIANTS - 1  # the largest salt fits an int32


def check_variants(variants: int) -> int:
    if not 1 <= int(variants) <= MAX_VARIANTS:
        raise UsageError(f"--variants {variants}: expected 1..{MAX_VARIANTS}")
    return int(variants)


def check_seed(seed: int) -> int:
    if not 0 <= int(seed) <= MAX_SEED:
        raise UsageError(f"--seed {seed}: expected 0..{MAX_SEED}")
    return int(seed)


def salt(seed: int, variant: int | None) -> int:
    """The salt of `variant` (1-based; None: the only output) of `seed`."""
    return int(seed) * MAX_VARIANTS + (0 if variant is None else int(variant) - 1)


def _split(name: str) -> tuple[str, str]:
    """'img.png' -> ('img', '.png'); a name with no suffix (or only a leading dot) -> (name, '')."""
    dot = name.rfind(".")
    return (name, "") if dot <= 0 else (name[:dot], name[dot:])


def variant_name(relative: str, variant: int | None) -> str:
    """The output path of `variant` of image `relative` ("a/img.png", 2 -> "a/img_v2.png")."""
    if variant is None:
        return relative
    folder, _, name = relative.rpartition("/")
    stem, suffix = _split(name)
    return f"{folder}/{stem}_v{variant}{suffix}" if folder else f"{stem}_v{variant}{suffix}"


def sidecar_name(relative: str, stem: str, variant: int | None) -> str:
    """The output path of `variant` of sidecar `relative` of the image whose path without its
    suffix is `stem` ("a/img.json", "a/img", 2 -> "a/img_v2.json")."""
    return relative if variant is None else f"{stem}_v{variant}{relative[len(stem) :]}"


def sidecars(images: Iterable[str], others: Iterable[str]) -> dict[str, str]:
    """The files of `others` that are sidecars of an image of `images`, mapped to that image's
    path without its suffix (the longest, when several images' stems match)."""
    stems = {_split(relative)[0] for relative in images}
    found = {}
    for relative in others:
        folder, slash, name = relative.rpartition("/")
        # Each dot of the name (not the first character) ends a candidate stem; longest first.
        for dot in sorted((i for i, ch in enumerate(name) if ch == "." and i > 0), reverse=True):
            stem = f"{folder}{slash}{name[:dot]}"
            if stem in stems:
                found[relative] = stem
                break
    return found


def outputs_of(
    relative: str, variants: int, stem: str | None = None, *, image: bool
) -> tuple[tuple[int | None, str], ...]:
    """(variant, output path) of each output of input `relative`: an image has K, a sidecar
    (`stem` given) K, any other file one, as do all files when `variants` is 1."""
    if variants == 1 or (not image and stem is None):
        return ((None, relative),)
    if image:
        return tuple((v, variant_name(relative, v)) for v in range(1, variants + 1))
    assert stem is not None
    return tuple((v, sidecar_name(relative, stem, v)) for v in range(1, variants + 1))


def check_unique(outputs: Iterable[tuple[str, str]]) -> None:
    """Refuse two inputs that would be written to one output name: (input, output) pairs."""
    seen: dict[str, str] = {}
    for source, target in outputs:
        other = seen.setdefault(target, source)
        if other != source:
            raise UsageError(
                f"--variants: {other} and {source} would both be written as {target}; rename "
                "one of them, or refine without --variants"
            )
