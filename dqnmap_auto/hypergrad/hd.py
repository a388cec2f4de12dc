"""Hypergradient descent on the learning rate (Baydin et al., ICLR 2018, arXiv 1703.04782), Adam variant.

With theta_t = theta_{t-1} - lr * u_{t-1} (u: the Adam direction of the previous step),

    dL(theta_t) / d lr = -g_t . u_{t-1}            (g_t: the raw gradient at theta_t)

and in z = log lr the hypergradient is lr times that: -g_t . (theta_{t-1} - theta_t), no division needed.
The update is the normalised multiplicative form

    z <- clamp(z + beta * cos(g_t, u_{t-1}), log low, log high)

so one update changes lr by at most a factor e^beta: it cannot explode whatever the gradient scale. The
update runs every ``interval`` gradient steps (the step after one whose direction was recorded): one parameter
copy and one dot product per ``interval`` steps.
"""

from __future__ import annotations

import math

import torch

from dqnmap_auto.agent.dqn import DQNAgent
from dqnmap_auto.agent.replay import Batch
from dqnmap_auto.hypergrad.space import HyperSpace
from dqnmap_auto.hypergrad.tuner import BatchSampler, FixedTuner


class HypergradientDescentTuner(FixedTuner):
    """Tunes ``lr`` online from the alignment of successive update directions."""

    def __init__(self, space: HyperSpace, agent: DQNAgent, *, beta: float, interval: int = 1) -> None:
        if space.names != ["lr"]:
            raise ValueError(f"hd mode tunes lr only, got {space.names}")
        super().__init__(space, agent)
        self.beta = beta
        self.interval = interval
        self.steps = 0
        # Two preallocated parameter copies: theta_t before a recorded step, then the step lr_t * u_t.
        self._buffers = [[torch.empty_like(p) for p in agent.params] for _ in range(2)]
        self._previous_step: list[torch.Tensor] | None = None

    def _on_gradients(self, grads: list[torch.Tensor]) -> None:
        """Between backward and the optimizer step: follow the hypergradient, then let this step use it."""
        step = self._previous_step  # theta_{t-1} - theta_t = lr * u_{t-1}
        if step is None:
            return
        dot = torch.stack([torch.vdot(g.view(-1), d.view(-1)) for g, d in zip(grads, step, strict=True)]).sum()
        norms = torch.stack(torch._foreach_norm(grads) + torch._foreach_norm(step))
        g_norm = torch.linalg.vector_norm(norms[: len(grads)])
        step_norm = torch.linalg.vector_norm(norms[len(grads) :])
        hypergrad_z, cosine = torch.stack([-dot, dot / (g_norm * step_norm + 1e-30)]).tolist()  # one sync
        if not math.isfinite(cosine):
            return
        self.space.last_hypergrad["lr"] = hypergrad_z  # dL/dz = -lr g.u = -g.(lr u)
        with torch.no_grad():
            self.space.z.add_(self.beta * cosine)
        self.space.clamp_()
        self._refresh()  # lr read back from z (its dtype), as a checkpoint restore will read it

    def gradient_step(
        self, batch: Batch, sample_outer: BatchSampler, *, q_t_target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A plain step, plus: every ``interval``-th step records its update lr_t * u_t (two parameter
        copies, ~20% of a step on this CPU, hence the interval), and the step after it follows the
        hypergradient g_{t+1} . u_t before updating."""
        self.steps += 1
        use = self._previous_step is not None
        record = self.steps % self.interval == 0
        if record:
            before = self._free_buffer()
            with torch.no_grad():
                torch._foreach_copy_(before, self.agent.params)
        loss, q_mean = self.agent.gradient_step(
            batch,
            self.gamma,
            self.huber_delta,
            q_t_target=q_t_target,
            on_gradients=self._on_gradients if use else None,
        )
        if use:
            self._previous_step = None
        if record:
            with torch.no_grad():
                torch._foreach_sub_(before, self.agent.params)  # now lr_t * u_t
            self._previous_step = before
        return loss, q_mean

    def _free_buffer(self) -> list[torch.Tensor]:
        """A preallocated parameter-shaped buffer not holding the pending recorded step."""
        return self._buffers[1] if self._previous_step is self._buffers[0] else self._buffers[0]

    def state_dict(self) -> dict[str, object]:
        return {**super().state_dict(), "previous_step": self._previous_step, "steps": self.steps}

    def load_state_dict(self, state: dict[str, object]) -> None:
        super().load_state_dict(state)
        saved = state.get("previous_step")  # a checkpoint holds CPU tensors: copy them onto the parameters' device
        self._previous_step = None
        if saved is not None:
            with torch.no_grad():
                torch._foreach_copy_(self._buffers[0], list(saved))  # type: ignore[call-overload]
            self._previous_step = self._buffers[0]
        self.steps = int(state.get("steps", 0))  # type: ignore[call-overload]
