"""The status page of a real node: /status.json after real traffic, the HTML escapes what
operators and other nodes name, who may read it, and its path settings."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from rony.client import AsyncClient
from rony.core import KeyValue, Ping, Pong
from rony.core import errors as rony_errors
from rony.server import EdgeSettings
from rony.server.gateway._status import RATE_WINDOW, SAMPLE_EVERY, _Rates, render_html
from rony.server.testing import serve
from tests.client._nodeapp import C_Echo, C_Fail, app
from tests.cluster._edges import edges, until
from tests.tunnel._tunnelapp import C_Forward
from tests.tunnel._tunnelapp import app as tunnel_app

HOSTILE = '<script>alert("x")</script>&\'<img src=x onerror=alert(1)>'


async def _get(url: str, **kw: Any) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as http, http.get(url, **kw) as r:
        return r.status, dict(r.headers), await r.text()


async def _json(url: str) -> dict[str, Any]:
    status, headers, body = await _get(url + "/status.json")
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/json")
    out: dict[str, Any] = json.loads(body)
    return out


async def test_status_json_after_real_traffic() -> None:
    async with serve(app, server_id="node-1", replica_set=3) as edge:
        before = await _json(edge.url)
        async with AsyncClient(edge.url, transport="ws") as ws:
            for i in range(10):
                assert i == (await ws.call(C_Echo, Ping(ID=i), Pong)).ID
            with pytest.raises(rony_errors.AccessError):
                await ws.call(C_Fail, Ping(), Pong)
            async with AsyncClient(edge.url, transport="http") as http:
                for i in range(5):
                    await http.call(C_Echo, Ping(ID=i), Pong)
                with pytest.raises(rony_errors.AccessError):
                    await http.call(C_Fail, Ping(), Pong)
                snap = await _json(edge.url)  # the WebSocket is still open

        assert snap["server_id"] == "node-1"
        assert snap["replica_set"] == 3
        assert snap["version"] == importlib.metadata.version("rony-server")
        assert snap["state"] == "running"
        assert snap["uptime_seconds"] >= before["uptime_seconds"] > 0
        host, port = edge.gateway_address
        assert snap["gateway"]["bound"] == f"{host}:{port}"
        assert snap["gateway"]["advertised"] == edge.advertised_addrs
        conns = snap["connections"]
        assert conns["websocket"] == 1
        assert conns["open"] >= 2  # the WebSocket, this GET's (and maybe the HTTP client's)
        assert conns["http"] == conns["open"] - 1
        req = snap["requests"]
        assert req["total"] - before["requests"]["total"] == 17
        assert req["errors"] - before["requests"]["errors"] == 2
        assert req["rate_seconds"] > 0
        # (rate_seconds is rounded to the millisecond: over a short span that alone is ~1 %)
        tolerance = 0.01 + 0.0005 / req["rate_seconds"]
        assert req["per_second"] == pytest.approx(req["total"] / req["rate_seconds"], rel=tolerance)
        assert req["errors_per_second"] > 0
        assert snap["cluster"] is None
        assert snap["tunnel"] is None

        # The WebSocket is closed now: the page says so once the server has seen the close
        # (polled: the page is what is under test).
        async with asyncio.timeout(10):
            while (await _json(edge.url))["connections"]["websocket"]:  # noqa: ASYNC110
                await asyncio.sleep(0.02)


def test_rates_are_over_the_last_window_from_samples_kept_at_most_once_a_second() -> None:
    rates = _Rates(now=0.0)
    assert rates.read(0.0, 0, 0) == (0.0, 0.0, 0.0)
    assert rates.read(10.0, 100, 10) == (10.0, 1.0, 10.0)  # since the start
    # Many reads in one second keep one sample: the ring stays small.
    for i in range(1000):
        rates.read(10.0 + i / 2000, 100, 10)
    assert len(rates._ring) == 2
    # Long after, the rate is over the last window only, not since the start.
    t = 10.0
    for step in range(200):
        t += 1.0
        per_s, _, span = rates.read(t, 100 + 50 * (step + 1), 10)
    assert per_s == pytest.approx(50.0)
    assert RATE_WINDOW <= span < RATE_WINDOW + 2 * SAMPLE_EVERY
    assert len(rates._ring) <= RATE_WINDOW / SAMPLE_EVERY + 2


async def test_the_page_escapes_a_hostile_server_id_and_allows_no_script() -> None:
    async with serve(app, server_id=HOSTILE) as edge:
        status, headers, body = await _get(edge.url + "/status")
        assert status == 200
        assert headers["Content-Type"].startswith("text/html")
        assert HOSTILE not in body
        assert "<script" not in body
        assert "<img" not in body
        assert body.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#x27;") >= 2
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp
        assert "script-src" not in csp
        assert "Access-Control-Allow-Origin" not in headers  # no other site's page reads it
        assert headers["Cache-Control"] == "no-store"
        # The JSON names it as it is (JSON-escaped), for tools.
        assert (await _json(edge.url))["server_id"] == HOSTILE


def test_member_values_from_other_nodes_are_escaped() -> None:
    """Another node's gossip meta (its gateway and tunnel addresses) is not trusted either."""
    snap = {
        "server_id": "a",
        "replica_set": 0,
        "version": "1",
        "state": "running",
        "uptime_seconds": 5.0,
        "gateway": {"bound": "127.0.0.1:1", "advertised": []},
        "connections": {"open": 0, "websocket": 0, "http": 0, "accepted_total": 0},
        "requests": None,
        "cluster": {
            "gossip_addr": "127.0.0.1:2",
            "counts": {"alive": 1, HOSTILE: 1},
            "members": [
                {
                    "server_id": HOSTILE,
                    "state": HOSTILE,
                    "gossip_addr": HOSTILE,
                    "incarnation": 1,
                    "self": False,
                    "replica_set": None,
                    "gateway_addrs": [HOSTILE],
                    "tunnel_addrs": [HOSTILE],
                }
            ],
        },
        "tunnel": {
            "addrs": [HOSTILE],
            "links": [{"peer": HOSTILE, "address": HOSTILE, "outgoing": True}],
        },
    }
    page = render_html(snap, json_href=HOSTILE)
    assert "<script" not in page
    assert "<img" not in page
    assert HOSTILE not in page
    assert 'class="st st-other"' in page  # a state not of the known four: no class from it


async def test_status_networks_and_trusted_proxies() -> None:
    async with serve(app, status_networks=("10.0.0.0/8",)) as edge:
        status, _, body = await _get(edge.url + "/status")
        assert status == 403
        assert "status_networks" in body
        assert "127.0.0.1" in body
        # A forwarded address is believed only from a trusted proxy.
        fwd = {"X-Forwarded-For": "10.1.2.3"}
        status, _, _ = await _get(edge.url + "/status.json", headers=fwd)
        assert status == 403
    async with serve(app, status_networks=("10.0.0.0/8",), trusted_proxies=("127.0.0.1",)) as edge:
        status, _, body = await _get(edge.url + "/status.json", headers=fwd)
        assert status == 200, body
        status, _, _ = await _get(edge.url + "/status.json", headers={"X-Forwarded-For": "8.8.8.8"})
        assert status == 403


async def test_status_path_setting() -> None:
    async with serve(app, status_path="/ops/state") as edge:
        status, _, body = await _get(edge.url + "/ops/state")
        assert status == 200
        assert 'href="state.json"' in body
        assert (await _get(edge.url + "/ops/state.json"))[0] == 200
        assert (await _get(edge.url + "/status"))[0] == 404
    async with serve(app, status_path=None) as edge:
        assert (await _get(edge.url + "/status"))[0] == 404
        assert (await _get(edge.url + "/status.json"))[0] == 404


def test_status_settings_refuse_what_cannot_work() -> None:
    for bad in ("status", "/status/", "/", ""):
        with pytest.raises(ValueError, match="status_path"):
            EdgeSettings(status_path=bad)
    with pytest.raises(ValueError, match="collides with health_path"):
        EdgeSettings(status_path="/healthz")
    with pytest.raises(ValueError, match="status_networks: 'everyone'"):
        EdgeSettings(status_networks=("everyone",))
    assert EdgeSettings(status_networks=["0.0.0.0/0"]).status_networks == ("0.0.0.0/0",)


async def test_cluster_members_and_tunnel_links(tmp_path: Path) -> None:
    nodes = {"a": 1, "b": 2, "c": 2}
    async with edges(tmp_path, tunnel_app, nodes, tunnel=True) as (a, b, c):
        async with AsyncClient(a.url, transport="http") as client:
            served = {(await client.call(C_Forward, Ping(ID=2), KeyValue)).Key for _ in range(8)}
        snap = await _json(a.url)
        cluster = snap["cluster"]
        assert cluster["gossip_addr"] == a.cluster.advertised  # type: ignore[union-attr]
        members = {m["server_id"]: m for m in cluster["members"]}
        assert set(members) == {"a", "b", "c"}
        assert cluster["members"][0]["server_id"] == "a"
        assert members["a"]["self"]
        assert {m["state"] for m in members.values()} == {"alive"}
        assert cluster["counts"] == {"alive": 3, "suspect": 0, "dead": 0, "left": 0}
        for name, m in members.items():
            assert m["replica_set"] == nodes[name]
            assert m["gateway_addrs"]
            assert m["tunnel_addrs"]
        assert members["b"]["gateway_addrs"] == b.advertised_addrs
        assert members["b"]["tunnel_addrs"] == b.tunnel_addrs
        assert snap["tunnel"]["addrs"] == a.tunnel_addrs
        out = {k["peer"] for k in snap["tunnel"]["links"] if k["outgoing"]}
        assert out == served  # a dialled exactly the nodes that served its calls
        # b's side: a's link came in.
        incoming = [k for k in (await _json(b.url))["tunnel"]["links"] if not k["outgoing"]]
        if "b" in served:
            assert [k["peer"] for k in incoming] == ["a"]

        # A node that leaves is listed as left, not dropped.
        await c.stop()

        assert a.cluster is not None
        cluster_a = a.cluster

        def c_left() -> bool:
            return any(i.name == "c" and i.state_name == "left" for i in cluster_a.state())

        await until(c_left, "c to be seen leaving")
        snap = await _json(a.url)
        assert {m["server_id"]: m["state"] for m in snap["cluster"]["members"]}["c"] == "left"
        _, _, page = await _get(a.url + "/status")
        assert 'data-member="c" data-state="left"' in page
