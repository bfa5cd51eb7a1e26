"""The tunnel (node-to-node QUIC RPC) against a raw aioquic echo, in the same run.

    hatch run bench:tunnel [--seconds S] [--rounds R] [--inflight N] [--handshakes H]

Figures (ours / baseline / goal):

* calls/s, N in flight (64) on one connection: a ``Tunnel`` calling a ``Tunnel`` whose handler
  echoes a small TunnelMessage / a raw aioquic client and echo server using the same framing
  idea (13-byte header, one stream, replies matched by call id) with nothing else: no mutual
  TLS checks, no protobuf parsing, no tasks, no timeouts / >= 0.6x
* handshake + first call, ms: a fresh ``Tunnel`` dials (mutual TLS, both chains verified),
  sends one call and gets its reply; median and p95 of H dials (no baseline; cluster-anchors
  measured 11.5-13.7 ms median for a raw aioquic mTLS connect + ping)

How it is measured. Each server runs in its own process (this script with ``--serve``); the
clients run in this process, ours and the raw one on the same event loop, so both sides get
the same two cores. Each round loads ours for ``--seconds`` and then the raw pair for as long
(the side that goes first alternates); a ratio is the median of the rounds' own ratios, with
their range in brackets. Every server first serves one unmeasured second of load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.tls import load_pem_private_key

from rony.core.pb.msg_pb2 import KeyValue, MessageEnvelope
from rony.server.cluster._ca import TLSFiles, load_tls, make_test_pki
from rony.server.pb.imsg_pb2 import TunnelMessage
from rony.server.tunnel import ALPN, Peer, Tunnel

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


async def load(call: object, inflight: int, seconds: float) -> float:
    """calls/s of ``inflight`` workers each calling ``call()`` back to back for ``seconds``."""
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + seconds
    counts = [0] * inflight

    async def worker(i: int) -> None:
        n = 0
        while loop.time() < stop_at:
            await call()  # type: ignore[operator]
            n += 1
        counts[i] = n

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(inflight)))
    return sum(counts) / (time.perf_counter() - t0)


async def bench(args: argparse.Namespace, pki: dict[str, TLSFiles], ours_addr: str,
                raw_addr: str) -> None:  # fmt: skip
    client = Tunnel(pki["client"], echo)
    request = request_message()

    async def ours_call() -> None:
        await client.call(ours_addr, request, timeout=10)

    payload = request.SerializeToString()
    host, _, port = raw_addr.rpartition(":")
    async with connect(
        host, int(port), configuration=raw_config(pki["client"], is_client=True),
        create_protocol=RawClient,
    ) as raw:  # fmt: skip
        assert isinstance(raw, RawClient)
        raw.stream = raw._quic.get_next_available_stream_id()

        async def raw_call() -> None:
            await raw.call(payload)

        await load(ours_call, args.inflight, 1.0)  # warm-up, not measured
        await load(raw_call, args.inflight, 1.0)
        ours_rates: list[float] = []
        raw_rates: list[float] = []
        for rnd in range(args.rounds):
            order = [("ours", ours_call), ("raw", raw_call)]
            if rnd % 2:
                order.reverse()
            for name, fn in order:
                rate = await load(fn, args.inflight, args.seconds)
                (ours_rates if name == "ours" else raw_rates).append(rate)
        ratios = [o / r for o, r in zip(ours_rates, raw_rates, strict=True)]
        ours, base = statistics.median(ours_rates), statistics.median(raw_rates)
        print(f"{'calls/s, ' + str(args.inflight) + ' in flight':<36} ours {ours:>9.0f} "
              f"baseline {base:>9.0f} ratio {statistics.median(ratios):5.2f}x "
              f"[{min(ratios):.2f}-{max(ratios):.2f}]  (goal >= 0.6x)", flush=True)  # fmt: skip
    await client.stop()

    times: list[float] = []
    for _ in range(args.handshakes):
        fresh = Tunnel(pki["client"], echo)
        t0 = time.perf_counter()
        await fresh.call(ours_addr, request, timeout=10)
        times.append((time.perf_counter() - t0) * 1000)
        await fresh.stop()
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    print(f"{'handshake + first call, ms':<36} median {statistics.median(times):6.2f} "
          f"p95 {p95:6.2f}  (n={len(times)}; anchors: raw mTLS connect 11.5-13.7)",
          flush=True)  # fmt: skip


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        asyncio.run(serve_main(sys.argv[2], sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="per side per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--inflight", type=int, default=64)
    ap.add_argument("--handshakes", type=int, default=50)
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {args.inflight} calls in "
          f"flight, {args.seconds}s per side per round, median of {args.rounds} rounds",
          flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_test_pki(tmp, ["server", "client"])
        ours_proc, ours_addr = start_server("ours", tmp)
        raw_proc, raw_addr = start_server("raw", tmp)
        try:
            asyncio.run(bench(args, pki, ours_addr, raw_addr))
        finally:
            for proc in (ours_proc, raw_proc):
                assert proc.stdin is not None
                proc.stdin.close()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    main()
