"""The service the client tests talk to: a real rony.server App (also run as a subprocess with
``rony serve _nodeapp:app`` from this folder). Messages are rony.core's own, so the client needs
no generated code. Method ids are registered under ``Test*`` names."""

from __future__ import annotations

import asyncio
from typing import Final

from rony.core import (
    C_Pong,
    KeyValue,
    MessageEnvelope,
    Ping,
    Pong,
    RequestCtx,
    method_id,
)
from rony.core import errors as rony_errors
from rony.server import App

C_Echo: Final = method_id("Test", "Echo")  # Ping -> Pong, same ID
C_Slow: Final = method_id("Test", "Slow")  # Ping(ID=ms) -> Pong after ms milliseconds
C_PushN: Final = method_id("Test", "PushN")  # Ping(ID=n) -> n pushes (RequestID 0), then Pong
C_Big: Final = method_id("Test", "Big")  # Ping(ID=size) -> KeyValue with a value of size bytes
C_Fail: Final = method_id("Test", "Fail")  # Ping -> an Error (E07 ACCESS "nope")
C_Raise: Final = method_id("Test", "Raise")  # Ping -> the handler raises UnavailableError
C_Garbage: Final = method_id("Test", "Garbage")  # Ping -> a Pong envelope whose payload is junk
C_Meta: Final = method_id(
    "Test", "Meta"
)  # Ping -> KeyValue(Key=header "k", Value=auth+conn X-Token)
C_Order: Final = method_id("Test", "Order")  # Ping(ID=ms) -> logs ID, sleeps, logs -ID, Pong
C_WhoAmI: Final = method_id("Test", "WhoAmI")  # Ping -> KeyValue(Key=server id, Value=conn id)
C_RedirectSession: Final = method_id("Test", "RedirectSession")  # Ping(ID=rs) -> redirect
C_RedirectRequest: Final = method_id("Test", "RedirectRequest")  # Ping(ID=rs) -> redirect
C_RedirectWait: Final = method_id("Test", "RedirectWait")  # Ping(ID=rs) -> redirect, wait 1 s

ORDER: list[int] = []


async def echo(ctx: RequestCtx) -> None:
    ctx.push_message(Pong(ID=ctx.message(Ping).ID))


async def slow(ctx: RequestCtx) -> None:
    ms = ctx.message(Ping).ID
    await asyncio.sleep(ms / 1000)
    ctx.push_message(Pong(ID=ms))


async def push_n(ctx: RequestCtx) -> None:
    n = ctx.message(Ping).ID
    for i in range(n):
        ctx.push_custom_message(0, Pong(ID=i))
    ctx.push_message(Pong(ID=n))


async def big(ctx: RequestCtx) -> None:
    ctx.push_message(KeyValue(Key="big", Value="x" * ctx.message(Ping).ID))


async def fail(ctx: RequestCtx) -> None:
    ctx.push_error(rony_errors.AccessError("ACCESS", "nope"))


async def raise_(ctx: RequestCtx) -> None:
    raise rony_errors.UnavailableError("THING", "gone away")


async def garbage(ctx: RequestCtx) -> None:
    ctx.push_envelope(
        MessageEnvelope(Constructor=C_Pong, RequestID=ctx.request_id, Message=b"\xff\xff\xff")
    )


async def meta(ctx: RequestCtx) -> None:
    token = ctx.conn.get("X-Token", "")
    ctx.push_message(
        KeyValue(Key=ctx.header.get("k", ""), Value=ctx.envelope.Auth.decode() + "|" + token)
    )


async def order(ctx: RequestCtx) -> None:
    ms = ctx.message(Ping).ID
    ORDER.append(ms)
    await asyncio.sleep(ms / 1000)
    ORDER.append(-ms)  # finished
    ctx.push_message(Pong(ID=ms))


async def who_am_i(ctx: RequestCtx) -> None:
    ctx.push_message(KeyValue(Key=ctx.server_id, Value=str(ctx.conn_id)))


async def redirect_session(ctx: RequestCtx) -> None:
    ctx.push_redirect_session(ctx.message(Ping).ID)


async def redirect_request(ctx: RequestCtx) -> None:
    ctx.push_redirect_request(ctx.message(Ping).ID)


async def redirect_wait(ctx: RequestCtx) -> None:
    ctx.push_redirect_request(ctx.message(Ping).ID, wait_in_sec=1)


def build_app(name: str = "client-tests") -> App:
    app = App(name)
    for method, fn in (
        ("Echo", echo),
        ("Slow", slow),
        ("PushN", push_n),
        ("Big", big),
        ("Fail", fail),
        ("Raise", raise_),
        ("Garbage", garbage),
        ("Meta", meta),
        ("Order", order),
        ("WhoAmI", who_am_i),
        ("RedirectSession", redirect_session),
        ("RedirectRequest", redirect_request),
        ("RedirectWait", redirect_wait),
    ):
        app.handle(method_id("Test", method), fn, request_class=Ping, service="Test", method=method)
    return app


app = build_app()
