"""Structured logs: `rony serve --log-format json --access-log` as a real process (its stderr
parsed line by line), the text format, the access log off by default, and no secrets logged."""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from examples.echo.sample_pb2 import EchoRequest
from examples.echo.sample_rony import C_SampleEcho
from rony.core import C_Ping, Ping
from rony.server import App
from rony.server.logs import JsonFormatter, ServerIdFilter, TextFormatter
from rony.server.testing import serve

from .conftest import ROOT, recv_env, req

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"

APP = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

trace.set_tracer_provider(TracerProvider())  # spans are made (and dropped: no exporter)

from examples.echo.sample_pb2 import EchoResponse
from examples.echo.sample_rony import SampleBase, register_sample
from rony.server import App


class Sample(SampleBase):
    async def echo(self, ctx, req):
        if req.RandomText == "boom":
            raise RuntimeError("the handler failed")
        return EchoResponse(ReqID=req.ID, RandomText=req.RandomText)


app = App("logs")
register_sample(app, Sample())
"""


def _echo(request_id: int, text: str, **kw: Any) -> bytes:
    return req(C_SampleEcho, EchoRequest(ID=request_id, RandomText=text), request_id, **kw)


class _Lines:
    """A process's stderr read by a thread: every line kept, waited on with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        assert proc.stderr is not None
        self._stream = stream = proc.stderr

        def pump() -> None:
            for line in stream:
                self._q.put(line)
            self._q.put(None)

        self._thread = threading.Thread(target=pump, daemon=True)
        self._thread.start()

    def finish(self) -> list[str]:
        """After the process ended: the rest of its lines; the pipe closed."""
        self._thread.join(timeout=10)
        while not self._q.empty():
            line = self._q.get()
            if line is not None:
                self.lines.append(line)
        self._stream.close()
        return self.lines

    def until(self, done: Any, timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while not done(self.lines):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out; stderr so far: {self.lines}")
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"stderr ended; lines: {self.lines}")
            self.lines.append(line)
        return self.lines


def _access(objs: list[dict[str, Any]], request_id: int) -> dict[str, Any] | None:
    for o in objs:
        if o.get("logger") == "rony.server.access" and o.get("request_id") == str(request_id):
            return o
    return None


def _parse(lines: list[str]) -> list[dict[str, Any]]:
    """Every line of the node's stderr is one JSON object (a traceback included)."""
    return [json.loads(line) for line in lines]


def _start_node(tmp_path: Path) -> subprocess.Popen[str]:
    flags = ["--gateway", "127.0.0.1:0", "--data-dir", str(tmp_path / "data")]
    flags += ["--server-id", "log-node", "--log-format", "json", "--access-log"]
    return subprocess.Popen(
        [sys.executable, "-m", "rony.server.cli", "serve", "logapp:app", *flags],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])},
    )


@pytest.mark.slow
async def test_rony_serve_json_logs_and_access_log(tmp_path: Path) -> None:
    (tmp_path / "logapp.py").write_text(APP)
    proc = _start_node(tmp_path)
    lines = _Lines(proc)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split("listening on ", 1)[1].strip()
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(url) as ws:
                sampled = {"traceparent": f"00-{TRACE}-{PARENT}-01"}
                unsampled = {"traceparent": f"00-{TRACE}-{PARENT}-00"}
                # Auth and the body carry secrets: neither may reach the log.
                await ws.send_bytes(
                    _echo(11, "SECRET-BODY-1", header=sampled, auth=b"SECRET-AUTH-1")
                )
                await recv_env(ws)
                await ws.send_bytes(_echo(12, "SECRET-BODY-2", header=unsampled))
                await recv_env(ws)
                await ws.send_bytes(req(12345, Ping(ID=1), 13))
                await recv_env(ws)
                await ws.send_bytes(_echo(14, "boom"))
                await recv_env(ws)
                await ws.send_bytes(b"\xff\xffSECRET-BAD-1")  # a bad envelope
                await recv_env(ws)
            async with http.post(url, data=req(C_Ping, Ping(ID=5), 15)) as r:
                assert r.status == 200

        def seen(ls: list[str]) -> bool:
            objs = _parse(ls)
            return all(_access(objs, i) is not None for i in (11, 12, 13, 14, 15))

        lines.until(seen)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
        lines.finish()
    assert any("SIGTERM" in line for line in lines.lines)
    objs = _parse(lines.lines)
    for o in objs:  # every line: the common fields, this node's id
        assert {"time", "level", "logger", "message"} <= o.keys(), o
        assert o["logger"].startswith("rony.server") or o["logger"] == "root", o
        assert o["server_id"] == "log-node", o
        assert o["time"].endswith("Z"), o
    first = _access(objs, 11)
    assert first is not None
    assert first["trace_id"] == TRACE  # sampled: its trace id
    assert first["kind"] == "gateway"
    assert first["method"] == "Sample.Echo"
    assert first["outcome"] == "OK"
    assert first["client"] == "127.0.0.1"
    assert isinstance(first["duration_ms"], float)
    assert first["duration_ms"] >= 0
    assert first["conn_id"]
    second = _access(objs, 12)
    assert second is not None
    assert "trace_id" not in second
    assert second["conn_id"] == first["conn_id"]  # the same WebSocket
    unknown = _access(objs, 13)
    assert unknown is not None
    assert unknown["outcome"] == "E01:HANDLER"
    assert unknown["method"] == "12345"
    failed = _access(objs, 14)
    assert failed is not None
    assert failed["outcome"] == "E00:SERVER"
    error = [o for o in objs if o["level"] == "ERROR" and o.get("request_id") == "14"]
    assert len(error) == 1
    assert "RuntimeError: the handler failed" in error[0]["exc"]
    assert error[0]["conn_id"] == first["conn_id"]
    ping = _access(objs, 15)
    assert ping is not None
    assert ping["method"] == "Ping"
    assert ping["outcome"] == "OK"
    assert ping["conn_id"] != first["conn_id"]
    assert any("bad envelope" in o["message"] for o in objs)
    everything = "".join(lines.lines)
    assert "SECRET" not in everything
    assert PARENT not in everything  # the caller's span id is no field either


def _record(msg: str, *args: Any, **fields: Any) -> logging.LogRecord:
    record = logging.LogRecord("rony.server", logging.WARNING, __file__, 1, msg, args, None)
    record.rony_fields = fields
    return record


def test_text_format_is_one_readable_line() -> None:
    record = _record("request %s\nFORGED 2026 INFO rony.server: ok", 7, request_id="7")
    ServerIdFilter("node-1").filter(record)
    line = TextFormatter().format(record)
    assert "\n" not in line
    head, _, rest = line.partition(" WARNING rony.server: ")
    assert head.endswith("Z")
    assert "T" in head
    assert rest.startswith("request 7\\nFORGED 2026")
    assert rest.endswith(" request_id=7 server_id=node-1")
    spaced = TextFormatter().format(_record("x", outcome="E01:HANDLER", client="a b"))
    assert spaced.endswith(' outcome=E01:HANDLER client="a b"')


def test_json_format_keeps_a_traceback_in_its_object() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.LogRecord(
            "rony.server", logging.ERROR, __file__, 1, "x %s", ("y",), sys.exc_info()
        )
    record.rony_fields = {"request_id": "1"}
    out = json.loads(JsonFormatter().format(record))
    assert out["message"] == "x y"
    assert out["level"] == "ERROR"
    assert out["request_id"] == "1"
    assert "ValueError: bad" in out["exc"]


async def test_access_log_off_by_default(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="rony.server"):
        async with serve(App("quiet")) as edge, http.ws_connect(edge.url) as ws:
            await ws.send_bytes(req(C_Ping, Ping(ID=1), 7))
            await recv_env(ws)
        assert edge.dispatcher.access_log is False
        async with serve(App("loud"), access_log=True) as edge, http.ws_connect(edge.url) as ws:
            await ws.send_bytes(req(C_Ping, Ping(ID=1), 8))
            await recv_env(ws)
    access = [r for r in caplog.records if r.name == "rony.server.access"]
    assert [r.rony_fields["request_id"] for r in access] == ["8"]  # type: ignore[attr-defined]
    assert access[0].getMessage().startswith("gateway Ping OK ")
