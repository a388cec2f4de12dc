"""Where MLflow data goes, and whether a tracking server answers: without importing MLflow.

Kept apart from ``mlflow_tracker`` so that commands that only need the URI (``dashboard``, ``study delete``, the
checks that run before a study writes anything) start without MLflow's and torch's import time.
"""

from __future__ import annotations

from pathlib import Path

from dqnmap_auto.errors import ConfigError
from dqnmap_auto.tuning.storage import mask_password

MLFLOW_DB = "mlflow.db"


def default_tracking_uri(directory: Path) -> str:
    """The embedded store: SQLite inside the project directory."""
    return f"sqlite:///{(directory / MLFLOW_DB).resolve()}"


def is_http(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def check_reachable(tracking_uri: str, *, timeout: float = 5.0) -> None:
    """Fail fast on an http(s) tracking server that does not answer (MLflow's client retries for minutes)."""
    if not is_http(tracking_uri):
        return
    import urllib.error
    import urllib.request

    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # it answered
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ConfigError(f"--tracking-uri {mask_password(tracking_uri)}: unreachable ({reason})") from None
