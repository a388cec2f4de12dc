"""Write small study specs derived from studies/smoke.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SMOKE = Path(__file__).resolve().parents[2] / "studies" / "smoke.yaml"


def smoke_spec(tmp_path: Path, name: str = "smoke", **study_changes: Any) -> Path:
    """smoke.yaml with ``study`` fields replaced (``base`` key: dict merged into the base config)."""
    data = yaml.safe_load(SMOKE.read_text())
    for section, values in study_changes.pop("base", {}).items():
        data.setdefault(section, {}).update(values)
    data["study"].update(study_changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def many_short_trials_spec(tmp_path: Path, n_trials: int) -> Path:
    """Trials of 600 env steps with a median pruner: for counting trials and runs across workers."""
    return smoke_spec(
        tmp_path,
        n_trials=n_trials,
        steps=600,
        eval_every=300,
        pruner={"name": "median", "args": {"n_startup_trials": 2}},
        base={"training": {"total_steps": 600, "log_every": 300}, "agent": {"learning_starts": 100}},
    )


def checkpointed_spec(tmp_path: Path, n_trials: int, steps: int) -> Path:
    """Unpruned trials of ``steps`` env steps, evaluated and checkpointed every 1000: for killing mid-trial."""
    return smoke_spec(
        tmp_path,
        n_trials=n_trials,
        steps=steps,
        eval_every=1000,
        checkpoint_every=1000,
        pruner={"name": "none"},
        base={"training": {"total_steps": steps}},
    )
