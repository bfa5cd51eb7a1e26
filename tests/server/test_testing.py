"""rony.server.testing: TestClient in-process, serve(), and the rony_node pytest fixture."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from examples.echo.app import app as echo_app
from examples.echo.sample_pb2 import EchoRequest, EchoResponse
from examples.echo.sample_rony import C_SampleEcho
from rony.core import C_Ping, Ping, Pong, decode_envelope, unwrap
from rony.core.errors import InvalidError
from rony.server import App, Edge
from rony.server.testing import TestClient, UnexpectedReply

from .conftest import req


async def test_test_client_call_rest_and_errors() -> None:
    async with TestClient(echo_app, values={"token": "t"}) as client:
        res = await client.call(C_SampleEcho, EchoRequest(ID=1, RandomText="x"), EchoResponse)
        assert res == EchoResponse(ReqID=1, RandomText="x")
        assert await client.call(C_Ping, Ping(ID=2)) == Pong(ID=2)
        with pytest.raises(UnexpectedReply):
            await client.call(C_Ping, Ping(ID=2), EchoResponse)
        with pytest.raises(InvalidError):
            await client.call(4242, Ping())
        rest = await client.rest("GET", "/echo/3/abc")
        assert rest.status == 200
        assert rest.body == b'{"ReqID": "3", "RandomText": "abc"}'
        assert (await client.rest("GET", "/nope")).status == 404
        replies = await client.send_bytes(b"\xff")
        assert len(replies) == 1
        assert replies[0].RequestID == 0
        assert client.edge is not None
        assert client.edge.store is client.edge.store


async def test_rony_node_fixture(
    rony_node: Callable[..., Awaitable[Edge]], tmp_path: object
) -> None:
    edge = await rony_node(echo_app, server_id="fx")
    other = await rony_node(echo_app)
    assert edge.gateway_address != other.gateway_address
    async with (
        aiohttp.ClientSession() as http,
        http.post(edge.url, data=req(C_Ping, Ping(ID=9), 1)) as r,
    ):
        assert unwrap(decode_envelope(await r.read()), Pong).ID == 9
    assert edge.server_id == "fx"


async def test_test_client_that_fails_to_start_removes_its_data_folder() -> None:
    # `async with` does not call __aexit__ when __aenter__ raised: the temporary data folder
    # was left behind (and cleaned up by the GC with a ResourceWarning).
    app = App("boom")
    seen: list[Path] = []

    @app.on_startup
    async def boom(edge: Edge) -> None:
        seen.append(Path(edge.settings.data_dir))
        raise RuntimeError("startup failed")

    client = TestClient(app)
    with pytest.raises(RuntimeError, match="startup failed"):
        async with client:
            pass
    assert len(seen) == 1
    assert not seen[0].exists()
    assert client.edge is None


async def test_test_client_closed_then_reused_runs_a_fresh_node() -> None:
    # close() kept the stopped Edge, so a second `async with` (or a call after close) ran
    # requests on a stopped node whose store was closed.
    client = TestClient(echo_app)
    async with client:
        first = client.edge
        assert await client.call(C_Ping, Ping(ID=1)) == Pong(ID=1)
    with pytest.raises(RuntimeError, match="async with"):
        await client.call(C_Ping, Ping(ID=2))
    async with client:
        assert client.edge is not None
        assert client.edge is not first
        assert client.edge.running
        assert client.edge.store is not None
        assert await client.call(C_Ping, Ping(ID=3)) == Pong(ID=3)
    assert first is not None
    assert not first.running


_FIXTURE_TEARDOWN = """
import pytest
from rony.server import App

app = App("teardown")
shutdown = []
nodes = []

@app.on_shutdown
async def mark(edge):
    shutdown.append(edge.server_id)

async def test_nodes(rony_node):
    for name in "abc":
        nodes.append(await rony_node(app, server_id=name))
    for edge in nodes[1:]:  # c is stopped first (reverse order), then b: both raise
        real_stop = edge.gateway.stop

        async def broken(grace, real_stop=real_stop, name=edge.server_id):
            await real_stop(grace)
            raise RuntimeError(f"stop {name} failed")

        edge.gateway.stop = broken

def test_every_node_was_stopped():  # runs after test_nodes and its teardown
    assert [edge.server_id for edge in nodes] == ["a", "b", "c"]
    assert [edge.running for edge in nodes] == [False, False, False]
    assert [edge.store.store.closed for edge in nodes] == [True, True, True]
    assert shutdown == ["c", "b", "a"]  # a failed gateway stop still runs the hooks
"""


def test_rony_node_fixture_stops_every_node_when_one_stop_raises(tmp_path: Path) -> None:
    # The teardown stopped the nodes one by one: the first stop that raised left the nodes
    # after it running (ports, LMDB envs and their threads) into the following tests.
    test_file = tmp_path / "test_teardown.py"
    test_file.write_text(textwrap.dedent(_FIXTURE_TEARDOWN))
    pytest_args = ["-W", "error", "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:xdist"]
    pytest_args += ["-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", test_file.name, *pytest_args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = run.stdout + run.stderr
    assert "2 passed, 1 error" in out, out
    assert "ERROR at teardown of test_nodes" in out, out
    assert "RuntimeError: stop c failed" in out, out  # the first error is the one raised
    assert "stopping another node also failed: RuntimeError('stop b failed')" in out, out
