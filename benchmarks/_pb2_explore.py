"""PB2's explore step where Ray Tune's PB2 skips it (automl_cold.py's arm (d)).

Why: Ray's PB2 (``ray.tune.schedulers.pb2._explore``) fits its GP to the reward changes of every member (a
member's reward change between two of its rows under the same values), but it takes the point it explores from
(the time and reward the new weights start at) from the *base* member's own reward changes. When the base has
none, Ray returns the base's config unchanged and adds nothing to the data. That happens at the first
perturbation (no member has two rows yet), and to a base that was itself copied unchanged: with no new row in
the data, its one row under its new values gives no change at its next report, so the copies cascade. On
CartPole's first population (2026-12-03) 3 of the first 8 exploits were such copies (both of the first round's,
and a copy of one of them): four of the eight members were then the same run, bit for bit (a member's state
includes its RNGs), half of the population's budget spent on one run.

What this does instead: the new values come from the same GP-UCB step (Ray's ``_select_config``), fitted to the
same reward changes, with the base's latest time and reward as the point to explore from; with no reward change
anywhere yet (the first perturbation) the GP has nothing to fit, and its UCB under a flat prior is the same
everywhere, so the values are drawn uniformly within the bounds. Either way the clone's row under its new values
goes into the data, as Ray does when it explores, so that its next report gives a reward change and it can be a
base in turn. Where Ray's PB2 has its base data, its own step runs unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from ray.tune.schedulers.pb2 import PB2, _select_config

N_FIXED = 2  # the GP's context columns ahead of the hyperparameters: time and the reward before the change


def reward_changes(data: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Ray's PB2 training set: per row, the reward change since the same member's row before under the same
    values (``y``, per unit of time), with the reward it started from (``R_before``)."""
    frame = data.sort_values(by="Time").reset_index(drop=True)
    groups = frame.groupby(["Trial", *names])
    frame["y"] = groups["Reward"].diff()
    frame["t_change"] = groups["Time"].diff()
    frame = frame[frame["t_change"] > 0].reset_index(drop=True)
    frame["R_before"] = frame.Reward - frame.y
    frame["y"] = frame.y / frame.t_change
    frame = frame[~frame.y.isna()].sort_values(by="Time").reset_index(drop=True)
    return frame.iloc[-1000:, :].reset_index(drop=True)  # Ray's cap, so the GP stays fast


class ExploringPB2(PB2):
    """Ray Tune's PB2 whose explore step also runs where Ray's would return the base's values unchanged."""

    def __init__(self, *, explore_seed: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._explore_rng = np.random.default_rng(explore_seed)

    def _get_new_config(self, trial: Any, trial_to_clone: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        names = list(self._hyperparam_bounds_flat)
        changes = reward_changes(self.data, names)
        if (changes["Trial"] == str(trial_to_clone)).any():
            return super()._get_new_config(trial, trial_to_clone)
        if self.data["Time"].max() > self.last_exploration_time:
            self.current = None  # a new round: the members placed in the last one are no longer pending
        base = self.data[self.data["Trial"] == str(trial_to_clone)].sort_values(by="Time").iloc[-1]
        bounds = self._hyperparam_bounds_flat
        if changes.empty:
            values = np.array([self._explore_rng.uniform(low, high) for low, high in bounds.values()])
        else:
            inputs = changes[["Time", "R_before", *names]].to_numpy(dtype=float)
            start = np.array([base["Time"], base["Reward"]], dtype=float)
            values = np.asarray(
                _select_config(inputs, changes["y"].to_numpy(dtype=float), self.current, start, bounds, N_FIXED)
            )
        config = dict(trial_to_clone.config)
        chosen_values = {name: type(config[name])(value) for name, value in zip(names, values, strict=True)}
        config.update(chosen_values)  # the data holds the same cast values, so the clone's next row is a change
        entry = {"Trial": str(trial), "Time": base["Time"], **chosen_values, "Reward": base["Reward"]}
        self.data = pd.concat([self.data, pd.DataFrame([entry])]).reset_index(drop=True)
        chosen = values.reshape(1, -1)
        if self.data["Time"].max() > self.last_exploration_time:
            self.last_exploration_time = self.data["Time"].max()
            self.current = chosen.copy()
        else:
            self.current = np.concatenate((self.current, chosen), axis=0)
        return config, {}
