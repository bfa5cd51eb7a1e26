"""Edge lifecycle: start/stop idempotent, graceful stop with requests in flight (1001), hooks,
refusal of new work while stopping."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from rony.core import Ping, Pong, unwrap
from rony.server import App, Edge

from .conftest import C_Sleep, Probe, recv_env, req, wait_for


async def test_graceful_stop_finishes_inflight_then_closes_1001(
    test_app: App, probe: Probe, http: aiohttp.ClientSession, tmp_path: object
) -> None:
    edge = Edge(test_app, data_dir=str(tmp_path))
    await edge.start()
    ws = await http.ws_connect(edge.url)
    await ws.send_bytes(req(C_Sleep, Ping(ID=1), 1))
    await probe.start_event(1).wait()
    stopping = asyncio.ensure_future(edge.stop(grace=5))
    await asyncio.sleep(0.05)
    assert not stopping.done()  # waits for the in-flight request
    # New connections are refused while stopping.
    with pytest.raises(aiohttp.ClientError):
        async with http.post(edge.url, data=b"x"):
            pass
    probe.gate(1).set()
    env = await recv_env(ws)  # the in-flight reply is delivered before the close
    assert unwrap(env, Pong).ID == 1
    msg = await ws.receive(timeout=5)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == 1001
    await stopping
    await edge.stop()  # idempotent
    await edge.wait_for_termination()
    assert not edge.running


async def test_grace_expiry_cancels_stuck_requests(
    test_app: App, probe: Probe, http: aiohttp.ClientSession, tmp_path: object
) -> None:
    edge = Edge(test_app, data_dir=str(tmp_path))
    await edge.start()
    ws = await http.ws_connect(edge.url)
    await ws.send_bytes(req(C_Sleep, Ping(ID=2), 1))
    await probe.start_event(2).wait()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.gather(edge.stop(grace=0.2), edge.stop(grace=0.2))  # concurrent stops
    assert loop.time() - t0 < 3
    msg = await ws.receive(timeout=5)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert "end 2" not in probe.events
    await ws.close()


async def test_hooks_and_context_manager(tmp_path: object) -> None:
    app = App("hooks")
    calls: list[str] = []

    @app.on_startup
    async def up(edge: Edge) -> None:
        calls.append(f"up {edge.server_id}")

    @app.on_shutdown
    async def down(edge: Edge) -> None:
        calls.append("down")

    async with Edge(app, data_dir=str(tmp_path), server_id="n1") as edge:
        assert edge.running
        assert edge.url.startswith("http://127.0.0.1:")
        await edge.start()  # no-op when running
    assert calls == ["up n1", "down"]
    with pytest.raises(RuntimeError):
        await edge.start()


async def test_a_gateway_failing_to_stop_still_runs_the_shutdown_hooks(tmp_path: object) -> None:
    app = App("hooks")
    calls: list[str] = []

    @app.on_shutdown
    async def down(edge: Edge) -> None:
        calls.append("down")

    edge = Edge(app, data_dir=str(tmp_path))
    await edge.start()
    assert edge.gateway is not None
    assert edge.store is not None
    real_stop = edge.gateway.stop

    async def broken_stop(grace: float) -> None:  # fault injected into one layer
        await real_stop(grace)
        raise RuntimeError("gateway stop failed")

    edge.gateway.stop = broken_stop  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="gateway stop failed"):
        await edge.stop()
    assert calls == ["down"]
    assert not edge.running
    assert edge.store.store.closed


async def test_stop_refuses_a_negative_or_nan_grace(test_app: App, tmp_path: object) -> None:
    edge = Edge(test_app, data_dir=str(tmp_path))
    await edge.start()
    for grace in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="grace"):
            await edge.stop(grace)
    assert edge.running  # a refused stop left the node as it was
    await edge.stop(0)
    assert not edge.running


async def test_stop_before_start_is_harmless(test_app: App) -> None:
    edge = Edge(test_app)
    await edge.stop()
    await edge.wait_for_termination()


async def test_failed_start_releases_the_port(test_app: App, tmp_path: object) -> None:
    async with Edge(test_app, data_dir=str(tmp_path)) as first:
        _, port = first.gateway_address
        second = Edge(test_app, data_dir=str(tmp_path) + "/b", gateway_port=port)
        with pytest.raises(OSError, match=str(port)):
            await second.start()
        assert not second.running


async def test_store_is_opened_in_data_dir_and_reachable_from_handlers(tmp_path: object) -> None:
    from rony.core import RequestCtx
    from rony.server import edge_of
    from rony.server.testing import TestClient

    app = App("store")

    async def count(ctx: RequestCtx) -> None:
        store = edge_of(ctx).store
        assert store is not None
        n = int(await store.get(b"hits") or b"0") + 1
        await store.set(b"hits", str(n).encode())
        ctx.push_message(Pong(ID=n))

    app.handle(77, count)
    data = str(tmp_path)
    for expected in (1, 2):  # the second node reopens the same folder: the count persisted
        async with TestClient(app, data_dir=data) as client:
            assert await client.call(77, Ping(), Pong) == Pong(ID=expected)
    # Two live nodes cannot share one data folder.
    async with Edge(app, data_dir=data):
        with pytest.raises(Exception, match=r"(?i)lock|open"):
            await Edge(app, data_dir=data).start()


def test_edge_of_refuses_a_request_not_served_by_an_edge() -> None:
    from rony.core import DispatchCtx
    from rony.core.testing import MemoryConn, build_request
    from rony.server import edge_of

    ctx = DispatchCtx(MemoryConn()).new_request(build_request(Ping()))
    with pytest.raises(RuntimeError):
        edge_of(ctx)


async def test_stop_during_a_start_that_fails_runs_no_shutdown_hook(tmp_path: object) -> None:
    # stop() waits for a start() in progress; when that start failed (and cleaned up), the stop
    # has nothing left to do: no shutdown hook for a node whose startup never completed.
    app = App("half")
    entered = asyncio.Event()
    release = asyncio.Event()
    shutdown: list[str] = []

    @app.on_startup
    async def slow_then_fail(edge: Edge) -> None:
        entered.set()
        await release.wait()
        raise RuntimeError("startup failed")

    @app.on_shutdown
    async def on_shutdown(edge: Edge) -> None:
        shutdown.append("ran")

    edge = Edge(app, data_dir=str(tmp_path))
    starting = asyncio.ensure_future(edge.start())
    await entered.wait()
    stopping = asyncio.ensure_future(edge.stop(1.0))
    await asyncio.sleep(0)  # the stop is now waiting for the start
    release.set()
    with pytest.raises(RuntimeError, match="startup failed"):
        await starting
    await asyncio.wait_for(stopping, 5)
    assert shutdown == []
    assert not edge.running


async def test_health_is_503_while_draining(
    test_app: App, probe: Probe, http: aiohttp.ClientSession, tmp_path: object
) -> None:
    edge = Edge(test_app, data_dir=str(tmp_path))
    await edge.start()
    ws = await http.ws_connect(edge.url)
    async with http.get(edge.url + "/healthz") as r:  # opens a kept-alive connection
        assert r.status == 200
        assert (await r.json())["status"] == "ok"
    await ws.send_bytes(req(C_Sleep, Ping(ID=1), 1))
    await probe.start_event(1).wait()
    stopping = asyncio.ensure_future(edge.stop(grace=5))
    await wait_for(lambda: edge.gateway is not None and edge.gateway.stopping)
    async with http.get(edge.url + "/healthz") as r:  # the same connection; the listener is shut
        assert r.status == 503
        assert (await r.json())["status"] == "stopping"
    probe.gate(1).set()
    await stopping
    await ws.close()


@pytest.mark.parametrize("fails", ["gateway", "gateway and store"])
async def test_failed_start_releases_everything_when_undoing_it_fails(
    test_app: App, tmp_path: object, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    # The start failed (port taken); undoing it, gateway.stop raised: the store was never
    # closed (its LMDB env, lock and threads leaked) and that error replaced the OSError.
    import rony.server._edge as edge_module
    from rony.store import AsyncStore

    class BrokenStopGateway(edge_module.Gateway):
        async def stop(self, grace: float) -> None:
            await super().stop(grace)
            raise RuntimeError("gateway.stop failed")

    real_close = AsyncStore.close

    async def broken_close(self: AsyncStore) -> None:
        await real_close(self)
        raise RuntimeError("store.close failed")

    data = str(tmp_path) + "/b"
    async with Edge(test_app, data_dir=str(tmp_path) + "/a") as first:
        _, port = first.gateway_address
        second = Edge(test_app, data_dir=data, gateway_port=port)
        with monkeypatch.context() as patch:
            patch.setattr(edge_module, "Gateway", BrokenStopGateway)
            if fails == "gateway and store":
                patch.setattr(AsyncStore, "close", broken_close)
            with pytest.raises(OSError, match=str(port)):
                await second.start()
    assert not second.running
    assert second.store is not None
    assert second.store.store.closed
    await asyncio.wait_for(second.wait_for_termination(), 5)
    async with Edge(test_app, data_dir=data, gateway_port=0):  # its lock was released
        pass
