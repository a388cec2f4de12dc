"""Where studies live: the project directory and the Optuna storage.

The embedded default keeps everything for a project in one directory (``./dqnmap-runs/``, or ``--dir`` /
``DQNMAP_DIR``): the Optuna journal, the MLflow store and the artifacts, so nothing needs a server. The
journal file is Optuna's recommended store for several processes on one machine (SQLite answers
"database is locked" under concurrent writers); any RDB URL (sqlite, postgresql, mysql) or journal path can
be given instead.

RDB storages get Optuna's own heartbeats (``heartbeat_interval``/``grace_period``) when a study runs, so a dead
worker's trial is failed by Optuna itself and retried through the stale-trial handler of ``recovery``.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from dqnmap_auto.errors import ConfigError

DIR_ENV = "DQNMAP_DIR"
DEFAULT_DIR = "dqnmap-runs"
JOURNAL_NAME = "optuna.journal"
RDB_SCHEMES = ("sqlite", "postgresql", "mysql")


@dataclass(frozen=True)
class HeartbeatPolicy:
    """Optuna heartbeats for an RDB storage: beat every ``interval`` s, stale after ``grace`` s.

    ``on_stale`` is Optuna's ``heartbeat_stale_trial_callback``: called with each trial Optuna failed as stale.
    """

    interval: float
    grace: float
    on_stale: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None


def project_dir(directory: str | Path | None = None) -> Path:
    """``directory``, else $DQNMAP_DIR, else ./dqnmap-runs (not created here)."""
    return Path(directory or os.environ.get(DIR_ENV) or DEFAULT_DIR)


def mask_password(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def default_storage_path(directory: Path) -> Path:
    return directory / JOURNAL_NAME


def describe_storage(url: str | None, directory: Path) -> str:
    """A printable (password-masked) name for the storage."""
    return mask_password(url) if url else str(default_storage_path(directory))


def open_storage(
    url: str | None, directory: Path, *, create: bool = True, heartbeat: HeartbeatPolicy | None = None
) -> optuna.storages.BaseStorage:
    """The Optuna storage for ``url`` (None: the project's journal file).

    Args:
        url: an RDB URL (``scheme://...``) or a journal file path.
        directory: the project directory (used when ``url`` is None).
        create: whether a missing journal file / project directory may be created.
        heartbeat: Optuna heartbeats for RDB storages (journal files have none; ``recovery`` covers them).
    """
    if url is None or "://" not in url:
        path = default_storage_path(directory) if url is None else Path(url)
        if not path.exists() and not create:
            raise ConfigError(f"no studies yet: {path} does not exist (run `dqnmap-auto study run` first)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as error:
            raise ConfigError(f"--storage {path}: cannot open journal file ({error.strerror or error})") from None
    scheme = url.split("://", 1)[0].split("+", 1)[0]
    if scheme not in RDB_SCHEMES:
        raise ConfigError(
            f"--storage {mask_password(url)}: unsupported scheme {scheme!r}; use {RDB_SCHEMES} or a journal file path"
        )
    try:
        if heartbeat is None:
            return RDBStorage(url)
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9, stable in practice
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(  # Optuna takes whole seconds
                url,
                heartbeat_interval=max(1, round(heartbeat.interval)),
                grace_period=max(1, round(heartbeat.grace)),
                heartbeat_stale_trial_callback=heartbeat.on_stale,
            )
    except Exception as error:  # SQLAlchemy raises many types (driver missing, refused, bad path)
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        if isinstance(error, ImportError) and scheme == "postgresql":
            message += "; install the PostgreSQL drivers: pip install 'dqnmap-auto[postgres]'"
        raise ConfigError(f"--storage {mask_password(url)}: cannot open ({mask_password(message)})") from None
