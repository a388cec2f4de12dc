"""Which signal says where gamma should go? The lookahead's anchored signal against one scored by real returns.

Issue 19's wrong-gamma test showed that meta mode's gamma step is a prior: its outer loss is the TD loss at the
fixed reference gamma' (0.99), and whatever gamma' is, gamma goes there (CartPole 10/10 runs to 0.900 when
gamma' = 0.9, and then failed). A TD loss scored at the tuned gamma itself has no use either: predicting a
shorter horizon is easier, so it would drive gamma down whatever the task needs. A signal that can place gamma
without a prior has to be scored by something gamma does not define: the returns the agent actually got.

This script holds gamma fixed at several values per env (rl-zoo3's row otherwise) and records, side by side on
the same run, every 32 gradient steps and after meta mode's lookahead (two Adam steps, a fresh batch for the
second, the target held), each signed so that **positive means "raise gamma"**:

    anchor   -dJ/dlogit gamma / J, J the TD loss at the reference gamma' = 0.99 (what meta mode follows)
    mccorr   dC/dlogit gamma, C the Pearson correlation between Q(s, a) and the undiscounted return that
             followed (s, a) in its episode, on recent transitions of finished episodes (a batch held out of
             the inner steps). C is scale-free, so a discounted Q can be compared with an undiscounted return.
    corr     C itself at the current weights (no derivative): is Q more predictive of the real return at the
             gammas that learn? (a zeroth-order view of the same question)

A signal that can place gamma must change sign between the gammas that learn and those that do not. Means over
the last two thirds of each run, with the standard error of the per-record means. One run per (env, gamma),
seed 0, no stop at the success line; the final evaluation says which fixed gamma learned.

Resumable (one JSONL line per run; ``--report-only``). Usage (from the repo root)::

    PYTHONPATH=. python benchmarks/gamma_signals.py --env cartpole --workers 2
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from functools import partial
from typing import Any

import numpy as np
import torch
from _common import (
    ENVS,
    ResultLog,
    Task,
    add_common_args,
    late_means,
    report_header,
    results_name,
    run_tasks,
    write_report,
)
from ablation import run_config
from torch.func import functional_call

from dqnmap_auto.agent.dqn import DQNAgent
from dqnmap_auto.agent.replay import Batch, ReplayBuffer
from dqnmap_auto.config import REFERENCE_VALUES, TrainConfig
from dqnmap_auto.hypergrad.functional_adam import adam_state_of
from dqnmap_auto.hypergrad.meta import LookaheadSettings, reference_loss, unroll
from dqnmap_auto.hypergrad.space import HyperSpace
from dqnmap_auto.hypergrad.tuner import BatchSampler, FixedTuner

GAMMAS = {
    "cartpole": (0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999),
    "acrobot": (0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999),
    "mountaincar": (0.9, 0.95, 0.98, 0.99, 0.995, 0.999),
    "lunarlander": (0.9, 0.95, 0.98, 0.99, 0.995, 0.999),
}
SIGNALS = ("anchor", "mccorr", "corr")
META_EVERY = 32  # gradient steps between two measurements
RECORD_EVERY = 500  # env steps per record
RECENT = 10_000  # returns are drawn from the newest transitions only: they describe the recent policy
MC_BATCH = 512


class EpisodeReturns:
    """The undiscounted return that followed each stored transition, written when its episode ends.

    Wraps a :class:`ReplayBuffer`'s ``add``: every env's open episode keeps the buffer slots it wrote; at the
    episode's end (terminated or truncated) the reverse cumulative sum of its rewards is stored for those slots.
    Slots of unfinished episodes, or overwritten since, hold NaN and are never drawn.
    """

    def __init__(self, replay: ReplayBuffer) -> None:
        self.replay = replay
        self.returns = np.full(replay.capacity, np.nan, dtype=np.float64)
        self.written_at = np.full(replay.capacity, -1, dtype=np.int64)
        self.added = 0
        self._open: dict[int, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
        add = replay.add

        def add_and_track(obs, actions, rewards, next_obs, terminated, *, done=None):  # type: ignore[no-untyped-def]
            n = len(actions)
            index = (replay.position + np.arange(n)) % replay.capacity
            self.returns[index] = np.nan
            self.written_at[index] = self.added + np.arange(n)
            self.added += n
            add(obs, actions, rewards, next_obs, terminated, done=done)
            for env in range(n):
                slots, rewards_so_far = self._open[env]
                slots.append(int(index[env]))
                rewards_so_far.append(float(rewards[env]))
                if done is not None and bool(done[env]):
                    to_go = np.cumsum(np.asarray(rewards_so_far)[::-1])[::-1]
                    alive = self.written_at[slots] >= self.added - replay.capacity  # not overwritten since
                    self.returns[np.asarray(slots)[alive]] = to_go[alive]
                    del self._open[env]

        replay.add = add_and_track  # type: ignore[method-assign]

    def sample(self, n: int, rng: np.random.Generator) -> tuple[Batch, torch.Tensor] | None:
        """``n`` recent transitions with their returns (None while fewer than ``n`` are known)."""
        known = np.flatnonzero(np.isfinite(self.returns) & (self.written_at >= self.added - RECENT))
        if len(known) < n:
            return None
        index = rng.choice(known, size=n)
        return self.replay.gather(index), torch.from_numpy(self.returns[index])


def pearson(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    xc, yc = x - x.mean(), y - y.mean()
    return (xc * yc).sum() / (xc.norm() * yc.norm() + 1e-12)


class GammaProbe(FixedTuner):
    """Holds every hyperparameter fixed and measures the candidate gamma signals along the way."""

    def __init__(
        self, space: HyperSpace, agent: DQNAgent, config: TrainConfig, returns: EpisodeReturns, seed: int
    ) -> None:
        super().__init__(space, agent)
        bounds = {"lr": (1e-7, 1.0), "gamma": (0.5, 0.99999), "huber_delta": (1e-3, 1e3)}
        self.meta_space = HyperSpace(space.current(), ["gamma"], bounds, dtype=agent.dtype, device=agent.device)
        self.settings = LookaheadSettings(
            lookahead=2,
            reference_gamma=REFERENCE_VALUES["gamma"],
            reference_delta=REFERENCE_VALUES["huber_delta"],
            max_grad_norm=config.agent.max_grad_norm,
            double_dqn=config.agent.double_dqn,
            adam_eps=config.agent.adam_eps,
            target_schedule="held",
        )
        self.returns = returns
        self.rng = np.random.default_rng(seed + 7919)
        self._sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        self.steps = 0

    def outer_batches(self, n_steps: int) -> int:
        """Two batches per measurement (the outer one and the second inner step's fresh one)."""
        return 2 * (-(-(self.steps + n_steps) // META_EVERY) - -(-self.steps // META_EVERY))

    def _add(self, name: str, value: float) -> None:
        if math.isfinite(value):
            self._sums[name][0] += value
            self._sums[name][1] += 1

    def _measure(self, inner: Batch, fresh: Batch, outer: Batch, q_t_target: torch.Tensor | None) -> None:
        drawn = self.returns.sample(MC_BATCH, self.rng)
        named = dict(self.agent.q_net.named_parameters())
        target = {n: p.detach() for n, p in self.agent.target_net.named_parameters()}
        theta = unroll(
            self.meta_space.z,
            space=self.meta_space,
            model=self.agent.q_net,
            params={n: p.detach() for n, p in named.items()},
            target_params=target,
            adam_state=adam_state_of(self.agent.optimizer, named),
            inner_batch=[inner, fresh],
            settings=self.settings,
            inner_q_t_target=q_t_target,
            lr_scale=self.agent.lr_scale,
        )
        objective = reference_loss(self.agent.q_net, theta, target, outer, self.settings)
        (grad,) = torch.autograd.grad(objective, self.meta_space.z, retain_graph=drawn is not None)
        self._add("anchor", -float(grad[0]) / (float(objective.detach()) + 1e-12))
        if drawn is None:
            return
        batch, returns = drawn
        batch = batch.to(self.agent.device, self.agent.dtype)
        returns = returns.to(self.agent.device, self.agent.dtype)
        q_after = functional_call(self.agent.q_net, theta, (batch.obs,)).gather(-1, batch.actions.unsqueeze(-1))
        correlation = pearson(q_after.squeeze(-1), returns)
        (grad,) = torch.autograd.grad(correlation, self.meta_space.z)
        self._add("mccorr", float(grad[0]))
        with torch.no_grad():
            q_now = self.agent.q_net(batch.obs).gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
            self._add("corr", float(pearson(q_now, returns)))

    def gradient_step(
        self, batch: Batch, sample_outer: BatchSampler, *, q_t_target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.steps % META_EVERY == 0:
            self._measure(batch, sample_outer(), sample_outer(), q_t_target)
        self.steps += 1
        return super().gradient_step(batch, sample_outer, q_t_target=q_t_target)

    def records(self) -> dict[str, float]:
        out = {f"signal/{name}": total / count for name, (total, count) in self._sums.items() if count}
        self._sums.clear()
        return {**super().records(), **out}


def measure(config: TrainConfig) -> dict[str, Any]:
    """One run with gamma held fixed; per signal, the per-record means (every RECORD_EVERY env steps)."""
    from dqnmap_auto.callbacks import RecordCollector
    from dqnmap_auto.trainer import Trainer

    collector = RecordCollector()
    trainer = Trainer(config, [collector])
    if not isinstance(trainer.replay, ReplayBuffer):
        raise SystemExit("gamma_signals.py: vector observations only (the frame replay keeps no per-slot arrays)")
    returns = EpisodeReturns(trainer.replay)
    trainer.tuner = GammaProbe(trainer.tuner.space, trainer.agent, config, returns, config.training.seed)
    result = trainer.run()
    series = {name: collector.series(f"signal/{name}") for name in SIGNALS}
    late = late_means(series, config.training.total_steps)
    summary = " ".join(f"{n} {v[0]:+.4f}" for n, v in late.items())
    return {
        "late": late,
        "final_mean": result.final_eval.mean,
        "env_steps": result.steps,
        "summary": f"final {result.final_eval.mean:.1f}; {summary}",
    }


def make_tasks(env_name: str, steps: int, extra: list[str], gammas: tuple[float, ...], seed: int) -> list[Task]:
    env = ENVS[env_name]
    tasks = []
    for gamma in gammas:
        overrides = [
            f"agent.gamma={gamma}",
            f"training.log_every={RECORD_EVERY}",
            "training.stop_at_return=null",  # the whole run: signals late in training matter
            "self_tuning.enabled=false",
            *extra,
        ]
        config = run_config(env, scenario="zoo", arm="fixed", seed=seed, steps=steps, extra=overrides)
        key = f"gamma={gamma:g}|seed={seed}|steps={steps}"
        fields = {"gamma": gamma, "seed": seed, "steps": steps}
        tasks.append(Task(key, fields, partial(measure), config, label=key))
    return tasks


def report(records: list[dict[str, Any]], env: str, steps: int) -> list[str]:
    lines = report_header(
        f"Candidate gamma signals at fixed gammas: {env} (rl-zoo3's row)",
        quick=False,
        notes=[
            f"{steps} env steps per run, no stop at the success line; a cell: the signal's mean over the last two "
            "thirds of the run (standard error of its per-record means in brackets); anchor and mccorr: positive "
            "means 'raise gamma'; corr: the correlation of Q with the return that followed, not a derivative",
        ],
    )
    lines += ["| gamma | seed | final eval | " + " | ".join(SIGNALS) + " |", "|---" * (len(SIGNALS) + 3) + "|"]
    for record in sorted(records, key=lambda r: (r["gamma"], r["seed"])):
        cells = []
        for name in SIGNALS:
            value = record["late"].get(name)
            cells.append(f"{value[0]:+.2e} ({value[1]:.1e})" if value else "-")
        lines.append(
            f"| {record['gamma']:g} | {record['seed']} | {record['final_mean']:.1f} | " + " | ".join(cells) + " |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--steps", type=int, default=None, help="env steps per run [rl-zoo3's budget]")
    parser.add_argument("--gammas", default=None, help="comma-separated gammas [six or seven per env]")
    parser.add_argument("--seed", type=int, default=0, help="development seed of every run [0]")
    args = parser.parse_args()
    env = ENVS[args.env]
    steps = args.steps or (3000 if args.quick else env.steps)
    name = results_name("gamma-signals", env=args.env, quick=args.quick, tag=args.tag)
    log = ResultLog(args.out / f"{name}.jsonl")
    gammas = tuple(float(v) for v in args.gammas.split(",")) if args.gammas else GAMMAS[args.env]
    tasks = make_tasks(args.env, steps, args.overrides, gammas, args.seed)
    if not args.report_only:
        run_tasks(tasks, log, workers=args.workers)
    keys = {task.key for task in tasks}
    records = [r for r in log.records() if r["key"] in keys]
    write_report(args.out / f"{name}.md", report(records, args.env, steps))


if __name__ == "__main__":
    main()
