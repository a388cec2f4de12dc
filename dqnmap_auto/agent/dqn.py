"""The DQN agent: online and target Q-networks, epsilon-greedy acting and one gradient step.

Mnih et al. 2015 (Nature), with van Hasselt et al. 2016 double DQN as an option. Hyperparameters that may
self-tune (gamma, Huber delta, tau, and the learning rate held by the optimizer) are passed in on every call
instead of being read from the config, so only the self-tuning engine decides their values.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from dqnmap_auto.agent.losses import td_loss, td_target
from dqnmap_auto.agent.networks import build_q_network
from dqnmap_auto.agent.replay import Batch
from dqnmap_auto.config import AgentConfig


def dqn_loss(
    q_online: Callable[[torch.Tensor], torch.Tensor],
    q_target: Callable[[torch.Tensor], torch.Tensor] | torch.Tensor,
    batch: Batch,
    gamma: torch.Tensor | float,
    delta: torch.Tensor | float,
    *,
    double_dqn: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """TD loss of ``batch`` and the Q-values of the taken actions.

    ``q_online`` / ``q_target`` map observations to Q-values (a module, or a ``functional_call`` closure in
    the meta-gradient lookahead); ``q_target`` may also be the target Q-values of ``batch.next_obs`` computed
    beforehand. Blocking gradients into the target is the caller's job.
    """
    q_tm1 = q_online(batch.obs).gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
    q_t_target = q_target if isinstance(q_target, torch.Tensor) else q_target(batch.next_obs)
    q_t_selector = q_online(batch.next_obs).detach() if double_dqn else None
    y = td_target(batch.rewards, batch.terminated, q_t_target, gamma, q_t_selector)
    return td_loss(q_tm1, y, delta), q_tm1


class DQNAgent:
    """Networks, optimizer and acting for one DQN learner.

    Args:
        obs_shape: shape of one observation.
        n_actions: size of the discrete action space.
        config: network and optimizer settings.
        device: where the networks live.
        dtype: parameter dtype (float64 is used by the finite-difference tests).
        pixels: observations are uint8 images: they stay uint8 up to the network, which scales them to [0, 1].
    """

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        n_actions: int,
        config: AgentConfig,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        pixels: bool = False,
    ) -> None:
        self.config = config
        self.n_actions = n_actions
        self.device = torch.device(device)
        self.dtype = dtype
        self.pixels = pixels
        self.q_net: nn.Module = build_q_network(obs_shape, n_actions, config, pixels=pixels).to(
            device=self.device, dtype=dtype
        )
        self._params: list[torch.Tensor] = list(self.q_net.parameters())
        self.target_net: nn.Module = copy.deepcopy(self.q_net)
        self.target_net.requires_grad_(False)
        # fused=True: one kernel for the whole update (CPU and CUDA), ~2x faster than the per-tensor loop.
        self.optimizer = torch.optim.Adam(self.q_net.parameters(), lr=config.lr, eps=config.adam_eps, fused=True)
        self._lr = config.lr
        self.lr_scale = 1.0

    @property
    def params(self) -> list[torch.Tensor]:
        """The online parameters (cached: walking the module tree costs ~20 us a call, many calls a step)."""
        return self._params

    @property
    def lr(self) -> float:
        """The learning-rate hyperparameter (what self-tuning tunes); the optimizer uses ``lr * lr_scale``."""
        return self._lr

    def set_lr(self, lr: float) -> None:
        """Only the self-tuning engine calls this (a schedule elsewhere would silently undo its work)."""
        self._lr = lr
        self._apply_lr()

    def set_lr_scale(self, scale: float) -> None:
        """The decay factor of ``agent.lr_decay`` (the Trainer's job): kept apart from the tuned lr, so a tuner
        never reads the decay back as its own value."""
        self.lr_scale = scale
        self._apply_lr()

    def _apply_lr(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr * self.lr_scale

    @torch.no_grad()
    def greedy_actions(self, obs: np.ndarray) -> np.ndarray:
        # Pixels travel as uint8 (4x fewer bytes to the device); the network's first layer scales them.
        dtype = None if self.pixels else self.dtype
        q_values = self.q_net(torch.as_tensor(obs, device=self.device, dtype=dtype))
        return q_values.argmax(dim=-1).cpu().numpy()

    def act(self, obs: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
        """Epsilon-greedy per env; the network runs only if some env acts greedily."""
        n_envs = len(obs)
        explore = rng.random(n_envs) < epsilon
        actions = rng.integers(0, self.n_actions, size=n_envs)
        if not explore.all():
            greedy = self.greedy_actions(obs)
            actions = np.where(explore, actions, greedy)
        return actions

    @torch.no_grad()
    def target_q_values(self, next_obs: torch.Tensor) -> torch.Tensor:
        """Target-network Q-values; the target is fixed during a training phase, so the Trainer computes
        them for all of the phase's batches in one large forward pass (much cheaper than one per step)."""
        return self.target_net(next_obs)

    def loss(
        self,
        batch: Batch,
        gamma: torch.Tensor | float,
        delta: torch.Tensor | float,
        *,
        q_t_target: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """TD loss on ``batch`` with the target network held fixed (no gradient into it)."""
        target = self.target_q_values if q_t_target is None else q_t_target
        return dqn_loss(self.q_net, target, batch, gamma, delta, double_dqn=self.config.double_dqn)

    def gradient_step(
        self,
        batch: Batch,
        gamma: torch.Tensor | float,
        delta: torch.Tensor | float,
        *,
        q_t_target: torch.Tensor | None = None,
        on_gradients: Callable[[list[torch.Tensor]], None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One Adam step on the TD loss; returns (loss, mean Q) as detached tensors (no host sync).

        ``q_t_target`` are precomputed target Q-values of ``batch.next_obs`` (optional). ``on_gradients``
        sees the raw gradients before clipping and before the optimizer step: hypergradient descent reads
        them there and may change the learning rate used by this very step.
        """
        loss, q_tm1 = self.loss(batch, gamma, delta, q_t_target=q_t_target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if on_gradients is not None:
            on_gradients([p.grad for p in self.params if p.grad is not None])
        nn.utils.clip_grad_norm_(self._params, self.config.max_grad_norm, foreach=True)
        self.optimizer.step()
        return loss.detach(), q_tm1.detach().mean()

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        """theta_target <- tau * theta + (1 - tau) * theta_target (tau = 1: hard copy)."""
        target: list[torch.Tensor] = list(self.target_net.parameters())
        if tau >= 1.0:
            torch._foreach_copy_(target, self.params)
        else:
            torch._foreach_lerp_(target, self.params, tau)

    def state_dict(self) -> dict[str, object]:
        return {
            "q_net": self.q_net.state_dict(),
            "target_net": self.target_net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.q_net.load_state_dict(state["q_net"])  # type: ignore[arg-type]
        self.target_net.load_state_dict(state["target_net"])  # type: ignore[arg-type]
        self.optimizer.load_state_dict(state["optimizer"])  # type: ignore[arg-type]
