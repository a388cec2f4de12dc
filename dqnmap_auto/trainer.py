"""The training loop: act, store, learn (with self-tuning), evaluate; every figure leaves as a record.

The Trainer knows nothing about Optuna or MLflow: they are callbacks (see ``dqnmap_auto.callbacks``). Its
schedule follows Stable-Baselines3's DQN so that rl-zoo3's settings mean the same here: ``train_freq`` counts
vector-env steps, ``gradient_steps`` gradient steps per training phase, ``target_update_interval`` env steps
(divided by the number of envs), and learning starts once more than ``learning_starts`` env steps are done.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dqnmap_auto.agent.build import build_replay, is_image
from dqnmap_auto.agent.dqn import DQNAgent
from dqnmap_auto.agent.replay import Batch, Replay
from dqnmap_auto.callbacks import Callback, Record
from dqnmap_auto.checkpoint import load as load_checkpoint
from dqnmap_auto.checkpoint import save_atomic
from dqnmap_auto.config import TrainConfig
from dqnmap_auto.envs import final_observations, make_train_envs
from dqnmap_auto.errors import DivergenceError
from dqnmap_auto.evaluation import EvalResult, Evaluator
from dqnmap_auto.exploration import EpsilonControl
from dqnmap_auto.hypergrad.build import build_tuner
from dqnmap_auto.pixel_envs import frames_per_observation

#: Size of the fixed probe set of states used for the policy-convergence figure.
PROBE_STATES = 256


@dataclass
class TrainResult:
    final_eval: EvalResult
    steps: int
    hyperparams: dict[str, float]
    initial_hyperparams: dict[str, float]
    stopped_early: bool = False
    solved_at: int | None = None
    eval_history: list[tuple[int, float]] = field(default_factory=list)
    stop_requested_at: int | None = None  # a live-control `stop` ended the run at this step


def next_multiple(step: int, every: int) -> int:
    """The first multiple of ``every`` strictly after ``step``."""
    return (step // every + 1) * every


def resolve_device(name: str) -> torch.device:
    """``auto`` means CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from dqnmap_auto.errors import ConfigError

        raise ConfigError("agent.device: cuda requested but no CUDA device is available")
    return torch.device(name)


def linear_epsilon(step: int, *, total_steps: int, fraction: float, initial: float, final: float) -> float:
    """Epsilon decays linearly from ``initial`` to ``final`` over the first ``fraction`` of the run."""
    decay_steps = fraction * total_steps
    if decay_steps <= 0:
        return final
    return initial + (final - initial) * min(1.0, step / decay_steps)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, torch (network init) and return the numpy generator for replay and exploration."""
    random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


class Trainer:
    """One DQN learner on one env, with its tuner, replay memory and evaluator.

    Args:
        config: the validated train config.
        callbacks: record consumers (progress bar, JSONL, Optuna reporter, MLflow tracker, ...).
        use_schedule: replay ``config.schedule`` instead of self-tuning.
        checkpoint_path: where to save a checkpoint every ``training.checkpoint_every`` env steps.
    """

    def __init__(
        self,
        config: TrainConfig,
        callbacks: Sequence[Callback] = (),
        *,
        use_schedule: bool = False,
        checkpoint_path: str | Path | None = None,
    ) -> None:
        self.config = config
        self.callbacks = list(callbacks)
        training = config.training
        torch.set_num_threads(training.torch_threads)
        # Adam's second moments and late-training gradients reach denormal floats, which the CPU handles
        # ~10x slower; flushing them to zero (they are < 1e-38) made gradient steps ~30% faster here.
        torch.set_flush_denormal(True)
        self.device = resolve_device(config.agent.device)
        self.rng = seed_everything(training.seed)
        self.envs = make_train_envs(config.env, training.seed)
        self.evaluator = Evaluator(config.env, seed=training.seed, n_episodes=training.eval_episodes)
        self.final_evaluator = Evaluator(config.env, seed=training.seed, n_episodes=training.final_eval_episodes)
        obs_space = self.envs.single_observation_space
        obs_shape = tuple(obs_space.shape or ())
        n_actions = int(self.envs.single_action_space.n)  # type: ignore[attr-defined]
        pixels = is_image(obs_space)
        self.agent = DQNAgent(obs_shape, n_actions, config.agent, device=self.device, pixels=pixels)
        self.replay: Replay = build_replay(
            config.agent.buffer_size,
            obs_space,
            n_envs=config.env.n_envs,
            frame_stack=frames_per_observation(config.env),
        )
        self.tuner = build_tuner(config, self.agent, use_schedule=use_schedule)
        self.initial_hyperparams = self.tuner.space.current()
        self.step = 0
        self.vector_steps = 0
        self.eval_history: list[tuple[int, float]] = []
        self._stop = False
        self.solved_at: int | None = None
        self._last_eval: EvalResult | None = None
        self._probe_obs: np.ndarray | None = None
        self._probe_actions: np.ndarray | None = None
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.resumed_from_step: int | None = None
        self._at_bound_since: dict[str, int] = {}
        self.exploration = EpsilonControl()  # what live control did to epsilon (nothing by default)
        self.stop_requested_at: int | None = None
        self._phase_hooks: list[Callback] = []

    # -- schedule ---------------------------------------------------------------------------------------
    @property
    def n_envs(self) -> int:
        return self.config.env.n_envs

    def epsilon(self) -> float:
        """1 before ``learning_starts`` (the network is untrained: uniform random actions, as in SB3, and no
        forward pass), then the linear schedule, which counts from step 0 as SB3's does."""
        agent = self.config.agent
        if self.exploration.active:
            controlled = self.exploration.value(
                self.step,
                decay_end=agent.exploration_fraction * self.config.training.total_steps,
                final=agent.exploration_final_eps,
            )
            if controlled is not None:
                return controlled
        if self.step < agent.learning_starts:
            return 1.0
        return linear_epsilon(
            self.step,
            total_steps=self.config.training.total_steps,
            fraction=agent.exploration_fraction,
            initial=agent.exploration_initial_eps,
            final=agent.exploration_final_eps,
        )

    def _gradient_steps_per_phase(self) -> int:
        agent = self.config.agent
        return agent.train_freq * self.n_envs if agent.gradient_steps == -1 else agent.gradient_steps

    # -- records ----------------------------------------------------------------------------------------
    def emit(self, record: Record) -> None:
        """Hand a record to every callback (live control acknowledges its commands this way)."""
        self._emit(record)

    def _emit(self, record: Record) -> None:
        for callback in self.callbacks:
            if callback.on_record(record) is False:
                self._stop = True

    def _emit_episodes(self, infos: dict) -> None:
        if "episode" not in infos:
            return
        finished = np.flatnonzero(infos["_episode"])
        for index in finished:
            self._emit(
                {
                    "step": self.step,
                    "episodic_return": float(infos["episode"]["r"][index]),
                    "episode_length": int(infos["episode"]["l"][index]),
                }
            )

    def _emit_eval(self, result: EvalResult) -> None:
        self._last_eval = result
        self.eval_history.append((self.step, result.mean))
        record: Record = {"step": self.step, "eval_return": result.mean, "eval_return_std": result.std}
        change = self._policy_change()
        if change is not None:
            record["policy_change"] = change
        self._emit(record)

    def _policy_change(self) -> float | None:
        """Share of greedy actions on a fixed probe set of replay states that changed since the last evaluation.

        The probe set is drawn once, at the first evaluation, with its own generator: the run's random stream
        is the same whether or not anyone looks at this figure.
        """
        if self._probe_obs is None:
            if len(self.replay) == 0:
                return None
            probe_rng = np.random.default_rng(self.config.training.seed + 1)
            self._probe_obs = self.replay.sample_observations(min(PROBE_STATES, len(self.replay)), probe_rng)
        actions = self.agent.greedy_actions(self._probe_obs)
        previous, self._probe_actions = self._probe_actions, actions
        return None if previous is None else float(np.mean(actions != previous))

    # -- learning ---------------------------------------------------------------------------------------
    def _sample(self, n_batches: int | None = None) -> Batch:
        batch = self.replay.sample(self.config.agent.batch_size, self.rng, n_batches=n_batches)
        return batch.to(self.device, self.agent.dtype)

    def _train_phase(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Run one phase of gradient steps; returns summed loss, summed mean-Q and the step count."""
        n_steps = self._gradient_steps_per_phase()
        self.tuner.set_step(self.step)
        if self.config.agent.lr_decay == "linear":
            self.agent.set_lr_scale(max(0.0, 1.0 - self.step / self.config.training.total_steps))
        # One gather + conversion + transfer to the device for the whole phase, the meta-objective's outer
        # batches included (batches n_steps.. of the draw).
        n_outer = self.tuner.outer_batches(n_steps)
        batches = self._sample(n_batches=n_steps + n_outer)
        outer = iter(range(n_steps, n_steps + n_outer))

        def sample_outer() -> Batch:
            index = next(outer, None)
            return self._sample() if index is None else batches[index]

        # The target network is fixed during a phase: all its Q-values in one large forward pass.
        next_obs = batches.next_obs[:n_steps].flatten(0, 1)  # (steps * batch, *obs_shape): one batch dim
        q_t_target = self.agent.target_q_values(next_obs).unflatten(0, (n_steps, -1))
        loss_sum = torch.zeros((), device=self.device)
        q_sum = torch.zeros((), device=self.device)
        for index in range(n_steps):
            loss, q_mean = self.tuner.gradient_step(batches[index], sample_outer, q_t_target=q_t_target[index])
            loss_sum += loss
            q_sum += q_mean
        if not (torch.isfinite(loss_sum) and torch.isfinite(q_sum)):  # one host sync per phase
            what = "loss" if not torch.isfinite(loss_sum) else "Q-values"
            raise DivergenceError(f"non-finite {what} at step {self.step}", step=self.step)
        return loss_sum, q_sum, n_steps

    def evaluate(self, evaluator: Evaluator | None = None) -> EvalResult:
        return (evaluator or self.evaluator)(self.agent.greedy_actions)

    # -- the loop ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Reset the envs and tell the callbacks; call once before :meth:`train_until`."""
        for callback in self.callbacks:
            callback.on_start(self)
        self._phase_hooks = [c for c in self.callbacks if type(c).on_phase is not Callback.on_phase]
        training = self.config.training
        # A resumed run cannot restore the envs' internal state: new episodes, seeded from the step.
        self._obs, _ = self.envs.reset(seed=training.seed + self.step)
        self._loss_sum = torch.zeros((), device=self.device)
        self._q_sum = torch.zeros((), device=self.device)
        self._n_updates = 0
        self._next_log = next_multiple(self.step, training.log_every)
        self._next_eval = next_multiple(self.step, training.eval_every) if training.eval_every > 0 else None
        every = training.checkpoint_every
        self._next_checkpoint = next_multiple(self.step, every) if every and self.checkpoint_path else None
        self._last_time, self._last_step, self._eval_seconds = time.perf_counter(), self.step, 0.0

    @property
    def last_eval(self) -> EvalResult | None:
        """The most recent evaluation (periodic or final)."""
        return self._last_eval

    def stop(self) -> None:
        """Stop at the next step; :meth:`finish` then skips the final evaluation (the run was cut short)."""
        self._stop = True

    def request_stop(self) -> None:
        """End the run at the next step as if its budget were spent (live control's ``stop``): :meth:`finish`
        still runs the final evaluation, so the run ends with a value."""
        if self.stop_requested_at is None:
            self.stop_requested_at = self.step

    def train_until(self, step: int) -> None:
        """Run the loop until ``step`` env steps are done (or the budget or a stop); evaluations included.

        Several trainers can be advanced in turn this way (the seeds of one Optuna trial).
        """
        config, agent, training = self.config, self.agent, self.config.training
        target_every = max(config.agent.target_update_interval // self.n_envs, 1)
        stop_at = min(step, training.total_steps)
        while self.step < stop_at and not self._stop and self.solved_at is None and self.stop_requested_at is None:
            epsilon = self.epsilon()
            actions = agent.act(self._obs, epsilon, self.rng)
            next_obs, rewards, terminated, truncated, infos = self.envs.step(actions)
            done = terminated | truncated
            # Store the true last observation of an episode; only termination stops bootstrapping.
            real_next = final_observations(next_obs, done, infos)
            self.replay.add(self._obs, actions, rewards, real_next, terminated, done=done)
            self._obs = next_obs
            self.step += self.n_envs
            self.vector_steps += 1
            self._emit_episodes(infos)

            if self.vector_steps % target_every == 0:
                agent.update_target(self.tuner.tau)
                self.tuner.on_target_update()
            if self.step > config.agent.learning_starts and self.vector_steps % config.agent.train_freq == 0:
                phase_loss, phase_q, phase_n = self._train_phase()
                self._loss_sum += phase_loss
                self._q_sum += phase_q
                self._n_updates += phase_n
            if self._phase_hooks and self.vector_steps % config.agent.train_freq == 0:
                for callback in self._phase_hooks:  # e.g. live control: commands apply between phases
                    callback.on_phase(self)
            if self.step >= self._next_log:
                self._emit_training_record(epsilon)
            if self._next_eval is not None and self.step >= self._next_eval:
                self._next_eval += training.eval_every
                if self.step < training.total_steps:  # the final evaluation covers the last step
                    started = time.perf_counter()
                    result = self.evaluate()
                    self._emit_eval(result)
                    self._eval_seconds += time.perf_counter() - started
                    threshold = training.stop_at_return
                    if threshold is not None and result.mean >= threshold and not self._stop:
                        self.solved_at = self.step  # finish() scores this policy with the final evaluation
            if self._next_checkpoint is not None and self.step >= self._next_checkpoint:
                self._next_checkpoint = next_multiple(self.step, training.checkpoint_every)
                self.save_checkpoint()

    def _check_bounds(self) -> None:
        """Raise DivergenceError when a tuned value has sat on a bound longer than allowed."""
        limit = self.config.self_tuning.max_steps_at_bound
        if limit is None:
            return
        for name, on_bound in self.tuner.space.at_bound().items():
            if not on_bound:
                self._at_bound_since.pop(name, None)
                continue
            since = self._at_bound_since.setdefault(name, self.step)
            if self.step - since >= limit:
                value = self.tuner.space.current()[name]
                raise DivergenceError(
                    f"{name} sat on its bound ({value:.4g}) for {self.step - since} env steps", step=self.step
                )

    def _emit_training_record(self, epsilon: float) -> None:
        now = time.perf_counter()
        record: Record = {"step": self.step, "epsilon": epsilon}
        if self._n_updates:
            record["loss"] = float(self._loss_sum) / self._n_updates
            record["q_mean"] = float(self._q_sum) / self._n_updates
        record["sps"] = (self.step - self._last_step) / max(now - self._last_time - self._eval_seconds, 1e-9)
        record.update(self.tuner.records())
        if self.config.agent.lr_decay != "none":
            record["lr_in_use"] = self.agent.lr * self.agent.lr_scale
        self._emit(record)
        self._check_bounds()
        self._loss_sum.zero_()
        self._q_sum.zero_()
        self._n_updates, self._last_time, self._last_step, self._eval_seconds = 0, now, self.step, 0.0
        self._next_log += self.config.training.log_every

    def finish(self) -> TrainResult:
        """Final evaluation (skipped when a callback stopped the run; run when ``stop_at_return`` was reached, on
        the policy that reached it), close the envs, tell the callbacks."""
        try:
            if self._stop and self._last_eval is not None:
                final = self._last_eval  # stopped by a callback (pruned): no need for another evaluation
            else:
                final = self.evaluate(self.final_evaluator)
                self._emit_eval(final)
        finally:
            self.close()
        result = TrainResult(
            final_eval=final,
            steps=self.step,
            hyperparams=self.tuner.space.current(),
            initial_hyperparams=self.initial_hyperparams,
            stopped_early=self._stop,
            solved_at=self.solved_at,
            eval_history=list(self.eval_history),
            stop_requested_at=self.stop_requested_at,
        )
        for callback in self.callbacks:
            callback.on_end(result)
        return result

    def run(self) -> TrainResult:
        """Train for ``training.total_steps`` env steps (or until a callback stops it), then evaluate."""
        try:
            self.start()
            self.train_until(self.config.training.total_steps)
        except BaseException:
            self.close()
            raise
        return self.finish()

    # -- checkpoints ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to go on from this step (see ``dqnmap_auto.checkpoint``)."""
        last = self._last_eval
        return {
            "step": self.step,
            "vector_steps": self.vector_steps,
            "agent": self.agent.state_dict(),
            "tuner": self.tuner.state_dict(),
            "replay": self.replay.state_dict(newest=self.config.training.checkpoint_replay),
            "rng": {
                "numpy": self.rng.bit_generator.state,
                "torch": torch.get_rng_state(),
                "python": random.getstate(),
            },
            "eval_history": [list(point) for point in self.eval_history],
            "last_eval": last.to_dict() if last is not None else None,
            "probe": {"obs": self._probe_obs, "actions": self._probe_actions},
            "initial_hyperparams": dict(self.initial_hyperparams),
            "solved_at": self.solved_at,
            "exploration": self.exploration.state_dict(),
            "stop_requested_at": self.stop_requested_at,
            "callbacks": {c.state_key: c.state_dict() for c in self.callbacks if c.state_key is not None},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; call before :meth:`start`."""
        self.step = int(state["step"])
        self.vector_steps = int(state["vector_steps"])
        self.agent.load_state_dict(state["agent"])
        self.tuner.load_state_dict(state["tuner"])
        self.replay.load_state_dict(state["replay"])
        self.rng.bit_generator.state = state["rng"]["numpy"]
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        self.eval_history = [(int(s), float(v)) for s, v in state["eval_history"]]
        last = state["last_eval"]
        self._last_eval = EvalResult(float(last["mean"]), float(last["std"]), list(last["returns"])) if last else None
        probe = state["probe"]
        self._probe_obs = None if probe["obs"] is None else np.asarray(probe["obs"])
        self._probe_actions = None if probe["actions"] is None else np.asarray(probe["actions"])
        self.initial_hyperparams = dict(state["initial_hyperparams"])
        self.solved_at = state.get("solved_at")
        self.exploration.load_state_dict(state.get("exploration", {}))  # absent in older checkpoints
        self.stop_requested_at = state.get("stop_requested_at")
        saved = state.get("callbacks", {})
        for callback in self.callbacks:
            if callback.state_key is not None and callback.state_key in saved:
                callback.load_state_dict(saved[callback.state_key])
        self.resumed_from_step = self.step

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        target = Path(path) if path is not None else self.checkpoint_path
        if target is None:
            raise ValueError("no checkpoint path")
        return save_atomic(self.state_dict(), target)

    def resume(self, path: str | Path) -> None:
        """Load a checkpoint file (``weights_only=True``)."""
        self.load_state_dict(load_checkpoint(path))

    def close(self) -> None:
        """Release the envs (idempotent)."""
        self.envs.close()
        self.evaluator.close()
        self.final_evaluator.close()


def train(config: TrainConfig, callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Train one agent with ``config``; the importable entry point behind ``dqnmap-auto train``."""
    return Trainer(config, callbacks).run()
