"""What do the hypergradients add beyond the priors around them? Paired ablations on four envs (issue 19).

Self-tuning has two parts: hypergradient steps (the hd rule's cosine step on lr, the meta-gradient's Adam step
on Huber delta, and on gamma up to v6) and priors around them (the pull of lr towards ``self_tuning.reference``, the hd
rule's step-size guard, the bounds). Every run here trains this project's DQN on the env's rl-zoo3 row
(``studies/<env>.yaml``; a spec's ``self_tuning`` section, if any, is dropped: every arm runs the config's
defaults) from one *scenario* (start) with one *arm*:

    scenarios   zoo         rl-zoo3's row
                ref         lr, gamma and Huber delta at the self-tuner's reference values
                lr-low      lr 1e-5                      (the robustness starts: the rest of the row as rl-zoo3's)
                lr-high     lr 1e-1
                gamma-low   gamma 0.9
                wrong-low   reference lr 30x below rl-zoo3's, and the run starts there
                wrong-high  reference lr 30x above rl-zoo3's (at most the lr bound 0.1), and the run starts there
                wrong-gamma reference gamma 0.9 (the outer loss's anchor), the run at rl-zoo3's row: does the
                            lookahead move gamma where the env needs it, or where its reference is?
    arms        fixed       self-tuning off: the start is held
                meta        the shipped default (meta mode: lr by the hd rule, delta by the held lookahead; v7 leaves
                            gamma as configured, v6 tuned it too: ``--set self_tuning.params=[lr,gamma,huber_delta]``)
                prior       meta with every hypergradient step zeroed (hd_lr 0, meta_lr 0): pull, guard, bounds
                hd          hd mode (lr only)
                hd-prior    hd mode with its step zeroed

``fixed`` at ``zoo`` is the issue's fixed-zoo, ``fixed`` at ``ref`` its fixed-ref. Every arm stops once a
periodic evaluation (10 episodes, every tenth of the budget) reaches the env's success line, and the final
evaluation (20 fixed-seed episodes) then scores that policy; success: the final evaluation reaches the line.
Seeds 0-99 are for development, 100-109 for the final table (``--seeds 100-109``).

The report gives per cell the success rate with a Wilson 95% interval, the IQM of the final return with a
bootstrap 95% interval (Agarwal et al. 2021), the median env steps to success; and paired tests (same seed,
same start): meta against prior, hd against hd-prior, and, from a wrong reference, meta against the wrong
value held fixed, with the share of the gap to fixed-zoo it recovers. Primary test: Wilcoxon signed-rank on
the final return; McNemar's exact test on success beside it.

Resumable (one JSONL line per run; ``--report-only``). Usage (from the repo root)::

    PYTHONPATH=. python benchmarks/ablation.py --env cartpole --seeds 0-9 --workers 2
    PYTHONPATH=. python benchmarks/ablation.py --env acrobot --seeds 100-109 --workers 2 --tag final
    PYTHONPATH=. python benchmarks/ablation.py --env cartpole --quick --workers 2            # smoke test
    PYTHONPATH=. python benchmarks/ablation.py --env mountaincar --seeds 0-4 --cells lr-low:meta,lr-low:prior
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    ENVS,
    BenchEnv,
    ResultLog,
    Task,
    add_common_args,
    cpu_estimate_lines,
    fmt_value,
    pyplot,
    report_header,
    results_name,
    run_tasks,
    train_dqnmap,
    write_report,
)
from scipy.stats import binomtest, bootstrap, trim_mean, wilcoxon

from dqnmap_auto.config import (
    REFERENCE_VALUES,
    TrainConfig,
    apply_overrides,
    read_yaml_mapping,
    split_study_keys,
    validate_train_config,
)

#: How far a wrong reference lr sits from rl-zoo3's (below and above).
WRONG_FACTOR = 30.0
LR_HIGH_BOUND = 0.1  # the default upper lr bound: a wrong-high reference is capped there
#: The wrong reference gamma: the gamma-low start, now as the meta-gradient's outer-loss anchor.
WRONG_GAMMA = 0.9


def _scenario(config: TrainConfig, name: str) -> list[str]:
    """Overrides that put a run at scenario ``name`` (``config``: the env's rl-zoo3 row)."""
    zoo_lr = config.agent.lr
    if name == "zoo":
        return []
    if name == "ref":
        return [f"agent.{key}={value}" for key, value in REFERENCE_VALUES.items()]
    if name == "lr-low":
        return ["agent.lr=1e-5"]
    if name == "lr-high":
        return ["agent.lr=0.1"]
    if name == "gamma-low":
        return ["agent.gamma=0.9"]
    if name in ("wrong-low", "wrong-high"):
        lr = zoo_lr / WRONG_FACTOR if name == "wrong-low" else min(zoo_lr * WRONG_FACTOR, LR_HIGH_BOUND)
        return [f"agent.lr={lr:.4g}", f"self_tuning.reference.lr={lr:.4g}"]
    if name == "wrong-gamma":
        return [f"self_tuning.reference.gamma={WRONG_GAMMA}"]
    raise ValueError(f"unknown scenario {name!r}")


SCENARIOS = ("zoo", "ref", "lr-low", "lr-high", "gamma-low", "wrong-low", "wrong-high", "wrong-gamma")
ROBUSTNESS = ("lr-low", "lr-high", "gamma-low")  # the start grid of the robustness goal
WRONG = ("wrong-low", "wrong-high")
ARMS: dict[str, tuple[str, ...]] = {
    "fixed": ("self_tuning.enabled=false",),
    "meta": ("self_tuning.enabled=true", "self_tuning.mode=meta"),
    "prior": ("self_tuning.enabled=true", "self_tuning.mode=meta", "self_tuning.hd_lr=0", "self_tuning.meta_lr=0"),
    "hd": ("self_tuning.enabled=true", "self_tuning.mode=hd", "self_tuning.params=[lr]"),
    "hd-prior": ("self_tuning.enabled=true", "self_tuning.mode=hd", "self_tuning.params=[lr]", "self_tuning.hd_lr=0"),
}
#: The cells run by default: fixed-zoo, fixed-ref; the default and its prior (and hd) from every robustness
#: start; from each wrong reference the default, its prior and the wrong value held fixed.
DEFAULT_CELLS: tuple[tuple[str, str], ...] = (
    ("zoo", "fixed"),
    ("ref", "fixed"),
    *((s, a) for s in ROBUSTNESS for a in ("meta", "prior", "hd")),
    *((s, a) for s in WRONG for a in ("meta", "prior", "fixed")),
)
#: Pairs of arms compared seed by seed in the report: (arm, its ablation, where).
PAIRS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("meta", "prior", ROBUSTNESS),
    ("hd", "hd-prior", ROBUSTNESS),
    ("meta", "prior", WRONG),
    ("meta", "fixed", WRONG),
    ("meta", "fixed", ("wrong-gamma",)),  # fixed there: rl-zoo3's row held (the reference acts on nothing)
)
QUICK_STEPS = {"cartpole": 6_000, "acrobot": 4_000, "mountaincar": 4_000, "lunarlander": 4_000}


def parse_seeds(text: str) -> list[int]:
    """``0-9``, ``100-109`` or ``1,4,7`` (ranges inclusive)."""
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        seeds += list(range(int(low), int(high) + 1)) if high else [int(low)]
    return seeds


def parse_cells(text: str) -> list[tuple[str, str]]:
    """``scenario:arm,...``; ``default`` for DEFAULT_CELLS."""
    if text == "default":
        return list(DEFAULT_CELLS)
    cells = []
    for part in text.split(","):
        scenario, _, arm = part.strip().partition(":")
        if scenario not in SCENARIOS or arm not in ARMS:
            raise ValueError(f"--cells: {part!r} is not scenario:arm with scenario in {SCENARIOS}, arm in {list(ARMS)}")
        cells.append((scenario, arm))
    return cells


def zoo_row(env: BenchEnv) -> dict[str, Any]:
    """The env spec's train config without its ``self_tuning`` section: every arm runs the config's defaults."""
    train, _ = split_study_keys(read_yaml_mapping(env.spec))
    train.pop("self_tuning", None)
    return train


def run_config(env: BenchEnv, *, scenario: str, arm: str, seed: int, steps: int, extra: Sequence[str]) -> TrainConfig:
    row = zoo_row(env)
    protocol = [
        f"training.total_steps={steps}",
        f"training.seed={seed}",
        f"training.eval_every={max(steps // 10, 1)}",
        "training.eval_episodes=10",
        "training.final_eval_episodes=20",
        f"training.stop_at_return={env.threshold}",
    ]
    zoo = validate_train_config(apply_overrides(row, protocol))
    # --set (an engine variant) first: the scenario and the arm (the prior's zeroed steps) must win over it
    overrides = [*protocol, *extra, *_scenario(zoo, scenario), *ARMS[arm]]
    return validate_train_config(apply_overrides(row, overrides))


def make_tasks(
    env: BenchEnv, *, cells: Sequence[tuple[str, str]], seeds: Sequence[int], steps: int, extra: Sequence[str]
) -> list[Task]:
    """Seed-major, then the cells side by side: a partial run compares the cells on the same seeds."""
    tasks = []
    for seed in seeds:
        for scenario, arm in cells:
            config = run_config(env, scenario=scenario, arm=arm, seed=seed, steps=steps, extra=extra)
            key = f"{scenario}|{arm}|seed={seed}|steps={steps}"
            fields = {"env": env.name, "scenario": scenario, "arm": arm, "seed": seed, "steps": steps}
            tasks.append(Task(key, fields, train_dqnmap, config, label=key))
    return tasks


# -- statistics ------------------------------------------------------------------------------------------------
def wilson(successes: int, n: int) -> str:
    ci = binomtest(successes, n).proportion_ci(method="wilson")
    return f"{ci.low:.0%}..{ci.high:.0%}"


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean of the middle 50% (rliable's headline statistic)."""
    return float(trim_mean(values, 0.25))


def iqm_interval(values: Sequence[float]) -> str:
    """IQM with a 95% percentile-bootstrap interval over runs ('-' with fewer than 3 runs)."""
    if len(values) < 3 or len(set(values)) == 1:
        return fmt_value(iqm(values), 4) if values else "-"
    result = bootstrap((np.asarray(values),), iqm, n_resamples=2000, method="percentile", rng=np.random.default_rng(0))
    low, high = result.confidence_interval
    return f"{iqm(values):.4g} [{low:.4g}, {high:.4g}]"


def final_return(run: dict[str, Any], env: BenchEnv) -> float:
    """The final evaluation; a diverged run scores the env's worst return (it has no policy worth scoring)."""
    return run["final_mean"] if run["final_mean"] is not None else env.worst


def steps_to_success(run: dict[str, Any]) -> float:
    """Env steps until the run first reached the line (its stop); inf when it never did."""
    if not run.get("success"):
        return math.inf
    return float(run["solved_at"] if run.get("solved_at") is not None else run["env_steps"])


@dataclass(frozen=True)
class Paired:
    n: int
    wins: tuple[int, int]  # successes of (arm, ablation)
    discordant: tuple[int, int]  # (arm only, ablation only)
    mcnemar_p: float
    wilcoxon_p: float
    median_diff: float  # median of (arm - ablation) final returns


def paired(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]], env: BenchEnv) -> Paired | None:
    """``a`` against ``b`` on the (scenario, seed) pairs both recorded."""
    by_b = {(r["scenario"], r["seed"]): r for r in b}
    pairs = [(r, by_b[(r["scenario"], r["seed"])]) for r in a if (r["scenario"], r["seed"]) in by_b]
    if not pairs:
        return None
    only_a = sum(1 for x, y in pairs if x["success"] and not y["success"])
    only_b = sum(1 for x, y in pairs if y["success"] and not x["success"])
    mcnemar = binomtest(only_a, only_a + only_b).pvalue if only_a + only_b else 1.0
    diffs = [final_return(x, env) - final_return(y, env) for x, y in pairs]
    nonzero = [d for d in diffs if d != 0]
    wilcoxon_p = float(wilcoxon(nonzero).pvalue) if len(nonzero) >= 2 else 1.0
    wins = (sum(x["success"] for x, _ in pairs), sum(y["success"] for _, y in pairs))
    return Paired(len(pairs), wins, (only_a, only_b), float(mcnemar), wilcoxon_p, statistics.median(diffs))


def verdict(result: Paired) -> str:
    """Which side the primary test (Wilcoxon on the final return) favours at p < 0.05, else 'not significant'."""
    if result.wilcoxon_p >= 0.05:
        return "not significant"
    return "arm better" if result.median_diff > 0 else "ablation better"


# -- report ----------------------------------------------------------------------------------------------------
def _runs(records: Sequence[dict[str, Any]], scenario: str | Sequence[str], arm: str) -> list[dict[str, Any]]:
    scenarios = (scenario,) if isinstance(scenario, str) else tuple(scenario)
    return [r for r in records if r["scenario"] in scenarios and r["arm"] == arm]


def _median_steps(runs: Sequence[dict[str, Any]]) -> str:
    value = statistics.median(steps_to_success(r) for r in runs)
    return "never" if math.isinf(value) else f"{value / 1000:.0f}k"


def cell_lines(records: Sequence[dict[str, Any]], env: BenchEnv, cells: Sequence[tuple[str, str]]) -> list[str]:
    lines = [
        "## Per cell",
        "",
        f"Success: final evaluation (20 episodes) >= {env.threshold:g}. IQM of the final return with a 95% "
        "bootstrap interval over runs. Steps to success: median over runs, a run that never reached the line "
        "counting as never. Final lr / gamma: median over runs.",
        "",
        "| scenario | arm | runs | successes | 95% interval | IQM final return | steps to success "
        "| final lr | final gamma | diverged |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario, arm in cells:
        runs = _runs(records, scenario, arm)
        if not runs:
            continue
        wins = sum(r["success"] for r in runs)
        finals = [final_return(r, env) for r in runs]
        lines.append(
            f"| {scenario} | {arm} | {len(runs)} | {wins}/{len(runs)} | {wilson(wins, len(runs))} | "
            f"{iqm_interval(finals)} | {_median_steps(runs)} | "
            f"{fmt_value(statistics.median(r['hp_final']['lr'] for r in runs))} | "
            f"{fmt_value(statistics.median(r['hp_final']['gamma'] for r in runs), 4)} | "
            f"{sum(1 for r in runs if r['diverged'])} |"
        )
    return [*lines, ""]


def paired_lines(records: Sequence[dict[str, Any]], env: BenchEnv) -> list[str]:
    lines = [
        "## Paired comparisons (same seed, same start)",
        "",
        "Primary: Wilcoxon signed-rank test on the final return (two-sided); beside it McNemar's exact test on "
        "success (two-sided, on the discordant pairs). 'not significant' when p >= 0.05.",
        "",
        "| arm vs ablation | scenarios | pairs | successes (arm / ablation) | only arm / only ablation "
        "| median return diff | Wilcoxon p | McNemar p | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, ablation, where in PAIRS:
        groups = [(", ".join(where), where)] + ([(s, (s,)) for s in where] if len(where) > 1 else [])
        for label, scenarios in groups:
            result = paired(_runs(records, scenarios, arm), _runs(records, scenarios, ablation), env)
            if result is None:
                continue
            lines.append(
                f"| {arm} vs {ablation} | {label} | {result.n} | {result.wins[0]} / {result.wins[1]} | "
                f"{result.discordant[0]} / {result.discordant[1]} | {result.median_diff:+.4g} | "
                f"{result.wilcoxon_p:.3g} | {result.mcnemar_p:.3g} | {verdict(result)} |"
            )
    return [*lines, ""]


def gap_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """From a wrong reference: the share of the success gap between the wrong value held fixed and fixed-zoo
    that the full rule recovers (1: as good as rl-zoo3's row; 0: no better than holding the wrong value)."""
    zoo = _runs(records, "zoo", "fixed")
    if not zoo:
        return []
    zoo_rate = statistics.fmean(r["success"] for r in zoo)
    lines = [
        "## Wrong reference: share of the gap recovered",
        "",
        f"fixed-zoo succeeds in {sum(r['success'] for r in zoo)}/{len(zoo)}. Gap recovered = (rate of the arm - "
        "rate of the wrong value held fixed) / (rate of fixed-zoo - rate of the wrong value held fixed).",
        "",
        "| scenario | wrong value held fixed | prior | meta | gap recovered by prior | gap recovered by meta |",
        "|---|---|---|---|---|---|",
    ]
    for scenario in WRONG:
        rates = {}
        cells = {}
        for arm in ("fixed", "prior", "meta"):
            runs = _runs(records, scenario, arm)
            if runs:
                rates[arm] = statistics.fmean(r["success"] for r in runs)
                cells[arm] = f"{sum(r['success'] for r in runs)}/{len(runs)}"
        if "fixed" not in rates:
            continue
        gap = zoo_rate - rates["fixed"]
        recovered = {
            arm: "-" if arm not in rates else "no gap" if gap <= 0 else f"{(rates[arm] - rates['fixed']) / gap:.0%}"
            for arm in ("prior", "meta")
        }
        lines.append(
            f"| {scenario} | {cells['fixed']} | {cells.get('prior', '-')} | {cells.get('meta', '-')} | "
            f"{recovered['prior']} | {recovered['meta']} |"
        )
    return [*lines, ""]


def robustness_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "## Robustness over the start grid (" + ", ".join(ROBUSTNESS) + ")",
        "",
        "| arm | runs | successes | 95% interval |",
        "|---|---|---|---|",
    ]
    for arm in ARMS:
        runs = _runs(records, ROBUSTNESS, arm)
        if runs:
            wins = sum(r["success"] for r in runs)
            lines.append(f"| {arm} | {len(runs)} | {wins} ({wins / len(runs):.0%}) | {wilson(wins, len(runs))} |")
    return [*lines, ""]


def plot(records: Sequence[dict[str, Any]], env: BenchEnv, cells: Sequence[tuple[str, str]], path: Path) -> None:
    """Final return per run, one column per cell; the dashed line is the success line."""
    plt = pyplot()
    shown = [cell for cell in cells if _runs(records, *cell)]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(shown) + 2), 4))
    for index, (scenario, arm) in enumerate(shown):
        finals = [final_return(r, env) for r in _runs(records, scenario, arm)]
        xs = [index + 0.3 * (k / max(len(finals) - 1, 1) - 0.5) for k in range(len(finals))]
        ax.scatter(xs, finals, s=12, alpha=0.8)
    ax.axhline(env.threshold, color="gray", ls="--", lw=0.8)
    ax.set_xticks(range(len(shown)), [f"{s}\n{a}" for s, a in shown], fontsize=7, rotation=90)
    ax.set(ylabel="final return (20 episodes)", title=f"{env.name}: final return per run and cell")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def build_report(
    records: Sequence[dict[str, Any]],
    env: BenchEnv,
    *,
    cells: Sequence[tuple[str, str]],
    seeds: Sequence[int],
    steps: int,
    name: str,
    out: Path,
    quick: bool,
    extra: Sequence[str],
) -> list[str]:
    figure = out / f"{name}.png"
    if records:
        plot(records, env, cells, figure)
    kind = "test seeds" if min(seeds) >= 100 else "development seeds"
    lines = report_header(
        quick=quick,
        title=f"Ablation: {env.name}, {steps} env steps per run ({len(records)} of {len(seeds) * len(cells)} runs)",
        notes=[
            f"Seeds {seeds[0]}-{seeds[-1]} ({kind}); every arm stops at {env.threshold:g} (stop when solved)",
            f"Settings: rl-zoo3's row (`studies/{env.spec.name}`) without its self_tuning section; "
            f"extra overrides: {list(extra) or 'none'}",
        ],
    )
    lines += cell_lines(records, env, cells) + robustness_lines(records) + paired_lines(records, env)
    lines += [*gap_lines(records), f"![final returns]({figure.name})", "", "## Cost", ""]
    arms = sorted({r["arm"] for r in records})
    lines += cpu_estimate_lines(records, {arm: steps * len(seeds) for arm in arms}, by="arm")
    return lines


def summary_lines(by_env: dict[str, Sequence[dict[str, Any]]], seeds: Sequence[int]) -> list[str]:
    """One row per env: the shipped default against its prior and the fixed arms (the README's table)."""
    lines = [
        "| env | default (meta), start grid | prior, start grid | default vs prior (Wilcoxon p) "
        "| wrong-low: fixed / default (gap recovered) | wrong-high: fixed / default (gap recovered) "
        "| fixed-zoo | fixed-ref |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for env_name, records in by_env.items():
        env = ENVS[env_name]

        def rate(scenario: str | Sequence[str], arm: str, records: Sequence[dict[str, Any]] = records) -> str:
            runs = _runs(records, scenario, arm)
            if not runs:
                return "-"
            wins = sum(r["success"] for r in runs)
            return f"{wins}/{len(runs)} ({wilson(wins, len(runs))})"

        comparison = paired(_runs(records, ROBUSTNESS, "meta"), _runs(records, ROBUSTNESS, "prior"), env)
        versus = "-" if comparison is None else f"{comparison.wilcoxon_p:.2g} ({verdict(comparison)})"
        zoo = _runs(records, "zoo", "fixed")
        wrong = []
        for scenario in WRONG:
            fixed, meta = _runs(records, scenario, "fixed"), _runs(records, scenario, "meta")
            if not (fixed and meta and zoo):
                wrong.append("-")
                continue
            rates = [statistics.fmean(r["success"] for r in runs) for runs in (zoo, fixed, meta)]
            gap = rates[0] - rates[1]
            share = "no gap" if gap <= 0 else f"{(rates[2] - rates[1]) / gap:.0%}"
            wrong.append(
                f"{sum(r['success'] for r in fixed)} / {sum(r['success'] for r in meta)} of {len(meta)} ({share})"
            )
        lines.append(
            f"| {env_name} | {rate(ROBUSTNESS, 'meta')} | {rate(ROBUSTNESS, 'prior')} | {versus} | {wrong[0]} | "
            f"{wrong[1]} | {rate('zoo', 'fixed')} | {rate('ref', 'fixed')} |"
        )
    kind = "test seeds" if min(seeds) >= 100 else "development seeds"
    return [*lines, "", f"Seeds {seeds[0]}-{seeds[-1]} ({kind}); success with 95% Wilson intervals.", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--envs", default=None, help="comma-separated envs, run one after another (for --env)")
    parser.add_argument("--seeds", default="0-9", help="seeds, e.g. 0-9 (development) or 100-109 (test)")
    parser.add_argument("--steps", type=int, default=None, help="env steps per run [rl-zoo3's budget]")
    parser.add_argument("--cells", default="default", help="scenario:arm,... or 'default'")
    args = parser.parse_args()
    try:
        cells = parse_cells(args.cells)
        seeds = parse_seeds(args.seeds)
    except ValueError as error:
        parser.error(str(error))
    env_names = [name.strip() for name in (args.envs or args.env).split(",")]
    unknown = sorted(set(env_names) - set(ENVS))
    if unknown:
        parser.error(f"--envs: unknown env(s) {unknown}; choose from {list(ENVS)}")
    by_env = {name: run_env(ENVS[name], args, cells=cells, seeds=seeds) for name in env_names}
    if len(by_env) > 1:
        name = results_name("ablation-summary", quick=args.quick, tag=args.tag)
        title = "Ablation summary: the shipped default against its prior and fixed values"
        lines = report_header(title, quick=args.quick, notes=[f"Envs: {', '.join(by_env)}"])
        write_report(args.out / f"{name}.md", [*lines, *summary_lines(by_env, seeds)])


def run_env(
    env: BenchEnv, args: argparse.Namespace, *, cells: Sequence[tuple[str, str]], seeds: Sequence[int]
) -> list[dict[str, Any]]:
    """Run (unless --report-only) and report one env's cells; returns its records."""
    steps = args.steps or (QUICK_STEPS[env.name] if args.quick else env.steps)
    name = results_name("ablation", env=env.name, quick=args.quick, tag=args.tag)
    log = ResultLog(args.out / f"{name}.jsonl")
    tasks = make_tasks(env, cells=cells, seeds=seeds, steps=steps, extra=args.overrides)
    if not args.report_only:
        annotate: Callable[[dict[str, Any]], dict[str, Any]] = lambda r: {  # noqa: E731
            **r,
            "success": env.success(r["final_mean"]),
        }
        run_tasks(tasks, log, workers=args.workers, annotate=annotate)
    keys = {task.key for task in tasks}
    records = [r for r in log.records() if r["key"] in keys]
    report = build_report(
        records,
        env,
        cells=cells,
        seeds=seeds,
        steps=steps,
        name=name,
        out=args.out,
        quick=args.quick,
        extra=args.overrides,
    )
    write_report(args.out / f"{name}.md", report)
    return records


if __name__ == "__main__":
    main()
