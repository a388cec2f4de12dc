"""Hyperparameters <-> one unconstrained tensor ``z``.

Positive scales (lr, Huber delta) live as log(value); quantities in (0, 1) (gamma, tau) as logit(value). Bounds
are applied in z-space by clamping after every update, so a value can never leave [low, high], and the
mapping keeps gradients well scaled: a step of 0.1 in z is a 10% change of lr or of (1 - gamma) odds.

Live control (``dqnmap_auto.control``) goes through three narrow methods: :meth:`HyperSpace.set_value` writes a
value (into z for a tuned one, so self-tuning goes on from it), :meth:`HyperSpace.hold` freezes a tuned value and
:meth:`HyperSpace.release` lets it move again. A hold is part of the projection :meth:`HyperSpace.clamp_` that every
rule already applies after moving z, so it holds whatever rule moved z, while the rule still computes (and logs)
the hypergradient of the held entry.
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
        # Held (frozen) entries of z: a mask and their values; None while nothing is held (no cost then).
        self._hold_mask: torch.Tensor | None = None
        self._hold_z = torch.zeros_like(self._z_low)

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
        """Project ``z`` back into the bounds, and held entries back to their held values (in place, outside
        autograd)."""
        with torch.no_grad():
            z = torch.maximum(torch.minimum(self.z, self._z_high), self._z_low)
            if self._hold_mask is not None:
                z = torch.where(self._hold_mask, self._hold_z, z)
            self.z.copy_(z)

    def enforce_holds(self) -> None:
        """Put held entries back (a no-op while nothing is held); for owners that re-read ``z`` after a change."""
        if self._hold_mask is not None:
            with torch.no_grad():
                self.z.copy_(torch.where(self._hold_mask, self._hold_z, self.z))

    def at_bound(self) -> dict[str, bool]:
        """Which tuned hyperparameters sit on a bound now (a held one is the user's choice, never "at bound")."""
        held = set(self.held())
        with torch.no_grad():
            tol = 1e-6
            hit = (self.z <= self._z_low + tol) | (self.z >= self._z_high - tol)
        return {name: bool(hit[i]) and name not in held for i, name in enumerate(self.names)}

    # -- live control -------------------------------------------------------------------------------------
    def set_value(self, name: str, value: float) -> None:
        """Set one hyperparameter to ``value``.

        A tuned one is written into ``z`` (self-tuning then goes on from it; a held one stays held, at the new
        value) and must lie within its bounds: ValueError with the bounds otherwise. A fixed one is replaced;
        its validity is the caller's to check (the config's field constraints).
        """
        if name in self.fixed:
            self.fixed[name] = float(value)
            return
        if name not in self.names:
            raise KeyError(name)
        low, high = self.bounds[name]
        if not low <= value <= high:
            raise ValueError(f"{name}={value:.6g} is outside its self-tuning bounds [{low:.6g}, {high:.6g}]")
        index = self.names.index(name)
        with torch.no_grad():
            self.z[index] = to_unconstrained(name, value)
            self._hold_z[index] = self.z[index]

    def hold(self, name: str) -> None:
        """Freeze the tuned ``name`` at its current value: every later projection puts it back."""
        index = self.names.index(name)  # ValueError for a fixed or unknown name
        mask = self._hold_mask if self._hold_mask is not None else torch.zeros_like(self._z_low, dtype=torch.bool)
        with torch.no_grad():
            mask[index] = True
            self._hold_z[index] = self.z[index]
        self._hold_mask = mask

    def release(self, name: str) -> None:
        """Let the tuned ``name`` self-tune again, from its held value."""
        index = self.names.index(name)
        if self._hold_mask is None:
            return
        self._hold_mask[index] = False
        if not bool(self._hold_mask.any()):
            self._hold_mask = None

    def held(self) -> list[str]:
        """The tuned names held now, in ``z`` order."""
        if self._hold_mask is None:
            return []
        return [name for name, on in zip(self.names, self._hold_mask.tolist(), strict=True) if on]

    def set_hypergrad(self, grad: torch.Tensor) -> None:
        """Remember dJ/dz per tuned name (for logging)."""
        values = grad.detach().cpu().tolist()
        self.last_hypergrad = dict(zip(self.names, values, strict=True))

    def state_dict(self) -> dict[str, object]:
        return {
            "z": self.z.detach().clone(),
            "names": list(self.names),
            "last_hypergrad": dict(self.last_hypergrad),
            "fixed": dict(self.fixed),  # a user may have set one (live control)
            "held": self.held(),
        }

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        if list(state["names"]) != self.names:  # type: ignore[call-overload]
            raise ValueError(f"checkpoint tunes {state['names']}, config tunes {self.names}")
        with torch.no_grad():
            self.z.copy_(state["z"])  # type: ignore[arg-type]
        self.last_hypergrad = dict(state["last_hypergrad"])  # type: ignore[call-overload]
        # Checkpoints written before live control lack these: nothing was set or held then.
        for name, value in dict(state.get("fixed", {})).items():  # type: ignore[call-overload]
            if name in self.fixed:
                self.fixed[name] = float(value)
        self._hold_mask = None
        for name in state.get("held", []):  # type: ignore[attr-defined]
            self.hold(name)
