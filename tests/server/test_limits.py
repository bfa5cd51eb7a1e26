"""Every limit of EdgeSettings, over real sockets: the offender gets an Error reply, an HTTP 4xx
or a WS close code, and the server keeps serving everyone else."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from rony.core import C_Ping, Ping, Pong, container_envelope, decode_envelope, envelope, unwrap
from rony.server import App, EdgeSettings
from rony.server.testing import serve

from .conftest import C_Flood, C_Record, C_Sleep, Probe, error_of, recv_env, req, wait_for


async def _ping_ok(http: aiohttp.ClientSession, url: str) -> None:
    async with http.ws_connect(url) as ws:
        await ws.send_bytes(req(C_Ping, Ping(ID=42), 1))
        assert unwrap(await recv_env(ws), Pong).ID == 42


async def test_max_message_size_ws_1009_and_http_413(
    test_app: App, http: aiohttp.ClientSession
) -> None:
    async with serve(test_app, max_message_size=1024) as edge:
        async with http.ws_connect(edge.url) as ws:
            await ws.send_bytes(req(C_Ping, Ping(ID=1), 1, header={"pad": "x" * 2000}))
            msg = await ws.receive(timeout=5)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 1009
        async with http.post(edge.url, data=b"x" * 2000) as r:
            assert r.status == 413
            assert error_of(decode_envelope(await r.read())).Code == "E01"
        await _ping_ok(http, edge.url)


async def test_max_container_length(test_app: App, http: aiohttp.ClientSession) -> None:
    async with serve(test_app, max_container_length=3) as edge, http.ws_connect(edge.url) as ws:
        envs = [envelope(Ping(ID=i), i + 1) for i in range(4)]
        await ws.send_bytes(container_envelope(envs, request_id=77).SerializeToString())
        env = await recv_env(ws)
        assert env.RequestID == 77
        assert error_of(env).Code == "E01"
        await ws.send_bytes(container_envelope(envs[:3]).SerializeToString())
        assert sorted([(await recv_env(ws)).RequestID for _ in range(3)]) == [1, 2, 3]


async def test_max_connections(test_app: App, http: aiohttp.ClientSession) -> None:
    async with serve(test_app, max_connections=2) as edge:
        async with http.ws_connect(edge.url) as a, http.ws_connect(edge.url) as b:
            with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
                async with http.ws_connect(edge.url):
                    pass
            assert exc.value.status == 503
            for ws in (a, b):  # the admitted ones keep working
                await ws.send_bytes(req(C_Ping, Ping(ID=3), 1))
                assert unwrap(await recv_env(ws), Pong).ID == 3
        await wait_for(lambda: edge.gateway is not None and not edge.gateway.ws_conns)
        await _ping_ok(http, edge.url)


async def test_idle_timeout_counts_reads_and_writes(
    test_app: App, http: aiohttp.ClientSession
) -> None:
    async with serve(test_app, idle_timeout=0.3) as edge:
        async with http.ws_connect(edge.url) as ws:
            msg = await ws.receive(timeout=5)  # nothing sent: closed for idleness
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        async with http.ws_connect(edge.url) as ws:
            # The server only writes (pushes every 0.1 s): writes keep the conn alive.
            conn_id = next(iter(edge.gateway.ws_conns)) if edge.gateway else 0
            loop = asyncio.get_running_loop()
            end = loop.time() + 0.8
            while loop.time() < end:
                assert edge.push(conn_id, envelope(Pong(ID=1)))
                assert unwrap(await recv_env(ws), Pong).ID == 1
                await asyncio.sleep(0.1)
            assert not ws.closed


async def test_client_pings_count_as_activity_and_get_pongs(
    test_app: App, http: aiohttp.ClientSession
) -> None:
    async with (
        serve(test_app, idle_timeout=0.3) as edge,
        http.ws_connect(edge.url, autoping=False) as ws,
    ):
        loop = asyncio.get_running_loop()
        end = loop.time() + 0.9  # three idle periods, kept alive by pings alone
        while loop.time() < end:
            await ws.ping(b"hb")
            msg = await ws.receive(timeout=5)
            assert msg.type is aiohttp.WSMsgType.PONG
            assert msg.data == b"hb"
            await asyncio.sleep(0.1)
        assert not ws.closed
        await ws.send_bytes(req(C_Ping, Ping(ID=9), 9))
        assert unwrap(await recv_env(ws), Pong).ID == 9


async def test_max_inflight_per_conn_back_pressure_and_order(
    test_app: App, probe: Probe, http: aiohttp.ClientSession
) -> None:
    async with serve(test_app, max_inflight_per_conn=2) as edge, http.ws_connect(edge.url) as ws:
        for i in (1, 2, 3):
            await ws.send_bytes(req(C_Sleep, Ping(ID=i), i))
        await probe.start_event(2).wait()
        # Two in flight: the third frame is not read (nor started) until one finishes.
        await asyncio.sleep(0.05)
        assert probe.events == ["start 1", "start 2"]
        probe.gate(2).set()
        assert (await recv_env(ws)).RequestID == 2
        await probe.start_event(3).wait()
        assert probe.events == ["start 1", "start 2", "end 2", "start 3"]
        probe.gate(1).set()
        probe.gate(3).set()
        assert sorted([(await recv_env(ws)).RequestID for _ in range(2)]) == [1, 3]


async def test_inflight_one_is_strictly_sequential(
    test_app: App, probe: Probe, http: aiohttp.ClientSession
) -> None:
    async with serve(test_app, max_inflight_per_conn=1) as edge, http.ws_connect(edge.url) as ws:
        await ws.send_bytes(req(C_Sleep, Ping(ID=-20), 1))
        for i in range(2, 6):
            await ws.send_bytes(req(C_Record, Ping(ID=i), i))
        assert [(await recv_env(ws)).RequestID for _ in range(5)] == [1, 2, 3, 4, 5]


async def test_handler_timeout_e06(test_app: App, http: aiohttp.ClientSession) -> None:
    async with serve(test_app, handler_timeout=0.1) as edge, http.ws_connect(edge.url) as ws:
        await ws.send_bytes(req(C_Sleep, Ping(ID=500), 9))
        env = await recv_env(ws)
        assert env.RequestID == 9
        assert error_of(env).Code == "E06"
        await ws.send_bytes(req(C_Ping, Ping(ID=1), 10))
        assert unwrap(await recv_env(ws), Pong).ID == 1


async def test_handler_timeout_e06_over_http(test_app: App, http: aiohttp.ClientSession) -> None:
    """The HTTP request's own task is the one the timeout cancels (the gateway passes it)."""
    async with serve(test_app, handler_timeout=0.1) as edge:
        async with http.post(edge.url, data=req(C_Sleep, Ping(ID=500), 9)) as r:
            assert r.status == 408
            env = decode_envelope(await r.read())
        assert env.RequestID == 9
        assert error_of(env).Code == "E06"
        await _ping_ok(http, edge.url)


async def test_slow_consumer_closed_with_1008(test_app: App, http: aiohttp.ClientSession) -> None:
    async with serve(test_app, write_queue_size=8) as edge:
        async with http.ws_connect(edge.url) as ws:
            # 20 MiB of replies at once to a client that reads nothing: once the socket and
            # the transport buffer are full, the queue overflows and the server closes the conn.
            await ws.send_bytes(req(C_Flood, Ping(ID=20_000), 1))
            await wait_for(lambda: edge.gateway is not None and not edge.gateway.ws_conns)
            while True:
                msg = await ws.receive(timeout=5)
                if msg.type is not aiohttp.WSMsgType.BINARY:
                    break
            assert ws.close_code == 1008
        await _ping_ok(http, edge.url)


def test_settings_validate() -> None:
    with pytest.raises(ValueError, match="max_message_size"):
        EdgeSettings(max_message_size=0)
    with pytest.raises(ValueError, match="handler_timeout"):
        EdgeSettings(handler_timeout=-1)
    with pytest.raises(ValueError, match="not-an-ip"):
        EdgeSettings(trusted_proxies=("not-an-ip",))
    assert EdgeSettings(handler_timeout=None).handler_timeout is None


def test_settings_refuse_a_health_path_no_request_can_have() -> None:
    for bad in ("healthz", ""):
        with pytest.raises(ValueError, match="health_path"):
            EdgeSettings(health_path=bad)
    assert EdgeSettings(health_path="/live").health_path == "/live"


@pytest.mark.parametrize("name", ["idle_timeout", "shutdown_grace", "handler_timeout"])
def test_settings_refuse_nan_timeouts(name: str) -> None:
    # NaN compares false to everything, so a `<= 0` check let it through (RONY_IDLE_TIMEOUT=nan).
    with pytest.raises(ValueError, match=name):
        EdgeSettings(**{name: float("nan")})


async def test_handler_timeout_in_a_concurrent_container_hits_only_the_slow_one(
    test_app: App, probe: Probe, http: aiohttp.ClientSession
) -> None:
    async with serve(test_app, handler_timeout=0.2) as edge, http.ws_connect(edge.url) as ws:
        envs = [
            envelope(Ping(ID=900), 1, constructor=C_Sleep),
            envelope(Ping(ID=2), 2, constructor=C_Record),
        ]
        await ws.send_bytes(container_envelope(envs).SerializeToString())
        first, second = await recv_env(ws), await recv_env(ws)
        assert (first.RequestID, unwrap(first, Pong).ID) == (2, 2)
        assert second.RequestID == 1
        assert error_of(second).Code == "E06"
