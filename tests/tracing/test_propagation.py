"""W3C traceparent parsing, the sampler's decisions, and the clients' injection."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.trace import SpanKind

from rony.client import AsyncClient, Client
from rony.core import MessageEnvelope, Ping, Pong
from rony.server._tracing import Tracing, parse_traceparent
from rony.server.testing import serve

from ._otel import C_Echo, make_app, named, recorder, spans_when

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (f"00-{TRACE}-{PARENT}-01", (int(TRACE, 16), int(PARENT, 16), True)),
        (f"00-{TRACE}-{PARENT}-00", (int(TRACE, 16), int(PARENT, 16), False)),
        (f"00-{TRACE}-{PARENT}-03", (int(TRACE, 16), int(PARENT, 16), True)),
        # a later version: read as 00, with whatever fields it adds
        (f"01-{TRACE}-{PARENT}-01-more", (int(TRACE, 16), int(PARENT, 16), True)),
        (f"00-{TRACE}-{PARENT}-01-more", None),
        (f"ff-{TRACE}-{PARENT}-01", None),
        (f"00-{TRACE.upper()}-{PARENT}-01", None),
        (f"00-{'0' * 32}-{PARENT}-01", None),
        (f"00-{TRACE}-{'0' * 16}-01", None),
        (f"00-{TRACE[:-1]}-{PARENT}-01", None),
        (f"00-{TRACE}-{PARENT}-1", None),
        (f" 00-{TRACE}-{PARENT}-01", None),
        ("", None),
        ("00--" + "-" * 60, None),
    ],
)
def test_parse_traceparent(value: str, parsed: tuple[int, int, bool] | None) -> None:
    assert parse_traceparent(value) == parsed


@pytest.mark.parametrize(
    "value",
    [
        f"00-{TRACE}-{PARENT}-00",
        f"00-{TRACE}-{PARENT}-01",
        f"00-{TRACE}-{PARENT}-02",
        f"00-{TRACE}-{PARENT}-0f",
        f"00-{TRACE}-{PARENT}-fe",
        f"00-{TRACE}-{PARENT}-0A",
        f"00-{'0' * 32}-{PARENT}-00",
        f"00-{TRACE}-{'0' * 16}-00",
        f"00-{'0' * 31}1-{PARENT}-00",
        f"00-{TRACE}-{'0' * 15}1-00",
        f"00-{TRACE.upper()}-{PARENT}-00",
        f"00-{TRACE}-{PARENT}-00-more",
        f"00-{TRACE}-{PARENT}-00\n",
        f"01-{TRACE}-{PARENT}-00",
        f"00-{TRACE}-{PARENT}-0",
        f"00-{TRACE}_{PARENT}-00",
    ],
)
def test_unsampled_shortcut_agrees_with_the_parser(value: str) -> None:
    """The dispatcher's one-match test for "a valid version-00 parent, not sampled" says yes
    exactly when the full parser reads a version-00 header with the sampled flag clear."""
    from rony.server._tracing import _UNSAMPLED_00

    parsed = parse_traceparent(value)
    expected = parsed is not None and not parsed[2] and value.startswith("00-")
    assert (_UNSAMPLED_00.fullmatch(value) is not None) == expected


def test_samplers_decide_as_named() -> None:
    provider, _ = recorder()

    def tracing(sampler: str, ratio: float = 0.5) -> Tracing:
        return Tracing(provider, server_id="n", sampler=sampler, ratio=ratio)

    low, high = 1, (1 << 64) - 1  # trace ids whose low 64 bits are far below / above 0.5
    parent = tracing("parentbased_traceidratio")
    assert parent._with_parent(high, True)
    assert not parent._with_parent(low, False)
    ratio = tracing("traceidratio")
    assert ratio._with_parent(low, False)
    assert not ratio._with_parent(high, True)
    assert tracing("always_on", 0.0)._root()
    assert not tracing("always_off", 1.0)._root()
    assert not tracing("parentbased_always_off", 1.0)._root()
    assert tracing("parentbased_always_on", 0.0)._with_parent(high, True)
    assert not any(tracing("traceidratio", 0.0)._root() for _ in range(100))
    half = sum(tracing("traceidratio", 0.5)._root() for _ in range(2000))
    assert 800 < half < 1200
    with pytest.raises(ValueError, match="trace_sampler"):
        tracing("sometimes")


async def test_the_sync_client_and_send_inject_the_current_span() -> None:
    provider, exporter = recorder()
    tracer = provider.get_tracer("test")
    async with serve(make_app(), tracer_provider=provider) as edge:
        with tracer.start_as_current_span("caller") as caller:

            def call_sync() -> int:  # (to_thread runs it in a copy of this context)
                with Client(edge.url) as client:
                    return client.call(C_Echo, Ping(ID=4), Pong).ID

            assert await asyncio.to_thread(call_sync) == 4
            async with AsyncClient(edge.url, transport="http") as client:
                env = MessageEnvelope(Constructor=C_Echo, Message=Ping(ID=5).SerializeToString())
                await client.send(env)
        spans = await spans_when(exporter, lambda s: len(named(s, "rpc.Trace/Echo")) == 2, "2")
    for span in named(spans, "rpc.Trace/Echo"):
        assert span.kind is SpanKind.SERVER
        assert span.parent is not None
        assert span.parent.span_id == caller.get_span_context().span_id


async def test_no_current_span_no_header() -> None:
    from rony.client._tracing import add_trace, trace_header

    assert trace_header(None) is None
    given = {"a": "b"}
    assert trace_header(given) is given
    env = MessageEnvelope()
    add_trace(env)
    assert len(env.Header) == 0
    provider, _ = recorder()
    with provider.get_tracer("t").start_as_current_span("x"):
        header = trace_header(given)
        assert header is not None
        assert set(header) == {"a", "traceparent"}
        add_trace(env)
        add_trace(env)  # (once only)
        assert [kv.Key for kv in env.Header] == ["traceparent"]
