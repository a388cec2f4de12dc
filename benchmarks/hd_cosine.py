"""The signal behind the hd rule's set point: cos(g_t, u_{t-1}) at learning rates held fixed.

Plain hypergradient descent raises lr while successive update directions agree (cosine > 0) and lowers it
while they disagree. At the loss's noise floor successive stochastic steps are always anti-correlated, so
plain hd (set point 0) shrinks lr at every lr: the short-horizon bias. This script measures the mean cosine
over training for a range of fixed learning rates, on rl-zoo3's CartPole settings, to show where a set point
c* puts the rule's equilibrium (``self_tuning.hd_target_cos``, default -0.05).

Each run uses the hd rule with a vanishing step (``hd_lr`` 1e-12, every step, no step-size guard), so lr stays
at its start while the rule's own ``hd/cosine`` record is read every 1000 env steps. One run per lr, side by
side in one invocation. Usage (from the repo root)::

    PYTHONPATH=. python benchmarks/hd_cosine.py --workers 2            # 6 runs x 30k steps
    PYTHONPATH=. python benchmarks/hd_cosine.py --quick --workers 2    # 6 runs x 5k steps
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from _common import (
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

LRS = (1e-5, 1e-4, 1e-3, 2.3e-3, 1e-2, 1e-1)
WINDOW = 5000  # env steps per reported window


def measure(config: TrainConfig) -> dict[str, Any]:
    """One run with lr held at its start; the mean cosine per window of WINDOW env steps."""
    from dqnmap_auto.trainer import train

    collector = RecordCollector()
    result = train(config, [collector])
    windows: dict[int, list[float]] = {}
    for step, cosine in zip(*collector.series("hd/cosine"), strict=True):
        windows.setdefault((int(step) - 1) // WINDOW, []).append(cosine)
    means = {str(k * WINDOW): statistics.fmean(v) for k, v in sorted(windows.items())}
    return {
        "windows": means,
        "summary": "mean cosine per window " + " ".join(f"{v:+.3f}" for v in means.values()),
        "final_mean": result.final_eval.mean,
        "lr_final": result.hyperparams["lr"],
        "env_steps": result.steps,
    }


def make_tasks(steps: int, extra: list[str]) -> list[Task]:
    tasks = []
    for lr in LRS:
        overrides = [
            f"agent.lr={lr}",
            "self_tuning.enabled=true",
            "self_tuning.mode=hd",
            "self_tuning.params=[lr]",
            "self_tuning.hd_lr=1e-12",
            "self_tuning.hd_interval=1",
            "self_tuning.hd_max_step_ratio=null",
            "training.log_every=1000",
            *extra,
        ]
        config = bench_config(ENVS["cartpole"], steps=steps, seed=0, overrides=overrides)
        key = f"lr={lr:g}|steps={steps}"
        tasks.append(Task(key, {"lr": lr, "steps": steps}, measure, config, label=key))
    return tasks


def report(records: list[dict[str, Any]], steps: int, quick: bool) -> list[str]:
    lines = report_header(
        "hd signal: mean cos(g_t, u_{t-1}) at fixed learning rates, CartPole (rl-zoo3 settings)",
        quick=quick,
        notes=[f"{steps} env steps per run, seed 0, lr held fixed; windows of {WINDOW} env steps"],
    )
    starts = sorted({int(k) for r in records for k in r["windows"]})
    lines += [
        "| lr | " + " | ".join(f"{s // 1000}k-{(s + WINDOW) // 1000}k" for s in starts) + " | final eval |",
        "|---" * (len(starts) + 2) + "|",
    ]
    for r in sorted(records, key=lambda r: r["lr"]):
        cells = [f"{r['windows'][str(s)]:+.3f}" if str(s) in r["windows"] else "" for s in starts]
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
    add_common_args(parser, envs=("cartpole",))
    args = parser.parse_args()
    steps = 5000 if args.quick else 30_000
    name = results_name("hd-cosine", env="cartpole", quick=args.quick, tag=args.tag)
    log = ResultLog(args.out / f"{name}.jsonl")
    tasks = make_tasks(steps, args.overrides)
    if not args.report_only:
        run_tasks(tasks, log, workers=args.workers)
    keys = {task.key for task in tasks}
    write_report(args.out / f"{name}.md", report([r for r in log.records() if r["key"] in keys], steps, args.quick))


if __name__ == "__main__":
    main()
