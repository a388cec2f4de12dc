"""Whether a command fits a run, and applying it through the Trainer's and the tuner's narrow methods.

The same :func:`check` runs twice: in the sender (the CLI, against the hyperparameter space rebuilt from the
trial's config), so a bad command exits with its reason before anything is stored, and in the trainer, which has
the last word (a dashboard command was never checked, and a replayed schedule is known only there).

What may be set: a self-tuned value within its self-tuning bounds (as narrowed by ``self_tuning.max_change``); a
fixed value within its config field's constraints; epsilon within [0, 1]. What may be frozen: a self-tuned value,
or epsilon. Every command is all or nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from dqnmap_auto.config import AgentConfig, format_validation_error
from dqnmap_auto.control.commands import Command

if TYPE_CHECKING:
    from dqnmap_auto.hypergrad.space import HyperSpace
    from dqnmap_auto.trainer import Trainer

APPLIED, REJECTED = "applied", "rejected"


@dataclass(frozen=True)
class Outcome:
    """``status`` applied or rejected; ``detail`` old -> new values or the reason; ``changes`` name -> (old, new)."""

    status: str
    detail: str
    changes: dict[str, tuple[float, float]] = field(default_factory=dict)


class SpaceView(Protocol):
    """What :func:`check` reads of a hyperparameter space: a :class:`HyperSpace`, or a :class:`PublishedSpace`."""

    @property
    def names(self) -> list[str]: ...
    @property
    def bounds(self) -> Mapping[str, tuple[float, float]]: ...
    @property
    def fixed(self) -> Mapping[str, float]: ...


@dataclass(frozen=True)
class PublishedSpace:
    """A running trainer's space as it publishes it (plain data), so a sender checks a command without torch."""

    names: list[str]
    bounds: Mapping[str, tuple[float, float]]
    fixed: Mapping[str, float]
    replayed: Sequence[str] = ()

    @classmethod
    def of(cls, space: HyperSpace, replayed: Collection[str] = ()) -> PublishedSpace:
        return cls(list(space.names), dict(space.bounds), dict(space.fixed), sorted(replayed))

    def to_json(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "bounds": {k: list(v) for k, v in self.bounds.items()},
            "fixed": dict(self.fixed),
            "replayed": list(self.replayed),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PublishedSpace:
        return cls(
            names=list(data["names"]),
            bounds={k: (float(v[0]), float(v[1])) for k, v in dict(data["bounds"]).items()},
            fixed={k: float(v) for k, v in dict(data["fixed"]).items()},
            replayed=list(data.get("replayed", [])),
        )


def _fixed_value_problem(name: str, value: float) -> str | None:
    """The config's own constraint on a fixed value (e.g. gamma in (0, 1)), or None when it fits."""
    try:
        AgentConfig.model_validate({name: value})
    except ValidationError as error:
        return format_validation_error(error).replace(f"{name}: ", f"{name}={value:.6g}: ", 1)
    return None


def check(command: Command, space: SpaceView, *, replayed: Collection[str] = ()) -> list[str]:
    """Why ``command`` cannot apply to a run with this ``space`` (empty when it can)."""
    if command.invalid is not None:
        return [command.invalid]
    problems: list[str] = []
    for name in command.names:
        if name == "epsilon":
            value = command.values.get(name)
            if value is not None and not 0.0 <= value <= 1.0:
                problems.append(f"epsilon={value:.6g} is outside [0, 1]")
            continue
        if name in replayed:
            problems.append(f"{name} follows the replayed schedule (train --schedule) and cannot be changed")
            continue
        tuned = name in space.names
        if command.verb == "set":
            value = command.values[name]
            if tuned:
                low, high = space.bounds[name]
                if not low <= value <= high:
                    problems.append(f"{name}={value:.6g} is outside its self-tuning bounds [{low:.6g}, {high:.6g}]")
            elif (problem := _fixed_value_problem(name, value)) is not None:
                problems.append(problem)
        elif not tuned:
            fixed = space.fixed.get(name, float("nan"))
            problems.append(f"{name} does not self-tune in this run (fixed at {fixed:.6g}): nothing to {command.verb}")
    return problems


def current_values(trainer: Trainer) -> dict[str, float]:
    """Every hyperparameter a command can name, as the run uses it now."""
    return {**trainer.tuner.space.current(), "epsilon": trainer.epsilon()}


def frozen_names(trainer: Trainer) -> list[str]:
    """What is frozen now: held self-tuned values, and epsilon when held."""
    held = list(trainer.tuner.space.held())
    return [*held, "epsilon"] if trainer.exploration.held is not None else held


def apply(trainer: Trainer, command: Command) -> Outcome:
    """Apply ``command`` to ``trainer`` at a phase boundary, or reject it whole with the reasons."""
    problems = check(command, trainer.tuner.space, replayed=trainer.tuner.replayed())
    if problems:
        return Outcome(REJECTED, "; ".join(problems))
    before = current_values(trainer)
    if command.verb == "stop":
        trainer.request_stop()
        return Outcome(APPLIED, f"stopping at step {trainer.step}; final evaluation next")
    for name in command.names:
        if name == "epsilon":
            _apply_epsilon(trainer, command, name)
        elif command.verb == "set":
            trainer.tuner.set_value(name, command.values[name])
        elif command.verb == "freeze":
            trainer.tuner.hold(name)
        else:
            trainer.tuner.release(name)
    after = current_values(trainer)
    changes = {name: (before[name], after[name]) for name in command.names}
    return Outcome(APPLIED, describe(command.verb, changes), changes)


def _apply_epsilon(trainer: Trainer, command: Command, name: str) -> None:
    if command.verb == "set":
        trainer.exploration.set(trainer.step, command.values[name])
    elif command.verb == "freeze":
        trainer.exploration.hold(trainer.epsilon())
    else:
        trainer.exploration.release()


def describe(verb: str, changes: dict[str, tuple[float, float]]) -> str:
    """``lr 0.001 -> 0.0003; gamma 0.99 -> 0.995`` for set, ``lr held at 0.0003`` for freeze, and so on."""
    if verb == "set":
        return "; ".join(f"{n} {old:.6g} -> {new:.6g}" for n, (old, new) in changes.items())
    if verb == "freeze":
        return "; ".join(f"{n} held at {new:.6g}" for n, (_, new) in changes.items())
    return "; ".join(f"{n} follows its rule again from {new:.6g}" for n, (_, new) in changes.items())
