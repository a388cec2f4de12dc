"""Config loading, validation messages that name the field, and --set overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from dqnmap_auto.config import (
    SelfTuningConfig,
    TrainConfig,
    apply_overrides,
    dump_config,
    load_train_config,
    read_yaml_mapping,
)
from dqnmap_auto.errors import ConfigError

STUDIES = Path(__file__).resolve().parent.parent / "studies"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_cartpole_spec_loads_with_rl_zoo_settings() -> None:
    config = load_train_config(STUDIES / "cartpole.yaml")
    assert config.env.id == "CartPole-v1"
    assert (config.agent.lr, config.agent.train_freq, config.agent.gradient_steps) == (2.3e-3, 256, 128)
    # issue 19: no per-env self-tuning settings in a benchmark env's spec, the config's defaults run
    assert config.self_tuning == SelfTuningConfig()
    assert config.self_tuning.tuned() == ["lr", "huber_delta"]  # v7: gamma is the outer loop's


@pytest.mark.parametrize("name", ["cartpole", "acrobot", "mountaincar", "lunarlander"])
def test_benchmark_env_specs_carry_no_self_tuning_section(name: str) -> None:
    assert "self_tuning" not in read_yaml_mapping(STUDIES / f"{name}.yaml")


def test_tau_cannot_self_tune_under_the_held_lookahead() -> None:
    with pytest.raises(ConfigError, match="tau self-tunes only with lookahead_target: polyak"):
        load_train_config(STUDIES / "cartpole.yaml", overrides=["self_tuning.params=[lr, tau]"])
    polyak = ["self_tuning.params=[lr, tau]", "self_tuning.lookahead_target=polyak"]
    assert load_train_config(STUDIES / "cartpole.yaml", overrides=polyak).self_tuning.tuned() == ["lr", "tau"]
    hd = ["self_tuning.params=[lr, tau]", "self_tuning.mode=hd"]  # hd tunes lr only: tau is simply not tuned
    assert load_train_config(STUDIES / "cartpole.yaml", overrides=hd).self_tuning.tuned() == ["lr"]


def test_dump_round_trips(tmp_path: Path) -> None:
    config = load_train_config(STUDIES / "cartpole.yaml", overrides=["agent.lr=1e-4", "self_tuning.mode=hd"])
    again = load_train_config(write(tmp_path, dump_config(config)))
    assert again == config


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["agent.lr=5e-4"], ("agent", "lr", 5e-4)),
        (["training.total_steps=1234"], ("training", "total_steps", 1234)),
        (["self_tuning.params=[lr, gamma]"], ("self_tuning", "params", ["lr", "gamma"])),
        (["self_tuning.enabled=false"], ("self_tuning", "enabled", False)),
        (["env.kwargs.max_episode_steps=50"], ("env", "kwargs", {"max_episode_steps": 50})),
    ],
)
def test_set_overrides_reach_the_field(overrides: list[str], expected: tuple[str, str, object]) -> None:
    config = load_train_config(STUDIES / "cartpole.yaml", overrides=overrides)
    section, field, value = expected
    assert getattr(getattr(config, section), field) == value


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["agent.lrr=1"], "unknown field 'agent.lrr'"),
        (["nope.x=1"], "unknown field 'nope'"),
        (["agent=1"], "is a section"),
        (["agent.lr"], "expected key=value"),
        (["agent.lr=-1"], "agent.lr: Input should be greater than 0"),
        (["agent.gamma=1.5"], "agent.gamma"),
        (["agent.batch_size=abc"], "agent.batch_size"),
        (["self_tuning.mode=sgd"], "self_tuning.mode"),
        (["self_tuning.params=[lr, momentum]"], "unknown hyperparameter(s) ['momentum']"),
        (["self_tuning.bounds.lr={low: 1, high: 0.1}"], "need finite low < high"),
        (["training.total_steps=0"], "training.total_steps"),
        (["agent.net_arch=[]"], "agent.net_arch"),
        (["agent.lr_decay=cosine"], "agent.lr_decay"),
        (["training.stop_at_return=475", "training.eval_every=0"], "stop_at_return needs periodic evaluations"),
        (["training.stop_at_return=nan"], "stop_at_return must be finite"),
    ],
)
def test_bad_values_name_the_field(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_train_config(STUDIES / "cartpole.yaml", overrides=overrides)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "file is empty"),
        ("env: [unclosed", "invalid YAML"),
        ("- a\n- b\n", "expected a mapping"),
        ("agent:\n  learning_rate: 0.1\n", "agent.learning_rate: unknown field"),
        ("training:\n  total_steps: -5\n", "training.total_steps"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_train_config(write(tmp_path, text))
    assert message in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_train_config(tmp_path / "nope.yaml")


def test_study_section_is_not_part_of_the_train_config(tmp_path: Path) -> None:
    config = load_train_config(write(tmp_path, "study:\n  n_trials: 3\nagent:\n  lr: 0.01\n"))
    assert config.agent.lr == 0.01


def test_overrides_do_not_mutate_input() -> None:
    data = {"agent": {"lr": 1.0}}
    apply_overrides(data, ["agent.lr=2"])
    assert data == {"agent": {"lr": 1.0}}


def test_hd_mode_tunes_only_lr() -> None:
    config = TrainConfig()
    config.self_tuning.mode = "hd"
    assert config.self_tuning.tuned() == ["lr"]
    config.self_tuning.enabled = False
    assert config.self_tuning.tuned() == []
