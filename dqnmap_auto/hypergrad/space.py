"""Hyperparameters <-> one unconstrained tensor ``z``.

Positive scales (lr, Huber delta) live as log(value); quantities in (0, 1) (gamma, tau) as logit(value). Bounds
are applied in z-space by clamping after every update, so a value can never leave [low, high], and the
mapping keeps gradients well scaled: a step of 0.1 in z is a 10% change of lr or of (1 - gamma) odds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

#: How each tunable hyperparameter is made unconstrained.
TRANSFORMS: dict[str, str] = {"lr": "log", "huber_delta": "log", "gamma": "logit", "tau": "logit"}


def to_unconstrained(name: str, value: float) -> float:
    """log or logit of ``value``, by the transform of ``name``."""
    if TRANSFORMS[name] == "log":
        return math.log(value)
    return math.log(value) - math.log1p(-value)


def from_unconstrained(name: str, z: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_unconstrained`, differentiable."""
    return torch.exp(z) if TRANSFORMS[name] == "log" else torch.sigmoid(z)


def trust_region(
    name: str, initial: float, bounds: tuple[float, float], max_change: float | None
) -> tuple[float, float]:
    """``bounds`` narrowed to at most a factor ``max_change`` away from ``initial`` (in z: |z - z0| <= log k).

    For lr and delta the factor applies to the value, for gamma and tau to the odds x / (1 - x). Why: one-step
    meta-objectives are biased towards small learning rates (Wu et al. 2018); a trust region keeps the inner
    loop a local refinement of the scale the outer loop (Optuna) chose.
    """
    low, high = bounds
    x0 = min(max(initial, low), high)
    if max_change is None:
        return low, high
    z0, radius = to_unconstrained(name, x0), math.log(max_change)
    near_low = float(from_unconstrained(name, torch.tensor(z0 - radius, dtype=torch.float64)))
    near_high = float(from_unconstrained(name, torch.tensor(z0 + radius, dtype=torch.float64)))
    return max(low, near_low), min(high, near_high)


class HyperSpace:
    """The current hyperparameter values; the tuned ones are entries of the leaf tensor ``z``.

    Args:
        initial: value of every hyperparameter (tuned or not); tuned initial values are clamped into bounds.
        tuned: names that self-tune, in the order of ``z``'s entries.
        bounds: (low, high) per tuned name.
        dtype: float dtype of ``z`` and of the values (float64 in the finite-difference tests).
    """

    def __init__(
        self,
        initial: Mapping[str, float],
        tuned: Sequence[str],
        bounds: Mapping[str, tuple[float, float]],
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        self.names = list(tuned)
        self.fixed = {k: float(v) for k, v in initial.items() if k not in self.names}
        self.bounds = {name: bounds[name] for name in self.names}
        self.initial = {name: min(max(float(initial[name]), bounds[name][0]), bounds[name][1]) for name in self.names}
        self._z_low = torch.tensor([to_unconstrained(n, self.bounds[n][0]) for n in self.names], dtype=dtype)
        self._z_high = torch.tensor([to_unconstrained(n, self.bounds[n][1]) for n in self.names], dtype=dtype)
        z0 = [to_unconstrained(n, self.initial[n]) for n in self.names]
        self.z = torch.tensor(z0, dtype=dtype, device=device, requires_grad=True)
        self._z_low, self._z_high = self._z_low.to(device), self._z_high.to(device)
        self.dtype, self.device = dtype, device
        self.last_hypergrad = {name: 0.0 for name in self.names}

    def values(self, z: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """All hyperparameters as 0-d tensors; the tuned ones are differentiable functions of ``z``."""
        z = self.z if z is None else z
        out = {k: torch.tensor(v, dtype=self.dtype, device=self.device) for k, v in self.fixed.items()}
        for index, name in enumerate(self.names):
            out[name] = from_unconstrained(name, z[index])
        return out

    def current(self) -> dict[str, float]:
        """All hyperparameters as Python floats (detached)."""
        with torch.no_grad():
            return {k: float(v) for k, v in self.values().items()}

    def clamp_(self) -> None:
        """Project ``z`` back into the bounds (in place, outside autograd)."""
        with torch.no_grad():
            self.z.copy_(torch.maximum(torch.minimum(self.z, self._z_high), self._z_low))

    def at_bound(self) -> dict[str, bool]:
        """Which tuned hyperparameters sit on a bound now."""
        with torch.no_grad():
            tol = 1e-6
            hit = (self.z <= self._z_low + tol) | (self.z >= self._z_high - tol)
        return {name: bool(hit[i]) for i, name in enumerate(self.names)}

    def set_hypergrad(self, grad: torch.Tensor) -> None:
        """Remember dJ/dz per tuned name (for logging)."""
        values = grad.detach().cpu().tolist()
        self.last_hypergrad = dict(zip(self.names, values, strict=True))

    def state_dict(self) -> dict[str, object]:
        return {
            "z": self.z.detach().clone(),
            "names": list(self.names),
            "last_hypergrad": dict(self.last_hypergrad),
        }

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        if list(state["names"]) != self.names:  # type: ignore[call-overload]
            raise ValueError(f"checkpoint tunes {state['names']}, config tunes {self.names}")
        with torch.no_grad():
            self.z.copy_(state["z"])  # type: ignore[arg-type]
        self.last_hypergrad = dict(state["last_hypergrad"])  # type: ignore[call-overload]
