"""`rony serve` as a real subprocess (port 0, SIGTERM -> graceful exit 0), target resolution and
settings precedence (flags > env > file > defaults)."""

from __future__ import annotations

import http.client
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import aiohttp
import pytest

from rony.core import C_Ping, Ping, Pong, decode_envelope, unwrap
from rony.server import App, Edge, EdgeSettings, load_settings
from rony.server.cli import main, resolve_target

from .conftest import ROOT, req


def _start(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rony.server.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _wait_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the node printed its address (or died)
    m = re.search(r"listening on (http://\S+)", line)
    if m is None:
        proc.kill()
        raise AssertionError(f"no address; stdout={line!r} stderr={proc.communicate()[1]!r}")
    return m.group(1)


@pytest.mark.slow
async def test_rony_serve_subprocess_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = _start(
        [
            "serve",
            "examples.echo.app:app",
            "--gateway",
            "127.0.0.1:0",
            "--data-dir",
            str(data),
            "--server-id",
            "cli-node",
        ],
        cwd=ROOT,
    )
    try:
        url = _wait_url(proc)
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=req(C_Ping, Ping(ID=5), 1)) as r:
                assert unwrap(decode_envelope(await r.read()), Pong).ID == 5
            async with http.get(url + "/echo/7/hello") as r:
                assert await r.json() == {"ReqID": "7", "RandomText": "hello"}
            async with http.get(url + "/healthz") as r:
                assert (await r.json())["server_id"] == "cli-node"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "listening on" not in err  # said once, on stdout (read by _wait_url)
    assert "stopped" in err
    assert data.is_dir()


@pytest.mark.slow
def test_rony_serve_bad_target_exits_2(tmp_path: Path) -> None:
    proc = _start(["serve", "no_such_module_xyz:app"], cwd=tmp_path)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "no_such_module_xyz" in err


def test_resolve_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "svc_mod_for_test.py").write_text(
        "from rony.server import App, Edge\n"
        "app = App('x')\n"
        "def factory():\n    return Edge(App('y'))\n"
        "class Holder:\n    inner = App('z')\n"
        "notapp = 3\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    a = resolve_target("svc_mod_for_test:app")
    assert isinstance(a, App)
    assert a.name == "x"
    assert isinstance(resolve_target("svc_mod_for_test"), App)
    f = resolve_target("svc_mod_for_test:factory")
    assert isinstance(f, Edge)
    assert f.app.name == "y"
    h = resolve_target("svc_mod_for_test:Holder.inner")
    assert isinstance(h, App)
    assert h.name == "z"
    with pytest.raises(ValueError, match="not a rony App"):
        resolve_target("svc_mod_for_test:notapp")
    with pytest.raises(ValueError, match="has no"):
        resolve_target("svc_mod_for_test:missing")


def test_resolve_target_refuses_a_class_or_a_callable_needing_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `rony serve mod:App` served an empty App(); a function needing arguments (the generated
    # register_sample) raised a TypeError traceback.
    (tmp_path / "svc_mod_for_test_args.py").write_text(
        "from rony.server import App, Edge\ndef register(app):\n    return app\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for attr in ("App", "Edge"):
        with pytest.raises(ValueError, match=f"is the class {attr}"):
            resolve_target(f"svc_mod_for_test_args:{attr}")
    with pytest.raises(ValueError, match="needs arguments"):
        resolve_target("svc_mod_for_test_args:register")


def test_settings_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "rony.toml"
    cfg.write_text(
        '[rony]\ngateway = "0.0.0.0:7000"\nreplica_set = 3\nidle_timeout = 12.5\n'
        'trusted_proxies = ["10.0.0.0/8"]\nhandler_timeout = "none"\n'
    )
    env = {"RONY_REPLICA_SET": "4", "RONY_DATA_DIR": "/env/data", "RONY_UNRELATED": "x"}
    s = load_settings(config_file=cfg, environ=env, overrides={"data_dir": "/flag/data"})
    assert (s.gateway_host, s.gateway_port) == ("0.0.0.0", 7000)  # file
    assert s.replica_set == 4  # env beats file
    assert s.data_dir == "/flag/data"  # flag beats env
    assert s.idle_timeout == 12.5
    assert s.trusted_proxies == ("10.0.0.0/8",)
    assert s.handler_timeout is None
    assert load_settings(environ={"RONY_GATEWAY": "[::1]:0"}).gateway_host == "::1"
    assert load_settings(environ={"RONY_JSON_ENABLED": "off"}).json_enabled is False
    assert load_settings(environ={}).max_message_size == EdgeSettings().max_message_size
    cfg.write_text("bogus = 1\n")
    with pytest.raises(ValueError, match="unknown setting"):
        load_settings(config_file=cfg, environ={})


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("", {"RONY_GATEWAY_PORT": "abc"}, "gateway_port: 'abc' is not a number"),
        ("", {"RONY_IDLE_TIMEOUT": "soon"}, "idle_timeout: 'soon' is not a number"),
        ("max_connections = [1]\n", {}, "max_connections: \\[1\\] is not a number"),
        ("gateway_port = true\n", {}, "gateway_port: True is not a number"),
        ("replica_set = 1.5\n", {}, "replica_set: 1.5 is not an integer"),
        ("trusted_proxies = 5\n", {}, "trusted_proxies: 5 is not a list"),
        ("server_id = [1]\n", {}, "server_id: \\[1\\] is not a string"),
    ],
)
def test_settings_bad_value_names_the_setting(
    tmp_path: Path, toml: str, env: dict[str, str], message: str
) -> None:
    # A value of the wrong kind is a ValueError naming the setting (rony serve prints it and
    # exits 2), never a bare int() message or a TypeError traceback.
    cfg = tmp_path / "rony.toml"
    cfg.write_text(toml)
    with pytest.raises(ValueError, match=message):
        load_settings(config_file=cfg, environ=env)


@pytest.mark.parametrize("grace", ["-1", "nan", "soon"])
def test_rony_serve_bad_grace_is_a_usage_error(
    grace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # type=float took -1 and nan, which reached Edge.stop(grace) once SIGTERM came.
    with pytest.raises(SystemExit) as exc:
        main(["serve", "examples.echo.app:app", "--grace", grace])
    assert exc.value.code == 2
    assert "is not a number of seconds >= 0" in capsys.readouterr().err


def test_rony_serve_bad_log_level_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    # Checked by argparse (exit 2, usage message), not a ValueError traceback from logging.
    with pytest.raises(SystemExit) as exc:
        main(["serve", "examples.echo.app:app", "--log-level", "chatty"])
    assert exc.value.code == 2
    assert "'chatty' is not a logging level" in capsys.readouterr().err


def test_cli_help_lists_serve(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "serve" in capsys.readouterr().out


def test_cli_in_process_port_taken(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        t0 = time.monotonic()
        code = main(
            [
                "serve",
                "examples.echo.app:app",
                "--gateway",
                f"127.0.0.1:{port}",
                "--data-dir",
                str(tmp_path),
                "--log-level",
                "WARNING",
            ]
        )
        assert code == 1
        assert time.monotonic() - t0 < 5


def test_cli_data_dir_that_is_no_store_exits_1_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # rony.store refuses a folder holding other files (`--data-dir .` in a project); its
    # NotAStoreError escaped `rony serve` as a traceback.
    (tmp_path / "notes.txt").write_text("not a store")
    code = main(
        [
            "serve",
            "examples.echo.app:app",
            "--data-dir",
            str(tmp_path),
            "--log-level",
            "WARNING",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "rony serve:" in err
    assert "other files" in err


_STUCK_APP = """
import asyncio
import sys

from rony.server import App

app = App("stuck")


async def stuck(ctx):
    print("handler entered", flush=True)
    await asyncio.Event().wait()  # never finishes: the graceful stop waits its whole grace


app.handle(4242, stuck)
"""


class _Lines:
    """The lines a subprocess writes to ``stream``, read by a thread; ``wait`` has a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)

    def wait(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r}; saw {self.seen!r}") from None
            self.seen.append(line)
            if m := re.search(pattern, line):
                return m

    def rest(self) -> str:
        self._thread.join(timeout=5)
        while not self._queue.empty():
            self.seen.append(self._queue.get())
        return "".join(self.seen)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_rony_serve_second_signal_while_draining_exits_at_once(
    tmp_path: Path, sig: signal.Signals
) -> None:
    # The second Ctrl-C was ignored: `rony serve` went on waiting out the grace period (30 s
    # here) for a request that never finished, and could only be killed.
    (tmp_path / "stuck_app.py").write_text(_STUCK_APP)
    args = ["serve", "stuck_app:app", "--gateway", "127.0.0.1:0", "--grace", "30"]
    proc = _start([*args, "--data-dir", str(tmp_path / "data")], cwd=tmp_path)
    assert proc.stdout is not None
    assert proc.stderr is not None
    out, err = _Lines(proc.stdout), _Lines(proc.stderr)
    conn: http.client.HTTPConnection | None = None
    try:
        url = urlsplit(out.wait(r"listening on (http://\S+)").group(1))
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
        conn.request("POST", "/", body=req(4242, Ping(ID=1)))  # its reply never comes
        out.wait("handler entered")
        os.kill(proc.pid, sig)
        err.wait(f"{sig.name}: stopping gracefully")
        assert proc.poll() is None  # draining: the stuck request holds the stop
        os.kill(proc.pid, sig)
        code = proc.wait(timeout=5)
    finally:
        if conn is not None:
            conn.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr = err.rest()  # the readers reached EOF: the pipes can be closed
        out.rest()
        proc.stdout.close()
        proc.stderr.close()
    assert code == 128 + sig, stderr
    assert f"rony serve: {sig.name} again while stopping: exiting at once\n" in stderr
    assert "rony node" in stderr
    assert " stopped" not in stderr.split("stopping gracefully")[1]  # no graceful end
