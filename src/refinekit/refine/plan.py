"""Planning a refine run: check IN and OUT, list the files this run (or shard) covers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, UsageError
from ..io.atomic import temp_target
from ..io.files import is_image_path, scan_folder
from ..io.formats import IMAGE_EXTENSIONS
from .manifest import is_manifest_name, manifest_name
from .shard import shard_of


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

    @property
    def manifest_path(self) -> Path:
        return self.output / manifest_name(self.shard)


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


def _ours(relative: str) -> bool:
    """Files an earlier refine run left in a folder: never inputs."""
    name = relative.rsplit("/", 1)[-1]
    return temp_target(name) is not None or ("/" not in relative and is_manifest_name(name))


def plan_refine(input: Path, output: Path, *, shard: tuple[int, int] | None = None) -> RefinePlan:
    """Check IN and OUT and list the files this run (or shard) covers; writes nothing.

    Raises UsageError/DataError (exit 2) for refused folders, or a folder with no images.
    """
    input, output = Path(input), Path(output)
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
    if shard is not None:
        k, n = shard
        images = [p for p in images if shard_of(p, n) == k]
        others = [p for p in others if shard_of(p, n) == k]
        ignored = tuple(p for p in ignored if shard_of(p, n) == k)
    return RefinePlan(input, root, output, tuple(images), tuple(others), ignored, shard, all_images)
