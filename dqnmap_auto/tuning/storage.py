"""Where studies live: the project directory and the Optuna storage.

The embedded default keeps everything for a project in one directory (``./dqnmap-runs/``, or ``--dir`` /
``DQNMAP_DIR``): the Optuna journal, the MLflow store and the artifacts, so nothing needs a server. The
journal file is Optuna's recommended store for several processes on one machine (SQLite answers
"database is locked" under concurrent writers); any RDB URL (sqlite, postgresql, mysql) or journal path can
be given instead.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from dqnmap_auto.errors import ConfigError

DIR_ENV = "DQNMAP_DIR"
DEFAULT_DIR = "dqnmap-runs"
JOURNAL_NAME = "optuna.journal"
RDB_SCHEMES = ("sqlite", "postgresql", "mysql")


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


def open_storage(url: str | None, directory: Path, *, create: bool = True) -> optuna.storages.BaseStorage:
    """The Optuna storage for ``url`` (None: the project's journal file).

    Args:
        url: an RDB URL (``scheme://...``) or a journal file path.
        directory: the project directory (used when ``url`` is None).
        create: whether a missing journal file / project directory may be created.
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
        return RDBStorage(url)
    except Exception as error:  # SQLAlchemy raises many types (driver missing, refused, bad path)
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"--storage {mask_password(url)}: cannot open ({mask_password(message)})") from None
