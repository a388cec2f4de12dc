"""Where a study lives and how a process opens it: the storage location, create-or-continue, load.

Shared by the invoking process and every worker (local processes or Dask workers), which each open the storage
themselves: Optuna coordinates them through it.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from dqnmap_auto.errors import ConfigError
from dqnmap_auto.tuning.recovery import StaleTrialHandler
from dqnmap_auto.tuning.spec import StudySpec, build_pruner, build_sampler
from dqnmap_auto.tuning.storage import HeartbeatPolicy, describe_storage, open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


class QuietInterrupts(logging.Filter):
    """Drops Optuna's two warnings (one with a traceback) about a trial that failed because of Ctrl-C: the
    trial's ``failure_reason`` says "interrupted", and `study run` says in one line what happened."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        trial = " ".join(message.split(" ", 2)[:2])  # "Trial 3"
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            self.dropped.add(trial)
            return False
        return not (trial in self.dropped and "failed with value" in message)


logging.getLogger("optuna.study._optimize").addFilter(QuietInterrupts())

SPEC_ATTR = "spec"  # a short pointer shown by optuna-dashboard: the spec's file name and where its text is
SPEC_SYSTEM_ATTR = "dqnmap:spec"  # the spec's YAML text, for `best --export`, `enqueue` and `status`
SPEC_ARTIFACT = "spec.yaml"  # the same text as a study artifact, readable in optuna-dashboard


def sampler_seeds(base: int, trials_in_study: int, jobs: int) -> list[int]:
    """One sampler seed per worker of one `study run` invocation.

    Why the trial count: a continued study must not replay the draws of the invocation before it (a seed fixed
    per worker would open every invocation with the same random startup trials). The count differs between
    invocations one after another, the worker index between workers of one invocation, and the same ``base``
    on the same study state gives the same seeds, so ``--seed`` makes a whole study reproducible.
    """
    import numpy as np

    return [int(np.random.SeedSequence([base, trials_in_study, worker]).generate_state(1)[0]) for worker in range(jobs)]


def fresh_seed() -> int:
    """A new base seed from the OS's entropy, for an invocation without ``--seed``."""
    import secrets

    return secrets.randbits(31)


@dataclass(frozen=True)
class StudyLocation:
    """Where a study lives: a storage URL (None: the project's journal) and the project directory."""

    storage: str | None
    directory: Path

    def open(self, *, create: bool = False, heartbeat: HeartbeatPolicy | None = None) -> optuna.storages.BaseStorage:
        return open_storage(self.storage, self.directory, create=create, heartbeat=heartbeat)

    def describe(self) -> str:
        return describe_storage(self.storage, self.directory)


def checkpoint_dir(location: StudyLocation, study_name: str) -> Path:
    """Where a study's trials checkpoint: ``<dir>/checkpoints/<study>/trial-<n>/``."""
    return location.directory / "checkpoints" / study_name


def create_or_continue(
    spec: StudySpec,
    location: StudyLocation,
    *,
    name: str | None = None,
    sampler_seed: int | None = None,
    stale_handler: StaleTrialHandler | None = None,
) -> optuna.Study:
    """Create the study, or load it with the spec's sampler and pruner if it already exists.

    ``sampler_seed`` seeds the sampler (see :func:`sampler_seeds`; None: Optuna draws one). The storage is
    opened for running trials: with Optuna heartbeats where it has them (RDB), whose stale trials go to
    ``stale_handler``.
    """
    heartbeat = HeartbeatPolicy(spec.study.heartbeat_interval, spec.study.stale_after, stale_handler)
    study = optuna.create_study(
        study_name=name or spec.name,
        storage=location.open(create=True, heartbeat=heartbeat),
        sampler=seeded_sampler(spec, sampler_seed),
        pruner=build_pruner(spec.study.pruner),
        direction="maximize",
        load_if_exists=True,
    )
    known = spec_text(study)
    if known is not None and SPEC_SYSTEM_ATTR not in study_system_attrs(study):  # made by an earlier version
        set_study_system_attr(study, SPEC_SYSTEM_ATTR, known)
    if known is None:  # a new study
        set_study_system_attr(study, SPEC_SYSTEM_ATTR, Path(spec.source).read_text(encoding="utf-8"))
        study.set_user_attr(SPEC_ATTR, Path(spec.source).name)
        with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in practice
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([spec.study.metric_name])
        for params in spec.study.enqueue:
            study.enqueue_trial(params, skip_if_exists=True)
    return study


def seeded_sampler(spec: StudySpec, seed: int | None) -> optuna.samplers.BaseSampler:
    """The spec's sampler with ``seed`` in place of any seed its args name (that one is the base of ``seed``)."""
    args = {key: value for key, value in spec.study.sampler.args.items() if key != "seed"}
    return build_sampler(spec.study.sampler.model_copy(update={"args": args}), seed=seed)


def study_system_attrs(study: optuna.Study) -> dict[str, Any]:
    """A study's system attributes: where data for the program goes, which optuna-dashboard does not show.

    Optuna 5 has no public accessor on ``Study``; its storage API has one (optuna-dashboard reads them so too).
    """
    return study._storage.get_study_system_attrs(study._study_id)


def set_study_system_attr(study: optuna.Study, key: str, value: Any) -> None:
    study._storage.set_study_system_attr(study._study_id, key, value)


def spec_text(study: optuna.Study) -> str | None:
    """The YAML text of the spec the study was created from (None: not created by dqnmap-auto).

    Studies created before the text moved to a system attribute kept it in the ``spec`` user attribute.
    """
    text = study_system_attrs(study).get(SPEC_SYSTEM_ATTR)
    if text is None:
        legacy = study.user_attrs.get(SPEC_ATTR)
        text = legacy if isinstance(legacy, str) and "\n" in legacy else None
    return text


def load_existing(location: StudyLocation, name: str) -> optuna.Study:
    """Load a study that must exist; the error lists the ones that do."""
    storage = location.open(create=False)
    names = optuna.get_all_study_names(storage)
    if name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise ConfigError(f"study {name!r} does not exist in {location.describe()} (studies: {known})")
    return optuna.load_study(study_name=name, storage=storage)
