"""A throwaway PostgreSQL server on loopback for the tests that need a real RDB (Debian's package).

initdb refuses to run as root, so as root the cluster is created and started as the ``postgres`` system user
(created by the Debian package). The server listens on 127.0.0.1 at a free port, with its socket in the data
directory, and is stopped (fast) when the context ends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _pg_tool(name: str) -> str | None:
    for directory in PG_BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    return shutil.which(name)


def postgres_available() -> bool:
    return _pg_tool("initdb") is not None and _pg_tool("pg_ctl") is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as_server_user(command: list[str], *, check: bool = True) -> None:
    """Run a PostgreSQL tool as the ``postgres`` user when we are root (initdb and the server refuse root)."""
    full = ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command
    subprocess.run(full, check=check, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def create_database(server: str, name: str | None = None) -> str:
    """A new empty database on ``server`` (a URL without database); returns its URL."""
    import psycopg2

    name = name or f"dqnmap_{uuid.uuid4().hex[:10]}"
    connection = psycopg2.connect(server.replace("postgresql+psycopg2", "postgresql") + "/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    connection.close()
    return f"{server}/{name}"


@contextmanager
def postgres_server(*, durable: bool = False) -> Iterator[str]:
    """Start a PostgreSQL cluster in a temporary directory; yields its URL without a database name
    (``postgresql+psycopg2://dqnmap@127.0.0.1:PORT``): make databases with ``create_database``.

    Tests run with ``fsync=off`` (nothing to keep); ``durable`` keeps PostgreSQL's default (for benchmarks).
    """
    initdb, pg_ctl = _pg_tool("initdb"), _pg_tool("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="dqnmap-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    log = root / "server.log"
    _run_as_server_user([initdb, "-D", str(data), "-A", "trust", "-U", "dqnmap"])
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c max_connections=200"
    options += "" if durable else " -c fsync=off"
    _run_as_server_user([pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "start"])
    try:
        yield f"postgresql+psycopg2://dqnmap@127.0.0.1:{port}"
    finally:
        _run_as_server_user([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], check=False)
        shutil.rmtree(root, ignore_errors=True)
