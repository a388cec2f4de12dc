"""Replay a learned hyperparameter trajectory as a fixed schedule (no self-tuning).

This is what ``dqnmap-auto train FILE --schedule`` runs: the values a self-tuned trial went through, applied
piecewise-constant by env step, so a trajectory found once can be reused without the meta-gradient cost.
"""

from __future__ import annotations

import bisect

from dqnmap_auto.config import TrainConfig
from dqnmap_auto.errors import ConfigError
from dqnmap_auto.hypergrad.tuner import FixedTuner


def require_schedule(config: TrainConfig) -> dict[str, list[tuple[int, float]]]:
    """The config's schedule, or the one-line error `train --schedule` reports without one."""
    if not config.schedule:
        raise ConfigError("--schedule: the config has no `schedule` section (write one with `study best --export`)")
    return config.schedule


class ScheduleTuner(FixedTuner):
    """Hyperparameters follow ``schedule`` ({name: [(step, value), ...]}); others stay fixed."""

    def __init__(self, *args: object, schedule: dict[str, list[tuple[int, float]]], **kwargs: object) -> None:
        self.schedule = {name: sorted(points) for name, points in schedule.items()}
        self._step = 0
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]  # (its refresh applies the schedule at step 0)

    def value_at(self, name: str, step: int) -> float:
        """The last scheduled value at or before ``step`` (the first value before the first point)."""
        points = self.schedule[name]
        index = bisect.bisect_right([s for s, _ in points], step) - 1
        return points[max(index, 0)][1]

    def _refresh(self) -> None:
        """Re-read the fixed values (a user may have set one), then the scheduled ones on top."""
        super()._refresh()
        self.set_step(self._step)

    def set_step(self, step: int) -> None:
        self._step = step
        for name in self.schedule:
            self._values[name] = self.value_at(name, step)
        self.agent.set_lr(self._values["lr"])

    def records(self) -> dict[str, float]:
        return {f"hp/{k}": v for k, v in self._values.items()}

    def replayed(self) -> set[str]:
        return set(self.schedule)
