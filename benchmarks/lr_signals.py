"""Which hypergradient signal says where the learning rate should go? Candidate signals at fixed learning rates.

Issue 19 asks whether the hypergradients add anything beyond the priors around them. For the learning rate
the answer depends on whether the signal a rule follows depends on lr at all: the hd rule's cosine
cos(g_t, u_{t-1}) is nearly flat between 1e-4 and 1e-2 on Acrobot (``hd_cosine.py``), so there the pull
towards ``reference.lr`` decides. This script holds lr fixed at several values per env and records, side by
side on the same run, candidate signals, each signed so that **positive means "raise lr"**:

    lag1        cos(g_t, d_{t-1})                     the hd rule's (d_t = theta_t - theta_{t+1} = lr u_t)
    lagdot      sum g_t.d_{t-1} / sum |g_t||d_{t-1}|  the same products weighted by their size (a ratio of
                                                       sums over each record): plain hd's hypergradient, scaled
    start1      lag1 at the first step after each target update only: the regression towards a new target is
                                                       far from its noise floor there, so the cosine measures
                                                       over- or undershooting rather than the floor's noise
    tan90/99    cos(g_t, m_t), m_t = mu m_{t-1} + d_{t-1}  a first-order MARTHE tangent (Donini et al. 2020),
                                                       mu 0.9 / 0.99: the alignment with the recent path
    period      cos(g_out(theta_end), theta_start - theta_end) over each target period (between two target
                                                       updates), g_out on a held-out batch under that period's
                                                       target: did the whole period stop short of its target?
    meta1/2     -dJ/dlog lr / J, J the reference TD loss on a held-out batch after 1 / 2 differentiated Adam
                                                       steps, every 32 gradient steps (the lookahead of meta
                                                       mode, lr_rule: meta)
    meta1s      meta1 at the first step after each target update only
    meta2f/2h   meta2 with a fresh batch for the second inner step (f), and also with the target held between
                                                       the inner steps as it is between real target updates (h)

and, in a second table, where the same lookaheads take gamma and the Huber delta (-dJ/dlogit gamma / J and
-dJ/dlog delta / J: positive means "raise it"): gamma2/delta2 as meta mode computes them (K = 2, one batch
for both inner steps, the target Polyak-updated with tau between them), gamma2f/delta2f with a fresh batch,
gamma2h/delta2h with a fresh batch and the target held.

A signal that can place lr without a prior must change sign (or cross a fixed set point) between the learning
rates that learn and those that do not, on every env. Means over the last two thirds of each run (its first
third is the exploration phase) with the standard error of the per-record means. One run per (env, lr), seed 0;
the final evaluation says which fixed lr learned.

Resumable (one JSONL line per run; ``--report-only``). Usage (from the repo root)::

    PYTHONPATH=. python benchmarks/lr_signals.py --env acrobot --workers 2
    PYTHONPATH=. python benchmarks/lr_signals.py --env cartpole --quick
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from typing import Any

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

from dqnmap_auto.agent.dqn import DQNAgent
from dqnmap_auto.agent.replay import Batch
from dqnmap_auto.config import REFERENCE_VALUES, TrainConfig
from dqnmap_auto.hypergrad.functional_adam import adam_state_of
from dqnmap_auto.hypergrad.meta import LookaheadSettings, lookahead_objective
from dqnmap_auto.hypergrad.space import HyperSpace
from dqnmap_auto.hypergrad.tuner import BatchSampler, FixedTuner

LRS = {
    "cartpole": (1e-5, 1e-4, 1e-3, 2.3e-3, 1e-2, 1e-1),
    "acrobot": (1e-5, 1e-4, 6.3e-4, 3e-3, 1e-2, 1e-1),
    "mountaincar": (1e-5, 1e-4, 1e-3, 4e-3, 1e-2, 1e-1),
    "lunarlander": (1e-5, 1e-4, 6.3e-4, 3e-3, 1e-2, 1e-1),
}
SIGNALS = ("lag1", "lagdot", "start1", "tan90", "tan99", "period", "meta1", "meta1s", "meta2", "meta2f", "meta2h")
OTHER_SIGNALS = ("gamma2", "gamma2f", "gamma2h", "delta2", "delta2f", "delta2h")
#: Lookahead variants measured every META_EVERY steps: (inner steps, fresh batch per step, target schedule).
VARIANTS: dict[str, tuple[int, bool, str]] = {
    "1": (1, False, "polyak"),
    "2": (2, False, "polyak"),
    "2f": (2, True, "polyak"),
    "2h": (2, True, "held"),
}
META_EVERY = 32  # gradient steps between two lookahead measurements
RECORD_EVERY = 500  # env steps per record


def _dot_norms(a: list[torch.Tensor], b: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(a . b, |a| |b|) over lists of tensors."""
    dot = torch.stack([torch.vdot(x.reshape(-1), y.reshape(-1)) for x, y in zip(a, b, strict=True)]).sum()
    na = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(a)))
    nb = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(b)))
    return dot, na * nb


def _cos(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    dot, norms = _dot_norms(a, b)
    return dot / (norms + 1e-30)


class SignalProbe(FixedTuner):
    """Holds every hyperparameter fixed and measures the candidate lr signals along the way.

    ``sample``: draws a held-out replay batch (the Trainer's own sampler). The agent's ``update_target`` is
    wrapped so the probe knows where target periods begin and end.
    """

    def __init__(self, space: HyperSpace, agent: DQNAgent, config: TrainConfig, sample: Callable[[], Batch]) -> None:
        super().__init__(space, agent)
        values = space.current()
        bounds = {"lr": (1e-7, 1.0), "gamma": (0.5, 0.99999), "huber_delta": (1e-3, 1e3)}
        names = ["lr", "gamma", "huber_delta"]
        self.meta_space = HyperSpace(values, names, bounds, dtype=agent.dtype, device=agent.device)
        self.lookahead = {
            name: (
                LookaheadSettings(
                    lookahead=k,
                    reference_gamma=REFERENCE_VALUES["gamma"],
                    reference_delta=REFERENCE_VALUES["huber_delta"],
                    max_grad_norm=config.agent.max_grad_norm,
                    double_dqn=config.agent.double_dqn,
                    adam_eps=config.agent.adam_eps,
                    target_schedule=schedule,  # type: ignore[arg-type]
                ),
                fresh,
            )
            for name, (k, fresh, schedule) in VARIANTS.items()
        }
        params = agent.params
        self.sample = sample
        self._before = [torch.empty_like(p) for p in params]
        self._previous: list[torch.Tensor] | None = None
        self._tangents = {mu: [torch.zeros_like(p) for p in params] for mu in (0.9, 0.99)}
        self._period_start = [p.detach().clone() for p in params]
        self._steps_in_period = 0
        self._first_of_period = True  # the next gradient step is the first under a new target
        self._after_first = False  # the step after that one (it reads start1)
        self._sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        self._ratio = [0.0, 0.0]  # sum of g.d and of |g||d| since the last record (lagdot)
        self.steps = 0
        update_target = agent.update_target

        def update_target_and_mark(tau: float) -> None:
            if self._steps_in_period > 0:  # a period with gradient steps ends here: score it, then move on
                self._period_signal()
                with torch.no_grad():
                    torch._foreach_copy_(self._period_start, self.agent.params)
                self._steps_in_period = 0
                self._first_of_period = True
            update_target(tau)

        agent.update_target = update_target_and_mark  # type: ignore[method-assign]

    def outer_batches(self, n_steps: int) -> int:
        """Lookahead measurements among the phase's steps (at least; period starts draw their own)."""
        return -(-(self.steps + n_steps) // META_EVERY) - -(-self.steps // META_EVERY)

    def _add(self, name: str, value: float) -> None:
        if math.isfinite(value):
            self._sums[name][0] += value
            self._sums[name][1] += 1

    def _on_gradients(self, grads: list[torch.Tensor]) -> None:
        if self._previous is None:
            return
        dot, norms = _dot_norms(grads, self._previous)
        values = torch.stack([dot, norms, dot / (norms + 1e-30)] + [_cos(grads, m) for m in self._tangents.values()])
        dot_value, norms_value, lag1, *tangents = values.tolist()
        if math.isfinite(dot_value) and math.isfinite(norms_value):
            self._ratio[0] += dot_value
            self._ratio[1] += norms_value
        self._add("lag1", lag1)
        if self._after_first:
            self._add("start1", lag1)
        for name, value in zip(("tan90", "tan99"), tangents, strict=True):
            self._add(name, value)

    def _meta_signals(
        self,
        inner: Batch,
        outer: Batch,
        q_t_target: torch.Tensor | None,
        variants: tuple[str, ...],
        *,
        suffix: str = "",
    ) -> None:
        named = dict(self.agent.q_net.named_parameters())
        fresh_batch = self.sample() if any(self.lookahead[v][1] for v in variants) else None
        for variant in variants:
            settings, fresh = self.lookahead[variant]
            batches = [inner, fresh_batch] if fresh and fresh_batch is not None else inner
            objective = lookahead_objective(
                self.meta_space.z,
                space=self.meta_space,
                model=self.agent.q_net,
                params={n: p.detach() for n, p in named.items()},
                target_params={n: p.detach() for n, p in self.agent.target_net.named_parameters()},
                adam_state=adam_state_of(self.agent.optimizer, named),
                inner_batch=batches,
                outer_batch=outer,
                settings=settings,
                inner_q_t_target=q_t_target,
            )
            (grad,) = torch.autograd.grad(objective, self.meta_space.z)
            scale = float(objective.detach()) + 1e-12
            lr_grad, gamma_grad, delta_grad = grad.tolist()
            self._add(f"meta{variant}{suffix}", -lr_grad / scale)
            if variant != "1":
                self._add(f"gamma{variant}", -gamma_grad / scale)
                self._add(f"delta{variant}", -delta_grad / scale)

    def _period_signal(self) -> None:
        """At a target update: the held-out gradient under the ending period's target, against its path."""
        loss, _ = self.agent.loss(self.sample(), self.gamma, self.huber_delta)
        grads = torch.autograd.grad(loss, self.agent.params)
        with torch.no_grad():
            moved = torch._foreach_sub(self._period_start, self.agent.params)
        self._add("period", float(_cos(list(grads), moved)))

    def gradient_step(
        self, batch: Batch, sample_outer: BatchSampler, *, q_t_target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.steps % META_EVERY == 0:
            self._meta_signals(batch, sample_outer(), q_t_target, tuple(VARIANTS))
        first = self._first_of_period
        if first:
            self._meta_signals(batch, self.sample(), q_t_target, ("1",), suffix="s")
        with torch.no_grad():
            torch._foreach_copy_(self._before, self.agent.params)
        loss, q_mean = self.agent.gradient_step(
            batch, self.gamma, self.huber_delta, q_t_target=q_t_target, on_gradients=self._on_gradients
        )
        with torch.no_grad():
            torch._foreach_sub_(self._before, self.agent.params)  # d_t = theta_t - theta_{t+1}
            for mu, tangent in self._tangents.items():
                torch._foreach_mul_(tangent, mu)
                torch._foreach_add_(tangent, self._before)
        if self._previous is None:
            self._previous = [torch.empty_like(p) for p in self.agent.params]
        self._previous, self._before = self._before, self._previous
        self._after_first, self._first_of_period = first, False
        self.steps += 1
        self._steps_in_period += 1
        return loss, q_mean

    def records(self) -> dict[str, float]:
        out = {f"signal/{name}": total / count for name, (total, count) in self._sums.items() if count}
        if self._ratio[1] > 0:
            out["signal/lagdot"] = self._ratio[0] / self._ratio[1]
        self._sums.clear()
        self._ratio = [0.0, 0.0]
        return {**super().records(), **out}


def measure(config: TrainConfig) -> dict[str, Any]:
    """One run with lr held fixed; per signal, the per-record means (every RECORD_EVERY env steps)."""
    from dqnmap_auto.callbacks import RecordCollector
    from dqnmap_auto.trainer import Trainer

    collector = RecordCollector()
    trainer = Trainer(config, [collector])
    trainer.tuner = SignalProbe(trainer.tuner.space, trainer.agent, config, trainer._sample)
    result = trainer.run()
    series = {name: collector.series(f"signal/{name}") for name in (*SIGNALS, *OTHER_SIGNALS)}
    late = late_means(series, config.training.total_steps)
    summary = " ".join(f"{n} {v[0]:+.3f}" for n, v in late.items())
    return {
        "series": {n: [list(map(int, s)), v] for n, (s, v) in series.items()},
        "late": late,
        "final_mean": result.final_eval.mean,
        "env_steps": result.steps,
        "summary": f"final {result.final_eval.mean:.1f}; {summary}",
    }


def make_tasks(env_name: str, steps: int, extra: list[str], lrs: tuple[float, ...] | None = None) -> list[Task]:
    env = ENVS[env_name]
    tasks = []
    for lr in lrs or LRS[env_name]:
        overrides = [
            f"agent.lr={lr}",
            f"training.log_every={RECORD_EVERY}",
            "training.stop_at_return=null",  # the whole run: signals late in training matter
            *extra,
        ]
        config = run_config(env, scenario="zoo", arm="fixed", seed=0, steps=steps, extra=overrides)
        key = f"lr={lr:g}|steps={steps}"
        tasks.append(Task(key, {"lr": lr, "steps": steps}, partial(measure), config, label=key))
    return tasks


def report(records: list[dict[str, Any]], env: str, steps: int, quick: bool) -> list[str]:
    lines = report_header(
        f"Candidate lr signals at fixed learning rates: {env} (rl-zoo3's row, seed 0)",
        quick=quick,
        notes=[
            f"{steps} env steps per run, no stop at the success line; a cell: the signal's mean over the last two "
            "thirds of the run (standard error of its per-record means in brackets); positive means 'raise lr'",
        ],
    )
    for names in (SIGNALS, OTHER_SIGNALS):
        lines += ["| lr | final eval | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
        for record in sorted(records, key=lambda r: r["lr"]):
            cells = []
            for name in names:
                value = record["late"].get(name)
                cells.append(f"{value[0]:+.3f} ({value[1]:.3f})" if value else "-")
            lines.append(f"| {record['lr']:g} | {record['final_mean']:.1f} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--steps", type=int, default=None, help="env steps per run [60% of rl-zoo3's budget]")
    parser.add_argument("--lrs", default=None, help="comma-separated learning rates [six per env]")
    args = parser.parse_args()
    env = ENVS[args.env]
    steps = args.steps or (3000 if args.quick else int(env.steps * 0.6))
    name = results_name("lr-signals", env=args.env, quick=args.quick, tag=args.tag)
    log = ResultLog(args.out / f"{name}.jsonl")
    lrs = tuple(float(v) for v in args.lrs.split(",")) if args.lrs else None
    tasks = make_tasks(args.env, steps, args.overrides, lrs)
    if not args.report_only:
        run_tasks(tasks, log, workers=args.workers)
    keys = {task.key for task in tasks}
    records = [r for r in log.records() if r["key"] in keys]
    write_report(args.out / f"{name}.md", report(records, args.env, steps, args.quick))


if __name__ == "__main__":
    main()
