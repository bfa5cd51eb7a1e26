"""Prometheus exposition of an Edge: ``GET metrics_path`` on the gateway, or its own listener.

Theory of operation
-------------------
Each Edge has a ``CollectorRegistry`` of its own (``Edge.metrics_registry``; several Edges run
in one test process, and an app may register its own collectors there). It holds
:class:`EdgeCollector`, which reads the plain counts the node's parts keep
(``rony.server._metrics``: the dispatcher's request series, the gateway's counters, the remote
calls; ``Store.counters()``; the membership's ``state()`` and ``stats``) once per scrape and
builds the metric families then, plus prometheus_client's process and platform collectors.
Nothing of prometheus_client runs per request.

Who may read it: clients whose address (``X-Forwarded-For`` when the peer is one of
``trusted_proxies``) is in ``metrics_networks`` (default: loopback and private networks), as
the status page; others get 403. A separate listener (``metrics_listen``) serves only
``metrics_path`` (404 elsewhere), with the same check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString as _go_float

from rony.core import Kind
from rony.server._metrics import BUCKETS
from rony.server.gateway._cors import client_ip, parse_networks
from rony.server.gateway._status import Networks, allowed

if TYPE_CHECKING:
    from rony.server._edge import Edge

__all__ = ["EdgeCollector", "MetricsEndpoint", "MetricsListener", "edge_registry"]


def _bound(value: float) -> str:
    """A bucket bound as Prometheus writes it (``0.0001``, ``1.0``, ``+Inf``)."""
    text: str = _go_float(value)  # type: ignore[no-untyped-call]
    return text


_BOUNDS = (*(_bound(b) for b in BUCKETS), "+Inf")
_KINDS = {Kind.GATEWAY: "gateway", Kind.TUNNEL: "tunnel"}
_STATES = ("alive", "suspect", "dead", "left")
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _cumulative(buckets: Sequence[int], bounds: Sequence[str]) -> list[tuple[str, float]]:
    """Per-bucket counts (the last: over the largest bound) -> Prometheus' cumulative ones."""
    out: list[tuple[str, float]] = []
    running = 0
    for bound, n in zip(bounds, buckets, strict=True):
        running += n
        out.append((bound, running))
    return out


class EdgeCollector(Collector):
    """The node's own metrics, read at scrape time (see the module's docstring and README)."""

    def __init__(self, edge: Edge) -> None:
        self._edge = edge

    def collect(self) -> Iterable[Metric]:
        from rony.server import __version__

        edge = self._edge
        info = InfoMetricFamily("rony_server", "This node: its server id, replica set, version.")
        info.add_metric(
            [],
            {
                "server_id": edge.server_id,
                "replica_set": str(edge.replica_set),
                "version": __version__,
            },
        )
        yield info
        started = edge.started_at
        up = time.monotonic() - started if started is not None else 0.0
        yield GaugeMetricFamily("rony_uptime_seconds", "Seconds since the node started.", up)
        yield from self._requests()
        yield from self._gateway()
        yield from self._store()
        yield from self._gossip()
        yield from self._tunnel()

    def _requests(self) -> Iterable[Metric]:
        metrics = self._edge.dispatcher.metrics
        if metrics is None:
            return
        requests = CounterMetricFamily(
            "rony_rpc_requests",
            "Requests handled, by constructor (Service.Method, or the message name; 'unknown' "
            "for those without a handler), kind (gateway or tunnel) and outcome ('ok', the "
            "Error code, or 'cancelled').",
            labels=("kind", "constructor", "outcome"),
        )
        duration = HistogramMetricFamily(
            "rony_rpc_request_duration_seconds",
            "Time from a request's dispatch to the end of its handler chain.",
            labels=("kind", "constructor"),
        )
        tunnel_in = 0
        for s in metrics.series():
            kind = _KINDS.get(s.kind, s.kind.name.lower())
            count = s.count
            failed = 0
            for code, n in s.errors.items():
                requests.add_metric((kind, s.name, code), n)
                failed += n
            requests.add_metric((kind, s.name, "ok"), count - failed)
            duration.add_metric((kind, s.name), _cumulative(s.buckets, _BOUNDS), s.sum)
            if s.kind is Kind.TUNNEL:
                tunnel_in += count
        yield requests
        yield duration
        yield CounterMetricFamily(
            "rony_tunnel_incoming_message",
            "Requests other nodes sent here through the tunnel (Go Rony's name).",
            tunnel_in,
        )

    def _gateway(self) -> Iterable[Metric]:
        gateway = self._edge.gateway
        if gateway is None:
            return
        c = gateway.counters
        yield GaugeMetricFamily(
            "rony_gateway_connections_open",
            "TCP connections open on the gateway (WebSocket and HTTP).",
            gateway.open_connections,
        )
        ws_conns = list(gateway.ws_conns.values())
        yield GaugeMetricFamily(
            "rony_gateway_active_websocket_conns",
            "WebSocket connections open (Go Rony's gateway_active_websocket_conns_total).",
            len(ws_conns),
        )
        yield CounterMetricFamily(
            "rony_gateway_connections_accepted",
            "TCP connections the gateway accepted.",
            c.conns_total,
        )
        refused = CounterMetricFamily(
            "rony_gateway_connections_refused",
            "Connections (or WebSocket upgrades) refused, by reason: max_connections, "
            "stopping, handshake, connect_hook.",
            labels=("reason",),
        )
        for reason, n in sorted(c.refused.items()):
            refused.add_metric((reason,), n)
        yield refused
        for name, value, what in (
            ("incoming_websocket_message", c.ws_in, "WebSocket data frames received"),
            ("outgoing_websocket_message", c.ws_out, "WebSocket data frames sent (pushes too)"),
            ("incoming_http_message", c.http_in, "HTTP RPC and REST requests received"),
            ("outgoing_http_message", c.http_out, "HTTP RPC and REST responses sent"),
            ("incoming_websocket_bytes", c.ws_in_bytes, "WebSocket frame payload bytes received"),
            ("outgoing_websocket_bytes", c.ws_out_bytes, "WebSocket frame payload bytes sent"),
            ("incoming_http_bytes", c.http_in_bytes, "HTTP RPC and REST body bytes received"),
            ("outgoing_http_bytes", c.http_out_bytes, "HTTP RPC and REST body bytes sent"),
        ):
            yield CounterMetricFamily(f"rony_gateway_{name}", what + ".", value)
        depths = [conn.queued for conn in ws_conns]
        yield GaugeMetricFamily(
            "rony_gateway_websocket_write_queue_frames",
            "Frames waiting in the write queues of all WebSockets (clients slower than us).",
            sum(depths),
        )
        yield GaugeMetricFamily(
            "rony_gateway_websocket_write_queue_max_frames",
            "Frames waiting in the longest write queue of one WebSocket (write_queue_size "
            "closes it).",
            max(depths, default=0),
        )

    def _store(self) -> Iterable[Metric]:
        store = self._edge._store
        if store is None:
            return
        counts = store.counters()
        yield CounterMetricFamily(
            "rony_store_writes",
            "Store write operations committed (set, delete, transact, ...).",
            counts.writes,
        )
        yield CounterMetricFamily(
            "rony_store_commits",
            "Commits run by the store's writer thread (durable mode: each one fsync, for a "
            "whole group of writes).",
            counts.commits,
        )
        buckets = [(_bound(b), float(n)) for b, n in counts.commit_histogram]
        yield HistogramMetricFamily(
            "rony_store_commit_duration_seconds",
            "Duration of the writer thread's commits (fsync included in durable mode).",
            buckets=buckets,
            sum_value=counts.commit_seconds,
        )

    def _gossip(self) -> Iterable[Metric]:
        cluster = self._edge.cluster
        if cluster is None:
            return
        by_state = dict.fromkeys(_STATES, 0)
        for info in cluster.state():
            by_state[info.state_name] = by_state.get(info.state_name, 0) + 1
        members = GaugeMetricFamily(
            "rony_gossip_members",
            "Entries of the gossip table by state (this node counts as alive).",
            labels=("state",),
        )
        for state, n in by_state.items():
            members.add_metric((state,), n)
        yield members
        stats = cluster.stats
        for key, what in (
            ("probes", "Probes (pings) this node sent to members"),
            ("probe_failures", "Probes that got no ack, direct or indirect"),
            ("refutes", "Times this node refuted a suspicion of itself"),
            ("packets_dropped", "Gossip packets dropped (malformed, foreign label, too large)"),
        ):
            yield CounterMetricFamily(f"rony_gossip_{key}", what + ".", stats.get(key, 0))

    def _tunnel(self) -> Iterable[Metric]:
        calls = self._edge.remote_calls
        out = CounterMetricFamily(
            "rony_tunnel_outgoing_message",
            "Calls to other nodes (execute_remote), by outcome: 'ok', the Error code the "
            "remote handler answered or the call failed with (E02 unavailable, E06 "
            "timeout), 'cancelled'.",
            labels=("outcome",),
        )
        for outcome, n in sorted(calls.outcomes.items()):
            out.add_metric((outcome,), n)
        yield out
        yield HistogramMetricFamily(
            "rony_tunnel_round_trip_duration_seconds",
            "Duration of answered calls to other nodes, retries included.",
            buckets=_cumulative(calls.buckets, _BOUNDS),
            sum_value=calls.sum,
        )


def edge_registry(edge: Edge) -> CollectorRegistry:
    """A registry of the Edge's own: its collector, process and platform metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EdgeCollector(edge))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


class MetricsEndpoint:
    """``GET metrics_path``: the registry's text exposition, to ``metrics_networks`` only."""

    def __init__(
        self,
        registry: CollectorRegistry,
        path: str,
        networks: Iterable[str],
        trusted_proxies: Iterable[str] = (),
    ) -> None:
        self.registry = registry
        self.path = path
        self._networks: Networks = parse_networks(tuple(networks))
        self._trusted = parse_networks(tuple(trusted_proxies))

    def respond(self, request: web.BaseRequest) -> web.Response:
        peer = request.remote or ""
        client = client_ip(peer, request.headers, self._trusted) if self._trusted else peer
        if not allowed(client, self._networks):
            return web.Response(
                status=403,
                text=f"metrics are served to metrics_networks only, not to {client}\n",
                headers=_HEADERS,
            )
        return web.Response(
            body=generate_latest(self.registry),
            headers={**_HEADERS, "Content-Type": CONTENT_TYPE_LATEST},
        )


class MetricsListener:
    """A listener of its own (``metrics_listen``) that serves only the metrics path."""

    def __init__(self, endpoint: MetricsEndpoint, host: str, port: int) -> None:
        self._endpoint = endpoint
        self._host = host
        self._port = port
        self._runner: web.ServerRunner | None = None
        self.address: tuple[str, int] = (host, port)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path != self._endpoint.path:
            return web.Response(status=404, text="not found\n", headers=_HEADERS)
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={**_HEADERS, "Allow": "GET, HEAD"})
        return self._endpoint.respond(request)

    async def start(self) -> tuple[str, int]:
        server = web.Server(self._handle, access_log=None)
        self._runner = web.ServerRunner(server, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        bound = site._server
        assert isinstance(bound, asyncio.base_events.Server)
        sockname = bound.sockets[0].getsockname()
        self.address = (str(sockname[0]), int(sockname[1]))
        return self.address

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
