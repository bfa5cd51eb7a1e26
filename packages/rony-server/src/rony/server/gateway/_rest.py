"""REST routes (Go Rony's ``rony_rest``): a method+path router, parameter binding, responses.

Pure: no aiohttp here, so the in-process TestClient uses the same code as the gateway.

Routing: one trie per HTTP method; a segment is static, ``:param`` (one segment) or
``*wildcard`` (the rest of the path, last). Priority at every level: static > ``:param`` >
``*wildcard``, with backtracking, so ``/a/b`` prefers a static ``/a/b`` over ``/a/:x`` over
``/a/*rest``. Path parameters are URL-decoded per segment (``%2F`` stays inside its segment);
Go Rony passed them raw (inventory §14 weakness 10).

Binding: the request body (JSON when ``json_encode``, else binary protobuf; an empty body is an
empty message) is decoded first, then path and ``bind_query_param`` parameters override their
fields, converted exactly for every scalar kind (ints with range checks, float/double, bool,
string, bytes as UTF-8, enum by name or number). A value that does not convert is E01 REQUEST.
A query parameter given more than once (``?a=1&a=2``) binds its last value, the same value the
handler sees in the conn values (``query_values``).

Responses, from the first reply the handler pushed (as Go Rony):

* a normal message: 200, JSON (``application/json``) when ``json_encode`` else binary protobuf
  (``application/x-protobuf``);
* ``Error``: the HTTP status of its code, the Error as JSON (``{"Code":"E01","Items":...}``);
* ``Redirect``: 308 (session) or 307 (request) with ``Location`` = the same path and query on
  ``Edges[0].HostPorts[0]``;
* no reply: 204.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from rony.core import (
    DEFAULT_LIMITS,
    C_Error,
    C_Redirect,
    Error,
    Limits,
    MessageEnvelope,
    Redirect,
    RedirectReason,
    message_from_json,
    message_to_json,
    registry,
    unwrap,
)
from rony.core.errors import InternalError, MalformedError, RonyError, http_status_of
from rony.server._app import RestRoute

__all__ = [
    "RestResponse",
    "RestRouter",
    "bind_request",
    "query_values",
    "render_response",
    "split_path",
]

_request_ids = itertools.count(1)

JSON = "application/json"
PROTOBUF = "application/x-protobuf"


def split_path(raw_path: str) -> list[str]:
    """A raw URL path (no query) -> its URL-decoded segments, empty ones dropped."""
    return [unquote(s) for s in raw_path.split("/") if s]


def query_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Query arguments -> one value per name: the LAST of a repeated one (``?a=1&a=2`` -> 2).

    The one rule for both places a query argument reaches a handler: REST binding
    (``bind_query_param``) and the conn values (``ctx.conn.get``). Go Rony had one rule too, the
    last value: it copied every query argument into the conn's map with fasthttp's
    ``QueryArgs().VisitAll`` (each value overwriting the one before), and its REST proxies read
    the bound parameters back from that map (``conn.Get``); it never used ``Peek`` (the first).
    """
    return dict(pairs)


@dataclass(slots=True)
class _Node:
    static: dict[str, _Node] = field(default_factory=dict)
    param: _Node | None = None
    param_name: str = ""
    wildcard: RestRoute | None = None
    wildcard_name: str = ""
    route: RestRoute | None = None


class RestRouter:
    """Method + path -> (route, params)."""

    def __init__(self, routes: Sequence[RestRoute] = ()) -> None:
        self._roots: dict[str, _Node] = {}
        for r in routes:
            self.add(r)

    def __bool__(self) -> bool:
        return bool(self._roots)

    def add(self, route: RestRoute) -> None:
        node = self._roots.setdefault(route.method, _Node())
        for seg in (s for s in route.path.split("/") if s):
            if seg.startswith(":"):
                if node.param is None:
                    node.param = _Node()
                    node.param_name = seg[1:]
                elif node.param_name != seg[1:]:
                    raise ValueError(
                        f"REST route {route.method} {route.path}: parameter :{seg[1:]} clashes "
                        f"with :{node.param_name} at the same place"
                    )
                node = node.param
            elif seg.startswith("*"):
                if node.wildcard is not None and node.wildcard.path != route.path:
                    raise ValueError(
                        f"REST route {route.method} {route.path}: wildcard {seg} clashes with "
                        f"{node.wildcard.path} at the same place"
                    )
                node.wildcard = route
                node.wildcard_name = seg[1:]
                return
            else:
                node = node.static.setdefault(seg, _Node())
        node.route = route

    def match(
        self, method: str, segments: Sequence[str]
    ) -> tuple[RestRoute, dict[str, str]] | None:
        root = self._roots.get(method.upper())
        if root is None:
            return None
        params: dict[str, str] = {}
        route = self._match(root, segments, 0, params)
        return (route, params) if route is not None else None

    def _match(
        self, node: _Node, segs: Sequence[str], i: int, params: dict[str, str]
    ) -> RestRoute | None:
        if i == len(segs):
            if node.route is not None:
                return node.route
            if node.wildcard is not None:
                params[node.wildcard_name] = ""
                return node.wildcard
            return None
        child = node.static.get(segs[i])
        if child is not None:
            found = self._match(child, segs, i + 1, params)
            if found is not None:
                return found
        if node.param is not None:
            params[node.param_name] = segs[i]
            found = self._match(node.param, segs, i + 1, params)
            if found is not None:
                return found
            del params[node.param_name]
        if node.wildcard is not None:
            params[node.wildcard_name] = "/".join(segs[i:])
            return node.wildcard
        return None


# --- binding ----------------------------------------------------------------------------------

# Python's int()/float() also take surrounding spaces, "1_000" and non-ASCII digits ("١٢");
# a parameter must be a plain ASCII number (as Go's strconv reads it).
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE
)

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _convert(fd: FieldDescriptor, param: str, text: str) -> object:
    def bad(why: str) -> MalformedError:
        return MalformedError("REQUEST", f"parameter {param}={text!r}: {why}")

    t = fd.type
    if t in _INT_RANGES:
        if not _INT_TEXT.fullmatch(text):
            raise bad("not an integer")
        value = int(text, 10)
        lo, hi = _INT_RANGES[t]
        if not lo <= value <= hi:
            raise bad(f"out of range for {fd.name}")
        return value
    if t in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        if not _FLOAT_TEXT.fullmatch(text):
            raise bad("not a number")
        return float(text)
    if t == FieldDescriptor.TYPE_BOOL:
        low = text.lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0", ""):
            return False
        raise bad("not a boolean (true/false/1/0)")
    if t == FieldDescriptor.TYPE_STRING:
        return text
    if t == FieldDescriptor.TYPE_BYTES:
        return text.encode()
    if t == FieldDescriptor.TYPE_ENUM:
        enum = fd.enum_type
        assert enum is not None
        by_name = enum.values_by_name.get(text)
        if by_name is not None:
            return by_name.number
        if not _INT_TEXT.fullmatch(text):
            raise bad(f"not a value of {enum.name}")
        number = int(text, 10)
        if not -(2**31) <= number < 2**31:
            raise bad(f"not a value of {enum.name}")
        return number
    raise bad("unsupported field kind")  # App.rest refuses such bindings up front


def _set(msg: Message, desc: Any, fname: str, param: str, text: str) -> None:
    fd = desc.fields_by_name[fname]
    value = _convert(fd, param, text)
    try:
        setattr(msg, fname, value)
    except ValueError:  # a number a closed (proto2) enum does not list
        raise MalformedError(
            "REQUEST",
            f"parameter {param}={text!r}: not a value of "
            f"{fd.enum_type.name if fd.enum_type else fd.name}",
        ) from None


def bind_request(
    route: RestRoute,
    params: Mapping[str, str],
    query: Mapping[str, str],
    body: bytes,
    limits: Limits = DEFAULT_LIMITS,
) -> MessageEnvelope:
    """Build the request envelope for ``route``; raises ``MalformedError`` (E01 REQUEST).

    ``limits`` are the node's own (a JSON body is checked against its ``max_message_size``).
    """
    cls = route.request_class
    if not body:
        msg = cls()
    elif route.json_encode:
        msg = message_from_json(body, cls, limits)
    else:
        msg = cls()
        try:
            msg.ParseFromString(body)
        except Exception as exc:
            raise MalformedError("REQUEST", f"body does not decode: {exc}") from None
    desc = cls.DESCRIPTOR
    for param, fname in route.path_fields.items():
        if param in params:
            _set(msg, desc, fname, param, params[param])
    for param, fname in route.query_fields.items():
        if param in query:
            _set(msg, desc, fname, param, query[param])
    payload = message_to_json(msg) if route.json_encode else msg.SerializeToString()
    return MessageEnvelope(
        Constructor=route.constructor,
        RequestID=next(_request_ids),
        JsonEncoded=route.json_encode,
        Message=payload,
    )


# --- responses --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def error_response(err: RonyError) -> RestResponse:
    return RestResponse(err.http_status, {"Content-Type": JSON}, message_to_json(err.to_message()))


def too_large_response(limit: int) -> RestResponse:
    """413 + E01 for a REST body over ``limit`` bytes (checked before any decoding)."""
    out = error_response(MalformedError("REQUEST", f"body over {limit} bytes"))
    return RestResponse(413, out.headers, out.body)


def render_response(
    route: RestRoute, replies: Sequence[MessageEnvelope], path_qs: str
) -> RestResponse:
    """The HTTP response for the first reply (``path_qs`` is the raw path + query, for 30x)."""
    if not replies:
        return RestResponse(204, {}, b"")
    env = replies[0]
    try:
        if env.Constructor == C_Error:
            err = unwrap(env, Error)
            assert isinstance(err, Error)
            return RestResponse(
                http_status_of(err.Code), {"Content-Type": JSON}, message_to_json(err)
            )
        if env.Constructor == C_Redirect:
            red = unwrap(env, Redirect)
            assert isinstance(red, Redirect)
            if not red.Edges or not red.Edges[0].HostPorts:
                return error_response(InternalError("SERVER", "redirect to no address"))
            status = 308 if red.Reason == RedirectReason.ReplicaSetSession else 307
            location = f"http://{red.Edges[0].HostPorts[0]}{path_qs}"
            return RestResponse(status, {"Location": location}, b"")
        if route.json_encode:
            body = env.Message if env.JsonEncoded else message_to_json(unwrap(env))
            return RestResponse(200, {"Content-Type": JSON}, body)
        if env.JsonEncoded:
            cls = registry.class_of(env.Constructor)
            if cls is None:
                raise MalformedError("HANDLER", f"unknown constructor {env.Constructor}")
            body = message_from_json(env.Message, cls).SerializeToString()
        else:
            body = env.Message
        return RestResponse(200, {"Content-Type": PROTOBUF}, body)
    except RonyError as err:
        return error_response(InternalError("SERVER", f"reply does not encode: {err}"))
