"""A plain ``postgresql://`` storage URL (SQLAlchemy 2.1 maps it to psycopg 3, which the ``postgres`` extra ships)
runs a study on the real PostgreSQL the tests start, as ``postgresql+psycopg2://`` does."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy
from click.testing import CliRunner

from dqnmap_auto.cli import main
from tests.tuning.helpers import smoke_spec


def test_plain_postgresql_url_runs_a_study(tmp_path: Path, postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg2://", "postgresql://")
    assert plain.startswith("postgresql://")
    assert sqlalchemy.engine.make_url(plain).get_dialect().driver == "psycopg"  # not psycopg2: the default moved
    spec = smoke_spec(tmp_path, n_trials=1, steps=500, eval_every=500, base={"training": {"total_steps": 500}})
    where = ["--storage", plain, "--dir", str(tmp_path / "p")]
    result = CliRunner().invoke(main, ["study", "run", str(spec), *where, "--no-tracking", "--no-progress"])
    assert result.exit_code == 0, result.output
    listed = CliRunner().invoke(main, ["study", "list", *where])
    assert listed.exit_code == 0 and "smoke" in listed.output and "     1 " in listed.output, listed.output
