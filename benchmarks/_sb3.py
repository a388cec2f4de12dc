"""Stable-Baselines3 DQN measured exactly like this project's agent.

Why a module of its own: SB3 is an optional dependency (the ``bench`` extra) and a slow import; only the
scripts that compare against it load it. Evaluation goes through ``dqnmap_auto.evaluation.Evaluator`` with the
same episode seeds and counts as the Trainer's, so both implementations are scored on identical episodes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from _common import final_evaluator, outcome, sb3_kwargs
from stable_baselines3 import DQN
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from dqnmap_auto.config import TrainConfig
from dqnmap_auto.evaluation import EvalResult, Evaluator

#: Told each evaluation (env step, result, is it the final one); returns False to stop training (pruning).
EvalHook = Callable[[int, EvalResult, bool], bool]


def greedy_policy(model: BaseAlgorithm) -> Callable[[np.ndarray], np.ndarray]:
    """The deterministic policy of ``model`` on a batch of observations (one per evaluation episode)."""
    return lambda obs: model.predict(obs, deterministic=True)[0]


class FixedSeedEvalCallback(BaseCallback):
    """Every ``every`` env steps, a greedy evaluation on the Trainer's fixed episode seeds.

    The evaluation at the budget uses the final evaluator (20 episodes), like the Trainer's final one, and
    ends training there. ``stopped`` tells whether the hook stopped it (pruning). With
    ``training.stop_at_return``, a periodic evaluation that reaches it ends training like the Trainer does:
    the final evaluator then scores that policy (``solved_at``: the step). ``ended_at`` is the step whose
    evaluation ended training.

    Same policy as the Trainer's at each evaluation: the Trainer trains on a step that completes a
    ``train_freq`` rollout and then evaluates, while SB3 calls ``on_step`` before that rollout's training phase.
    An evaluation due on such a step therefore waits for the next rollout's start (or the end of training),
    when that phase has run. A stop decided there takes effect at the next ``on_step``: SB3 takes one more env
    step, which neither trains nor changes the reported step.
    """

    def __init__(self, config: TrainConfig, *, every: int, hook: EvalHook | None = None) -> None:
        super().__init__()
        training = config.training
        self.every = every
        self.total = training.total_steps
        self.hook = hook
        self.evaluator = Evaluator(config.env, seed=training.seed, n_episodes=training.eval_episodes)
        self.final_evaluator = final_evaluator(config)
        self.history: list[tuple[int, float]] = []
        self.final: EvalResult | None = None
        self.stopped = False
        self.stop_at = training.stop_at_return
        self.solved_at: int | None = None
        self.ended_at: int | None = None
        self.train_freq = 1
        self._due: int | None = None  # an evaluation waiting for the training phase of its rollout
        self._halt = False

    def _on_training_start(self) -> None:
        # The model's own value: a study may sample train_freq (rl-zoo3's space), overriding the config.
        self.train_freq = max(int(self.model.train_freq.frequency), 1)  # type: ignore[attr-defined]

    def _on_step(self) -> bool:
        if self._halt:
            return False
        step = self.num_timesteps
        is_final = step >= self.total
        if not is_final and (self.every <= 0 or step % self.every):
            return True
        if step % self.train_freq == 0:  # SB3 trains on this rollout after on_step: evaluate after that
            self._due = step
            return True  # at the budget, learn() trains and then ends: _on_training_end evaluates
        return self._evaluate(step, is_final)  # mid-rollout: no training phase in between

    def _on_rollout_start(self) -> None:
        if self._due is not None:
            step, self._due = self._due, None
            self._halt = not self._evaluate(step, step >= self.total)

    def _evaluate(self, step: int, is_final: bool) -> bool:
        """Evaluate the current policy as of ``step``; False ends training."""
        result = (self.final_evaluator if is_final else self.evaluator)(greedy_policy(self.model))
        self.history.append((step, result.mean))
        if is_final:
            self.final = result
        keep_going = self.hook is None or self.hook(step, result, is_final)
        self.stopped = not keep_going
        if keep_going and not is_final and self.stop_at is not None and result.mean >= self.stop_at:
            self.solved_at = step
            self.final = self.final_evaluator(greedy_policy(self.model))
            self.history.append((step, self.final.mean))
            keep_going = False
        if not keep_going or is_final:
            self.ended_at = step
        # SB3 collects whole train_freq rollouts and could overshoot the budget: stop exactly at it, after the
        # same number of training phases as the Trainer, and with the model that was just evaluated.
        return keep_going and not is_final

    def _on_training_end(self) -> None:
        if self._due is not None:  # the budget ended a rollout: its training phase has run
            step, self._due = self._due, None
            self._evaluate(step, step >= self.total)

    def close(self) -> None:
        """Release the evaluation envs (also when training raised, e.g. NaN losses in a study's trial)."""
        self.evaluator.close()
        self.final_evaluator.close()


def train_sb3(
    config: TrainConfig, *, kwargs: dict[str, Any] | None = None, hook: EvalHook | None = None
) -> tuple[dict[str, Any], FixedSeedEvalCallback]:
    """Train SB3 DQN with ``config``'s settings (``kwargs`` override them) and record it like a Trainer run.

    Returns the outcome fields and the callback (its ``stopped`` flag says whether ``hook`` stopped it).
    """
    arguments = {**sb3_kwargs(config), **(kwargs or {})}
    started = time.perf_counter()
    env = gym.make(config.env.id, **config.env.kwargs)
    model = DQN("MlpPolicy", env, **arguments)
    callback = FixedSeedEvalCallback(config, every=config.training.eval_every, hook=hook)
    try:
        model.learn(total_timesteps=config.training.total_steps, callback=callback)
    finally:
        env.close()
        callback.close()
    hp = {
        "lr": float(arguments["learning_rate"]),
        "gamma": float(arguments["gamma"]),
        "huber_delta": 1.0,  # SB3's smooth L1 loss
        "tau": float(arguments["tau"]),
    }
    result = outcome(
        config,
        final=callback.final,
        steps=callback.ended_at if callback.ended_at is not None else int(model.num_timesteps),
        seconds=time.perf_counter() - started,
        hp_initial=hp,
        hp_final=hp,
        eval_history=callback.history,
        solved_at=callback.solved_at,
    )
    result["tuned"] = []
    return result, callback


def run_sb3(config: TrainConfig) -> dict[str, Any]:
    """A full SB3 run with ``config``'s settings (the pool's task function)."""
    result, _ = train_sb3(config)
    return result
