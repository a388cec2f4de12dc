"""``dqnmap-auto dashboard``: optuna-dashboard and the MLflow UI as child processes, watched together.

Both bind to 127.0.0.1 unless ``--host`` says otherwise. The command says at once what it starts, prints each URL
as soon as that server answers HTTP, and stops both on Ctrl-C or as soon as either dies.

The MLflow UI's start dominates (about a minute on a loaded 2-core machine with MLflow's defaults). It is started
with one web worker, without MLflow's job runner (a queue of 10 consumer threads for GenAI jobs, which browsing
runs does not use) and without MLflow's usage telemetry, whose upload waits for a network timeout on a machine
offline: together about half the wait. The user's own settings of those two variables win.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dqnmap_auto.errors import ConfigError
from dqnmap_auto.tracking.uris import default_tracking_uri
from dqnmap_auto.tuning.storage import default_storage_path, mask_password

LOOPBACK = "127.0.0.1"
ARTIFACT_DIR_NAME = "artifacts"  # as ``tracking.dashboard_notes.ARTIFACT_DIR_NAME`` (not imported: Optuna's artifacts)
#: Environment of the MLflow UI process (see the module docstring); a value the user set is kept.
MLFLOW_UI_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def mlflow_ui_env() -> dict[str, str]:
    return {**MLFLOW_UI_ENV, **os.environ}


def check_port_free(host: str, port: int, option: str) -> None:
    """ConfigError naming the option when ``port`` is out of range or taken on ``host``."""
    if not 0 < port < 65536:
        raise ConfigError(f"{option} {port}: not a valid port")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            raise ConfigError(f"{option} {port}: already in use on {host}") from None


def wait_for_http(url: str, process: subprocess.Popen[bytes], *, timeout: float) -> None:
    """Poll ``url`` until it answers (any HTTP status) or ``process`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with code {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise RuntimeError(f"{url}: no answer within {timeout:.0f}s")


@dataclass
class Dashboards:
    """The two running servers and their URLs."""

    optuna: subprocess.Popen[bytes]
    mlflow: subprocess.Popen[bytes]
    optuna_url: str
    mlflow_url: str

    def stop(self) -> None:
        for process in (self.optuna, self.mlflow):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (self.optuna, self.mlflow):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    def wait(self) -> str:
        """Block until one of them exits; returns which."""
        while True:
            for name, process in (("optuna-dashboard", self.optuna), ("mlflow ui", self.mlflow)):
                if process.poll() is not None:
                    return name
            time.sleep(0.5)


def start_dashboards(
    *,
    directory: Path,
    storage: str | None,
    tracking_uri: str | None,
    host: str,
    optuna_port: int,
    mlflow_port: int,
    startup_timeout: float = 180.0,
    announce: Callable[[str], None] | None = None,
) -> Dashboards:
    """Start both servers (checks ports first) and return once both answer HTTP; ``announce`` gets a line when
    they start and one with each URL as soon as that server answers."""
    say = announce or (lambda line: None)
    check_port_free(host, optuna_port, "--optuna-port")
    check_port_free(host, mlflow_port, "--mlflow-port")
    if optuna_port == mlflow_port:
        raise ConfigError(f"--optuna-port and --mlflow-port are both {optuna_port}")
    storage_arg = storage or str(default_storage_path(directory))
    if storage is None and not Path(storage_arg).exists():
        raise ConfigError(f"no studies yet: {storage_arg} does not exist (run `dqnmap-auto study run` first)")
    tracking = tracking_uri or default_tracking_uri(directory)
    artifacts = directory / ARTIFACT_DIR_NAME
    artifacts.mkdir(parents=True, exist_ok=True)
    optuna_cmd = [
        sys.executable,
        "-c",
        "from optuna_dashboard._cli import main; main()",
        storage_arg,
        "--host",
        host,
        "--port",
        str(optuna_port),
        "--artifact-dir",
        str(artifacts),
    ]
    mlflow_cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        tracking,
        "--host",
        host,
        "--port",
        str(mlflow_port),
        "--workers",
        "1",
    ]
    say(
        f"starting optuna-dashboard (port {optuna_port}) and the MLflow UI (port {mlflow_port}); each URL follows "
        "when its server answers (the MLflow UI takes longest, up to a minute)"
    )
    # Own sessions: a terminal's Ctrl-C reaches this process only, which then stops both in order.
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
    optuna = subprocess.Popen(optuna_cmd, **quiet)  # type: ignore[call-overload]
    mlflow = subprocess.Popen(mlflow_cmd, env=mlflow_ui_env(), **quiet)  # type: ignore[call-overload]
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    dashboards = Dashboards(
        optuna, mlflow, f"http://{shown_host}:{optuna_port}/dashboard", f"http://{shown_host}:{mlflow_port}/"
    )
    try:
        wait_for_http(dashboards.optuna_url, optuna, timeout=startup_timeout)
        say(f"optuna-dashboard: {dashboards.optuna_url}")
        wait_for_http(dashboards.mlflow_url, mlflow, timeout=startup_timeout)
        say(f"MLflow UI:        {dashboards.mlflow_url}")
    except RuntimeError as error:
        dashboards.stop()
        raise ConfigError(f"dashboard: {mask_password(str(error))}") from None
    return dashboards
