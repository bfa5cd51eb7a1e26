"""One trace across client -> node A -> tunnel (QUIC) -> node B, two Edges in one process."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.trace import SpanKind

from rony.client import AsyncClient
from rony.core import Ping, Pong

from ..cluster._edges import edges
from ._otel import C_Forward, make_app, named, recorder, spans_when

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_one_trace_across_the_tunnel(tmp_path: Path) -> None:
    provider, exporter = recorder()
    tracer = provider.get_tracer("test")
    nodes = {"a": 1, "b": 2}
    async with edges(tmp_path, make_app(), nodes, tunnel=True, tracer_provider=provider) as (
        a,
        _b,
    ):
        async with AsyncClient(a.url) as client:
            with tracer.start_as_current_span("caller") as caller:
                assert (await client.call(C_Forward, Ping(ID=2), Pong)).ID == 2

        def complete(spans: object) -> bool:
            got = exporter.get_finished_spans()
            return bool(named(got, "rpc.Trace/Forward")) and len(named(got, "rpc.Trace/Echo")) == 2

        spans = await spans_when(exporter, complete, "the spans of both nodes")
    trace_id = caller.get_span_context().trace_id
    assert {s.context.trace_id for s in spans} == {trace_id}
    (on_a,) = named(spans, "rpc.Trace/Forward")
    echo = named(spans, "rpc.Trace/Echo")
    (call,) = [s for s in echo if s.kind is SpanKind.CLIENT]
    (on_b,) = [s for s in echo if s.kind is SpanKind.SERVER]
    assert on_a.parent is not None
    assert on_a.parent.span_id == caller.get_span_context().span_id
    assert call.parent is not None
    assert call.parent.span_id == on_a.context.span_id
    assert not call.parent.is_remote
    assert on_b.parent is not None
    assert on_b.parent.span_id == call.context.span_id
    assert on_b.parent.is_remote
    a_attrs, b_attrs = dict(on_a.attributes or {}), dict(on_b.attributes or {})
    assert (a_attrs["rony.server_id"], a_attrs["rony.kind"]) == ("a", "gateway")
    assert (b_attrs["rony.server_id"], b_attrs["rony.kind"]) == ("b", "tunnel")
    assert dict(call.attributes or {})["rony.replica_set"] == 2


async def test_an_unsampled_request_stays_unsampled_on_the_callee(tmp_path: Path) -> None:
    provider, exporter = recorder()
    nodes = {"a": 1, "b": 2}
    async with (
        edges(tmp_path, make_app(), nodes, tunnel=True, tracer_provider=provider) as (a, _b),
        AsyncClient(a.url) as client,
    ):
        # B samples every root (trace_ratio 1.0): only the flags 00 A passes on keep it quiet
        unsampled = {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-00"}
        assert (await client.call(C_Forward, Ping(ID=2), Pong, header=unsampled)).ID == 2
        # A root that A does not sample (ratio 0 on A only) is not sampled on B either
        assert a.dispatcher.tracing is not None
        a.dispatcher.tracing.ratio = 0.0
        assert (await client.call(C_Forward, Ping(ID=2), Pong)).ID == 2
        # then a sampled one, to know the spans of the others would have been exported
        a.dispatcher.tracing.ratio = 1.0
        assert (await client.call(C_Forward, Ping(ID=2), Pong)).ID == 2
        spans = await spans_when(exporter, lambda s: len(s) == 3, "the sampled call's spans")
    assert len({s.context.trace_id for s in spans}) == 1
    assert f"{spans[0].context.trace_id:032x}" != TRACE
