"""Hypergradient descent on the learning rate (Baydin et al., ICLR 2018, arXiv 1703.04782), Adam variant.

With theta_t = theta_{t-1} - lr * u_{t-1} (u: the Adam direction of the previous step),

    dL(theta_t) / d lr = -g_t . u_{t-1}            (g_t: the raw gradient at theta_t)

and in z = log lr the hypergradient is lr times that. The update is the normalised multiplicative form

    z <- clamp(z + beta * cos(g_t, u_{t-1}), log low, log high)

so one step changes lr by at most a factor e^beta: it cannot explode whatever the gradient scale. Cost: one
parameter copy and one dot product per gradient step.
"""

from __future__ import annotations

import torch

from dqnmap_auto.agent.dqn import DQNAgent
from dqnmap_auto.agent.replay import Batch
from dqnmap_auto.hypergrad.space import HyperSpace
from dqnmap_auto.hypergrad.tuner import BatchSampler, FixedTuner


class HypergradientDescentTuner(FixedTuner):
    """Tunes ``lr`` online from the alignment of successive update directions."""

    def __init__(self, space: HyperSpace, agent: DQNAgent, *, beta: float) -> None:
        if space.names != ["lr"]:
            raise ValueError(f"hd mode tunes lr only, got {space.names}")
        super().__init__(space, agent)
        self.beta = beta
        self._previous_direction: list[torch.Tensor] | None = None

    def _on_gradients(self, grads: list[torch.Tensor]) -> None:
        """Between backward and the optimizer step: follow the hypergradient, then let this step use it."""
        u = self._previous_direction
        if u is None:
            return
        dot = torch.stack([(g * d).sum() for g, d in zip(grads, u, strict=True)]).sum()
        g_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        u_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(u)))
        hypergrad_z = -self._values["lr"] * dot  # dL/dz, z = log lr
        self.space.set_hypergrad(hypergrad_z.reshape(1))
        cosine = dot / (g_norm * u_norm + 1e-12)
        if torch.isfinite(cosine):
            with torch.no_grad():
                self.space.z.add_(self.beta * cosine)
            self.space.clamp_()
            self._refresh()

    def gradient_step(
        self, batch: Batch, sample_outer: BatchSampler, *, q_t_target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        before = [p.detach().clone() for p in self.agent.params]
        loss, q_mean = self.agent.gradient_step(
            batch, self.gamma, self.huber_delta, q_t_target=q_t_target, on_gradients=self._on_gradients
        )
        # u_t = (theta_t - theta_{t+1}) / lr_t: the Adam direction this step followed.
        lr = self.agent.lr
        direction = torch._foreach_sub(before, [p.detach() for p in self.agent.params])
        torch._foreach_div_(direction, lr)
        self._previous_direction = direction
        return loss, q_mean

    def state_dict(self) -> dict[str, object]:
        return {**super().state_dict(), "previous_direction": self._previous_direction}

    def load_state_dict(self, state: dict[str, object]) -> None:
        super().load_state_dict(state)
        self._previous_direction = state.get("previous_direction")  # type: ignore[assignment]
