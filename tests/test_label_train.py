"""Label-aware training end to end: class subfolders on, the frozen classifier in the state and
the checkpoints, --lambda-label 0, the projection discriminator, compile counts."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import TINY, write_images
from refinekit import TrainConfig
from refinekit.cli import main
from refinekit.training import checkpoint
from refinekit.training.loop import train
from refinekit.training.state import make_mesh
from refinekit.training.steps import StepFunctions

pytestmark = pytest.mark.slow  # end-to-end training runs

SHORT = ["--pretrain-refiner-steps", "6", "--pretrain-disc-steps", "4", "--classifier-steps", "8"]


@pytest.fixture
def classes16(tmp_path):
    """16x16 gray synthetic and real sets, each in two class subfolders (a, b)."""
    for name, smooth, seed in (("syn", True, 0), ("real", False, 1)):
        for i, cls in enumerate(("a", "b")):
            write_images(tmp_path / name / cls, 10, (16, 16), seed * 10 + i, smooth=smooth)
    return tmp_path / "syn", tmp_path / "real"


def _args(syn, real, out, steps, *extra):
    return [
        "train",
        *("--synthetic", str(syn), "--real", str(real), "--out", str(out)),
        *("--steps", str(steps)),
        *TINY,
        *SHORT,
        *extra,
    ]


def _state_at(run, step):
    config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    fns = StepFunctions(config, (*config.size, config.channels), make_mesh())
    return fns, jax.device_get(checkpoint.restore(run, step, fns.init_state()))


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_class_subfolders_turn_the_label_loss_on_and_the_classifier_stays_frozen(
    classes16, tmp_path, capsys
):
    syn, real = classes16
    run = tmp_path / "run"
    assert main(_args(syn, real, run, 10)) == 0
    err = capsys.readouterr().err
    assert "label loss on: 2 class subfolders" in err
    assert "class-conditional discriminator on" in err and "content loss l1" in err
    assert "label classifier trained (8 steps, 2 classes)" in err
    config = json.loads((run / "config.json").read_text())
    assert config["extra"]["classes"] == ["a", "b"] and config["extra"]["real_classes"]
    records = _metrics(run)
    adversarial = [r for r in records if r["phase"] == "adversarial"]
    assert adversarial and all(np.isfinite(r["label_loss"]) for r in adversarial)
    assert all(0 <= r["label_accuracy"] <= 1 for r in adversarial)

    fns, at10 = _state_at(run, 10)
    _, at20 = _state_at(run, 20)
    classifier = at20.extras["classifier"]
    # frozen: identical after 10 more refiner/discriminator steps
    jax.tree.map(np.testing.assert_array_equal, at10.extras["classifier"], classifier)
    # and it is the trained classifier, not the initial one
    init = jax.device_get(fns.label_terms.classifier.init_params)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(init), jax.tree.leaves(classifier), strict=True)
    )
    # the projection discriminator's embedding is trained (it starts at zero)
    assert np.abs(np.asarray(at20.disc["embed"][...])).max() > 0

    # resume: the classifier comes from the checkpoint (no second classifier phase)
    assert main(_args(syn, real, run, 14)) == 0
    err = capsys.readouterr().err
    assert "label classifier trained" not in err and "resuming from step 20" in err
    _, at24 = _state_at(run, 24)
    jax.tree.map(np.testing.assert_array_equal, classifier, at24.extras["classifier"])


def test_lambda_label_zero_turns_it_off_and_flat_real_is_unconditional(classes16, tmp_path, capsys):
    syn, _ = classes16
    flat_real = write_images(tmp_path / "flat", 12, (16, 16), 5, smooth=False)
    run = tmp_path / "off"
    assert main(_args(syn, flat_real, run, 6, "--lambda-label", "0")) == 0
    err = capsys.readouterr().err
    assert "label loss off (--lambda-label 0) although 2 classes were found" in err
    assert "class-conditional discriminator off" in err
    assert "label classifier trained" not in err
    assert all("label_loss" not in r for r in _metrics(run))
    _, state = _state_at(run, 16)
    assert state.extras == {} and "embed" not in state.disc


def test_class_conditional_on_needs_class_folders_in_real(classes16, tmp_path, capsys):
    syn, _ = classes16
    flat_real = write_images(tmp_path / "flat", 12, (16, 16), 5, smooth=False)
    code = main(_args(syn, flat_real, tmp_path / "x", 4, "--class-conditional", "on"))
    err = capsys.readouterr().err
    assert code == 2 and "--class-conditional on" in err and "Traceback" not in err


def test_label_and_nce_steps_compile_once(classes16, tmp_path):
    syn, real = classes16
    config = TrainConfig(
        refiner="resnet",
        synthetic=str(syn),
        real=str(real),
        out=str(tmp_path / "lib"),
        preset="tiny",
        batch_size=4,
        steps=6,
        pretrain_refiner_steps=4,
        pretrain_disc_steps=2,
        classifier_steps=5,
        content="nce",
        log_every=2,
        checkpoint_every=100,
        sample_every=100,
    )
    result = train(config)
    assert result.step == 12
    for name in ("pretrain_refiner", "pretrain_disc", "adversarial"):
        assert result.trace_counts[name] == 1, result.trace_counts
    records = [r for r in _metrics(tmp_path / "lib") if r["phase"] == "adversarial"]
    assert all(np.isfinite(r["nce"]) and r["nce"] > 0 for r in records)


def test_structure_content_trains_from_the_cli_and_logs_its_loss(classes16, tmp_path):
    syn, real = classes16
    run = tmp_path / "structure"
    args = _args(syn, real, run, 4, "--content", "structure", "--lambda-structure", "2")
    assert main(args) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["content"] == "structure" and config["lambda_structure"] == 2.0
    records = [r for r in _metrics(run) if r["phase"] == "adversarial"]
    assert records and all(np.isfinite(r["structure"]) and r["structure"] >= 0 for r in records)


def test_refiner_extra_loss_is_lambda_times_the_classifier_cross_entropy():
    config = TrainConfig(
        refiner="resnet",
        preset="tiny",
        lambda_label=2.5,
        label_target="class",
        extra={"classes": ["a", "b", "c"], "real_classes": False},
    )
    fns = StepFunctions(config, (16, 16, 1), make_mesh())
    state = fns.init_state()
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 1)), jnp.float32)
    y = jnp.array([0, 1, 2, -1])
    key = jax.random.key(3)
    refined = fns._apply_refiner(state.refiner, x)
    loss, metrics = fns.refiner_extra_loss(state, state.refiner, refined, x, y, key, True)
    ce, _ = fns.label_terms.classifier.label_loss(
        state.extras["classifier"], refined, y, jax.random.fold_in(key, 11)
    )
    np.testing.assert_allclose(float(loss), 2.5 * float(ce), rtol=1e-6)
    np.testing.assert_allclose(float(metrics["label_loss"]), float(ce), rtol=1e-6)
    kl_fns = StepFunctions(config.replace(label_target="prediction"), (16, 16, 1), make_mesh())
    kl_loss, _ = kl_fns.refiner_extra_loss(state, state.refiner, refined, x, y, key, True)
    kl, _ = fns.label_terms.classifier.label_loss(
        state.extras["classifier"], refined, y, jax.random.fold_in(key, 11), synthetic=x
    )
    np.testing.assert_allclose(float(kl_loss), 2.5 * float(kl), rtol=1e-6)
    assert abs(float(kl) - float(ce)) > 1e-3  # the two targets differ
    off = StepFunctions(config.replace(lambda_label=0.0), (16, 16, 1), make_mesh())
    loss_off, metrics_off = off.refiner_extra_loss(state, state.refiner, refined, x, y, key, True)
    assert float(loss_off) == 0.0 and metrics_off == {}


def test_a_classifier_too_weak_to_trust_turns_the_label_loss_off_and_resume_agrees(
    tmp_path, capsys
):
    # The same ten images in both class folders: no classifier can beat 50%, so its gradient
    # would only repaint images. The label loss must go off, and the refiner then learns
    # exactly what it learns with --lambda-label 0.
    write_images(tmp_path / "syn" / "a", 10, (16, 16), 0, smooth=True)
    write_images(tmp_path / "syn" / "b", 10, (16, 16), 0, smooth=True)
    flat_real = write_images(tmp_path / "real", 12, (16, 16), 5, smooth=False)
    syn = tmp_path / "syn"
    run, reference = tmp_path / "gated", tmp_path / "off"
    assert main(_args(syn, flat_real, run, 6)) == 0
    err = capsys.readouterr().err
    assert "label classifier trained (8 steps, 2 classes)" in err
    assert "training it again for 32 steps" in err
    assert "label classifier trained (32 steps, 2 classes)" in err
    assert "label loss off: the label classifier puts only" in err and "needs 90%" in err
    assert main(_args(syn, flat_real, reference, 6, "--lambda-label", "0")) == 0
    capsys.readouterr()
    _, gated = _state_at(run, 16)
    config = TrainConfig.from_dict(json.loads((reference / "config.json").read_text()))
    fns = StepFunctions(config, (*config.size, config.channels), make_mesh())
    off = jax.device_get(checkpoint.restore(reference, 16, fns.init_state()))
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6), gated.refiner, off.refiner
    )
    # resume measures the restored classifier again and keeps the loss off, saying so
    assert main(_args(syn, flat_real, run, 8)) == 0
    err = capsys.readouterr().err
    assert "resuming from step 16" in err and "label loss off: the label classifier" in err
    assert "label classifier trained" not in err
