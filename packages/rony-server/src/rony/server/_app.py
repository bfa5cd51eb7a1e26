"""App: what a service is. Handler chains by constructor, global pre/post handlers, REST routes.

An App does no I/O and starts nothing, so a module can build one at import (``app = App("echo")``)
and ``rony serve module:app`` or a test can serve it. The Edge reads it when it starts.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from rony.core import Conn, RequestCtx, registry

if TYPE_CHECKING:
    from rony.server._edge import Edge

__all__ = ["App", "Handler", "HandlerEntry", "Hook", "RestRoute"]

Handler = Callable[[RequestCtx], Awaitable[None]]
"""A handler: ``async def h(ctx: RequestCtx) -> None``; it answers by pushing on ``ctx``."""

Hook = Callable[["Edge"], Awaitable[None]]
# Called with the WebSocket's Conn (conn_id, client_ip, get/set of its values).
ConnHook = Callable[[Conn], Awaitable[None]]
"""A startup or shutdown hook: ``async def hook(edge) -> None``."""

# Not OPTIONS: the gateway answers every OPTIONS request as a CORS preflight (as Go Rony), so
# an OPTIONS route would never run there (and only the in-process TestClient would reach it).
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
_SEGMENT = re.compile(r"^(?:[:*][A-Za-z_][A-Za-z0-9_]*|[^:*]*)$")

# Field kinds a path or query parameter can be bound to. Go Rony skipped float, bool and enum
# (and parsed double as float32); we bind every scalar kind exactly (inventory §14 weakness 10).
_BINDABLE = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_FLOAT,
        FieldDescriptor.TYPE_DOUBLE,
        FieldDescriptor.TYPE_BOOL,
        FieldDescriptor.TYPE_STRING,
        FieldDescriptor.TYPE_BYTES,
        FieldDescriptor.TYPE_ENUM,
    }
)


@dataclass(frozen=True, slots=True)
class HandlerEntry:
    """The chain registered for one constructor, with its per-method options."""

    constructor: int
    handlers: tuple[Handler, ...]
    request_class: type[Message] | None = None
    internal: bool = False
    service: str = ""
    method: str = ""
    builtin: bool = False

    @property
    def display_name(self) -> str:
        """How logs and metrics name this handler: ``Service.Method`` (the method alone when
        it has no service), else its constructor's message name, else the number."""
        if self.method:
            return f"{self.service}.{self.method}" if self.service else self.method
        return registry.name_of(self.constructor) or str(self.constructor)


@dataclass(frozen=True, slots=True)
class RestRoute:
    """A REST route (Go Rony's ``rony_rest``) mapped onto the handler of ``constructor``.

    ``path_fields`` maps a ``:param`` of the path to the request field it fills (by default the
    field with the same proto name; ``bind_path_param "param=Field"`` renames); ``query_fields``
    maps the query parameters named in ``bind_query_param`` to their fields. A parameter without
    a matching field is still put into the connection values (``ctx.conn.get(name)``), as Go.
    """

    method: str
    path: str
    constructor: int
    request_class: type[Message]
    path_fields: dict[str, str] = field(default_factory=dict)
    query_fields: dict[str, str] = field(default_factory=dict)
    json_encode: bool = False


def _parse_bindings(bindings: Sequence[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in bindings:
        param, sep, fname = item.strip().partition("=")
        if not sep or not param.strip() or not fname.strip():
            raise ValueError(f"{what} entry {item!r} must look like 'param=Field'")
        out[param.strip()] = fname.strip()
    return out


def _check_field(desc: Any, fname: str, route: str) -> None:
    fd = desc.fields_by_name.get(fname)
    if fd is None:
        raise ValueError(f"REST route {route}: {desc.full_name} has no field {fname!r}")
    if fd.is_repeated or fd.type not in _BINDABLE:
        raise ValueError(
            f"REST route {route}: field {desc.full_name}.{fname} is not a singular scalar; "
            "only scalars (numbers, bool, string, bytes, enum) can be bound to parameters"
        )


class App:
    """A Rony service: handlers by constructor id, global middleware and REST routes.

    ``handle(constructor, *handlers)`` registers a chain (replacing an earlier one). For every
    request the dispatcher runs the global pre-handlers, then the chain, stopping at the first
    handler that calls ``ctx.stop_execution()`` (or pushes an error or a redirect), then *all*
    post-handlers, as Go Rony does.
    """

    def __init__(self, name: str = "rony") -> None:
        self.name = name
        self.handlers: dict[int, HandlerEntry] = {}
        self.pre_handlers: list[Handler] = []
        self.post_handlers: list[Handler] = []
        self.routes: list[RestRoute] = []
        self.startup_hooks: list[Hook] = []
        self.shutdown_hooks: list[Hook] = []
        self.connect_hooks: list[ConnHook] = []
        self.disconnect_hooks: list[ConnHook] = []

    def __repr__(self) -> str:
        return f"App({self.name!r}, {len(self.handlers)} handlers, {len(self.routes)} routes)"

    def handle(
        self,
        constructor: int,
        *handlers: Handler,
        request_class: type[Message] | None = None,
        internal: bool = False,
        service: str = "",
        method: str = "",
    ) -> None:
        """Register the chain for ``constructor`` (replaces an earlier one).

        ``request_class`` also goes into ``rony.core.registry`` under the constructor (as the
        method's input, like Go Rony) so JSON envelopes naming the method decode. ``internal``
        (the ``rony_internal`` option): refused from the gateway, allowed through the tunnel.
        """
        if not handlers:
            raise ValueError("handle() needs at least one handler")
        if not 0 <= constructor < 2**64:
            raise ValueError(f"constructor {constructor} is not an unsigned 64-bit integer")
        for h in handlers:
            if not callable(h):
                raise TypeError(f"handler {h!r} is not callable")
        if internal and any(r.constructor == constructor for r in self.routes):
            raise ValueError(
                f"constructor {constructor} has a REST route; an internal method, which the "
                "gateway refuses, could never serve it"
            )
        if request_class is not None and (service or method):
            # Go Rony registers a method id under "ServiceMethod" with its input class, so a
            # JSON envelope's "cmd" can name the method.
            registry.register(constructor, f"{service}{method}", request_class)
        self.handlers[constructor] = HandlerEntry(
            constructor, tuple(handlers), request_class, internal, service, method
        )

    def rest(
        self,
        method: str,
        path: str,
        constructor: int,
        request_class: type[Message],
        *,
        bind_path_param: Sequence[str] = (),
        bind_query_param: Sequence[str] = (),
        json_encode: bool = False,
    ) -> None:
        """Expose the handler of ``constructor`` as ``METHOD /path/:param/*rest`` on the gateway.

        Bindings are checked now, so a typo fails at import rather than per request.
        """
        verb = method.upper()
        if verb == "OPTIONS":
            raise ValueError(
                f"REST route OPTIONS {path}: the gateway answers every OPTIONS request as a "
                "CORS preflight, so this route would never run"
            )
        if verb not in _HTTP_METHODS:
            raise ValueError(f"REST method {method!r} is not one of {sorted(_HTTP_METHODS)}")
        norm = "/" + path.strip("/")
        segments = [s for s in norm.split("/") if s]
        for i, seg in enumerate(segments):
            if not _SEGMENT.match(seg):
                raise ValueError(f"REST path {path!r}: bad segment {seg!r}")
            if seg.startswith("*") and i != len(segments) - 1:
                raise ValueError(f"REST path {path!r}: a *wildcard must be the last segment")
        where = f"{verb} {norm}"
        entry = self.handlers.get(constructor)
        if entry is not None and entry.internal:
            raise ValueError(
                f"REST route {where}: constructor {constructor} is an internal method, which "
                "the gateway refuses, so the route could never run"
            )
        renames = _parse_bindings(bind_path_param, "bind_path_param")
        params = [s[1:] for s in segments if s[0:1] in (":", "*")]
        for p in renames:
            if p not in params:
                raise ValueError(f"REST route {where}: bind_path_param names unknown {p!r}")
        desc = request_class.DESCRIPTOR
        path_fields: dict[str, str] = {}
        for p in params:
            fname = renames.get(p, p)
            if p in renames or fname in desc.fields_by_name:
                _check_field(desc, fname, where)
                path_fields[p] = fname
        query_fields = _parse_bindings(bind_query_param, "bind_query_param")
        for fname in query_fields.values():
            _check_field(desc, fname, where)
        route = RestRoute(
            verb, norm, constructor, request_class, path_fields, query_fields, json_encode
        )
        routes = []
        for r in self.routes:
            if (r.method, r.path) != (verb, norm):
                routes.append(r)
            elif r.constructor != constructor:  # the same method registered again replaces
                raise ValueError(
                    f"REST route {where} is already the route of constructor {r.constructor}"
                )
        routes.append(route)
        # Build the gateway's router now, so routes it cannot tell apart (``/a/:x`` beside
        # ``/a/:y``, two wildcards at one place) fail here rather than when the Edge starts.
        from rony.server.gateway._rest import RestRouter

        RestRouter(routes)
        self.routes = routes

    def add_pre_handler(self, *handlers: Handler) -> None:
        """Handlers run before every request's chain (not before the builtins; see Dispatcher)."""
        self.pre_handlers.extend(handlers)

    def add_post_handler(self, *handlers: Handler) -> None:
        """Handlers run after every request's chain, even when it was stopped."""
        self.post_handlers.extend(handlers)

    def on_startup(self, fn: Hook) -> Hook:
        """Register ``async def fn(edge)`` to run when the Edge starts (usable as a decorator)."""
        self.startup_hooks.append(fn)
        return fn

    def on_shutdown(self, fn: Hook) -> Hook:
        """Register ``async def fn(edge)`` to run when the Edge stops (usable as a decorator)."""
        self.shutdown_hooks.append(fn)
        return fn

    def on_connect(self, fn: ConnHook) -> ConnHook:
        """Register ``async def fn(conn)`` to run when a WebSocket opens, before its first
        request is read (usable as a decorator). If it raises, the connection is closed with
        1011 and the error logged."""
        self.connect_hooks.append(fn)
        return fn

    def on_disconnect(self, fn: ConnHook) -> ConnHook:
        """Register ``async def fn(conn)`` to run once a WebSocket whose connect hooks passed
        has closed (usable as a decorator); an error is logged."""
        self.disconnect_hooks.append(fn)
        return fn

    def entry(self, constructor: int) -> HandlerEntry | None:
        return self.handlers.get(constructor)

    def describe(self) -> dict[str, Any]:
        """A summary for logs: handler count, routes."""
        return {
            "name": self.name,
            "handlers": len(self.handlers),
            "routes": [f"{r.method} {r.path}" for r in self.routes],
        }
