"""The style rules of pyproject.toml ([tool.ruff]: pycodestyle, pyflakes, isort, bugbear,
pyupgrade and numpy docstrings) hold over the library code."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_passes_on_engine_and_webmap():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise",
                             "engine", "webmap", "kantong"], cwd=ROOT, capture_output=True,
                             text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
