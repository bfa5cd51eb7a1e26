"""The README's install path for a user's own project, in a fresh virtual environment: Rony's
distributions installed from this repository with pip, then a `rony new` project installed as
its README says, generated, tested and type-checked (mypy --strict) green.

Slow (a minute or two: pip builds four wheels and installs their dependencies from the package
index pip is set up with); everything happens in the test's own tmp_path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rony.server import __version__

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = ("rony-core", "rony-store", "rony-server", "rony-client")
# Each step's bound; the test's own is their sum, well under what CI allows.
PIP_TIMEOUT = 150
STEP_TIMEOUT = 60


def _env() -> dict[str, str]:
    """This process's environment without what points into the test runner's environment."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP"):
        env.pop(name, None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(args: list[str | Path], cwd: Path, timeout: float = STEP_TIMEOUT) -> str:
    res = subprocess.run(
        [os.fspath(a) for a in args], cwd=cwd, env=_env(), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    assert res.returncode == 0, f"{args}: exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res.stdout


@pytest.mark.slow
@pytest.mark.timeout(PIP_TIMEOUT * 2 + STEP_TIMEOUT * 5)
def test_install_from_the_repository_then_a_new_project(tmp_path: Path) -> None:
    # Copies of the distributions: pip builds them in place, away from concurrent edits.
    src = tmp_path / "src"
    for name in DISTRIBUTIONS:
        shutil.copytree(
            ROOT / "packages" / name,
            src / name,
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist"),
        )
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    py, rony = venv / "bin" / "python", venv / "bin" / "rony"
    # The README's command, run from a clone's root.
    packages = [f"./packages/{name}" for name in DISTRIBUTIONS]
    (tmp_path / "packages").symlink_to(src)
    _run([py, "-m", "pip", "install", "--quiet", *packages], cwd=tmp_path, timeout=PIP_TIMEOUT)
    assert _run([rony, "--version"], cwd=tmp_path) == f"rony {__version__}\n"

    # A new project, as `rony new` says and its README says.
    out = _run([rony, "new", "shop"], cwd=tmp_path)
    assert 'python -m pip install -e ".[test]"' in out
    assert "python -m pytest" in out
    project = tmp_path / "shop"
    assert 'python -m pip install -e ".[test]"' in (project / "README.md").read_text()
    _run([py, "-m", "pip", "install", "--quiet", "-e", ".[test]"], cwd=project, timeout=PIP_TIMEOUT)
    _run([rony, "gen"], cwd=project)
    tested = _run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project)
    assert "3 passed" in tested
    typed = _run([py, "-m", "mypy", "."], cwd=project)  # --strict, from its pyproject.toml
    assert "Success: no issues found" in typed
