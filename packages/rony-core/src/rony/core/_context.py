"""The context model: Conn ⊃ DispatchCtx ⊃ RequestCtx. No I/O.

    ┌ Conn ─────────────────────────────────────────────────────────────┐
    │ one per connection (a WebSocket, an HTTP request, a tunnel peer);  │
    │ conn id, client ip, persistent?, per-conn key/values, send         │
    │  ┌ DispatchCtx ──────────────────────────────────────────────────┐ │
    │  │ one per received envelope or container: server id, kind        │ │
    │  │ (gateway | tunnel), key/values shared by the batch, the        │ │
    │  │ buffer of replies for a non-persistent conn                    │ │
    │  │  ┌ RequestCtx ─────────┐ ┌ RequestCtx ─────────┐               │ │
    │  │  │ one per envelope:   │ │ (a container has    │  ...          │ │
    │  │  │ request id, push,   │ │  one per inner      │               │ │
    │  │  │ error, redirect,    │ │  envelope)          │               │ │
    │  │  │ stop, services      │ │                     │               │ │
    │  │  └─────────────────────┘ └─────────────────────┘               │ │
    │  └────────────────────────────────────────────────────────────────┘ │
    └────────────────────────────────────────────────────────────────────┘

A reply pushed on a *persistent* conn (WebSocket) is handed to ``Conn.send`` at once, one frame
each; on a non-persistent conn (HTTP, tunnel) it is buffered in the DispatchCtx and the server
writes the buffer when the dispatch is done. The server fills ``services`` so a handler reaches
the store, the cluster, the tunnel and other connections without importing the server.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from google.protobuf.message import Message

from rony.core._codec import envelope as _wrap
from rony.core._codec import envelope_bytes, header_dict, unwrap
from rony.core.errors import MalformedError, RonyError, UnavailableError, from_wire
from rony.core.pb.msg_pb2 import Edge, MessageEnvelope, Redirect, RedirectReason

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = [
    "Conn",
    "DispatchCtx",
    "Kind",
    "RequestCtx",
    "Services",
]

M = TypeVar("M", bound=Message)


class Kind(enum.IntEnum):
    """Where a dispatch came from (Go Rony's ``GatewayMessage`` = 1, ``TunnelMessage`` = 2)."""

    GATEWAY = 1
    TUNNEL = 2


@runtime_checkable
class Conn(Protocol):
    """A client connection, as the gateway (or tunnel) implements it."""

    @property
    def conn_id(self) -> int: ...

    @property
    def client_ip(self) -> str: ...

    @property
    def persistent(self) -> bool:
        """True for a WebSocket (pushes go out at once); False for HTTP and tunnel requests."""
        ...

    def get(self, key: str, default: Any = None) -> Any:
        """A per-connection value (seeded from handshake headers and query args)."""
        ...

    def set(self, key: str, value: Any) -> None: ...

    def send(self, env: MessageEnvelope) -> None:
        """Queue one envelope for writing. Never blocks; a full queue closes the conn."""
        ...


class Services(Protocol):
    """What a server offers handlers; ``RequestCtx.services`` is filled by the server."""

    @property
    def server_id(self) -> str: ...

    @property
    def replica_set(self) -> int: ...

    def members(self, replica_set: int | None = None) -> Sequence[Edge]:
        """The edges of a replica set (this node's when None), for redirects and GetNodes."""
        ...

    def push(self, conn_id: int, env: MessageEnvelope) -> bool:
        """Send to another live connection of this node; False when it is gone."""
        ...


class DispatchCtx:
    """One received envelope or container: the unit the gateway hands to the dispatcher."""

    __slots__ = ("buffer", "conn", "kind", "send_encoded", "server_id", "services", "values")

    def __init__(
        self,
        conn: Conn,
        kind: Kind = Kind.GATEWAY,
        *,
        server_id: str = "",
        services: Services | None = None,
    ) -> None:
        self.conn = conn
        self.kind = kind
        self.server_id = server_id
        self.services = services
        self.values: dict[str, Any] = {}
        self.buffer: list[MessageEnvelope] = []
        # Set by a server whose transport writes an encoded envelope at once (a WebSocket):
        # a plain binary reply then goes out as bytes, without building the envelope.
        self.send_encoded: Callable[[bytes], None] | None = None

    def new_request(self, env: MessageEnvelope) -> RequestCtx:
        """A RequestCtx for one envelope of this dispatch.

        The dispatch keeps no list of its requests: a RequestCtx points at its DispatchCtx, and
        a list back would make every dispatch a reference cycle, which only the cyclic garbage
        collector frees (with the whole request, its aiohttp objects included, held till then).
        """
        return RequestCtx(self, env)

    def deliver(self, env: MessageEnvelope) -> None:
        """Send now on a persistent gateway conn; buffer otherwise (flushed by the server)."""
        if self.kind is Kind.GATEWAY and self.conn.persistent:
            self.conn.send(env)
        else:
            self.buffer.append(env)

    def drain(self) -> list[MessageEnvelope]:
        out, self.buffer = self.buffer, []
        return out


class RequestCtx:
    """One envelope being handled. Handlers answer by pushing; there is no return value.

    ``push_message`` sends a reply carrying this request's id; ``push_error`` and the redirects
    also stop the handler chain (post-handlers still run). ``return_message`` is push + stop.
    """

    __slots__ = (
        "_release",
        "_span",
        "constructor",
        "dispatch",
        "envelope",
        "error",
        "json_encoded",
        "request_id",
        "stopped",
    )

    def __init__(self, dispatch: DispatchCtx, env: MessageEnvelope) -> None:
        self.dispatch = dispatch
        self.envelope = env
        self.request_id: int = env.RequestID
        self.constructor: int = env.Constructor
        # The request came in Go Rony's JSON envelope: its replies go out in JSON too. Read
        # once here (a protobuf field read costs a name lookup each time).
        self.json_encoded: bool = env.JsonEncoded
        self.error: RonyError | None = None
        # True once the chain is stopped (stop_execution, push_error, a redirect): read it,
        # set it through stop_execution(). A plain attribute: it is read after every handler.
        self.stopped = False
        self._release: Callable[[], None] | None = None
        # The request's OpenTelemetry span, set by a server that traces it (see ``span``).
        self._span: Any = None

    # --- identity ---------------------------------------------------------------------------

    @property
    def conn(self) -> Conn:
        return self.dispatch.conn

    @property
    def conn_id(self) -> int:
        return self.dispatch.conn.conn_id

    @property
    def kind(self) -> Kind:
        return self.dispatch.kind

    @property
    def server_id(self) -> str:
        return self.dispatch.server_id

    @property
    def services(self) -> Services:
        if self.dispatch.services is None:
            raise RuntimeError("this RequestCtx is not attached to a server")
        return self.dispatch.services

    @property
    def span(self) -> Span:
        """The request's OpenTelemetry span (Go Rony's ``RequestCtx.Span()``): the server's
        span when it samples this request, else the API's invalid span, on which every call
        does nothing. Needs ``opentelemetry-api`` (a dependency of rony-server)."""
        if self._span is not None:
            span: Span = self._span
            return span
        from opentelemetry.trace import INVALID_SPAN  # (rony.core itself depends on nothing)

        return INVALID_SPAN

    @property
    def header(self) -> dict[str, str]:
        return header_dict(self.envelope)

    # --- key/values, shared by every RequestCtx of the dispatch -------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        return self.dispatch.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.dispatch.values[key] = value

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(list(self.dispatch.values.items()))

    # --- the request ---------------------------------------------------------------------------

    def message(self, message_class: type[M]) -> M:
        """Decode the request payload (binary or JSON) as ``message_class``."""
        env = self.envelope
        if self.json_encoded:
            return unwrap(env, message_class)
        # unwrap's binary branch, inlined: this runs once per request.
        try:
            message: M = message_class.FromString(env.Message)
        except Exception as exc:  # upb raises DecodeError; be total on hostile bytes.
            raise MalformedError(
                "REQUEST", f"{message_class.DESCRIPTOR.name} does not decode: {exc}"
            ) from None
        return message

    # --- replies -------------------------------------------------------------------------------

    def push_message(
        self,
        message: Message,
        *,
        constructor: int | None = None,
        header: dict[str, str] | None = None,
    ) -> None:
        if constructor is not None and not header and not self.json_encoded:
            # The common reply. Where the transport takes encoded envelopes, its bytes;
            # else built as envelope() would build it, minus two calls, fields set one by one
            # (upb's keyword constructor costs more).
            dispatch = self.dispatch
            if dispatch.send_encoded is not None:
                payload = message.SerializeToString()
                dispatch.send_encoded(envelope_bytes(constructor, self.request_id, payload))
                return
            env = MessageEnvelope()
            env.Constructor = constructor
            env.RequestID = self.request_id
            env.Message = message.SerializeToString()
            dispatch.deliver(env)
            return
        self.push_custom_message(self.request_id, message, constructor=constructor, header=header)

    def push_custom_message(
        self,
        request_id: int,
        message: Message,
        *,
        constructor: int | None = None,
        header: dict[str, str] | None = None,
    ) -> None:
        # A JSON request gets a JSON reply (payload in protobuf JSON, JsonEncoded set), as Go
        # Rony's JSON dispatcher does; errors and redirects follow the same rule.
        env = _wrap(
            message,
            request_id,
            constructor=constructor,
            header=header or {},
            json_encoded=self.json_encoded,
        )
        self.dispatch.deliver(env)

    def push_envelope(self, env: MessageEnvelope) -> None:
        self.dispatch.deliver(env)

    def push_error(self, err: RonyError) -> None:
        """Reply with an Error envelope carrying this request's id, and stop the chain."""
        self.error = err
        self.dispatch.deliver(
            _wrap(err.to_message(), self.request_id, json_encoded=self.json_encoded)
        )
        self.stop_execution()

    def push_custom_error(self, code: str, items: str, description: str = "") -> None:
        self.push_error(from_wire(code, items, description))

    def push_redirect_session(self, replica_set: int, wait_in_sec: int = 0) -> None:
        """Tell the client to use ``replica_set`` for the rest of its session."""
        self._redirect(RedirectReason.ReplicaSetSession, replica_set, wait_in_sec)

    def push_redirect_request(self, replica_set: int, wait_in_sec: int = 0) -> None:
        """Tell the client to send this one request to ``replica_set``."""
        self._redirect(RedirectReason.ReplicaSetRequest, replica_set, wait_in_sec)

    def _redirect(self, reason: RedirectReason, replica_set: int, wait: int) -> None:
        edges = list(self.services.members(replica_set))
        if not edges:
            # A Redirect naming no node leaves the client nowhere to go: say why instead.
            self.push_error(
                UnavailableError("REPLICA_SET", f"no live member of replica set {replica_set}")
            )
            return
        redirect = Redirect(Reason=reason, Edges=edges, WaitInSec=wait)
        self.dispatch.deliver(_wrap(redirect, self.request_id, json_encoded=self.json_encoded))
        self.stop_execution()

    def return_message(self, message: Message, *, constructor: int | None = None) -> None:
        """Push the reply and stop the chain."""
        self.push_message(message, constructor=constructor)
        self.stop_execution()

    def return_error(self, err: RonyError) -> None:
        self.push_error(err)

    # --- calls to other nodes --------------------------------------------------------------------

    async def execute_remote(
        self,
        replica_set: int,
        constructor: int,
        message: Message,
        response_class: type[Message] | None = None,
        **options: Any,
    ) -> Any:
        """Run a request on an alive member of ``replica_set`` through the server's tunnel and
        return its reply (Go Rony's ``TunnelRequest``); an Error reply raises its class.
        ``options``: ``timeout``, ``server_id``, ``header``, ``store`` (see the server's
        ``Edge.execute_remote``). Cancelling this request cancels the remote one."""
        remote = self._remote("execute_remote")
        return await remote(replica_set, constructor, message, response_class, **options)

    async def try_execute_remote(
        self,
        attempts: int,
        retry_wait: float,
        replica_set: int,
        constructor: int,
        message: Message,
        response_class: type[Message] | None = None,
        **options: Any,
    ) -> Any:
        """``execute_remote`` retried on other members (Go Rony's ``TryTunnelRequest``)."""
        remote = self._remote("try_execute_remote")
        return await remote(
            attempts, retry_wait, replica_set, constructor, message, response_class, **options
        )

    async def cluster_edges(self, replica_set: int, **options: Any) -> Any:
        """The cluster's nodes as a member of ``replica_set`` lists them (``Edges``)."""
        return await self._remote("cluster_edges")(replica_set, **options)

    def _remote(self, name: str) -> Any:
        method = getattr(self.services, name, None)
        if method is None:
            raise UnavailableError("TUNNEL", "this server makes no calls to other nodes")
        return method

    # --- flow ------------------------------------------------------------------------------------

    def stop_execution(self) -> None:
        """Skip the remaining handlers of the chain (post-handlers still run)."""
        self.stopped = True

    def next_can_go(self) -> None:
        """Inside a SyncRun container: let the next envelope start before this one finishes."""
        release, self._release = self._release, None
        if release is not None:
            release()

    def on_release(self, callback: Callable[[], None] | None) -> None:
        """Set by the dispatcher: what ``next_can_go`` (or the end of the chain) calls."""
        self._release = callback
