"""Load from other processes: ``run_load`` (several ``rony bench`` processes at once) and
``IdleConnections`` (a process holding N idle WebSocket connections open). Both for the tests
here and for ``benchmarks/soak``.

``python -m tests.reliability._load idle HOST PORT N`` opens N WebSockets (each handshake
checked), prints ``open N``, and holds them until its stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from rony.core import C_Pong, Ping, Pong, decode_envelope, envelope, unwrap
from tests.reliability._app import C_Blob
from tests.reliability._node import ROOT, raise_nofile
from tests.reliability._ws import BINARY, CLOSE, RawWS, frame

BLOB = 16 * 1024  # bytes of one reply to a reader that never reads (``never_reads``)


@dataclass
class LoadResult:
    """The sum of the load processes' reports."""

    clients: int
    seconds: float
    requests: int
    ok: int
    errors: dict[str, int]
    p99_ms: float  # the worst process's p99
    p50_ms: float  # the worst process's p50
    rps: float
    reports: list[dict[str, Any]] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """Requests with neither a reply nor an error reported (0 unless the bench lies)."""
        return self.requests - self.ok - sum(self.errors.values())


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def run_load(
    url: str,
    *,
    clients: int,
    seconds: float,
    processes: int = 2,
    inflight: int = 1,
    constructor: str | None = None,
    timeout: float = 10.0,
) -> LoadResult:
    """``clients`` WebSocket clients in all (split over ``processes`` bench processes), each
    with ``inflight`` requests in flight, for ``seconds``."""
    per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    cmd = [sys.executable, "-m", "rony.client.bench", url, "--json", "--quiet"]
    cmd += ["--duration", str(seconds)]
    cmd += ["--inflight", str(inflight), "--timeout", str(timeout)]
    if constructor is not None:
        cmd += ["--constructor", constructor, "--import", "tests.reliability._app"]
    procs = [
        subprocess.Popen(
            [*cmd, "--clients", str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=_env(),
            preexec_fn=raise_nofile,
        )
        for n in per
        if n
    ]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=seconds + 120)
        assert p.returncode in (0, 1), err  # 1: the run had errors (counted below)
        reports.append(json.loads(out))
    errors: dict[str, int] = {}
    for r in reports:
        for code, n in r["errors"].items():
            errors[code] = errors.get(code, 0) + n
    return LoadResult(
        clients=clients,
        seconds=seconds,
        requests=sum(r["requests"] for r in reports),
        ok=sum(r["ok"] for r in reports),
        errors=errors,
        p99_ms=max(r["latency_ms"]["p99"] or 0.0 for r in reports),
        p50_ms=max(r["latency_ms"]["p50"] or 0.0 for r in reports),
        rps=sum(r["throughput_rps"] for r in reports),
        reports=reports,
    )


async def first_reply_ms(port: int, *, rony: bool = True) -> float:
    """Milliseconds from a new client's connect to its first reply (a Ping: from a Rony node
    the Pong is checked; ``rony=False``, for a bare echo server, any binary reply)."""
    start = time.perf_counter()
    ws = await RawWS.connect("127.0.0.1", port)
    try:
        ws.send(frame(BINARY, envelope(Ping(ID=1), 1).SerializeToString()))
        msg = await ws.read_message()
        assert msg.opcode == BINARY
        if rony:
            env = decode_envelope(msg.payload)
            assert (env.Constructor, unwrap(env, Pong).ID) == (C_Pong, 1)
        return (time.perf_counter() - start) * 1000
    finally:
        await ws.aclose()


async def never_reads(port: int, requests: int) -> tuple[int | None, int]:
    """A WebSocket that asks for ``requests`` blobs and reads none of them (its receive
    buffer made small); then reads what is there: the close code, or None, and the replies
    that reached it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    ws = await RawWS.connect_on(reader, writer, "127.0.0.1", port)
    try:
        for i in range(1, requests + 1):
            req = envelope(Ping(ID=BLOB), i, constructor=C_Blob).SerializeToString()
            ws.send(frame(BINARY, req))
            if i % 64 == 0:
                try:
                    async with asyncio.timeout(5):
                        await writer.drain()
                except (ConnectionError, TimeoutError):
                    break  # the node stopped reading us, or cut us off: both fine here
        # Now read: replies until the close frame (or the end of the stream).
        replies = 0
        code = None
        try:
            while True:
                f = await ws.read_frame(within=10)
                if f.opcode == CLOSE:
                    code = f.close_code
                    break
                replies += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        return code, replies
    finally:
        await ws.aclose()


class IdleConnections:
    """A process holding ``n`` idle WebSocket connections to ``host:port``."""

    def __init__(self, host: str, port: int, n: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability._load", "idle", host, str(port), str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=_env(),
            preexec_fn=raise_nofile,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != f"open {n}":
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.close()
            raise RuntimeError(f"idle connections did not open: {line!r} {err}")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


async def _hold_idle(host: str, port: int, n: int) -> None:
    from tests.reliability._ws import RawWS

    sem = asyncio.Semaphore(200)  # handshakes at once

    async def one() -> RawWS:
        async with sem:
            return await RawWS.connect(host, port)

    conns = await asyncio.gather(*(one() for _ in range(n)))
    print(f"open {len(conns)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for ws in conns:
        ws.writer.close()


def main(argv: list[str]) -> int:
    if argv[:1] == ["idle"]:
        raise_nofile()
        start = time.monotonic()
        asyncio.run(_hold_idle(argv[1], int(argv[2]), int(argv[3])))
        print(f"held for {time.monotonic() - start:.1f} s", file=sys.stderr)
        return 0
    print("usage: python -m tests.reliability._load idle HOST PORT N", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
