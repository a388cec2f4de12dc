"""A throwaway ``mlflow server`` on loopback (backend store: any SQLAlchemy URL; artifacts proxied by the server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers.postgres import free_port


@contextmanager
def mlflow_server(backend_store_uri: str, artifacts: Path | None = None, *, timeout: float = 120) -> Iterator[str]:
    """Start ``mlflow server --serve-artifacts`` on 127.0.0.1; yields its http URL once /health answers."""
    port = free_port()
    artifacts = artifacts or Path(tempfile.mkdtemp(prefix="dqnmap-mlflow-artifacts-"))
    log = open(artifacts.parent / f"mlflow-server-{port}.log", "wb")  # noqa: SIM115 (closed below)
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", backend_store_uri, "--serve-artifacts"]
    command += ["--artifacts-destination", str(artifacts), "--workers", "2"]
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ}, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {process.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"mlflow server did not answer within {timeout:.0f}s; see {log.name}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server and its uvicorn workers
        try:
            process.wait(timeout=5)  # nothing to flush: the backend store is a database
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
