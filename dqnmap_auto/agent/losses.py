"""The TD loss as small pure functions that read like the math.

Naming follows rlax: ``q_tm1`` are the online Q-values of the taken actions, ``q_t_target`` the target-net
Q-values at the next state. Every hyperparameter (gamma, delta) may be a tensor in an autograd graph: the
meta-gradient engine differentiates the loss with respect to them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def huber(error: torch.Tensor, delta: torch.Tensor | float) -> torch.Tensor:
    """Elementwise Huber loss, differentiable in ``delta`` too.

    0.5 e^2 for |e| <= delta, delta (|e| - 0.5 delta) beyond: written as quadratic + linear parts so that a
    tensor ``delta`` stays in the graph (``torch.nn.functional.huber_loss`` only takes a float).
    """
    abs_error = error.abs()
    quadratic = torch.minimum(abs_error, torch.as_tensor(delta, dtype=error.dtype, device=error.device))
    linear = abs_error - quadratic
    return 0.5 * quadratic.square() + delta * linear


def td_target(
    r_t: torch.Tensor,
    terminated_t: torch.Tensor,
    q_t_target: torch.Tensor,
    gamma: torch.Tensor | float,
    q_t_selector: torch.Tensor | None = None,
) -> torch.Tensor:
    """y = r + gamma (1 - terminated) Q_target(s', a*), a* = argmax of the selector (online net: double DQN).

    The caller decides whether gradients flow into ``q_t_target`` (they must not for the online params: DQN's
    semi-gradient); gradients do flow into ``gamma``.
    """
    if q_t_selector is None:
        v_t = q_t_target.max(dim=-1).values
    else:
        a_star = q_t_selector.argmax(dim=-1, keepdim=True)
        v_t = q_t_target.gather(-1, a_star).squeeze(-1)
    return r_t + gamma * (1.0 - terminated_t) * v_t


def td_loss(q_tm1: torch.Tensor, y: torch.Tensor, delta: torch.Tensor | float) -> torch.Tensor:
    """Mean Huber loss of the TD errors ``y - q_tm1``.

    A float ``delta`` (the plain training step) takes PyTorch's fused kernel; a tensor one (the meta-gradient
    lookahead) the differentiable form above. Both compute the same values.
    """
    if isinstance(delta, float):
        return F.huber_loss(q_tm1, y, delta=delta)
    return huber(y - q_tm1, delta).mean()
