"""`refine --variants K` and `--seed N`: K outputs per image, each its own salt, named NAME_vK,
with each image's sidecars copied per variant; resume, shards and the manifest per output; a
deterministic refiner refused; the camera model's draws through the real inference path."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

import refinekit.cli.refine as cli_refine
from conftest import TINY, write_images
from refinekit.cli import main
from refinekit.errors import UsageError
from refinekit.refine import plan_refine, refine_folder
from refinekit.refine import variants as V
from refinekit.refine.manifest import read_records


class Salted:
    """A refiner with per-image draws whose output says which salt it was called with."""

    channels, batch_size, draws_per_image = 3, 4, True

    def __init__(self, model_id=None):
        self.model_id = model_id or {"run": "/runs/camera", "step": 1}
        self.salts: list[int] = []

    def __call__(self, images, salt=0):
        self.salts.append(salt)
        return np.clip(images * 0.5 + (salt % 5) / 10, 0.0, 1.0).astype(np.float32)


class Fixed:
    """A deterministic refiner: no salt, no `draws_per_image`."""

    channels, batch_size = 3, 4
    model_id = {"run": "/runs/resnet", "step": 1}

    def __call__(self, images):
        return 1.0 - images


def _folder(tmp_path, count=5):
    src = write_images(tmp_path / "in", count, (8, 8, 3), 0, smooth=True)
    (src / "img_000.json").write_text('{"label": 0}\n')  # a sidecar of img_000.png
    (src / "img_001.png.txt").write_text("1\n")  # a sidecar too (full name, then a dot)
    (src / "classes.txt").write_text("a\nb\n")  # no image's: copied once
    return src


def _load(monkeypatch, refiner):
    monkeypatch.setattr(cli_refine, "_load_refiner", lambda *args: refiner)


def test_names_salts_and_sidecars():
    assert V.variant_name("a/img.png", 2) == "a/img_v2.png"
    assert V.variant_name("img.tar.png", 1) == "img.tar_v1.png"
    assert V.variant_name("a/img.png", None) == "a/img.png"
    found = V.sidecars(
        ["a/x.png", "a/x.y.png", "b/x.png"],
        ["a/x.json", "a/x.y.json", "a/x.png.json", "a/xz.json", "x.json", "a/notes"],
    )
    assert found == {"a/x.json": "a/x", "a/x.y.json": "a/x.y", "a/x.png.json": "a/x"}
    assert V.sidecar_name("a/x.png.json", "a/x", 3) == "a/x_v3.png.json"
    # seed 0 with one output is salt 0 (refine before variants); every (seed, variant) differs
    assert V.salt(0, None) == V.salt(0, 1) == 0
    salts = {V.salt(seed, v) for seed in range(4) for v in range(1, V.MAX_VARIANTS + 1)}
    assert len(salts) == 4 * V.MAX_VARIANTS
    assert V.salt(V.MAX_SEED, V.MAX_VARIANTS) < 2**31


def test_plan_refuses_two_inputs_with_one_output_name(tmp_path):
    src = _folder(tmp_path, 2)
    (src / "img_000_v1.json").write_text("mine\n")  # img_000.json's first variant's name
    with pytest.raises(UsageError, match="img_000.json and img_000_v1.json would both"):
        plan_refine(src, tmp_path / "out", variants=2)
    assert plan_refine(src, tmp_path / "out").variants == 1  # no variants: no renames
    with pytest.raises(UsageError, match="--variants 0"):
        plan_refine(src, tmp_path / "out", variants=0)


def test_variants_are_written_with_their_salts_sidecars_and_manifest_lines(tmp_path):
    src = _folder(tmp_path)
    refiner = Salted()
    summary = refine_folder(src, tmp_path / "out", refiner, variants=3, seed=2, workers=1)
    out = tmp_path / "out"
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("refinekit-"))
    images = [f"img_{i:03d}_v{v}.png" for i in range(5) for v in (1, 2, 3)]
    sidecars = [f"img_000_v{v}.json" for v in (1, 2, 3)] + [
        f"img_001_v{v}.png.txt" for v in (1, 2, 3)
    ]
    assert names == sorted([*images, *sidecars, "classes.txt"])
    assert (out / "img_000_v2.json").read_text() == '{"label": 0}\n'
    assert summary.refined == 15 and summary.copied == 7 and summary.failed == 0
    assert summary.variants == 3 and summary.seed == 2
    assert sorted(set(refiner.salts)) == [2 * V.MAX_VARIANTS + v for v in range(3)]
    source = iio.imread(src / "img_004.png") / 255.0
    for v in (1, 2, 3):  # each variant is its own salt's output (to 8-bit rounding)
        shift = ((2 * V.MAX_VARIANTS + v - 1) % 5) / 10
        written = iio.imread(out / f"img_004_v{v}.png") / 255.0
        np.testing.assert_allclose(written, np.clip(source * 0.5 + shift, 0, 1), atol=0.6 / 255)
    records = read_records(out / "refinekit-manifest.jsonl")
    refined = [r for r in records if r.action == "refined"]
    assert len(refined) == 15 and {(r.variant, r.seed) for r in refined} == {(1, 2), (2, 2), (3, 2)}
    assert {r.output for r in refined if r.input == "img_003.png"} == {
        f"img_003_v{v}.png" for v in (1, 2, 3)
    }
    copied = {r.output: r.variant for r in records if r.action == "copied"}
    assert copied["classes.txt"] is None and copied["img_001_v2.png.txt"] == 2
    lines = [json.loads(x) for x in (out / "refinekit-manifest.jsonl").read_text().splitlines()]
    plain = next(x for x in lines if x["input"] == "classes.txt")
    assert "variant" not in plain and "seed" not in plain  # written only where they apply
    assert all(x["seed"] == 2 for x in lines if x["action"] == "refined")


def test_resume_redoes_only_what_is_missing_and_refuses_another_seed(tmp_path):
    src = _folder(tmp_path)
    out = tmp_path / "out"
    refine_folder(src, out, Salted(), variants=2, seed=1, workers=1)
    again = refine_folder(src, out, Salted(), variants=2, seed=1, workers=1)
    assert again.refined == again.copied == 0 and again.skipped == 10 + 5
    (out / "img_002_v2.png").unlink()
    (out / "img_000_v1.json").unlink()
    partial = refine_folder(src, out, Salted(), variants=2, seed=1, workers=1)
    assert (partial.refined, partial.copied, partial.skipped) == (1, 1, 13)
    with pytest.raises(UsageError, match="refined with --seed 1 .* not --seed 4"):
        refine_folder(src, out, Salted(), variants=2, seed=4, workers=1)
    redone = refine_folder(src, out, Salted(), variants=2, seed=4, workers=1, overwrite=True)
    assert redone.refined == 10


def test_shards_together_write_what_one_run_writes(tmp_path):
    src = _folder(tmp_path, 8)
    refine_folder(src, tmp_path / "whole", Salted(), variants=2, workers=1)
    for k in (1, 2):
        refine_folder(src, tmp_path / "split", Salted(), variants=2, shard=(k, 2), workers=1)

    def files(folder):
        return {
            p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith("refinekit-")
        }

    assert files(tmp_path / "whole") == files(tmp_path / "split")
    assert len(files(tmp_path / "whole")) == 16 + 4 + 1


def test_one_variant_keeps_the_names_and_is_variant_one(tmp_path):
    src = _folder(tmp_path, 3)
    refine_folder(src, tmp_path / "one", Salted(), workers=1)
    refine_folder(src, tmp_path / "two", Salted(), variants=2, workers=1)
    assert (tmp_path / "one" / "img_000.json").is_file()
    for i in range(3):
        first = (tmp_path / "two" / f"img_{i:03d}_v1.png").read_bytes()
        assert (tmp_path / "one" / f"img_{i:03d}.png").read_bytes() == first
    line = json.loads((tmp_path / "one" / "refinekit-manifest.jsonl").read_text().splitlines()[-1])
    assert line.get("seed") in (0, None) and "variant" not in line


def test_cli_variants_and_seed(tmp_path, monkeypatch, capsys):
    src = _folder(tmp_path, 3)
    _load(monkeypatch, Salted())
    args = ["refine", str(src), str(tmp_path / "out"), "--run", str(tmp_path), "--json"]
    assert main([*args, "--variants", "2", "--seed", "5"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert (summary["refined"], summary["variants"], summary["seed"]) == (6, 2, 5)
    assert "3 images x 2 variants" in captured.err
    assert main([*args, "--variants", "2", "--seed", "6"]) == 2  # another seed into the same OUT
    assert "--seed 5" in capsys.readouterr().err
    assert main([*args, "--variants", "0"]) == 2
    assert main([*args, "--seed", "-1"]) == 2


def test_cli_refuses_variants_of_a_deterministic_refiner(tmp_path, monkeypatch, capsys):
    src = _folder(tmp_path, 2)
    _load(monkeypatch, Fixed())
    out = tmp_path / "out"
    assert main(["refine", str(src), str(out), "--run", str(tmp_path), "--variants", "3"]) == 2
    err = capsys.readouterr().err
    assert "this refiner is deterministic, so every variant would be the same image" in err
    assert not out.exists()  # refused before anything is written
    assert main(["refine", str(src), str(out), "--run", str(tmp_path), "--seed", "3"]) == 0
    err = capsys.readouterr().err
    assert "warning: --seed 3 changes nothing: this refiner is deterministic" in " ".join(
        err.split()
    )


# ---------------------------------------------------------------------------------------------
# The camera model through the real inference path


def _camera_refiner():
    import jax.numpy as jnp
    from flax import nnx

    from refinekit.config import TrainConfig
    from refinekit.inference.refiner import Refiner
    from refinekit.nn.models import build_models

    config = TrainConfig(refiner="acquisition", preset="tiny", size=(8, 8), channels=3)
    camera, _ = build_models(config, 3, 0)
    camera.log_read[...] = jnp.asarray(np.log(0.05), jnp.float32)  # visible per-image noise
    camera.offset_spread[...] = jnp.full((3,), np.log(0.05), jnp.float32)
    _, params = nnx.split(camera, nnx.Param)
    return Refiner(config, params, {"run": "/runs/camera", "step": 1}, batch_size=4)


def test_camera_draws_differ_by_variant_and_seed_and_repeat_exactly(tmp_path):
    refiner = _camera_refiner()
    assert refiner.draws_per_image
    src = write_images(tmp_path / "in", 3, (8, 8, 3), 0, smooth=True)
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        refine_folder(src, tmp_path / name, refiner, variants=2, seed=seed, workers=1)
    refine_folder(src, tmp_path / "one", refiner, workers=1)

    def read(folder, name):
        return (tmp_path / folder / name).read_bytes()

    for i in range(3):
        v1, v2 = f"img_{i:03d}_v1.png", f"img_{i:03d}_v2.png"
        assert read("a", v1) == read("b", v1) and read("a", v2) == read("b", v2)  # reproducible
        assert read("a", v1) != read("a", v2)  # variants differ
        assert read("a", v1) != read("c", v1)  # seeds differ
        assert read("one", f"img_{i:03d}.png") == read("a", v1)  # salt 0 as before variants
    assert refiner._apply._cache_size() == 1  # every salt ran the one compiled program


@pytest.mark.slow
def test_cli_train_refine_export_with_variants(tmp_path):
    syn = write_images(tmp_path / "syn", 8, (16, 16), 0, smooth=True)
    real = write_images(tmp_path / "real", 8, (16, 16), 1, smooth=False)
    (syn / "img_000.json").write_text("{}\n")
    run = tmp_path / "run"
    args = ["train", "--synthetic", str(syn), "--real", str(real), "--out", str(run), *TINY]
    args += ["--refiner", "acquisition", "--steps", "2", "--pretrain-disc-steps", "0"]
    assert main([*args, "--checkpoint-every", "2", "--val-fraction", "0"]) == 0
    by_run, by_model = tmp_path / "by_run", tmp_path / "by_model"
    assert main(["refine", str(syn), str(by_run), "--run", str(run), "--variants", "2"]) == 0
    assert main(["export", str(run), str(tmp_path / "m.npz")]) == 0
    model = ["--model", str(tmp_path / "m.npz")]
    assert main(["refine", str(syn), str(by_model), *model, "--variants", "2"]) == 0
    names = sorted(p.name for p in by_run.iterdir() if not p.name.startswith("refinekit-"))
    assert len(names) == 8 * 2 + 2 and "img_000_v2.json" in names
    assert all((by_run / n).read_bytes() == (by_model / n).read_bytes() for n in names)
    assert main(["refine", str(syn), str(by_model), *model, "--variants", "2", "--seed", "1"]) == 2
