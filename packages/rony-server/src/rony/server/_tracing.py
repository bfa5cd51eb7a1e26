"""OpenTelemetry tracing: spans per request, W3C Trace Context in envelope headers, sampling.

Theory of operation
-------------------
The Edge makes one ``Tracing`` at start (``Tracing.create``), or none: with ``tracing=False``,
or when no SDK TracerProvider is installed (the API's proxy or no-op provider would make
only no-op spans). Without one, the dispatcher, the gateway and the tunnel test one attribute
per request and do nothing else.

With one, rony decides sampling itself, *before* any span exists: an SDK span that is created
and then dropped by the SDK's sampler still costs ~13 µs, while the decision here costs well
under 2 µs. Per envelope (``begin``):

1. the parent is the envelope's ``traceparent`` (+ ``tracestate``) header, parsed here
   (W3C Trace Context level 1; a malformed one is ignored, as the spec says);
2. the sampler (``trace_sampler``, OpenTelemetry's names) decides: ``parentbased_*`` follow a
   parent's sampled flag; a root (no parent) is sampled with ``trace_ratio``;
   ``traceidratio`` decides on the trace id alone, so nodes with one ratio agree;
3. unsampled: no span. A marker in a context variable keeps the decision for the rest of the
   request, so a remote call made by the handler carries it on (the caller's ``traceparent``,
   flags 00): the callee does not start a trace of its own for a request that was not
   sampled. The request also runs in one shared unsampled OpenTelemetry context, so spans
   its handler starts are dropped too rather than each becoming a root;
4. sampled: a SERVER span ``rpc.<Service>/<Method>`` (Go Rony's name and attributes, plus
   ``rpc.system``, the request id, constructor, node id and outcome), current in the request's
   OpenTelemetry context, so the handler's own spans and remote calls are its children. The
   parent passed to the SDK carries rony's decision in its flags, so the SDK's default sampler
   (parent-based) agrees with it. Each reply pushed gets an event ``message`` (as Go Rony).

REST requests get a SERVER span ``<METHOD> <route>`` from the HTTP headers (``rest_begin``),
with the handler span as its INTERNAL child. A remote call (``call_span``) is a CLIENT span
whose context goes into the tunnel envelope's headers; on the callee the dispatcher's SERVER
span continues the trace. Store writes inside a sampled request get ``rony.store.commit``
spans (``TracedStore``): rony.store itself knows nothing of tracing.

Builtins (Ping, GetNodes, GetAllNodes) and unknown constructors get no span, as in Go Rony.
"""

from __future__ import annotations

import random
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TracerProvider,
    TraceState,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from rony.core import Kind, MessageEnvelope, RequestCtx, registry
from rony.core.pb.msg_pb2 import KeyValue
from rony.store import AsyncStore, Store, WriteTxn

if TYPE_CHECKING:
    from rony.server._app import App, HandlerEntry

__all__ = ["TRACE_SAMPLERS", "TracedStore", "Tracing", "parse_traceparent"]

T = TypeVar("T")

TRACE_SAMPLERS = (
    "parentbased_traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "traceidratio",
    "always_on",
    "always_off",
)
"""The values of the ``trace_sampler`` setting: OpenTelemetry's ``OTEL_TRACES_SAMPLER`` names."""

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_LOW64 = (1 << 64) - 1
_random = random.random
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)


def parse_traceparent(value: str) -> tuple[int, int, bool] | None:
    """A W3C ``traceparent`` -> (trace id, parent span id, sampled), or None when malformed.

    Version 00 has exactly four fields; a later version may have more (read as 00, as the
    spec asks); version ff, upper-case hex and all-zero ids are invalid."""
    m = _TRACEPARENT.fullmatch(value)
    if m is None:
        return None
    version, tid, sid, flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    trace_id = int(tid, 16)
    span_id = int(sid, 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, bool(int(flags, 16) & 1)


# Version 00, the one every tracer sends: checked without groups or int(), which is most of
# the cost of an unsampled parent (~0.7 µs here instead of ~2).
_TRACEPARENT_00 = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


# A valid version-00 traceparent whose sampled flag is 0 (ids not all zero, flags even): the
# unsampled parent a parent-based sampler follows, told in one match with no slicing or int().
_UNSAMPLED_00 = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f][02468ace]")


def _sampled_flag(value: str) -> bool | None:
    """A traceparent's sampled flag, or None when it is malformed (``parse_traceparent``'s
    verdict, cheaper for the usual version 00)."""
    if _TRACEPARENT_00.fullmatch(value) is not None:
        if value[3:35] == _ZERO_TRACE or value[36:52] == _ZERO_SPAN:
            return None
        return value[54] in "13579bdf"
    parsed = parse_traceparent(value)
    return None if parsed is None else parsed[2]


def _int64(value: int) -> int:
    """A uint64 (request id, constructor) as the int64 OpenTelemetry attributes hold; the
    same number Go Rony's ``int64(x)`` conversion records."""
    return value - (1 << 64) if value >= 1 << 63 else value


# The decision "not sampled" for the rest of a request, with the trace context a remote call
# passes on: (traceparent, tracestate) of the caller (flags 00), or (None, None) for a root,
# whose ids are made up when a call needs them. A tuple: the cheapest object to make.
_Unsampled = tuple[str | None, str | None]
_ROOT_UNSAMPLED: _Unsampled = (None, None)


def _unsampled_headers(decided: _Unsampled) -> dict[str, str]:
    traceparent, tracestate = decided
    if traceparent is None:  # (a root: fresh ids; nothing records them)
        ids = random.getrandbits(128) or 1, random.getrandbits(64) or 1
        traceparent = f"00-{ids[0]:032x}-{ids[1]:016x}-00"
    out = {"traceparent": traceparent}
    if tracestate:
        out["tracestate"] = tracestate
    return out


# The OpenTelemetry context of an unsampled request: a valid, unsampled, non-recording span,
# so spans the handler (or an instrumented library) starts are unsampled children, which the
# SDK's default parent-based sampler drops, instead of roots of traces of their own. One for
# every unsampled request (its ids mean nothing: nothing records them), so making it costs
# nothing per request; rony's own calls pass the caller's real traceparent (_DECIDED).
_UNSAMPLED_CONTEXT = trace.set_span_in_context(
    NonRecordingSpan(
        SpanContext(random.getrandbits(128) | 1, random.getrandbits(64) | 1, True, _NOT_SAMPLED)
    ),
    Context(),
)

_Undo = tuple[Token[Any], object]
"""What an unsampled request undoes at its end: the decision and the context it attached."""


def _runtime_var() -> ContextVar[Context] | None:
    """The ContextVar behind OpenTelemetry's current context, when the API keeps it in one (its
    default ``contextvars`` runtime context), else None.

    ``otel_context.attach`` / ``detach`` are that variable's ``set`` / ``reset`` behind two
    calls each (and a try around ``reset`` that logs a failure): ~0.2 µs of an unsampled
    request's ~1 µs here. The unsampled paths call the variable's own methods; the tokens are
    the same objects, so either side may undo what the other did. The attribute is private, so
    it is looked up once, checked, and the public functions are the fallback.
    """
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if not isinstance(var, ContextVar) or not isinstance(var.get(), Context):
        return None
    return var


_RUNTIME_VAR = _runtime_var()


def _attach_public(context: Context) -> Token[Context]:
    return otel_context.attach(context)


def _detach_public(token: Token[Context]) -> None:
    otel_context.detach(token)


def _detach_var(token: Token[Context]) -> None:
    try:
        _RUNTIME_VAR.reset(token)  # type: ignore[union-attr]
    except ValueError:  # (made in another context: what otel_context.detach logs)
        otel_context.detach(token)


_attach: Callable[[Context], Token[Context]] = (
    _attach_public if _RUNTIME_VAR is None else _RUNTIME_VAR.set
)
_detach: Callable[[Token[Context]], None] = _detach_public if _RUNTIME_VAR is None else _detach_var


def _unsampled(decided: _Unsampled) -> _Undo:
    return _DECIDED.set(decided), _attach(_UNSAMPLED_CONTEXT)


def _undo_unsampled(undo: _Undo) -> None:
    _detach(undo[1])  # type: ignore[arg-type]
    _DECIDED.reset(undo[0])


class _Outer:
    """A sampled REST request: its span is current; the handler's span is its child."""

    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span = span


# What an enclosing layer (a REST request, or a request whose handler is running) decided.
_DECIDED: ContextVar[_Unsampled | _Outer | None] = ContextVar("rony_trace_decided", default=None)


class _Traced:
    """A sampled request's span and what ``end`` undoes."""

    __slots__ = ("buffered", "span", "token")

    def __init__(self, span: Span, token: Any, buffered: int) -> None:
        self.span = span
        self.token = token
        self.buffered = buffered  # replies buffered before this request (their events: end)


class _EventReply:
    """A persistent conn's ``reply`` that adds the event ``message`` to the current span."""

    __slots__ = ("reply",)

    def __init__(self, reply: Callable[[MessageEnvelope], None]) -> None:
        self.reply = reply

    def __call__(self, env: MessageEnvelope) -> None:
        _message_event(trace.get_current_span(), env)
        self.reply(env)


def _message_event(span: Span, env: MessageEnvelope) -> None:
    span.add_event(
        "message",
        {"message.id": _int64(env.RequestID), "rony.constructor": _int64(env.Constructor)},
    )


def sdk_installed(provider: TracerProvider) -> bool:
    """False for the API's own providers, which make only no-op spans: the proxy (nothing
    installed yet) and NoOpTracerProvider."""
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


class Tracing:
    """One node's tracer and sampling decision. Make it with ``create``."""

    def __init__(
        self,
        provider: TracerProvider,
        *,
        server_id: str,
        sampler: str = "parentbased_traceidratio",
        ratio: float = 1.0,
    ) -> None:
        if sampler not in TRACE_SAMPLERS:
            raise ValueError(f"trace_sampler must be one of {', '.join(TRACE_SAMPLERS)}")
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"trace_ratio must be within 0..1, got {ratio!r}")
        from rony.server import __version__

        self.tracer = provider.get_tracer("rony.server", __version__)
        self.server_id = server_id
        self.parent_based = sampler.startswith("parentbased_")
        base = sampler.removeprefix("parentbased_")
        self.ratio = 1.0 if base == "always_on" else 0.0 if base == "always_off" else ratio
        self._bound = int(self.ratio * (1 << 64))  # traceidratio: trace id's low 64 bits below
        self._names: dict[int, tuple[str, dict[str, Any]]] = {}  # constructor -> span name, attrs

    @classmethod
    def create(
        cls,
        *,
        enabled: bool,
        server_id: str,
        sampler: str,
        ratio: float,
        provider: TracerProvider | None = None,
    ) -> Tracing | None:
        """The node's Tracing, or None: tracing off, or no SDK installed (``provider`` None:
        the global one, read now: a provider installed after the node started is not seen)."""
        if not enabled:
            return None
        provider = trace.get_tracer_provider() if provider is None else provider
        if not sdk_installed(provider):
            return None
        return cls(provider, server_id=server_id, sampler=sampler, ratio=ratio)

    # --- sampling ---------------------------------------------------------------------------

    def _root(self) -> bool:
        ratio = self.ratio
        return ratio >= 1.0 or (ratio > 0.0 and random.random() < ratio)

    def _with_parent(self, trace_id: int, sampled: bool) -> bool:
        if self.parent_based:
            return sampled
        return (trace_id & _LOW64) < self._bound

    # --- a request (the dispatcher) ---------------------------------------------------------

    def begin(self, ctx: RequestCtx, entry: HandlerEntry) -> Any:
        """Decide and, when sampled, open the request's span (and make it current). The
        result (None, or what to undo: a span, a context token, the unsampled decision)
        goes to ``end`` in the same task, once the chain is done."""
        header = ctx.envelope.Header
        if header:
            traceparent = tracestate = None
            if len(header) == 1:  # (the usual: traceparent alone; indexing is cheaper)
                kv = header[0]
                if kv.Key == "traceparent":
                    traceparent = kv.Value
            else:
                for kv in header:
                    key = kv.Key
                    if key == "traceparent":
                        traceparent = kv.Value
                    elif key == "tracestate":
                        tracestate = kv.Value
            if traceparent is not None:
                if self.parent_based and _UNSAMPLED_00.fullmatch(traceparent) is not None:
                    # The usual unsampled parent: no ids parsed, no OpenTelemetry object made;
                    # the header itself goes on to remote calls (_unsampled_headers).
                    return _DECIDED.set((traceparent, tracestate)), _attach(_UNSAMPLED_CONTEXT)
                flag = _sampled_flag(traceparent)
                if flag is not None:
                    if self.parent_based and not flag:  # (the cheap, usual unsampled case)
                        return _unsampled((traceparent, tracestate))
                    parent = parse_traceparent(traceparent)
                    assert parent is not None
                    trace_id, span_id, _ = parent
                    if not self._with_parent(trace_id, flag):
                        return _unsampled((traceparent, tracestate))
                    state = TraceState.from_header([tracestate]) if tracestate else None
                    remote = SpanContext(trace_id, span_id, True, _SAMPLED, state)
                    parent_ctx = trace.set_span_in_context(NonRecordingSpan(remote), Context())
                    return self._open(ctx, entry, parent_ctx, SpanKind.SERVER)
        decided = _DECIDED.get()
        if decided is not None:
            if type(decided) is _Outer:  # a sampled REST request: its span is current
                return self._open(ctx, entry, None, SpanKind.INTERNAL)
            return None  # (unsampled further out: the marker is set already)
        ratio = self.ratio  # (_root, inlined: this is the unsampled request's whole cost)
        if ratio < 1.0 and (ratio <= 0.0 or _random() >= ratio):
            # The shared unsampled context alone: a remote call passes on its flags 00.
            return _attach(_UNSAMPLED_CONTEXT)
        return self._open(ctx, entry, Context(), SpanKind.SERVER)

    def _open(
        self, ctx: RequestCtx, entry: HandlerEntry, parent: Context | None, kind: SpanKind
    ) -> _Traced:
        name, attrs = self._name_of(entry)
        attributes = dict(attrs)
        attributes["rony.request_id"] = _int64(ctx.request_id)
        dctx = ctx.dispatch
        attributes["rony.kind"] = "tunnel" if dctx.kind is Kind.TUNNEL else "gateway"
        attributes["rony.conn_id"] = dctx.conn.conn_id
        attributes["client.address"] = dctx.conn.client_ip
        span = self.tracer.start_span(name, parent, kind, attributes)
        ctx._span = span
        # Pushed replies get their "message" event: a persistent conn's through its reply
        # (as encoded bytes they would skip it: the sampled request takes the envelope path),
        # a buffered one's at the end.
        reply = getattr(dctx, "reply", None)
        if reply is not None and type(reply) is not _EventReply:
            dctx.reply = _EventReply(reply)  # type: ignore[attr-defined]
            dctx.send_encoded = None
        token = otel_context.attach(trace.set_span_in_context(span))
        return _Traced(span, token, len(dctx.buffer))

    def _name_of(self, entry: HandlerEntry) -> tuple[str, dict[str, Any]]:
        known = self._names.get(entry.constructor)
        if known is None:
            known = _rpc_name(entry.service, entry.method, entry.constructor)
            known[1]["rony.server_id"] = self.server_id
            self._names[entry.constructor] = known
        return known

    def end(self, traced: Any, ctx: RequestCtx) -> None:
        """Close what ``begin`` opened: the span, with the request's outcome."""
        kind = type(traced)
        if kind is tuple:  # an unsampled parent: (decision token, context token)
            _detach(traced[1])
            _DECIDED.reset(traced[0])
            return
        if kind is not _Traced:  # an unsampled root: the context token alone
            _detach(traced)
            return
        span = traced.span
        try:
            err = ctx.error
            if err is not None:
                span.set_attribute("rony.error.code", err.code)
                span.set_attribute("rony.error.items", err.items)
                span.set_status(Status(StatusCode.ERROR, f"{err.code}:{err.items}"))
            else:
                exc = sys.exc_info()[1]  # a cancellation passing through the chain's finally
                if exc is not None:
                    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            for env in ctx.dispatch.buffer[traced.buffered :]:
                _message_event(span, env)
            span.end()
        finally:
            otel_context.detach(traced.token)

    # --- REST (the gateway) -----------------------------------------------------------------

    def rest_begin(
        self, method: str, route: str, path: str, headers: Mapping[str, str]
    ) -> _Traced | _Undo:
        """A REST request: decide from its HTTP headers; when sampled, a SERVER span
        ``<METHOD> <route>``. Hand the result to ``rest_end``."""
        traceparent = headers.get("traceparent")
        tracestate = headers.get("tracestate")
        parent = parse_traceparent(traceparent) if traceparent is not None else None
        if parent is not None:
            trace_id, span_id, flag = parent
            if not self._with_parent(trace_id, flag):
                return _unsampled((traceparent, tracestate))
            state = TraceState.from_header([tracestate]) if tracestate else None
            remote = SpanContext(trace_id, span_id, True, _SAMPLED, state)
            parent_ctx = trace.set_span_in_context(NonRecordingSpan(remote), Context())
        elif not self._root():
            return _unsampled(_ROOT_UNSAMPLED)
        else:
            parent_ctx = Context()
        attributes = {
            "http.request.method": method,
            "http.route": route,
            "url.path": path,
            "rpc.system": "rony",
            "rony.server_id": self.server_id,
        }
        span = self.tracer.start_span(f"{method} {route}", parent_ctx, SpanKind.SERVER, attributes)
        token = otel_context.attach(trace.set_span_in_context(span))
        return _Traced(span, (token, _DECIDED.set(_Outer(span))), 0)

    def rest_end(self, traced: _Traced | _Undo, status: int | None) -> None:
        """Close ``rest_begin``'s span with the HTTP status (None: the request failed)."""
        if type(traced) is not _Traced:
            _undo_unsampled(traced)  # type: ignore[arg-type]
            return
        span = traced.span
        token, decided = traced.token
        try:
            if status is not None:
                span.set_attribute("http.response.status_code", status)
            if status is None or status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
        finally:
            _DECIDED.reset(decided)
            otel_context.detach(token)

    # --- a call to another node (the tunnel's caller) ---------------------------------------

    @contextmanager
    def call_span(self, app: App, replica_set: int, env: MessageEnvelope) -> Iterator[None]:
        """Around a remote call: a CLIENT span when the caller is sampled (or, outside any
        request, a sampled root), and its trace context put into ``env``'s headers. An
        unsampled caller's context is passed on as it is; the callee then records nothing."""
        sc = trace.get_current_span().get_span_context()
        decided = _DECIDED.get()
        span: Span | None = None
        if type(decided) is tuple:  # an unsampled request: its caller's context goes on
            _set_headers(env, _unsampled_headers(decided))
        elif sc.is_valid:
            if sc.trace_flags.sampled:
                span = self._client_span(app, replica_set, env, None)
            else:
                _set_headers(env, _injected(None))
        elif self._root():  # outside any request: this call is the root
            span = self._client_span(app, replica_set, env, Context())
        else:
            _set_headers(env, _unsampled_headers(_ROOT_UNSAMPLED))
        if span is None:
            yield
            return
        _set_headers(env, _injected(trace.set_span_in_context(span)))
        try:
            yield
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            code = getattr(exc, "code", None)
            if isinstance(code, str):
                span.set_attribute("rony.error.code", code)
            raise
        finally:
            span.end()

    def _client_span(
        self, app: App, replica_set: int, env: MessageEnvelope, parent: Context | None
    ) -> Span:
        entry = app.handlers.get(env.Constructor)
        if entry is not None:
            name, attrs = _rpc_name(entry.service, entry.method, env.Constructor)
        else:
            name, attrs = _rpc_name("", registry.name_of(env.Constructor) or "", env.Constructor)
        attrs["rony.replica_set"] = replica_set
        attrs["rony.request_id"] = _int64(env.RequestID)
        attrs["rony.server_id"] = self.server_id
        return self.tracer.start_span(name, parent, SpanKind.CLIENT, attrs)


def _rpc_name(service: str, method: str, constructor: int) -> tuple[str, dict[str, Any]]:
    """Go Rony's span name ``rpc.<Service>/<Method>`` and attributes for one method."""
    attrs: dict[str, Any] = {"rpc.system": "rony", "rony.constructor": _int64(constructor)}
    if service:
        attrs["rpc.service"] = service
    if method:
        attrs["rpc.method"] = method
    if service and method:
        return f"rpc.{service}/{method}", attrs
    return f"rpc.{method or constructor}", attrs


_W3C = TraceContextTextMapPropagator()


def _injected(ctx: Context | None) -> dict[str, str]:
    """``traceparent`` / ``tracestate`` of ``ctx`` (None: the current context): W3C always,
    whatever the global propagator, since that is what the callee reads."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=ctx)
    return carrier


def _set_headers(env: MessageEnvelope, headers: Mapping[str, str]) -> None:
    """Put the trace context into ``env``'s headers, replacing any there (a retry's)."""
    if not headers:
        return
    keep = [kv for kv in env.Header if kv.Key not in headers]
    del env.Header[:]
    env.Header.extend(keep)
    env.Header.extend(KeyValue(Key=k, Value=v) for k, v in headers.items())


class TracedStore(AsyncStore):
    """The node's AsyncStore when it traces: a write awaited inside a sampled request gets a
    span ``rony.store.commit`` (the wait for the writer thread's commit, fsync included in
    durable mode). The same Store underneath; rony.store does not depend on OpenTelemetry."""

    __slots__ = ("_tracer",)

    def __init__(self, store: Store, tracer: trace.Tracer) -> None:
        super().__init__(store)
        self._tracer = tracer

    async def _submit(self, fn: Callable[[WriteTxn], T]) -> T:
        if not trace.get_current_span().is_recording():
            return await super()._submit(fn)
        with self._tracer.start_as_current_span("rony.store.commit", kind=SpanKind.INTERNAL):
            return await super()._submit(fn)
