"""The service ``benchmarks/tunnel.py`` runs on two ``rony serve`` nodes (A and B).

Messages are rony.core's own (Ping, KeyValue), so neither side needs generated code. The load
and timing handlers run on node A, on its own event loop, so what they measure is the Edge's
call path (member pick, TunnelMessage, tunnel, B's dispatch, reply decode) with no client in
the way; their arguments and results travel as text in a KeyValue.
"""

from __future__ import annotations

import asyncio
import cProfile
import time
from collections.abc import Awaitable, Callable
from typing import Final

from rony.core import KeyValue, Ping, RequestCtx, envelope, method_id
from rony.core.errors import InvalidError, UnavailableError
from rony.server import App, edge_of
from rony.server.pb.imsg_pb2 import TunnelMessage

C_Where: Final = method_id("TunnelBench", "Where")  # Ping -> KeyValue(server id, ID as text)
C_Forward: Final = method_id("TunnelBench", "Forward")  # Ping(ID=rs) -> the Where of rs
C_Load: Final = method_id("TunnelBench", "Load")  # KeyValue("RS INFLIGHT SECONDS MODE")
C_Dials: Final = method_id("TunnelBench", "Dials")  # KeyValue("RS N") -> ms of N fresh links
C_Profile: Final = method_id("TunnelBench", "Profile")  # KeyValue("start"|"stop", path)

# Longest a Load or Dials request may ask for, so a typo cannot pin a node for an hour.
MAX_LOAD_SECONDS: Final = 60.0
MAX_DIALS: Final = 1000

app = App("tunnel-bench")
_profiler: list[cProfile.Profile] = []


async def where(ctx: RequestCtx) -> None:
    ctx.push_message(KeyValue(Key=ctx.server_id, Value=str(ctx.message(Ping).ID)))


async def forward(ctx: RequestCtx) -> None:
    """A server redirect: the call is answered by a node of replica set ID, through A."""
    reply = await ctx.execute_remote(ctx.message(Ping).ID, C_Where, Ping(ID=1), KeyValue)
    ctx.push_message(reply)


async def load(ctx: RequestCtx) -> None:
    """INFLIGHT workers call B back to back for SECONDS; replies ``"CALLS ELAPSED"``. MODE
    ``edge``: ``Edge.execute_remote(RS, Where)``; ``tunnel``: the same request, built once, sent
    with ``edge.tunnel.call`` to the first member of RS (what the Edge adds on the caller is
    the difference)."""
    rs, inflight, seconds, mode = ctx.message(KeyValue).Key.split()
    replica_set, workers, span = int(rs), int(inflight), min(float(seconds), MAX_LOAD_SECONDS)
    edge = edge_of(ctx)
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + span
    request = Ping(ID=1)
    counts = [0] * workers
    call: Callable[[], Awaitable[object]]
    if mode == "edge":

        def call() -> Awaitable[object]:
            return edge.execute_remote(replica_set, C_Where, request, KeyValue)

    elif mode == "tunnel" and edge.tunnel is not None and edge.cluster is not None:
        tunnel, addr = edge.tunnel, edge.cluster.members_by_replica_set(replica_set)[0]
        msg = TunnelMessage(
            SenderID=edge.server_id.encode(),
            SenderReplicaSet=edge.replica_set,
            Envelope=envelope(request, 1, constructor=C_Where),
        )

        async def call() -> object:
            reply = await tunnel.call(addr.tunnel_addrs[0], msg, timeout=5.0)
            return KeyValue.FromString(reply.Envelope.Message)

    else:
        raise InvalidError("MODE", f"mode {mode!r}: edge or tunnel (with a tunnel and cluster)")

    async def worker(i: int) -> None:
        n = 0
        while loop.time() < stop_at:
            await call()
            n += 1
        counts[i] = n

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(workers)))
    elapsed = time.perf_counter() - t0
    ctx.push_message(KeyValue(Key="calls", Value=f"{sum(counts)} {elapsed}"))


async def dials(ctx: RequestCtx) -> None:
    """N times: drop every pooled tunnel link, then time one ``execute_remote`` (a dial, the
    mutual TLS handshake and both chain checks, the call). Replies the milliseconds."""
    rs, n = ctx.message(KeyValue).Key.split()
    edge = edge_of(ctx)
    tunnel = edge.tunnel
    if tunnel is None:
        raise UnavailableError("TUNNEL", "this node runs no tunnel")
    times = []
    for _ in range(min(int(n), MAX_DIALS)):
        # The pool has no public "forget this peer": a benchmark may reach in. Shutting a link
        # takes it out of the pool (its on_close), so the next call dials.
        for link in list(tunnel._links.values()):
            link.shut(UnavailableError("TUNNEL", "benchmark: a fresh link"))
        t0 = time.perf_counter()
        await edge.execute_remote(int(rs), C_Where, Ping(ID=1), KeyValue)
        times.append((time.perf_counter() - t0) * 1000)
    ctx.push_message(KeyValue(Key="ms", Value=" ".join(f"{t:.4f}" for t in times)))


async def profile(ctx: RequestCtx) -> None:
    """cProfile of this node's event loop thread between a "start" and a "stop" (which
    writes the stats to the path given)."""
    what = ctx.message(KeyValue)
    if what.Key == "start" and not _profiler:
        _profiler.append(cProfile.Profile())
        _profiler[0].enable()
    elif what.Key == "stop" and _profiler:
        prof = _profiler.pop()
        prof.disable()
        prof.dump_stats(what.Value)
    ctx.push_message(KeyValue(Key=what.Key, Value=ctx.server_id))


for _cid, _fn, _name, _cls in (
    (C_Where, where, "Where", Ping),
    (C_Forward, forward, "Forward", Ping),
    (C_Load, load, "Load", KeyValue),
    (C_Dials, dials, "Dials", KeyValue),
    (C_Profile, profile, "Profile", KeyValue),
):
    app.handle(_cid, _fn, request_class=_cls, service="TunnelBench", method=_name)
