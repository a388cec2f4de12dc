"""A differentiable Adam step on parameter dicts, matching ``torch.optim.Adam`` exactly.

The meta-gradient lookahead needs theta' = theta - lr * Adam(g(theta; eta)) inside the autograd graph; the real
training step keeps using ``torch.optim.Adam``, whose state (step, exp_avg, exp_avg_sq) seeds this one. The
finite-difference tests check the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Params = dict[str, torch.Tensor]

#: Added under the square root: sqrt'(0) is infinite, and units whose gradient is exactly 0 (dead ReLUs)
#: would turn the second-order terms into 0 * inf = NaN. Far below Adam's eps, so values are unchanged.
_SQRT_FLOOR = 1e-30


@dataclass(frozen=True)
class AdamState:
    step: float
    exp_avg: Params
    exp_avg_sq: Params


def adam_state_of(optimizer: torch.optim.Adam, named_params: dict[str, torch.Tensor]) -> AdamState:
    """Read ``optimizer``'s moments for ``named_params`` (zeros before its first step), detached."""
    exp_avg, exp_avg_sq, step = {}, {}, 0.0
    for name, param in named_params.items():
        state = optimizer.state.get(param, {})
        if state:
            exp_avg[name] = state["exp_avg"].detach()
            exp_avg_sq[name] = state["exp_avg_sq"].detach()
            step = float(state["step"])
        else:
            exp_avg[name] = torch.zeros_like(param)
            exp_avg_sq[name] = torch.zeros_like(param)
    return AdamState(step, exp_avg, exp_avg_sq)


def clip_by_global_norm(grads: Params, max_norm: float) -> Params:
    """Same rule as ``torch.nn.utils.clip_grad_norm_``, but differentiable and out of place."""
    total_norm = torch.sqrt(sum(g.square().sum() for g in grads.values()))  # type: ignore[arg-type]
    scale = torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)
    return {name: g * scale for name, g in grads.items()}


def adam_step(
    params: Params,
    grads: Params,
    state: AdamState,
    lr: torch.Tensor | float,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> tuple[Params, AdamState]:
    """theta' = theta - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), as torch.optim.Adam."""
    beta1, beta2 = betas
    step = state.step + 1
    bias_correction1 = 1 - beta1**step
    bias_correction2_sqrt = (1 - beta2**step) ** 0.5
    new_params, exp_avg, exp_avg_sq = {}, {}, {}
    for name, theta in params.items():
        g = grads[name]
        m = beta1 * state.exp_avg[name] + (1 - beta1) * g
        v = beta2 * state.exp_avg_sq[name] + (1 - beta2) * g * g
        denom = torch.sqrt(v + _SQRT_FLOOR) / bias_correction2_sqrt + eps
        new_params[name] = theta - (lr / bias_correction1) * m / denom
        exp_avg[name], exp_avg_sq[name] = m, v
    return new_params, AdamState(step, exp_avg, exp_avg_sq)
