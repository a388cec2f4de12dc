"""``dqnmap-auto trial set|freeze|unfreeze|stop``: steer a running trial, or a running ``train`` output directory.

The target is ``STUDY TRIAL`` (with --dir/--storage) or the output directory of a running ``dqnmap-auto train``.
Bad commands (unknown study or trial, a finished trial, unknown names, values outside the running trainer's
bounds) exit 2 with one line, before anything is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dqnmap_auto.cli.common import location_options, study_location, user_errors

if TYPE_CHECKING:
    from dqnmap_auto.control.send import Delivery

F = TypeVar("F", bound=Callable[..., Any])
TARGET = "STUDY TRIAL | RUN_DIR"


@click.group()
def trial() -> None:
    """Steer a running trial (or a running `train`): set, freeze, unfreeze, stop.

    Commands reach the trainer at its next training phase (it looks at most once a second) and are acknowledged in
    the trial's metrics, MLflow run, optuna-dashboard note and log (`dqnmap-auto study logs`).
    """


def _options(func: F) -> F:
    func = click.option(
        "--wait",
        type=float,
        default=30.0,
        show_default=True,
        help="Seconds to wait for the trainer's acknowledgement (0: return once the command is stored).",
    )(func)
    return location_options(func)


def _send(verb: str, args: tuple[str, ...], *, wait: float, storage: str | None, directory: str | None) -> None:
    from pathlib import Path

    from dqnmap_auto.control.commands import CommandError, build
    from dqnmap_auto.control.send import is_run_dir, send_to_run, send_to_trial

    if not args:
        raise CommandError(f"give {TARGET} first")
    target, rest = args[0], list(args[1:])
    numbered = bool(rest) and rest[0].lstrip("-").isdigit()
    if is_run_dir(target) and not numbered:
        delivery = send_to_run(target, build(verb, rest, via="cli"), wait=wait)
    else:
        if not numbered and ("/" in target or Path(target).is_dir()):
            raise CommandError(f"{target}: not a `dqnmap-auto train` output directory (no config.yaml)")
        if not numbered:
            raise CommandError(f"expected {TARGET}: the trial number after the study name {target!r}")
        command = build(verb, rest[1:], via="cli")
        from dqnmap_auto.tuning.location import load_existing

        study = load_existing(study_location(storage, directory), target)
        delivery = send_to_trial(study, int(rest[0]), command, wait=wait)
    _report(delivery, wait)


def _report(delivery: Delivery, wait: float) -> None:
    from dqnmap_auto.control.commands import CommandError

    text, target, ack = delivery.command.text(), delivery.target, delivery.ack
    if ack is None:
        if delivery.final_state is not None:
            raise CommandError(f"{target} ended ({delivery.final_state}) before it applied `{text}`")
        if wait > 0:
            click.echo(
                f"sent `{text}` to {target}; not acknowledged within {wait:g}s: it applies at the trainer's next "
                f"training phase (see `dqnmap-auto study logs`)"
            )
        else:
            click.echo(f"sent `{text}` to {target} (id {delivery.command.id})")
        return
    if ack["status"] != "applied":
        raise CommandError(f"{target} rejected `{text}`: {ack['detail']}")
    click.echo(f"{target}: applied `{text}` at step {ack['step']} ({ack['detail']})")
    if delivery.final_state is not None:
        value = f" with value {delivery.value:.2f}" if delivery.value is not None else ""
        click.echo(f"{target} ended {delivery.final_state}{value}")


@trial.command("set")
@click.argument("args", nargs=-1, metavar=f"{TARGET} NAME=VALUE...")
@_options
@user_errors
def trial_set(args: tuple[str, ...], wait: float, storage: str | None, directory: str | None) -> None:
    """Set lr, gamma, huber_delta, tau or epsilon; self-tuning goes on from the new value.

    A self-tuned value must lie within its self-tuning bounds; epsilon continues its decay from the new value.

    Example: dqnmap-auto trial set cartpole 3 lr=3e-4 gamma=0.995
    """
    _send("set", args, wait=wait, storage=storage, directory=directory)


@trial.command("freeze")
@click.argument("args", nargs=-1, metavar=f"{TARGET} NAME...")
@_options
@user_errors
def trial_freeze(args: tuple[str, ...], wait: float, storage: str | None, directory: str | None) -> None:
    """Hold self-tuned values (or epsilon) where they are; their hypergradients are still logged.

    Example: dqnmap-auto trial freeze cartpole 3 lr
    """
    _send("freeze", args, wait=wait, storage=storage, directory=directory)


@trial.command("unfreeze")
@click.argument("args", nargs=-1, metavar=f"{TARGET} NAME...")
@_options
@user_errors
def trial_unfreeze(args: tuple[str, ...], wait: float, storage: str | None, directory: str | None) -> None:
    """Let frozen values follow self-tuning (epsilon: its schedule) again.

    Example: dqnmap-auto trial unfreeze cartpole 3 lr
    """
    _send("unfreeze", args, wait=wait, storage=storage, directory=directory)


@trial.command("stop")
@click.argument("args", nargs=-1, metavar=TARGET)
@_options
@user_errors
def trial_stop(args: tuple[str, ...], wait: float, storage: str | None, directory: str | None) -> None:
    """End the trial now: final evaluation, model saved, COMPLETE with that value.

    Example: dqnmap-auto trial stop cartpole 3
    """
    _send("stop", args, wait=wait, storage=storage, directory=directory)
