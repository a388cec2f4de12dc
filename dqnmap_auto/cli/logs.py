"""``dqnmap-auto study logs``: print (and follow) a trial's or a ``train`` run's live log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from dqnmap_auto.cli.common import location_options, study_location, user_errors


@click.command("logs")
@click.argument("target", metavar="STUDY|RUN_DIR")
@click.argument("number", type=int, required=False, metavar="[TRIAL]")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the trial (or run) ends.")
@click.option("--lines", "-n", type=click.IntRange(min=0), default=20, show_default=True, help="Last lines (0: all).")
@location_options
@user_errors
def study_logs(
    target: str, number: int | None, follow: bool, lines: int, storage: str | None, directory: str | None
) -> None:
    """Show a trial's log (default: the newest running one), or a `train` output directory's.

    Example: dqnmap-auto study logs cartpole 3 --follow
    """
    from dqnmap_auto.control.send import is_run_dir
    from dqnmap_auto.logs import follow as follow_log

    try:
        if is_run_dir(target):
            path, running, outcome = _run_log(Path(target))
        else:
            path, running, outcome = _trial_log(target, number, storage, directory)
        follow_log(path, lines=lines, follow=follow, running=running, echo=click.echo)
        if follow:
            click.echo(outcome())
    except KeyboardInterrupt:  # Ctrl-C ends --follow: nothing went wrong
        pass


Follow = tuple[Path, Callable[[], bool], Callable[[], str]]  # the log, whether it still grows, the final line


def _run_log(directory: Path) -> Follow:
    from dqnmap_auto.control.channels import live_run
    from dqnmap_auto.errors import ConfigError
    from dqnmap_auto.logs import RUN_LOG

    path = directory / RUN_LOG
    if not path.exists():
        raise ConfigError(f"{directory}: no {RUN_LOG} (a run from before live logs, or not started yet)")

    def running() -> bool:
        return live_run(directory) is not None

    def outcome() -> str:
        return f"run {directory}: " + ("finished" if (directory / "eval.json").exists() else "ended without results")

    return path, running, outcome


def _trial_log(name: str, number: int | None, storage: str | None, directory: str | None) -> Follow:
    from dqnmap_auto.logs import trial_log, trial_outcome, trial_running
    from dqnmap_auto.tuning.location import load_existing

    location = study_location(storage, directory)
    study = load_existing(location, name)
    number, path = trial_log(study, location.directory, number)
    return path, trial_running(study, number), lambda: trial_outcome(study, number)
