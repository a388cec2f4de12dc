"""The ``dqnmap-auto`` command line: thin click commands over library functions.

Every user error (:class:`~dqnmap_auto.errors.DqnmapError`) becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dqnmap_auto import __version__
from dqnmap_auto.errors import ConfigError, DivergenceError, DqnmapError

if TYPE_CHECKING:
    from dqnmap_auto.tuning.study import StudyLocation

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn library errors into a one-line message and exit code 2 (1 for a diverged run)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DqnmapError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)
        except DivergenceError as error:
            click.echo(f"error: training diverged: {error.reason}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dqnmap-auto")
def main() -> None:
    """AutoML for DQN: Optuna studies over agents that tune their own hyperparameters online."""


@main.command()
@click.argument("config_path", metavar="CONFIG.yaml", type=click.Path(dir_okay=False))
@click.option("--seed", type=int, default=None, help="Override training.seed.")
@click.option("--steps", type=int, default=None, help="Override training.total_steps.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config field by dotted path, e.g. --set agent.lr=1e-3 (repeatable).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Output directory [default: runs/<config name>-seed<seed>].",
)
@click.option("--overwrite", is_flag=True, help="Replace a run already in --out.")
@click.option(
    "--schedule",
    "use_schedule",
    is_flag=True,
    help="Replay the config's `schedule` (from `study best --export`) instead of self-tuning.",
)
@click.option("--progress/--no-progress", default=True, help="Show the console progress bar.")
@user_errors
def train(
    config_path: str,
    seed: int | None,
    steps: int | None,
    overrides: tuple[str, ...],
    out: str | None,
    overwrite: bool,
    use_schedule: bool,
    progress: bool,
) -> None:
    """Train one agent from a config (or a study spec's base config).

    Writes model.pt, metrics.jsonl, eval.json and config.yaml to the output directory.

    Example: dqnmap-auto train studies/cartpole.yaml --seed 0 --out runs/x
    """
    from dqnmap_auto.agent.networks import check_network
    from dqnmap_auto.callbacks import JsonlWriter, ProgressBar
    from dqnmap_auto.config import load_train_config
    from dqnmap_auto.envs import check_env
    from dqnmap_auto.hypergrad.schedule import require_schedule
    from dqnmap_auto.run_dir import prepare_run_dir, write_config, write_results
    from dqnmap_auto.trainer import Trainer

    config = load_train_config(config_path, overrides=overrides, seed=seed, steps=steps)
    obs_space = check_env(config.env)  # before anything is written
    check_network(config.agent, tuple(obs_space.shape or ()))
    if use_schedule:
        require_schedule(config)  # before anything is written
    out_dir = prepare_run_dir(
        out or Path("runs") / f"{Path(config_path).stem}-seed{config.training.seed}", overwrite=overwrite
    )
    write_config(out_dir, config)
    callbacks = [JsonlWriter(out_dir / "metrics.jsonl")]
    if progress:
        callbacks.append(ProgressBar())  # type: ignore[arg-type]
    trainer = Trainer(config, callbacks, use_schedule=use_schedule)
    result = trainer.run()
    write_results(out_dir, trainer.agent.q_net.state_dict(), result.final_eval)
    tuned = ", ".join(
        f"{k} {result.initial_hyperparams[k]:.4g} -> {v:.4g}"
        for k, v in result.hyperparams.items()
        if k in trainer.tuner.space.names
    )
    click.echo(
        f"final eval {result.final_eval.mean:.1f} ± {result.final_eval.std:.1f} "
        f"over {len(result.final_eval.returns)} episodes; wrote {out_dir}"
    )
    if tuned:
        click.echo(f"self-tuned: {tuned}")


# -- studies ---------------------------------------------------------------------------------------------
def location_options(func: F) -> F:
    """--storage and --dir, shared by every study command."""
    func = click.option(
        "--dir",
        "directory",
        type=click.Path(file_okay=False),
        default=None,
        help="Project directory [default: $DQNMAP_DIR or ./dqnmap-runs].",
    )(func)
    func = click.option(
        "--storage", default=None, help="Optuna storage: RDB URL or journal file path [default: the project's journal]."
    )(func)
    return func


def _location(storage: str | None, directory: str | None) -> StudyLocation:
    from dqnmap_auto.tuning.storage import project_dir
    from dqnmap_auto.tuning.study import StudyLocation

    return StudyLocation(storage=storage, directory=project_dir(directory))


@main.group()
def study() -> None:
    """Optuna studies: run, inspect, export, enqueue, delete."""


@study.command("run")
@click.argument("spec_path", metavar="SPEC.yaml", type=click.Path(dir_okay=False))
@click.option("--n-trials", type=int, default=None, help="Trials to run now [default: study.n_trials].")
@click.option("--timeout", type=float, default=None, help="Stop starting trials after this many seconds.")
@click.option("--name", default=None, help="Study name [default: study.name or the spec file's stem].")
@click.option(
    "--jobs", type=int, default=1, show_default=True, help="Study workers: processes here, or tasks with --dask."
)
@click.option(
    "--dask",
    default=None,
    metavar="ADDRESS",
    help="Run the workers on a Dask cluster: a scheduler address (tcp://host:8786) or 'local' (a LocalCluster).",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a base-config field.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI [default: SQLite in the project directory].")
@click.option("--tracking/--no-tracking", default=True, help="Log to MLflow and optuna-dashboard.")
@click.option("--progress/--no-progress", default=True)
@location_options
@user_errors
def study_run(
    spec_path: str,
    n_trials: int | None,
    timeout: float | None,
    name: str | None,
    jobs: int,
    dask: str | None,
    overrides: tuple[str, ...],
    tracking_uri: str | None,
    tracking: bool,
    progress: bool,
    storage: str | None,
    directory: str | None,
) -> None:
    """Run (or continue) the study a spec describes.

    Example: dqnmap-auto study run studies/cartpole.yaml --n-trials 10 --jobs 2

    Many machines: dqnmap-auto study run SPEC --dask tcp://scheduler:8786 --jobs 8
    --storage postgresql://... --tracking-uri http://mlflow:5000
    """
    from dqnmap_auto.tuning.spec import load_study_spec
    from dqnmap_auto.tuning.study import run_study

    if n_trials is not None and n_trials < 1:
        raise ConfigError(f"--n-trials must be >= 1, got {n_trials}")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"--timeout must be > 0, got {timeout}")
    spec = load_study_spec(spec_path, overrides=overrides)
    location = _location(storage or spec.study.storage, directory)
    summary = run_study(
        spec,
        location,
        name=name,
        n_trials=n_trials,
        timeout=timeout,
        jobs=jobs,
        dask=dask,
        progress=progress,
        tracking=tracking,
        tracking_uri=tracking_uri,
    )
    best = f"{summary.best_value:.2f} (trial {summary.best_number})" if summary.best_value is not None else "none"
    click.echo(
        f"study {summary.study_name!r}: {summary.n_new} trials in {summary.seconds:.0f}s "
        f"({summary.complete} complete, {summary.pruned} pruned, {summary.failed} failed); best {best}"
    )
    click.echo(f"storage: {location.describe()}")
    if tracking:
        click.echo(f"dashboards: dqnmap-auto dashboard --dir {location.directory}")


@study.command("list")
@location_options
@user_errors
def study_list(storage: str | None, directory: str | None) -> None:
    """List the studies in the storage.

    Example: dqnmap-auto study list --dir dqnmap-runs
    """
    from dqnmap_auto.tuning.manage import list_studies

    rows = list_studies(_location(storage, directory))
    if not rows:
        click.echo("no studies")
        return
    click.echo(f"{'name':30} {'trials':>6} {'best':>10}")
    for row in rows:
        best = f"{row['best']:.2f}" if row["best"] is not None else "-"
        click.echo(f"{row['name']:30} {row['trials']:>6} {best:>10}")


@study.command("status")
@click.argument("name")
@location_options
@user_errors
def study_status(name: str, storage: str | None, directory: str | None) -> None:
    """Table of a study's trials: number, state, value, pruned at step, params.

    Example: dqnmap-auto study status cartpole
    """
    from dqnmap_auto.tuning.manage import trial_rows
    from dqnmap_auto.tuning.study import load_existing

    rows = trial_rows(load_existing(_location(storage, directory), name))
    click.echo(f"{'#':>4} {'state':9} {'value':>9} {'pruned@':>8}  params")
    for row in rows:
        value = f"{row['value']:.2f}" if row["value"] is not None else "-"
        pruned = str(row["pruned_at"]) if row["pruned_at"] is not None else ""
        params = ", ".join(f"{k}={_short(v)}" for k, v in row["params"].items())
        reason = f"  [{row['reason']}]" if row["reason"] else ""
        click.echo(f"{row['number']:>4} {row['state']:9} {value:>9} {pruned:>8}  {params}{reason}")


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@study.command("best")
@click.argument("name")
@click.option(
    "--export",
    "export_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the best trial as a train config (with its learned schedule) to this file.",
)
@location_options
@user_errors
def study_best(name: str, export_path: str | None, storage: str | None, directory: str | None) -> None:
    """Show the best trial; optionally export it as a train config.

    Example: dqnmap-auto study best cartpole --export best.yaml && dqnmap-auto train best.yaml --schedule
    """
    from dqnmap_auto.tuning.manage import best_trial, export_best
    from dqnmap_auto.tuning.study import load_existing

    found = load_existing(_location(storage, directory), name)
    trial = best_trial(found)
    written = export_best(found, export_path) if export_path else None  # fails before anything is printed
    click.echo(f"best trial {trial.number}: value {trial.value:.2f}")
    for key, value in trial.params.items():
        click.echo(f"  {key} = {_short(value)}")
    initial, final = trial.user_attrs.get("hp_initial", {}), trial.user_attrs.get("hp_final", {})
    for key in trial.user_attrs.get("tuned", []):
        click.echo(f"  self-tuned {key}: {_short(initial.get(key))} -> {_short(final.get(key))}")
    if written is not None:
        click.echo(f"wrote {written}")


@study.command("enqueue")
@click.argument("name")
@click.argument("assignments", nargs=-1, metavar="KEY=VALUE...")
@location_options
@user_errors
def study_enqueue(name: str, assignments: tuple[str, ...], storage: str | None, directory: str | None) -> None:
    """Queue a trial with fixed parameters; the next `study run` evaluates it first.

    Example: dqnmap-auto study enqueue cartpole agent.lr=0.001 self_tuning.mode=meta
    """
    from dqnmap_auto.tuning.manage import enqueue
    from dqnmap_auto.tuning.study import load_existing

    params = enqueue(load_existing(_location(storage, directory), name), list(assignments))
    click.echo(f"enqueued {params}")


@study.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@location_options
@user_errors
def study_delete(name: str, yes: bool, storage: str | None, directory: str | None) -> None:
    """Delete a study and its trials from the storage.

    Example: dqnmap-auto study delete cartpole --yes
    """
    from dqnmap_auto.tuning.manage import delete
    from dqnmap_auto.tuning.study import load_existing

    location = _location(storage, directory)
    load_existing(location, name)
    if not yes and not click.confirm(f"delete study {name!r} from {location.describe()}?", default=False):
        click.echo("not deleted")
        sys.exit(1)
    delete(location, name)
    click.echo(f"deleted {name!r}")


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@main.command()
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
    )
    click.echo(f"optuna-dashboard: {dashboards.optuna_url}")
    click.echo(f"MLflow UI:        {dashboards.mlflow_url}")
    click.echo("Ctrl-C stops both.")
    try:
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)  # `kill` stops both servers too
        stopped = dashboards.wait()
        click.echo(f"{stopped} exited; stopping the other", err=True)
    except KeyboardInterrupt:
        pass
    finally:
        dashboards.stop()


if __name__ == "__main__":
    main()
