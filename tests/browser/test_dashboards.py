"""Both dashboards in a real browser (Debian's chromium driven by Playwright) on a tiny finished study.

Marked ``browser``: `.ci/run` installs chromium and runs them; locally, `pytest -m browser`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dqnmap_auto.cli import main
from tests.tuning.helpers import smoke_spec

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def dashboards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    tmp = tmp_path_factory.mktemp("dash")
    directory = tmp / "project"
    spec = smoke_spec(tmp, n_trials=2, pruner={"name": "none"})
    result = CliRunner().invoke(main, ["study", "run", str(spec), "--dir", str(directory), "--no-progress"])
    assert result.exit_code == 0, result.output
    optuna_port, mlflow_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dqnmap_auto.cli",
            "dashboard",
            "--dir",
            str(directory),
            "--optuna-port",
            str(optuna_port),
            "--mlflow-port",
            str(mlflow_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines = []
    deadline = time.time() + 150
    while time.time() < deadline:
        line = proc.stdout.readline() if proc.stdout else ""
        lines.append(line)
        if "Ctrl-C stops both" in line or (not line and proc.poll() is not None):
            break
    assert proc.poll() is None, "".join(lines)
    yield {"optuna": f"http://127.0.0.1:{optuna_port}", "mlflow": f"http://127.0.0.1:{mlflow_port}", "shots": str(tmp)}
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    for port in (optuna_port, mlflow_port):  # both servers are gone with the command
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def test_optuna_dashboard_shows_study_trial_chart_and_artifact(dashboards: dict[str, str], browser: object) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page.goto(dashboards["optuna"] + "/dashboard", wait_until="networkidle")
    page.get_by_text("smoke").first.wait_for(timeout=30_000)
    page.screenshot(path=f"{dashboards['shots']}/optuna-studies.png")
    page.goto(dashboards["optuna"] + "/dashboard/studies/0", wait_until="networkidle")
    page.get_by_text("Intermediate Values", exact=False).first.wait_for(timeout=30_000)
    page.screenshot(path=f"{dashboards['shots']}/optuna-study.png", full_page=True)
    page.goto(dashboards["optuna"] + "/dashboard/studies/0/trials", wait_until="networkidle")
    page.get_by_text("Trial 0", exact=False).first.wait_for(timeout=30_000)
    page.get_by_text("learning_curve.png").first.wait_for(timeout=30_000)  # the uploaded plot artifact
    body = page.inner_text("body")
    page.screenshot(path=f"{dashboards['shots']}/optuna-trials.png", full_page=True)
    assert "Final eval return" in body  # the trial's markdown note
    assert "MLflow run" in body


def test_mlflow_ui_shows_experiment_runs_and_hp_lr_chart(dashboards: dict[str, str], browser: object) -> None:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{Path(dashboards['shots']) / 'project' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("smoke")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if r.data.tags.get("dqnmap.role") == "trial"]
    assert len(children) == 2
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    base = f"{dashboards['mlflow']}/#/experiments/{experiment.experiment_id}"
    page.goto(f"{base}/runs", wait_until="domcontentloaded")
    page.get_by_text("study-").first.wait_for(timeout=60_000)  # the parent run of the `study run`
    assert "smoke" in page.inner_text("body")
    page.locator("[role=row] button").nth(1).click()  # expand the parent: its child runs appear
    page.get_by_text("trial-0").first.wait_for(timeout=30_000)
    page.get_by_text("trial-1").first.wait_for(timeout=30_000)
    page.screenshot(path=f"{dashboards['shots']}/mlflow-runs.png", full_page=True)
    trial_zero = next(r for r in children if r.info.run_name == "trial-0")
    page.goto(f"{base}/runs/{trial_zero.info.run_id}/model-metrics", wait_until="domcontentloaded")
    page.get_by_text("hp/lr").first.wait_for(timeout=60_000)  # the chart legend of the hp/lr series
    page.wait_for_timeout(1500)
    page.screenshot(path=f"{dashboards['shots']}/mlflow-hp-lr.png", full_page=True)
    body = page.inner_text("body")
    assert "trial-0" in body and "lr" in body


def test_parameter_console_steers_a_running_trial(dashboards: dict[str, str], browser: object) -> None:
    """The optuna-dashboard form `study run` registers, on a running trial of a live study in the same project: a
    `set` is applied at the trainer's next phase and the trial's note shows it, as it shows a rejected command."""
    from tests.control.helpers import steer_from_browser

    steer_from_browser(browser, dashboards["optuna"] + "/dashboard", Path(dashboards["shots"]))
