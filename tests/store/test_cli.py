"""The operator CLI, run as a real subprocess on a real store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rony.store import Store
from rony.store.__main__ import main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rony.store", *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def path(tmp_path: Path) -> str:
    p = str(tmp_path / "s")
    with Store.open(p) as s:
        s.set(b"user:1", b"alice")
        s.set(b"user:2", b"b" * 200, ttl=3600)
        s.set(b"\xff\x01", b"\x00bin")
    return p


@pytest.mark.slow
def test_cli_subprocess_while_writer_is_open(path: str) -> None:
    with Store.open(path) as s:  # the CLI opens read-only beside a running writer
        s.set(b"live", b"1")
        out = run(path, "stats")
        assert out.returncode == 0, out.stderr
        assert "entries: 4" in out.stdout
        assert "with_ttl: 1" in out.stdout
        out = run(path, "get", "live")
        assert (out.returncode, out.stdout.strip()) == (0, "b'1'")


def test_cli_commands(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([path, "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["entries"], stats["live"], stats["with_ttl"]) == (3, 3, 1)
    assert main([path, "get", "user:1"]) == 0
    assert capsys.readouterr().out.strip() == "b'alice'"
    assert main([path, "get", "nope"]) == 1
    assert main([path, "--hex", "get", "ff01"]) == 0
    assert capsys.readouterr().out.strip() == "0062696e"
    assert main([path, "ttl", "user:1"]) == 0
    assert capsys.readouterr().out.startswith("-1\tnever")
    assert main([path, "ttl", "user:2"]) == 0
    assert float(capsys.readouterr().out.split()[0]) > 3500
    assert main([path, "ttl", "nope"]) == 1
    assert capsys.readouterr().out.startswith("-2")
    assert main([path, "scan", "--prefix", "user:", "--reverse"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["b'user:2'", "b'user:1'"]
    assert "200 B" in lines[0]
    assert lines[0].endswith("…")
    assert main([path, "scan", "--limit", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "missing"), "stats"]) == 2
    assert "NotAStoreError" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()  # the CLI never creates a store
    (tmp_path / "file").write_text("x")
    assert main([str(tmp_path / "file"), "stats"]) == 2
    with pytest.raises(SystemExit):
        main([str(tmp_path), "frobnicate"])


def test_cli_bad_hex_key_is_a_usage_error(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([path, "--hex", "get", "zz"])
    assert exited.value.code == 2  # not 1, which means "key not found"
    assert "not hex" in capsys.readouterr().err
