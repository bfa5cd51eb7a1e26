"""The service of the tunnel's process tests (``rony serve tests.tunnel._tunnelapp:app``)."""

from __future__ import annotations

import asyncio
from typing import Final

from rony.core import KeyValue, Kind, Ping, RequestCtx, method_id
from rony.server import App

C_Where: Final = method_id("TunnelProc", "Where")  # Ping -> KeyValue(server id, kind)
C_Slow: Final = method_id("TunnelProc", "Slow")  # Ping(ID=ms) -> Where after ms
C_Forward: Final = method_id("TunnelProc", "Forward")  # Ping(ID=rs) -> Where of a node of rs
# KeyValue(Key=server id, Value=ms) -> that node's Slow(ms), through the tunnel
C_ForwardSlow: Final = method_id("TunnelProc", "ForwardSlow")


async def where(ctx: RequestCtx) -> None:
    kind = "tunnel" if ctx.kind is Kind.TUNNEL else "gateway"
    ctx.push_message(KeyValue(Key=ctx.server_id, Value=kind))


async def slow(ctx: RequestCtx) -> None:
    await asyncio.sleep(ctx.message(Ping).ID / 1000)
    await where(ctx)


async def forward(ctx: RequestCtx) -> None:
    rs = ctx.message(Ping).ID
    ctx.push_message(await ctx.try_execute_remote(2, 0.0, rs, C_Where, Ping(), KeyValue))


async def forward_slow(ctx: RequestCtx) -> None:
    req = ctx.message(KeyValue)
    reply = await ctx.execute_remote(
        0, C_Slow, Ping(ID=int(req.Value)), KeyValue, server_id=req.Key, timeout=10
    )
    ctx.push_message(reply)


app = App("tunnel-proc")
for cid, fn, name, cls in (
    (C_Where, where, "Where", Ping),
    (C_Slow, slow, "Slow", Ping),
    (C_Forward, forward, "Forward", Ping),
    (C_ForwardSlow, forward_slow, "ForwardSlow", KeyValue),
):
    app.handle(cid, fn, request_class=cls, service="TunnelProc", method=name)
