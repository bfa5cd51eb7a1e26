"""`rony serve`'s answers to a newcomer's mistakes: a usage line or one sentence naming what
to change, never a traceback or a bare errno; its address printed once."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import pytest

from rony.server import load_settings
from rony.server.cli import main

from .conftest import ROOT
from .test_cli import _start, _wait_url


def _serve(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["serve", *args, "--log-level", "WARNING"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize("gateway", ["localhost", "127.0.0.1", "host:port", ""])
def test_gateway_without_a_port_is_a_usage_error(
    gateway: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "examples.echo.app:app", "--gateway", gateway])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --gateway: {gateway!r} is not HOST:PORT (e.g. 127.0.0.1:8080" in err
    assert "Traceback" not in err


def test_data_dir_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "data"
    afile.write_text("not a folder")
    code, err = _serve(capsys, "examples.echo.app:app", "--data-dir", str(afile))
    assert code == 2
    assert f"rony serve: data dir {str(afile)!r} is a file; the store needs a folder" in err
    assert "Errno" not in err


def test_data_dir_below_a_file_names_the_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "afile").write_text("x")
    data = tmp_path / "afile" / "data"
    code, err = _serve(capsys, "examples.echo.app:app", "--data-dir", str(data))
    assert code == 1
    assert f"rony serve: data dir {str(data)!r}: Not a directory" in err


@pytest.mark.parametrize(
    ("target", "hint"),
    [
        ("examples/echo/app.py", "`rony serve examples.echo.app:app` from the folder above it"),
        ("examples/echo/app.py:app", "`rony serve examples.echo.app:app`"),
        ("app.py", "`rony serve app:app`"),
        ("examples/echo/app", "`rony serve examples.echo.app:app`"),
    ],
)
def test_a_file_path_target_hints_module_attr(
    target: str, hint: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    code, err = _serve(capsys, target)
    assert code == 2
    assert f"rony serve: {target!r} is a file path; rony serve takes MODULE:ATTR" in err
    assert hint in err


def test_a_missing_module_says_where_it_was_looked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, err = _serve(capsys, "no_such_svc.app:app")
    assert code == 2
    assert f"no module named 'no_such_svc' importable from {tmp_path}" in err
    assert "MODULE:ATTR" in err
    # A module that exists but imports a missing one: that missing import is what is said.
    (tmp_path / "svc_with_bad_import.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, err = _serve(capsys, "svc_with_bad_import:app")
    assert code == 2
    assert "No module named 'no_such_dependency_xyz'" in err


@pytest.mark.parametrize(
    ("var", "suggestion"),
    [
        ("RONY_MAX_MESAGE_SIZE", "RONY_MAX_MESSAGE_SIZE"),
        ("RONY_DATADIR", "RONY_DATA_DIR"),
        ("RONY_GATEWAY_PROT", "RONY_GATEWAY_PORT"),
        ("RONY_GATEWAYS", "RONY_GATEWAY"),
    ],
)
def test_a_misspelt_env_variable_is_an_error(var: str, suggestion: str) -> None:
    with pytest.raises(ValueError, match=f"{var} is not a setting; did you mean {suggestion}\\?"):
        load_settings(environ={var: "1"})


def test_env_names_come_from_the_settings_fields(caplog: pytest.LogCaptureFixture) -> None:
    import dataclasses

    from rony.server import EdgeSettings
    from rony.server._settings import _check_env_names

    # Every field is known under its RONY_ name (a field added later too), and so is X for an
    # X_host / X_port pair: nothing raised, nothing logged.
    names = [f"RONY_{f.name.upper()}" for f in dataclasses.fields(EdgeSettings)]
    with caplog.at_level(logging.WARNING, logger="rony.server"):
        _check_env_names(dict.fromkeys([*names, "RONY_GATEWAY", "PATH"], "x"))
    assert caplog.text == ""
    # A RONY_ variable that is no near miss of a setting (a tool's own) is logged, not fatal.
    with caplog.at_level(logging.WARNING, logger="rony.server"):
        assert load_settings(environ={"RONY_UNRELATED": "x"}).replica_set == 0
    assert "RONY_UNRELATED is not a rony setting; ignored" in caplog.text


def test_rony_serve_exits_2_on_a_misspelt_env_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RONY_REPLICA_SETS", "2")
    code, err = _serve(capsys, "examples.echo.app:app")
    assert code == 2
    assert "RONY_REPLICA_SETS is not a setting; did you mean RONY_REPLICA_SET?" in err


@pytest.mark.slow
def test_rony_serve_says_listening_on_once(tmp_path: Path) -> None:
    args = ["serve", "examples.echo.app:app", "--gateway", "127.0.0.1:0"]
    proc = _start([*args, "--data-dir", str(tmp_path / "d")], cwd=ROOT)
    try:
        url = _wait_url(proc)  # the first stdout line
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert url.startswith("http://127.0.0.1:")
    assert (out + err).count("listening on") == 0  # the one was the line _wait_url read
    assert "(replica set 0, app 'echo') started" in err  # the log keeps the node's identity
    assert "stopped" in err


def test_rony_version(capsys: pytest.CaptureFixture[str]) -> None:
    from rony.server import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"rony {__version__}\n"
