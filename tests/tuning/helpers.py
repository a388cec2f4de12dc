"""Write small study specs derived from studies/smoke.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SMOKE = Path(__file__).resolve().parents[2] / "studies" / "smoke.yaml"


def smoke_spec(tmp_path: Path, name: str = "smoke", **study_changes: Any) -> Path:
    """smoke.yaml with ``study`` fields replaced (``base`` key: dict merged into the base config)."""
    data = yaml.safe_load(SMOKE.read_text())
    for section, values in study_changes.pop("base", {}).items():
        data.setdefault(section, {}).update(values)
    data["study"].update(study_changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
