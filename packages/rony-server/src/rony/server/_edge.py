"""The Edge: one Rony node. Owns the gateway, the store, and slots for the cluster and tunnel.

Lifecycle (as grpc.aio servers): ``await edge.start()`` opens the store in ``data_dir``, runs
the app's startup hooks, then binds the gateway; ``await edge.stop(grace)`` (idempotent, safe
to call concurrently) stops accepting, lets in-flight requests finish within ``grace``, closes
WebSockets with 1001, runs the shutdown hooks and closes the store;
``await edge.wait_for_termination()`` returns once stopped. ``async with Edge(app) as edge:``
does start and stop.

Handlers reach the node through ``ctx.services``, which is the Edge (``edge_of(ctx)`` types it):
``server_id``, ``replica_set``, ``members()``, ``push(conn_id, env)``, ``store`` and, when the
node runs one, ``cluster`` (gossip membership: ``members()``, ``members_by_replica_set(rs)``,
``member_by_id``, ``member_by_hash``, ``total_replicas()``, ``subscribe(...)``).

With a cluster, ``start()`` binds the gateway first (its addresses go into the gossip meta),
then joins; ``stop()`` leaves the cluster first, while the gateway still serves, so peers stop
sending clients here before its connections close.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf.message import Message

from rony.core import (
    C_Edges,
    C_GetAllNodes,
    C_GetNodes,
    C_Ping,
    C_Pong,
    Edges,
    GetNodes,
    MessageEnvelope,
    Ping,
    Pong,
    RequestCtx,
)
from rony.core import Edge as EdgeMessage
from rony.server._addrs import advertised_hosts, hostport, is_wildcard
from rony.server._app import App, HandlerEntry
from rony.server._dispatch import Dispatcher, DispatchSettings
from rony.server._metrics import RemoteCalls
from rony.server._remote import remote_call, serve_tunnel
from rony.server._settings import EdgeSettings, parse_hostport
from rony.server._tracing import TracedStore, Tracing
from rony.server.gateway import Gateway

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider
    from prometheus_client import CollectorRegistry

    from rony.server._prometheus import MetricsEndpoint, MetricsListener
    from rony.server.cluster._ca import TLSFiles
    from rony.server.cluster._cluster import Cluster
    from rony.server.tunnel import Tunnel
    from rony.store import AsyncStore

__all__ = ["Edge"]

M = TypeVar("M", bound=Message)

log = logging.getLogger("rony.server")


# --- the store ------------------------------------------------------------------------------


async def _open_store(path: Path) -> AsyncStore:
    """The embedded store (rony.store's async face) in folder ``path`` (created if missing)."""
    from rony.store import AsyncStore

    await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
    return await AsyncStore.open(path)


# --- builtins ---------------------------------------------------------------------------------


def _builtins(edge: Edge) -> dict[int, HandlerEntry]:
    """Go Rony's builtin handlers (``edge/builtin.go``): Ping, GetNodes, GetAllNodes."""

    async def ping(ctx: RequestCtx) -> None:
        req = ctx.message(Ping)
        ctx.push_message(Pong(ID=req.ID), constructor=C_Pong)

    async def get_nodes(ctx: RequestCtx) -> None:
        req = ctx.message(GetNodes)
        ctx.push_message(Edges(Nodes=edge.nodes(req.ReplicaSet)), constructor=C_Edges)

    async def get_all_nodes(ctx: RequestCtx) -> None:
        ctx.message(GetNodes)  # Go Rony decodes the request as a GetNodes too
        ctx.push_message(Edges(Nodes=edge.all_nodes()), constructor=C_Edges)

    return {
        C_Ping: HandlerEntry(C_Ping, (ping,), Ping, builtin=True),
        C_GetNodes: HandlerEntry(C_GetNodes, (get_nodes,), GetNodes, builtin=True),
        C_GetAllNodes: HandlerEntry(C_GetAllNodes, (get_all_nodes,), GetNodes, builtin=True),
    }


def edge_of(ctx: RequestCtx) -> Edge:
    """The Edge serving ``ctx``: typed access to its store (and later cluster and tunnel).

    ``ctx.services`` is typed as rony.core's ``Services`` protocol (rony.core knows nothing of
    servers); a handler that needs the store writes ``edge_of(ctx).store``.
    """
    services = ctx.services
    if not isinstance(services, Edge):
        raise RuntimeError(f"request {ctx.request_id} is not served by an Edge")
    return services


def _load_cluster_tls(s: EdgeSettings) -> TLSFiles | None:
    """The node's TLS files, read and checked now, so a bad file fails before anything binds."""
    files = s.tls_files
    if files is None:
        return None
    from rony.server.cluster._ca import load_tls  # cryptography: only for a cluster

    return load_tls(*files)


class Edge:
    """One Rony node serving ``app``. Settings from ``settings`` and keyword overrides.

    ``tracer_provider``: the OpenTelemetry TracerProvider the node traces with; None = the
    global one (``trace.set_tracer_provider``), read by ``start()``."""

    def __init__(
        self,
        app: App,
        settings: EdgeSettings | None = None,
        *,
        tracer_provider: TracerProvider | None = None,
        **overrides: Any,
    ) -> None:
        if not isinstance(app, App):
            raise TypeError(f"Edge needs an App, got {type(app).__name__}")
        base = settings if settings is not None else EdgeSettings()
        self.app = app
        self.settings: EdgeSettings = base.replace(**overrides) if overrides else base
        self._store: AsyncStore | None = None  # opened by start() in settings.data_dir
        self._tracer_provider = tracer_provider
        # The gossip membership, when settings.gossip_host is set; built by start().
        self.cluster: Cluster | None = None
        self._cluster_tls = _load_cluster_tls(self.settings)  # CAError (a ValueError) if bad
        self._tunnel_bound: tuple[str, int] | None = None
        self._remote_failures: dict[str, float] = {}  # server id -> loop time (_remote)
        self._sender_id = self.settings.server_id.encode()  # TunnelMessage.SenderID
        # The node-to-node tunnel, when settings.tunnel_host is set; built by start().
        self.tunnel: Tunnel | None = None
        self.gateway: Gateway | None = None
        self.dispatcher = Dispatcher(
            app,
            settings=DispatchSettings(
                server_id=self.settings.server_id,
                limits=self.settings.limits,
                handler_timeout=self.settings.handler_timeout,
                json_enabled=self.settings.json_enabled,
                access_log=self.settings.access_log,
                metrics=self.settings.metrics,
            ),
            services=self,
            builtins=_builtins(self),
        )
        # Metrics (rony.server._metrics, _prometheus): calls to other nodes; the registry
        # /metrics renders after the node's own metrics (built by start() when metrics are on:
        # process and platform metrics, and any collector the app registers in it), the
        # separate listener (metrics_listen) and when the node started.
        self.remote_calls = RemoteCalls()
        self.metrics_registry: CollectorRegistry | None = None
        self.metrics_listener: MetricsListener | None = None
        self.started_at: float | None = None
        self._state = "new"
        self._start_lock: asyncio.Lock | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._terminated: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"Edge({self.app.name!r}, server_id={self.server_id!r}, state={self._state})"

    # --- identity (rony.core.Services) --------------------------------------------------------

    @property
    def server_id(self) -> str:
        return self.settings.server_id

    @property
    def replica_set(self) -> int:
        return self.settings.replica_set

    @property
    def gateway_address(self) -> tuple[str, int]:
        """The bound (host, port) of the gateway; valid after ``start()``."""
        if self.gateway is None:
            raise RuntimeError("the gateway is not started")
        return self.gateway.address

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the gateway (a wildcard bind reads as loopback)."""
        host, port = self.gateway_address
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return f"http://{hostport(host, port)}"

    @property
    def advertised_addrs(self) -> list[str]:
        """``host:port`` list clients are given (GetNodes, redirects, the gossip meta).

        ``settings.advertised_addrs`` when set; else ``advertise_host`` with the bound port;
        else the bound address, where a wildcard bind (0.0.0.0, ::) gives the host's
        non-loopback interface addresses: never the wildcard itself, which no client can dial.
        """
        if self.settings.advertised_addrs:
            return list(self.settings.advertised_addrs)
        if self.gateway is None:
            return []
        host, port = self.gateway.address
        return [hostport(h, port) for h in advertised_hosts(host, self.settings.advertise_host)]

    def this_node(self) -> EdgeMessage:
        return EdgeMessage(
            ReplicaSet=self.replica_set, ServerID=self.server_id, HostPorts=self.advertised_addrs
        )

    def members(self, replica_set: int | None = None) -> Sequence[EdgeMessage]:
        """Nodes of ``replica_set`` (this node's when None), for redirects. Without a
        cluster: this node alone."""
        rs = self.replica_set if replica_set is None else replica_set
        if self.cluster is None:
            return [self.this_node()] if rs == self.replica_set else []
        return [m.to_edge() for m in self.cluster.members_by_replica_set(rs)]

    def nodes(self, replica_sets: Iterable[int] = ()) -> list[EdgeMessage]:
        """GetNodes (Go Rony's semantics): the members of the listed replica sets, or of this
        node's when none is listed. Without a cluster, this node alone whatever was asked."""
        if self.cluster is None:
            return [self.this_node()]
        wanted = list(replica_sets) or [self.replica_set]
        return [m.to_edge() for m in self.cluster.members_by_replica_set(*wanted)]

    def all_nodes(self) -> list[EdgeMessage]:
        """GetAllNodes: every live member of the cluster (this node alone without one)."""
        if self.cluster is None:
            return [self.this_node()]
        return [m.to_edge() for m in self.cluster.members()]

    def push(self, conn_id: int, env: MessageEnvelope) -> bool:
        """Send ``env`` to live WebSocket ``conn_id`` of this node; False when it is gone.

        Usable from a handler (``ctx.services.push``) or from outside any request.
        """
        return self.gateway is not None and self.gateway.push(conn_id, env)

    @property
    def store(self) -> AsyncStore:
        """The node's store, opened by ``start()`` in ``settings.data_dir``.

        Typed without ``None`` so a handler's ``edge_of(ctx).store.get(...)`` passes mypy
        --strict; before ``start()`` it raises RuntimeError. After ``stop()`` it is the closed
        store (its calls raise rony.store's closed error).
        """
        if self._store is None:
            raise RuntimeError(f"the store of {self!r} is not open: await edge.start() first")
        return self._store

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._state == "running"

    async def start(self, *, serve_gateway: bool = True) -> None:
        """Open the store, run startup hooks, bind the gateway. A no-op if already running.

        ``serve_gateway=False`` starts everything but the socket (the in-process TestClient).
        """
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._state == "running":
                return
            if self._state != "new":
                raise RuntimeError(f"an Edge cannot start again once {self._state}")
            self._state = "starting"
            self._terminated = asyncio.Event()
            s = self.settings
            self.started_at = time.monotonic()
            try:
                self._store = await _open_store(Path(s.data_dir))
                self._start_tracing()
                endpoint = self._metrics_endpoint()
                for hook in self.app.startup_hooks:
                    await hook(self)
                if serve_gateway:
                    self.gateway = Gateway(self.dispatcher, s)
                    if s.metrics_listen is None:
                        self.gateway.metrics = endpoint
                    await self.gateway.start()
                if endpoint is not None and s.metrics_listen is not None:
                    await self._start_metrics_listener(endpoint)
                if s.tunnel_host is not None:
                    await self._start_tunnel()
                if s.cluster_enabled:
                    await self._start_cluster()
            except BaseException:
                self._state = "stopped"
                try:
                    await self._undo_start()
                finally:
                    self._terminated.set()
                raise  # the error that failed the start, not one met while undoing it
            self._state = "running"
        if serve_gateway:
            log.info(
                "rony node %s (replica set %d, app %r) listening on %s",
                s.server_id,
                s.replica_set,
                self.app.name,
                self.url,
            )
        else:
            log.info("rony node %s (app %r) started without a gateway", s.server_id, self.app.name)

    def _metrics_endpoint(self) -> MetricsEndpoint | None:
        """The registry and its ``GET metrics_path``, when metrics are on and served."""
        s = self.settings
        if not s.metrics:
            return None
        from rony.server._prometheus import EdgeCollector, MetricsEndpoint, edge_registry

        self.metrics_registry = edge_registry()
        if s.metrics_path is None:
            return None
        return MetricsEndpoint(
            EdgeCollector(self),
            self.metrics_registry,
            s.metrics_path,
            s.metrics_networks,
            s.trusted_proxies,
        )

    async def _start_metrics_listener(self, endpoint: MetricsEndpoint) -> None:
        from rony.server._prometheus import MetricsListener

        assert self.settings.metrics_listen is not None
        host, port = parse_hostport(self.settings.metrics_listen)
        self.metrics_listener = MetricsListener(endpoint, host, port)
        bound = await self.metrics_listener.start()
        log.info("metrics: node %s serves http://%s%s", self.server_id, hostport(*bound),
                 endpoint.path)  # fmt: skip

    def _start_tracing(self) -> None:
        """Tracing is decided once, here: off, or no SDK installed, costs nothing later."""
        s = self.settings
        tracing = Tracing.create(
            enabled=s.tracing,
            server_id=s.server_id,
            sampler=s.trace_sampler,
            ratio=s.trace_ratio,
            provider=self._tracer_provider,
        )
        self.dispatcher.tracing = tracing
        if tracing is not None and self._store is not None:
            self._store = TracedStore(self._store.store, tracing.tracer)

    async def _start_cluster(self) -> None:
        from rony.server.cluster._cluster import Cluster  # grpc: only for a cluster

        s = self.settings
        assert s.gossip_host is not None
        if self._cluster_tls is None:
            log.warning(
                "the cluster runs WITHOUT TLS (--insecure-cluster): any host that reaches the "
                "gossip port %s can join it; give --tls-ca/--tls-cert/--tls-key in production",
                hostport(s.gossip_host, s.gossip_port),
            )
        advertise = s.advertise_host
        if advertise is None and is_wildcard(s.gossip_host):
            advertise = advertised_hosts(s.gossip_host)[0]  # gossip advertises one address
        self.cluster = Cluster(
            server_id=s.server_id,
            replica_set=s.replica_set,
            bind=(s.gossip_host, s.gossip_port),
            advertise=advertise,
            seeds=s.join,
            tls=self._cluster_tls,
            config=s.gossip_config,
            gateway_addrs=self.advertised_addrs,
            tunnel_addrs=self.tunnel_addrs,
        )
        await self.cluster.start()

    async def _start_tunnel(self) -> None:
        from rony.server.tunnel import Tunnel  # aioquic: only for a tunnel

        s = self.settings
        assert s.tunnel_host is not None
        assert self._cluster_tls is not None  # EdgeSettings refuses a tunnel without TLS

        self.tunnel = Tunnel(self._cluster_tls, functools.partial(serve_tunnel, self))
        self._tunnel_bound = await self.tunnel.start(s.tunnel_host, s.tunnel_port)
        log.info(
            "tunnel: node %s serves QUIC with mutual TLS at %s (advertised %s)",
            s.server_id,
            hostport(*self._tunnel_bound),
            ", ".join(self.tunnel_addrs),
        )

    @property
    def tunnel_addrs(self) -> list[str]:
        """``host:port`` list other nodes reach this node's tunnel at (gossip meta)."""
        if self.tunnel is None or self._tunnel_bound is None:
            return []
        host, port = self._tunnel_bound
        return [hostport(h, port) for h in advertised_hosts(host, self.settings.advertise_host)]

    # --- calls to other nodes (Go Rony's TunnelRequest / TryTunnelRequest) -------------------

    def execute_remote(
        self,
        replica_set: int,
        constructor: int,
        message: Message,
        response_class: type[M] | None = None,
        *,
        timeout: float | None = None,
        server_id: str | None = None,
        header: Mapping[str, str] | None = None,
        store: Mapping[str, str] | None = None,
    ) -> Coroutine[Any, Any, Any]:
        """Run ``constructor(message)`` on an alive member of ``replica_set`` (or on the node
        ``server_id``) through the tunnel and return its reply, decoded as
        ``response_class``. An Error reply raises its ``rony.core.errors`` class; a tunnel
        failure raises ``UnavailableError`` (E02), a timeout ``RequestTimeoutError`` (E06).
        ``timeout`` defaults to ``settings.remote_timeout``; inside a request, its
        handler_timeout bounds it too. Cancelling the caller cancels the remote request.

        (A plain method returning the one coroutine that does the work, ``remote_call``:
        callers ``await`` it as before, without a coroutine per layer.)"""
        return remote_call(
            self,
            1,
            0.0,
            replica_set,
            constructor,
            message,
            response_class,
            timeout,
            server_id,
            header,
            store,
        )

    def try_execute_remote(
        self,
        attempts: int,
        retry_wait: float,
        replica_set: int,
        constructor: int,
        message: Message,
        response_class: type[M] | None = None,
        *,
        timeout: float | None = None,
        server_id: str | None = None,
        header: Mapping[str, str] | None = None,
        store: Mapping[str, str] | None = None,
    ) -> Coroutine[Any, Any, Any]:
        """``execute_remote`` tried up to ``attempts`` times, each on the next member of the
        replica set, waiting ``retry_wait`` seconds between tries. Only tunnel failures are
        retried (an unreachable member, one that died mid-call, a timeout): an Error reply is
        the answer. The same request id is sent each time, for handlers that deduplicate (a
        timed-out request may have run)."""
        return remote_call(
            self,
            attempts,
            retry_wait,
            replica_set,
            constructor,
            message,
            response_class,
            timeout,
            server_id,
            header,
            store,
        )

    async def cluster_edges(
        self,
        replica_set: int,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - bounds the remote side too
    ) -> Edges:
        """Go Rony's ``ClusterEdges``: a member of ``replica_set`` lists the cluster's nodes
        (GetAllNodes over the tunnel)."""
        edges: Edges = await self.execute_remote(
            replica_set, C_GetAllNodes, GetNodes(), Edges, timeout=timeout
        )
        return edges

    async def _undo_start(self) -> None:
        """Release what a failed ``start()`` opened: every part is tried, whatever fails.

        A part's error is logged, not raised, so ``start()`` raises the error that failed it.
        """
        try:
            if self.cluster is not None:
                try:
                    await self.cluster.stop()
                except Exception:
                    log.exception("failed start: stopping the cluster failed")
            if self.tunnel is not None:
                try:
                    await self.tunnel.stop()
                except Exception:
                    log.exception("failed start: stopping the tunnel failed")
            if self.gateway is not None:
                try:
                    await self.gateway.stop(0.1)
                except Exception:
                    log.exception("failed start: stopping the gateway failed")
            if self.metrics_listener is not None:
                try:
                    await self.metrics_listener.stop()
                except Exception:
                    log.exception("failed start: stopping the metrics listener failed")
        finally:  # also when cancelled: the store's LMDB env and threads must not leak
            if self._store is not None:
                try:
                    await self._store.close()
                except Exception:
                    log.exception("failed start: closing the store failed")

    async def stop(self, grace: float | None = None) -> None:
        """Stop gracefully (idempotent; concurrent callers all wait for the same stop).

        ``grace``: seconds (>= 0) in-flight requests get to finish; None = ``shutdown_grace``.
        """
        if grace is not None and not grace >= 0:  # also NaN, which every timer mishandles
            raise ValueError(f"Edge.stop: grace must be >= 0 seconds or None, got {grace!r}")
        if self._state in ("new", "stopped") and self._stop_task is None:
            self._state = "stopped"
            return
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self._stop(grace))
        await asyncio.shield(self._stop_task)

    async def _stop(self, grace: float | None) -> None:
        if self._start_lock is not None:
            async with self._start_lock:  # wait for a start() in progress
                pass
        if self._state == "stopped":  # that start failed and cleaned up after itself
            return
        self._state = "stopping"
        grace = self.settings.shutdown_grace if grace is None else grace
        try:
            failed: Exception | None = None
            if self.cluster is not None:
                # Leave first, while the gateway still serves: peers see "left" within a
                # second and stop sending clients here (Go Rony stopped the gateway first).
                try:
                    await self.cluster.leave(min(max(grace, 0.5), 2.0))
                except Exception:
                    log.exception("leaving the cluster failed")
            if self.gateway is not None:
                try:
                    await self.gateway.stop(grace)
                except Exception as exc:  # the app's shutdown hooks still run; raised after
                    failed = exc
            if self.cluster is not None:
                try:
                    await self.cluster.stop()
                except Exception:
                    log.exception("stopping the cluster failed")
            if self.tunnel is not None:  # last: in-flight requests could still call out
                try:
                    await self.tunnel.stop()
                except Exception:
                    log.exception("stopping the tunnel failed")
            if self.metrics_listener is not None:
                try:
                    await self.metrics_listener.stop()
                except Exception:
                    log.exception("stopping the metrics listener failed")
            for hook in self.app.shutdown_hooks:
                try:
                    await hook(self)
                except Exception:
                    log.exception("shutdown hook %r failed", hook)
            if failed is not None:
                raise failed
        finally:
            try:
                if self._store is not None:
                    await self._store.close()
            finally:
                self._state = "stopped"
                if self._terminated is not None:
                    self._terminated.set()
                log.info("rony node %s stopped", self.server_id)

    async def wait_for_termination(self) -> None:
        """Wait until the node stopped (wrap in ``asyncio.timeout`` to bound it)."""
        if self._terminated is not None:
            await self._terminated.wait()

    async def __aenter__(self) -> Edge:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
