"""The service of the cluster fault tests (``rony serve tests.reliability._faultapp:app``).

The tunnel tests' handlers (Where, Slow, Forward, ForwardSlow) plus durable store writes: a
Put is acknowledged (its reply sent) only after the node's store committed it with fsync, so
every key a client saw acknowledged must still be there after any fault, on the node that
named itself in the reply.
"""

from __future__ import annotations

from typing import Final

from rony.core import KeyValue, Ping, RequestCtx, method_id
from rony.server import App, edge_of
from tests.tunnel import _tunnelapp

C_Put: Final = method_id("Faults", "Put")  # KeyValue(k, v) -> KeyValue(server id, k), stored
C_Get: Final = method_id("Faults", "Get")  # KeyValue(k) -> KeyValue(server id, value or "")
# KeyValue(k, v) -> a Put on a member of replica set 2 through the tunnel (tried on 2 members,
# each for remote_timeout)
C_ForwardPut: Final = method_id("Faults", "ForwardPut")


async def put(ctx: RequestCtx) -> None:
    req = ctx.message(KeyValue)
    await edge_of(ctx).store.set(b"k/" + req.Key.encode(), req.Value.encode())
    ctx.push_message(KeyValue(Key=ctx.server_id, Value=req.Key))


async def get(ctx: RequestCtx) -> None:
    req = ctx.message(KeyValue)
    value = await edge_of(ctx).store.get(b"k/" + req.Key.encode())
    ctx.push_message(KeyValue(Key=ctx.server_id, Value=(value or b"").decode()))


async def forward_put(ctx: RequestCtx) -> None:
    req = ctx.message(KeyValue)
    ctx.push_message(await ctx.try_execute_remote(2, 0.0, 2, C_Put, req, KeyValue))


app = App("faults")
for cid, fn, name in (
    (C_Put, put, "Put"),
    (C_Get, get, "Get"),
    (C_ForwardPut, forward_put, "ForwardPut"),
):
    app.handle(cid, fn, request_class=KeyValue, service="Faults", method=name)
for cid, fn, name, cls in (
    (_tunnelapp.C_Where, _tunnelapp.where, "Where", Ping),
    (_tunnelapp.C_Slow, _tunnelapp.slow, "Slow", Ping),
    (_tunnelapp.C_Forward, _tunnelapp.forward, "Forward", Ping),
    (_tunnelapp.C_ForwardSlow, _tunnelapp.forward_slow, "ForwardSlow", KeyValue),
):
    app.handle(cid, fn, request_class=cls, service="TunnelProc", method=name)
