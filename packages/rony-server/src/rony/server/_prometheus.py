"""Prometheus exposition of an Edge: ``GET metrics_path`` on the gateway, or its own listener.

Theory of operation
-------------------
A scrape is the node's own metrics, then its registry's. :class:`EdgeCollector` reads the
plain counts the node's parts keep (``rony.server._metrics``: the dispatcher's request series,
the gateway's counters, the remote calls; ``Store.counters()``; the membership's ``state()``
and ``stats``) once per scrape and writes them in the text format itself, from label strings
made once per series (prometheus_client's writer re-escapes every label of every sample:
~40 ms for 200 request series, see benchmarks/metrics.py). Then the Edge's own
``CollectorRegistry`` (``Edge.metrics_registry``; not the global one, since several Edges run in
one test process) is rendered by prometheus_client: its process and platform collectors and
any the app registers there. Nothing of prometheus_client runs per request.

Who may read it: clients whose address (``X-Forwarded-For`` when the peer is one of
``trusted_proxies``) is in ``metrics_networks`` (default: loopback and private networks), as
the status page; others get 403. A separate listener (``metrics_listen``) serves only
``metrics_path`` (404 elsewhere), with the same check.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
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
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The text exposition format, as both our writer and prometheus_client's write it."""


def _num(value: float) -> str:
    """A sample value as the text format writes it (integers exactly)."""
    if type(value) is int:
        return str(value)
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _label(value: str) -> str:
    """A label value, escaped for the text format (a server id comes from an operator)."""
    if "\\" in value or '"' in value or "\n" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def _labels(**labels: str) -> str:
    """``{a="x",b="y"}`` (names sorted, as prometheus_client writes them)."""
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in sorted(labels.items())) + "}"


class _Text:
    """The text exposition format (version 0.0.4), written straight from our counts.

    prometheus_client's ``generate_latest`` escapes and validates every label of every sample
    again on each scrape (~12 µs a sample line here: 40 ms for 200 request series); ours are
    written from label strings made once per series."""

    __slots__ = ("out",)

    def __init__(self) -> None:
        self.out: list[str] = []

    def head(self, name: str, kind: str, help_text: str) -> None:
        """A family's HELP and TYPE lines (a counter's named with _total, as its samples)."""
        if kind == "counter" and not name.endswith("_total"):
            name += "_total"
        self.out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")

    def one(self, name: str, kind: str, help_text: str, value: float) -> None:
        """A family of one sample without labels (a counter's name ends with _total)."""
        self.head(name, kind, help_text)
        self.out.append(f"{name} {_num(value)}\n")

    def line(self, name: str, labels: str, value: float) -> None:
        self.out.append(f"{name}{labels} {_num(value)}\n")

    def histogram(
        self, name: str, labels: str, buckets: Sequence[int], total: float, bounds: Sequence[str]
    ) -> None:
        """One histogram series: per-bucket counts (the last: over the largest bound) and the
        sum; ``labels`` the series' own, without braces ("" for none)."""
        sep = "," if labels else ""
        out = self.out
        running = 0
        for bound, n in zip(bounds, buckets, strict=True):
            running += n
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound}"}} {running}\n')
        braces = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_count{braces} {running}\n{name}_sum{braces} {_num(total)}\n")

    def text(self) -> str:
        return "".join(self.out)


class EdgeCollector:
    """The node's own metrics, read at scrape time (see the module's docstring and README),
    written as text (``render``)."""

    def __init__(self, edge: Edge) -> None:
        self._edge = edge
        # A request series' label strings, made on its first scrape: series -> (the
        # histogram's labels, the requests' labels up to the outcome).
        self._series_labels: dict[int, tuple[str, str]] = {}

    def render(self) -> str:
        from rony.server import __version__

        edge = self._edge
        w = _Text()
        w.head("rony_server_info", "gauge", "This node: its server id, replica set, version.")
        info = _labels(
            server_id=edge.server_id, replica_set=str(edge.replica_set), version=__version__
        )
        w.line("rony_server_info", info, 1)
        started = edge.started_at
        up = time.monotonic() - started if started is not None else 0.0
        w.one("rony_uptime_seconds", "gauge", "Seconds since the node started.", up)
        self._requests(w)
        self._gateway(w)
        self._store(w)
        self._gossip(w)
        self._tunnel(w)
        return w.text()

    def _requests(self, w: _Text) -> None:
        metrics = self._edge.dispatcher.metrics
        if metrics is None:
            return
        series = metrics.series()
        made = self._series_labels
        labels = []
        for s in series:
            got = made.get(id(s))
            if got is None:
                kind = _KINDS.get(s.kind, s.kind.name.lower())
                name = _label(s.name)
                got = made[id(s)] = (
                    f'constructor="{name}",kind="{kind}"',
                    f'{{constructor="{name}",kind="{kind}",outcome="',
                )
            labels.append(got)
        w.head(
            "rony_rpc_requests",
            "counter",
            "Requests handled, by constructor (Service.Method, or the message name; 'unknown' "
            "for those without a handler), kind (gateway or tunnel) and outcome ('ok', the "
            "Error code, or 'cancelled').",
        )
        out = w.out
        tunnel_in = 0
        for s, (_, prefix) in zip(series, labels, strict=True):
            count = s.count
            failed = 0
            for code, n in s.errors.items():
                out.append(f'rony_rpc_requests_total{prefix}{_label(code)}"}} {n}\n')
                failed += n
            out.append(f'rony_rpc_requests_total{prefix}ok"}} {count - failed}\n')
            if s.kind is Kind.TUNNEL:
                tunnel_in += count
        w.head(
            "rony_rpc_request_duration_seconds",
            "histogram",
            "Time from a request's dispatch to the end of its handler chain.",
        )
        for s, (hist, _) in zip(series, labels, strict=True):
            w.histogram("rony_rpc_request_duration_seconds", hist, s.buckets, s.sum, _BOUNDS)
        w.one(
            "rony_tunnel_incoming_message_total",
            "counter",
            "Requests other nodes sent here through the tunnel (Go Rony's name).",
            tunnel_in,
        )

    def _gateway(self, w: _Text) -> None:
        gateway = self._edge.gateway
        if gateway is None:
            return
        c = gateway.counters
        w.one(
            "rony_gateway_connections_open",
            "gauge",
            "TCP connections open on the gateway (WebSocket and HTTP).",
            gateway.open_connections,
        )
        ws_conns = list(gateway.ws_conns.values())
        w.one(
            "rony_gateway_active_websocket_conns",
            "gauge",
            "WebSocket connections open (Go Rony's gateway_active_websocket_conns_total).",
            len(ws_conns),
        )
        w.one(
            "rony_gateway_connections_accepted_total",
            "counter",
            "TCP connections the gateway accepted.",
            c.conns_total,
        )
        w.head(
            "rony_gateway_connections_refused",
            "counter",
            "Connections (or WebSocket upgrades) refused, by reason: max_connections, "
            "stopping, handshake, connect_hook.",
        )
        for reason, n in sorted(c.refused.items()):
            w.line("rony_gateway_connections_refused_total", _labels(reason=reason), n)
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
            w.one(f"rony_gateway_{name}_total", "counter", what + ".", value)
        depths = [conn.queued for conn in ws_conns]
        w.one(
            "rony_gateway_websocket_write_queue_frames",
            "gauge",
            "Frames waiting in the write queues of all WebSockets (clients slower than us).",
            sum(depths),
        )
        w.one(
            "rony_gateway_websocket_write_queue_max_frames",
            "gauge",
            "Frames waiting in the longest write queue of one WebSocket (write_queue_size "
            "closes it).",
            max(depths, default=0),
        )

    def _store(self, w: _Text) -> None:
        store = self._edge._store
        if store is None:
            return
        counts = store.counters()
        w.one(
            "rony_store_writes_total",
            "counter",
            "Store write operations committed (set, delete, transact, ...).",
            counts.writes,
        )
        w.one(
            "rony_store_commits_total",
            "counter",
            "Commits run by the store's writer thread (durable mode: each one fsync, for a "
            "whole group of writes).",
            counts.commits,
        )
        w.head(
            "rony_store_commit_duration_seconds",
            "histogram",
            "Duration of the writer thread's commits (fsync included in durable mode).",
        )
        per_bucket: list[int] = []
        previous = 0
        for _, cumulative in counts.commit_histogram:
            per_bucket.append(cumulative - previous)
            previous = cumulative
        bounds = [_bound(b) for b, _ in counts.commit_histogram]
        w.histogram(
            "rony_store_commit_duration_seconds", "", per_bucket, counts.commit_seconds, bounds
        )

    def _gossip(self, w: _Text) -> None:
        cluster = self._edge.cluster
        if cluster is None:
            return
        by_state = dict.fromkeys(_STATES, 0)
        for info in cluster.state():
            by_state[info.state_name] = by_state.get(info.state_name, 0) + 1
        w.head(
            "rony_gossip_members",
            "gauge",
            "Entries of the gossip table by state (this node counts as alive).",
        )
        for state, n in by_state.items():
            w.line("rony_gossip_members", _labels(state=state), n)
        stats = cluster.stats
        for key, what in (
            ("probes", "Probes (pings) this node sent to members"),
            ("probe_failures", "Probes that got no ack, direct or indirect"),
            ("refutes", "Times this node refuted a suspicion of itself"),
            ("packets_dropped", "Gossip packets dropped (malformed, foreign label, too large)"),
        ):
            w.one(f"rony_gossip_{key}_total", "counter", what + ".", stats.get(key, 0))

    def _tunnel(self, w: _Text) -> None:
        calls = self._edge.remote_calls
        w.head(
            "rony_tunnel_outgoing_message",
            "counter",
            "Calls to other nodes (execute_remote), by outcome: 'ok', the Error code the "
            "remote handler answered or the call failed with (E02 unavailable, E06 "
            "timeout), 'cancelled'.",
        )
        for outcome, n in sorted(calls.outcomes.items()):
            w.line("rony_tunnel_outgoing_message_total", _labels(outcome=outcome), n)
        w.head(
            "rony_tunnel_round_trip_duration_seconds",
            "histogram",
            "Duration of answered calls to other nodes, retries included.",
        )
        w.histogram(
            "rony_tunnel_round_trip_duration_seconds", "", calls.buckets, calls.sum, _BOUNDS
        )


def edge_registry() -> CollectorRegistry:
    """A registry of the Edge's own for the metrics served after the node's: process and
    platform metrics, and whatever collectors the app registers in it."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


class MetricsEndpoint:
    """``GET metrics_path``: the registry's text exposition, to ``metrics_networks`` only."""

    def __init__(
        self,
        collector: EdgeCollector,
        registry: CollectorRegistry,
        path: str,
        networks: Iterable[str],
        trusted_proxies: Iterable[str] = (),
    ) -> None:
        self.collector = collector
        self.registry = registry
        self.path = path
        self._networks: Networks = parse_networks(tuple(networks))
        self._trusted = parse_networks(tuple(trusted_proxies))

    def respond(self, request: web.BaseRequest) -> web.Response:
        client = client_ip(request.remote or "", request.headers, self._trusted)
        if not allowed(client, self._networks):
            return web.Response(
                status=403,
                text=f"metrics are served to metrics_networks only, not to {client}\n",
                headers=_HEADERS,
            )
        body = self.collector.render().encode() + generate_latest(self.registry)
        return web.Response(
            body=body,
            headers={**_HEADERS, "Content-Type": CONTENT_TYPE},
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
