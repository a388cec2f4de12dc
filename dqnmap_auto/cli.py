"""The ``dqnmap-auto`` command line: thin click commands over library functions.

Every user error (:class:`~dqnmap_auto.errors.DqnmapError`) becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from dqnmap_auto import __version__
from dqnmap_auto.errors import DivergenceError, DqnmapError

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
@click.option("--progress/--no-progress", default=True, help="Show the console progress bar.")
@user_errors
def train(
    config_path: str,
    seed: int | None,
    steps: int | None,
    overrides: tuple[str, ...],
    out: str | None,
    overwrite: bool,
    progress: bool,
) -> None:
    """Train one agent from a config (or a study spec's base config).

    Writes model.pt, metrics.jsonl, eval.json and config.yaml to the output directory.

    Example: dqnmap-auto train studies/cartpole.yaml --seed 0 --out runs/x
    """
    from dqnmap_auto.callbacks import JsonlWriter, ProgressBar
    from dqnmap_auto.config import load_train_config
    from dqnmap_auto.run_dir import prepare_run_dir, write_config, write_results
    from dqnmap_auto.trainer import Trainer

    config = load_train_config(config_path, overrides=overrides, seed=seed, steps=steps)
    out_dir = prepare_run_dir(
        out or Path("runs") / f"{Path(config_path).stem}-seed{config.training.seed}", overwrite=overwrite
    )
    write_config(out_dir, config)
    callbacks = [JsonlWriter(out_dir / "metrics.jsonl")]
    if progress:
        callbacks.append(ProgressBar())  # type: ignore[arg-type]
    trainer = Trainer(config, callbacks)
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


if __name__ == "__main__":
    main()
