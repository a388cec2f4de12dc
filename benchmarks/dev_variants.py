"""Engine variants side by side on development seeds: which one becomes the next default (issue 19).

``ablation.py`` writes one resumable log per env and tag (``--tag v6a --set ...``); this script reads the logs of
several tags, lines the runs up by (env, scenario, arm, seed), and prints per run the outcome and final lr, then,
per variant against the baseline, the paired success counts on the runs both have with an exact sign test (McNemar
on the discordant pairs), overall and per env; per env also how often the variant's final lr is closer (in log) to
the env's rl-zoo3 lr than the baseline's, with a Wilcoxon signed-rank test on those distances. It runs nothing: it
is how a design decision on seeds 0-99 is read before the test seeds (100-109) are spent on it.

A variant may pool several tags (the same engine run under two tags, e.g. the shipped default's development runs
from before and after it shipped)::

    PYTHONPATH=. python benchmarks/dev_variants.py --variant v5=v4h,v5dev --variant v6a=v6a --variant v6c=v6c
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from scipy.stats import binomtest, wilcoxon

RESULTS = Path(__file__).resolve().parent / "results"
STUDIES = Path(__file__).resolve().parent.parent / "studies"
Key = tuple[str, str, str, int]


def load(results: Path, tags: Sequence[str]) -> dict[Key, dict[str, Any]]:
    """Development-seed runs of ``tags`` (every env), keyed by (env, scenario, arm, seed); a later tag wins."""
    runs: dict[Key, dict[str, Any]] = {}
    for tag in tags:
        for path in sorted(results.glob(f"ablation-*-{tag}.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    run = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a kill
                    continue
                if run["seed"] < 100:
                    runs[(run["env"], run["scenario"], run["arm"], run["seed"])] = run
    return runs


def cell(run: dict[str, Any] | None) -> str:
    if run is None:
        return ""
    final = run["final_mean"]
    outcome = "ok" if run["success"] else "no"
    return f"{outcome} {final:.0f} (lr {run['hp_final']['lr']:.1e})" if final is not None else "diverged"


def paired_successes(
    a: dict[Key, dict[str, Any]], b: dict[Key, dict[str, Any]], keys: Sequence[Key]
) -> tuple[int, int, int, int, float]:
    """Successes of a and b on ``keys``, the runs only a / only b solved, and McNemar's exact p on those."""
    wins_a = sum(bool(a[k]["success"]) and not b[k]["success"] for k in keys)
    wins_b = sum(bool(b[k]["success"]) and not a[k]["success"] for k in keys)
    successes_a, successes_b = (sum(bool(runs[k]["success"]) for k in keys) for runs in (a, b))
    p = binomtest(wins_a, wins_a + wins_b).pvalue if wins_a + wins_b else 1.0
    return successes_a, successes_b, wins_a, wins_b, p


def paired_line(name: str, base: str, a: dict[Key, dict[str, Any]], b: dict[Key, dict[str, Any]]) -> str:
    common = sorted(set(a) & set(b))
    successes_a, successes_b, wins_a, wins_b, p = paired_successes(a, b, common)
    verdict = "" if p < 0.05 else ", not significant"
    return (
        f"| {name} vs {base} | {len(common)} | {successes_a} / {successes_b} | {wins_a} / {wins_b} | {p:.2g}{verdict} |"
    )


def zoo_lr(env: str) -> float:
    """rl-zoo3's tuned lr for a benchmark env: the base of its spec."""
    spec = yaml.safe_load((STUDIES / f"{env}.yaml").read_text(encoding="utf-8"))
    return float(spec["agent"]["lr"])


def per_env_lines(name: str, base: str, a: dict[Key, dict[str, Any]], b: dict[Key, dict[str, Any]]) -> list[str]:
    """Per env: paired successes (McNemar) and whose final lr lands nearer rl-zoo3's (Wilcoxon on |log ratio|)."""
    lines = []
    for env in sorted({key[0] for key in set(a) & set(b)}):
        common = sorted(k for k in set(a) & set(b) if k[0] == env)
        successes_a, successes_b, _, _, p_success = paired_successes(a, b, common)
        target = zoo_lr(env)
        near_a, near_b = ([abs(math.log10(runs[k]["hp_final"]["lr"] / target)) for k in common] for runs in (a, b))
        closer = sum(x < y for x, y in zip(near_a, near_b, strict=True))
        p_lr = wilcoxon(near_a, near_b).pvalue if near_a != near_b else 1.0
        lines.append(
            f"| {env} | {name} vs {base} | {len(common)} | {successes_a} / {successes_b} | {p_success:.2g} | "
            f"{target:.1e} | {statistics.median(near_a):.2f} / {statistics.median(near_b):.2f} | "
            f"{closer} of {len(common)} | {p_lr:.2g} |"
        )
    return lines


def report(variants: dict[str, dict[Key, dict[str, Any]]]) -> list[str]:
    names = list(variants)
    keys = sorted(set().union(*variants.values()))
    lines = [
        "| env | scenario | arm | seed | " + " | ".join(names) + " |",
        "|---|---|---|---|" + "---|" * len(names),
    ]
    for key in keys:
        lines.append(
            "| " + " | ".join(map(str, key)) + " | " + " | ".join(cell(variants[n].get(key)) for n in names) + " |"
        )
    base = names[0]
    lines += [
        "",
        "| variant vs baseline | runs both have | successes | only one succeeds | McNemar exact p |",
        "|---|---|---|---|---|",
    ]
    lines += [paired_line(name, base, variants[name], variants[base]) for name in names[1:]]
    lines += [
        "",
        "| env | variant vs baseline | runs both have | successes | McNemar p | rl-zoo3 lr | median distance of the "
        "final lr from it (log10) | variant's lr closer | Wilcoxon p |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names[1:]:
        lines += per_env_lines(name, base, variants[name], variants[base])
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--variant",
        action="append",
        required=True,
        metavar="NAME=TAG[,TAG]",
        help="a variant and the ablation.py tags of its runs; the first variant is the baseline",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="the directory of the ablation logs")
    args = parser.parse_args()
    variants = {}
    for spec in args.variant:
        name, _, tags = spec.partition("=")
        if not name or not tags:
            parser.error(f"--variant {spec!r}: expected NAME=TAG[,TAG]")
        variants[name] = load(args.results, tags.split(","))
    print("\n".join(report(variants)))


if __name__ == "__main__":
    main()
