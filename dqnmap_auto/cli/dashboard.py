"""``dqnmap-auto dashboard``: optuna-dashboard and the MLflow UI, started and stopped together."""

from __future__ import annotations

import signal

import click

from dqnmap_auto.cli.common import user_errors


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=None,
    help="Project directory [default: $DQNMAP_DIR or ./dqnmap-runs].",
)
@click.option("--storage", default=None, help="Optuna storage [default: the project's journal].")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI [default: SQLite in the project directory].")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface both servers bind to.")
@click.option("--optuna-port", type=int, default=8080, show_default=True)
@click.option("--mlflow-port", type=int, default=5000, show_default=True)
@user_errors
def dashboard(
    directory: str | None, storage: str | None, tracking_uri: str | None, host: str, optuna_port: int, mlflow_port: int
) -> None:
    """Start optuna-dashboard and the MLflow UI; Ctrl-C stops both.

    Example: dqnmap-auto dashboard --dir dqnmap-runs --optuna-port 8080 --mlflow-port 5000
    """
    from dqnmap_auto.dashboard import LOOPBACK, start_dashboards
    from dqnmap_auto.tuning.storage import project_dir

    if host != LOOPBACK:
        click.echo(f"warning: binding to {host}: the dashboards have no authentication", err=True)
    dashboards = start_dashboards(
        directory=project_dir(directory),
        storage=storage,
        tracking_uri=tracking_uri,
        host=host,
        optuna_port=optuna_port,
        mlflow_port=mlflow_port,
        announce=click.echo,
    )
    click.echo("Ctrl-C stops both.")
    try:
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)  # `kill` stops both servers too
        stopped = dashboards.wait()
        click.echo(f"{stopped} exited; stopping the other", err=True)
    except KeyboardInterrupt:
        pass
    finally:
        dashboards.stop()
