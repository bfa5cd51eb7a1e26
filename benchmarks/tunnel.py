"""The tunnel (node-to-node QUIC RPC) bare and through the Edge, against a raw aioquic echo.

    hatch run bench:tunnel [--quick] [--seconds S] [--rounds R] [--block S] [--inflight N]
                           [--handshakes H] [--latency-calls C] [--profile | --py-spy PATH]

Figures (ours / baseline / goal):

* bare, calls/s, N in flight (64) on one connection: a ``Tunnel`` calling a ``Tunnel`` whose
  handler echoes a small TunnelMessage / a raw aioquic client and echo server using the same
  framing idea (13-byte header, one stream, replies matched by call id) with nothing else: no
  mutual TLS checks, no protobuf parsing, no tasks, no timeouts / >= 0.6x
* forwarded, calls/s, N in flight: ``Edge.execute_remote`` from node A (replica set 1) to node
  B (replica set 2), both ``rony serve`` processes of ``benchmarks/_tunnel_app.py`` joined by
  gossip, tunnel and gossip over mutual TLS; B runs each call through its dispatch (a Where
  handler answering a KeyValue) / the same raw aioquic echo / >= 0.6x (issue #15). Beside it,
  for where the time goes: A calling B with its ``Tunnel.call`` directly (the same request,
  built once), so forwarded / that is what ``execute_remote`` costs on the caller, and that /
  bare is what B's dispatch costs against an echo handler.
* serial calls/s (1 in flight): the same pairs, one call at a time (information: the round
  trip a server redirect pays once).
* redirect latency, µs, serial WebSocket calls from an ``AsyncClient``: Where sent to B
  directly / Forward sent to A, whose handler calls B's Where through the tunnel (a server
  redirect): p50 and p99 of both and the latency added.
* handshake + first call, ms, median and p95: a fresh ``Tunnel`` dials the bare echo server
  (mutual TLS, both chains verified) and makes one call / node A's pooled link to B is shut
  and one ``Edge.execute_remote`` dials anew (member pick, handshake, checks, the call).
  cluster-anchors measured 11.5-13.7 ms median for a raw aioquic mTLS connect + ping.

How it is measured. Every server runs in its own process (the bare and raw echo servers are
this script with ``--serve``, A and B are ``rony serve``); the bare and raw clients run in this
process, on one event loop; the forwarded load runs inside node A (its ``Load`` handler), so
A's loop carries nothing else. In every pair two processes do the work, on the same two
cores. In a round the sides take turns of ``--block`` seconds (0.25) until each had
``--seconds`` (the order rotates between rounds), so this shared machine's changing speed
falls on all alike; a ratio is the median of the rounds' own ratios, with their range in
brackets. Every side first has one unmeasured run. Latency samples alternate between direct
and redirected calls in blocks of 50. ``--profile`` then runs one more forwarded load with
cProfile inside A and B and prints where their loops spend their own time (cProfile slows
Python code about 2x: read its shares, not its rate); ``--py-spy PATH`` samples A and B from
outside instead (``pip install py-spy``), and sorts the samples by layer. ``--profile-dir``
keeps the profile files. ``--quick``: about 25 s in all.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.tls import load_pem_private_key

from rony.client import AsyncClient, ClientSettings
from rony.core import Ping
from rony.core.pb.msg_pb2 import KeyValue, MessageEnvelope
from rony.server.cluster._ca import TLSFiles, load_tls, make_test_pki
from rony.server.pb.imsg_pb2 import TunnelMessage
from rony.server.tunnel import ALPN, Peer, Tunnel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._tunnel_app import C_Dials, C_Forward, C_Load, C_Profile, C_Where  # noqa: E402
from tests.cluster._procs import Node, ProcCluster  # noqa: E402

HEADER = struct.Struct(">IBQ")  # the tunnel's frame header: length, kind, call id
REQUEST, REPLY = 1, 2


def request_message() -> TunnelMessage:
    """A small TunnelMessage (~60 bytes), as design.md's 64-byte figures use."""
    return TunnelMessage(
        SenderID=b"node-1",
        SenderReplicaSet=1,
        Store=[KeyValue(Key="k", Value="v")],
        Envelope=MessageEnvelope(Constructor=1, RequestID=7, Message=b"x" * 24),
    )


# --- the raw aioquic pair -----------------------------------------------------------------------


def raw_config(tls: TLSFiles, *, is_client: bool) -> QuicConfiguration:
    config = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=[ALPN],
        max_datagram_size=1452,
        max_data=64 << 20,
        max_stream_data=32 << 20,
        verify_mode=ssl.CERT_NONE,
    )
    config.certificate = tls.cert
    config.private_key = load_pem_private_key(tls.key_pem)
    return config


class RawEcho(QuicConnectionProtocol):
    """Echoes each frame back as a reply, in the turn that read it."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._buf = b""

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived):
            buf = self._buf + event.data
            pos = 0
            while len(buf) - pos >= 13:
                size, _, call_id = HEADER.unpack_from(buf, pos)
                end = pos + 13 + size
                if end > len(buf):
                    break
                reply = HEADER.pack(size, REPLY, call_id) + buf[pos + 13 : end]
                self._quic.send_stream_data(event.stream_id, reply)
                pos = end
            self._buf = buf[pos:]


class RawClient(QuicConnectionProtocol):
    """Sends frames on one stream and resolves a future per call id from the replies."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._buf = b""
        self.pending: dict[int, asyncio.Future[bytes]] = {}
        self.next_id = 1
        self.stream = -1

    async def call(self, payload: bytes) -> bytes:
        call_id = self.next_id
        self.next_id += 1
        fut: asyncio.Future[bytes] = self._loop.create_future()
        self.pending[call_id] = fut
        frame = HEADER.pack(len(payload), REQUEST, call_id) + payload
        self._quic.send_stream_data(self.stream, frame)
        self._transmit_soon()
        return await fut

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived):
            buf = self._buf + event.data
            pos = 0
            while len(buf) - pos >= 13:
                size, _, call_id = HEADER.unpack_from(buf, pos)
                end = pos + 13 + size
                if end > len(buf):
                    break
                self.pending.pop(call_id).set_result(buf[pos + 13 : end])
                pos = end
            self._buf = buf[pos:]


# --- servers (subprocesses) ---------------------------------------------------------------------


async def echo(msg: TunnelMessage, peer: Peer) -> TunnelMessage:
    return msg


async def serve_main(kind: str, folder: str) -> None:
    tls = load_tls(Path(folder, "ca.pem"), Path(folder, "server.pem"), Path(folder, "server.key"))
    if kind == "ours":
        tunnel = Tunnel(tls, echo)
        _, port = await tunnel.start("127.0.0.1", 0)
    else:
        server = await serve(
            "127.0.0.1", 0, configuration=raw_config(tls, is_client=False), create_protocol=RawEcho
        )
        port = server._transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
    print(f"port {port}", flush=True)
    # Serve until the parent closes our stdin.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def start_server(kind: str, folder: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, folder],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if line[:1] != ["port"]:
        proc.kill()
        raise SystemExit(f"the {kind} server did not start")
    return proc, f"127.0.0.1:{line[1]}"


# --- load ---------------------------------------------------------------------------------------

Call = Callable[[], Awaitable[object]]


async def load(call: Call, inflight: int, seconds: float) -> tuple[int, float]:
    """(calls, seconds) of ``inflight`` workers each calling ``call()`` back to back."""
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + seconds
    counts = [0] * inflight

    async def worker(i: int) -> None:
        n = 0
        while loop.time() < stop_at:
            await call()
            n += 1
        counts[i] = n

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(inflight)))
    return sum(counts), time.perf_counter() - t0


async def edge_load(a: AsyncClient, mode: str, inflight: int, seconds: float) -> tuple[int, float]:
    """(calls, seconds) of node A calling B, run inside A by its Load handler: ``edge`` with
    ``Edge.execute_remote``, ``tunnel`` with A's ``Tunnel.call`` directly."""
    reply = await a.call(
        C_Load, KeyValue(Key=f"2 {inflight} {seconds} {mode}"), KeyValue, timeout=seconds + 30
    )
    calls, elapsed = reply.Value.split()
    return int(calls), float(elapsed)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def line(name: str, ours: list[float], base: list[float], unit: str, goal: str) -> None:
    """One figure: medians of the rounds, the median of the rounds' own ratios, their range."""
    ratios = [o / b for o, b in zip(ours, base, strict=True)]
    print(f"{name:<38} ours {statistics.median(ours):>9.0f} {unit} baseline "
          f"{statistics.median(base):>9.0f} {unit} ratio {statistics.median(ratios):5.2f}x "
          f"[{min(ratios):.2f}-{max(ratios):.2f}]  ({goal})", flush=True)  # fmt: skip


Side = Callable[[int, float], Awaitable[tuple[int, float]]]  # (in flight, s) -> (calls, s)


async def rates(args: argparse.Namespace, sides: dict[str, Side], inflight: int
                ) -> dict[str, list[float]]:  # fmt: skip
    """calls/s of every side in each of ``--rounds`` rounds. In a round the sides take turns
    of ``--block`` seconds until each had ``--seconds`` (the order rotating between rounds),
    so the shared machine's changing speed falls on all of them alike."""
    names = list(sides)
    for name in names:  # warm-up, not measured
        await sides[name](inflight, args.warmup)
    out: dict[str, list[float]] = {name: [] for name in names}
    turns = max(1, round(args.seconds / args.block))
    for rnd in range(args.rounds):
        k = rnd % len(names)
        order = names[k:] + names[:k]
        calls = dict.fromkeys(names, 0)
        spent = dict.fromkeys(names, 0.0)
        for _ in range(turns):
            for name in order:
                n, s = await sides[name](inflight, args.seconds / turns)
                calls[name] += n
                spent[name] += s
        for name in names:
            out[name].append(calls[name] / spent[name])
    return out


async def latencies(args: argparse.Namespace, a: AsyncClient, b: AsyncClient) -> None:
    """Serial WebSocket calls: Where to B directly, Forward to A (which calls B's Where)."""

    async def direct() -> None:
        await b.call(C_Where, Ping(ID=1), KeyValue)

    async def redirected() -> None:
        await a.call(C_Forward, Ping(ID=2), KeyValue)

    samples: dict[str, list[float]] = {"direct": [], "redirect": []}
    for fn in (direct, redirected):  # warm-up
        for _ in range(50):
            await fn()
    block = 50
    per_round = max(block, args.latency_calls // args.rounds)
    added_p50: list[float] = []
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + args.latency_limit
    for _ in range(args.rounds):
        mine: dict[str, list[float]] = {"direct": [], "redirect": []}
        while len(mine["direct"]) < per_round and loop.time() < stop_at:
            for name, fn in (("direct", direct), ("redirect", redirected)):
                for _ in range(block):
                    t0 = time.perf_counter()
                    await fn()
                    mine[name].append((time.perf_counter() - t0) * 1e6)
        if not mine["direct"]:
            break
        added_p50.append(statistics.median(mine["redirect"]) - statistics.median(mine["direct"]))
        for name in samples:
            samples[name] += mine[name]
    d, r = samples["direct"], samples["redirect"]
    d50, d99, r50, r99 = pct(d, 0.5), pct(d, 0.99), pct(r, 0.5), pct(r, 0.99)
    print(f"{'redirect latency, serial WS, µs':<38} direct (B) p50 {d50:7.0f} p99 {d99:7.0f}  "
          f"via A p50 {r50:7.0f} p99 {r99:7.0f}  (n={len(d)} each)", flush=True)  # fmt: skip
    print(f"{'  added by the server redirect, µs':<38} p50 +{r50 - d50:.0f} "
          f"[rounds {min(added_p50):.0f}-{max(added_p50):.0f}]  p99 +{r99 - d99:.0f}  "
          f"ratio p50 {r50 / d50:.2f}x", flush=True)  # fmt: skip


# --- handshake + first call ---------------------------------------------------------------------


async def handshakes(args: argparse.Namespace, pki: dict[str, TLSFiles], bare_addr: str,
                     a: AsyncClient) -> None:  # fmt: skip
    request = request_message()
    bare: list[float] = []
    for _ in range(args.handshakes):
        fresh = Tunnel(pki["client"], echo)
        t0 = time.perf_counter()
        await fresh.call(bare_addr, request, timeout=10)
        bare.append((time.perf_counter() - t0) * 1000)
        await fresh.stop()
    reply = await a.call(
        C_Dials, KeyValue(Key=f"2 {args.handshakes}"), KeyValue, timeout=args.handshakes + 30
    )
    edge = [float(t) for t in reply.Value.split()]
    for name, times in (("bare Tunnel", bare), ("Edge.execute_remote", edge)):
        print(f"{'handshake + first call, ' + name + ', ms':<50} median "
              f"{statistics.median(times):6.2f} p95 {pct(times, 0.95):6.2f}  (n={len(times)})",
              flush=True)  # fmt: skip
    ratio = statistics.median(edge) / statistics.median(bare)
    print(f"{'  through the Edge / bare, median':<50} {ratio:.2f}x  "
          "(anchors: raw aioquic mTLS connect + ping 11.5-13.7 ms)", flush=True)  # fmt: skip


# --- profile ------------------------------------------------------------------------------------

# cProfile's own time by the file a function lives in (first match wins).
AREAS = (
    ("aioquic", ("aioquic/",)),
    ("tunnel (_quic, _tunnel, _frames)", ("server/tunnel/",)),
    ("Edge calls (_remote, _edge)", ("server/_remote.py", "server/_edge.py")),
    ("dispatch", ("server/_dispatch", "server/_app")),
    ("rony.core", ("core/_", "rony/core/")),
    ("gateway / client", ("server/gateway/", "aiohttp/", "client/_")),
    ("asyncio, selectors", ("asyncio/", "selectors.py")),
    ("benchmark app", ("_tunnel_app.py",)),
)


def breakdown(path: str, title: str, top: int) -> None:
    stats = pstats.Stats(path)
    raw = stats.stats  # type: ignore[attr-defined]
    table = {k: v for k, v in raw.items() if "epoll" not in k[2]}  # waiting in epoll is idle
    total = sum(v[2] for v in table.values()) or 1.0
    areas: dict[str, float] = {}
    for (filename, _, _), (_, _, tottime, _, _) in table.items():
        area = "C builtins (protobuf, sockets, ...)" if filename == "~" else "other Python"
        for label, needles in AREAS:
            if any(n in filename for n in needles):
                area = label
                break
        areas[area] = areas.get(area, 0.0) + tottime
    print(f"  {title}: {total:.2f} s of own time on its event loop thread")
    for area, t in sorted(areas.items(), key=lambda kv: -kv[1]):
        print(f"    {t / total * 100:5.1f} %  {area}")
    rows = sorted(table.items(), key=lambda kv: -kv[1][2])[:top]
    print(f"    top {top} functions by own time:")
    for (filename, lineno, name), (_, ncalls, tottime, _, _) in rows:
        short = "/".join(Path(filename).parts[-2:])
        where = name if filename == "~" else f"{short}:{lineno} {name}"
        print(f"      {tottime / total * 100:5.1f} %  {where}  ({ncalls} calls)")


# The layer a py-spy sample belongs to: the innermost frame on its stack naming one of these
# (a sample inside aioquic's send under Tunnel.call counts as "QUIC send", one in Edge code
# above the tunnel as the Edge's).
LAYERS = (
    ("datagram_received", "QUIC receive (aioquic: decrypt, parse, acks)"),
    ("._flush ", "QUIC send (aioquic: build, encrypt, sendto)"),
    (".transmit ", "QUIC send (aioquic: build, encrypt, sendto)"),
    ("_on_stream_data", "tunnel: frame decoding, reply matching"),
    ("Tunnel.call ", "tunnel: Tunnel.call / ClientLink.call"),
    ("ClientLink.call ", "tunnel: Tunnel.call / ClientLink.call"),
    ("ServerLink._serve", "tunnel: ServerLink._serve (decode, encode)"),
    ("where (", "the app's handler (Where)"),
    ("Dispatcher.", "dispatch (_dispatch, RequestCtx)"),
    ("serve_tunnel", "Edge: serve_tunnel"),
    ("Edge.execute_remote", "Edge: execute_remote (_edge, _remote)"),
    ("Edge.try_execute_remote", "Edge: execute_remote (_edge, _remote)"),
    ("call_remote", "Edge: execute_remote (_edge, _remote)"),
    ("remote_call", "Edge: execute_remote (_edge, _remote)"),
    ("reply_of", "Edge: execute_remote (_edge, _remote)"),
    ("request_envelope", "Edge: execute_remote (_edge, _remote)"),
    ("_targets", "Edge: execute_remote (_edge, _remote)"),
    ("Cluster", "gossip"),
    ("load.<locals>", "the benchmark's load loop"),
)


def spy_breakdown(path: str, title: str, top: int) -> None:
    """py-spy's raw (folded) stacks: busy samples by layer, and the lines most often on top."""
    own: dict[str, int] = {}
    layers: dict[str, int] = {}
    total = 0
    for row in Path(path).read_text().splitlines():
        stack, _, count = row.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + n
        layer = "event loop, other"
        for frame in reversed(frames):
            found = next((name for mark, name in LAYERS if mark in frame), None)
            if found is not None:
                layer = found
                break
        layers[layer] = layers.get(layer, 0) + n
    total = total or 1
    print(f"  {title}: {total} busy samples")
    for layer, n in sorted(layers.items(), key=lambda kv: -kv[1]):
        print(f"    {n / total * 100:5.1f} %  {layer}")
    print(f"    top {top} lines:")
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"      {n / total * 100:5.1f} %  {frame}")


def spy(binary: str, node: Node, seconds: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling ``node`` for ``seconds`` from outside (no pause: --nonblocking)."""
    return subprocess.Popen(
        [binary, "record", "--pid", str(node.proc.pid), "--duration", str(seconds), "--rate",
         "500", "--format", "raw", "--nonblocking", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def profile(args: argparse.Namespace, a: AsyncClient, b: AsyncClient, node_a: Node,
                  node_b: Node, folder: str) -> None:  # fmt: skip
    """One more forwarded load with A and B profiled: py-spy (sampling, from outside) when
    ``--py-spy`` names its binary, else cProfile inside both."""
    if args.py_spy:
        span = max(1, round(args.seconds))
        spies = [spy(args.py_spy, node, span, Path(folder, f"{node.name}.folded"))
                 for node in (node_a, node_b)]  # fmt: skip
        # The load outlasts py-spy's window by a second, so the window (it attaches within
        # ~0.1 s) falls inside the load.
        calls, took = await edge_load(a, "edge", args.inflight, span + 1.0)
        for proc in spies:
            await asyncio.get_running_loop().run_in_executor(None, proc.wait, 30)
        rate = calls / took
        print(f"profile: forwarded {args.inflight} in flight under py-spy, {rate:.0f} calls/s")
        spy_breakdown(str(Path(folder, "a.folded")), "node A (caller)", args.top)
        spy_breakdown(str(Path(folder, "b.folded")), "node B (callee)", args.top)
        return
    paths = {"A": str(Path(folder, "a.prof")), "B": str(Path(folder, "b.prof"))}
    for client in (a, b):
        await client.call(C_Profile, KeyValue(Key="start"), KeyValue)
    calls, took = await edge_load(a, "edge", args.inflight, args.seconds)
    for name, client in (("A", a), ("B", b)):
        await client.call(C_Profile, KeyValue(Key="stop", Value=paths[name]), KeyValue)
    rate = calls / took
    print(f"profile: forwarded {args.inflight} in flight under cProfile, {rate:.0f} calls/s")
    breakdown(paths["A"], "node A (caller: execute_remote, client link)", args.top)
    breakdown(paths["B"], "node B (callee: server link, dispatch, Where)", args.top)


# --- main ---------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, pki: dict[str, TLSFiles], bare_addr: str,
                raw_addr: str, node_a: Node, node_b: Node, folder: str) -> None:  # fmt: skip
    client = Tunnel(pki["client"], echo)
    request = request_message()

    async def bare_call() -> None:
        await client.call(bare_addr, request, timeout=10)

    payload = request.SerializeToString()
    host, _, port = raw_addr.rpartition(":")
    settings = ClientSettings(request_timeout=60.0)
    async with (
        connect(
            host, int(port), configuration=raw_config(pki["client"], is_client=True),
            create_protocol=RawClient,
        ) as raw,
        AsyncClient(node_a.url, settings=settings) as a,
        AsyncClient(node_b.url, settings=settings) as b,
    ):  # fmt: skip
        assert isinstance(raw, RawClient)
        raw.stream = raw._quic.get_next_available_stream_id()

        async def raw_call() -> None:
            await raw.call(payload)

        await until_forwarding(a)

        async def bare_side(n: int, s: float) -> tuple[int, float]:
            return await load(bare_call, n, s)

        async def raw_side(n: int, s: float) -> tuple[int, float]:
            return await load(raw_call, n, s)

        async def edge_side(n: int, s: float) -> tuple[int, float]:
            return await edge_load(a, "edge", n, s)

        async def edge_tunnel_side(n: int, s: float) -> tuple[int, float]:
            return await edge_load(a, "tunnel", n, s)

        sides: dict[str, Side] = {
            "bare": bare_side,
            "raw": raw_side,
            "edge": edge_side,
            "a-b": edge_tunnel_side,
        }
        many = await rates(args, sides, args.inflight)
        n = args.inflight
        line(f"bare, calls/s, {n} in flight", many["bare"], many["raw"], "", "goal >= 0.6x")
        line(f"forwarded, calls/s, {n} in flight", many["edge"], many["raw"], "",
             "goal >= 0.6x, #15")  # fmt: skip
        line("  A's Tunnel.call to B, B dispatching", many["a-b"], many["raw"], "", "info")
        line("  forwarded / A's Tunnel.call", many["edge"], many["a-b"], "",
             "info: execute_remote's cost on A")  # fmt: skip
        line("  A's Tunnel.call / bare", many["a-b"], many["bare"], "",
             "info: B's dispatch vs an echo")  # fmt: skip
        one = await rates(args, sides, 1)
        line("serial, calls/s, bare", one["bare"], one["raw"], "", "info")
        line("serial, calls/s, forwarded", one["edge"], one["raw"], "", "info")
        line("  forwarded / A's Tunnel.call", one["edge"], one["a-b"], "", "info")
        await latencies(args, a, b)
        await client.stop()
        await handshakes(args, pki, bare_addr, a)
        if args.profile or args.py_spy:
            await profile(args, a, b, node_a, node_b, args.profile_dir or folder)


async def until_forwarding(a: AsyncClient, limit: float = 60.0) -> None:
    """Wait until A knows B and its tunnel address (gossip converged): a Forward answers."""
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + limit
    while True:
        try:
            reply = await a.call(C_Forward, Ping(ID=2), KeyValue, timeout=5)
        except Exception:
            if loop.time() > stop_at:
                raise
            await asyncio.sleep(0.1)
            continue
        if reply.Key != "b":
            raise SystemExit(f"a Forward to replica set 2 was answered by {reply.Key!r}")
        return


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        asyncio.run(serve_main(sys.argv[2], sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a short run (about 30 s)")
    ap.add_argument("--seconds", type=float, help="per side per round (2; quick 0.5)")
    ap.add_argument("--rounds", type=int, help="rounds (3; quick 2)")
    ap.add_argument("--warmup", type=float, help="unmeasured seconds per side (1; quick 0.3)")
    ap.add_argument("--block", type=float, default=0.25, help="seconds per turn of a side")
    ap.add_argument("--inflight", type=int, default=64)
    ap.add_argument("--handshakes", type=int, help="fresh links per kind (50; quick 15)")
    ap.add_argument("--latency-calls", type=int, help="serial calls per side (3000; quick 400)")
    ap.add_argument("--latency-limit", type=float, default=60.0,
                    help="most seconds the latency case may take")  # fmt: skip
    ap.add_argument("--profile", action="store_true", help="then profile A and B (cProfile)")
    ap.add_argument("--py-spy", metavar="PATH", help="profile with this py-spy binary instead")
    ap.add_argument("--profile-dir", metavar="DIR",
                    help="keep the profiles here (a.prof/b.prof or a.folded/b.folded)")  # fmt: skip
    ap.add_argument("--top", type=int, default=12, help="functions listed per profile")
    args = ap.parse_args()
    for name, normal, quick in (
        ("seconds", 2.0, 0.5),
        ("rounds", 3, 2),
        ("warmup", 1.0, 0.3),
        ("handshakes", 50, 15),
        ("latency_calls", 3000, 400),
    ):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else normal)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {args.inflight} calls in "
          f"flight, {args.seconds}s per side per round, median of {args.rounds} rounds",
          flush=True)  # fmt: skip
    if args.profile_dir:
        Path(args.profile_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rony-bench-tunnel-") as tmp:
        pki = make_test_pki(tmp, ["server", "client"])
        edges = ProcCluster(Path(tmp, "edges"), ["a", "b"])
        procs: list[subprocess.Popen[str]] = []
        try:
            bare_proc, bare_addr = start_server("ours", tmp)
            procs.append(bare_proc)
            raw_proc, raw_addr = start_server("raw", tmp)
            procs.append(raw_proc)
            app = "benchmarks._tunnel_app:app"
            node_a = edges.start("a", app=app, tunnel=True, replica_set=1).wait_ready()
            node_b = edges.start("b", seed=node_a, app=app, tunnel=True, replica_set=2)
            node_b.wait_ready()
            asyncio.run(bench(args, pki, bare_addr, raw_addr, node_a, node_b, tmp))
        finally:
            edges.close()
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.close()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    main()
