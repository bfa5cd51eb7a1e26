"""Real ``rony serve`` processes in a cluster, for acceptance tests and benchmarks.

Each node is ``python -m rony.server.cli serve tests.client._nodeapp:app`` with its gateway and
gossip on 127.0.0.1 port 0, its own data folder, and a certificate of the test's CA. The ports
it bound are read from its output. Views are read the way a client reads them: GetAllNodes over
HTTP.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from rony.client import Client, ClientSettings
from rony.core import C_GetAllNodes, Edges, GetNodes
from rony.server.cluster._ca import make_test_pki

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.client._nodeapp:app"
_GOSSIP = re.compile(r"gossip: node \S+ listening on \S+ \(advertised (\S+)\)")
_URL = re.compile(r"listening on (http://\S+)")
# One try, short: a view is polled, and a node that does not answer counts as no view.
_QUICK = ClientSettings(dial_timeout=1.0, request_timeout=1.0, max_retries=0)


def wait_for(cond: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> float:
    """Poll ``cond`` until it holds; the seconds it took. AssertionError naming ``what``."""
    start = time.monotonic()
    while True:
        if cond():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(every)


class Node:
    """One ``rony serve`` process."""

    def __init__(
        self,
        name: str,
        workdir: Path,
        *,
        seeds: Iterable[str] = (),
        certs: Path | None,
        cert_name: str | None = None,
        replica_set: int = 0,
        extra: Iterable[str] = (),
        app: str = APP,
        tunnel: bool = False,
        wrap: Sequence[str] = (),
        launcher: str = "rony.server.cli",
    ) -> None:
        # ``wrap``: a command the node runs under (``ip netns exec NS``); ``launcher``: the
        # module run with ``-m`` (one that sets something up, then runs rony.server.cli)
        self.name = name
        args = [
            *wrap,
            sys.executable,
            "-m",
            launcher,
            "serve",
            app,
            "--gateway",
            "127.0.0.1:0",
            "--gossip",
            "127.0.0.1:0",
            "--data-dir",
            str(workdir / f"data-{name}"),
            "--server-id",
            name,
            "--replica-set",
            str(replica_set),
        ]
        for seed in seeds:
            args += ["--join", seed]
        if tunnel:
            args += ["--tunnel", "127.0.0.1:0"]
        if certs is not None:
            cn = cert_name or name
            args += ["--tls-ca", str(certs / "ca.pem")]
            args += ["--tls-cert", str(certs / f"{cn}.pem"), "--tls-key", str(certs / f"{cn}.key")]
        args += list(extra)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""
        self.gossip = ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self, timeout: float = 30.0) -> Node:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.output()}")
            for line in list(self.lines):
                if m := _GOSSIP.search(line):
                    self.gossip = m.group(1)
                if m := _URL.search(line):
                    self.url = m.group(1)
            return bool(self.url and self.gossip)

        wait_for(ready, timeout, f"{self.name} to start")
        return self

    def view(self) -> set[str] | None:
        """The server ids this node's GetAllNodes lists; None when it does not answer."""
        try:
            with Client(self.url, transport="http", settings=_QUICK) as c:
                edges = c.call(C_GetAllNodes, GetNodes(), Edges)
        except Exception:
            return None
        return {e.ServerID for e in edges.Nodes}

    def edges(self) -> Edges:
        with Client(self.url, transport="http", settings=_QUICK) as c:
            return c.call(C_GetAllNodes, GetNodes(), Edges)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


class ProcCluster:
    """Nodes of one test; ``close()`` stops every one."""

    def __init__(self, workdir: Path, names: Iterable[str] = ()) -> None:
        self.workdir = workdir
        self.certs = workdir / "certs"
        self.names = list(names)
        if self.names:
            make_test_pki(self.certs, self.names)
        self.nodes: dict[str, Node] = {}

    def start(self, name: str, *, seed: Node | None = None, **kw: object) -> Node:
        seeds = [seed.gossip] if seed is not None else []
        kw.setdefault("certs", self.certs)
        node = Node(name, self.workdir, seeds=seeds, **kw)  # type: ignore[arg-type]
        self.nodes[name] = node
        return node

    def start_joined(self, names: Iterable[str], timeout: float = 60.0, **kw: object) -> Node:
        """Start ``names`` (the first is the seed, the others join through it), wait until
        every one of them sees all of them; the seed."""
        first, *rest = names
        seed = self.start(first, **kw).wait_ready()
        for name in rest:
            self.start(name, seed=seed, **kw)
        for node in self.nodes.values():
            node.wait_ready()
        everyone = {first, *rest}
        wait_for(lambda: self.all_see(everyone), timeout, f"{sorted(everyone)} to see each other")
        return seed

    def live(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.proc.poll() is None]

    def all_see(self, names: Iterable[str], among: Iterable[Node] | None = None) -> bool:
        want = set(names)
        return all(n.view() == want for n in (among if among is not None else self.live()))

    def close(self) -> None:
        for node in self.nodes.values():
            node.stop()
