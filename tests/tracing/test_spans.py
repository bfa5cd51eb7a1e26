"""Spans of one node: RPC over WebSocket and HTTP, REST, outcomes, store commits, sampling."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from rony.client import AsyncClient
from rony.core import C_Ping, KeyValue, Ping, Pong, RequestCtx, method_id
from rony.core.errors import InvalidError
from rony.server import App, Edge
from rony.server.testing import serve

from ._otel import (
    C_Echo,
    C_Fail,
    C_MySpan,
    C_Save,
    make_app,
    named,
    recorder,
    spans_when,
)

C_Own = method_id("Trace", "Own")
TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_client_span_is_the_parent_of_the_server_span(transport: str) -> None:
    provider, exporter = recorder()
    tracer = provider.get_tracer("test")
    async with serve(make_app(), tracer_provider=provider) as edge:
        async with AsyncClient(edge.url, transport=transport) as client:  # type: ignore[arg-type]
            with tracer.start_as_current_span("caller") as caller:
                pong = await client.call(C_Echo, Ping(ID=7), Pong)
        assert pong.ID == 7
        spans = await spans_when(exporter, lambda s: len(named(s, "rpc.Trace/Echo")) == 1, "span")
    (server,) = named(spans, "rpc.Trace/Echo")
    assert server.kind is SpanKind.SERVER
    assert server.parent is not None
    assert server.parent.span_id == caller.get_span_context().span_id
    assert server.parent.is_remote
    assert server.context.trace_id == caller.get_span_context().trace_id
    attrs = dict(server.attributes or {})
    assert attrs["rpc.system"] == "rony"
    assert attrs["rpc.service"] == "Trace"
    assert attrs["rpc.method"] == "Echo"
    assert attrs["rony.kind"] == "gateway"
    assert attrs["rony.server_id"] == edge.server_id
    assert isinstance(attrs["rony.request_id"], int)
    assert attrs["rony.request_id"] != 0
    assert server.status.status_code is StatusCode.UNSET
    # the pushed reply: an event "message" (Go Rony's), with its constructor
    (event,) = server.events
    assert event.name == "message"
    assert dict(event.attributes or {})["message.id"] == attrs["rony.request_id"]


async def test_a_root_request_is_sampled_by_default_and_builtins_are_not() -> None:
    provider, exporter = recorder()
    async with serve(make_app(), tracer_provider=provider) as edge, AsyncClient(edge.url) as c:
        await c.call(C_Echo, Ping(ID=1), Pong)
        await c.call(C_Ping, Ping(ID=2), Pong)
        spans = await spans_when(exporter, lambda s: bool(named(s, "rpc.Trace/Echo")), "span")
    assert [s.name for s in spans] == ["rpc.Trace/Echo"]  # Ping: no span (as Go Rony)
    assert spans[0].parent is None


async def test_error_outcome_and_ctx_span() -> None:
    provider, exporter = recorder()
    async with serve(make_app(), tracer_provider=provider) as edge, AsyncClient(edge.url) as c:
        with pytest.raises(InvalidError):
            await c.call(C_Fail, Ping(), Pong)
        ids = await c.call(C_MySpan, Ping(), KeyValue)
        spans = await spans_when(exporter, lambda s: len(s) == 2, "two spans")
    (failed,) = named(spans, "rpc.Trace/Fail")
    assert failed.status.status_code is StatusCode.ERROR
    assert dict(failed.attributes or {})["rony.error.code"] == "E01"
    assert dict(failed.attributes or {})["rony.error.items"] == "INPUT"
    (mine,) = named(spans, "rpc.Trace/MySpan")
    assert (ids.Key, ids.Value) == (f"{mine.context.trace_id:032x}", f"{mine.context.span_id:016x}")


async def test_store_commit_span_is_a_child_of_the_request(tmp_path: Path) -> None:
    provider, exporter = recorder()
    async with serve(make_app(), tracer_provider=provider) as edge, AsyncClient(edge.url) as c:
        await c.call(C_Save, Ping(ID=3), Pong)
        spans = await spans_when(exporter, lambda s: bool(named(s, "rpc.Trace/Save")), "span")
        assert await edge.store.get(b"k3") == b"v"
    (commit,) = named(spans, "rony.store.commit")
    (request,) = named(spans, "rpc.Trace/Save")
    assert commit.parent is not None
    assert commit.parent.span_id == request.context.span_id


async def test_unsampled_parent_makes_no_span_and_malformed_is_ignored() -> None:
    provider, exporter = recorder()
    async with serve(make_app(), tracer_provider=provider) as edge, AsyncClient(edge.url) as c:
        unsampled = {"traceparent": f"00-{TRACE}-{PARENT}-00"}
        assert (await c.call(C_Echo, Ping(ID=1), Pong, header=unsampled)).ID == 1
        for bad in (
            "garbage",
            f"00-{TRACE.upper()}-{PARENT}-01",
            f"00-{'0' * 32}-{PARENT}-01",
            f"00-{TRACE}-{'0' * 16}-01",
            f"ff-{TRACE}-{PARENT}-01",
            f"00-{TRACE}-{PARENT}-01-extra",
        ):
            assert (await c.call(C_Echo, Ping(ID=2), Pong, header={"traceparent": bad})).ID == 2
        sampled = {"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "vendor=x"}
        assert (await c.call(C_Echo, Ping(ID=3), Pong, header=sampled)).ID == 3
        spans = await spans_when(exporter, lambda s: len(s) == 7, "7 spans")
    # the malformed ones: new roots (ratio 1.0); the sampled one continues TRACE
    assert sum(s.parent is None for s in spans) == 6
    (child,) = [s for s in spans if s.parent is not None]
    assert f"{child.context.trace_id:032x}" == TRACE
    assert child.parent is not None
    assert f"{child.parent.span_id:016x}" == PARENT
    assert child.context.trace_state.get("vendor") == "x"
    assert all(f"{s.context.trace_id:032x}" != TRACE for s in spans if s is not child)


async def test_ratio_zero_samples_no_root_but_follows_a_sampled_parent() -> None:
    provider, exporter = recorder()
    async with (
        serve(make_app(), tracer_provider=provider, trace_ratio=0.0) as edge,
        AsyncClient(edge.url) as c,
    ):
        for i in range(20):
            await c.call(C_Echo, Ping(ID=i), Pong)
        sampled = {"traceparent": f"00-{TRACE}-{PARENT}-01"}
        await c.call(C_Echo, Ping(ID=99), Pong, header=sampled)
        spans = await spans_when(exporter, lambda s: len(s) >= 1, "the parented span")
    assert len(spans) == 1
    assert f"{spans[0].context.trace_id:032x}" == TRACE


async def test_rest_span_name_and_http_parent() -> None:
    provider, exporter = recorder()
    async with serve(make_app(), tracer_provider=provider) as edge, aiohttp.ClientSession() as s:
        headers = {"traceparent": f"00-{TRACE}-{PARENT}-01"}
        async with s.get(f"{edge.url}/echo/5", headers=headers) as resp:
            assert resp.status == 200
            assert (await resp.json())["ID"] in (5, "5")
        async with s.get(f"{edge.url}/echo/6", headers={"traceparent": "nonsense"}) as resp:
            assert resp.status == 200
        spans = await spans_when(exporter, lambda s: len(s) == 4, "4 spans")
    rest = named(spans, "GET /echo/:ID")
    handlers = named(spans, "rpc.Trace/Echo")
    assert len(rest) == 2
    assert len(handlers) == 2
    traced = next(r for r in rest if f"{r.context.trace_id:032x}" == TRACE)
    assert traced.kind is SpanKind.SERVER
    assert traced.parent is not None
    assert f"{traced.parent.span_id:016x}" == PARENT
    attrs = dict(traced.attributes or {})
    assert attrs["http.route"] == "/echo/:ID"
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.path"] == "/echo/5"
    for r in rest:  # each handler span is the INTERNAL child of its REST span
        (h,) = [h for h in handlers if h.context.trace_id == r.context.trace_id]
        assert h.kind is SpanKind.INTERNAL
        assert h.parent is not None
        assert h.parent.span_id == r.context.span_id


async def test_rest_unsampled_parent_makes_no_span() -> None:
    provider, exporter = recorder()
    async with serve(make_app(), tracer_provider=provider) as edge, aiohttp.ClientSession() as s:
        headers = {"traceparent": f"00-{TRACE}-{PARENT}-00"}
        async with s.get(f"{edge.url}/echo/5", headers=headers) as resp:
            assert resp.status == 200
        async with AsyncClient(edge.url) as c:  # a later, sampled request: spans are flushed
            await c.call(C_Echo, Ping(ID=1), Pong)
        spans = await spans_when(exporter, lambda s: len(s) >= 1, "the later span")
    assert [s.name for s in spans] == ["rpc.Trace/Echo"]


async def test_off_and_without_sdk_nothing_is_traced() -> None:
    provider, exporter = recorder()
    async with serve(make_app(), tracer_provider=provider, tracing=False) as edge:
        assert edge.dispatcher.tracing is None
        async with AsyncClient(edge.url) as c:
            await c.call(C_Echo, Ping(ID=1), Pong)
    assert exporter.get_finished_spans() == ()
    # no SDK installed: the API's proxy provider is detected at start
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    async with serve(make_app()) as edge:
        assert edge.dispatcher.tracing is None
        async with AsyncClient(edge.url) as c:
            await c.call(C_MySpan, Ping(), KeyValue)  # ctx.span: the invalid span, no error


def test_bad_tracing_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="trace_sampler"):
        Edge(App("x"), trace_sampler="sometimes")
    with pytest.raises(ValueError, match="trace_ratio"):
        Edge(App("x"), trace_ratio=1.5)


async def test_a_failed_remote_call_is_a_client_span_with_its_error() -> None:
    from rony.core.errors import UnavailableError

    from ._otel import C_Forward

    provider, exporter = recorder()
    async with serve(make_app(), tracer_provider=provider) as edge, AsyncClient(edge.url) as c:
        with pytest.raises(UnavailableError):  # this node runs no cluster
            await c.call(C_Forward, Ping(ID=5), Pong)
        spans = await spans_when(exporter, lambda s: len(s) == 2, "two spans")
    (call,) = [s for s in named(spans, "rpc.Trace/Echo") if s.kind is SpanKind.CLIENT]
    (server,) = named(spans, "rpc.Trace/Forward")
    assert call.parent is not None
    assert call.parent.span_id == server.context.span_id
    assert call.status.status_code is StatusCode.ERROR
    assert dict(call.attributes or {})["rony.error.code"] == "E02"
    assert dict(server.attributes or {})["rony.error.code"] == "E02"


async def test_a_handler_span_in_an_unsampled_request_is_not_recorded() -> None:
    """A span the handler (or an instrumented library) starts in an unsampled request is an
    unsampled child, not the root of a trace of its own."""
    provider, exporter = recorder()
    tracer = provider.get_tracer("handler")
    app = make_app()

    async def own_span(ctx: RequestCtx) -> None:
        with tracer.start_as_current_span("inner"):
            ctx.push_message(Pong(ID=1))

    app.handle(C_Own, own_span, request_class=Ping, service="Trace", method="Own")
    async with (
        serve(app, tracer_provider=provider, trace_ratio=0.0) as edge,
        AsyncClient(edge.url) as c,
    ):
        await c.call(C_Own, Ping(), Pong)
        unsampled = {"traceparent": f"00-{TRACE}-{PARENT}-00"}
        await c.call(C_Own, Ping(), Pong, header=unsampled)
        sampled = {"traceparent": f"00-{TRACE}-{PARENT}-01"}
        await c.call(C_Own, Ping(), Pong, header=sampled)
        spans = await spans_when(exporter, lambda s: len(s) >= 2, "the sampled request's spans")
    assert sorted(s.name for s in spans) == ["inner", "rpc.Trace/Own"]
    inner, outer = named(spans, "inner")[0], named(spans, "rpc.Trace/Own")[0]
    assert inner.parent is not None
    assert inner.parent.span_id == outer.context.span_id
