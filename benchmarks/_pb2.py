"""Population-based training with PB2 (Parker-Holder et al., NeurIPS 2020) over this project's Trainer.

Why a module of its own: Ray Tune is a benchmark-only extra (``pip install -e .[pb2]``) and a heavy import;
only ``automl_cold.py`` loads it. Ray Tune does the population work (ranking, exploit, the GP-bandit explore,
time-multiplexing members over the cores); this module is the thin adapter: one member is a
``dqnmap_auto.trainer.Trainer`` trained in chunks of ``interval`` env steps, each chunk ending with a periodic
evaluation (the metric PB2 ranks) and a checkpoint of the Trainer's whole state (``Trainer.state_dict``: networks,
optimizer, replay, RNGs) through Ray Tune's checkpoint API. An exploited member restores another's checkpoint
and continues with the hyperparameters PB2 chose for it.

The population starts from rl-zoo3's DQN space: the first, random draws of the same repetition's studies (same
sampler, seed and ``sample_zoo_dqn``), so every arm starts from the same configurations. PB2 needs continuous
bounds: it mutates the learning rate and 1 - gamma (in log10, the scale rl-zoo3 samples them on) and the
exploration fraction and final epsilon, within rl-zoo3's ranges. The integer and categorical settings (batch
size, train_freq, gradient steps, target update interval, network) keep each member's initial draw; an
exploited member takes them over with the weights it copies (they come with its network and replay).
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

from dqnmap_auto.checkpoint import load, save_atomic
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
    """Ray Tune's function trainable: one member, from its checkpoint when Ray restores or exploits it."""
    import torch
    from ray import tune

    from dqnmap_auto.trainer import Trainer

    torch.set_num_threads(1)
    started = time.perf_counter()
    train_config = member_config(job, config)
    trainer = Trainer(train_config)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer.load_state_dict(load(Path(folder) / STATE_FILE))
        # the restored optimizer and tuner carry the old values: PB2's (lr, gamma) take over; epsilon reads
        # the new exploration settings from the config
        trainer.tuner.set_value("lr", train_config.agent.lr)
        trainer.tuner.set_value("gamma", train_config.agent.gamma)
    trainer.start()
    total = train_config.training.total_steps
    while True:
        before = trainer.step
        try:
            trainer.train_until(before + job.interval)
        except DivergenceError as error:  # a recorded end of this member, scored as the env's worst return
            trainer.close()
            tune.report(_metrics(trainer, before, started, eval_return=job.env.worst, diverged=error.reason))
            return
        if trainer.solved_at is not None or trainer.step >= total:
            final = trainer.finish().final_eval.mean  # 20 episodes, on the policy that reached the line
            tune.report(_metrics(trainer, before, started, eval_return=final, final_return=final))
            return
        last = trainer.last_eval
        metrics = _metrics(trainer, before, started, eval_return=last.mean if last is not None else job.env.worst)
        with tempfile.TemporaryDirectory() as folder:
            save_atomic(trainer.state_dict(), Path(folder) / STATE_FILE)
            metrics["chunk_s"] = round(time.perf_counter() - started, 3)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        started = time.perf_counter()


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


def _tuner(job: PB2Job) -> Any:
    """A new Tuner for ``job`` (a population a killed run left is removed: see below)."""
    from ray import tune
    from ray.tune.schedulers.pb2 import PB2
    from ray.tune.search.basic_variant import BasicVariantGenerator

    trainable = tune.with_resources(tune.with_parameters(train_member, job=job), {"cpu": 1})
    path = job.workdir / job.name
    if path.exists():
        # Not resumed: Ray saves no scheduler state, so a restored PB2 starts with an empty GP and a synchronous
        # perturbation clock that can leave every member paused (Ray PR #48616, unmerged); the chunks reported
        # after the last checkpoint would also count twice. A killed population starts over.
        print(f"warning: {path}: a killed run's PB2 population; PB2 cannot resume, it starts over", file=sys.stderr)
        shutil.rmtree(path)
    scheduler = PB2(
        time_attr="env_steps",
        metric=METRIC,
        mode="max",
        perturbation_interval=job.interval,
        hyperparam_bounds=BOUNDS,
        synch=True,  # every member perturbs at the same env step: each trains exactly member_steps
    )
    members = initial_members(job)
    # every key a domain that holds each member's draw: points_to_evaluate then sets the members quietly
    space = {key: tune.choice([member[key] for member in members]) for key in members[0]}
    return tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            scheduler=scheduler,
            num_samples=job.population,
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
    """The pool's task function: run (or finish) one PB2 population, then describe it like a study."""
    import ray

    job.workdir.mkdir(parents=True, exist_ok=True)
    # Ray's workers import this module by name: they need the benchmarks folder and the repo on their path
    paths = [str(ROOT / "benchmarks"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    started = time.perf_counter()
    ray.init(num_cpus=job.workers, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    try:
        grid = _tuner(job).fit()
    finally:
        ray.shutdown()
    errors = [str(result.error).splitlines()[0] for result in grid if result.error is not None]
    if errors:
        raise RuntimeError(f"PB2 {job.name}: {len(errors)} member(s) failed, first: {errors[0]}")
    rows = [row for index, result in enumerate(grid) for row in _rows(result, index)]
    record = progress_record(sorted(rows, key=lambda r: r["reported_at"]), threshold=job.env.threshold)
    record["trials"] = [_lean(row) for row in record["trials"]]
    members = [{"member": index, "final": _final(r), "config": _public(r.config or {})} for index, r in enumerate(grid)]
    finals = [m["final"] for m in members if m["final"] is not None]
    record.update(
        n_finished=len(members),
        frac_pruned=None,
        members=members,
        best=max(finals) if finals else None,
        session_s=round(time.perf_counter() - started, 1),
        population=job.population,
        member_steps=job.member_steps,
    )
    return record


def _rows(result: Any, member: int) -> list[dict[str, Any]]:
    """A member's reports as progress events (a chunk; its value is the final evaluation, at its end only).

    ``member`` is the Ray trial's index: ``config["member"]`` names the initial draw, which an exploit copies.
    """
    frame = result.metrics_dataframe
    if frame is None:  # stopped (until solved) before its first report: nothing to count
        return []
    rows = []
    for report in frame.to_dict("records"):
        final = report.get("final_return")
        rows.append(
            {
                "number": member,
                "value": None if final is None or math.isnan(final) else float(final),
                "env_steps": int(report["chunk_steps"]),
                "seconds": float(report["chunk_s"]),
                "eval_return": float(report[METRIC]),
                "member_step": int(report["env_steps"]),
                "reported_at": float(report["reported_at"]),
            }
        )
    return rows


def _final(result: Any) -> float | None:
    final = (result.metrics or {}).get("final_return")
    return None if final is None or math.isnan(final) else float(final)


def _lean(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key != "reported_at"}


def _public(config: dict[str, Any]) -> dict[str, Any]:
    """A member's last hyperparameters, as plain JSON values."""
    return {key: value for key, value in config.items() if isinstance(value, int | float | str)}
