"""A recording OpenTelemetry SDK per test, and the service the tracing tests call.

Each test makes its own TracerProvider with an in-memory exporter and hands it to its Edges
(``Edge(..., tracer_provider=...)``): no global provider is installed, so other tests in the
same worker process stay untraced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Final

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rony.core import KeyValue, Ping, Pong, RequestCtx, method_id
from rony.core.errors import InvalidError
from rony.server import App, edge_of

C_Echo: Final = method_id("Trace", "Echo")  # Ping -> Pong(ID)
C_Fail: Final = method_id("Trace", "Fail")  # Ping -> Error E01 INPUT
C_Save: Final = method_id("Trace", "Save")  # Ping -> writes the store, Pong(ID)
C_Forward: Final = method_id("Trace", "Forward")  # Ping(ID=rs) -> Echo on a node of rs
C_MySpan: Final = method_id("Trace", "MySpan")  # Ping -> KeyValue(ctx.span's ids, hex)


async def echo(ctx: RequestCtx) -> None:
    ctx.push_message(Pong(ID=ctx.message(Ping).ID))


async def fail(ctx: RequestCtx) -> None:
    raise InvalidError("INPUT", "refused on purpose")


async def save(ctx: RequestCtx) -> None:
    req = ctx.message(Ping)
    await edge_of(ctx).store.set(b"k%d" % req.ID, b"v")
    ctx.push_message(Pong(ID=req.ID))


async def forward(ctx: RequestCtx) -> None:
    rs = ctx.message(Ping).ID
    ctx.push_message(await ctx.execute_remote(rs, C_Echo, Ping(ID=rs), Pong))


async def my_span(ctx: RequestCtx) -> None:
    sc = ctx.span.get_span_context()
    ctx.push_message(KeyValue(Key=f"{sc.trace_id:032x}", Value=f"{sc.span_id:016x}"))


def make_app() -> App:
    app = App("trace-test")
    for cid, fn, name in (
        (C_Echo, echo, "Echo"),
        (C_Fail, fail, "Fail"),
        (C_Save, save, "Save"),
        (C_Forward, forward, "Forward"),
        (C_MySpan, my_span, "MySpan"),
    ):
        app.handle(cid, fn, request_class=Ping, service="Trace", method=name)
    app.rest("GET", "/echo/:ID", C_Echo, Ping, json_encode=True)
    return app


def recorder() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


async def spans_when(
    exporter: InMemorySpanExporter,
    cond: Callable[[Sequence[ReadableSpan]], bool],
    what: str,
    limit: float = 10.0,
) -> Sequence[ReadableSpan]:
    """The finished spans once ``cond`` holds (a server span ends after its reply left)."""
    try:
        async with asyncio.timeout(limit):
            while not cond(spans := exporter.get_finished_spans()):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    except TimeoutError:
        names = [s.name for s in exporter.get_finished_spans()]
        raise AssertionError(f"not within {limit} s: {what}; spans: {names}") from None
    return spans


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]
