"""Study spec validation: every error names the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dqnmap_auto.errors import ConfigError
from dqnmap_auto.tuning.spec import build_pruner, load_study_spec
from tests.tuning.helpers import SMOKE, smoke_spec


def test_smoke_and_shipped_specs_load() -> None:
    for path in sorted(SMOKE.parent.glob("*.yaml")):
        spec = load_study_spec(path)
        assert spec.study.search_space, path
    spec = load_study_spec(SMOKE)
    config = spec.trial_config({"agent.lr": 0.005, "self_tuning.mode": "hd"}, seed=7)
    assert (config.agent.lr, config.self_tuning.mode, config.training.seed) == (0.005, "hd", 7)
    assert config.training.eval_every == spec.study.eval_every


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"search_space": {"agent.lrr": {"type": "float", "low": 0.1, "high": 1}}}, "study.search_space.agent.lrr"),
        ({"search_space": {"agent.lr": {"type": "float", "low": 1, "high": 0.1}}}, "need low < high"),
        ({"search_space": {"agent.lr": {"type": "float", "low": 0, "high": 1, "log": True}}}, "log scale needs"),
        ({"search_space": {"agent.lr": {"type": "uniform", "low": 0, "high": 1}}}, "study.search_space.agent.lr"),
        ({"search_space": {"agent.batch_size": {"type": "categorical", "choices": [32, "big"]}}}, "'big' is invalid"),
        ({"search_space": {"agent.gamma": {"type": "float", "low": 0.5, "high": 1.5}}}, "value 1.5 is invalid"),
        ({"sampler": {"name": "bayes"}}, "study.sampler.name"),
        ({"pruner": {"name": "early"}}, "study.pruner.name"),
        ({"pruner": {"name": "median", "args": {"patience": 3}}}, "unknown argument(s) ['patience']"),
        ({"pruner": {"name": "median", "wraps": {"name": "median"}}}, "'wraps' is for the patient pruner"),
        ({"sampler": {"name": "tpe", "args": {"n_startup_trials": "many"}}}, "study.sampler.args"),
        ({"n_trials": 0}, "study.n_trials"),
        ({"steps": -5}, "study.steps"),
        ({"seeds": 0}, "study.seeds"),
        ({"objective": "median"}, "study.objective"),
        ({"env": "NoSuchEnv-v0"}, "unknown gymnasium environment"),
        ({"budget": 5}, "study.budget: unknown field"),
        ({"enqueue": [{"agent.gamma": 0.9}]}, "study.enqueue.0"),
    ],
)
def test_bad_specs_name_the_field(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_study_spec(smoke_spec(tmp_path, **changes))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_patient_pruner_wraps_another() -> None:
    from dqnmap_auto.tuning.spec import PrunerSpec

    pruner = build_pruner(PrunerSpec(name="patient", args={"patience": 2}, wraps=PrunerSpec(name="median")))
    assert type(pruner).__name__ == "PatientPruner"


@pytest.mark.parametrize("name", ["acrobot", "cartpole", "lunarlander", "mountaincar", "smoke"])
def test_every_shipped_spec_trains_a_few_steps(name: str) -> None:
    """Each spec's first trial configuration runs (shortened), so a spec cannot rot unnoticed."""
    from dqnmap_auto.trainer import train

    spec = load_study_spec(SMOKE.parent / f"{name}.yaml")
    params = spec.study.enqueue[0] if spec.study.enqueue else {}
    config = spec.trial_config(params, seed=0)
    config.training.total_steps = 400
    config.training.eval_every = 200
    config.training.eval_episodes = 1
    config.training.final_eval_episodes = 1
    config.agent.learning_starts = min(config.agent.learning_starts, 100)
    config.agent.net_arch = [16]
    config.env.kwargs = {"max_episode_steps": 50}  # evaluation episodes stay short
    result = train(config)
    assert result.steps == 400
