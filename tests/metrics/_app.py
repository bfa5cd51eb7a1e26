"""The service of the metrics tests: echo, an error, big replies, pushes, store writes, REST."""

from __future__ import annotations

from typing import Final

from rony.core import KeyValue, Ping, Pong, RequestCtx, method_id
from rony.core import errors as rony_errors
from rony.server import App, edge_of

C_Echo: Final = method_id("Metrics", "Echo")  # Ping -> Pong, same ID
C_Fail: Final = method_id("Metrics", "Fail")  # Ping -> an Error E07
C_Big: Final = method_id("Metrics", "Big")  # Ping(ID=size) -> KeyValue with a value of size bytes
C_Put: Final = method_id("Metrics", "Put")  # Ping(ID=n) -> n store writes, then Pong
C_Push: Final = method_id("Metrics", "Push")  # Ping(ID=n) -> n pushes (RequestID 0), then Pong


async def echo(ctx: RequestCtx) -> None:
    ctx.push_message(Pong(ID=ctx.message(Ping).ID))


async def fail(ctx: RequestCtx) -> None:
    ctx.push_error(rony_errors.AccessError("ACCESS", "nope"))


async def big(ctx: RequestCtx) -> None:
    ctx.push_message(KeyValue(Key="big", Value="x" * ctx.message(Ping).ID))


async def put(ctx: RequestCtx) -> None:
    n = ctx.message(Ping).ID
    store = edge_of(ctx).store
    for i in range(n):
        await store.set(b"key-%d" % i, b"value")
    ctx.push_message(Pong(ID=n))


async def push(ctx: RequestCtx) -> None:
    n = ctx.message(Ping).ID
    for i in range(n):
        ctx.push_custom_message(0, Pong(ID=i))
    ctx.push_message(Pong(ID=n))


app = App("metrics-tests")
for cid, fn, name in (
    (C_Echo, echo, "Echo"),
    (C_Fail, fail, "Fail"),
    (C_Big, big, "Big"),
    (C_Put, put, "Put"),
    (C_Push, push, "Push"),
):
    app.handle(cid, fn, request_class=Ping, service="Metrics", method=name)
app.rest("get", "/echo/:ID", C_Echo, Ping, json_encode=True)
