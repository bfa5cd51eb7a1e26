"""The service the reliability suite loads, starves and kills (``rony serve
tests.reliability._app:app``). Messages are rony.core's own, so no generated code is needed.

* ``Rel.Echo``  Ping -> Pong with the same ID (what the load clients call; the built-in Ping
  answers the same way, without a handler chain);
* ``Rel.Blob``  Ping(ID=n) -> KeyValue whose Value is n bytes (a reader that never reads fills
  its socket fast);
* ``Rel.Put``   KeyValue -> the same KeyValue once it is written to the store *durably* (the
  reply is the acknowledgement the durability test counts on).
"""

from __future__ import annotations

from typing import Final

from rony.core import C_KeyValue, KeyValue, Ping, Pong, RequestCtx, method_id
from rony.core.errors import InvalidError
from rony.server import App, edge_of

C_Echo: Final = method_id("Rel", "Echo")
C_Blob: Final = method_id("Rel", "Blob")
C_Put: Final = method_id("Rel", "Put")
MAX_BLOB: Final = 1 << 20


async def echo(ctx: RequestCtx) -> None:
    ctx.push_message(Pong(ID=ctx.message(Ping).ID))


async def blob(ctx: RequestCtx) -> None:
    n = ctx.message(Ping).ID
    if not 0 <= n <= MAX_BLOB:
        raise InvalidError("SIZE", f"0..{MAX_BLOB} bytes")
    ctx.push_message(KeyValue(Key="blob", Value="x" * n))


async def put(ctx: RequestCtx) -> None:
    kv = ctx.message(KeyValue)
    if not kv.Key:
        raise InvalidError("KEY", "a key is needed")
    await edge_of(ctx).store.set(kv.Key.encode(), kv.Value.encode())  # durable: after fsync
    ctx.push_message(kv, constructor=C_KeyValue)


def build_app() -> App:
    app = App("reliability")
    app.handle(C_Echo, echo, request_class=Ping, service="Rel", method="Echo")
    app.handle(C_Blob, blob, request_class=Ping, service="Rel", method="Blob")
    app.handle(C_Put, put, request_class=KeyValue, service="Rel", method="Put")
    return app


app = build_app()
