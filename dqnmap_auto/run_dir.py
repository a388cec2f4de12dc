"""What ``dqnmap-auto train`` writes: model.pt, metrics.jsonl, train.log, eval.json and the resolved config.yaml (and
the live-control files, see ``dqnmap_auto.control.channels``)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dqnmap_auto.config import TrainConfig, dump_config
from dqnmap_auto.errors import ConfigError
from dqnmap_auto.evaluation import EvalResult

RUN_FILES = (
    "model.pt",
    "metrics.jsonl",
    "eval.json",
    "config.yaml",
    "train.log",
    "control.jsonl",
    "control-acks.jsonl",
)


def prepare_run_dir(out: str | Path, *, overwrite: bool) -> Path:
    """Create ``out``; refuse to mix a new run into one that is already there unless ``overwrite``."""
    out = Path(out)
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise ConfigError(
            f"--out {out}: already holds a run ({', '.join(existing)}); choose another directory or pass --overwrite"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"--out {out}: not writable ({error.strerror or error})") from None
    for name in existing:
        (out / name).unlink()
    return out


def write_config(out: Path, config: TrainConfig) -> None:
    (out / "config.yaml").write_text(dump_config(config), encoding="utf-8")


def write_results(
    out: Path, model_state: dict[str, torch.Tensor], final_eval: EvalResult, *, solved_at: int | None = None
) -> None:
    """``eval.json`` carries ``solved_at`` when ``training.stop_at_return`` ended the run: the final evaluation
    then scores the policy of that step, not of ``total_steps``."""
    torch.save(model_state, out / "model.pt")
    summary = final_eval.to_dict() | ({"solved_at": solved_at} if solved_at is not None else {})
    (out / "eval.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def load_model_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a saved state_dict safely (``weights_only=True``: no pickled code runs)."""
    return torch.load(path, map_location="cpu", weights_only=True)
