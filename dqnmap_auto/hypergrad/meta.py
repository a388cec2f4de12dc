"""Lookahead meta-gradients (Xu, van Hasselt & Silver, NeurIPS 2018, arXiv 1805.09801) for DQN.

With eta = (lr, gamma, delta, tau) = f(z), unroll K differentiable inner steps from the current weights:

    theta_{k+1}        = AdamStep(theta_k, clip(grad_theta L(theta_k; theta-_k, gamma, delta, B_in)), lr)
    theta-_{k+1}       = tau * theta_{k+1} + (1 - tau) * theta-_k          (between inner steps)
    J(z)               = L(theta_K; theta-_0, gamma', delta', B_out)

and follow dJ/dz with Adam. The outer loss J uses a separate batch B_out and **fixed reference values**
gamma', delta' and the real target network theta-_0: scored with the tuned values themselves, the TD loss
would be minimised by gamma -> 0 and delta -> 0. tau acts only through later targets, so it gets a gradient
only when K >= 2: its Polyak update runs between the inner steps (a compressed stand-in for the real target
schedule, which updates every ``target_update_interval`` env steps).

The gradient of L with respect to theta is partial (torch.func.grad, argnums=0): DQN's semi-gradient holds the
target fixed, while the meta-gradient flows through everything, the targets' dependence on gamma and tau
included.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from torch.func import functional_call, grad

from dqnmap_auto.agent.dqn import DQNAgent, dqn_loss
from dqnmap_auto.agent.replay import Batch
from dqnmap_auto.hypergrad.functional_adam import (
    AdamState,
    Params,
    adam_state_of,
    adam_step,
    clip_by_global_norm,
)
from dqnmap_auto.hypergrad.space import HyperSpace
from dqnmap_auto.hypergrad.tuner import BatchSampler, FixedTuner


@dataclass(frozen=True)
class LookaheadSettings:
    """What the meta-objective needs besides the weights (all fixed during one meta-update)."""

    lookahead: int
    reference_gamma: float
    reference_delta: float
    max_grad_norm: float
    double_dqn: bool
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8


def _inner_loss(
    params: Params,
    target_params: Params,
    gamma: torch.Tensor,
    delta: torch.Tensor,
    batch: Batch,
    *,
    model: nn.Module,
    double_dqn: bool,
) -> torch.Tensor:
    def q_online(obs: torch.Tensor) -> torch.Tensor:
        return functional_call(model, params, (obs,))

    def q_target(obs: torch.Tensor) -> torch.Tensor:
        return functional_call(model, target_params, (obs,))

    loss, _ = dqn_loss(q_online, q_target, batch, gamma, delta, double_dqn=double_dqn)
    return loss


def lookahead_objective(
    z: torch.Tensor,
    *,
    space: HyperSpace,
    model: nn.Module,
    params: Params,
    target_params: Params,
    adam_state: AdamState,
    inner_batch: Batch,
    outer_batch: Batch,
    settings: LookaheadSettings,
) -> torch.Tensor:
    """J(z): the reference TD loss on ``outer_batch`` after ``settings.lookahead`` inner steps."""
    eta = space.values(z)
    inner_loss = partial(_inner_loss, model=model, double_dqn=settings.double_dqn)
    theta, theta_target, state = params, target_params, adam_state
    for k in range(settings.lookahead):
        g = grad(inner_loss)(theta, theta_target, eta["gamma"], eta["huber_delta"], inner_batch)
        g = clip_by_global_norm(g, settings.max_grad_norm)
        theta, state = adam_step(theta, g, state, eta["lr"], betas=settings.betas, eps=settings.adam_eps)
        if k < settings.lookahead - 1:
            tau = eta["tau"]
            theta_target = {n: tau * theta[n] + (1 - tau) * theta_target[n] for n in theta}
    reference_gamma = torch.tensor(settings.reference_gamma, dtype=z.dtype, device=z.device)
    reference_delta = torch.tensor(settings.reference_delta, dtype=z.dtype, device=z.device)
    return inner_loss(theta, target_params, reference_gamma, reference_delta, outer_batch)


class MetaGradientTuner(FixedTuner):
    """Every ``interval`` gradient steps, one Adam step on z along dJ/dz (clipped to ``clip`` in norm)."""

    def __init__(
        self,
        space: HyperSpace,
        agent: DQNAgent,
        *,
        settings: LookaheadSettings,
        meta_lr: float,
        interval: int,
        clip: float,
    ) -> None:
        super().__init__(space, agent)
        self.settings = settings
        self.interval = interval
        self.clip = clip
        self.meta_optimizer = torch.optim.Adam([space.z], lr=meta_lr)
        self.steps = 0
        self.skipped_updates = 0

    def hypergradient(self, inner_batch: Batch, outer_batch: Batch) -> torch.Tensor:
        """dJ/dz at the agent's current weights, target network and optimizer state."""
        named = dict(self.agent.q_net.named_parameters())
        params = {n: p.detach() for n, p in named.items()}
        target = {n: p.detach() for n, p in self.agent.target_net.named_parameters()}
        objective = partial(
            lookahead_objective,
            space=self.space,
            model=self.agent.q_net,
            params=params,
            target_params=target,
            adam_state=adam_state_of(self.agent.optimizer, named),
            inner_batch=inner_batch,
            outer_batch=outer_batch,
            settings=self.settings,
        )
        return grad(objective)(self.space.z.detach())

    def meta_update(self, inner_batch: Batch, outer_batch: Batch) -> None:
        hypergrad = self.hypergradient(inner_batch, outer_batch)
        if not torch.isfinite(hypergrad).all():
            self.skipped_updates += 1  # never let one bad batch poison z
            return
        self.space.set_hypergrad(hypergrad)
        norm = torch.linalg.vector_norm(hypergrad)
        self.space.z.grad = hypergrad * torch.clamp(self.clip / (norm + 1e-12), max=1.0)
        self.meta_optimizer.step()
        self.space.z.grad = None
        self.space.clamp_()
        self._refresh()

    def gradient_step(
        self, batch: Batch, sample_outer: BatchSampler, *, q_t_target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.steps % self.interval == 0:
            self.meta_update(batch, sample_outer())
        self.steps += 1
        return super().gradient_step(batch, sample_outer, q_t_target=q_t_target)

    def state_dict(self) -> dict[str, object]:
        return {
            **super().state_dict(),
            "meta_optimizer": self.meta_optimizer.state_dict(),
            "steps": self.steps,
            "skipped_updates": self.skipped_updates,
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        super().load_state_dict(state)
        self.meta_optimizer.load_state_dict(state["meta_optimizer"])  # type: ignore[arg-type]
        self.steps = int(state["steps"])  # type: ignore[call-overload]
        self.skipped_updates = int(state["skipped_updates"])  # type: ignore[call-overload]
