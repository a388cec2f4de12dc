"""The AutoML claim, cold (issue 22): on one search space and one env-step budget, does a study whose trials
self-tune find a good agent sooner and more reliably than one whose trials don't, and than PB2?

Arms, per repetition (one JSON line each; seeds 200, 201, ...: disjoint from the engine's development seeds
0-99 and test seeds 100-109):

    (a) zoo     the rl-zoo3-style Optuna study of SB3 DQN (study_efficiency.py's arm (a))
    (b) fixed   dqnmap-auto's study runner, self-tuning off
    (c) self    dqnmap-auto's study runner, self-tuning on (the config's default: meta mode, lr by the hd
                rule, Huber delta by the held lookahead, gamma as sampled: v7; tag v6 ran gamma self-tuned)
    (d) pb2     PB2 (Ray Tune) over this project's Trainer, a population of --population members sharing the
                study's budget (``_pb2.py``)
    (e) lamarck (c) plus inheritance: a trial that completes in the top half of the study hands its final
                self-tuned lr (and gamma, as sampled under v7) to a new trial, enqueued with its other params;
                a child has a child only if it beat its parent (``_lamarck.py``)
    (f) boost   (e)'s ablation: the same loop, but a child starts at its parent's sampled lr x 10 (``BOOST``)
                instead of the lr the parent's inner loop ended at. The inner loop raised lr in every run so
                far; if (f) does as well as (e), what (e) inherits is "a higher lr", not a hypergradient's value

(a)-(c), (e) and (f) search rl-zoo3's DQN space (``sample_dqn_params``: lr, 1 - gamma, batch size, train_freq and
gradient steps, exploration fraction and final eps, target update interval, network; rl-zoo3's current space samples no
buffer size, so every arm keeps the env row's) with the same Optuna params, TPE (10 startup trials,
multivariate) and MedianPruner (10 startup trials: rl-zoo3 passes its --n-startup-trials to both; warm-up
n_evaluations // 3), no enqueued trial; the settings outside the space are rl-zoo3's tuned row for the env. The
pruner sees the same data in every arm: (a) reports as dqnmap-auto's runner does (a run solved early carries its
last periodic mean through the later indices; the final evaluation is the value, never an intermediate value).
(d) mutates the continuous ones (lr, 1 - gamma, exploration fraction, final eps) within the same ranges.
Self-tuning clamps a starting gamma into its bounds (at most 0.9995), so in (c), (e) and (f) rl-zoo3's draws above
0.9995 start there.

Budget per repetition: 20 trials of at most the env's rl-zoo3 budget (CartPole-v1 50k, Acrobot-v1 100k), 5
evaluations each (10 episodes; the last, 20, is the trial's value); every arm stops a run once an evaluation
reaches the success line (``training.stop_at_return``; SB3: the same rule in its callback), and the final
20-episode evaluation of that policy is its value. Env steps count pruned and stopped runs. PB2's members
share 20 x budget and perturb every evaluation interval (synchronously: each member trains exactly its share).

Until solved (the default): a study (PB2 population) ends at its first trial (member) whose value reaches the
line. The question is how soon each arm finds such an agent; running every study to its end would cost about
37 h of this 2-core machine per env (the quick reports' extrapolation) to refine agents already found. A solved
repetition's "best final return" is then its first one on the line, a lower bound of the full budget's;
``--full-budget`` runs everything to the end (its own JSONL keys).

Resumable like study_efficiency.py (journals under ``results/<name>.tmp/``); a resumed study replays the
startup draws its seed has left (``replay_startup_draws``), so it still trains the configurations the other arms
of its repetition train; a PB2 population a kill cut short restarts from the last round all its members finished,
with PB2's data up to it (``_pb2_resume.py``: Ray Tune's own restore keeps no scheduler state). Usage::

    PYTHONPATH=. python benchmarks/automl_cold.py --env cartpole --workers 2    # 5 repetitions x 4 arms
    PYTHONPATH=. python benchmarks/automl_cold.py --env acrobot --workers 2     # 3 repetitions
    PYTHONPATH=. python benchmarks/automl_cold.py --env cartpole --arms self,pb2 --workers 2
    PYTHONPATH=. python benchmarks/automl_cold.py --quick --workers 2           # 4 trials x 3k steps, 1 rep

PB2 needs the ``pb2`` extra (``pip install -e .[pb2]``); it runs after the study arms, with Ray on --workers
cores (the studies run --workers at a time).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    ENVS,
    BenchEnv,
    ResultLog,
    Task,
    add_arms_arg,
    add_common_args,
    chosen_arms,
    cpu_estimate_lines,
    pyplot,
    report_header,
    results_name,
    run_tasks,
    write_report,
)
from _lamarck import INHERITED_FROM
from ablation import wilson
from scipy.stats import wilcoxon
from study_efficiency import ZOO_TPE_STARTUP, StudyJob, StudySize, run_job, zoo_startup_draws

ARMS = {
    "zoo": "(a) rl-zoo3-style study, SB3 DQN",
    "fixed": "(b) dqnmap-auto, self-tuning off",
    "self": "(c) dqnmap-auto, self-tuning on",
    "pb2": "(d) PB2 (Ray Tune), dqnmap-auto Trainer",
    "lamarck": "(e) (c) plus inheritance of self-tuned values",
    "boost": "(f) (e) with children at their parent's lr x 10 (ablation)",
}
#: (f)'s factor: the order of magnitude by which the inner loop raised lr in the runs so far (CartPole 3-45x,
#: Acrobot 15-18x), fixed once, not tuned.
BOOST = 10.0
#: The arms (c) is measured against (goal 2).
OTHERS = ("zoo", "fixed", "pb2")
COLORS = {
    "zoo": "tab:blue",
    "fixed": "tab:orange",
    "self": "tab:green",
    "pb2": "tab:purple",
    "lamarck": "tab:red",
    "boost": "tab:brown",
}
FIRST_SEED = 200
REPS = {"cartpole": 5, "acrobot": 3}
TRIALS, N_EVALUATIONS, POPULATION = 20, 5, 8
QUICK = {"trials": 4, "steps": 3_000, "n_evaluations": 3, "population": 4}
#: Set by the benchmark for every arm: refused in --set.
OWNED = ("training.total_steps", "training.eval_every", "training.eval_episodes", "training.seed")


def letter(arm: str) -> str:
    """An arm's short name in tables, "(a)" ... "(e)"."""
    return ARMS[arm].split(" ")[0]


def study_size(env: BenchEnv, args: argparse.Namespace) -> StudySize:
    if args.quick:
        size = StudySize(QUICK["trials"], QUICK["steps"], QUICK["n_evaluations"], 1)
    else:
        size = StudySize(TRIALS, env.steps, N_EVALUATIONS, REPS[env.name])
    return StudySize(args.trials or size.trials, args.steps or size.steps, size.n_evaluations, args.reps or size.reps)


def make_tasks(
    env: BenchEnv,
    size: StudySize,
    *,
    workdir: Path,
    extra: Sequence[str],
    population: int,
    workers: int,
    until_solved: bool,
) -> list[Task]:
    """Repetition-major, the arms side by side. Every arm stops a run at the success line; with
    ``until_solved`` every study (population) also ends at its first solved trial (member)."""
    protocol = (f"training.stop_at_return={env.threshold}", *extra)
    tasks = []
    for rep in range(size.reps):
        for arm in ARMS:
            key = f"{arm}|rep={rep}|trials={size.trials}|steps={size.steps}" + ("|until-solved" if until_solved else "")
            fields = {"arm": arm, "rep": rep, "seed": FIRST_SEED + rep, "trials_per_study": size.trials}
            fields["steps"] = size.steps
            fields["until_solved"] = until_solved
            if arm == "pb2":
                pb2 = pb2_job(
                    env,
                    size,
                    rep=rep,
                    workdir=workdir,
                    extra=protocol,
                    population=population,
                    workers=workers,
                    until_solved=until_solved,
                )
                tasks.append(
                    Task(f"{key}|population={population}", {**fields, "population": population}, _run_pb2, pb2)
                )
                continue
            # the SB3 study follows the training protocol only; the others every --set
            own = tuple(o for o in protocol if o.startswith("training.")) if arm == "zoo" else protocol
            job = StudyJob(
                arm,
                rep,
                size,
                workdir,
                False,
                own,
                env=env,
                first_seed=FIRST_SEED,
                zoo_space=True,
                inherit=arm in ("lamarck", "boost"),
                inherit_lr_factor=BOOST if arm == "boost" else None,
                until_solved=until_solved,
            )
            tasks.append(Task(key, fields, run_job, job, label=key))
    return tasks


def pb2_job(
    env: BenchEnv,
    size: StudySize,
    *,
    rep: int,
    workdir: Path,
    extra: Sequence[str],
    population: int,
    workers: int,
    until_solved: bool,
) -> Any:
    """Repetition ``rep``'s population: the study's budget (trials x steps), perturbed every evaluation interval."""
    from _pb2 import PB2Job

    return PB2Job(
        name=f"pb2-rep{rep}",
        env=env,
        seed=FIRST_SEED + rep,
        population=population,
        budget=size.trials * size.steps,
        interval=size.steps // size.n_evaluations,
        workdir=workdir,
        workers=workers,
        extra=tuple(extra),
        until_solved=until_solved,
    )


def _run_pb2(job: Any) -> dict[str, Any]:
    from _pb2 import run_pb2

    return run_pb2(job)


# -- statistics ------------------------------------------------------------------------------------------------
def censored_median(values: Sequence[float | None]) -> float:
    """Median with an unsolved repetition counted as never (infinitely many steps or seconds)."""
    return statistics.median(v if v is not None else math.inf for v in values)


def _fmt(value: float, unit: str = "") -> str:
    if math.isinf(value):
        return "never"
    return f"{value / 60:.1f} min" if unit == "min" else f"{value:,.0f}"


def _ratio(ours: float, other: float) -> str:
    """Two medians of env steps as a ratio; "n/a" when either arm never reached the line."""
    return "n/a" if math.isinf(ours) or math.isinf(other) else f"{ours / other:.2f}"


def arm_lines(
    records: Sequence[dict[str, Any]], env: BenchEnv, *, until_solved: bool
) -> tuple[list[str], dict[str, float]]:
    best = "best final return (until solved)" if until_solved else "best final return at full budget"
    lines = [
        "## Per arm",
        "",
        f"| arm | repetitions | solved (95% Wilson) | median env steps to first final eval >= {env.threshold:g} "
        f"| median CPU time to it | {best}, median (min..max) | mean fraction pruned |",
        "|---|---|---|---|---|---|---|",
    ]
    medians = {}
    for arm, label in ARMS.items():
        runs = [r for r in records if r["arm"] == arm]
        if not runs:
            continue
        solved = sum(r["steps_to_solve"] is not None for r in runs)
        medians[arm] = censored_median([r["steps_to_solve"] for r in runs])
        wall = censored_median([r.get("wall_to_solve") for r in runs])
        bests = [r["best"] if r["best"] is not None else env.worst for r in runs]
        pruned = [r["frac_pruned"] for r in runs if r.get("frac_pruned") is not None]
        lines.append(
            f"| {label} | {len(runs)} | {solved}/{len(runs)} ({wilson(solved, len(runs))}) | "
            f"{_fmt(medians[arm])} | {_fmt(wall, 'min')} | "
            f"{statistics.median(bests):.1f} ({min(bests):.1f}..{max(bests):.1f}) | "
            f"{f'{statistics.fmean(pruned):.0%}' if pruned else '-'} |"
        )
    return [*lines, ""], medians


def goal_lines(records: Sequence[dict[str, Any]], medians: dict[str, float], reps: int) -> list[str]:
    """The issue's goals: (c) solves every repetition; its median is at most 1/2 of the best other arm's. No
    verdict until (a)-(d) hold every repetition: a missing arm or repetition would make either goal look met."""
    if "self" not in medians:
        return []
    counts = {arm: sum(r["arm"] == arm for r in records) for arm in sorted((*OTHERS, "self"), key=list(ARMS).index)}
    if any(count < reps for count in counts.values()):
        have = ", ".join(f"{letter(arm)} {count}/{reps}" for arm, count in counts.items())
        return [f"- Goals: **pending**, not every arm has every repetition yet ({have}).", ""]
    runs = [r for r in records if r["arm"] == "self"]
    every = all(r["steps_to_solve"] is not None for r in runs)
    others = [medians[arm] for arm in OTHERS if arm in medians]
    best_other = min(others) if others else math.inf
    ours = medians["self"]
    halved = math.isfinite(ours) and ours <= best_other / 2
    ratio = _ratio(ours, best_other)
    return [
        f"- Goal 1: (c) reaches the line in every repetition: **{'met' if every else 'not met'}**.",
        f"- Goal 2: (c)'s median env steps to the line at most 1/2 of the best of (a), (b), (d) (an unsolved "
        f"repetition counts as never): (c)/best = {ratio} -> **{'met' if halved else 'not met'}**.",
        *lamarck_lines(records, medians),
        "",
    ]


def lamarck_lines(records: Sequence[dict[str, Any]], medians: dict[str, float]) -> list[str]:
    """(e) against (c), same repetitions: does handing self-tuned values on to new trials help?"""
    runs = [r for r in records if r["arm"] == "lamarck"]
    if not runs or "self" not in medians:
        return []
    children = [sum(t.get(INHERITED_FROM) is not None for t in r["trials"]) for r in runs]
    by_child = sum(
        any(t["number"] == r["solved_trial"] and t.get(INHERITED_FROM) is not None for t in r["trials"]) for r in runs
    )
    ours, base = medians["lamarck"], medians["self"]
    ratio = _ratio(ours, base)
    lines = [
        f"- (e) against (c): median env steps to the line {_fmt(ours)} against {_fmt(base)} ((e)/(c) = {ratio}); "
        f"inherited trials per study {statistics.median(children):g} (median); the first trial to reach the line "
        f"was an inherited one in {by_child} of {len(runs)} repetitions.",
    ]
    if "boost" in medians:
        blind = medians["boost"]
        lines.append(
            f"- (e) against its ablation (f), children at their parent's lr x {BOOST:g}: median env steps to the "
            f"line {_fmt(ours)} against {_fmt(blind)} ((e)/(f) = {_ratio(ours, blind)})."
        )
    return lines


def rep_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "## Per repetition",
        "",
        "| arm | rep (seed) | trials / members | env steps to the line | at trial / member | CPU time to it "
        "| best final return | env steps, all | CPU time, all |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for record in sorted(records, key=lambda r: (list(ARMS).index(r["arm"]), r["rep"])):
        solved = record["steps_to_solve"]
        to_solve = f"{solved:,}" if solved is not None else f"never (> {record['env_steps']:,})"
        wall = record.get("wall_to_solve")
        best = "-" if record["best"] is None else f"{record['best']:.1f}"
        lines.append(
            f"| {ARMS[record['arm']]} | {record['rep']} ({record['seed']}) | {record['n_finished']} | {to_solve} | "
            f"{record['solved_trial'] if record['solved_trial'] is not None else '-'} | "
            f"{'-' if wall is None else f'{wall / 60:.1f} min'} | {best} | {record['env_steps']:,} | "
            f"{record['wall_s'] / 60:.1f} min |"
        )
    return [*lines, ""]


def startup_break(record: dict[str, Any]) -> int | None:
    """The first trial of a study whose configuration is not its seed's next startup draw, where TPE was still
    drawing at random (None: all are). A study resumed before ``replay_startup_draws`` existed was reseeded and
    drew others from there on: it stays a fair sample of the space, but it no longer pairs with the other arms
    of its repetition."""
    if record["arm"] == "pb2":
        return None
    draws = iter(zoo_startup_draws(record["seed"]))
    trials = sorted(record["trials"], key=lambda trial: trial["number"])
    for trial in trials[:ZOO_TPE_STARTUP]:
        if trial.get(INHERITED_FROM) is None and trial["params"] != next(draws):
            return int(trial["number"])
    return None


def paired_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """Env steps to the line side by side per repetition (same seed, same startup draws in every arm), and (c)'s
    ratio to the best of (a), (b), (d) in that repetition: with 3-5 repetitions, the medians alone hide how
    consistent an advantage is."""
    by_rep: dict[int, dict[str, float]] = {}
    for record in records:
        solved = record["steps_to_solve"]
        by_rep.setdefault(record["rep"], {})[record["arm"]] = math.inf if solved is None else float(solved)
    if not by_rep:
        return []
    lines = [
        "## Paired by repetition",
        "",
        "| rep | " + " | ".join(letter(arm) for arm in ARMS) + " | (c) / best of (a), (b), (d) |",
        "|---|" + "---|" * (len(ARMS) + 1),
    ]
    halved = ahead = compared = 0
    for rep, steps in sorted(by_rep.items()):
        cells = [
            "-" if arm not in steps else "never" if math.isinf(steps[arm]) else f"{steps[arm]:,.0f}" for arm in ARMS
        ]
        others = [steps[arm] for arm in OTHERS if arm in steps]
        ratio = "-"
        if "self" in steps and others:
            ours, best = steps["self"], min(others)
            compared += 1
            ahead += ours < best
            halved += math.isfinite(ours) and ours <= best / 2
            if math.isfinite(ours) and math.isfinite(best):
                ratio = f"{ours / best:.2f}"
            elif math.isfinite(ours):
                ratio = "only (c) reached it"
            elif math.isfinite(best):
                ratio = "(c) never"
        lines.append(f"| {rep} | " + " | ".join(cells) + f" | {ratio} |")
    lines += [
        "",
        f"(c) reached the line before the best other arm in {ahead} of {compared} repetitions, in at most half its "
        f"env steps in {halved} of {compared}.",
        "",
    ]
    broken = [
        f"{letter(record['arm'])} in repetition {record['rep']} from trial {number}"
        for record in records
        if (number := startup_break(record)) is not None
    ]
    if broken:
        lines += [
            "Startup draws not shared (a study resumed before resumed studies replayed their seed's draws, so "
            f"it drew others; still a fair sample of the space, but not paired): {'; '.join(broken)}.",
            "",
        ]
    return lines


#: Arm pairs compared trial by trial on the configurations both sampled: what self-tuning adds to one
#: configuration, and whether this project's trainer matches SB3's on it.
CONFIG_PAIRS = (("self", "fixed"), ("fixed", "zoo"))


def config_pair_lines(records: Sequence[dict[str, Any]], threshold: float) -> list[str]:
    """Trial values of two arms on the same configuration. TPE's startup trials are the same seeded random draws
    in every arm of a repetition, so the arms train the same configurations side by side: a paired comparison
    with many more pairs than repetitions, free of the sampler's path (later TPE draws differ and are left out:
    only identical params pair). A pair needs a completed trial in both arms; a study ends at its first solved
    trial, so the pairs come from the trials before both stopped."""
    by_arm_rep: dict[tuple[str, int], dict[str, float]] = {}
    paired_arms = {arm for pair in CONFIG_PAIRS for arm in pair}  # studies: PB2's members are not trials
    for record in records:
        if record["arm"] not in paired_arms:
            continue
        values = by_arm_rep.setdefault((record["arm"], record["rep"]), {})
        for trial in record["trials"]:
            if trial["state"] == "COMPLETE" and trial["value"] is not None and trial.get(INHERITED_FROM) is None:
                values.setdefault(json.dumps(trial["params"], sort_keys=True), float(trial["value"]))
    rows = []
    for arm, other in CONFIG_PAIRS:
        pairs = [
            (values[key], others[key])
            for (name, rep), values in by_arm_rep.items()
            if name == arm and (others := by_arm_rep.get((other, rep)))
            for key in values.keys() & others.keys()
        ]
        if not pairs:
            continue
        diffs = [a - b for a, b in pairs]
        nonzero = [d for d in diffs if d != 0]
        p_value = float(wilcoxon(nonzero).pvalue) if len(nonzero) >= 2 else 1.0
        solved_a = sum(a >= threshold for a, _ in pairs)
        solved_b = sum(b >= threshold for _, b in pairs)
        rows.append(
            f"| {letter(arm)} vs {letter(other)} | {len(pairs)} | {sum(d > 0 for d in diffs)} / "
            f"{sum(d < 0 for d in diffs)} | {statistics.median(diffs):+.1f} | {p_value:.3g}"
            f"{'' if p_value < 0.05 else ' (not significant)'} | {solved_a} / {solved_b} |"
        )
    if not rows:
        return []
    return [
        "## Paired by configuration",
        "",
        "Same configuration (identical params, in practice TPE's seeded startup draws), same repetition, two arms:",
        "",
        "| arms | pairs | first higher / lower | median difference of values | Wilcoxon p | reached the line |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]


# -- plot ------------------------------------------------------------------------------------------------------
def best_so_far(record: dict[str, Any], grid: np.ndarray, floor: float) -> np.ndarray:
    """The best final evaluation so far at each env-step count of ``grid`` (``floor`` before any)."""
    xs, ys, best = [0], [floor], floor
    for event in record["trials"]:
        if event["value"] is not None:
            best = max(best, event["value"])
        xs.append(event["cumulative_steps"])
        ys.append(best)
    index = np.searchsorted(np.asarray(xs), grid, side="right") - 1
    return np.asarray(ys)[index]


def plot(records: Sequence[dict[str, Any]], env: BenchEnv, budget: int, path: Path) -> None:
    """Best final return so far against env steps: every repetition faint, the median per arm bold."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    grid = np.linspace(0, budget, 400)
    for arm, label in ARMS.items():
        runs = [r for r in records if r["arm"] == arm]
        if not runs:
            continue
        curves = np.stack([best_so_far(r, grid, env.worst) for r in runs])
        for curve in curves:
            ax.step(grid, curve, where="post", color=COLORS[arm], alpha=0.25, lw=0.8)
        ax.step(grid, np.median(curves, axis=0), where="post", color=COLORS[arm], lw=2.2, label=label)
    ax.axhline(env.threshold, color="gray", lw=0.8, ls="--")
    ax.set(xlabel="env steps (all trials / members)", ylabel="best final eval return so far", title=env.name)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def build_report(
    records: Sequence[dict[str, Any]],
    env: BenchEnv,
    size: StudySize,
    *,
    population: int,
    name: str,
    out: Path,
    quick: bool,
    until_solved: bool,
) -> list[str]:
    figure = out / f"{name}.png"
    budget = size.trials * size.steps
    if records:
        plot(records, env, budget, figure)
    lines = report_header(
        quick=quick,
        title=f"The AutoML claim, cold: {env.name}, {size.trials} trials x {size.steps:,} env steps "
        f"({len(records)} of {size.reps * len(ARMS)} runs recorded)",
        notes=[
            f"Repetitions use seeds {FIRST_SEED}..{FIRST_SEED + size.reps - 1} (sampler, agents, PB2's initial "
            "draws); development used 0-99, tests 100-109",
            f"(a)-(c), (e) and (f): rl-zoo3's DQN space (same Optuna params), TPE n_startup_trials={ZOO_TPE_STARTUP} "
            f"multivariate, MedianPruner(n_startup_trials={ZOO_TPE_STARTUP}, warm-up {size.n_evaluations // 3} "
            f"of {size.n_evaluations} evaluations), no enqueued trial; other settings: rl-zoo3's {env.name} row",
            f"(d): PB2, {population} members of {budget // population:,} env steps each, synchronous perturbation "
            f"every {size.steps // size.n_evaluations:,} steps; mutates lr and 1 - gamma (log10), exploration "
            "fraction and final eps within rl-zoo3's ranges; batch size, train_freq, gradient steps, target "
            "update interval and network keep each member's initial (random) draw",
            f"Every run stops once an evaluation reaches {env.threshold:g}; its value is then a 20-episode "
            "evaluation of that policy. Success: a trial's (member's) value >= the line. Env steps and CPU time "
            "(sum of the runs' wall times, 1 thread each) count everything run before it, pruned runs included",
            "The pruner sees the same data in every study: (a) reports as the runner does (a run solved early "
            "carries its last periodic mean through the later evaluations; the final evaluation is the value "
            "only). Self-tuning clamps a starting gamma to at most 0.9995, so in (c), (e) and (f) rl-zoo3's draws "
            "above it start there",
            "(e): as (c), and a trial that completes with a value at least the median of the study's completed "
            "ones hands its final self-tuned lr and gamma (gamma as sampled under v7; clipped into the space) to "
            "one new trial, enqueued with its other params (a child has a child only if it beat its parent); "
            "Huber delta is not in the space, so children start from the row's",
            f"(f): (e)'s ablation, the same loop with each child's lr at its parent's sampled lr x {BOOST:g} "
            "(clipped into the space) instead of its parent's final self-tuned lr",
            "Until solved: a study (PB2 population) ends at its first trial (member) whose value reaches the line; "
            "the question is how soon an arm finds such an agent, and the full budget of 5 arms costs days of this "
            "machine's CPU. A solved repetition's best final return is then its first one at or above the line "
            "(a lower bound of its best at the full budget); an unsolved one spent the full budget"
            if until_solved
            else "Full budget: every study (population) runs all its trials (members' steps), solved or not",
        ],
    )
    table, medians = arm_lines(records, env, until_solved=until_solved)
    lines += table + goal_lines(records, medians, size.reps) + paired_lines(records)
    lines += config_pair_lines(records, env.threshold) + rep_lines(records)
    lines += [f"![best so far]({figure.name})", "", "## Cost", ""]
    full = StudySize(TRIALS, env.steps, N_EVALUATIONS, REPS[env.name])
    lines += cpu_estimate_lines(records, {arm: full.trials * full.steps * full.reps for arm in ARMS}, by="arm")
    lines.append("(Upper bound: it assumes no run is stopped or pruned early.)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, envs=("cartpole", "acrobot"))
    parser.add_argument("--reps", type=int, default=None, help="repetitions per arm [cartpole 5, acrobot 3; quick 1]")
    parser.add_argument("--trials", type=int, default=None, help="trials per study [20; quick 4]")
    parser.add_argument("--steps", type=int, default=None, help="env steps per trial [the env's rl-zoo3 budget]")
    parser.add_argument("--population", type=int, default=None, help=f"PB2 members [{POPULATION}; quick 4]")
    parser.add_argument(
        "--full-budget",
        action="store_true",
        help="run every study and population to its whole budget (default: each ends at its first solved trial)",
    )
    add_arms_arg(parser, tuple(ARMS))
    args = parser.parse_args()
    arms = chosen_arms(parser, args.arms, tuple(ARMS))
    owned = [o for o in args.overrides if o.split("=", 1)[0].strip() in OWNED]
    if owned:
        parser.error(f"--set {owned[0]}: the benchmark sets it (use --steps, --quick)")
    env = ENVS[args.env]
    size = study_size(env, args)
    population = args.population or (QUICK["population"] if args.quick else POPULATION)
    until_solved = not args.full_budget
    name = results_name("automl-cold", env=env.name, quick=args.quick, tag=args.tag)
    log = ResultLog(args.out / f"{name}.jsonl")
    tasks = make_tasks(
        env,
        size,
        workdir=args.out / f"{name}.tmp",
        extra=args.overrides,
        population=population,
        workers=args.workers,
        until_solved=until_solved,
    )
    if not args.report_only:
        studies = [t for t in tasks if t.fields["arm"] in arms and t.fields["arm"] != "pb2"]
        run_tasks(studies, log, workers=args.workers)
        if "pb2" in arms:  # one population at a time, Ray spreading its members over --workers cores
            run_tasks([t for t in tasks if t.fields["arm"] == "pb2"], log, workers=1)
    keys = {task.key for task in tasks}
    records = [r for r in log.records() if r["key"] in keys]
    write_report(
        args.out / f"{name}.md",
        build_report(
            records,
            env,
            size,
            population=population,
            name=name,
            out=args.out,
            quick=args.quick,
            until_solved=until_solved,
        ),
    )


if __name__ == "__main__":
    main()
