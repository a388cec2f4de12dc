"""A study whose one trial runs long enough to be steered, and waiting for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from dqnmap_auto.control.channels import ACK_PREFIX, SPACE_ATTR
from dqnmap_auto.logs import trial_log_dir
from dqnmap_auto.tuning.location import StudyLocation, load_existing
from tests.tuning.helpers import smoke_spec


def live_spec(tmp: Path, *, steps: int = 200_000, **study: Any) -> Path:
    """smoke.yaml's trial in meta mode with gamma listed among the tuned values (a user's opt-in: the default
    leaves gamma fixed), unpruned, far longer than a test waits."""
    changes: dict[str, Any] = {
        "n_trials": 1,
        "steps": steps,
        "eval_every": 1000,
        "pruner": {"name": "none"},
        "search_space": {
            "self_tuning.mode": {"type": "categorical", "choices": ["meta"]},
            "self_tuning.params": {"type": "categorical", "choices": ["lr,gamma,huber_delta"]},
        },
        "base": {"training": {"total_steps": steps}},
    }
    return smoke_spec(tmp, name="live", **{**changes, **study})


def start_study(spec: Path, location: StudyLocation, *extra: str) -> subprocess.Popen[bytes]:
    storage = ["--storage", location.storage] if location.storage else []
    command = [sys.executable, "-m", "dqnmap_auto.cli", "study", "run", str(spec), "--dir", str(location.directory)]
    return subprocess.Popen(
        [*command, "--no-progress", *storage, *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_until_steerable(
    location: StudyLocation, proc: subprocess.Popen[bytes], *, number: int = 0, timeout: float = 240
) -> optuna.trial.FrozenTrial:
    """Trial ``number`` once it runs and its trainer published its space (it takes commands from then on)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "the study run ended"
        try:
            trials = load_existing(location, "live").get_trials()
        except Exception:  # not created yet
            trials = []
        if len(trials) > number and SPACE_ATTR in trials[number].user_attrs:
            return trials[number]
        time.sleep(0.3)
    raise AssertionError("the trial did not start in time")


def records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines written so far (a line being written is skipped)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def wait_for(predicate: Any, *, timeout: float = 120, what: str = "a condition") -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _page_once_it_shows(page: Any, texts: tuple[str, ...], *, timeout: float) -> str:
    """The page's text once it holds every one of ``texts``, reloading meanwhile. optuna-dashboard reads notes
    fresh but serves a study's trials from a cache up to 2 s old, so a page loaded just after the trainer's
    acknowledgement can show the new note beside the trial's attributes from before it."""
    deadline = time.time() + timeout
    while True:
        page.reload(wait_until="networkidle")
        body: str = page.inner_text("body")
        if all(text in body for text in texts) or time.time() > deadline:
            return body
        time.sleep(1.0)


def steer_from_browser(browser: Any, url: str, tmp: Path) -> None:
    """Run study `live` in ``tmp``/project (its journal is the dashboard's) and steer its trial from the browser:
    a valid `set`, then one out of bounds; check both acknowledgements, the note, the metrics; screenshot."""
    location = StudyLocation(None, tmp / "project")
    proc = start_study(live_spec(tmp), location, "--no-tracking")
    try:
        trial = wait_until_steerable(location, proc)
        study_id = load_existing(location, "live")._study_id
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        for text, n_acks in (("set lr=4e-4 gamma=0.97", 1), ("set lr=5", 2)):  # a reload gives a fresh form
            page.goto(f"{url}/studies/{study_id}/trials", wait_until="networkidle")
            page.get_by_text("Set User Attributes Form").first.wait_for(timeout=60_000)
            page.get_by_role("textbox").first.fill(text)
            page.get_by_role("button", name="Submit").click()
            wait_for(lambda n=n_acks: len(_acks(location, trial.number)) == n, timeout=60, what=f"`{text}` answered")
        body = _page_once_it_shows(page, ("Live control", "[received] set lr=5"), timeout=60)
        page.screenshot(path=str(tmp / "optuna-live-console.png"), full_page=True)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    applied, rejected = sorted(_acks(location, trial.number).values(), key=lambda a: a["step"])
    assert applied["status"] == "applied" and applied["command"] == "set lr=0.0004 gamma=0.97"
    assert rejected["status"] == "rejected" and "lr=5 is outside its self-tuning bounds" in rejected["detail"]
    assert "Live control" in body and "lr=5 is outside its self-tuning bounds" in body  # the note
    assert "[received] set lr=5" in body  # the console attribute, ready for the next submission
    rows = [r for r in records(trial_log_dir(location.directory, "live", 0) / "metrics.jsonl") if "control/id" in r]
    assert rows[0]["control/via"] == "dashboard" and rows[0]["hp/lr"] == pytest.approx(4e-4, rel=1e-6)
    assert (tmp / "optuna-live-console.png").stat().st_size > 10_000


def _acks(location: StudyLocation, number: int) -> dict[str, Any]:
    attrs = load_existing(location, "live").get_trials()[number].user_attrs
    return {k[len(ACK_PREFIX) :]: v for k, v in attrs.items() if k.startswith(ACK_PREFIX)}
