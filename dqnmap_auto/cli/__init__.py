"""The ``dqnmap-auto`` command line: thin click commands over library functions, one module per command.

Every user error (:class:`~dqnmap_auto.errors.DqnmapError`) becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import click

from dqnmap_auto import __version__
from dqnmap_auto.cli.dashboard import dashboard
from dqnmap_auto.cli.logs import study_logs
from dqnmap_auto.cli.study import study
from dqnmap_auto.cli.train import train
from dqnmap_auto.cli.trial import trial


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dqnmap-auto")
def main() -> None:
    """AutoML for DQN: Optuna studies over agents that tune their own hyperparameters online."""


main.add_command(train)
main.add_command(study)
main.add_command(trial)
main.add_command(dashboard)
study.add_command(study_logs)  # `study logs`, kept in its own module
