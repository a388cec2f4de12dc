"""Population-based training with PB2 (Parker-Holder et al., NeurIPS 2020) over this project's Trainer.

Why a module of its own: Ray Tune is a benchmark-only extra (``pip install -e .[pb2]``) and a heavy import;
only ``automl_cold.py`` loads it. Ray Tune does the population work (ranking, exploit, the GP-bandit explore,
time-multiplexing members over the cores); this module is the thin adapter: one member is a
``dqnmap_auto.trainer.Trainer`` trained in chunks of ``interval`` env steps, each chunk ending with a periodic
evaluation (the metric PB2 ranks) and a checkpoint of the Trainer's whole state (``Trainer.state_dict``: networks,
optimizer, replay, RNGs) through Ray Tune's checkpoint API. An exploited member restores another's checkpoint
and continues with the hyperparameters PB2 chose for it. Each member also logs its chunks and keeps its last two
states outside Ray, so that a killed population resumes at its last complete round (``_pb2_resume.py``).

The population starts from rl-zoo3's DQN space: the first, random draws of the same repetition's studies (same
sampler, seed and ``sample_zoo_dqn``), so every arm starts from the same configurations. PB2 needs continuous
bounds: it mutates the learning rate and 1 - gamma (in log10, the scale rl-zoo3 samples them on) and the
exploration fraction and final epsilon, within rl-zoo3's ranges. The integer and categorical settings (batch
size, train_freq, gradient steps, target update interval, network) keep each member's initial draw; an
exploited member takes them over with the weights it copies (they come with its network and replay). Where
Ray's PB2 would hand a clone its base's values unchanged (its base has no reward change under its current
values: the first round, or a base cloned at the last one), the clone explores anyway (``_pb2_explore.py``):
an unchanged clone restores its base's RNGs with its weights, so it would train the same run bit for bit.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import FIXED, ROOT, BenchEnv, bench_config
from study_efficiency import progress_record, zoo_config_params, zoo_dqn_kwargs, zoo_startup_draws

from dqnmap_auto.checkpoint import load
from dqnmap_auto.config import TrainConfig
from dqnmap_auto.errors import DivergenceError

#: PB2's continuous hyperparameters: Ray config key -> [low, high] (log10 for lr and 1 - gamma, as rl-zoo3).
BOUNDS = {
    "log10_lr": [-5.0, math.log10(2e-3)],
    "log10_one_minus_gamma": [-4.0, math.log10(0.03)],
    "exploration_fraction": [0.0, 0.5],
    "exploration_final_eps": [0.0, 0.2],
}
#: Settings that keep each member's initial draw (PB2 has no bounds for integers and categories).
KEPT = ("batch_size_pow", "train_freq", "subsample_steps", "target_update_interval", "net_arch")
METRIC = "eval_return"
#: Reported 1 by a member's last report: Ray's stopper ends it there, before PB2 sees the report (PB2 would
#: otherwise exploit at that step too and send a bottom member back to its last checkpoint to train again).
DONE = "member_done"
STATE_FILE = "trainer.pt"
#: PB2's explore rule: Ray's, plus ``_pb2_explore.py``'s step where Ray's returns the base's values unchanged
EXPLORE = "ray-pb2+from-latest"
SETTINGS_FILE = "settings.json"  # in the members' folder: a resume needs the same


@dataclass(frozen=True)
class PB2Job:
    """One PB2 run (one repetition): picklable, so Ray's workers get it with the trainable."""

    name: str
    env: BenchEnv
    seed: int
    population: int
    budget: int  # env steps of the whole population, as one study's trials x steps
    interval: int  # env steps between perturbations (and evaluations): the trials' eval_every
    workdir: Path
    workers: int
    extra: tuple[str, ...] = ()
    until_solved: bool = False  # the population ends once a member's final evaluation reaches the line

    @property
    def member_steps(self) -> int:
        """Each member's training budget: the population shares the study's."""
        return self.budget // self.population


def initial_members(job: PB2Job) -> list[dict[str, Any]]:
    """``population`` draws from rl-zoo3's DQN space, as Ray configs: the random startup trials of the studies
    of the same repetition (same sampler, same seed), so PB2 starts from the configurations they start from."""
    members = []
    for index, draw in enumerate(zoo_startup_draws(job.seed, job.population)):
        params = dict(draw)
        members.append(
            {
                "member": index,
                "log10_lr": math.log10(params.pop("learning_rate")),
                "log10_one_minus_gamma": math.log10(params.pop("one_minus_gamma")),
                **params,
            }
        )
    return members


def member_config(job: PB2Job, config: dict[str, Any]) -> TrainConfig:
    """The Trainer config of a member with Ray config ``config`` (the mutated values in their bounds)."""
    zoo = {key: config[key] for key in (*KEPT, "exploration_fraction", "exploration_final_eps")}
    zoo["learning_rate"] = 10.0 ** config["log10_lr"]
    zoo["one_minus_gamma"] = 10.0 ** config["log10_one_minus_gamma"]
    params = zoo_config_params(zoo_dqn_kwargs(zoo))
    overrides = [*FIXED, *job.extra, f"training.eval_every={job.interval}"]
    overrides += [f"{path}={json.dumps(value)}" for path, value in params.items()]
    return bench_config(job.env, steps=job.member_steps, seed=job.seed, overrides=overrides)


def train_member(config: dict[str, Any], *, job: PB2Job) -> None:
    """Ray Tune's function trainable: one member, from its checkpoint when Ray restores or exploits it, or from
    its slot's state at the round a resumed run restarts from (``_pb2_resume``), which it first reports again."""
    import torch
    from _pb2_resume import RESUME_STEP, SLOT, MemberLog
    from ray import tune

    from dqnmap_auto.trainer import Trainer

    torch.set_num_threads(1)
    started = time.perf_counter()
    train_config = member_config(job, config)
    trainer = Trainer(train_config)
    log = MemberLog(members_folder(job), config[SLOT])
    checkpoint = tune.get_checkpoint()
    resumed = checkpoint is None and config.get(RESUME_STEP) is not None
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer.load_state_dict(load(Path(folder) / STATE_FILE))
    elif resumed:
        trainer.load_state_dict(load(log.state_path(config[RESUME_STEP])))
    if checkpoint is not None or resumed:
        # the restored optimizer and tuner carry the old values: PB2's (lr, gamma) take over; epsilon reads
        # the new exploration settings from the config
        trainer.tuner.set_value("lr", train_config.agent.lr)
        trainer.tuner.set_value("gamma", train_config.agent.gamma)
    trainer.start()
    if resumed:  # the round again, for PB2's decision; its chunk is in the log already
        _report_chunk(trainer, job, log, config, trainer.step, started, logged=False)
        started = time.perf_counter()
    total = train_config.training.total_steps
    while True:
        before = trainer.step
        try:
            trainer.train_until(before + job.interval)
        except DivergenceError as error:  # a recorded end of this member, scored as the env's worst return
            trainer.close()
            metrics = _metrics(trainer, before, started, eval_return=job.env.worst, diverged=error.reason)
            log.append(_log_row(metrics, config))
            tune.report(metrics)
            return
        if trainer.solved_at is not None or trainer.step >= total:
            final = trainer.finish().final_eval.mean  # 20 episodes, on the policy that reached the line
            metrics = _metrics(trainer, before, started, eval_return=final, final_return=final)
            log.append(_log_row(metrics, config))
            tune.report(metrics)
            return
        _report_chunk(trainer, job, log, config, before, started, logged=True)
        started = time.perf_counter()


def _report_chunk(
    trainer: Any, job: PB2Job, log: Any, config: dict[str, Any], before: int, started: float, *, logged: bool
) -> None:
    """A chunk's end: the state saved (the slot's copy first: Ray's may be lost to a kill), its line logged,
    then the report to Ray, with the checkpoint PB2 exploits and restores from. A replayed round (``logged``
    false) reports the slot's state it was loaded from, which is still on disk (the last two are kept)."""
    from ray import tune

    last = trainer.last_eval
    metrics = _metrics(trainer, before, started, eval_return=last.mean if last is not None else job.env.worst)
    if logged:
        log.save_state(trainer.state_dict(), trainer.step)
        metrics["chunk_s"] = round(time.perf_counter() - started, 3)
        log.append(_log_row(metrics, config))
    with tempfile.TemporaryDirectory() as folder:
        # Ray's checkpoint is a copy of the slot's file (a replayed round's too): serialized once, not twice
        shutil.copyfile(log.state_path(trainer.step), Path(folder) / STATE_FILE)
        metrics["chunk_s"] = round(time.perf_counter() - started, 3)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _log_row(metrics: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """A member log's line: the chunk's metrics and the config it trained with (a resume restarts from it)."""
    from _pb2_resume import RESUME_STEP

    return {
        "member_step": metrics["env_steps"],
        "done": metrics[DONE],
        "config": {key: value for key, value in config.items() if key != RESUME_STEP},
        **{key: value for key, value in metrics.items() if key not in ("env_steps", DONE)},
    }


def members_folder(job: PB2Job) -> Path:
    """Where the members of ``job`` keep their logs and states (``_pb2_resume.MemberLog``); absolute, because Ray
    runs each member in its own trial folder."""
    return job.workdir.resolve() / f"{job.name}.members"


def _metrics(trainer: Any, before: int, started: float, **values: Any) -> dict[str, Any]:
    """One report: the member's env steps (PB2's time axis), the steps and seconds this chunk cost."""
    return {
        "env_steps": trainer.step,
        "chunk_steps": trainer.step - before,
        "chunk_s": round(time.perf_counter() - started, 3),
        "reported_at": time.time(),
        DONE: int("final_return" in values or "diverged" in values),
        **values,
    }


def member_stopper(job: PB2Job) -> Any:
    """Ray Tune's stopper: a member ends at its last report (``DONE``); with ``until_solved`` the whole
    population ends once a member's final evaluation reaches the line, as an until-solved study ends at its first
    solved trial (automl_cold's question is how soon; the rest of the population's budget would buy nothing)."""
    from ray.tune.stopper import Stopper

    class MemberStopper(Stopper):
        def __init__(self) -> None:
            self.solved = False

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            final = result.get("final_return")
            if job.until_solved and final is not None and final >= job.env.threshold:
                self.solved = True
            return bool(result.get(DONE))

        def stop_all(self) -> bool:
            return self.solved

    return MemberStopper()


def _plan(job: PB2Job) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int | None]:
    """The members to run (Ray configs), PB2's data from an earlier run, and the round resumed at (None: fresh).

    Ray's own folder of a killed run is removed (not resumed from, see ``_pb2_resume``); the members' logs are
    resumed from their last complete round when there is one and they were written under the same settings,
    else removed too.
    """
    from _pb2_resume import SLOT, find_resume

    ray_folder, folder = job.workdir / job.name, members_folder(job)
    if ray_folder.exists():
        shutil.rmtree(ray_folder)
    settings, settings_path = _settings(job), folder / SETTINGS_FILE
    same = settings_path.exists() and json.loads(settings_path.read_text()) == settings
    solved_at = job.env.threshold if job.until_solved else None
    resume = find_resume(folder, job.population, solved_at=solved_at) if same else None
    if resume is not None:
        print(f"{job.name}: resuming the population at env step {resume.step} of each member", file=sys.stderr)
        return resume.members, resume.data, resume.step
    if folder.exists():
        why = "no round every member finished" if same else "written under other settings"
        print(f"warning: {folder}: {why}; the population starts over", file=sys.stderr)
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    settings_path.write_text(json.dumps(settings))
    return [{**member, SLOT: index} for index, member in enumerate(initial_members(job))], [], None


def _settings(job: PB2Job) -> dict[str, Any]:
    """What a population's logs depend on: a resume under other settings would mix two populations."""
    return {
        "env": job.env.name,
        "seed": job.seed,
        "population": job.population,
        "member_steps": job.member_steps,
        "interval": job.interval,
        "extra": list(job.extra),
        "until_solved": job.until_solved,
        "explore": EXPLORE,
    }


def _tuner(job: PB2Job, members: list[dict[str, Any]], seed: list[dict[str, Any]], resume_step: int | None) -> Any:
    """A Tuner for ``members``, its PB2 starting from ``seed`` (PB2's data of an earlier run) at ``resume_step``."""
    from _pb2_resume import ResumablePB2
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    trainable = tune.with_resources(tune.with_parameters(train_member, job=job), {"cpu": 1})
    scheduler = ResumablePB2(
        folder=members_folder(job),
        seed=seed,
        resume_step=resume_step,
        explore_seed=job.seed,
        time_attr="env_steps",
        metric=METRIC,
        mode="max",
        perturbation_interval=job.interval,
        hyperparam_bounds=BOUNDS,
        synch=True,  # every member perturbs at the same env step: each trains exactly member_steps
    )
    # every key a domain that holds each member's value: points_to_evaluate then sets the members quietly
    space = {key: tune.choice([member[key] for member in members]) for key in members[0]}
    return tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            scheduler=scheduler,
            num_samples=len(members),
            search_alg=BasicVariantGenerator(points_to_evaluate=members),
        ),
        run_config=tune.RunConfig(
            name=job.name,
            storage_path=str(job.workdir.resolve()),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=4),  # PBT warns that 2 can be too few
            failure_config=tune.FailureConfig(max_failures=0),
            stop=member_stopper(job),
            verbose=0,
        ),
    )


def run_pb2(job: PB2Job) -> dict[str, Any]:
    """The pool's task function: run (or finish) one PB2 population, then describe it like a study, from the
    members' logs (a resumed population's chunks before the kill included)."""
    import ray
    from _pb2_resume import member_logs

    job.workdir.mkdir(parents=True, exist_ok=True)
    # Ray's workers import this module by name: they need the benchmarks folder and the repo on their path
    paths = [str(ROOT / "benchmarks"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    started = time.perf_counter()
    members, seed, resumed_at = _plan(job)
    if members:
        ray.init(num_cpus=job.workers, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        try:
            grid = _tuner(job, members, seed, resumed_at).fit()
        finally:
            ray.shutdown()
        errors = [str(result.error).splitlines()[0] for result in grid if result.error is not None]
        if errors:
            raise RuntimeError(f"PB2 {job.name}: {len(errors)} member(s) failed, first: {errors[0]}")
    logs = {log.slot: log.rows() for log in member_logs(members_folder(job))}
    rows = [_event(row, slot) for slot, chunks in logs.items() for row in chunks]
    record = progress_record(sorted(rows, key=lambda r: r["reported_at"]), threshold=job.env.threshold)
    record["trials"] = [_lean(row) for row in record["trials"]]
    finals = {slot: chunks[-1].get("final_return") for slot, chunks in logs.items() if chunks}
    record.update(
        n_finished=len(logs),
        frac_pruned=None,
        members=[
            {"member": slot, "final": finals.get(slot), "config": _public(chunks[-1]["config"])}
            for slot, chunks in logs.items()
            if chunks
        ],
        best=max((f for f in finals.values() if f is not None), default=None),
        session_s=round(time.perf_counter() - started, 1),
        resumed_at=resumed_at,
        population=job.population,
        member_steps=job.member_steps,
        explore=EXPLORE,
    )
    return record


def _event(row: dict[str, Any], slot: int) -> dict[str, Any]:
    """A member log's chunk as a progress event (its value is the final evaluation, at the member's end only)."""
    return {
        "number": slot,
        "value": row.get("final_return"),
        "env_steps": int(row["chunk_steps"]),
        "seconds": float(row["chunk_s"]),
        "eval_return": float(row[METRIC]),
        "member_step": int(row["member_step"]),
        "reported_at": float(row["reported_at"]),
    }


def _lean(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key != "reported_at"}


def _public(config: dict[str, Any]) -> dict[str, Any]:
    """A member's last hyperparameters, as plain JSON values."""
    return {key: value for key, value in config.items() if isinstance(value, int | float | str)}
