"""Bad pixel settings on the command line: one line on stderr, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from dqnmap_auto.cli import main

STUDIES = Path(__file__).resolve().parents[2] / "studies"


@pytest.mark.parametrize(
    ("spec", "args", "message"),
    [
        ("cartpole.yaml", ["--set", "agent.network=nature_cnn"], "needs image observations"),
        ("cartpole.yaml", ["--set", "agent.network=alexnet"], "agent.network: Input should be"),
        (
            "minatar-breakout.yaml",
            ["--set", "agent.network=nature_cnn"],
            "(nature_cnn layout): conv layer 2 (kernel 4, stride 2) does not fit",
        ),
        ("minatar-breakout.yaml", ["--set", "agent.cnn.channels=16,32"], "one entry per conv layer"),
        (
            "minatar-breakout.yaml",
            ["--set", "agent.cnn.channels=[16, 32]", "--set", "agent.cnn.strides=[1]"],
            "agent.cnn: channels, kernels and strides need one entry per conv layer",
        ),
        ("minatar-breakout.yaml", ["--set", "env.id=MinAtar/Pacman-v1"], "unknown gymnasium environment"),
        ("atari-pong.yaml", ["--set", "env.atari.frame_skip=0"], "env.atari.frame_skip"),
    ],
)
def test_bad_pixel_settings_are_one_line_exit_2(tmp_path: Path, spec: str, args: list[str], message: str) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(STUDIES / spec), "--out", str(out), *args, "--no-progress"])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()
