"""No write lands on an input: the one check every command makes before it starts working.

Every path refinekit writes (refine's OUT, train's RUN, gap-report's --json/--html/--save-refined,
export's FILE) is resolved through symbolic links and refused when it is, or is inside, any
input the command reads; a folder output is also refused when it holds an input (writing into
it could replace that input). The check runs before any work, so a refused command has written
nothing. No JAX here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import UsageError


def real_path(path: Path) -> Path:
    """`path` with every symbolic link resolved, also through parts that do not exist yet
    (`os.path.realpath` resolves what exists and keeps the rest), made absolute."""
    return Path(os.path.realpath(os.path.abspath(path)))


def creatable(path: Path) -> Path:
    """`path` as refinekit creates and writes it: resolved (`real_path`) when it holds a ".."
    (`IN/nosub/../../out` is checked resolved, and creating it as given would first create
    the missing `IN/nosub`, inside an input), otherwise as given (the same place). Resolve an
    output path with it before it is checked, so what is checked is what is created."""
    path = Path(path)
    return real_path(path) if ".." in path.parts else path


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def overlap(output: Path, input: Path, *, output_is_folder: bool) -> str | None:
    """How writing `output` would touch `input` ("is", "is inside", "holds"), or None."""
    out_real, in_real = real_path(output), real_path(input)
    if out_real == in_real:
        return "is"
    try:
        if os.path.exists(output) and os.path.exists(input) and os.path.samefile(output, input):
            return "is"  # a hard link, or the same folder through a bind mount
    except OSError:
        pass
    if in_real.is_dir() and _inside(out_real, in_real):
        return "is inside"
    if output_is_folder and _inside(in_real, out_real):
        return "holds"
    return None


def check_not_input(
    flag: str,
    output: Path | None,
    inputs: Iterable[tuple[str, Path | None]],
    *,
    output_is_folder: bool = False,
) -> None:
    """Raise UsageError when writing `output` (given with `flag`) would land on an input.

    inputs: (flag, path) of everything the command reads; None entries are ignored.
    output_is_folder: `output` is a folder the command writes into (also refused when it
    holds an input).
    """
    if output is None:
        return
    for in_flag, input in inputs:
        if input is None:
            continue
        how = overlap(Path(output), Path(input), output_is_folder=output_is_folder)
        if how is None:
            continue
        where = {
            "is": f"is the input {in_flag} {input}",
            "is inside": f"is inside the input {in_flag} {input}",
            "holds": f"holds the input {in_flag} {input}",
        }[how]
        resolved = real_path(Path(output))
        via = f" (it resolves to {resolved})" if str(resolved) != os.path.abspath(output) else ""
        raise UsageError(
            f"{flag} {output}{via} {where}: refinekit never writes onto its inputs; "
            "choose a path outside them"
        )


def check_folder_links(
    output: Path, folders: Iterable[str], inputs: list[tuple[str, Path]]
) -> None:
    """Refuse an output tree whose subfolders lead into an input through a symbolic link.

    output: the output folder (already checked with `check_not_input`); folders: relative
    subfolders ("/"-joined) that will be written into. A subfolder of OUT that is a link into
    IN would make `OUT/sub/a.png` replace `IN/sub/a.png`; each folder is resolved as a whole,
    so a link at any depth is caught.
    """
    for relative in sorted(set(folders) - {"", "."}):
        path = Path(output, relative)
        if real_path(path) != real_path(output) / relative:  # a link somewhere on the way
            check_not_input(
                f"OUT {output}: its subfolder {relative}", path, inputs, output_is_folder=True
            )


def check_output_file(flag: str, path: Path, *, create_parents: bool = False) -> None:
    """Refuse, before any work, a file output that cannot be written: a folder, a path below
    a regular file, a missing folder (unless `create_parents`), a folder without write access."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; give the name of the file to write")
    if path.exists() and not path.is_file():
        raise UsageError(f"{flag} {path}: exists and is not a regular file")
    folder = _existing_ancestor(path.parent)
    if not folder.is_dir():
        raise UsageError(
            f"{flag} {path}: {folder} is a file, not a folder, so nothing can be written below it"
        )
    if folder != Path(os.path.abspath(path.parent)) and not create_parents:  # relative paths too
        raise UsageError(f"{flag} {path}: folder {path.parent} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: folder {folder} is not writable")


def check_output_folder(flag: str, path: Path, *, writable: bool = True) -> None:
    """Refuse, before any work, a folder output that is a file or lies below one, or (with
    `writable`) whose nearest existing folder cannot be written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path}: exists and is not a folder")
    folder = _existing_ancestor(path)
    if not folder.is_dir():
        raise UsageError(
            f"{flag} {path}: {folder} is a file, not a folder, so nothing can be written below it"
        )
    if writable and not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: folder {folder} is not writable")


def _existing_ancestor(path: Path) -> Path:
    """The nearest of `path` and its parents that exists (a file or a folder)."""
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path
