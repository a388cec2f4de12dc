"""The signal behind the hd rule's set point: cos(g_t, u_{t-1}) at learning rates held fixed.

Plain hypergradient descent raises lr while successive update directions agree (cosine > 0) and lowers it
while they disagree. At the loss's noise floor successive stochastic steps are always anti-correlated, so
plain hd (set point 0) shrinks lr at every lr: the short-horizon bias. This script measures the mean cosine
over training for a range of fixed learning rates, on rl-zoo3's CartPole or Acrobot settings, to show where a
set point c* puts the rule's equilibrium (``self_tuning.hd_target_cos``, default -0.05), and how noisy the
signal is: the spread of its 100-env-step means within each window, which a rule must tell a bias from.

Each run uses the hd rule with a vanishing step (``hd_lr`` 1e-12, every step, no step-size guard), so lr stays
at its start while the rule's own ``hd/cosine`` record is read every 100 env steps. One run per lr, side by
side in one invocation. Usage (from the repo root)::

    PYTHONPATH=. python benchmarks/hd_cosine.py --workers 2                  # 6 runs x 30k steps
    PYTHONPATH=. python benchmarks/hd_cosine.py --env acrobot --workers 2    # 6 runs x 60k steps
    PYTHONPATH=. python benchmarks/hd_cosine.py --quick --workers 2          # 6 runs x 5k steps
"""

from __future__ import annotations

import argparse
import statistics
from functools import partial
from typing import Any

from _common import (
    CLASSIC_PAIR,
    ENVS,
    ResultLog,
    Task,
    add_common_args,
    bench_config,
    report_header,
    results_name,
    run_tasks,
    write_report,
)

from dqnmap_auto.callbacks import RecordCollector
from dqnmap_auto.config import TrainConfig

# Learning rates per env, each including rl-zoo3's own (2.3e-3 CartPole, 6.3e-4 Acrobot); full-size steps.
LRS = {"cartpole": (1e-5, 1e-4, 1e-3, 2.3e-3, 1e-2, 1e-1), "acrobot": (1e-5, 1e-4, 6.3e-4, 3e-3, 1e-2, 1e-1)}
STEPS = {"cartpole": 30_000, "acrobot": 60_000}
WINDOWS = 6  # reported windows per run
RECORD_EVERY = 100  # env steps per hd/cosine record


def measure(config: TrainConfig, window: int) -> dict[str, Any]:
    """One run with lr held at its start; per window of ``window`` env steps, the mean cosine and the standard
    deviation of its RECORD_EVERY-step means (the noise a rule reading that many steps sees)."""
    from dqnmap_auto.trainer import train

    collector = RecordCollector()
    result = train(config, [collector])
    windows: dict[int, list[float]] = {}
    for step, cosine in zip(*collector.series("hd/cosine"), strict=True):
        windows.setdefault((int(step) - 1) // window, []).append(cosine)
    means = {str(k * window): statistics.fmean(v) for k, v in sorted(windows.items())}
    sds = {str(k * window): statistics.stdev(v) for k, v in sorted(windows.items()) if len(v) > 1}
    return {
        "windows": means,
        "sds": sds,
        "summary": "mean cosine per window " + " ".join(f"{v:+.3f}" for v in means.values()),
        "final_mean": result.final_eval.mean,
        "lr_final": result.hyperparams["lr"],
        "env_steps": result.steps,
    }


def make_tasks(env: str, steps: int, extra: list[str]) -> list[Task]:
    tasks = []
    for lr in LRS[env]:
        overrides = [
            f"agent.lr={lr}",
            "self_tuning.enabled=true",
            "self_tuning.mode=hd",
            "self_tuning.params=[lr]",
            "self_tuning.hd_lr=1e-12",
            "self_tuning.hd_interval=1",
            "self_tuning.hd_max_step_ratio=null",
            f"training.log_every={RECORD_EVERY}",
            *extra,
        ]
        config = bench_config(ENVS[env], steps=steps, seed=0, overrides=overrides)
        key = f"lr={lr:g}|steps={steps}"
        window = steps // WINDOWS
        tasks.append(Task(key, {"lr": lr, "steps": steps}, partial(measure, window=window), config, label=key))
    return tasks


def _cell(record: dict[str, Any], start: int) -> str:
    """'mean (sd)' of one window; runs recorded before the sd was kept show the mean only."""
    mean = record["windows"].get(str(start))
    if mean is None:
        return ""
    sd = record.get("sds", {}).get(str(start))
    return f"{mean:+.3f}" + (f" ({sd:.3f})" if sd is not None else "")


def report(records: list[dict[str, Any]], env: str, steps: int, quick: bool) -> list[str]:
    window = steps // WINDOWS
    lines = report_header(
        f"hd signal: mean cos(g_t, u_{{t-1}}) at fixed learning rates, {env} (rl-zoo3 settings)",
        quick=quick,
        notes=[
            f"{steps} env steps per run, seed 0, lr held fixed; windows of {window} env steps",
            f"a cell: the window's mean cosine (in brackets, when recorded: the standard deviation of its "
            f"{RECORD_EVERY}-env-step means)",
        ],
    )
    starts = sorted({int(k) for r in records for k in r["windows"]})
    lines += [
        "| lr | " + " | ".join(f"{s // 1000}k-{(s + window) // 1000}k" for s in starts) + " | final eval |",
        "|---" * (len(starts) + 2) + "|",
    ]
    for r in sorted(records, key=lambda r: r["lr"]):
        cells = [_cell(r, s) for s in starts]
        lines.append(f"| {r['lr']:g} | " + " | ".join(cells) + f" | {r['final_mean']:.1f} |")
    lines += [
        "",
        "Plain hd (set point 0) lowers lr wherever the cosine is below 0, i.e. at almost every lr once training "
        "is under way; the set point c* = -0.05 moves the equilibrium to where successive steps are mildly "
        "anti-correlated.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, envs=CLASSIC_PAIR)
    args = parser.parse_args()
    steps = 5000 if args.quick else STEPS[args.env]
    name = results_name("hd-cosine", env=args.env, quick=args.quick, tag=args.tag)
    log = ResultLog(args.out / f"{name}.jsonl")
    tasks = make_tasks(args.env, steps, args.overrides)
    if not args.report_only:
        run_tasks(tasks, log, workers=args.workers)
    keys = {task.key for task in tasks}
    records = [r for r in log.records() if r["key"] in keys]
    write_report(args.out / f"{name}.md", report(records, args.env, steps, args.quick))


if __name__ == "__main__":
    main()
