"""Planning a refine run: check IN and OUT, list the files this run (or shard) covers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError, UsageError
from ..io import guard
from ..io.atomic import TEMP_MARK, temp_target
from ..io.files import is_image_path, scan_folder
from ..io.formats import IMAGE_EXTENSIONS
from ..io.lock import is_lock_name
from . import variants as variants_
from .manifest import is_journal_name, is_manifest_name, manifest_name
from .shard import shard_of

# (variant or None, output path relative to OUT) for each output of one input file.
Outputs = tuple[tuple[int | None, str], ...]


@dataclass(frozen=True)
class RefinePlan:
    """What one refine run covers: its folders and the files of its shard (relative, "/"-joined)."""

    input: Path
    root: Path  # the folder relative paths start from: IN, or the folder of a single IN file
    output: Path
    images: tuple[str, ...]
    others: tuple[str, ...]
    ignored: tuple[str, ...]  # files of IN never copied: an earlier run's manifests, temporaries
    shard: tuple[int, int] | None = None
    all_images: int = 0  # images in IN, over all shards
    # Files of this run that are symbolic links to files outside IN: followed (their targets'
    # bytes are read and refined or copied), and said so in the summary.
    linked_outside: tuple[str, ...] = ()
    variants: int = 1  # outputs per image (variants.py)
    # The files of `others` that are an image's sidecars (copied once per variant), mapped to
    # that image's path without its suffix; empty with one variant.
    sidecars: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def manifest_path(self) -> Path:
        return self.output / manifest_name(self.shard)

    def image_outputs(self, relative: str) -> Outputs:
        return variants_.outputs_of(relative, self.variants, image=True)

    def other_outputs(self, relative: str) -> Outputs:
        return variants_.outputs_of(
            relative, self.variants, self.sidecars.get(relative), image=False
        )

    def output_names(self, copy_other: bool = True) -> set[str]:
        """Every output path of this run (or shard)."""
        names = {out for r in self.images for _, out in self.image_outputs(r)}
        if copy_other:
            names.update(out for r in self.others for _, out in self.other_outputs(r))
        return names


def check_paths(input: Path, output: Path) -> None:
    """Refuse IN/OUT pairs that could write into the input or mix outputs with inputs."""
    input, output = Path(input), Path(output)
    if not input.exists():
        raise DataError(f"IN {input}: no such file or folder")
    if output.exists() and not output.is_dir():
        raise UsageError(
            f"OUT {output}: exists and is not a folder (OUT is the folder to write to)"
        )
    in_real, out_real = input.resolve(), output.resolve()
    same = out_real == in_real or (output.exists() and os.path.samefile(output, input))
    if input.is_file():
        if not is_image_path(input):
            raise UsageError(
                f"IN {input}: not an image file ({', '.join(IMAGE_EXTENSIONS)}); "
                "IN is a folder or one image file"
            )
        holder = input.parent
        if out_real == in_real.parent or (output.exists() and os.path.samefile(output, holder)):
            raise UsageError(
                f"OUT {output} is the folder that holds IN {input}: the refined image would "
                "replace the input; choose another folder"
            )
        if not output.exists() and is_image_path(output):
            raise UsageError(
                f"OUT {output}: OUT is a folder (the refined image is written as "
                f"OUT/{input.name}); give a folder name, not an image file name"
            )
        return
    if same:
        raise UsageError(
            f"OUT {output} is the same folder as IN: refine never writes into its input; "
            "choose another folder"
        )
    if out_real.is_relative_to(in_real):
        raise UsageError(
            f"OUT {output} is inside IN {input}: outputs would be mixed into the input tree "
            "(and read as inputs on the next run); choose a folder outside IN"
        )
    if in_real.is_relative_to(out_real):
        raise UsageError(
            f"IN {input} is inside OUT {output}: outputs could overwrite inputs; "
            "choose an OUT folder that does not contain IN"
        )
    guard.check_not_input("OUT", output, [("IN", input)], output_is_folder=True)


def _ours(relative: str) -> bool:
    """Files an earlier refine run left in a folder: never inputs."""
    name = relative.rsplit("/", 1)[-1]
    top = "/" not in relative
    ours = is_manifest_name(name) or is_journal_name(name) or is_lock_name(name)
    return temp_target(name) is not None or (top and ours)


def plan_refine(
    input: Path, output: Path, *, shard: tuple[int, int] | None = None, variants: int = 1
) -> RefinePlan:
    """Check IN and OUT and list the files this run (or shard) covers; writes nothing.

    `variants`: outputs per image (variants.py: their names, and the sidecars copied with each).

    Raises UsageError/DataError (exit 2) for refused folders, a folder with no images, or
    variant names that two inputs would share.
    """
    variants = variants_.check_variants(variants)
    input, output = Path(input), guard.creatable(Path(output))  # resolved before it is made
    check_paths(input, output)
    if input.is_file():
        root, images, others = input.parent, [input.name], []
    else:
        root = input
        image_paths, other_paths = scan_folder(input)
        images = [p.as_posix() for p in image_paths]
        others = [p.as_posix() for p in other_paths]
        if not images:
            raise DataError(
                f"IN {input}: no image files found (looked for {', '.join(IMAGE_EXTENSIONS)}, "
                "recursively)"
            )
    ignored = tuple(p for p in images + others if _ours(p))
    images = [p for p in images if not _ours(p)]
    others = [p for p in others if not _ours(p)]
    all_images = len(images)
    sidecars: dict[str, str] = {}
    if variants > 1:  # over every shard's files: a sidecar and its image may be in two shards
        sidecars = variants_.sidecars(images, others)
        variants_.check_unique(
            [(r, out) for r in images for _, out in variants_.outputs_of(r, variants, image=True)]
            + [
                (r, out)
                for r in others
                for _, out in variants_.outputs_of(r, variants, sidecars.get(r), image=False)
            ]
        )
    if shard is not None:
        k, n = shard
        images = [p for p in images if shard_of(p, n) == k]
        others = [p for p in others if shard_of(p, n) == k]
        ignored = tuple(p for p in ignored if shard_of(p, n) == k)
        sidecars = {p: stem for p, stem in sidecars.items() if shard_of(p, n) == k}
    # A subfolder of OUT that is a link into IN would put outputs onto inputs (guard.py).
    folders = {p.rsplit("/", 1)[0] for p in images + others if "/" in p}
    guard.check_folder_links(output, folders, [("IN", input)])
    outside = _linked_outside(root, input, images + others)
    return RefinePlan(
        input,
        root,
        output,
        tuple(images),
        tuple(others),
        ignored,
        shard,
        all_images,
        outside,
        variants,
        sidecars,
    )


def _linked_outside(root: Path, input: Path, relatives: list[str]) -> tuple[str, ...]:
    """The files that are symbolic links to files outside IN (see RefinePlan.linked_outside)."""
    inside = guard.real_path(input if input.is_dir() else input.parent)
    linked = []
    for relative in relatives:
        path = root / relative
        if os.path.islink(path):
            target = guard.real_path(path)
            if not target.is_relative_to(inside):
                linked.append(relative)
    return tuple(linked)


# Image formats refinekit does not refine: such files are copied byte for byte like any other
# file, and the summary says so (an animated GIF is never refined, nor silently reduced).
UNREFINED_IMAGE_SUFFIXES = (".gif", ".apng", ".heic", ".heif", ".avif", ".jxl", ".jp2", ".ico")


def plan_notes(plan: RefinePlan, copy_other: bool) -> set[str]:
    """What the summary says about files that were not refined, or read through a link."""
    notes = set()
    unrefined = [p for p in plan.others if p.lower().endswith(UNREFINED_IMAGE_SUFFIXES)]
    if unrefined:
        suffixes = sorted({"." + p.rsplit(".", 1)[-1].lower() for p in unrefined})
        what = "copied unrefined, byte for byte" if copy_other else "left out (--no-copy-other)"
        notes.add(
            f"{len(unrefined)} image file(s) in formats refinekit does not refine "
            f"({', '.join(suffixes)}) were {what}, e.g. {unrefined[0]}; it refines "
            f"{', '.join(IMAGE_EXTENSIONS)} (convert them to refine them)"
        )
    temporary = [p for p in plan.ignored if temp_target(p.rsplit("/", 1)[-1]) is not None]
    if temporary:
        notes.add(
            f"{len(temporary)} file(s) of IN are named like refinekit's temporary files "
            f"(.NAME{TEMP_MARK}PID), e.g. {temporary[0]}: left out, neither refined nor copied "
            "(rename them to include them)"
        )
    if plan.linked_outside:
        notes.add(
            f"{len(plan.linked_outside)} file(s) are symbolic links to files outside IN, "
            f"e.g. {plan.linked_outside[0]}: links to files are followed (their targets are "
            "read), links to folders are not"
        )
    return notes
