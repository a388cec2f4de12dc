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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import ENVS, RESULTS, ResultLog, report_header, results_name, write_report
from scipy.stats import binomtest, chi2_contingency

#: {run key: its record} of one arm under one variant.
Runs = dict[str, dict[str, Any]]


def interval(successes: int, n: int) -> str:
    """95% Wilson score interval: honest at rates near 0 or 1 and small n, unlike the normal interval."""
    ci = binomtest(successes, n).proportion_ci(method="wilson")
    return f"{ci.low:.0%}..{ci.high:.0%}"


def log_path(env: str, tag: str, out: Path) -> Path:
    return out / f"{results_name('robustness', env=env, quick=False, tag=tag)}.jsonl"


def load(path: Path, arm: str) -> Runs:
    return {r["key"]: r for r in ResultLog(path).records() if r["mode"] == arm}


def rate_rows(runs: dict[str, Runs]) -> list[str]:
    lines = ["| variant (tag) | runs | successes | rate | 95% interval |", "|---|---|---|---|---|"]
    pooled = [0, 0]
    for tag, records in runs.items():
        k, n = sum(r["success"] for r in records.values()), len(records)
        pooled[0] += k
        pooled[1] += n
        lines.append(f"| {tag} | {n} | {k} | {k / n:.0%} | {interval(k, n)} |")
    k, n = pooled
    lines.append(f"| **pooled** | {n} | {k} | {k / n:.0%} | {interval(k, n)} |")
    return lines


def cell_rows(runs: dict[str, Runs]) -> tuple[list[str], float]:
    """Pooled success per start cell and the chi-square p-value of 'every cell has the same rate'."""
    counts: dict[str, list[int]] = {}
    for records in runs.values():
        for r in records.values():
            pair = counts.setdefault(f"lr={r['lr0']:g}, gamma={r['gamma0']:g}", [0, 0])
            pair[0 if r["success"] else 1] += 1
    table = [counts[cell] for cell in sorted(counts)]
    p_value = float(chi2_contingency(table)[1]) if len(table) > 1 else 1.0
    lines = ["| start cell | successes | runs | rate |", "|---|---|---|---|"]
    for cell in sorted(counts):
        k, fails = counts[cell]
        lines.append(f"| {cell} | {k} | {k + fails} | {k / (k + fails):.0%} |")
    return lines, p_value


def agreement_rows(runs: dict[str, Runs]) -> list[str]:
    """Per pair of variants: how often the same run key has the same outcome, against independence."""
    lines = [
        "| variants | shared runs | same outcome | expected if independent | both fail | expected |",
        "|---|---|---|---|---|---|",
    ]
    for a, b in itertools.combinations(runs, 2):
        pairs = [(runs[a][k]["success"], runs[b][k]["success"]) for k in sorted(set(runs[a]) & set(runs[b]))]
        if not pairs:
            continue
        n = len(pairs)
        pa = sum(x for x, _ in pairs) / n
        pb = sum(y for _, y in pairs) / n
        same = sum(x == y for x, y in pairs)
        both_fail = sum(not x and not y for x, y in pairs)
        expected_same, expected_both_fail = (pa * pb + (1 - pa) * (1 - pb)) * n, (1 - pa) * (1 - pb) * n
        lines.append(f"| {a} / {b} | {n} | {same} | {expected_same:.1f} | {both_fail} | {expected_both_fail:.1f} |")
    return lines


def build_report(env: str, arm: str, runs: dict[str, Runs]) -> list[str]:
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
    paths = {tag: log_path(args.env, tag, args.out) for tag in tags}
    missing = [str(path) for path in paths.values() if not path.exists()]
    if missing:
        parser.error(f"--tags: no runs recorded in {', '.join(missing)}")
    runs = {tag: load(path, args.arm) for tag, path in paths.items()}
    empty = [tag for tag, records in runs.items() if not records]
    if empty:
        parser.error(f"--tags: no {args.arm} runs recorded under {','.join(empty)}")
    name = results_name("robustness", env=args.env, quick=False, tag=f"{args.arm}-pooled")
    write_report(args.out / f"{name}.md", build_report(args.env, args.arm, runs))


if __name__ == "__main__":
    main()
