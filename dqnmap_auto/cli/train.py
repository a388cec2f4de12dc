"""``dqnmap-auto train``: one agent from a config."""

from __future__ import annotations

from pathlib import Path

import click

from dqnmap_auto.cli.common import user_errors


@click.command()
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

    Writes model.pt, metrics.jsonl, train.log, eval.json and config.yaml to the output directory. While it runs,
    `dqnmap-auto trial set OUT lr=3e-4` (freeze, unfreeze, stop) steers it and `dqnmap-auto study logs OUT -f`
    follows its log.

    Example: dqnmap-auto train studies/cartpole.yaml --seed 0 --out runs/x
    """
    from dqnmap_auto.config import clamped_start_values, load_train_config

    config = load_train_config(config_path, overrides=overrides, seed=seed, steps=steps)
    # torch and gymnasium once the config is known to be valid: a config error comes at once
    from dqnmap_auto.agent.networks import check_network
    from dqnmap_auto.callbacks import JsonlWriter, ProgressBar
    from dqnmap_auto.control import Controller, RunDirChannel
    from dqnmap_auto.envs import check_env
    from dqnmap_auto.hypergrad.schedule import require_schedule
    from dqnmap_auto.logs import RUN_LOG, LogWriter
    from dqnmap_auto.run_dir import prepare_run_dir, write_config, write_results
    from dqnmap_auto.trainer import Trainer

    obs_space = check_env(config.env)  # before anything is written
    check_network(config.agent, tuple(obs_space.shape or ()))
    if use_schedule:
        require_schedule(config)  # before anything is written
    out_dir = prepare_run_dir(
        out or Path("runs") / f"{Path(config_path).stem}-seed{config.training.seed}", overwrite=overwrite
    )
    write_config(out_dir, config)
    if not use_schedule:
        for note in clamped_start_values(config):
            click.echo(f"note: {note}", err=True)
    controller = Controller(RunDirChannel(out_dir))  # live control through OUT/control.jsonl
    callbacks = [JsonlWriter(out_dir / "metrics.jsonl"), LogWriter(out_dir / RUN_LOG), controller.callback()]
    if progress:
        callbacks.append(ProgressBar())
    trainer = Trainer(config, callbacks, use_schedule=use_schedule)
    try:
        result = trainer.run()
    finally:
        controller.close()  # also when training failed: the run takes no more commands
    write_results(out_dir, trainer.agent.q_net.state_dict(), result.final_eval, solved_at=result.solved_at)
    tuned = ", ".join(
        f"{k} {result.initial_hyperparams[k]:.4g} -> {v:.4g}"
        for k, v in result.hyperparams.items()
        if k in trainer.tuner.space.names
    )
    click.echo(
        f"final eval {result.final_eval.mean:.1f} ± {result.final_eval.std:.1f} "
        f"over {len(result.final_eval.returns)} episodes; wrote {out_dir}"
    )
    if result.stop_requested_at is not None:
        click.echo(f"stopped at step {result.stop_requested_at} of {config.training.total_steps} by a `stop` command")
    if result.solved_at is not None:
        click.echo(
            f"stopped at step {result.solved_at} of {config.training.total_steps}: an evaluation reached "
            f"training.stop_at_return {config.training.stop_at_return:g}"
        )
    if tuned:
        click.echo(f"self-tuned: {tuned}")
