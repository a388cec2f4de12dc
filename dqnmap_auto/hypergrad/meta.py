"""Lookahead meta-gradients (Xu, van Hasselt & Silver, NeurIPS 2018, arXiv 1805.09801) for DQN.

With eta = (lr, gamma, delta, tau) = f(z), unroll K differentiable inner steps from the current weights:

    theta_{k+1}        = AdamStep(theta_k, clip(grad_theta L(theta_k; theta-_k, gamma, delta, B_in)), lr)
    theta-_{k+1}       = tau * theta_{k+1} + (1 - tau) * theta-_k          (between inner steps)
    J(z)               = L(theta_K; theta-_0, gamma', delta', B_out)

and follow dJ/dz with Adam. With ``lr_rule`` (``self_tuning.lr_rule: hd``, the default), lr is left out of the
meta-gradient step and follows hypergradient descent's set-point rule instead (:mod:`.hd`): the one- or
two-step lookahead is most biased on lr (Wu et al., ICLR 2018: short horizons push lr far too small), while
delta (and gamma or tau when listed) follow the lookahead, which fixed reference values anchor. The
outer loss J uses a separate batch B_out and **fixed reference values**
gamma', delta' and the real target network theta-_0: scored with the tuned values themselves, the TD loss
would be minimised by gamma -> 0 and delta -> 0. A value that is not tuned is scored at the run's own value
(``reference_gamma=None``): since v7 gamma is not tuned by default, because a tuned gamma goes to gamma'
whatever the env needs (issue 19's wrong-gamma test), and then the lookahead scores delta's steps by the
TD loss the agent actually trains on. tau acts only through later targets, so it gets a gradient
only when K >= 2: its Polyak update runs between the inner steps (a compressed stand-in for the real target
schedule, which updates every ``target_update_interval`` env steps).

The network is evaluated with ``torch.func.functional_call`` on parameter dicts, and the Adam step is a
differentiable function (``functional_adam``). The gradient of L with respect to theta is DQN's
semi-gradient (target held fixed, see :func:`semi_gradient`), while the meta-gradient flows through
everything, the targets' dependence on gamma and tau included. Derivatives use ``torch.autograd.grad`` with
``create_graph``: on CPU it measured 2x faster here than nesting ``torch.func.grad`` for the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn
from torch.func import functional_call

from dqnmap_auto.agent.dqn import DQNAgent, dqn_loss
from dqnmap_auto.agent.replay import Batch
from dqnmap_auto.hypergrad.functional_adam import (
    AdamState,
    Params,
    adam_state_of,
    adam_step,
    clip_by_global_norm,
)
from dqnmap_auto.hypergrad.hd import HDSettings, LearningRateGate, LearningRateRule
from dqnmap_auto.hypergrad.space import HyperSpace
from dqnmap_auto.hypergrad.tuner import BatchSampler, FixedTuner


@dataclass(frozen=True)
class LookaheadSettings:
    """What the meta-objective needs besides the weights (all fixed during one meta-update)."""

    lookahead: int
    #: gamma' and delta' of the outer loss. None: the run's own current value, for a value that is not tuned (a
    #: fixed gamma cannot collapse, so scoring at the gamma the agent trains with measures the real objective).
    reference_gamma: float | None
    reference_delta: float | None
    max_grad_norm: float
    double_dqn: bool
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    target_schedule: Literal["polyak", "held"] = "polyak"

    def scored_at(self, gamma: float, delta: float) -> LookaheadSettings:
        """These settings with an untuned gamma' / delta' (None) filled in by the run's current value."""
        return replace(
            self,
            reference_gamma=gamma if self.reference_gamma is None else self.reference_gamma,
            reference_delta=delta if self.reference_delta is None else self.reference_delta,
        )


def _q_function(model: nn.Module, params: Params) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda obs: functional_call(model, params, (obs,))


def semi_gradient(loss: torch.Tensor, q_tm1: torch.Tensor, params: Params) -> Params:
    """dL/dtheta through the online Q-values only (the TD target held fixed), kept differentiable.

    The target may itself depend on theta (after a soft update inside the lookahead); DQN's update ignores
    that path, so the gradient is taken in two hops: dL/dq, then the vector-Jacobian product dq/dtheta.
    The result stays in the graph, including its dependence on the target, gamma and delta.
    """
    (dloss_dq,) = torch.autograd.grad(loss, q_tm1, create_graph=True)
    grads = torch.autograd.grad(q_tm1, list(params.values()), grad_outputs=dloss_dq, create_graph=True)
    return dict(zip(params, grads, strict=True))


def unroll(
    z: torch.Tensor,
    *,
    space: HyperSpace,
    model: nn.Module,
    params: Params,
    target_params: Params,
    adam_state: AdamState,
    inner_batch: Batch | Sequence[Batch],
    settings: LookaheadSettings,
    inner_q_t_target: torch.Tensor | None = None,
    lr_scale: float = 1.0,
) -> Params:
    """theta_K(z): the weights after ``settings.lookahead`` differentiable inner steps from ``params``.

    ``inner_batch``: one batch for every inner step, or one batch per inner step (fresh data each step, as the
    real steps see). ``inner_q_t_target`` optionally gives the target network's Q-values on the first inner
    batch's ``next_obs``, already computed by the Trainer. ``lr_scale``: the ``agent.lr_decay`` factor, so the
    inner steps use the learning rate the agent's steps use. ``settings.target_schedule``: ``polyak`` moves the
    target by tau between inner steps; ``held`` keeps theta-_0, as between two real target updates.
    """
    batches = [inner_batch] * settings.lookahead if isinstance(inner_batch, Batch) else list(inner_batch)
    if len(batches) != settings.lookahead:
        raise ValueError(f"{len(batches)} inner batches for a lookahead of {settings.lookahead}")
    eta = space.values(z)
    theta = {name: p.detach().requires_grad_(True) for name, p in params.items()}
    theta_target, state = target_params, adam_state
    moving_target = settings.target_schedule == "polyak"
    for k, batch in enumerate(batches):
        if k == 0 or not moving_target:  # theta-_0 is a constant: no graph needed for its Q-values
            with torch.no_grad():
                q_t_target = (
                    inner_q_t_target
                    if k == 0 and inner_q_t_target is not None
                    else _q_function(model, theta_target)(batch.next_obs)
                )
        else:
            q_t_target = _q_function(model, theta_target)(batch.next_obs)
        loss, q_tm1 = dqn_loss(
            _q_function(model, theta),
            q_t_target,
            batch,
            eta["gamma"],
            eta["huber_delta"],
            double_dqn=settings.double_dqn,
        )
        g = clip_by_global_norm(semi_gradient(loss, q_tm1, theta), settings.max_grad_norm)
        theta, state = adam_step(theta, g, state, eta["lr"] * lr_scale, betas=settings.betas, eps=settings.adam_eps)
        if moving_target and k < settings.lookahead - 1:
            tau = eta["tau"]
            theta_target = {n: tau * theta[n] + (1 - tau) * theta_target[n] for n in theta}
    return theta


def reference_loss(
    model: nn.Module, theta: Params, target_params: Params, outer_batch: Batch, settings: LookaheadSettings
) -> torch.Tensor:
    """The outer loss: the TD loss of ``theta`` on ``outer_batch`` at gamma' and delta' (both given)."""
    if settings.reference_gamma is None or settings.reference_delta is None:
        raise ValueError("reference_loss needs gamma' and delta': fill the run's own in with settings.scored_at")
    with torch.no_grad():
        outer_q_t_target = _q_function(model, target_params)(outer_batch.next_obs)
    dtype = next(iter(theta.values())).dtype
    reference_delta = torch.tensor(settings.reference_delta, dtype=dtype, device=outer_q_t_target.device)
    outer_loss, _ = dqn_loss(
        _q_function(model, theta),
        outer_q_t_target,
        outer_batch,
        settings.reference_gamma,
        reference_delta,
        double_dqn=settings.double_dqn,
    )
    return outer_loss


def lookahead_objective(
    z: torch.Tensor,
    *,
    space: HyperSpace,
    model: nn.Module,
    params: Params,
    target_params: Params,
    adam_state: AdamState,
    inner_batch: Batch | Sequence[Batch],
    outer_batch: Batch,
    settings: LookaheadSettings,
    inner_q_t_target: torch.Tensor | None = None,
    lr_scale: float = 1.0,
) -> torch.Tensor:
    """J(z): the reference TD loss on ``outer_batch`` after ``settings.lookahead`` inner steps (see :func:`unroll`)."""
    theta = unroll(
        z,
        space=space,
        model=model,
        params=params,
        target_params=target_params,
        adam_state=adam_state,
        inner_batch=inner_batch,
        settings=settings,
        inner_q_t_target=inner_q_t_target,
        lr_scale=lr_scale,
    )
    return reference_loss(model, theta, target_params, outer_batch, settings)


def agent_lookahead_objective(
    agent: DQNAgent,
    space: HyperSpace,
    inner_batch: Batch | Sequence[Batch],
    outer_batch: Batch,
    settings: LookaheadSettings,
    *,
    inner_q_t_target: torch.Tensor | None = None,
) -> torch.Tensor:
    """J(space.z) from ``agent``'s current weights, target network, Adam state and lr decay (``settings`` with
    gamma' and delta' filled in)."""
    named: dict[str, torch.Tensor] = dict(agent.q_net.named_parameters())
    return lookahead_objective(
        space.z,
        space=space,
        model=agent.q_net,
        params={n: p.detach() for n, p in named.items()},
        target_params={n: p.detach() for n, p in agent.target_net.named_parameters()},
        adam_state=adam_state_of(agent.optimizer, named),
        inner_batch=inner_batch,
        outer_batch=outer_batch,
        settings=settings,
        inner_q_t_target=inner_q_t_target,
        lr_scale=agent.lr_scale,
    )


class MetaGradientTuner(FixedTuner):
    """Every ``interval`` gradient steps, one Adam step on z along dJ/dz (clipped to ``clip`` in norm).

    ``lr_rule``: when given and lr is tuned, lr follows that hd rule and its entry of dJ/dz is masked out;
    ``lr_gate`` is that rule's gate (see :class:`.hd.LearningRateRule`).

    Self-tuning v4 also pulled gamma and huber_delta towards their references after each step
    (``self_tuning.meta_pull``), because the polyak lookahead settled gamma at 0.986 on CartPole. With the held
    lookahead (v5, the default) that bias is gone (gamma ends near 0.989 with no pull), so the pull went with it
    (benchmarks/RESULTS.md, issue 19).
    """

    def __init__(
        self,
        space: HyperSpace,
        agent: DQNAgent,
        *,
        settings: LookaheadSettings,
        meta_lr: float,
        interval: int,
        clip: float,
        lr_rule: HDSettings | None = None,
        lr_gate: LearningRateGate | None = None,
    ) -> None:
        super().__init__(space, agent)
        self.lr_rule = (
            LearningRateRule(space, agent, lr_rule, on_change=self._refresh, gate=lr_gate)
            if lr_rule is not None and "lr" in space.names
            else None
        )
        self._meta_mask = torch.tensor(
            [0.0 if self.lr_rule is not None and name == "lr" else 1.0 for name in space.names],
            dtype=space.z.dtype,
            device=space.z.device,
        )
        self.settings = settings
        self.interval = interval
        self.clip = clip
        self.meta_optimizer = torch.optim.Adam([space.z], lr=meta_lr)
        self.steps = 0
        self.skipped_updates = 0

    def hypergradient(
        self, inner_batch: Batch | Sequence[Batch], outer_batch: Batch, *, inner_q_t_target: torch.Tensor | None = None
    ) -> torch.Tensor:
        """dJ/dz at the agent's current weights, target network and optimizer state."""
        objective = agent_lookahead_objective(
            self.agent,
            self.space,
            inner_batch,
            outer_batch,
            self.settings.scored_at(self.gamma, self.huber_delta),
            inner_q_t_target=inner_q_t_target,
        )
        (hypergrad,) = torch.autograd.grad(objective, self.space.z)
        return hypergrad

    def meta_update(
        self, inner_batch: Batch | Sequence[Batch], outer_batch: Batch, *, inner_q_t_target: torch.Tensor | None = None
    ) -> None:
        raw = self.hypergradient(inner_batch, outer_batch, inner_q_t_target=inner_q_t_target)
        hypergrad = torch.where(self._meta_mask > 0, raw, torch.zeros_like(raw))  # lr's entry: the hd rule's
        if not torch.isfinite(hypergrad).all():
            self.skipped_updates += 1  # never let one bad batch poison z
            return
        self.space.set_hypergrad(hypergrad)
        if self.lr_rule is not None:
            self.space.last_hypergrad["lr"] = self.lr_rule.last_hypergrad  # log the lr hypergradient followed
        norm = torch.linalg.vector_norm(hypergrad)
        self.space.z.grad = hypergrad * torch.clamp(self.clip / (norm + 1e-12), max=1.0)
        self.meta_optimizer.step()
        self.space.z.grad = None
        self.space.clamp_()
        self._refresh()

    @property
    def _fresh_inner_batches(self) -> int:
        """Extra batches a meta-update draws: with a held target every inner step after the first gets its own."""
        return self.settings.lookahead - 1 if self.settings.target_schedule == "held" else 0

    def outer_batches(self, n_steps: int) -> int:
        """Batches the meta-updates among the next ``n_steps`` steps draw (an outer batch, and fresh inner ones
        with a held target), at multiples of ``interval``."""
        updates = -(-(self.steps + n_steps) // self.interval) - -(-self.steps // self.interval)
        return updates * (1 + self._fresh_inner_batches)

    def gradient_step(
        self, batch: Batch, sample_outer: BatchSampler, *, q_t_target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.steps % self.interval == 0:
            outer = sample_outer()
            fresh = [sample_outer() for _ in range(self._fresh_inner_batches)]
            self.meta_update([batch, *fresh] if fresh else batch, outer, inner_q_t_target=q_t_target)
        self.steps += 1
        if self.lr_rule is not None:
            return self.lr_rule.gradient_step(
                batch, self.gamma, self.huber_delta, q_t_target=q_t_target, sample_outer=sample_outer
            )
        return super().gradient_step(batch, sample_outer, q_t_target=q_t_target)

    def on_target_update(self) -> None:
        if self.lr_rule is not None:
            self.lr_rule.on_target_update()

    def records(self) -> dict[str, float]:
        return {**super().records(), **(self.lr_rule.records() if self.lr_rule is not None else {})}

    def state_dict(self) -> dict[str, object]:
        return {
            **super().state_dict(),
            "meta_optimizer": self.meta_optimizer.state_dict(),
            "steps": self.steps,
            "skipped_updates": self.skipped_updates,
            **({"lr_rule": self.lr_rule.state_dict()} if self.lr_rule is not None else {}),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        super().load_state_dict(state)
        self.meta_optimizer.load_state_dict(state["meta_optimizer"])  # type: ignore[arg-type]
        self.steps = int(state["steps"])  # type: ignore[call-overload]
        self.skipped_updates = int(state["skipped_updates"])  # type: ignore[call-overload]
        if self.lr_rule is not None:
            self.lr_rule.load_state_dict(state.get("lr_rule", {}))  # type: ignore[arg-type]
            self._forget_lr_momentum()

    def _forget_lr_momentum(self) -> None:
        """Zero the meta optimizer's moments for lr: a checkpoint written with ``lr_rule: meta`` would otherwise
        keep moving lr for a few meta-steps after resuming under the hd rule."""
        with torch.no_grad():
            for moments in self.meta_optimizer.state.values():
                for key in ("exp_avg", "exp_avg_sq"):
                    if key in moments:
                        moments[key].mul_(self._meta_mask)
