"""Robustness to the initial learning rate and discount: fixed hyperparameters vs self-tuning (hd, meta).

Issue 6, benchmarks 1 and 4. Each run trains this project's DQN with rl-zoo3's tuned settings for the env
(``studies/<env>.yaml`` base) except the *initial* learning rate and discount, swept over
lr in {1e-5, 1e-4, 1e-3, 1e-2, 1e-1} x gamma in {0.9, 0.99}, for three arms:

    fixed   self-tuning off: lr and gamma stay where they start
    hd      hypergradient descent on lr (gamma stays fixed: hd tunes lr only)
    meta    lookahead meta-gradients on lr, gamma, Huber delta and tau

Success: the final deterministic evaluation (20 fixed-seed episodes) reaches 475 (CartPole-v1) or -100
(Acrobot-v1). Goal: self-tuning succeeds in >= 80% of all runs. The report also shows where the tuner drove
lr and gamma, and the interval the trust region (``self_tuning.max_change``) lets each start reach.

Every finished run is one line of ``results/robustness-<env>[-quick].jsonl``; a rerun skips recorded runs
(kill and resume freely) and ``--report-only`` rebuilds the markdown and plots. Usage (from the repo root)::

    PYTHONPATH=. python benchmarks/robustness.py --env cartpole --workers 2     # 150 runs x 50k steps
    PYTHONPATH=. python benchmarks/robustness.py --env acrobot --workers 2      # 90 runs x 100k (3 seeds)
    PYTHONPATH=. python benchmarks/robustness.py --env cartpole --quick --workers 2   # smoke test
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
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
    pyplot,
    report_header,
    results_name,
    run_tasks,
    train_dqnmap,
    write_report,
)

from dqnmap_auto.config import TrainConfig
from dqnmap_auto.hypergrad.build import build_space

LRS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
GAMMAS = (0.9, 0.99)
MODES = ("fixed", "hd", "meta")
MODE_OVERRIDES: dict[str, tuple[str, ...]] = {
    "fixed": FIXED,
    "hd": ("self_tuning.enabled=true", "self_tuning.mode=hd", "self_tuning.params=[lr]"),
    "meta": ("self_tuning.enabled=true", "self_tuning.mode=meta", "self_tuning.params=[lr,gamma,huber_delta]"),
}
GOAL = 0.8


@dataclass(frozen=True)
class Size:
    steps: int
    seeds: int
    lrs: tuple[float, ...] = LRS
    gammas: tuple[float, ...] = GAMMAS


SIZES: dict[tuple[str, bool], Size] = {
    ("cartpole", False): Size(steps=50_000, seeds=5),
    ("cartpole", True): Size(steps=10_000, seeds=1, lrs=(1e-5, 1e-3, 1e-1)),
    ("acrobot", False): Size(steps=100_000, seeds=3),
    ("acrobot", True): Size(steps=5_000, seeds=1, lrs=(1e-5, 1e-3, 1e-1), gammas=(0.99,)),
}


def run_config(
    env: BenchEnv, size: Size, *, mode: str, lr: float, gamma: float, seed: int, extra: Sequence[str]
) -> TrainConfig:
    """The config of one run: the env's rl-zoo3 row, this cell's initial lr and gamma, this arm."""
    overrides = [f"agent.lr={lr}", f"agent.gamma={gamma}", *MODE_OVERRIDES[mode], *extra]
    return bench_config(env, steps=size.steps, seed=seed, overrides=overrides)


def make_tasks(env: BenchEnv, size: Size, extra: Sequence[str]) -> list[Task]:
    """Seed-major, then cell, then the three arms side by side: a partial run is balanced across arms and
    cells (every arm has the same seeds of every cell, give or take the runs in flight)."""
    tasks = []
    for seed in range(size.seeds):
        for lr in size.lrs:
            for gamma in size.gammas:
                for mode in MODES:
                    config = run_config(env, size, mode=mode, lr=lr, gamma=gamma, seed=seed, extra=extra)
                    fields = {"env": env.name, "mode": mode, "lr0": lr, "gamma0": gamma, "seed": seed}
                    fields["steps"] = size.steps
                    key = f"{mode}|lr={lr:g}|gamma={gamma:g}|seed={seed}|steps={size.steps}"
                    tasks.append(Task(key, fields, train_dqnmap, config, label=key))
    return tasks


# -- report ----------------------------------------------------------------------------------------------------
def _cell(records: Sequence[dict[str, Any]], mode: str, lr: float, gamma: float) -> list[dict[str, Any]]:
    return [r for r in records if r["mode"] == mode and r["lr0"] == lr and r["gamma0"] == gamma]


def _finals(records: Sequence[dict[str, Any]]) -> list[float]:
    return [r["final_mean"] for r in records if r["final_mean"] is not None]


def _cell_text(runs: Sequence[dict[str, Any]]) -> str:
    if not runs:
        return "-"
    finals = _finals(runs)
    mean = f"{statistics.fmean(finals):.1f}" if finals else "-"
    diverged = sum(1 for r in runs if r["diverged"])
    return f"{sum(r['success'] for r in runs)}/{len(runs)} · {mean}" + (f" ({diverged} div.)" if diverged else "")


def reachable(config: TrainConfig) -> dict[str, tuple[float, float]]:
    """The interval each tuned value can reach from its start: the engine's bounds narrowed by its trust
    region (``self_tuning.max_change``), read from the engine itself so the report can't drift from it."""
    return dict(build_space(config).bounds)


def summary_lines(records: Sequence[dict[str, Any]], env: BenchEnv) -> list[str]:
    lines = [
        "## Success over all runs",
        "",
        f"Success: final deterministic eval (20 episodes) >= {env.threshold:g}. Goal: self-tuning >= {GOAL:.0%}.",
        "",
        "| arm | runs | successes | success rate | mean final eval | diverged | goal |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        runs = [r for r in records if r["mode"] == mode]
        if not runs:
            continue
        wins = sum(r["success"] for r in runs)
        finals = _finals(runs)
        mean = f"{statistics.fmean(finals):.1f}" if finals else "-"
        diverged = sum(1 for r in runs if r["diverged"])
        goal = "(baseline)" if mode == "fixed" else ("met" if wins / len(runs) >= GOAL else "**not met**")
        lines.append(f"| {mode} | {len(runs)} | {wins} | {wins / len(runs):.0%} | {mean} | {diverged} | {goal} |")
    return [*lines, ""]


def grid_lines(records: Sequence[dict[str, Any]], size: Size) -> list[str]:
    lines = ["## Per cell: successes/runs · mean final eval", ""]
    for mode in MODES:
        lines += [f"**{mode}**", "", "| initial lr \\ gamma | " + " | ".join(f"{g:g}" for g in size.gammas) + " |"]
        lines.append("|---" * (len(size.gammas) + 1) + "|")
        for lr in size.lrs:
            cells = [_cell_text(_cell(records, mode, lr, g)) for g in size.gammas]
            lines.append(f"| {lr:g} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def trust_region_lines(env: BenchEnv, size: Size, extra: Sequence[str]) -> list[str]:
    """What each start of the full grid can reach at all, read from the engine before any run: with a
    ``max_change`` of 10 (the default before self-tuning v2; now none), an lr that starts 100x off the good
    value cannot get there, whatever its hypergradient says."""
    zoo = bench_config(env, steps=size.steps, seed=0).agent

    def space(lr: float, gamma: float) -> dict[str, tuple[float, float]]:
        return reachable(run_config(env, size, mode="meta", lr=lr, gamma=gamma, seed=0, extra=extra))

    lines = [
        "## Trust region: what each start can reach (from the engine, independent of the runs)",
        "",
        f"`self_tuning.max_change` narrows the bounds to a factor around the start (odds for gamma). rl-zoo3's "
        f"tuned values for this env: lr {zoo.lr:g}, gamma {zoo.gamma:g}. The fixed arm at the edge of a start's "
        "reachable lr shows the best that start could do by driving lr all the way there.",
        "",
        "| initial lr | reachable lr | rl-zoo3 lr reachable |",
        "|---|---|---|",
    ]
    for lr in LRS:
        low, high = space(lr, zoo.gamma)["lr"]
        lines.append(f"| {lr:g} | [{low:.3g}, {high:.3g}] | {'yes' if low <= zoo.lr <= high else '**no**'} |")
    lines += ["", "| initial gamma | reachable gamma (meta) | rl-zoo3 gamma reachable |", "|---|---|---|"]
    for gamma in GAMMAS:
        low, high = space(zoo.lr, gamma)["gamma"]
        lines.append(f"| {gamma:g} | [{low:.4g}, {high:.4g}] | {'yes' if low <= zoo.gamma <= high else '**no**'} |")
    return [*lines, ""]


def drift_lines(records: Sequence[dict[str, Any]], env: BenchEnv, size: Size, extra: Sequence[str]) -> list[str]:
    """Where the tuner drove lr and gamma, against what its trust region lets it reach."""
    zoo_lr = bench_config(env, steps=size.steps, seed=0).agent.lr
    lines = [
        "## Where the tuner drove lr and gamma",
        "",
        f"Reachable: the engine's bounds narrowed by the trust region around the start. rl-zoo3's tuned lr "
        f"for this env is {zoo_lr:g}; *zoo lr reachable* says whether it lies in the reachable lr interval. "
        "Final values: median [min, max] over the cell's runs; *at edge*: runs whose final lr ended within 2% "
        "of an end of its reachable interval (the tuner pushing against the wall).",
        "",
        "| arm | lr0 | gamma0 | reachable lr | zoo lr reachable | final lr | lr at edge | reachable gamma "
        "| final gamma | successes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in ("hd", "meta"):
        for lr in size.lrs:
            for gamma in size.gammas:
                runs = _cell(records, mode, lr, gamma)
                if not runs:
                    continue
                space = reachable(run_config(env, size, mode=mode, lr=lr, gamma=gamma, seed=0, extra=extra))
                lr_lo, lr_hi = space["lr"]
                g_range = space.get("gamma")
                lrs = [r["hp_final"]["lr"] for r in runs]
                gammas = [r["hp_final"]["gamma"] for r in runs]
                edge = sum(1 for v in lrs if v <= lr_lo * 1.02 or v >= lr_hi / 1.02)
                lines.append(
                    f"| {mode} | {lr:g} | {gamma:g} | [{lr_lo:.3g}, {lr_hi:.3g}] | "
                    f"{'yes' if lr_lo <= zoo_lr <= lr_hi else '**no**'} | {_spread(lrs)} | {edge}/{len(runs)} | "
                    f"{f'[{g_range[0]:.4g}, {g_range[1]:.4g}]' if g_range else 'fixed'} | {_spread(gammas, 4)} | "
                    f"{sum(r['success'] for r in runs)}/{len(runs)} |"
                )
    return [*lines, ""]


def _spread(values: Sequence[float], digits: int = 3) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return fmt_value(values[0], digits)
    return f"{fmt_value(statistics.median(values), digits)} [{fmt_value(min(values), digits)}, " + (
        f"{fmt_value(max(values), digits)}]"
    )


def plot_heatmap(records: Sequence[dict[str, Any]], size: Size, env: BenchEnv, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(
        1, len(MODES), figsize=(3.0 * len(MODES), 0.9 * len(size.lrs) + 1.6), squeeze=False, sharey=True
    )
    for ax, mode in zip(axes[0], MODES, strict=True):
        rates: list[list[float]] = []
        for lr in size.lrs:
            row = []
            for gamma in size.gammas:
                runs = _cell(records, mode, lr, gamma)
                row.append(sum(r["success"] for r in runs) / len(runs) if runs else float("nan"))
                finals = _finals(runs)
                text = f"{sum(r['success'] for r in runs)}/{len(runs)}\n" if runs else "-"
                text += f"{statistics.fmean(finals):.0f}" if finals else ""
                ax.text(len(row) - 1, len(rates), text, ha="center", va="center", fontsize=8)
            rates.append(row)
        image = ax.imshow(rates, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(size.gammas)), [f"{g:g}" for g in size.gammas])
        ax.set_yticks(range(len(size.lrs)), [f"{lr:g}" for lr in size.lrs])
        ax.set_xlabel("initial gamma")
        ax.set_title(mode)
    axes[0][0].set_ylabel("initial lr")
    fig.colorbar(image, ax=axes[0].tolist(), label="success rate", shrink=0.8)
    fig.suptitle(f"{env.name}: success (final eval >= {env.threshold:g}) and mean final eval per cell", fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_drift(records: Sequence[dict[str, Any]], env: BenchEnv, size: Size, path: Path) -> None:
    """Initial vs final lr and gamma per run (hd, meta); green: success. The dashed lines are the x10 band."""
    plt = pyplot()
    zoo_lr = bench_config(env, steps=size.steps, seed=0).agent.lr
    fig, (ax_lr, ax_g) = plt.subplots(1, 2, figsize=(10, 4))
    for offset, (mode, marker) in zip((0.93, 1.07), (("hd", "o"), ("meta", "s")), strict=True):
        runs = [r for r in records if r["mode"] == mode]
        colors = ["tab:green" if r["success"] else "tab:red" for r in runs]
        ax_lr.scatter([r["lr0"] * offset for r in runs], [r["hp_final"]["lr"] for r in runs], c=colors, marker=marker)
        gammas = [r["hp_final"]["gamma"] for r in runs]
        ax_g.scatter([r["gamma0"] + (offset - 1) * 0.05 for r in runs], gammas, c=colors, marker=marker)
        ax_lr.scatter([], [], marker=marker, c="gray", label=mode)
    xs = [min(size.lrs) / 2, max(size.lrs) * 2]
    ax_lr.plot(xs, xs, "k-", lw=0.5)
    ax_lr.plot(xs, [x * 10 for x in xs], "k--", lw=0.5)
    ax_lr.plot(xs, [x / 10 for x in xs], "k--", lw=0.5)
    ax_lr.axhline(zoo_lr, color="tab:blue", lw=0.8, label=f"rl-zoo3 lr {zoo_lr:g}")
    ax_lr.set(xscale="log", yscale="log", xlabel="initial lr", ylabel="final lr", title="learning rate")
    ax_lr.legend(fontsize=8)
    ax_g.set(xlabel="initial gamma (hd left, meta right)", ylabel="final gamma", title="discount (hd: fixed)")
    fig.suptitle(f"{env.name}: where self-tuning drove lr and gamma (green: success)", fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def comparison_lines(
    records: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]], baseline_name: str
) -> list[str]:
    """This variant against ``baseline`` (another engine's runs of the same grid), arm by arm, on the runs
    both recorded: the same arm, cell and seed, so a partial run still compares like with like."""
    ours = {r["key"]: r for r in records}
    theirs = {r["key"]: r for r in baseline}
    lines = [
        f"## Against `{baseline_name}` (the same runs: arm, cell and seed recorded in both)",
        "",
        "| arm | runs | successes, baseline | successes, this | mean final eval, baseline | mean final eval, this |",
        "|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        keys = sorted(k for k in ours.keys() & theirs.keys() if ours[k]["mode"] == mode)
        if not keys:
            continue
        pairs = [(theirs[k], ours[k]) for k in keys]
        wins = [sum(bool(pair[i]["success"]) for pair in pairs) for i in (0, 1)]
        means = [fmt_value(statistics.fmean(_finals([pair[i] for pair in pairs]) or [float("nan")]), 4) for i in (0, 1)]
        lines.append(
            f"| {mode} | {len(keys)} | {wins[0]} ({wins[0] / len(keys):.0%}) | {wins[1]} ({wins[1] / len(keys):.0%}) "
            f"| {means[0]} | {means[1]} |"
        )
    return [*lines, ""]


def build_report(
    records: Sequence[dict[str, Any]],
    env: BenchEnv,
    size: Size,
    *,
    name: str,
    out: Path,
    extra: Sequence[str],
    quick: bool,
    baseline: tuple[str, Sequence[dict[str, Any]]] | None = None,
) -> list[str]:
    heatmap, drift = out / f"{name}.png", out / f"{name}-drift.png"
    if records:
        plot_heatmap(records, size, env, heatmap)
        plot_drift(records, env, size, drift)
    expected = len(MODES) * size.seeds * len(size.lrs) * len(size.gammas)
    lines = report_header(
        quick=quick,
        title=f"Robustness: {env.name}, {size.steps} env steps per run ({len(records)} of {expected} runs recorded)",
        notes=[
            f"Grid: initial lr {list(size.lrs)} x initial gamma {list(size.gammas)} x {size.seeds} seeds x "
            f"arms {list(MODES)}; other settings: rl-zoo3's tuned row (`{env.spec.relative_to(env.spec.parents[1])}`)",
            "Arms: fixed (no self-tuning); hd (lr only; gamma stays at its start); meta (lr, gamma, Huber delta, tau)",
            f"Extra overrides: {list(extra) or 'none'}",
        ],
    )
    lines += summary_lines(records, env)
    if baseline is not None:
        lines += comparison_lines(records, baseline[1], baseline[0])
    lines += grid_lines(records, size)
    lines += [f"![success heatmap]({heatmap.name})", "", *trust_region_lines(env, size, extra)]
    lines += drift_lines(records, env, size, extra)
    lines += [f"![lr and gamma drift]({drift.name})", "", "## Cost", ""]
    full = SIZES[(env.name, False)]
    full_steps = {mode: full.steps * full.seeds * len(full.lrs) * len(full.gammas) for mode in MODES}
    lines += cpu_estimate_lines(records, full_steps, by="mode")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, envs=CLASSIC_PAIR)
    parser.add_argument("--seeds", type=int, default=None, help="seeds per cell [full: 5 cartpole, 3 acrobot]")
    parser.add_argument("--steps", type=int, default=None, help="env steps per run [rl-zoo3's budget]")
    add_arms_arg(parser, MODES)
    parser.add_argument(
        "--baseline", default=None, metavar="TAG", help="compare with another variant's runs (its --tag; '' untagged)"
    )
    args = parser.parse_args()
    env = ENVS[args.env]
    size = SIZES[(env.name, args.quick)]
    size = Size(args.steps or size.steps, args.seeds or size.seeds, size.lrs, size.gammas)
    name = results_name("robustness", env=env.name, quick=args.quick, tag=args.tag)
    log = ResultLog(args.out / f"{name}.jsonl")
    arms = chosen_arms(parser, args.arms, MODES)
    tasks = make_tasks(env, size, args.overrides)
    if not args.report_only:
        annotate = lambda r: {**r, "success": env.success(r["final_mean"])}  # noqa: E731
        run_tasks([t for t in tasks if t.fields["mode"] in arms], log, workers=args.workers, annotate=annotate)
    keys = {task.key for task in tasks}
    records = [r for r in log.records() if r["key"] in keys]
    baseline = None
    if args.baseline is not None:
        baseline_name = results_name("robustness", env=env.name, quick=args.quick, tag=args.baseline)
        baseline = (baseline_name, ResultLog(args.out / f"{baseline_name}.jsonl").records())
    write_report(
        args.out / f"{name}.md",
        build_report(
            records, env, size, name=name, out=args.out, extra=args.overrides, quick=args.quick, baseline=baseline
        ),
    )


if __name__ == "__main__":
    main()
