"""Real nodes for the client tests: in the test's loop, in a thread (for the blocking twin),
or as a ``rony serve`` subprocess (to kill and restart on the same port)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:  # so `tests.client._nodeapp` imports (pytest runs in importlib mode)
    sys.path.insert(0, str(ROOT))

from rony.server import App, Edge  # noqa: E402
from rony.server.testing import serve  # noqa: E402
from tests.client._nodeapp import build_app  # noqa: E402


async def await_until(cond: Callable[[], object], within: float = 3.0) -> None:
    """Poll ``cond`` until true; fail after ``within`` seconds (a condition, not a sleep)."""
    async with asyncio.timeout(within):
        while not cond():  # noqa: ASYNC110 - polls state owned by another party
            await asyncio.sleep(0.005)


def wait_until(cond: Callable[[], object], within: float = 3.0) -> None:
    """Blocking ``await_until``."""
    end = time.monotonic() + within
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


@pytest.fixture
async def node() -> AsyncIterator[Edge]:
    """A real node on 127.0.0.1:0 in the test's event loop."""
    async with serve(build_app()) as edge:
        yield edge


class ThreadNode:
    """A real node running in its own event loop on a background thread."""

    def __init__(self, app: App, **overrides: Any) -> None:
        self.app = app
        self.overrides = overrides
        self.edge: Edge | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="rony-test-node", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                async with serve(self.app, **self.overrides) as edge:
                    self.edge = edge
                    self._ready.set()
                    await self._stop.wait()
            except BaseException as exc:
                self._error = exc
                self._ready.set()

        asyncio.run(main())

    def start(self) -> ThreadNode:
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"node did not start: {self._error!r}")
        return self

    @property
    def url(self) -> str:
        assert self.edge is not None
        return self.edge.url

    def call_soon(self, fn: Any, *args: Any) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture
def thread_node() -> Iterator[ThreadNode]:
    tn = ThreadNode(build_app()).start()
    try:
        yield tn
    finally:
        tn.stop()


class ProcNode:
    """``rony serve _nodeapp:app`` as a subprocess: kill it (SIGKILL), stop it (SIGSTOP),
    restart it on the same port."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self._pump: threading.Thread | None = None

    def start(self) -> ProcNode:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rony.server.cli",
                "serve",
                "_nodeapp:app",
                "--gateway",
                f"127.0.0.1:{self.port}",
                "--data-dir",
                str(self.tmp),
                "--log-level",
                "ERROR",
            ],
            cwd=HERE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        out = self.proc.stdout
        assert out is not None

        def pump() -> None:
            with out:  # closed at EOF, when the process is gone
                for line in out:
                    lines.put(line)

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        try:
            line = lines.get(timeout=60)  # a loaded CI machine can be slow to import
        except queue.Empty:
            self.kill()
            raise RuntimeError("rony serve did not start") from None
        assert line.startswith("listening on http://"), line
        self.port = int(line.rsplit(":", 1)[1])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self._pump is not None:
            self._pump.join(10)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def restart(self) -> ProcNode:
        self.kill()
        return self.start()


@pytest.fixture
def proc_node() -> Iterator[ProcNode]:
    with tempfile.TemporaryDirectory(prefix="rony-client-") as tmp:
        node = ProcNode(Path(tmp)).start()
        try:
            yield node
        finally:
            with contextlib.suppress(Exception):
                node.resume()
            node.kill()


@contextlib.contextmanager
def raw_peer(
    scheme: str, answer: Callable[[socket.socket, threading.Event], None]
) -> Iterator[str]:
    """A raw socket peer on 127.0.0.1:0 for one connection: reads the request head, then
    ``answer(conn, stop)`` writes what it likes; ``stop`` is set when the test is done."""
    srv = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(4096)
            answer(conn, stop)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"{scheme}://127.0.0.1:{srv.getsockname()[1]}/"
    finally:
        stop.set()
        srv.close()
        t.join(timeout=5)
