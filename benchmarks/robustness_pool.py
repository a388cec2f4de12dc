"""Pool robustness runs of several engine variants: is a run's outcome set by its start, or by chance?

Issue 6 asks, when a goal misses, *why*. With 50 runs per variant the 95% interval of a success rate is
about +-12 points, so one variant against another says little. This script reads the recorded runs of one
arm under several variants (``results/robustness-<env>-<tag>.jsonl``, as written by ``robustness.py
--tag``) and asks three questions that the pooled runs can answer:

1. The rate per variant and pooled, with Wilson 95% intervals.
2. Does the start cell (initial lr x gamma) predict success? Chi-square test of homogeneity over the cells,
   all variants pooled. A self-tuner that recovers from every start makes this p-value large.
3. Does the same (cell, seed) fail under every variant? Same seed means same network init and the same
   env seeds, so if failures were "hard seeds", two variants would agree more often than two independent
   coin flips with their rates. The table shows agreement against that independence expectation.

Nothing is run: it reads the JSONL logs. Usage (from the repo root)::

    PYTHONPATH=. python benchmarks/robustness_pool.py --env cartpole --arm meta --tags stop,pull,pull3,ref23,lrgamma
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import ENVS, RESULTS, ResultLog, report_header, results_name, write_report
from scipy.stats import chi2_contingency


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval: honest at rates near 0 or 1 and small n, unlike the normal interval."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def load(env: str, tag: str, arm: str, out: Path) -> dict[str, bool]:
    """{run key: success} of one arm under one variant."""
    path = out / f"{results_name('robustness', env=env, quick=False, tag=tag)}.jsonl"
    if not path.exists():
        raise SystemExit(f"error: no runs recorded for --tags {tag}: {path} does not exist")
    return {r["key"]: bool(r["success"]) for r in ResultLog(path).records() if r["mode"] == arm}


def cell_of(key: str) -> str:
    """``meta|lr=0.001|gamma=0.9|seed=3|steps=50000`` -> ``lr=0.001, gamma=0.9``."""
    parts = key.split("|")
    return f"{parts[1]}, {parts[2]}"


def rate_rows(runs: dict[str, dict[str, bool]]) -> list[str]:
    lines = ["| variant (tag) | runs | successes | rate | 95% interval |", "|---|---|---|---|---|"]
    pooled = [0, 0]
    for tag, outcomes in runs.items():
        k, n = sum(outcomes.values()), len(outcomes)
        pooled[0] += k
        pooled[1] += n
        low, high = wilson(k, n)
        lines.append(f"| {tag} | {n} | {k} | {k / max(n, 1):.0%} | {low:.0%}..{high:.0%} |")
    (k, n), (low, high) = pooled, wilson(*pooled)
    lines.append(f"| **pooled** | {n} | {k} | {k / max(n, 1):.0%} | {low:.0%}..{high:.0%} |")
    return lines


def cell_rows(runs: dict[str, dict[str, bool]]) -> tuple[list[str], float]:
    """Pooled success per start cell and the chi-square p-value of 'every cell has the same rate'."""
    counts: dict[str, list[int]] = {}
    for outcomes in runs.values():
        for key, success in outcomes.items():
            pair = counts.setdefault(cell_of(key), [0, 0])
            pair[0 if success else 1] += 1
    table = [counts[cell] for cell in sorted(counts)]
    p_value = float(chi2_contingency(table)[1]) if len(table) > 1 else 1.0
    lines = ["| start cell | successes | runs | rate |", "|---|---|---|---|"]
    for cell in sorted(counts):
        k, fails = counts[cell]
        lines.append(f"| {cell} | {k} | {k + fails} | {k / (k + fails):.0%} |")
    return lines, p_value


def agreement_rows(runs: dict[str, dict[str, bool]]) -> list[str]:
    """Per pair of variants: how often the same run key has the same outcome, against independence."""
    lines = [
        "| variants | shared runs | same outcome | expected if independent | both fail | expected |",
        "|---|---|---|---|---|---|",
    ]
    for a, b in itertools.combinations(runs, 2):
        keys = sorted(set(runs[a]) & set(runs[b]))
        if not keys:
            continue
        n = len(keys)
        pa = sum(runs[a][k] for k in keys) / n
        pb = sum(runs[b][k] for k in keys) / n
        same = sum(runs[a][k] == runs[b][k] for k in keys)
        both_fail = sum(not runs[a][k] and not runs[b][k] for k in keys)
        expected_same, expected_both_fail = (pa * pb + (1 - pa) * (1 - pb)) * n, (1 - pa) * (1 - pb) * n
        lines.append(f"| {a} / {b} | {n} | {same} | {expected_same:.1f} | {both_fail} | {expected_both_fail:.1f} |")
    return lines


def build_report(env: str, arm: str, runs: dict[str, dict[str, bool]]) -> list[str]:
    cells, p_value = cell_rows(runs)
    lines = report_header(
        f"Robustness pooled over engine variants: {env}, arm {arm}",
        quick=False,
        notes=[f"Variants (tags): {', '.join(runs)}; each tag's runs are `results/robustness-{env}-<tag>.jsonl`"],
    )
    lines += ["## Success rate per variant", "", *rate_rows(runs), ""]
    lines += [
        "## Does the start predict success? (all variants pooled)",
        "",
        *cells,
        "",
        f"Chi-square test of one rate for every cell: p = {p_value:.2f} "
        + ("(no evidence that the start matters)." if p_value > 0.05 else "(the start matters)."),
        "",
    ]
    lines += [
        "## Do the same runs fail under every variant?",
        "",
        "Same key = same start cell and seed (same init, same env seeds). Agreement near the independence "
        "expectation means a run's outcome is not fixed by its seed or start: it is chance within the run.",
        "",
        *agreement_rows(runs),
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", choices=list(ENVS), default="cartpole")
    parser.add_argument("--arm", default="meta", help="the arm to pool (fixed, hd, meta)")
    parser.add_argument("--tags", required=True, help="comma-separated variant tags (robustness.py --tag)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args(argv)
    tags = [t for t in args.tags.split(",") if t]
    runs: dict[str, Any] = {tag: load(args.env, tag, args.arm, args.out) for tag in tags}
    empty = [tag for tag, outcomes in runs.items() if not outcomes]
    if empty:
        raise SystemExit(f"error: no {args.arm} runs recorded under --tags {','.join(empty)}")
    name = results_name("robustness", env=args.env, quick=False, tag=f"{args.arm}-pooled")
    write_report(args.out / f"{name}.md", build_report(args.env, args.arm, runs))


if __name__ == "__main__":
    main()
