"""Class labels from folder layout: the one rule that training and gap-report share.

A set is labelled when every image lies in a top-level subfolder of its root and there are at
least two such subfolders; the subfolder is the image's class. One subfolder is no classes (a
set kept in `root/images/` is not a one-class problem). Names are paths relative to the root,
POSIX style (`"cat/001.png"`), so the rule does not depend on the platform or on the files.
"""

from __future__ import annotations

from collections.abc import Sequence

MIN_CLASSES = 2


def top_folders(names: Sequence[str]) -> list[str] | None:
    """Each name's top-level folder, or None when a name has none (an image at the root)."""
    parts = [name.split("/", 1) for name in names]
    if any(len(p) < 2 or not p[0] for p in parts):
        return None
    return [p[0] for p in parts]


def folder_classes(names: Sequence[str]) -> list[str] | None:
    """The class of each image (its top-level folder), in the order of `names`; None unless
    every image has one and there are at least two distinct ones (and for no names)."""
    tops = top_folders(names)
    if tops is None or len(set(tops)) < MIN_CLASSES:
        return None
    return tops


def single_folder(names: Sequence[str]) -> str | None:
    """The one top-level folder every image is in (one folder is no classes), or None."""
    tops = top_folders(names)
    if not tops or len(set(tops)) != 1:
        return None
    return tops[0]
