"""One arm of an ablation log against one arm of another, paired by (scenario, seed) (issue 19).

``ablation.py`` pairs arms within one log (one engine, one tag). An ablation that needs another engine setting,
such as the default against v5's stronger prior (``--tag final6-v5prior --set self_tuning.hd_measure=interval``),
lives in a log of its own; this script lines the two up with ablation.py's own statistics (Wilcoxon on the final
return, McNemar on success) and prints one markdown table, per scenario and over all of them. It runs nothing::

    PYTHONPATH=. python benchmarks/pair_logs.py --env cartpole \\
        --arm final6:meta --ablation final6-v5prior:prior --scenarios lr-low,lr-high,gamma-low
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from _common import ENVS, RESULTS, ResultLog
from ablation import paired, verdict, wilson


def runs(results: Path, env: str, tag_arm: str, scenarios: list[str]) -> list[dict[str, Any]]:
    """The runs of ``tag:arm`` in the env's log for that tag, in ``scenarios``."""
    tag, _, arm = tag_arm.partition(":")
    path = results / f"ablation-{env}-{tag}.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no log {path}")
    return [r for r in ResultLog(path).records() if r["arm"] == arm and r["scenario"] in scenarios]


def table(arm: list[dict[str, Any]], ablation: list[dict[str, Any]], scenarios: list[str], env: str) -> list[str]:
    lines = [
        "| scenarios | pairs | successes (arm / ablation) | Wilson 95% (arm / ablation) | only arm / only ablation "
        "| median return diff | Wilcoxon p | McNemar p | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    groups = [(", ".join(scenarios), scenarios)] + ([(s, [s]) for s in scenarios] if len(scenarios) > 1 else [])
    for label, where in groups:
        result = paired(
            [r for r in arm if r["scenario"] in where], [r for r in ablation if r["scenario"] in where], ENVS[env]
        )
        if result is None:
            continue
        wins_a, wins_b = result.wins
        lines.append(
            f"| {label} | {result.n} | {wins_a} / {wins_b} | {wilson(wins_a, result.n)} / {wilson(wins_b, result.n)} | "
            f"{result.discordant[0]} / {result.discordant[1]} | {result.median_diff:+.1f} | "
            f"{result.wilcoxon_p:.3g} | {result.mcnemar_p:.3g} | {verdict(result)} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True, choices=sorted(ENVS))
    parser.add_argument("--arm", required=True, help="TAG:ARM, e.g. final6:meta")
    parser.add_argument("--ablation", required=True, help="TAG:ARM, e.g. final6-v5prior:prior")
    parser.add_argument("--scenarios", required=True, help="comma-separated, e.g. lr-low,lr-high,gamma-low")
    parser.add_argument("--results", type=Path, default=RESULTS, help="directory of the logs")
    args = parser.parse_args()
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    try:
        arm = runs(args.results, args.env, args.arm, scenarios)
        ablation = runs(args.results, args.env, args.ablation, scenarios)
    except FileNotFoundError as error:
        parser.error(str(error))
    print(f"{args.env}: {args.arm} against {args.ablation}, paired by (scenario, seed)\n")
    print("\n".join(table(arm, ablation, scenarios, args.env)))


if __name__ == "__main__":
    main()
