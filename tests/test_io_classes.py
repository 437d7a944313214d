"""The one folder-class rule (io/classes.py) and the two places that read it: training's labels
and the gap report's image sets."""

from __future__ import annotations

import numpy as np

from refinekit.gap.inputs import ImageSet
from refinekit.io.classes import folder_classes, single_folder, top_folders
from refinekit.training import labels


def test_two_or_more_top_folders_are_classes_in_the_order_of_the_names():
    names = ["b/1.png", "a/2.png", "b/3.png", "a/deeper/4.png"]
    assert folder_classes(names) == ["b", "a", "b", "a"]


def test_one_folder_is_no_classes_but_is_the_single_folder():
    names = ["images/1.png", "images/2.png"]
    assert folder_classes(names) is None
    assert single_folder(names) == "images"


def test_an_image_at_the_root_means_no_classes():
    assert folder_classes(["a/1.png", "b/2.png", "3.png"]) is None
    assert single_folder(["a/1.png", "2.png"]) is None
    assert top_folders(["a/1.png", "2.png"]) is None


def test_no_names_are_no_classes():
    assert folder_classes([]) is None
    assert single_folder([]) is None


def test_two_folders_are_not_a_single_folder():
    assert single_folder(["a/1.png", "b/2.png"]) is None


def test_training_labels_and_gap_sets_agree(tmp_path):
    root = tmp_path / "set"
    root.mkdir()  # a folder root: names are relative to it
    cases = [
        ["a/1.png", "b/2.png", "a/3.png"],  # two classes
        ["only/1.png", "only/2.png"],  # one folder: no classes for either
        ["a/1.png", "2.png"],  # one image at the root: no classes
    ]
    for names in cases:
        paths = [root / name for name in names]
        images = ImageSet("synthetic", np.zeros((len(names), 8, 8, 1), np.float32), names)
        assert labels.folder_classes(paths, root) == images.class_names() == folder_classes(names)


def test_find_labels_records_a_single_folder(tmp_path):
    root = tmp_path / "syn"
    for name in ("only/1.png", "only/2.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    found = labels.find_labels(
        [root / "only/1.png", root / "only/2.png"], root, [tmp_path / "r.png"], tmp_path
    )
    assert found.classes == [] and found.single_folder == "only" and not found.real_matches
