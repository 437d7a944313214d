"""Config validation and round-trips."""

import json

import pytest

from refinekit.config import TrainConfig, incompatible_fields, load_config_file
from refinekit.errors import ConfigError


def test_json_round_trip_keeps_every_field():
    config = TrainConfig(
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
    a = TrainConfig(steps=10)
    assert incompatible_fields(a, a.replace(steps=20, log_every=7)) == []
    assert incompatible_fields(a, a.replace(lambda_reg=2.0)) == ["lambda_reg: 0.5 -> 2.0"]
