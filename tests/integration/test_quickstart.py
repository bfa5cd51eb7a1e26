"""The README's quick start, end to end: the installed `rony` script serves the echo example
with its store in a data folder; the generated stubs call it through both client twins over
both transports, and REST answers; SIGTERM stops it cleanly with the data folder in place."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.echo.sample_pb2 import EchoRequest, EchoResponse
from examples.echo.sample_rony import SampleClient, SampleSyncClient
from rony.client import AsyncClient, Client
from rony.core import C_Ping, Ping, Pong

ROOT = Path(__file__).resolve().parents[2]
RONY = Path(sys.executable).with_name("rony")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    data = tmp_path / "data"
    args = ["serve", "examples.echo.app:app", "--gateway", "127.0.0.1:0", "--data-dir", str(data)]
    # `with` closes the pipes however the test ends (a failed test left them to the GC).
    with subprocess.Popen(
        [str(RONY), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},  # the script alone must find examples/ (cwd)
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # returns when the node printed its address, or died
            match = re.search(r"listening on http://(\S+)", line)
            assert match, f"no address: {line!r} {proc.stderr.read() if proc.stderr else ''}"
            yield match.group(1), data, proc
        finally:
            if proc.poll() is None:
                proc.kill()


async def _async_stub_calls(hostport: str, transport: str) -> None:
    async with AsyncClient(f"{transport}://{hostport}/", transport=transport) as aclient:
        reply = await SampleClient(aclient).echo(EchoRequest(ID=8, RandomText="async"))
        assert reply == EchoResponse(ReqID=8, RandomText="async")


@pytest.mark.slow
def test_quick_start_node_serves_every_client(
    node: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    hostport, data, proc = node
    for transport in ("ws", "http"):
        with Client(f"{transport}://{hostport}/", transport=transport) as sync:
            reply = SampleSyncClient(sync).echo(EchoRequest(ID=7, RandomText="sync"))
            assert reply == EchoResponse(ReqID=7, RandomText="sync")
            assert sync.call(C_Ping, Ping(ID=3), Pong).ID == 3
        asyncio.run(_async_stub_calls(hostport, transport))
    with urllib.request.urlopen(f"http://{hostport}/echo/9/rest", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("application/json")
        assert resp.read() == b'{"ReqID": "9", "RandomText": "rest"}'
    assert (data / "data.mdb").is_file()  # the embedded LMDB store lives in the data folder

    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert (data / "data.mdb").is_file()
