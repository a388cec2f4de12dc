"""Study efficiency: env steps until a study finds a CartPole agent with mean eval >= 475.

Issue 6, benchmark 3. Studies of 20 trials, 50k env steps per trial, an evaluation every 10k steps (10
episodes; the last one 20), 3 repetitions (seeds 1, 2, 3) of each arm:

    (a) zoo     an rl-zoo3-style Optuna study of Stable-Baselines3 DQN: rl-zoo3's DQN search space
                (``sample_dqn_params``), TPE (10 startup trials, multivariate), MedianPruner(n_startup_trials=5,
                n_warmup_steps=n_evaluations // 3) on the evaluation index, NaN/assertion -> pruned
    (b) fixed   dqnmap-auto's study runner on ``studies/cartpole.yaml``, self-tuning off (the spec's
                self-tuning entries dropped from the search space)
    (c) self    the same spec as shipped, self-tuning on

Reported per study: env steps consumed by all finished trials, in completion order, up to and including the
first trial whose final eval is >= 475 (pruned trials' steps count); the best value; the fraction pruned; the
wall time (sum of trial durations). Goal: (c) needs at most 1/3 of the env steps of (a).

Fairness note, printed in the report too: (a) searches rl-zoo3's whole DQN space from scratch, while the
shipped spec searches a narrow space around rl-zoo3's tuned CartPole row and enqueues that row as its first
trial; ``--no-enqueue`` drops the warm start. Both variants share one log (per ``--tag``) and (a)'s studies,
which have no warm start to drop, so a ``--no-enqueue`` run after the default one runs only (b) and (c); each
variant gets its own report (``*-cold.md``).

Resumable: each study lives in a journal under ``results/<name>.tmp/`` (ignored by git); a killed study
continues where it stopped, a finished one is one JSONL line. Usage (from the repo root)::

    PYTHONPATH=. python benchmarks/study_efficiency.py --workers 2               # 9 studies x 20 trials
    PYTHONPATH=. python benchmarks/study_efficiency.py --workers 2 --no-enqueue  # (b), (c) without the warm start
    PYTHONPATH=. python benchmarks/study_efficiency.py --workers 2 --arms self   # run only some arms
    PYTHONPATH=. python benchmarks/study_efficiency.py --quick --workers 2       # 3 studies x 6 trials x 5k
    # stop a trial's run once an evaluation reaches 475 (all three arms, SB3's trials included)
    PYTHONPATH=. python benchmarks/study_efficiency.py --workers 2 --set training.stop_at_return=475 --tag stop
    #   ... and the same without the warm start: add --no-enqueue
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from _common import (
    ENVS,
    FIXED,
    BenchEnv,
    ResultLog,
    Task,
    add_arms_arg,
    add_common_args,
    bench_config,
    chosen_arms,
    cpu_estimate_lines,
    pyplot,
    report_header,
    results_name,
    run_tasks,
    write_report,
)
from _lamarck import INHERITED_FROM, InheritSelfTuned, inherited_from, zoo_inherited_params
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from dqnmap_auto.evaluation import EvalResult

ENV = ENVS["cartpole"]
ARMS = {
    "zoo": "(a) rl-zoo3-style study of SB3 DQN",
    "fixed": "(b) dqnmap-auto, self-tuning off",
    "self": "(c) dqnmap-auto, self-tuning on",
}
ZOO_TPE_STARTUP = 10  # rl-zoo3's --n-startup-trials default; its median pruner takes the same count
ZOO_PRUNER_STARTUP = 5  # this benchmark's (its committed results used it); automl_cold.py takes rl-zoo3's 10
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
#: Set by the study size for every arm (dqnmap-auto's studies override them): refused in --set.
STUDY_OWNED = ("training.total_steps", "training.eval_every", "training.eval_episodes", "training.seed")
optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class StudySize:
    trials: int
    steps: int
    n_evaluations: int
    reps: int


SIZES = {False: StudySize(trials=20, steps=50_000, n_evaluations=5, reps=3), True: StudySize(6, 5_000, 5, 1)}


@dataclass(frozen=True)
class StudyJob:
    """One study to run (or finish): picklable, so a worker process can take it."""

    arm: str
    rep: int
    size: StudySize
    workdir: Path
    enqueue: bool
    extra: tuple[str, ...]
    env: BenchEnv = ENV
    first_seed: int = 1  # repetition r uses seed first_seed + r (sampler and agents)
    zoo_space: bool = False  # (b), (c) search rl-zoo3's space with rl-zoo3's sampler and pruner (automl_cold)
    inherit: bool = False  # automl_cold's (e): good trials' self-tuned values enqueued as new trials (_lamarck.py)
    inherit_lr_factor: float | None = None  # automl_cold's (f): (e) with the child's lr at its parent's x factor
    until_solved: bool = False  # automl_cold: the study ends at its first trial whose value reaches the line

    @property
    def callbacks(self) -> tuple[Any, ...]:
        """The trial callbacks this job's study runs with (picklable: the runner may hand them to workers)."""
        return (StopWhenSolved(self.env.threshold),) if self.until_solved else ()

    def remaining(self, study: optuna.Study) -> int:
        """Trials still to run: none once the budget is spent, or (``until_solved``) once a trial solved."""
        if self.until_solved and is_solved(study, self.env.threshold):
            return 0
        return self.size.trials - len(study.get_trials(deepcopy=False, states=FINISHED))

    @property
    def pruner_startup(self) -> int:
        """The median pruner's n_startup_trials: rl-zoo3's (the sampler's count) on rl-zoo3's space."""
        return ZOO_TPE_STARTUP if self.zoo_space else ZOO_PRUNER_STARTUP

    @property
    def seed(self) -> int:
        return self.first_seed + self.rep

    @property
    def name(self) -> str:
        """The study's name, and its journal's: the rl-zoo3-style study is the same with or without the warm
        start (it has none), so ``--no-enqueue`` reuses it; (b) and (c) without it are other studies."""
        cold = "" if self.enqueue or self.arm == "zoo" else "-cold"
        return f"{self.arm}-rep{self.rep}{cold}"


@dataclass(frozen=True)
class StopWhenSolved:
    """Optuna trial callback: end the study once a trial completes with a value at or above ``threshold``.

    Why: automl_cold asks how soon a study finds an agent on the success line. Past that point a study only
    refines an agent already found, and at rl-zoo3's budget (20 trials x 50k-100k steps, 5 arms, 3-5
    repetitions) running every study to its end costs days of this machine's CPU.
    """

    threshold: float

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state == TrialState.COMPLETE and trial.value is not None and trial.value >= self.threshold:
            study.stop()


def is_solved(study: optuna.Study, threshold: float) -> bool:
    """Whether a completed trial of ``study`` reached ``threshold`` (a resumed until-solved study is done)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return any(t.value is not None and t.value >= threshold for t in complete)


# -- (a) the rl-zoo3-style study ---------------------------------------------------------------------------
ZOO_NET_ARCH = {"small": [64, 64], "medium": [256, 256], "big": [400, 300]}


def sample_zoo_dqn(trial: optuna.Trial) -> dict[str, Any]:
    """rl-zoo3's DQN search space (rl_zoo3/hyperparams_opt.py, ``sample_dqn_params``) as SB3 DQN kwargs.

    Sampled in rl-zoo3's transformed coordinates (1 - gamma on a log scale, batch size as a power of two, the
    gradient steps as train_freq divided by a subsampling factor), so TPE sees the same space.
    """
    # in rl-zoo3's order (the seeded sampler's draws follow it)
    params: dict[str, Any] = {
        "one_minus_gamma": trial.suggest_float("one_minus_gamma", 1e-4, 0.03, log=True),
        "batch_size_pow": trial.suggest_int("batch_size_pow", 2, 11),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 2e-3, log=True),
        "train_freq": trial.suggest_int("train_freq", 1, 10),
    }
    params["subsample_steps"] = trial.suggest_int("subsample_steps", 1, min(params["train_freq"], 8))
    params["exploration_final_eps"] = trial.suggest_float("exploration_final_eps", 0.0, 0.2)
    params["exploration_fraction"] = trial.suggest_float("exploration_fraction", 0.0, 0.5)
    params["target_update_interval"] = trial.suggest_int("target_update_interval", 1, 20_000, log=True)
    params["net_arch"] = trial.suggest_categorical("net_arch", list(ZOO_NET_ARCH))
    return zoo_dqn_kwargs(params)


def zoo_dqn_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """SB3 DQN kwargs from rl-zoo3's sampled coordinates (also PB2's, whose members start from this space)."""
    train_freq = int(params["train_freq"])
    return {
        "gamma": 1.0 - params["one_minus_gamma"],
        "batch_size": 2 ** int(params["batch_size_pow"]),
        "learning_rate": params["learning_rate"],
        "train_freq": train_freq,
        "gradient_steps": max(train_freq // int(params["subsample_steps"]), 1),
        "exploration_final_eps": params["exploration_final_eps"],
        "exploration_fraction": params["exploration_fraction"],
        "target_update_interval": int(params["target_update_interval"]),
        "policy_kwargs": {"net_arch": ZOO_NET_ARCH[params["net_arch"]]},
    }


#: dqnmap-auto's config path of each SB3 kwarg that rl-zoo3's space samples.
ZOO_CONFIG_PATHS = {
    "gamma": "agent.gamma",
    "batch_size": "agent.batch_size",
    "learning_rate": "agent.lr",
    "train_freq": "agent.train_freq",
    "gradient_steps": "agent.gradient_steps",
    "exploration_final_eps": "agent.exploration_final_eps",
    "exploration_fraction": "agent.exploration_fraction",
    "target_update_interval": "agent.target_update_interval",
}


def zoo_config_params(kwargs: dict[str, Any]) -> dict[str, Any]:
    """rl-zoo3's sampled SB3 kwargs as dqnmap-auto config paths (net_arch from ``policy_kwargs``)."""
    params = {path: kwargs[key] for key, path in ZOO_CONFIG_PATHS.items()}
    params["agent.net_arch"] = list(kwargs["policy_kwargs"]["net_arch"])
    return params


def sample_zoo_config(trial: optuna.Trial) -> dict[str, Any]:
    """rl-zoo3's DQN space for dqnmap-auto's study runner (``run_study(sample=...)``): the same Optuna params as
    the rl-zoo3-style study's, so TPE sees one space in every arm."""
    return zoo_config_params(sample_zoo_dqn(trial))


class ZooObjective:
    """rl-zoo3's trial: SB3 DQN on the env's tuned row with the sampled values on top; after every evaluation
    the mean is reported at the evaluation's index (1, 2, ...) and the pruner may stop the trial; the value
    is the last evaluation's mean. The evaluations are this project's (same episodes as (b) and (c)).

    On rl-zoo3's space (automl_cold.py) it reports as the study runner does, so every arm's median pruner sees the
    same data: the final evaluation is the value only (never an intermediate value to prune on), and a run that
    stopped at the success line carries its last periodic mean through the remaining indices. Without that, the
    solved trials would drop out of the later medians and (a) would prune less than (b) and (c).
    """

    def __init__(self, job: StudyJob) -> None:
        self.aligned = job.zoo_space
        self.n_periodic = job.size.n_evaluations - 1  # the last evaluation is the final one, at the full budget
        every = job.size.steps // job.size.n_evaluations
        self.config = bench_config(
            job.env, steps=job.size.steps, seed=job.seed, overrides=[*FIXED, *job.extra, f"training.eval_every={every}"]
        )

    def __call__(self, trial: optuna.Trial) -> float:
        from _sb3 import train_sb3

        kwargs = sample_zoo_dqn(trial)
        trial.set_user_attr("sb3_kwargs", kwargs)
        last_step, index, last_mean = 0, 0, math.nan

        def report(step: int, result: EvalResult, is_final: bool) -> bool:
            nonlocal last_step, index, last_mean
            last_step = step
            if is_final and self.aligned:
                return True
            index, last_mean = index + 1, result.mean
            trial.report(result.mean, index)  # rl-zoo3 reports at the evaluation's index, not the env step
            return not trial.should_prune()

        try:
            result, callback = train_sb3(self.config, kwargs=kwargs, hook=report)
        except (AssertionError, ValueError) as error:  # rl-zoo3: random hyperparameters can give NaN -> pruned
            trial.set_user_attr("env_steps", last_step)
            trial.set_user_attr("failure_reason", f"{type(error).__name__}: {error}".splitlines()[0])
            raise optuna.TrialPruned(str(error)) from None
        trial.set_user_attr("env_steps", result["env_steps"])
        if callback.stopped:
            raise optuna.TrialPruned(f"pruned at step {result['env_steps']}")
        if self.aligned and callback.solved_at is not None:
            for later in range(index + 1, self.n_periodic + 1):
                trial.report(last_mean, later)  # the runner's carried value (dqnmap_auto.tuning.seeds.value_at)
        return float(result["final_mean"])


def zoo_sampler(seed: int) -> optuna.samplers.TPESampler:
    """rl-zoo3's sampler: TPE, multivariate, with its startup count."""
    with warnings.catch_warnings():  # multivariate TPE is flagged experimental; rl-zoo3 uses it
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(n_startup_trials=ZOO_TPE_STARTUP, seed=seed, multivariate=True)


def runner_seed(seed: int, trials_in_study: int) -> int:
    """The sampler seed dqnmap-auto's study runner derives from ``seed`` (one worker): a study seeded with it
    draws the same random startup trials as the runner's studies on the same space."""
    from dqnmap_auto.tuning.location import sampler_seeds

    return sampler_seeds(seed, trials_in_study, 1)[0]


def zoo_startup_draws(seed: int, count: int = ZOO_TPE_STARTUP) -> list[dict[str, Any]]:
    """The first ``count`` configurations a fresh study on rl-zoo3's space draws from ``seed`` (the runner's
    sampler seed, ``runner_seed(seed, 0)``): TPE's startup trials are seeded random draws, so every arm of a
    repetition trains these, and PB2 starts its population from them. Drawn in a throwaway in-memory study."""
    study = optuna.create_study(sampler=zoo_sampler(runner_seed(seed, 0)))
    draws = []
    for _ in range(count):
        trial = study.ask()
        sample_zoo_dqn(trial)
        draws.append(dict(trial.params))
    return draws


def own_draws(trials: Sequence[FrozenTrial]) -> list[dict[str, Any]]:
    """Params of the sampler's draws a study has run or queued, in trial order: every trial but the failed ones
    (a killed trial's draw is either retried from its checkpoint, with the same params, or run again) and the
    inherited children of automl_cold's (e), retries of a child included. A queued trial's params are its fixed
    ones until it starts."""
    return [
        dict(trial.params or trial.system_attrs.get("fixed_params", {}))
        for trial in sorted(trials, key=lambda trial: trial.number)
        if trial.state != TrialState.FAIL and inherited_from(trial, trials) is None
    ]


def replay_startup_draws(study: optuna.Study, seed: int) -> int:
    """Enqueue the startup draws a resumed study has not run yet, in their order; returns how many.

    Why: the runner reseeds a resumed study's sampler (and the rl-zoo3-style study mirrors it) so that it does
    not repeat its own draws. That keeps a user's study sound, but it breaks what this benchmark pairs on: the
    arms of a repetition training the same startup configurations. A killed trial's draw runs again (SB3) or is
    already queued as its retry (the runner's, from its checkpoint; ``recover_stale_trials`` must run first). A
    study whose draws differ from the seed's (resumed before this replay existed) is left alone.
    """
    trials = study.get_trials(deepcopy=False)
    if not trials:  # a fresh study draws them itself
        return 0
    draws, own = zoo_startup_draws(seed), own_draws(trials)
    # startup slots left: TPE draws at random while fewer than its startup count of trials have run, children
    # of (e) included (their draws then interleave with the children in another order than unbroken)
    slots = len(draws) - sum(trial.state != TrialState.FAIL for trial in trials)
    if slots <= 0 or own != draws[: len(own)]:
        return 0
    replay = draws[len(own) : len(own) + slots]
    for params in replay:
        study.enqueue_trial(params, skip_if_exists=False)
    return len(replay)


def open_zoo_study(job: StudyJob) -> optuna.Study:
    """The rl-zoo3-style study of ``job`` (new or continued): TPE and median pruner as rl-zoo3 sets them. On
    rl-zoo3's space in every arm (``zoo_space``), it takes the runner's seed: all arms start from the same draws.
    """
    storage = JournalStorage(JournalFileBackend(str(job.workdir / f"{job.name}.journal")))
    sampler = zoo_sampler(job.seed)
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=job.pruner_startup, n_warmup_steps=job.size.n_evaluations // 3
    )
    study = optuna.create_study(
        study_name=job.name, storage=storage, sampler=sampler, pruner=pruner, direction="maximize", load_if_exists=True
    )
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):  # left by a killed run
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    if job.zoo_space:
        study.sampler = zoo_sampler(runner_seed(job.seed, len(study.get_trials(deepcopy=False))))
        replay_startup_draws(study, job.seed)
    return study


def run_zoo_study(job: StudyJob) -> optuna.Study:
    study = open_zoo_study(job)
    remaining = job.remaining(study)
    if remaining > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.optimize(ZooObjective(job), n_trials=remaining, callbacks=job.callbacks, gc_after_trial=True)
    return study


# -- (b), (c): dqnmap-auto's study runner ----------------------------------------------------------------------
def dqnmap_spec(job: StudyJob) -> Any:
    """studies/cartpole.yaml with this job's seed, size and arm; (b) loses the self-tuning search entries."""
    from dqnmap_auto.tuning.spec import load_study_spec

    overrides = [f"training.seed={job.seed}", *(FIXED if job.arm == "fixed" else ()), *job.extra]
    spec = load_study_spec(ENV.spec, overrides=overrides)
    study = spec.study
    space = dict(study.search_space)
    enqueue = [dict(params) for params in study.enqueue] if job.enqueue else []
    if job.arm == "fixed":  # sampling settings that do nothing would only dilute TPE
        space = {path: p for path, p in space.items() if not path.startswith("self_tuning.")}
        enqueue = [{k: v for k, v in params.items() if k in space} for params in enqueue]
    pruner = study.pruner
    if study.steps and study.steps != job.size.steps and "n_warmup_steps" in pruner.args:  # quick: same fraction
        warmup = int(pruner.args["n_warmup_steps"] * job.size.steps / study.steps)
        pruner = pruner.model_copy(update={"args": {**pruner.args, "n_warmup_steps": warmup}})
    update = {
        "name": job.name,
        "n_trials": job.size.trials,
        "steps": job.size.steps,
        "eval_every": job.size.steps // job.size.n_evaluations,
        "search_space": space,
        "enqueue": enqueue,
        "pruner": pruner,
    }
    return spec.model_copy(update={"study": study.model_copy(update=update)})


def zoo_space_spec(job: StudyJob) -> Any:
    """The env's spec as the base, searched like the rl-zoo3-style study: its space (``sample_zoo_config``, so
    no search_space entries), TPE and median pruner with rl-zoo3's settings, no enqueued trial. The median
    pruner's warm-up is rl-zoo3's n_evaluations // 3 evaluations, in env steps (the runner reports at steps)."""
    from dqnmap_auto.tuning.spec import PrunerSpec, SamplerSpec, load_study_spec

    overrides = [f"training.seed={job.seed}", *(FIXED if job.arm == "fixed" else ()), *job.extra]
    spec = load_study_spec(job.env.spec, overrides=overrides)
    every = job.size.steps // job.size.n_evaluations
    warmup = job.size.n_evaluations // 3 * every
    update = {
        "name": job.name,
        "n_trials": job.size.trials,
        "steps": job.size.steps,
        "seeds": 1,
        "eval_every": every,
        "eval_episodes": 10,
        "objective": "last",
        "search_space": {},
        "enqueue": [],
        "sampler": SamplerSpec(name="tpe", args={"n_startup_trials": ZOO_TPE_STARTUP, "multivariate": True}),
        "pruner": PrunerSpec(name="median", args={"n_startup_trials": job.pruner_startup, "n_warmup_steps": warmup}),
    }
    return spec.model_copy(update={"study": spec.study.model_copy(update=update)})


def run_dqnmap_study(job: StudyJob) -> optuna.Study:
    if job.zoo_space:
        callbacks = (InheritSelfTuned(zoo_inherited_params, job.inherit_lr_factor),) if job.inherit else ()
        return run_runner_study(
            job, zoo_space_spec(job), sample=sample_zoo_config, callbacks=(*callbacks, *job.callbacks)
        )
    return run_runner_study(job, dqnmap_spec(job), callbacks=job.callbacks)


def run_runner_study(job: StudyJob, spec: Any, *, sample: Any = None, callbacks: Sequence[Any] = ()) -> optuna.Study:
    """Run (or finish) ``spec``'s study with dqnmap-auto's study runner; ``sample``, ``callbacks``: see
    ``run_study``."""
    from dqnmap_auto.tuning.recovery import recover_stale_trials
    from dqnmap_auto.tuning.study import StudyLocation, create_or_continue, run_study

    location = StudyLocation(storage=str(job.workdir / f"{job.name}.journal"), directory=job.workdir / job.name)
    study = create_or_continue(spec, location)
    if job.zoo_space and job.remaining(study) > 0:
        # a killed run's trial gets its retry (from its checkpoint) before the replayed draws that follow it
        recover_stale_trials(study, grace=spec.study.stale_after)
        replay_startup_draws(study, job.seed)
    remaining = job.remaining(study)
    if remaining > 0:  # a killed run's RUNNING trial is failed and retried from its checkpoint by run_study
        run_study(
            spec,
            location,
            n_trials=remaining,
            jobs=1,
            progress=False,
            tracking=False,
            seed=job.seed,
            sample=sample,
            callbacks=callbacks,
        )
    return study


# -- one study as a record -------------------------------------------------------------------------------------
def trial_steps(trial: FrozenTrial) -> int:
    """Env steps a finished trial consumed: recorded by both objectives (pruned trials included)."""
    attrs = trial.user_attrs
    return int(attrs.get("env_steps") or attrs.get("pruned_at_step") or 0)


def _times(trial: FrozenTrial) -> tuple[datetime, datetime]:
    """Start and end of a finished trial (both are set once a trial is COMPLETE or PRUNED)."""
    assert trial.datetime_start is not None and trial.datetime_complete is not None
    return trial.datetime_start, trial.datetime_complete


def progress_record(events: Sequence[dict[str, Any]], *, threshold: float) -> dict[str, Any]:
    """Running env-step and time totals over ``events`` in time order, and when the threshold was first reached.

    An event is a finished trial, or a chunk of a population member's training (PB2): ``number``, ``env_steps``,
    ``seconds`` and ``value`` (a final evaluation's mean, or None: pruned, or not a member's end).
    """
    rows: list[dict[str, Any]] = []
    cumulative, wall, solved_at, solved_wall, solved_by = 0, 0.0, None, None, None
    for event in events:
        cumulative += event["env_steps"]
        wall += event["seconds"]
        value = event["value"]
        if solved_at is None and value is not None and value >= threshold:
            solved_at, solved_wall, solved_by = cumulative, wall, event["number"]
        rows.append({**event, "cumulative_steps": cumulative})
    values = [row["value"] for row in rows if row["value"] is not None]
    best = max(values) if values else None
    return {
        "trials": rows,
        "steps_to_solve": solved_at,
        "wall_to_solve": round(solved_wall, 1) if solved_wall is not None else None,
        "solved_trial": solved_by,
        "env_steps": cumulative,
        "best": best,
        "wall_s": round(wall, 1),
        "summary": f"solved after {solved_at} env steps (trial {solved_by})"
        if solved_at is not None
        else f"not solved in {cumulative} env steps (best {best})",
    }


def study_record(study: optuna.Study, *, threshold: float) -> dict[str, Any]:
    """Trials in completion order with the running env-step count; when the threshold was first reached."""
    trials = study.get_trials(deepcopy=False)
    finished = sorted((t for t in trials if t.state in FINISHED), key=lambda t: _times(t)[1])
    events = []
    for trial in finished:
        started, completed = _times(trial)
        events.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": trial.value if trial.state == TrialState.COMPLETE else None,
                "env_steps": trial_steps(trial),
                "seconds": round((completed - started).total_seconds(), 1),
                "params": trial.params,
                INHERITED_FROM: inherited_from(trial, trials),  # automl_cold's (e)
            }
        )
    pruned = sum(event["state"] == "PRUNED" for event in events)
    return {
        **progress_record(events, threshold=threshold),
        "n_finished": len(events),
        "frac_pruned": pruned / len(events) if events else None,
    }


def run_job(job: StudyJob) -> dict[str, Any]:
    """The pool's task function: run (or finish) the study, then describe it."""
    job.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    study = run_zoo_study(job) if job.arm == "zoo" else run_dqnmap_study(job)
    record = study_record(study, threshold=job.env.threshold)
    record["session_s"] = round(time.perf_counter() - started, 1)
    return record


def make_tasks(size: StudySize, *, workdir: Path, enqueue: bool, extra: Sequence[str]) -> list[Task]:
    """Repetition-major, the three arms side by side."""
    tasks = []
    for rep in range(size.reps):
        for arm in ARMS:
            # --set changes dqnmap-auto's studies only, except the protocol (training.*, e.g.
            # training.stop_at_return), which the rl-zoo3-style study's SB3 trials follow too
            protocol = tuple(o for o in extra if o.startswith("training.")) if arm == "zoo" else tuple(extra)
            job = StudyJob(arm, rep, size, workdir, enqueue, protocol)
            key = f"{arm}|rep={rep}|trials={size.trials}|steps={size.steps}"
            fields = {"arm": arm, "rep": rep, "seed": job.seed, "trials_per_study": size.trials, "steps": size.steps}
            if arm != "zoo":  # (a) has no warm start: one study serves both variants
                key, fields = f"{key}|enqueue={enqueue}", {**fields, "enqueue": enqueue}
            tasks.append(Task(key, fields, run_job, job, label=key))
    return tasks


# -- report ----------------------------------------------------------------------------------------------------
def _steps(value: int | None, spent: int) -> str:
    return f"{value:,}" if value is not None else f"never (> {spent:,})"


def _median_to_solve(runs: Sequence[dict[str, Any]]) -> float:
    """Median env steps to solve, an unsolved study counting as infinitely many (it is censored)."""
    return statistics.median(r["steps_to_solve"] if r["steps_to_solve"] is not None else math.inf for r in runs)


def study_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "## Per study",
        "",
        "| arm | rep (seed) | finished trials | pruned | env steps to first >= 475 | at trial | best value "
        "| env steps, all trials | wall time (sum of trials) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for record in sorted(records, key=lambda r: (list(ARMS).index(r["arm"]), r["rep"])):
        best = "-" if record["best"] is None else f"{record['best']:.1f}"
        lines.append(
            f"| {ARMS[record['arm']]} | {record['rep']} ({record['seed']}) | {record['n_finished']} | "
            f"{record['frac_pruned']:.0%} | {_steps(record['steps_to_solve'], record['env_steps'])} | "
            f"{record['solved_trial'] if record['solved_trial'] is not None else '-'} | {best} | "
            f"{record['env_steps']:,} | {record['wall_s'] / 60:.1f} min |"
        )
    return [*lines, ""]


def arm_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "## Per arm",
        "",
        "| arm | studies | solved | median env steps to first >= 475 | mean best value | mean fraction pruned "
        "| mean wall time per study |",
        "|---|---|---|---|---|---|---|",
    ]
    medians = {}
    for arm, label in ARMS.items():
        runs = [r for r in records if r["arm"] == arm]
        if not runs:
            continue
        medians[arm] = _median_to_solve(runs)
        median = "never" if math.isinf(medians[arm]) else f"{medians[arm]:,.0f}"
        bests = [r["best"] for r in runs if r["best"] is not None]
        lines.append(
            f"| {label} | {len(runs)} | {sum(r['steps_to_solve'] is not None for r in runs)}/{len(runs)} | "
            f"{median} | {statistics.fmean(bests):.1f} | "
            f"{statistics.fmean(r['frac_pruned'] for r in runs):.0%} | "
            f"{statistics.fmean(r['wall_s'] for r in runs) / 60:.1f} min |"
        )
    lines.append("")
    if "zoo" in medians and "self" in medians:
        zoo, ours = medians["zoo"], medians["self"]
        met = ours <= zoo / 3 if math.isfinite(ours) else False
        ratio = "n/a" if math.isinf(zoo) or math.isinf(ours) else f"{ours / zoo:.2f}"
        lines += [
            f"Goal: (c) needs at most 1/3 of the env steps of (a), by median over repetitions (an unsolved "
            f"study counts as never): (c)/(a) = {ratio} -> **{'met' if met else 'not met'}**.",
            "",
        ]
    return lines


def plot(records: Sequence[dict[str, Any]], path: Path) -> None:
    """Best final eval so far against env steps consumed, one line per study."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = dict(zip(ARMS, ("tab:blue", "tab:orange", "tab:green"), strict=True))
    styles = ("-", "--", ":", "-.")
    for record in records:
        xs, ys, best = [0], [0.0], 0.0
        for trial in record["trials"]:
            if trial["value"] is not None:
                best = max(best, trial["value"])
            xs.append(trial["cumulative_steps"])
            ys.append(best)
        label = f"{record['arm']} rep {record['rep']}"
        ax.step(xs, ys, where="post", color=colors[record["arm"]], ls=styles[record["rep"] % 4], label=label)
    ax.axhline(ENV.threshold, color="gray", lw=0.8, ls="--")
    ax.set(xlabel="env steps consumed by finished trials", ylabel="best final eval so far", title="study progress")
    ax.legend(fontsize=7, ncol=3)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def build_report(
    records: Sequence[dict[str, Any]], size: StudySize, *, enqueue: bool, name: str, out: Path, quick: bool
) -> list[str]:
    figure = out / f"{name}.png"
    if records:
        plot(records, figure)
    lines = report_header(
        quick=quick,
        title=f"Study efficiency: CartPole-v1, {size.trials} trials x {size.steps} env steps "
        f"({len(records)} of {size.reps * len(ARMS)} studies recorded)",
        notes=[
            f"{size.n_evaluations} evaluations per trial (10 episodes; the last 20, which is the trial's value); "
            f"repetitions use seeds 1..{size.reps} (sampler and agents)",
            f"(a): rl-zoo3's DQN space, TPE n_startup_trials={ZOO_TPE_STARTUP} multivariate, "
            f"MedianPruner(n_startup_trials={ZOO_PRUNER_STARTUP}, n_warmup_steps={size.n_evaluations // 3}) on the "
            "evaluation index; other settings from rl-zoo3's CartPole row",
            "(b), (c): `dqnmap_auto.tuning.study.run_study` on `studies/cartpole.yaml` (its TPE and median pruner), "
            "(b) with `self_tuning.enabled=false` and no self-tuning entries in the search space; in (c) a trial "
            "sampling mode hd with params without lr tunes nothing (the spec's space allows it)",
            "Fairness: (a) searches rl-zoo3's whole DQN space from scratch; (b) and (c) search the spec's narrow "
            "space around rl-zoo3's tuned row"
            + (", and their first trial is that row (enqueued)" if enqueue else " (--no-enqueue: no warm start)"),
        ],
    )
    lines += arm_lines(records) + study_lines(records) + [f"![study progress]({figure.name})", "", "## Cost", ""]
    full = SIZES[False]
    upper = {arm: full.trials * full.steps * full.reps for arm in ARMS}
    lines += cpu_estimate_lines(records, upper, by="arm")
    lines.append("(The extrapolation assumes no trial is pruned: an upper bound.)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, envs=("cartpole",))
    parser.add_argument("--reps", type=int, default=None, help="repetitions per arm [3; quick: 1]")
    parser.add_argument("--trials", type=int, default=None, help="trials per study [20; quick: 6]")
    parser.add_argument("--steps", type=int, default=None, help="env steps per trial [50k; quick: 5k]")
    parser.add_argument("--no-enqueue", action="store_true", help="(b), (c) without the spec's enqueued trial")
    add_arms_arg(parser, tuple(ARMS))
    args = parser.parse_args()
    arms = chosen_arms(parser, args.arms, tuple(ARMS))
    owned = [o for o in args.overrides if o.split("=", 1)[0].strip() in STUDY_OWNED]
    if owned:  # the studies set these from the size: a --set would change arm (a) only
        parser.error(f"--set {owned[0]}: the study size sets it (use --steps, --quick)")
    size = SIZES[args.quick]
    size = StudySize(args.trials or size.trials, args.steps or size.steps, size.n_evaluations, args.reps or size.reps)
    enqueue = not args.no_enqueue
    # One log (and journal folder) per protocol holds both variants: their (a) studies are the same ones.
    name = results_name("study-efficiency", env="cartpole", quick=args.quick, tag=args.tag)
    variant = "-".join(part for part in (args.tag, "" if enqueue else "cold") if part)
    report = results_name("study-efficiency", env="cartpole", quick=args.quick, tag=variant)
    log = ResultLog(args.out / f"{name}.jsonl")
    tasks = make_tasks(size, workdir=args.out / f"{name}.tmp", enqueue=enqueue, extra=args.overrides)
    if not args.report_only:
        run_tasks([task for task in tasks if task.fields["arm"] in arms], log, workers=args.workers)
    keys = {task.key for task in tasks}
    records = [r for r in log.records() if r["key"] in keys]
    write_report(
        args.out / f"{report}.md",
        build_report(records, size, enqueue=enqueue, name=report, out=args.out, quick=args.quick),
    )


if __name__ == "__main__":
    main()
