"""`study status` rows and `study enqueue` values, on studies made without training (no trial runs here)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from dqnmap_auto.errors import ConfigError
from dqnmap_auto.tuning.location import StudyLocation, create_or_continue
from dqnmap_auto.tuning.manage import enqueue, trial_rows
from dqnmap_auto.tuning.spec import load_study_spec
from tests.tuning.helpers import smoke_spec

SPACE = {
    "agent.lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
    "agent.batch_size": {"type": "int", "low": 16, "high": 64, "step": 16},
    "self_tuning.mode": {"type": "categorical", "choices": ["hd", "meta"]},
    "self_tuning.meta_lr": {"type": "float", "low": 1.0e-3, "high": 0.1, "log": True},
}


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    spec = load_study_spec(smoke_spec(tmp_path, search_space=SPACE))
    return create_or_continue(spec, StudyLocation(None, tmp_path / "p"))


def test_status_shows_only_the_settings_a_trial_uses_and_a_waiting_trials_params(study: optuna.Study) -> None:
    distributions = {
        "agent.lr": FloatDistribution(1e-4, 1e-2, log=True),
        "self_tuning.mode": CategoricalDistribution(["hd", "meta"]),
        "self_tuning.meta_lr": FloatDistribution(1e-3, 0.1, log=True),
    }
    for mode in ("hd", "meta"):
        params = {"agent.lr": 1e-3, "self_tuning.mode": mode, "self_tuning.meta_lr": 0.01}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=1.0))
    enqueue(study, ["agent.lr=0.002", "self_tuning.mode=meta"])
    hd, meta, waiting = trial_rows(study)
    assert hd["params"] == {"agent.lr": 1e-3, "self_tuning.mode": "hd"}  # meta_lr does nothing in hd mode
    assert meta["params"] == {"agent.lr": 1e-3, "self_tuning.mode": "meta", "self_tuning.meta_lr": 0.01}
    assert waiting["state"] == "WAITING"
    assert waiting["params"] == {"agent.lr": 0.002, "self_tuning.mode": "meta"}


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("agent.lr=5", "agent.lr=5: outside the search space [0.0001, 0.01]"),
        ("agent.lr=0", "outside the search space"),
        ("agent.lr=true", "expected a number"),
        ("agent.batch_size=24", "agent.batch_size=24: not on the search space's grid (low 16, step 16)"),
        ("agent.batch_size=32.5", "expected an integer"),
        ("agent.batch_size=128", "outside the search space [16, 64]"),
        ("self_tuning.mode=sgd", "self_tuning.mode='sgd': not one of the search space's choices ['hd', 'meta']"),
    ],
)
def test_enqueue_refuses_values_outside_the_space(study: optuna.Study, assignment: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        enqueue(study, [assignment])
    assert message in str(raised.value)
    assert study.get_trials() == []


def test_enqueue_accepts_values_inside_the_space(study: optuna.Study) -> None:
    assert enqueue(study, ["agent.lr=1e-2", "agent.batch_size=48", "self_tuning.mode=hd"]) == {
        "agent.lr": 0.01,
        "agent.batch_size": 48,
        "self_tuning.mode": "hd",
    }
    (waiting,) = study.get_trials()
    assert waiting.state == optuna.trial.TrialState.WAITING
