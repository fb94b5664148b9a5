"""Every script in benchmarks/ runs, small (`--smoke`), so that none can rot unnoticed.

No figure is asserted (they mean nothing at these sizes): the script must finish with status 0
and print its Markdown table(s). A new script is picked up by the glob.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from postgres_db import require_postgres

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if p.name != "benchlib.py")
NEEDS_POSTGRES = {"stores.py"}


def test_every_script_is_listed():
    assert len(SCRIPTS) >= 8, [p.name for p in SCRIPTS]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_benchmark_runs_in_smoke_mode(script: Path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if script.name in NEEDS_POSTGRES:
        env["BYOI_TEST_POSTGRES_DSN"] = require_postgres()
    done = subprocess.run(
        [sys.executable, str(script), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "|---" in done.stdout, done.stdout[-2000:]
