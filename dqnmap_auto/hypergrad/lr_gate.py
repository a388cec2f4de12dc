"""The lookahead gate on the hd rule's learning rate (``self_tuning.hd_gate: lookahead``).

The hd rule reads one signal, the cosine at the first step of a target period (start1). It places lr near
rl-zoo3's on CartPole and Acrobot, but on MountainCar it says "lower" down to 1e-4, below every lr that learned
there, and on LunarLander "raise" again at 3e-3 and 1e-2 (``benchmarks/lr_signals.py``, development seed 0).
The one-step lookahead hypergradient at the same weights, -dJ/dlog lr with J the TD loss on a held-out batch
after one differentiated Adam step (meta1s there), crosses zero near rl-zoo3's lr on CartPole, Acrobot and
MountainCar. Each is wrong somewhere the other is not, so the gate lets the cosine move lr only where both agree;
elsewhere the pull towards ``reference.lr`` decides. One lookahead step per read (once per target period by
default) costs a few plain steps, so the gate is cheap next to meta mode's lookaheads. Measured (development
seeds, ``benchmarks/RESULTS.md``, v8a): the disagreements seen at fixed lr are rare in a self-tuned run (the two
agreed at 75-100% of reads in the runs traced), so the gate changed little and stays off by default.
"""

from __future__ import annotations

import torch

from dqnmap_auto.agent.dqn import DQNAgent
from dqnmap_auto.agent.replay import Batch
from dqnmap_auto.hypergrad.meta import LookaheadSettings, agent_lookahead_objective
from dqnmap_auto.hypergrad.space import HyperSpace


class LookaheadGate:
    """-dJ/dlog lr / J for a one-step lookahead at the agent's current weights (positive: "raise lr").

    ``settings`` must have ``lookahead=1``; an outer gamma' or delta' left None is filled in by the run's own
    value at each call, so J is the loss the agent trains on. Divided by J so its size reads the same on every
    env (only its sign gates).
    """

    def __init__(self, space: HyperSpace, agent: DQNAgent, settings: LookaheadSettings) -> None:
        if settings.lookahead != 1:
            raise ValueError(f"the lookahead gate takes one inner step, got {settings.lookahead}")
        self.space, self.agent, self.settings = space, agent, settings
        self.index = space.names.index("lr")

    def __call__(
        self,
        inner: Batch,
        outer: Batch,
        q_t_target: torch.Tensor | None,
        gamma: float | torch.Tensor,
        delta: float | torch.Tensor,
    ) -> float:
        settings = self.settings.scored_at(float(gamma), float(delta))
        objective = agent_lookahead_objective(
            self.agent, self.space, inner, outer, settings, inner_q_t_target=q_t_target
        )
        (grad,) = torch.autograd.grad(objective, self.space.z)
        return -float(grad[self.index]) / (float(objective.detach()) + 1e-12)
