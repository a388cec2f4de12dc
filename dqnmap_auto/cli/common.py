"""What every command shares: user errors as one line and exit code 2, and the study location options."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dqnmap_auto.errors import DivergenceError, DqnmapError

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


def study_location(storage: str | None, directory: str | None) -> StudyLocation:
    from dqnmap_auto.tuning.storage import project_dir
    from dqnmap_auto.tuning.study import StudyLocation

    return StudyLocation(storage=storage, directory=project_dir(directory))
