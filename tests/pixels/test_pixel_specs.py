"""The pixel study specs: they validate, bad CNN search spaces fail at load time, a CNN study runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from dqnmap_auto.errors import ConfigError
from dqnmap_auto.tuning.spec import load_study_spec
from dqnmap_auto.tuning.study import StudyLocation, load_existing, run_study

STUDIES = Path(__file__).resolve().parents[2] / "studies"


def derived_spec(tmp_path: Path, source: str, *, base: dict[str, dict] | None = None, **study: Any) -> Path:
    """A copy of ``studies/<source>`` with base sections merged and ``study`` fields replaced."""
    data = yaml.safe_load((STUDIES / source).read_text())
    for section, values in (base or {}).items():
        data.setdefault(section, {}).update(values)
    data["study"].update(study)
    path = tmp_path / f"derived-{source}"
    path.write_text(yaml.safe_dump(data))
    return path


def test_pixel_specs_validate() -> None:
    minatar = load_study_spec(STUDIES / "minatar-breakout.yaml")
    assert minatar.base.self_tuning.enabled and minatar.base.self_tuning.mode == "hd"
    assert any(path.startswith("agent.cnn.") for path in minatar.study.search_space)
    pong = load_study_spec(STUDIES / "atari-pong.yaml")
    agent = pong.base.agent
    assert (agent.lr, agent.buffer_size, agent.learning_starts) == (1e-4, 100_000, 100_000)
    assert agent.target_update_interval == 1000
    assert (agent.train_freq, agent.exploration_fraction, agent.exploration_final_eps) == (4, 0.1, 0.01)
    assert pong.base.training.total_steps == 10_000_000 and agent.network == "nature_cnn"


@pytest.mark.parametrize(
    ("search_space", "message"),
    [
        ({"agent.cnn.channels": {"type": "categorical", "choices": ["16", "16,32"]}}, "one entry per conv layer"),
        ({"agent.network": {"type": "categorical", "choices": ["minatar_cnn", "nature_cnn"]}}, "does not fit"),
        ({"agent.cnn.kernels": {"type": "categorical", "choices": ["3", "11"]}}, "does not fit"),
    ],
)
def test_cnn_search_spaces_that_cannot_work_fail_at_load(tmp_path: Path, search_space: dict, message: str) -> None:
    path = derived_spec(tmp_path, "minatar-breakout.yaml", search_space=search_space)
    with pytest.raises(ConfigError, match=message) as error:
        load_study_spec(path)
    assert str(error.value).startswith("study.search_space") and "\n" not in str(error.value)


def test_a_study_over_cnn_settings_runs(tmp_path: Path) -> None:
    path = derived_spec(
        tmp_path,
        "minatar-breakout.yaml",
        base={
            "env": {"kwargs": {"max_episode_steps": 200}},
            "agent": {"learning_starts": 100, "buffer_size": 2000, "batch_size": 16},
            "training": {"log_every": 200, "final_eval_episodes": 1},
        },
        n_trials=2,
        steps=400,
        eval_every=200,
        eval_episodes=1,
        pruner={"name": "none"},
        search_space={
            "agent.cnn.channels": {"type": "categorical", "choices": ["4", "8"]},
            "agent.cnn.hidden": {"type": "categorical", "choices": [16, 32]},
            "self_tuning.mode": {"type": "categorical", "choices": ["hd", "meta"]},
        },
    )
    spec = load_study_spec(path)
    location = StudyLocation(storage=None, directory=tmp_path / "project")
    run_study(spec, location, progress=False, tracking=False)
    trials = load_existing(location, spec.name).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert all(sorted(t.intermediate_values) == [200, 400] for t in trials)
    assert all(t.params["agent.cnn.channels"] in ("4", "8") for t in trials)
