"""Start-up time of the CLI: wall-clock seconds of read-only commands, each in a fresh process.

A command that only reads the study storage should not pay for importing torch, MLflow, gymnasium or
optuna-dashboard. Each command runs ``--repeat`` times in a new ``python -m dqnmap_auto.cli`` process (the
console script does the same import); the figure is the median. With several ``--tree`` options the source
trees are timed side by side (each put first on PYTHONPATH), e.g. a checkout of main before a change and the
working tree after it::

    python benchmarks/startup.py                               # this tree
    python benchmarks/startup.py --tree /tmp/before --tree .   # side by side

The project directory with one small study (smoke.yaml, one 1,500-step trial, no tracking) is made once, with
the last tree given.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def commands(project: Path) -> dict[str, list[str]]:
    """What a new user types first: help, the read-only study commands, and two one-line errors."""
    at = ["--dir", str(project)]
    return {
        "--help": ["--help"],
        "study --help": ["study", "--help"],
        "study list": ["study", "list", *at],
        "study status smoke": ["study", "status", "smoke", *at],
        "study best smoke": ["study", "best", "smoke", *at],
        "study run missing.yaml": ["study", "run", "missing.yaml", *at],
        "train missing.yaml": ["train", "missing.yaml"],
    }


def time_command(tree: Path, argv: list[str], repeat: int, cwd: Path) -> tuple[float, int]:
    """Median seconds over ``repeat`` runs, and the exit code of the last one.

    ``cwd`` must hold no ``dqnmap_auto``: ``python -m`` puts the working directory first on the path.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")])}
    seconds, code = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "dqnmap_auto.cli", *argv], env=env, cwd=cwd, capture_output=True, check=False
        )
        seconds.append(time.perf_counter() - started)
        code = done.returncode
    return statistics.median(seconds), code


def make_project(tree: Path, directory: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    spec = ROOT / "studies" / "smoke.yaml"
    argv = ["study", "run", str(spec), "--dir", str(directory), "--n-trials", "1", "--no-tracking", "--no-progress"]
    command = [sys.executable, "-m", "dqnmap_auto.cli", *argv]
    subprocess.run(command, env=env, cwd=directory.parent, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", type=Path, help="source tree to time (repeatable) [default: .]")
    parser.add_argument("--repeat", type=int, default=5, help="runs per command and tree (median) [default: 5]")
    args = parser.parse_args()
    trees = [tree.resolve() for tree in (args.tree or [ROOT])]
    with tempfile.TemporaryDirectory(prefix="dqnmap-startup-") as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        make_project(trees[-1], project)
        print(
            f"median of {args.repeat} fresh processes, seconds ({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})"
        )
        print(f"{'command':28}" + "".join(f"{tree.name or str(tree):>14}" for tree in trees))
        for name, argv in commands(project).items():
            cells = []
            for tree in trees:
                seconds, code = time_command(tree, argv, args.repeat, Path(tmp))
                cells.append(f"{seconds:>11.2f}{'' if code == 0 else f' ({code})':>3}")
            print(f"{name:28}" + "".join(f"{cell:>14}" for cell in cells))
        print("(n): the command's exit code when not 0 (the two missing-file errors exit 2)")


if __name__ == "__main__":
    main()
