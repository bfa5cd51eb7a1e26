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
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from tests.reliability._node import ROOT, raise_nofile


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
