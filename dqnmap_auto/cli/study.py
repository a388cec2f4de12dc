"""``dqnmap-auto study ...``: run, inspect, export, enqueue and delete Optuna studies."""

from __future__ import annotations

import sys

import click

from dqnmap_auto.cli.common import location_options, study_location, user_errors
from dqnmap_auto.errors import ConfigError


@click.group()
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
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    help="Seed of the sampler's draws: the same seed on the same study state draws the same trials "
    "[default: a fresh seed per run, printed in the summary].",
)
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
    seed: int | None,
    storage: str | None,
    directory: str | None,
) -> None:
    """Run (or continue) the study a spec describes.

    Example: dqnmap-auto study run studies/cartpole.yaml --n-trials 10 --jobs 2

    Many machines: dqnmap-auto study run SPEC --dask tcp://scheduler:8786 --jobs 8
    --storage postgresql://... --tracking-uri http://mlflow:5000

    Ctrl-C marks the running trials FAIL ("interrupted") and queues their retries, which the next
    `study run` resumes from their checkpoints; it exits with code 130.
    """
    from dqnmap_auto.tuning.spec import load_study_spec

    if n_trials is not None and n_trials < 1:
        raise ConfigError(f"--n-trials must be >= 1, got {n_trials}")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"--timeout must be > 0, got {timeout}")
    spec = load_study_spec(spec_path, overrides=overrides)
    location = study_location(storage or spec.study.storage, directory)
    from dqnmap_auto.tuning.study import StudyInterrupted, run_study  # torch, MLflow: after the spec is valid

    try:
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
            seed=seed,
            announce=click.echo,
        )
    except StudyInterrupted as interrupted:
        trials = ", ".join(str(number) for number in interrupted.trials) or "none"
        click.echo(
            f"interrupted: trial(s) {trials} marked FAIL (interrupted) with a retry queued; "
            f"`dqnmap-auto study run {spec_path}` resumes them",
            err=True,
        )
        sys.exit(130)
    best = f"{summary.best_value:.2f} (trial {summary.best_number})" if summary.best_value is not None else "none"
    click.echo(
        f"study {summary.study_name!r}: ran {summary.n_new} trials in {summary.seconds:.0f}s "
        f"({summary.complete} complete, {summary.pruned} pruned, {summary.failed} failed; "
        f"sampler seed {summary.sampler_seed})"
    )
    click.echo(
        f"the study holds {summary.study_trials} trials ({summary.study_complete} complete, "
        f"{summary.study_pruned} pruned); best {best}"
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

    rows = list_studies(study_location(storage, directory))
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
    from dqnmap_auto.tuning.location import load_existing
    from dqnmap_auto.tuning.manage import trial_rows

    rows = trial_rows(load_existing(study_location(storage, directory), name))
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
@click.option("--overwrite", is_flag=True, help="Replace the --export file if it exists.")
@location_options
@user_errors
def study_best(name: str, export_path: str | None, overwrite: bool, storage: str | None, directory: str | None) -> None:
    """Show the best trial; optionally export it as a train config.

    Example: dqnmap-auto study best cartpole --export best.yaml && dqnmap-auto train best.yaml --schedule
    """
    from dqnmap_auto.tuning.location import load_existing
    from dqnmap_auto.tuning.manage import best_trial, export_best

    found = load_existing(study_location(storage, directory), name)
    trial = best_trial(found)
    # fails before anything is printed
    written = export_best(found, export_path, overwrite=overwrite) if export_path else None
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
    from dqnmap_auto.tuning.location import load_existing
    from dqnmap_auto.tuning.manage import enqueue

    params = enqueue(load_existing(study_location(storage, directory), name), list(assignments))
    click.echo(f"enqueued {params}")


@study.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--keep-mlflow",
    is_flag=True,
    help="Keep the study's MLflow experiment (renamed, so that a new study of this name gets a new one).",
)
@click.option("--tracking-uri", default=None, help="MLflow tracking URI [default: SQLite in the project directory].")
@location_options
@user_errors
def study_delete(
    name: str, yes: bool, keep_mlflow: bool, tracking_uri: str | None, storage: str | None, directory: str | None
) -> None:
    """Delete a study and everything it wrote: its trials, its MLflow experiment (runs, artifacts, models),
    its optuna-dashboard artifacts and its checkpoints.

    Example: dqnmap-auto study delete cartpole --yes
    """
    from dqnmap_auto.tuning.location import load_existing
    from dqnmap_auto.tuning.manage import delete

    location = study_location(storage, directory)
    load_existing(location, name)
    if not yes and not click.confirm(
        f"delete study {name!r} from {location.describe()}, with its MLflow runs, artifacts and checkpoints?",
        default=False,
    ):
        click.echo("not deleted")
        sys.exit(1)
    removed = delete(location, name, tracking_uri=tracking_uri, keep_mlflow=keep_mlflow)
    click.echo("deleted " + ", ".join(removed))
