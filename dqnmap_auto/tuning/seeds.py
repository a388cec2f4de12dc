"""The seeds of one trial: trained in turn, checkpointed together, resumed together.

Why together: a retried trial resumes all its seeds from one step. If each seed checkpointed on its own while
they are trained in turn, seed 0 would write step s while seed 1 still trains from s - e to s; a worker killed
then (about half the time with two seeds) leaves checkpoints that disagree, and the retry could not resume.
So the seeds advance in chunks of ``checkpoint_every`` and every seed's checkpoint is written only once all of
them reached the chunk's end.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dqnmap_auto.checkpoint import load as load_checkpoint
from dqnmap_auto.trainer import Trainer, next_multiple


def common_resume_step(seeds: list[tuple[int, bool]]) -> int | None:
    """The step a trial resumes from, given each seed's (checkpointed step, solved); None if they disagree.

    Seeds still training checkpoint together, so they must agree. A seed that reached
    ``training.stop_at_return`` stopped there, so it may be behind the others.
    """
    step = max(s for s, _ in seeds)
    return step if all(s == step for s, solved in seeds if not solved) else None


def advance_together(
    trainers: Sequence[Trainer], step: int, *, checkpoint_every: int | None, saved: dict[int, int]
) -> None:
    """Train every seed to ``step``, in turn; with ``checkpoint_every``, in chunks ending on its multiples, after
    each of which every seed that moved since its last checkpoint (``saved``: seed index -> step) writes one."""
    ends = [step]
    if checkpoint_every is not None:
        start = max(trainer.step for trainer in trainers)  # seeds still training share it; solved ones are behind
        first = next_multiple(start, checkpoint_every)
        ends = sorted({*range(first, step, checkpoint_every), step})
    for end in ends:
        for trainer in trainers:
            trainer.train_until(end)
        if checkpoint_every is not None and end % checkpoint_every == 0:
            for index, trainer in enumerate(trainers):
                if saved.get(index) != trainer.step:
                    trainer.save_checkpoint()
                    saved[index] = trainer.step


def load_consistent(paths: Sequence[Path | None]) -> tuple[list[dict[str, Any]] | None, str]:
    """Every seed's checkpoint state if all exist and agree on a step, else None; and what was found."""
    if any(path is None or not path.exists() for path in paths):
        return None, "a seed has no checkpoint"
    states = [load_checkpoint(path) for path in paths if path is not None]
    steps = [(int(state["step"]), state.get("solved_at") is not None) for state in states]
    if common_resume_step(steps) is None:
        return None, f"the seeds' checkpoints disagree (steps {[s for s, _ in steps]})"
    return states, f"step {max(s for s, _ in steps)}"


def value_at(history: Sequence[tuple[int, float]], step: int, eval_every: int) -> float | None:
    """A seed's periodic evaluation for the interval ending at ``step`` (with vector envs it may land a few steps
    later); a seed that stopped sooner (solved) keeps its last one. None: no evaluation yet."""
    earlier = [(s, value) for s, value in history if s < step + eval_every]
    return max(earlier)[1] if earlier else None
