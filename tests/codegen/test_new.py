"""``rony new``: a fresh project passes `rony gen`, its own pytest, and `rony serve`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rony.server import cli
from rony.server.codegen import ProjectExistsError, new_project
from rony.server.codegen._skeleton import project_names
from tests.codegen._util import run


def test_new_project_files(tmp_path: Path) -> None:
    root = new_project("hello-app", tmp_path)
    assert root == tmp_path / "hello-app"
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert files == [
        ".gitignore",
        "README.md",
        "hello_app/__init__.py",
        "hello_app/service.proto",
        "hello_app/service.py",
        "pyproject.toml",
        "tests/__init__.py",
        "tests/test_service.py",
    ]
    assert "service HelloApp {" in (root / "hello_app" / "service.proto").read_text()
    assert '"rony-server>=0.1.0"' in (root / "pyproject.toml").read_text()


@pytest.mark.parametrize(
    ("name", "expected"),
    [("hello", ("hello", "Hello")), ("my-app", ("my_app", "MyApp")), ("Shop2", ("shop2", "Shop2"))],
)
def test_project_names(name: str, expected: tuple[str, str]) -> None:
    assert project_names(name) == expected


@pytest.mark.parametrize(
    "name",
    # http, json, email, abc: standard modules already imported (the skeleton would import the
    # stdlib module, not the project); echo-request: a service named like its own message.
    [
        *("", "1abc", "has space", "class", "rony", "tests", "a/b"),
        *("http", "json", "email", "abc", "pytest", "echo-request", "Echo_Response"),
    ],
)
def test_unusable_names_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="project name"):
        new_project(name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_is_not_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "hello").mkdir()
    (tmp_path / "hello" / "mine.txt").write_text("keep")
    with pytest.raises(ProjectExistsError):
        new_project("hello", tmp_path)
    assert cli.main(["new", "hello", "--dir", str(tmp_path)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "hello").iterdir()] == ["mine.txt"]


def _wait_for_url(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("listening on "):
            return line.split()[-1]
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"rony serve did not start (exit code {proc.poll()})")


@pytest.mark.slow
def test_new_project_generates_tests_and_serves(tmp_path: Path) -> None:
    rony = [sys.executable, "-m", "rony.server.cli"]
    res = run([*rony, "new", "hello-app", "--dir", tmp_path])
    assert res.returncode == 0, res.stderr
    root = tmp_path / "hello-app"

    res = run([*rony, "gen"], cwd=root)
    assert res.returncode == 0, res.stderr
    assert (root / "hello_app" / "service_rony.py").is_file()

    # The project's own test suite, with its own pytest settings (not this repository's).
    res = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=root,
        timeout=90,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 passed" in res.stdout

    proc = subprocess.Popen(
        [*rony, "serve", "hello_app.service:app", "--gateway", "127.0.0.1:0",
         "--data-dir", str(tmp_path / "data")],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        url = _wait_for_url(proc, time.monotonic() + 30)
        with urllib.request.urlopen(f"{url}/echo/7?text=hello", timeout=10) as r:
            assert json.loads(r.read()) == {"id": "7", "text": "hello"}
    finally:
        if proc.poll() is None:
            proc.terminate()  # SIGTERM: a graceful stop
        assert proc.wait(timeout=30) == 0
        if proc.stdout is not None:
            proc.stdout.close()
