"""Network namespaces a test makes for itself: one per node, joined by a bridge it can split.

Layout (all names carry the test's own random prefix, so tests under ``pytest -n auto`` never
meet): a *switch* namespace holds two bridges, ``br0`` and ``br1``; each node's namespace has
``lo`` and ``e0`` (10.77.0.N/24), the other end of its veth pair a port of ``br0`` in the
switch. Nothing is added to the host's own namespace: traffic goes only between the test's
namespaces (and to each namespace's own 127.0.0.1).

* ``partition(names)`` moves those nodes' ports to ``br1``: two LANs that cannot reach each
  other (each node keeps its address; packets to the other half are simply never delivered,
  as with a failed switch between two racks). ``heal()`` moves them back.
* ``set_loss(name, percent)`` drops that share of the packets the node sends: ``tc netem``
  where the kernel has it, else iptables' ``statistic`` match (this project's sandbox kernel is
  built without sch_netem; both drop packets at random on the node's egress).
* ``run(name, fn)`` calls ``fn`` in a thread that entered the node's namespace (setns), so a
  test reads a node's gateway at 127.0.0.1 inside it without a subprocess.

``NetnsLab.available()`` says why namespaces cannot be made here (not root, no iproute2, or
``ip netns add`` refused), for a skip with that reason.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

SUBNET = "10.77.0"
_CLONE_NEWNET = 0x40000000
_NETNS_DIR = "/run/netns"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


def _enter(ns: str) -> None:
    """Move the calling thread into network namespace ``ns`` (Linux: per thread)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(os.path.join(_NETNS_DIR, ns), os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
    finally:
        os.close(fd)


class NetnsLab:
    """The namespaces of one test; ``close()`` deletes every one (idempotent)."""

    def __init__(self) -> None:
        self.prefix = f"ronyt-{secrets.token_hex(4)}"
        self.switch = f"{self.prefix}-sw"
        self._nodes: dict[str, tuple[str, str]] = {}  # node -> (namespace, switch port)
        self._runners: dict[str, ThreadPoolExecutor] = {}
        self._made: list[str] = []
        self._add_ns(self.switch)
        for bridge in ("br0", "br1"):
            _ip("-n", self.switch, "link", "add", bridge, "type", "bridge")
            _ip("-n", self.switch, "link", "set", bridge, "up")

    @staticmethod
    def available() -> str | None:
        """None when namespaces can be made here; else why not."""
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            return "network namespaces need root (ip netns add)"
        if shutil.which("ip") is None:
            return "no iproute2 (`ip`): apt-get install iproute2"
        probe = f"ronyt-probe-{secrets.token_hex(4)}"
        made = _ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"`ip netns add` fails here: {made.stderr.strip()}"
        _ip("netns", "del", probe, check=False)
        return None

    @staticmethod
    def loss_available() -> str | None:
        """None when packet loss can be injected (netem, or iptables); else why not."""
        if shutil.which("iptables") is not None:
            return None
        probe = f"ronyt-probe-{secrets.token_hex(4)}"
        if _ip("netns", "add", probe, check=False).returncode != 0:
            return "`ip netns add` fails here"
        try:
            netem = subprocess.run(
                ["ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "lo", "root",
                 "netem", "loss", "1%"],
                capture_output=True, text=True, timeout=20,
            )  # fmt: skip
        except FileNotFoundError:
            return "no tc (iproute2) and no iptables"
        finally:
            _ip("netns", "del", probe, check=False)
        if netem.returncode != 0:
            return (
                f"this kernel has no netem ({netem.stderr.strip()}) and iptables is not "
                "installed (apt-get install iptables: its statistic match drops at random)"
            )
        return None

    def _add_ns(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self._made.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")

    def add_node(self, name: str) -> str:
        """A namespace for node ``name`` on ``br0``; its address (10.77.0.N)."""
        index = len(self._nodes) + 1
        ns, port = f"{self.prefix}-{name}", f"p{index}"
        self._add_ns(ns)
        _ip("link", "add", port, "netns", self.switch, "type", "veth", "peer", "name", "e0",
            "netns", ns)  # fmt: skip
        _ip("-n", self.switch, "link", "set", port, "master", "br0")
        _ip("-n", self.switch, "link", "set", port, "up")
        addr = f"{SUBNET}.{index}"
        _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "e0")
        _ip("-n", ns, "link", "set", "e0", "up")
        self._nodes[name] = (ns, port)
        return addr

    def namespace(self, name: str) -> str:
        return self._nodes[name][0]

    def wrap(self, name: str) -> list[str]:
        """The command prefix that runs a program inside node ``name``'s namespace."""
        return ["ip", "netns", "exec", self.namespace(name)]

    def partition(self, names: list[str]) -> None:
        """Cut ``names`` off from the others (their ports go to the second bridge)."""
        for name in names:
            _ip("-n", self.switch, "link", "set", self._nodes[name][1], "master", "br1")

    def heal(self) -> None:
        for _, port in self._nodes.values():
            _ip("-n", self.switch, "link", "set", port, "master", "br0")

    def set_loss(self, name: str, percent: float) -> str:
        """Drop ``percent`` % of the packets node ``name`` sends; which tool did it."""
        ns = self.namespace(name)
        netem = subprocess.run(
            ["ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", "e0", "root", "netem",
             "loss", f"{percent}%"],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        if netem.returncode == 0:
            return "netem"
        subprocess.run(
            ["ip", "netns", "exec", ns, "iptables", "-A", "OUTPUT", "-o", "e0", "-m",
             "statistic", "--mode", "random", "--probability", f"{percent / 100:.4f}", "-j",
             "DROP"],
            capture_output=True, text=True, timeout=20, check=True,
        )  # fmt: skip
        return "iptables statistic"

    def run(self, name: str, fn: Callable[[], T], timeout: float = 15.0) -> T:
        """``fn()`` in a thread inside node ``name``'s namespace."""
        runner = self._runners.get(name)
        if runner is None:
            ns = self.namespace(name)
            runner = ThreadPoolExecutor(1, f"netns-{name}", initializer=_enter, initargs=(ns,))
            self._runners[name] = runner
        return runner.submit(fn).result(timeout)

    def close(self) -> None:
        runners, self._runners = self._runners, {}
        for runner in runners.values():
            runner.shutdown(wait=True, cancel_futures=True)
        made, self._made = self._made, []
        for ns in reversed(made):
            _ip("netns", "del", ns, check=False)
