"""The caller's OpenTelemetry trace context, carried in a request envelope's headers.

When the code calling the client runs inside a valid span (its own, or a framework's), each
request carries W3C ``traceparent`` / ``tracestate`` headers, which a Rony server continues
its trace from; an unsampled span is passed on too, so the server does not sample what the
caller chose not to. Outside any span nothing is added: the cost is one context lookup.
No I/O: the sans-I/O protocol core calls it for both clients.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from rony.core import MessageEnvelope
from rony.core.pb.msg_pb2 import KeyValue

__all__ = ["add_trace", "trace_header"]

# W3C whatever the global propagator is: that is what a Rony server reads.
_W3C = TraceContextTextMapPropagator()
_current_span = trace.get_current_span


def trace_header(header: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """``header`` with the current span's trace context added; ``header`` itself when there
    is no valid current span or it names a ``traceparent`` already."""
    if not _current_span().get_span_context().is_valid:
        return header
    if header and "traceparent" in header:
        return header
    carrier = dict(header) if header else {}
    _W3C.inject(carrier)
    return carrier


def add_trace(env: MessageEnvelope) -> None:
    """Add the current span's trace context to ``env``'s headers (unless it has one)."""
    if not _current_span().get_span_context().is_valid:
        return
    if any(kv.Key == "traceparent" for kv in env.Header):
        return
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    env.Header.extend(KeyValue(Key=k, Value=v) for k, v in carrier.items())
