"""Hypergradient descent on the learning rate (Baydin et al., ICLR 2018, arXiv 1703.04782), Adam variant.

With theta_t = theta_{t-1} - lr * u_{t-1} (u: the Adam direction of the previous step),

    dL(theta_t) / d lr = -g_t . u_{t-1}            (g_t: the raw gradient at theta_t)

and in z = log lr the hypergradient is lr times that: -g_t . (theta_{t-1} - theta_t), no division needed.
The update is the normalised multiplicative form, around a set point c*:

    z <- clamp(z + beta * (cos(g_t, u_{t-1}) - c*), log low, log high)

so one update changes lr by at most a factor e^(beta (1 + |c*|)): it cannot explode whatever the gradient
scale.

Why a set point and not c* = 0 (plain hd): once the loss sits at its noise floor, successive stochastic
updates are *always* anti-correlated -- for SGD on a quadratic with curvature h the stationary correlation is
about -lr*h/2 -- so plain hd shrinks lr forever, whatever lr is. That is the short-horizon bias (Wu et al.,
ICLR 2018) in its simplest form; measured on CartPole (rl-zoo3 settings, lr held fixed), the mean cosine is
+0.2 at lr 1e-5, ~0 at 1e-4, -0.06 at rl-zoo3's 2.3e-3, -0.1 at 1e-2 and -0.2 at 1e-1. A negative set
point asks for steps at a fixed fraction of the stability edge instead (lr*h ~ 2|c*|): lr grows while
updates are aligned, shrinks while they oscillate, and settles where they are mildly anti-correlated. Because
the measured cosine drifts lower as training converges, the rule also anneals lr late in a run.

Between those extremes the cosine hardly depends on lr, so the set point cannot place lr there. Measured
with lr held fixed (``benchmarks/hd_cosine.py``), on Acrobot the late-training cosine is -0.034 at lr 1e-4,
-0.038 at rl-zoo3's 6.3e-4, -0.036 at 3e-3 and -0.044 at 1e-2, each within about 0.006 of noise: everywhere
slightly above c*, so lr crept upward through the whole range until the agent broke (lr 0.02..0.06 at the
end of most failed robustness runs). Hence a pull (``hd_lr_pull``, default 3e-3 per update) of log lr towards
``reference.lr`` (default 1e-3, Adam's default step size; a spec with a known good lr sets it there):

    z <- z + beta * (cos - c*) - pull * (z - log reference_lr)

Where the cosine says little, the pull decides: the equilibrium sits where beta |cos - c*| = pull |z - z_ref|,
so with pull 3e-3 a persistent bias of 0.01 holds lr within a factor 1.4 of the reference. Where it says much
(cos +0.2 at lr 1e-5, -0.2 at 0.1) the cosine term is as large as the pull or larger, and both point the same
way. Measured (``benchmarks/RESULTS.md``, v3): Acrobot robustness of meta mode 23/30 -> 29/30 with pull 1e-3;
CartPole 37/50 -> 34/50 (1e-3) and 39/50 (3e-3); the CartPole anchor's hd 10/10 -> 8/10 (it starts at
rl-zoo3's 2.3e-3, which the pull draws towards 1e-3).

The rule rests on a first-order model of the loss along the step, which only holds while a step is small next
to the weights. So a recorded step that moved the weights by more than ``max_step_ratio`` of their norm
(||lr u|| / ||theta||, the trust ratio of LARS, You et al. 2017) is undone, and lr is cut at once by the
excess factor (a rejected trust-region step). Adam moves every weight by about lr per step: from lr = 0.1 the
very first step moves a 256-wide MLP by 175% of its norm, and a cosine rule of bounded step would need
thousands of steps to bring lr down, by which time the network is wrecked. Measured: with the check after
the step but without the undo, lr 0.1 runs on CartPole still collapsed.

Where the cosine is read (``measure``). All of the above is about the cosine read every ``interval`` steps
(``interval``, the default up to v5). Read only at the first step after a target-network update
(``target_update``, the default since v6), it is a different signal: the regression towards a new target is far
from its noise floor, and there the cosine falls monotonically through 0 near rl-zoo3's lr (CartPole -0.003 at
its 2.3e-3, +0.12 at 1e-3, -0.16 at 1e-2; Acrobot -0.024 at its 6.3e-4, +0.14 at 1e-4; ``lr_signals.py``,
start1). So the set point is 0 there, and the pull matters only where the cosine is flat. From Acrobot's
wrong-high start (reference and start at 0.019) interval reads drove lr up to 0.05 and failed; target-update
reads brought it down to 5e-3 (development seeds, ``benchmarks/RESULTS.md``, issue 19, v6). Reads come once per
target period, hence the pacing (``pace_max``).

A gate (``gate``, ``self_tuning.hd_gate: lookahead``; off by default: measured and not adopted, v8a). Neither
read places lr from both sides on every env: on MountainCar start1 says "lower" down to 1e-4, below every lr
that learned, and on LunarLander it says "raise" again at 3e-3 and 1e-2. A second signal taken at the same
weights, the one-step lookahead hypergradient -dJ/dlog lr (``lr_signals.py``, meta1s), crosses zero near
rl-zoo3's lr on CartPole, Acrobot and MountainCar. With the gate, a read moves lr only where both agree in
sign; where they disagree only the pull acts. Measured on development seeds it changed little (CartPole 18/24
against 20/24, MountainCar 0/6 against 0/6): during training both signals agreed at 75-100% of reads in the
runs traced (issue 19; ``benchmarks/RESULTS.md``).

The update runs every ``interval`` gradient steps (the step after one whose direction was recorded; the very
first step is recorded, so the step-size check acts at once): one parameter copy and one dot product per
``interval`` steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from dqnmap_auto.agent.dqn import DQNAgent
from dqnmap_auto.agent.replay import Batch
from dqnmap_auto.config import REFERENCE_VALUES
from dqnmap_auto.hypergrad.space import HyperSpace
from dqnmap_auto.hypergrad.tuner import BatchSampler, FixedTuner

#: A second opinion on lr at the weights of a recorded step: (inner batch, outer batch, the target's Q-values on
#: the inner batch or None, gamma, delta) -> a value whose sign says "raise lr" (+) or "lower lr" (-).
LearningRateGate = Callable[[Batch, Batch, torch.Tensor | None, float | torch.Tensor, float | torch.Tensor], float]


@dataclass(frozen=True)
class HDSettings:
    """The rule's knobs (``self_tuning.hd_lr``, ``hd_interval``, ``hd_target_cos``, ``hd_lr_pull``,
    ``reference.lr``, ``hd_max_step_ratio``, ``hd_measure``, ``hd_pace_max``), with the config's defaults.

    ``pace_max`` (with measure ``target_update``): a read's step and pull are multiplied by the gradient steps
    since the previous read over ``interval``, capped at ``pace_max``; reads closer together than ``interval``
    (target updates at nearly every gradient step, as with soft updates) count less, so lr never moves faster
    per gradient step than with interval reads. Large enough, lr moves as fast per gradient step. Why:
    target updates come once per training phase on CartPole's rl-zoo3 row (128 gradient steps), so unpaced
    reads moved lr 16x slower; from lr 1e-5 it took 50k steps to reach 1e-3 while gamma ran to 0.999 and the
    loss diverged (development seeds 0-1, ``benchmarks/RESULTS.md``, issue 19). Why a cap: on Acrobot's row
    (250 gradient steps per target period) full pacing multiplies one noisy read by 31, and lr ran to its bound.
    The multiplier is also capped so that one read's pull covers at most half the way to the reference."""

    beta: float = 0.1
    interval: int = 8
    target_cos: float = 0.0
    pull: float = 3e-3
    reference: float = REFERENCE_VALUES["lr"]
    max_step_ratio: float | None = 0.1
    measure: Literal["interval", "target_update"] = "target_update"
    pace_max: float = 6.0


class LearningRateRule:
    """The hd rule on the ``lr`` entry of ``space.z``; used by hd mode, and by meta mode for lr.

    ``settings``: beta is the step on log lr per update, times (cosine - target_cos); interval the gradient
    steps between two updates; target_cos the set point c*; pull the fraction of the way to log reference
    per update (see the module docstring). ``on_change``: called
    after z changed, so the owner re-reads the values (and hands lr to the optimizer). ``gate``: when given,
    evaluated at each recorded step the rule will read (on that step's batch and a fresh outer batch); the
    read's step then counts only where the gate's sign agrees with the cosine's side of the set point.
    """

    def __init__(
        self,
        space: HyperSpace,
        agent: DQNAgent,
        settings: HDSettings,
        *,
        on_change: Callable[[], None],
        gate: LearningRateGate | None = None,
    ) -> None:
        self.space, self.agent, self.settings = space, agent, settings
        self.gate = gate
        self._gate_value: float | None = None  # the gate's opinion on the pending recorded step
        self._gate_counts = (0.0, 0, 0)  # sum of gate values, reads, reads where cosine and gate agreed
        self.index = space.names.index("lr")
        self.on_change = on_change
        self.steps = 0
        self.last_hypergrad = 0.0
        self.rejected_steps = 0
        self._recheck = False
        self._target_changed = False  # a target update happened since the last gradient step
        self._measure_next = settings.measure == "interval"  # the pending recorded step is one the rule reads
        self._cosines = (0.0, 0)  # sum and count since the last record: the rule's input, as users should see it
        self._last_read = 0  # self.steps at the previous read (paced reads scale by the gap)
        # Two preallocated parameter copies: theta_t before a recorded step, then the step lr_t * u_t.
        self._buffers = [[torch.empty_like(p) for p in agent.params] for _ in range(2)]
        self._previous_step: list[torch.Tensor] | None = None

    def _on_gradients(self, grads: list[torch.Tensor]) -> None:
        """Between backward and the optimizer step: follow the hypergradient, then let this step use it."""
        step = self._previous_step  # theta_{t-1} - theta_t = lr * u_{t-1}
        if step is None or not self._measure_next:
            return
        dot = torch.stack([torch.vdot(g.view(-1), d.view(-1)) for g, d in zip(grads, step, strict=True)]).sum()
        norms = torch.stack(torch._foreach_norm(grads) + torch._foreach_norm(step))
        g_norm = torch.linalg.vector_norm(norms[: len(grads)])
        step_norm = torch.linalg.vector_norm(norms[len(grads) :])
        hypergrad_z, cosine = torch.stack([-dot, dot / (g_norm * step_norm + 1e-30)]).tolist()  # one sync
        if not math.isfinite(cosine):
            return
        self.last_hypergrad = hypergrad_z  # dL/dz = -lr g.u = -g.(lr u)
        self.space.last_hypergrad["lr"] = hypergrad_z
        self._cosines = (self._cosines[0] + cosine, self._cosines[1] + 1)
        settings = self.settings
        signal = cosine - settings.target_cos
        if self._gate_value is not None:
            agree = signal * self._gate_value > 0
            total, reads, agreed = self._gate_counts
            self._gate_counts = (total + self._gate_value, reads + 1, agreed + int(agree))
            signal = signal if agree else 0.0  # the two signals disagree: the pull alone decides
            self._gate_value = None
        pace = self._pace()
        with torch.no_grad():
            z = self.space.z[self.index]
            pulled = pace * settings.pull * (z - math.log(settings.reference))  # a tensor: no host sync
            z += pace * settings.beta * signal - pulled
        self.space.clamp_()
        self.on_change()  # lr read back from z (its dtype), as a checkpoint restore will read it

    def _pace(self) -> float:
        """How many interval reads this read stands for (see ``pace_max`` in :class:`HDSettings`)."""
        gap, self._last_read = self.steps - self._last_read, self.steps
        settings = self.settings
        if settings.measure != "target_update":
            return 1.0
        pace = min(gap / settings.interval, max(settings.pace_max, 1.0))
        return min(pace, 0.5 / settings.pull) if settings.pull > 0 else pace

    def gradient_step(
        self,
        batch: Batch,
        gamma: float | torch.Tensor,
        delta: float | torch.Tensor,
        *,
        q_t_target: torch.Tensor | None = None,
        sample_outer: BatchSampler | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The agent's step, plus: every ``interval``-th step records its update lr_t * u_t (two parameter
        copies, ~20% of a step on this CPU, hence the interval), and the step after it follows the
        hypergradient g_{t+1} . u_t before updating. ``sample_outer`` draws the gate's outer batch (needed with
        a gate only)."""
        use = self._previous_step is not None
        period_start = self._target_changed and self.settings.measure == "target_update"
        self._target_changed = False
        # steps 0, interval, 2 interval, ... (the first one included), the step after a rejected one, and with
        # measure "target_update" the first step after a target update (the only steps the rule then reads)
        record = self.steps % self.settings.interval == 0 or self._recheck or period_start
        self.steps += 1
        if record and self.gate is not None and (period_start or self.settings.measure == "interval"):
            if sample_outer is None:
                raise ValueError("an hd rule with a gate needs sample_outer for its outer batch")
            value = self.gate(batch, sample_outer(), q_t_target, gamma, delta)  # at the weights before the step
            self._gate_value = value if math.isfinite(value) else None
        if record:
            before = self._free_buffer()
            with torch.no_grad():
                torch._foreach_copy_(before, self.agent.params)
                weights_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(before)))
        loss, q_mean = self.agent.gradient_step(
            batch, gamma, delta, q_t_target=q_t_target, on_gradients=self._on_gradients if use else None
        )
        if use:
            self._previous_step = None
        if record:
            with torch.no_grad():
                torch._foreach_sub_(before, self.agent.params)  # now lr_t * u_t
            self._recheck = self._rejected(before, weights_norm)
            self._previous_step = None if self._recheck else before
            self._measure_next = self.settings.measure == "interval" or period_start
        return loss, q_mean

    def on_target_update(self) -> None:
        """The Trainer updated the target network: with measure ``target_update`` the next gradient step starts a
        new regression, the one place the rule reads the cosine."""
        self._target_changed = True

    def _rejected(self, step: list[torch.Tensor], weights_norm: torch.Tensor) -> bool:
        """Undo ``step`` (theta_before - theta_after) and cut lr to fit when it moved the weights by more than
        ``max_step_ratio`` of their norm before the step; one host sync per recorded step. The next step is
        checked too, in case one cut was not enough."""
        limit = self.settings.max_step_ratio
        if limit is None:
            return False
        with torch.no_grad():
            step_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(step)))
            ratio = float(step_norm / (weights_norm + 1e-30))
        if not (math.isfinite(ratio) and ratio > limit):
            return False
        with torch.no_grad():
            torch._foreach_add_(self.agent.params, step)  # back to theta_before (the optimizer state keeps g)
            self.space.z[self.index] += math.log(limit / ratio)
        self.space.clamp_()
        self.on_change()
        self.rejected_steps += 1
        return True

    def records(self) -> dict[str, float]:
        """``hd/cosine``: the mean cosine since the last call (the signal the rule compares with its set point);
        nothing when no update ran since. With a gate also ``hd/gate`` (its mean value) and ``hd/agree`` (the
        fraction of reads where it agreed with the cosine, the reads that moved lr beyond the pull)."""
        total, count = self._cosines
        self._cosines = (0.0, 0)
        out = {"hd/cosine": total / count} if count else {}
        gate_total, reads, agreed = self._gate_counts
        if reads:
            out.update({"hd/gate": gate_total / reads, "hd/agree": agreed / reads})
            self._gate_counts = (0.0, 0, 0)
        return out

    def _free_buffer(self) -> list[torch.Tensor]:
        """A preallocated parameter-shaped buffer not holding the pending recorded step."""
        return self._buffers[1] if self._previous_step is self._buffers[0] else self._buffers[0]

    def state_dict(self) -> dict[str, object]:
        return {
            "previous_step": self._previous_step,
            "steps": self.steps,
            "recheck": self._recheck,
            "target_changed": self._target_changed,
            "measure_next": self._measure_next,
            "rejected_steps": self.rejected_steps,
            "last_read": self._last_read,
            "cosines": list(self._cosines),  # a resumed run's next hd/cosine covers the whole window
            "gate_value": self._gate_value,  # a checkpoint between a gated record and its read keeps the opinion
            "gate_counts": list(self._gate_counts),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        saved = state.get("previous_step")  # a checkpoint holds CPU tensors: copy them onto the parameters' device
        self._previous_step = None
        if saved is not None:
            with torch.no_grad():
                torch._foreach_copy_(self._buffers[0], list(saved))  # type: ignore[call-overload]
            self._previous_step = self._buffers[0]
        self.steps = int(state.get("steps", 0))  # type: ignore[call-overload]
        # Checkpoints from before these were saved lack them: start them afresh.
        self._recheck = bool(state.get("recheck", False))
        self._target_changed = bool(state.get("target_changed", False))
        self._measure_next = bool(state.get("measure_next", self.settings.measure == "interval"))
        self.rejected_steps = int(state.get("rejected_steps", 0))  # type: ignore[call-overload]
        self._last_read = int(state.get("last_read", self.steps))  # type: ignore[call-overload]
        cosines: Sequence[float] = state.get("cosines", (0.0, 0))  # type: ignore[assignment]
        self._cosines = (float(cosines[0]), int(cosines[1]))
        gate_value = state.get("gate_value")
        self._gate_value = None if gate_value is None else float(gate_value)  # type: ignore[arg-type]
        gate_counts: Sequence[float] = state.get("gate_counts", (0.0, 0, 0))  # type: ignore[assignment]
        self._gate_counts = (float(gate_counts[0]), int(gate_counts[1]), int(gate_counts[2]))


class HypergradientDescentTuner(FixedTuner):
    """Tunes ``lr`` online from the alignment of successive update directions (:class:`LearningRateRule`)."""

    def __init__(
        self, space: HyperSpace, agent: DQNAgent, settings: HDSettings, *, gate: LearningRateGate | None = None
    ) -> None:
        if space.names != ["lr"]:
            raise ValueError(f"hd mode tunes lr only, got {space.names}")
        super().__init__(space, agent)
        self.rule = LearningRateRule(space, agent, settings, on_change=self._refresh, gate=gate)

    def gradient_step(
        self, batch: Batch, sample_outer: BatchSampler, *, q_t_target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.rule.gradient_step(
            batch, self.gamma, self.huber_delta, q_t_target=q_t_target, sample_outer=sample_outer
        )

    def on_target_update(self) -> None:
        self.rule.on_target_update()

    def records(self) -> dict[str, float]:
        return {**super().records(), **self.rule.records()}

    def state_dict(self) -> dict[str, object]:
        return {**super().state_dict(), **self.rule.state_dict()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        super().load_state_dict(state)
        self.rule.load_state_dict(state)
