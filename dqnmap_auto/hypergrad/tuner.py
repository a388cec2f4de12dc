"""The interface between the training loop and the self-tuning rules.

The Trainer calls :meth:`Tuner.gradient_step` for every gradient step; a tuner decides the hyperparameter values
used by that step and may update them. :class:`FixedTuner` (no self-tuning) is the base the others extend.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from dqnmap_auto.agent.dqn import DQNAgent
from dqnmap_auto.agent.replay import Batch
from dqnmap_auto.hypergrad.space import HyperSpace

#: Draws a fresh replay batch (the meta-objective's outer batch).
BatchSampler = Callable[[], Batch]


class FixedTuner:
    """Hyperparameters stay at their configured values; the base of the self-tuning rules."""

    def __init__(self, space: HyperSpace, agent: DQNAgent) -> None:
        self.space = space
        self.agent = agent
        self._values: dict[str, float] = {}
        self._refresh()

    @property
    def gamma(self) -> float:
        return self._values["gamma"]

    @property
    def huber_delta(self) -> float:
        return self._values["huber_delta"]

    @property
    def tau(self) -> float:
        return self._values["tau"]

    def _refresh(self) -> None:
        """Re-read the values after ``space.z`` changed (one host sync), and hand lr to the optimizer."""
        self.space.enforce_holds()  # a held value stays held whatever rule moved z
        self._values = self.space.current()
        self.agent.set_lr(self._values["lr"])

    # -- live control (``dqnmap_auto.control``): narrow, rule-agnostic ----------------------------------------
    def set_value(self, name: str, value: float) -> None:
        """Set a hyperparameter now (see :meth:`HyperSpace.set_value`); the next gradient step uses it."""
        self.space.set_value(name, value)
        self._refresh()

    def hold(self, name: str) -> None:
        """Freeze a self-tuned value (its hypergradient is still computed and logged)."""
        self.space.hold(name)
        self._refresh()

    def release(self, name: str) -> None:
        """Let a frozen value self-tune again."""
        self.space.release(name)
        self._refresh()

    def replayed(self) -> set[str]:
        """Names a replayed schedule drives (``train --schedule``): setting them would be undone at once."""
        return set()

    def gradient_step(
        self, batch: Batch, sample_outer: BatchSampler, *, q_t_target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One gradient step of the agent with the current values (``q_t_target``: precomputed targets)."""
        return self.agent.gradient_step(batch, self.gamma, self.huber_delta, q_t_target=q_t_target)

    def outer_batches(self, n_steps: int) -> int:
        """How many outer batches the next ``n_steps`` gradient steps will draw; the Trainer samples them with
        the phase's batches, so a phase moves its data to the device once."""
        return 0

    def set_step(self, step: int) -> None:
        """Told the env step before each training phase (schedules use it; self-tuning does not)."""

    def on_target_update(self) -> None:
        """Told after every target-network update (the hd rule can measure at the start of each target period)."""

    def records(self) -> dict[str, float]:
        """``hp/<name>`` for every hyperparameter, ``hypergrad/<name>`` for the tuned ones."""
        out = {f"hp/{k}": v for k, v in self.space.current().items()}
        out.update({f"hypergrad/{k}": v for k, v in self.space.last_hypergrad.items()})
        return out

    def state_dict(self) -> dict[str, object]:
        return {"space": self.space.state_dict()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.space.load_state_dict(state["space"])  # type: ignore[arg-type]
        self._refresh()
