"""Anchor: Stable-Baselines3 DQN vs this project's DQN (fixed, hd, meta) on rl-zoo3's tuned settings.

Issue 6, benchmarks 2 and 4. Ten seeds each, in one run, interleaved seed by seed:

    sb3     stable_baselines3.DQN with the rl-zoo3 row (``studies/<env>.yaml`` base, via ``sb3_kwargs``)
    fixed   this project's DQN, same settings, self-tuning off
    hd      the same, the learning rate self-tuning (hypergradient descent)
    meta    the same, meta-gradient self-tuning of the spec's ``self_tuning.params``
            (CartPole: lr, gamma, Huber delta, tau; Acrobot: gamma, Huber delta, tau)

Every arm ends with the same deterministic evaluation: ``dqnmap_auto.evaluation.Evaluator``, 20 episodes on
the same fixed seeds. Success: >= 475 (CartPole-v1), >= -100 (Acrobot-v1). Goal: self-tuned >= 9/10 seeds.

Resumable like the others (one JSONL line per run; ``--report-only``). Usage (from the repo root)::

    PYTHONPATH=. python benchmarks/anchor.py --env cartpole --workers 2    # 40 runs x 50k steps
    PYTHONPATH=. python benchmarks/anchor.py --env acrobot --workers 2     # 40 runs x 100k steps
    PYTHONPATH=. python benchmarks/anchor.py --env cartpole --quick --workers 2
    # every arm (SB3 too) stops once an evaluation reaches the success line, then the final evaluation scores it
    PYTHONPATH=. python benchmarks/anchor.py --env cartpole --workers 2 --set training.stop_at_return=475 --tag stop
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import (
    CLASSIC_PAIR,
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
    fmt_value,
    mean_std,
    pyplot,
    report_header,
    results_name,
    run_tasks,
    train_dqnmap,
    write_report,
)
from _sb3 import run_sb3

ARMS: dict[str, tuple[str, ...]] = {
    "sb3": FIXED,
    "fixed": FIXED,
    "hd": ("self_tuning.enabled=true", "self_tuning.mode=hd", "self_tuning.params=[lr]"),
    "meta": ("self_tuning.enabled=true", "self_tuning.mode=meta"),
}
SELF_TUNED = ("hd", "meta")
GOAL = 0.9
SEEDS = {False: 10, True: 2}
QUICK_STEPS = {"cartpole": 10_000, "acrobot": 5_000}


def make_tasks(env: BenchEnv, *, steps: int, seeds: int, extra: Sequence[str]) -> list[Task]:
    """Seed-major with the arms side by side, so a partial run compares the arms on the same seeds."""
    tasks = []
    for seed in range(seeds):
        for arm, overrides in ARMS.items():
            # --set changes this project's runs only, except the protocol (training.*: budget, evaluations,
            # training.stop_at_return), which SB3's runs follow too
            ours = [o for o in extra if o.startswith("training.")] if arm == "sb3" else list(extra)
            config = bench_config(env, steps=steps, seed=seed, overrides=[*overrides, *ours])
            key = f"{arm}|seed={seed}|steps={steps}"
            fields = {"env": env.name, "mode": arm, "seed": seed, "steps": steps}
            tasks.append(Task(key, fields, run_sb3 if arm == "sb3" else train_dqnmap, config, label=key))
    return tasks


# -- report ----------------------------------------------------------------------------------------------------
def arm_lines(records: Sequence[dict[str, Any]], env: BenchEnv) -> list[str]:
    lines = [
        "## Final evaluation per arm",
        "",
        f"Success: final deterministic eval (20 episodes, same seeds for every arm) >= {env.threshold:g}. "
        f"Goal: self-tuned >= {GOAL:.0%} of seeds.",
        "",
        "| arm | tunes | seeds | successes | final eval mean ± std | median | min | final lr (median) "
        "| final gamma (median) | s/run | env steps/s | goal |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        runs = [r for r in records if r["mode"] == arm]
        if not runs:
            continue
        finals = [r["final_mean"] for r in runs if r["final_mean"] is not None]
        wins = sum(r["success"] for r in runs)
        goal = "(baseline)" if arm not in SELF_TUNED else ("met" if wins / len(runs) >= GOAL else "**not met**")
        lines.append(
            f"| {arm} | {', '.join(runs[0]['tuned']) or '-'} | {len(runs)} | {wins}/{len(runs)} | "
            f"{mean_std(finals)} | {fmt_value(statistics.median(finals), 4) if finals else '-'} | "
            f"{fmt_value(min(finals), 4) if finals else '-'} | "
            f"{fmt_value(statistics.median(r['hp_final']['lr'] for r in runs))} | "
            f"{fmt_value(statistics.median(r['hp_final']['gamma'] for r in runs), 4)} | "
            f"{statistics.fmean(r['wall_s'] for r in runs):.0f} | "
            f"{statistics.fmean(r['sps'] for r in runs):.0f} | {goal} |"
        )
    return [*lines, ""]


def evaluation_at(run: dict[str, Any], step: int) -> float | None:
    """The run's periodic evaluation at ``step``; after a ``training.stop_at_return`` stop, the stopped policy's
    final score (it no longer changes). At the stop step the history holds the evaluation that reached the line,
    then the final one: the first is the periodic one."""
    solved = run.get("solved_at")
    if solved is not None and step > solved:
        return run["final_mean"]
    return next((value for s, value in run["eval_history"] if s == step), None)


def at_line(value: float | None, env: BenchEnv) -> bool:
    """An evaluation at or above the success line (None: no evaluation at that step)."""
    return value is not None and value >= env.threshold


def periodic_steps(records: Sequence[dict[str, Any]]) -> list[int]:
    return sorted({step for r in records for step, _ in r["eval_history"] if step < r["steps"]})


def stability_lines(records: Sequence[dict[str, Any]], env: BenchEnv) -> list[str]:
    """How many runs of each arm were at the success line at each evaluation: DQN on CartPole reaches it and
    falls back, so the final evaluation alone hides whether an arm is stable or lucky."""
    steps = periodic_steps(records)
    lines = [
        "## At the success line per evaluation",
        "",
        f"Runs whose evaluation at that step was >= {env.threshold:g} (10 episodes; after a stop, the stopped "
        "policy's final score), then the final evaluation (20 episodes).",
        "",
        "| arm | " + " | ".join(f"{s // 1000}k" for s in steps) + " | final | reached at least once |",
        "|---" * (len(steps) + 3) + "|",
    ]
    by_arm = {arm: [r for r in records if r["mode"] == arm] for arm in ARMS}
    for arm, runs in by_arm.items():
        if not runs:
            continue
        at = [sum(at_line(evaluation_at(r, s), env) for r in runs) for s in steps]
        at.append(sum(r["success"] for r in runs))
        reached = sum(any(at_line(v, env) for _, v in r["eval_history"]) for r in runs)
        lines.append(f"| {arm} | " + " | ".join(f"{n}/{len(runs)}" for n in at) + f" | {reached}/{len(runs)} |")
    if any(r.get("solved_at") is not None for r in records):  # training.stop_at_return: reaching it stopped them
        lines += ["", "Stopped at the line (`training.stop_at_return`), then scored by the final evaluation:", ""]
        for arm, runs in by_arm.items():
            steps_at = [r["solved_at"] for r in runs if r.get("solved_at") is not None]
            if runs:
                median = f", median step {statistics.median(steps_at):,.0f}" if steps_at else ""
                lines.append(f"- {arm}: {len(steps_at)}/{len(runs)}{median}")
    return [*lines, ""]


def seed_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """Side by side per seed: same seed, same evaluation episodes, so the rows are paired."""
    seeds = sorted({r["seed"] for r in records})
    by_key = {(r["mode"], r["seed"]): r for r in records}
    lines = ["## Per seed (final eval)", "", "| seed | " + " | ".join(ARMS) + " |", "|---" * (len(ARMS) + 1) + "|"]
    for seed in seeds:
        cells = []
        for arm in ARMS:
            run = by_key.get((arm, seed))
            if run is None:
                cells.append("")
            elif run["diverged"]:
                cells.append("diverged")
            else:
                cells.append(f"{run['final_mean']:.1f}" + (" ✓" if run["success"] else ""))
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def plot(records: Sequence[dict[str, Any]], env: BenchEnv, path: Path) -> None:
    """Left: every seed's final eval per arm. Right: the mean evaluation curve per arm."""
    plt = pyplot()
    fig, (ax_final, ax_curve) = plt.subplots(1, 2, figsize=(10, 4))
    steps_evaluated = periodic_steps(records)
    for index, arm in enumerate(ARMS):
        runs = [r for r in records if r["mode"] == arm and r["final_mean"] is not None]
        if not runs:
            continue
        xs = [index + 0.4 * (k / max(len(runs) - 1, 1) - 0.5) for k in range(len(runs))]  # spread the seeds
        ax_final.scatter(xs, [r["final_mean"] for r in runs], label=arm, alpha=0.8)
        curves: dict[int, list[float]] = {}
        for run in runs:  # periodic evaluations (after a stop: the stopped policy's score), then the final one
            for step in steps_evaluated:
                value = evaluation_at(run, step)
                if value is not None:
                    curves.setdefault(step, []).append(value)
            curves.setdefault(run["steps"], []).append(run["final_mean"])
        steps = sorted(curves)
        ax_curve.plot(steps, [statistics.fmean(curves[s]) for s in steps], marker="o", label=arm)
    ax_final.axhline(env.threshold, color="gray", ls="--", lw=0.8)
    ax_final.set_xticks(range(len(ARMS)), list(ARMS))
    ax_final.set(ylabel="final eval (20 episodes)", title="final evaluation per seed")
    ax_curve.axhline(env.threshold, color="gray", ls="--", lw=0.8)
    ax_curve.set(xlabel="env steps", ylabel="mean eval over seeds", title="evaluation curve (last point: final)")
    ax_curve.legend(fontsize=8)
    fig.suptitle(f"{env.name}: SB3 vs dqnmap-auto on rl-zoo3's settings", fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def build_report(
    records: Sequence[dict[str, Any]], env: BenchEnv, *, steps: int, seeds: int, name: str, out: Path, quick: bool
) -> list[str]:
    figure = out / f"{name}.png"
    if records:
        plot(records, env, figure)
    lines = report_header(
        quick=quick,
        title=f"Anchor: {env.name}, {steps} env steps per run ({len(records)} of {seeds * len(ARMS)} runs recorded)",
        notes=[
            f"Arms: {', '.join(ARMS)}; settings: rl-zoo3's tuned row (`studies/{env.spec.name}`), "
            f"{seeds} seeds (0..{seeds - 1}) per arm",
        ],
    )
    lines += arm_lines(records, env) + stability_lines(records, env) + seed_lines(records)
    lines += [f"![final evals and curves]({figure.name})", ""]
    full_steps = {arm: env.steps * SEEDS[False] for arm in ARMS}
    return [*lines, "## Cost", "", *cpu_estimate_lines(records, full_steps, by="mode")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, envs=CLASSIC_PAIR)
    parser.add_argument("--seeds", type=int, default=None, help="seeds per arm [10; quick: 2]")
    parser.add_argument("--steps", type=int, default=None, help="env steps per run [rl-zoo3's budget]")
    add_arms_arg(parser, tuple(ARMS))
    args = parser.parse_args()
    arms = chosen_arms(parser, args.arms, tuple(ARMS))
    env = ENVS[args.env]
    steps = args.steps or (QUICK_STEPS[env.name] if args.quick else env.steps)
    seeds = args.seeds or SEEDS[args.quick]
    name = results_name("anchor", env=env.name, quick=args.quick, tag=args.tag)
    log = ResultLog(args.out / f"{name}.jsonl")
    tasks = make_tasks(env, steps=steps, seeds=seeds, extra=args.overrides)
    if not args.report_only:
        annotate = lambda r: {**r, "success": env.success(r["final_mean"])}  # noqa: E731
        run_tasks([t for t in tasks if t.fields["mode"] in arms], log, workers=args.workers, annotate=annotate)
    keys = {task.key for task in tasks}
    records = [r for r in log.records() if r["key"] in keys]
    write_report(
        args.out / f"{name}.md",
        build_report(records, env, steps=steps, seeds=seeds, name=name, out=args.out, quick=args.quick),
    )


if __name__ == "__main__":
    main()
