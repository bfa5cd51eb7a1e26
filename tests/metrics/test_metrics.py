"""/metrics of real nodes after real traffic, parsed with prometheus_client's text parser.

Every metric named in the README's metrics table is asserted here: the single-node ones after
WebSocket, HTTP RPC and REST traffic, an error, an unknown constructor, store writes, pushes, a
client that does not read its replies, and a refused connection; the gossip and tunnel ones in
a three-node cluster with tunnel calls.
"""

from __future__ import annotations

import asyncio
import os
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from rony.client import AsyncClient
from rony.core import KeyValue, Ping, Pong, envelope_bytes
from rony.core import errors as rony_errors
from rony.server import EdgeSettings
from rony.server.testing import serve
from tests.cluster._edges import edges
from tests.metrics._app import C_Big, C_Echo, C_Fail, C_Push, C_Put, app
from tests.tunnel._tunnelapp import C_Forward
from tests.tunnel._tunnelapp import app as tunnel_app

README = Path(__file__).resolve().parents[2] / "README.md"

SINGLE_NODE = {
    "rony_server_info",
    "rony_uptime_seconds",
    "rony_rpc_requests_total",
    "rony_rpc_request_duration_seconds",
    "rony_gateway_connections_open",
    "rony_gateway_active_websocket_conns",
    "rony_gateway_connections_accepted_total",
    "rony_gateway_connections_refused_total",
    "rony_gateway_incoming_websocket_message_total",
    "rony_gateway_outgoing_websocket_message_total",
    "rony_gateway_incoming_http_message_total",
    "rony_gateway_outgoing_http_message_total",
    "rony_gateway_incoming_websocket_bytes_total",
    "rony_gateway_outgoing_websocket_bytes_total",
    "rony_gateway_incoming_http_bytes_total",
    "rony_gateway_outgoing_http_bytes_total",
    "rony_gateway_websocket_write_queue_frames",
    "rony_gateway_websocket_write_queue_max_frames",
    "rony_store_writes_total",
    "rony_store_commits_total",
    "rony_store_commit_duration_seconds",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "python_info",
}
"""The metrics test_single_node_after_real_traffic asserts (and the refusal test)."""
CLUSTER = {
    "rony_gossip_members",
    "rony_gossip_probes_total",
    "rony_gossip_probe_failures_total",
    "rony_gossip_refutes_total",
    "rony_gossip_packets_dropped_total",
    "rony_tunnel_outgoing_message_total",
    "rony_tunnel_round_trip_duration_seconds",
    "rony_tunnel_incoming_message_total",
}
"""The metrics test_cluster_gossip_and_tunnel asserts."""


class Scrape:
    """One /metrics body, parsed: samples looked up by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples: list[Sample] = [s for f in self.families.values() for s in f.samples]

    def names(self) -> set[str]:
        """Exposed names as the README writes them (counters with ``_total``)."""
        out = set()
        for f in self.families.values():
            out.add(f.name + "_total" if f.type == "counter" else f.name)
            if f.type == "info":
                out.add(f.name + "_info")
        return out

    def get(self, name: str, **labels: str) -> float:
        """The one sample ``name`` whose labels include ``labels``."""
        found = [
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert len(found) == 1, f"{name}{labels}: {found} in\n{self.text}"
        return float(found[0])

    def sum(self, name: str, **labels: str) -> float:
        return sum(
            float(s.value)
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )


async def scrape(url: str, path: str = "/metrics") -> Scrape:
    async with aiohttp.ClientSession() as http, http.get(url + path) as r:
        body = await r.text()
        assert r.status == 200, body
        assert r.headers["Content-Type"].startswith("text/plain")
        return Scrape(body)


async def status_of(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        await r.read()
        return r.status


async def poll(url: str, cond: Callable[[Scrape], bool], what: str) -> Scrape:
    """Scrape until ``cond`` holds (what the server counts off the request path)."""
    async with asyncio.timeout(15):
        while True:
            got = await scrape(url)
            if cond(got):
                return got
            await asyncio.sleep(0.02)
    raise AssertionError(what)  # (unreachable: the timeout raises)


# --- a WebSocket client that never reads ------------------------------------------------------


def _masked_frame(payload: bytes) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    head = bytes((0x82, 0x80 | n)) if n < 126 else struct.pack("!BBH", 0x82, 0x80 | 126, n)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


async def _stalled_ws(
    host: str, port: int, requests: int, size: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a WebSocket by hand and send ``requests`` C_Big(size) requests without reading."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    for i in range(requests):
        writer.write(_masked_frame(envelope_bytes(C_Big, i + 1, Ping(ID=size).SerializeToString())))
    await writer.drain()
    return reader, writer


# --- the tests ----------------------------------------------------------------------------------


async def test_single_node_after_real_traffic() -> None:
    async with serve(app, server_id="m-1", replica_set=4, write_queue_size=100_000) as edge:
        url = edge.url
        before = await scrape(url)
        assert before.get("rony_server_info", server_id="m-1", replica_set="4") == 1
        assert before.get("rony_uptime_seconds") > 0
        async with AsyncClient(url, transport="ws") as ws:
            for i in range(10):
                assert i == (await ws.call(C_Echo, Ping(ID=i), Pong)).ID
            with pytest.raises(rony_errors.AccessError):
                await ws.call(C_Fail, Ping(), Pong)
            with pytest.raises(rony_errors.InvalidError):
                await ws.call(424242, Ping(), Pong)  # no handler: the "unknown" series
            assert (await ws.call(C_Put, Ping(ID=3), Pong)).ID == 3
            assert (await ws.call(C_Push, Ping(ID=4), Pong)).ID == 4
            during = await scrape(url)
        async with AsyncClient(url, transport="http") as http:
            for i in range(5):
                await http.call(C_Echo, Ping(ID=i), Pong)
            with pytest.raises(rony_errors.AccessError):
                await http.call(C_Fail, Ping(), Pong)
        async with aiohttp.ClientSession() as rest, rest.get(url + "/echo/7") as r:
            assert r.status == 200
            rest_reply = await r.read()
        after = await poll(
            url, lambda s: s.get("rony_gateway_active_websocket_conns") == 0, "the WS closed"
        )

    # Requests, by kind, constructor and outcome; their durations.
    def req(scr: Scrape, constructor: str, outcome: str) -> float:
        return scr.sum(
            "rony_rpc_requests_total", kind="gateway", constructor=constructor, outcome=outcome
        )

    assert req(after, "Metrics.Echo", "ok") - req(before, "Metrics.Echo", "ok") == 16  # 10+5+1
    assert req(after, "Metrics.Fail", "E07") == 2
    assert req(after, "Metrics.Fail", "ok") == 0
    assert req(after, "unknown", "E01") == 1
    assert req(after, "Metrics.Put", "ok") == 1
    count = after.get(
        "rony_rpc_request_duration_seconds_count", kind="gateway", constructor="Metrics.Echo"
    )
    assert count == 16
    assert (
        after.get(
            "rony_rpc_request_duration_seconds_bucket",
            kind="gateway",
            constructor="Metrics.Echo",
            le="+Inf",
        )
        == count
    )
    assert (
        0
        < after.get(
            "rony_rpc_request_duration_seconds_sum", kind="gateway", constructor="Metrics.Echo"
        )
        < 16 * 5.0
    )
    # Connections: the WS was open during, closed after; every one was accepted.
    assert during.get("rony_gateway_active_websocket_conns") == 1
    assert during.get("rony_gateway_connections_open") >= 2  # the WS and this scrape's
    accepted = after.get("rony_gateway_connections_accepted_total")
    assert accepted >= 4  # the scrapes, the WS, the HTTP client, the REST client
    assert after.get("rony_gateway_connections_open") <= accepted
    assert "rony_gateway_connections_refused" in after.families  # (no sample: none refused)
    # Messages: WS 10 echo + fail + unknown + put + push = 14 frames in; 14 replies + 4 pushes.
    assert after.get("rony_gateway_incoming_websocket_message_total") == 14
    assert after.get("rony_gateway_outgoing_websocket_message_total") == 18
    assert after.get("rony_gateway_incoming_websocket_bytes_total") > 14 * 10
    assert after.get("rony_gateway_outgoing_websocket_bytes_total") > 18 * 10
    assert after.get("rony_gateway_incoming_http_message_total") == 7  # 6 RPC + 1 REST
    assert after.get("rony_gateway_outgoing_http_message_total") == 7
    assert after.get("rony_gateway_incoming_http_bytes_total") > 6 * 10  # (REST: no body)
    assert after.get("rony_gateway_outgoing_http_bytes_total") >= 6 * 10 + len(rest_reply)
    # The store: three writes, through the writer thread.
    assert after.get("rony_store_writes_total") == 3
    commits = after.get("rony_store_commits_total")
    assert 1 <= commits <= 3
    assert after.get("rony_store_commit_duration_seconds_count") == commits
    assert after.get("rony_store_commit_duration_seconds_bucket", le="+Inf") == commits
    assert after.get("rony_store_commit_duration_seconds_sum") > 0
    # Process and platform metrics, from this node's own registry.
    assert after.get("process_resident_memory_bytes") > 0
    assert after.get("process_open_fds") > 0
    assert after.get("process_cpu_seconds_total") > 0
    assert after.sum("python_info") == 1
    # No cluster here: no gossip or tunnel-call series beyond zeros.
    assert "rony_gossip_members" not in after.families
    assert after.get("rony_tunnel_round_trip_duration_seconds_count") == 0
    assert after.names() >= SINGLE_NODE - {
        "rony_gateway_connections_refused_total",  # (asserted by the refusal test)
        "rony_gateway_websocket_write_queue_frames",  # (and the write-queue test)
        "rony_gateway_websocket_write_queue_max_frames",
    }


async def test_write_queue_depth_of_a_client_that_does_not_read() -> None:
    async with serve(app, write_queue_size=100_000) as edge:
        host, port = edge.gateway_address
        # 400 replies of 64 KiB: more than the loopback socket buffers hold.
        _, writer = await _stalled_ws(host, port, 400, 64_000)
        try:
            got = await poll(
                edge.url,
                lambda s: s.get("rony_gateway_websocket_write_queue_frames") > 0,
                "frames waiting in the write queue",
            )
            assert got.get("rony_gateway_websocket_write_queue_max_frames") == got.get(
                "rony_gateway_websocket_write_queue_frames"
            )  # one slow client: its queue is all of it
            assert got.get("rony_gateway_active_websocket_conns") == 1
        finally:
            writer.transport.abort()
        await poll(
            edge.url,
            lambda s: (
                s.get("rony_gateway_websocket_write_queue_frames") == 0
                and s.get("rony_gateway_active_websocket_conns") == 0
            ),
            "the queue released",
        )


async def test_frames_dropped_by_a_full_write_queue_are_not_counted_as_sent() -> None:
    async with serve(app, write_queue_size=4) as edge:
        host, port = edge.gateway_address
        # 400 replies of 64 KiB to a client that never reads: the queue of 4 overflows, the
        # connection is closed, and the replies after that are dropped, not sent.
        _, writer = await _stalled_ws(host, port, 400, 64_000)
        try:
            got = await poll(
                edge.url,
                lambda s: s.get("rony_gateway_active_websocket_conns") == 0,
                "the slow client cut off",
            )
            handled = got.sum("rony_rpc_requests_total")
            sent = got.get("rony_gateway_outgoing_websocket_message_total")
            assert 4 <= sent < handled <= 400
        finally:
            writer.transport.abort()


async def test_write_queue_bytes_cuts_off_a_slow_reader_of_large_replies() -> None:
    # A frame count far above what is asked (write_queue_size 100,000), a byte bound of
    # 1 MiB: 400 replies of 64 KiB (25 MiB) to a client that never reads must be cut off by
    # the bytes, the queue never holding much more than the bound.
    async with serve(app, write_queue_size=100_000, write_queue_bytes=1 << 20) as edge:
        host, port = edge.gateway_address
        _, writer = await _stalled_ws(host, port, 400, 64_000)
        try:
            # Without the byte bound the 400 frames fit the frame bound and the connection
            # stays open (the client never closes it): only write_queue_bytes closes it.
            await poll(
                edge.url,
                lambda s: (
                    s.get("rony_gateway_websocket_write_queue_frames") > 0
                    or s.get("rony_gateway_active_websocket_conns") == 0
                ),
                "frames queued",
            )
            await poll(
                edge.url,
                lambda s: s.get("rony_gateway_active_websocket_conns") == 0,
                "the slow reader cut off",
            )
        finally:
            writer.transport.abort()
        # The node serves others afterwards.
        async with AsyncClient(edge.url, transport="ws") as ws:
            assert (await ws.call(C_Echo, Ping(ID=3), Pong)).ID == 3


def test_write_queue_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="write_queue_bytes"):
        EdgeSettings(write_queue_bytes=0)


async def test_refused_connection_is_counted() -> None:
    async with serve(app, max_connections=1) as edge:
        async with AsyncClient(edge.url, transport="ws") as ws:
            await ws.call(C_Echo, Ping(ID=1), Pong)
            # A second connection is over the limit: 503, and counted.
            assert await status_of(edge.url + "/metrics") == 503
            await ws.call(C_Echo, Ping(ID=2), Pong)

        async def scrape_when_free() -> Scrape:
            async with asyncio.timeout(15):
                while True:
                    async with aiohttp.ClientSession() as s, s.get(edge.url + "/metrics") as r:
                        if r.status == 200:
                            return Scrape(await r.text())
                    await asyncio.sleep(0.02)

        got = await scrape_when_free()  # (the WS's close may take a moment to be seen)
        assert got.get("rony_gateway_connections_refused_total", reason="max_connections") >= 1


async def test_cluster_gossip_and_tunnel(tmp_path: Path) -> None:
    nodes = {"a": 1, "b": 2, "c": 2}
    async with edges(tmp_path, tunnel_app, nodes, tunnel=True) as (a, b, c):
        async with AsyncClient(a.url, transport="ws") as client:
            for _ in range(6):
                # a -> b or c, through the tunnel
                await client.call(C_Forward, Ping(ID=2), KeyValue)
            with pytest.raises(rony_errors.UnavailableError):
                await client.call(C_Forward, Ping(ID=9), KeyValue)  # no member of replica set 9
        # Probes are sent on the gossip's own clock: wait until each node has probed.
        scrapes: dict[str, Scrape] = {}
        for edge in (a, b, c):
            scrapes[edge.server_id] = await poll(
                edge.url, lambda s: s.get("rony_gossip_probes_total") > 0, "a probe"
            )
    sa, sb, sc = scrapes["a"], scrapes["b"], scrapes["c"]
    for s in (sa, sb, sc):
        assert s.get("rony_gossip_members", state="alive") == 3
        assert s.get("rony_gossip_members", state="dead") == 0
        assert s.get("rony_gossip_probe_failures_total") >= 0
        assert s.get("rony_gossip_refutes_total") >= 0
        assert s.get("rony_gossip_packets_dropped_total") >= 0
    # The caller: six answered calls, one that found no member (E02, never sent).
    assert sa.get("rony_tunnel_outgoing_message_total", outcome="ok") == 6
    assert sa.get("rony_tunnel_outgoing_message_total", outcome="E02") == 1
    assert sa.get("rony_tunnel_round_trip_duration_seconds_count") == 6
    assert sa.get("rony_tunnel_round_trip_duration_seconds_bucket", le="+Inf") == 6
    assert sa.get("rony_tunnel_round_trip_duration_seconds_sum") > 0
    assert sa.get("rony_tunnel_incoming_message_total") == 0
    # The callees: the six requests arrived as tunnel requests of TunnelProc.Where.
    served = sum(s.get("rony_tunnel_incoming_message_total") for s in (sb, sc))
    assert served == 6
    assert (
        sum(
            s.sum("rony_rpc_requests_total", kind="tunnel", constructor="TunnelProc.Where")
            for s in (sb, sc)
        )
        == 6
    )
    assert (
        sa.get(
            "rony_rpc_requests_total",
            kind="gateway",
            constructor="TunnelProc.Forward",
            outcome="E02",
        )
        == 1
    )
    names = sa.names() | sb.names()
    assert names >= CLUSTER


def test_readme_table_names_only_asserted_metrics() -> None:
    """Every metric in the README's metrics table is one these tests assert, and back."""
    text = README.read_text()
    section = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    table = {m for m in re.findall(r"^\| `([a-z_]+)`", section, flags=re.M)}
    assert table, "the README has no metrics table"
    assert table == SINGLE_NODE | CLUSTER


# --- exposition settings ------------------------------------------------------------------------


async def test_metrics_off_is_404() -> None:
    async with serve(app, metrics=False) as edge:
        assert await status_of(edge.url + "/metrics") == 404
        assert edge.dispatcher.metrics is None
        assert edge.metrics_registry is None
    async with serve(app, metrics_path=None) as edge:
        assert await status_of(edge.url + "/metrics") == 404
        assert edge.metrics_registry is not None  # still counted (the status page's rates)


async def test_custom_path_and_separate_listener() -> None:
    async with serve(app, metrics_path="/internal/prom") as edge:
        assert await status_of(edge.url + "/metrics") == 404
        got = await scrape(edge.url, "/internal/prom")
        assert "rony_server_info" in got.families
    async with serve(app, server_id="sep", metrics_listen="127.0.0.1:0") as edge:
        assert await status_of(edge.url + "/metrics") == 404  # not on the gateway port
        listener = edge.metrics_listener
        assert listener is not None
        host, port = listener.address
        assert port != edge.gateway_address[1]
        metrics_url = f"http://{host}:{port}"
        async with AsyncClient(edge.url, transport="http") as http:
            await http.call(C_Echo, Ping(ID=1), Pong)
        got = await scrape(metrics_url)
        assert got.get("rony_server_info", server_id="sep") == 1
        assert got.get("rony_gateway_incoming_http_message_total") == 1
        assert await status_of(metrics_url + "/other") == 404
        async with aiohttp.ClientSession() as s, s.post(metrics_url + "/metrics") as r:
            assert r.status == 405
    # Stopped with the node.
    with pytest.raises(aiohttp.ClientConnectionError):
        await status_of(metrics_url + "/metrics")


async def test_metrics_networks_refuse_other_clients() -> None:
    async with (
        serve(app, metrics_networks=("10.0.0.0/8",)) as edge,
        aiohttp.ClientSession() as http,
        http.get(edge.url + "/metrics") as r,
    ):
        assert r.status == 403
        assert "metrics_networks" in await r.text()


async def test_each_edge_has_its_own_registry() -> None:
    async with serve(app, server_id="one") as one, serve(app, server_id="two") as two:
        async with AsyncClient(one.url, transport="http") as http:
            await http.call(C_Echo, Ping(ID=1), Pong)
        s1, s2 = await scrape(one.url), await scrape(two.url)
        assert s1.get("rony_server_info", server_id="one") == 1
        assert s2.get("rony_server_info", server_id="two") == 1
        assert s1.get("rony_gateway_incoming_http_message_total") == 1
        assert s2.get("rony_gateway_incoming_http_message_total") == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics_path": "metrics"}, "must start with '/'"),
        ({"metrics_path": "/healthz"}, "collides"),
        ({"metrics_path": "/status.json"}, "collides"),
        ({"metrics_listen": "nope"}, "metrics_listen"),
        ({"metrics_listen": "127.0.0.1:0", "metrics_path": None}, "needs a metrics_path"),
        ({"metrics_networks": ("10.0.0.300/8",)}, "metrics_networks"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EdgeSettings(**kwargs)


async def test_label_values_are_escaped_and_app_collectors_served() -> None:
    from prometheus_client import Counter

    odd = 'we"ird\\id\nx'
    async with serve(app, server_id=odd) as edge:
        assert edge.metrics_registry is not None
        mine = Counter("myapp_things", "Things the app did.", registry=edge.metrics_registry)
        mine.inc(3)
        got = await scrape(edge.url)
        assert got.get("rony_server_info", server_id=odd) == 1  # parsed back as it was
        assert got.get("myapp_things_total") == 3
