"""One real ``rony serve tests.reliability._app:app`` process, and what the suite reads off it.

The node binds 127.0.0.1:0 and prints the address it bound; its settings come from ``RONY_*``
variables (``settings={"max_connections": 11000}``). ``rss()`` reads the process's resident
memory from ``/proc`` (Linux). ``raise_nofile()`` lifts a process's soft limit of open files to
its hard limit, for runs with thousands of sockets (the node raises its own with ``nofile``).
Used by the tests here and by ``benchmarks/soak``.
"""

from __future__ import annotations

import os
import queue
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.reliability._app:app"


def raise_nofile(want: int | None = None) -> int:
    """Soft RLIMIT_NOFILE of this process up to ``want`` (default: the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if want is None else min(want, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return max(soft, target)


def rss_of(pid: int) -> int:
    """Resident set size of process ``pid`` in bytes (``VmRSS`` of /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_until(cond: Callable[[], object], within: float, what: str, every: float = 0.02) -> float:
    """Poll ``cond`` until it is true; the seconds it took. AssertionError naming ``what``."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > within:
            raise AssertionError(f"not within {within} s: {what}")
        time.sleep(every)
    return time.monotonic() - start


class ServeProcess:
    """``rony serve`` in a subprocess: ``start()``, ``kill()`` (SIGKILL), ``stop()`` (SIGTERM)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        settings: Mapping[str, Any] | None = None,
        nofile: int | None = None,
        app: str = APP,
    ) -> None:
        self.data_dir = data_dir
        self.settings = dict(settings or {})
        self.nofile = nofile
        self.app = app
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.output: list[str] = []
        self._pump: threading.Thread | None = None

    def start(self, timeout: float = 60.0) -> ServeProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RONY_")}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        env.update({f"RONY_{k.upper()}": str(v) for k, v in self.settings.items()})
        nofile = self.nofile
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rony.server.cli",
                "serve",
                self.app,
                "--gateway",
                f"127.0.0.1:{self.port}",
                "--data-dir",
                str(self.data_dir),
                "--log-level",
                "WARNING",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            preexec_fn=(lambda: raise_nofile(nofile)) if nofile else None,
        )
        lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        out = self.proc.stdout
        assert out is not None

        def pump() -> None:
            with out:
                for line in out:
                    self.output.append(line)
                    lines.put(line)

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise RuntimeError("rony serve did not start:\n" + "".join(self.output)) from None
            if "listening on http://" in line:
                self.port = int(line.strip().rsplit(":", 1)[1])
                return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def rss(self) -> int:
        return rss_of(self.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL (kill -9), then reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        if self._pump is not None:
            self._pump.join(10)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (a graceful stop); the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        if self._pump is not None:
            self._pump.join(10)
        return code

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
