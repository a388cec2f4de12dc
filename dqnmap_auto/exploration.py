"""What live control may do to the epsilon-greedy schedule: set it, hold it, release it.

The configured schedule (``Trainer.epsilon``, SB3's linear decay) stays the default. A ``set`` re-anchors it: the
decay continues from the new value, reaching ``exploration_final_eps`` where the configured decay window ends
(after the window, the new value simply stays), just as self-tuning continues from a value a user sets. A
``freeze`` holds epsilon at its current value until ``unfreeze`` returns it to the (possibly re-anchored) schedule.
The state is two optional numbers, so a checkpoint keeps it as plain data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class EpsilonControl:
    """``anchor``: (env step, value) the schedule continues from; ``held``: the value held by a freeze."""

    anchor: tuple[int, float] | None = None
    held: float | None = None

    @property
    def active(self) -> bool:
        return self.anchor is not None or self.held is not None

    def value(self, step: int, *, decay_end: float, final: float) -> float | None:
        """Epsilon at ``step`` as live control has it, or None when the configured schedule rules."""
        if self.held is not None:
            return self.held
        if self.anchor is None:
            return None
        start, value = self.anchor
        if decay_end <= start:
            return value
        return value + (final - value) * min(1.0, (step - start) / (decay_end - start))

    def set(self, step: int, value: float) -> None:
        """Continue the schedule from ``value`` at ``step`` (a held epsilon stays held, at ``value``)."""
        self.anchor = (step, float(value))
        if self.held is not None:
            self.held = float(value)

    def hold(self, value: float) -> None:
        self.held = float(value)

    def release(self) -> None:
        self.held = None

    def state_dict(self) -> dict[str, Any]:
        return {"anchor": list(self.anchor) if self.anchor is not None else None, "held": self.held}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        anchor = state.get("anchor")
        self.anchor = (int(anchor[0]), float(anchor[1])) if anchor is not None else None
        held = state.get("held")
        self.held = float(held) if held is not None else None
