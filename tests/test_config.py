"""seqvae.config: each way a config is made (in Python, from_dict, replace) is checked the same way."""

import json
import re

import pytest

from seqvae.config import PRESETS, ConfigError, ModelConfig, RunConfig, TrainConfig, preset


@pytest.mark.parametrize("model, train, msg", [
    ({}, {"kl_ratio": 0.0, "kl_schedule": "cyclical"}, "kl_ratio must be in (0, 1]"),
    ({}, {"kl_schedule": "wavy"}, "kl_schedule must be"),
    ({}, {"free_bits": float("nan")}, "free_bits must be a finite number"),
    ({}, {"lr": "1e-3"}, "TrainConfig.lr: expected float, got '1e-3'"),
    ({}, {"max_steps": True}, "TrainConfig.max_steps: expected int, got True"),
    ({"latent_dim": 2.5}, {}, "ModelConfig.latent_dim: expected int, got 2.5"),
    ({"hidden_dim": 0}, {}, "model.hidden_dim must be >= 1"),
])
def test_a_run_config_built_in_python_checks_its_sections(model, train, msg):
    """RunConfig(model=ModelConfig(...), train=TrainConfig(...)), as train.py's docstring builds one, checked only
    the sections' pairing: kl_ratio 0 trained into a ZeroDivisionError (and 'wavy' into a ValueError) after the
    run dir was made. from_dict and replace check the same (replace checked no types: latent_dim 2.5 passed)."""
    with pytest.raises(ConfigError, match=re.escape(msg)):
        RunConfig(model=ModelConfig(**model), train=TrainConfig(**train))
    section, changes = ("model", model) if model else ("train", train)
    cls = ModelConfig if section == "model" else TrainConfig
    for make in (lambda: cls.from_dict(changes), lambda: cls().replace(**changes)):
        with pytest.raises(ConfigError):
            make()
    with pytest.raises(ConfigError, match="RunConfig.train: expected a TrainConfig"):
        RunConfig(train={"lr": 1e-3})


def test_presets_and_saved_configs_round_trip_through_json():
    for name in PRESETS:
        cfg = preset(name)
        assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
        for section in ("model", "train"):  # every preset value is the config's, none dropped or renamed
            assert {k: getattr(getattr(cfg, section), k) for k in PRESETS[name].get(section, {})} == \
                PRESETS[name].get(section, {})
