"""Config validation and round-trips."""

import json

import jax.numpy as jnp
import pytest

from refinekit.config import TrainConfig, incompatible_fields, load_config_file
from refinekit.errors import ConfigError


def test_json_round_trip_keeps_every_field():
    config = TrainConfig(
        refiner="resnet",
        synthetic="s",
        real="r",
        out="o",
        size=(16, 24),
        disc_layers=(("conv", 3, 2, 4), ("conv", 1, 1, 2)),
    )
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


@pytest.mark.parametrize(
    "changes, flag",
    [
        ({"batch_size": 5}, "--batch-size"),
        ({"preset": "big"}, "--preset"),
        ({"lambda_reg": -1}, "--lambda-reg"),
        ({"buffer_size": 10, "batch_size": 8}, "--buffer-size"),
        ({"kernel": 4}, "--kernel"),
        ({"psi": "x"}, "--psi"),
    ],
)
def test_invalid_values_name_the_flag(changes, flag):
    with pytest.raises(ConfigError, match=flag):
        TrainConfig(**changes)


def test_unknown_keys_and_wrong_types_in_files(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("steps = 10\nbatch-size = 8\nlambda_reg = 2\n")
    assert load_config_file(path) == {"steps": 10, "batch_size": 8, "lambda_reg": 2}
    with pytest.raises(ConfigError, match="unknown key"):
        TrainConfig.from_dict({"stepz": 3})
    with pytest.raises(ConfigError, match="wrong type"):
        TrainConfig.from_dict({"steps": "ten"})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config_file(bad)


def test_incompatible_fields_lists_run_defining_changes_only():
    a = TrainConfig(refiner="resnet", steps=10)
    assert incompatible_fields(a, a.replace(steps=20, log_every=7)) == []
    assert incompatible_fields(a, a.replace(lambda_reg=2.0)) == ["lambda_reg: 0.5 -> 2.0"]


def test_refiner_learning_rate_switches_after_pretraining_by_the_optimizer_count():
    import optax

    from refinekit.training.optim import make_optimizer, refiner_learning_rate

    same = TrainConfig(refiner="resnet", lr_refiner=5e-5, pretrain_refiner_steps=3)
    assert refiner_learning_rate(same) == 5e-5  # a constant: older optimizer states load
    assert (
        refiner_learning_rate(
            TrainConfig(refiner="resnet", lr_pretrain_refiner=5e-5, lr_refiner=5e-5)
        )
        == 5e-5
    )
    schedule = refiner_learning_rate(
        TrainConfig(
            refiner="resnet", lr_pretrain_refiner=1e-3, lr_refiner=5e-5, pretrain_refiner_steps=3
        )
    )
    assert callable(schedule)
    assert [float(schedule(n)) for n in range(5)] == pytest.approx([1e-3] * 3 + [5e-5] * 2)
    # SGD makes the rate visible in the update itself: -lr x gradient, count by count.
    config = TrainConfig(
        refiner="resnet",
        optimizer="sgd",
        lr_pretrain_refiner=1e-3,
        lr_refiner=5e-5,
        pretrain_refiner_steps=2,
    )
    opt = make_optimizer(config, refiner_learning_rate(config))
    params = {"w": jnp.ones(())}
    state = opt.init(params)
    steps = []
    for _ in range(4):
        updates, state = opt.update({"w": jnp.ones(())}, state, params)
        steps.append(float(updates["w"]))
    assert steps == pytest.approx([-1e-3, -1e-3, -5e-5, -5e-5])
    assert isinstance(opt, optax.GradientTransformation)


def test_saved_runs_without_the_pretraining_settings_load_with_the_earlier_behaviour():
    saved = TrainConfig.from_dict({"steps": 5}, saved=True)
    assert saved.lr_pretrain_refiner is None and saved.lambda_label_pretrain is None
    with pytest.raises(ConfigError, match="--lr-pretrain-refiner"):
        TrainConfig(refiner="resnet", lr_pretrain_refiner=0.0)
    with pytest.raises(ConfigError, match="--lambda-label-pretrain"):
        TrainConfig(refiner="resnet", lambda_label_pretrain=-1.0)
