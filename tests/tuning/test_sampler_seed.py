"""The sampler's seed: a continued study draws new trials, and ``--seed`` repeats a whole study."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from dqnmap_auto.cli import main
from dqnmap_auto.tuning.location import sampler_seeds
from dqnmap_auto.tuning.study import StudyLocation, load_existing
from tests.tuning.helpers import smoke_spec

# Random draws only (no TPE model): a repeated seed would repeat every trial's parameters exactly.
RANDOM = {"name": "random"}
SHORT = {"training": {"total_steps": 300, "log_every": 300}, "agent": {"learning_starts": 100}}


def study_params(spec: Path, project: Path, *extra: str, invocations: int = 2) -> list[dict[str, object]]:
    for _ in range(invocations):
        argv = ["study", "run", str(spec), "--dir", str(project), "--no-tracking", "--no-progress", *extra]
        result = CliRunner().invoke(main, argv)
        assert result.exit_code == 0, result.output
    return [trial.params for trial in load_existing(StudyLocation(None, project), "smoke").get_trials()]


def test_continuing_a_study_draws_new_parameters(tmp_path: Path) -> None:
    spec = smoke_spec(tmp_path, n_trials=2, steps=300, eval_every=300, sampler=RANDOM, base=SHORT)
    params = study_params(spec, tmp_path / "p")
    assert len(params) == 4
    assert params[2] != params[0] and params[3] != params[1]  # the second run does not replay the first
    assert len({tuple(sorted(p.items())) for p in params}) == 4


def test_the_same_seed_repeats_a_whole_study(tmp_path: Path) -> None:
    spec = smoke_spec(tmp_path, n_trials=2, steps=300, eval_every=300, sampler=RANDOM, base=SHORT)
    first = study_params(spec, tmp_path / "a", "--seed", "7")
    again = study_params(spec, tmp_path / "b", "--seed", "7")
    other = study_params(spec, tmp_path / "c", "--seed", "8", invocations=1)
    assert first == again  # both invocations, trial by trial
    assert first[2:] != first[:2]
    assert other != first[:2]


def test_a_seed_in_the_spec_is_a_base_too(tmp_path: Path) -> None:
    spec = smoke_spec(
        tmp_path, n_trials=1, steps=300, eval_every=300, sampler={**RANDOM, "args": {"seed": 3}}, base=SHORT
    )
    params = study_params(spec, tmp_path / "p")
    assert params[0] != params[1]


def test_sampler_seeds_differ_per_worker_and_per_study_state() -> None:
    seeds = sampler_seeds(0, 0, 3)
    assert len(set(seeds)) == 3
    assert sampler_seeds(0, 0, 3) == seeds  # deterministic
    assert set(sampler_seeds(0, 5, 3)).isdisjoint(seeds)
