"""Arm (e) of automl_cold.py: the Lamarckian loop between the two time scales (issue 22).

A finished trial's self-tuned values are what its inner loop learned about the env; the outer loop's sampler
never sees them, only the values the trial started from. Here a good trial hands them on: once a trial
completes in the top half of the study's completed trials, a new trial is enqueued with its params and the
self-tuned ones replaced by where they ended (clipped into the search space); a line of inheritance goes on
only while each child beats its parent. PBT's exploit step without its
random perturbation; TPE then sees the child like any other trial.

Only self-tuned values that are search-space params can be handed on (lr and gamma in rl-zoo3's space; under
v7 gamma is not self-tuned, so a child gets its parent's sampled gamma; Huber delta is not searched, so every child
starts from the env row's). This stays a benchmark arm until it wins
(issue 22: "build it as a study option if it wins").
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from dqnmap_auto.tuning.recovery import RETRY_OF_ATTR

INHERITED_FROM = "inherited_from"


def inherited_from(trial: FrozenTrial, trials: Sequence[FrozenTrial]) -> int | None:
    """The parent of an inherited child, else None. A killed child's retry carries only ``dqnmap.retry_of``
    (the runner's ``enqueue_retry`` copies params, not user attributes), so the link is followed through it;
    else a retried child would pass for a sampler draw and its parent would look childless."""
    seen: set[int] = set()
    while trial.user_attrs.get(INHERITED_FROM) is None:
        retry_of = trial.user_attrs.get(RETRY_OF_ATTR)
        if retry_of is None or retry_of in seen:
            return None
        seen.add(retry_of)
        retried = next((t for t in trials if t.number == retry_of), None)
        if retried is None:
            return None
        trial = retried
    return trial.user_attrs[INHERITED_FROM]


def zoo_inherited_params(hp_final: dict[str, float]) -> dict[str, float]:
    """Self-tuned values as rl-zoo3's sampled coordinates (``study_efficiency.sample_zoo_dqn``)."""
    params = {}
    if "lr" in hp_final:
        params["learning_rate"] = hp_final["lr"]
    if "gamma" in hp_final:
        params["one_minus_gamma"] = 1.0 - hp_final["gamma"]
    return params


def _clipped(value: float, distribution: object) -> float | None:
    """``value`` inside a float or int distribution's range (None for other kinds: not inheritable)."""
    if isinstance(distribution, FloatDistribution | IntDistribution):
        return min(max(value, distribution.low), distribution.high)
    return None


def _improved(child: FrozenTrial, parent: FrozenTrial) -> bool:
    """Whether a child beat its parent: only then does the line go on (else one tie would fill the study)."""
    return parent.value is not None and child.value is not None and child.value > parent.value


@dataclass(frozen=True)
class InheritSelfTuned:
    """Optuna trial callback (``run_study(callbacks=...)``): a COMPLETE trial that self-tuned and whose value is
    at least the median of the study's COMPLETE values gets one child, enqueued with ``inherited_from`` set; a
    child has a child of its own only if it beat its parent (in a smoke run where every trial tied, each trial
    otherwise inherited from the last and TPE never drew again).

    Idempotent across restarts: a parent is recognised by its child's user attribute, so a resumed study never
    enqueues a second child. ``to_params`` maps the trial's ``hp_final`` to search-space params (picklable: a
    module-level function, for worker processes).
    """

    to_params: Callable[[dict[str, float]], dict[str, float]]
    #: The ablation of automl_cold's (f): the child's lr is its parent's starting lr times this factor, not the
    #: lr its inner loop ended at (the rest as above), so a win can be told from "a good draw, at a higher lr".
    lr_factor: float | None = None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state != TrialState.COMPLETE or trial.value is None or not trial.user_attrs.get("tuned"):
            return
        trials = study.get_trials(deepcopy=False)
        values = [t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        if not values or trial.value < statistics.median(values):
            return
        if any(inherited_from(t, trials) == trial.number for t in trials):
            return
        parent = inherited_from(trial, trials)
        if parent is not None and not _improved(trial, trials[parent]):
            return
        child = dict(trial.params)
        inherited = self.to_params(trial.user_attrs.get("hp_final", {}))
        if self.lr_factor is not None and "learning_rate" in trial.params:
            inherited["learning_rate"] = trial.params["learning_rate"] * self.lr_factor
        for name, value in inherited.items():
            clipped = _clipped(value, trial.distributions.get(name))
            if clipped is not None and math.isfinite(clipped):
                child[name] = clipped
        if child != trial.params:
            study.enqueue_trial(child, user_attrs={INHERITED_FROM: trial.number})
