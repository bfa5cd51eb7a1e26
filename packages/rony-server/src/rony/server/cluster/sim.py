"""A deterministic simulator for the gossip membership: a manual clock and an in-memory network.

Public, for tests and benchmarks: hundreds of ``SwimMembership`` nodes run in one process with
no I/O and no real time, so a minute of cluster life takes a second and the same seed gives the
same run. The network models what gRPC calls do: a packet is a call that arrives after
``latency`` (or is lost with probability ``loss``); its reply comes back the same way.

Faults: ``crash`` (gone for good), ``pause``/``resume`` (SIGSTOP/SIGCONT: nothing processed,
then everything late), ``set_lag`` (a starved node: it answers, but everything it does happens
``lag`` seconds late), ``partition``/``heal``, per-node clock ``rate`` (a slow clock), and
``restart`` (same name, a new life and address).

    net = SimNetwork(seed=1)
    for i in range(10):
        net.add(f"n{i}", join="n0" if i else None)
    net.run_for(10.0)
    assert net.converged()
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from rony.server.cluster._swim import (
    ALIVE,
    SUSPECT,
    GossipConfig,
    MemberEvent,
    SwimMembership,
)
from rony.server.pb import gossip_pb2 as pb

__all__ = ["SimNetwork", "SimNode"]


@dataclass
class SimNode:
    name: str
    addr: str
    machine: SwimMembership
    rate: float = 1.0  # local clock speed (1.0 = true time)
    offset: float = 0.0
    lag: float = 0.0  # everything this node does happens this late
    up: bool = True  # False: crashed (never comes back under this life)
    paused: bool = False
    wake_at: float | None = None
    events: list[tuple[float, MemberEvent]] = field(default_factory=list)
    packets_sent: int = 0
    bytes_sent: int = 0

    def local(self, t: float) -> float:
        return self.offset + self.rate * t

    def global_time(self, local: float) -> float:
        return (local - self.offset) / self.rate


class SimNetwork:
    """Nodes wired through an in-memory network with one manual clock (``now``, seconds)."""

    def __init__(
        self,
        config: GossipConfig | None = None,
        *,
        seed: int = 0,
        latency: float = 0.0005,
        loss: float = 0.0,
        call_timeout: float = 2.0,
    ) -> None:
        self.config = config if config is not None else GossipConfig()
        self.rng = random.Random(seed)
        self.latency = latency
        self.loss = loss
        self.call_timeout = call_timeout  # a reply later than this is dropped (a gRPC deadline)
        self.now = 0.0
        self.nodes: dict[str, SimNode] = {}
        self._by_addr: dict[str, SimNode] = {}
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._addr_ids = itertools.count(1)
        self._groups: dict[str, int] | None = None

    # --- building -------------------------------------------------------------------------------

    def add(
        self,
        name: str,
        *,
        join: str | Iterable[str] | None = None,
        meta: bytes = b"",
        rate: float = 1.0,
        incarnation: int | None = None,
    ) -> SimNode:
        """Start a node; ``join`` names the node(s) whose address it is given as seeds."""
        addr = f"10.0.{next(self._addr_ids)}.1:7946"
        machine = SwimMembership(
            name,
            addr,
            meta,
            config=self.config,
            incarnation=int(self.now) if incarnation is None else incarnation,
            rng=random.Random(self.rng.random()),
        )
        node = SimNode(name, addr, machine, rate=rate, offset=self.now * (1 - rate))
        self.nodes[name] = node
        self._by_addr[addr] = node
        machine.start(node.local(self.now))
        seeds = [join] if isinstance(join, str) else list(join or ())
        if seeds:
            machine.join([self.nodes[s].addr for s in seeds], node.local(self.now))
        self._flush(node)
        return node

    def restart(self, name: str, *, join: str | Iterable[str] | None = None) -> SimNode:
        """The same name comes back as a new process with a new address."""
        old = self.nodes[name]
        old.up = False
        self._by_addr.pop(old.addr, None)
        return self.add(name, join=join, incarnation=int(self.now) + 1)

    # --- faults ---------------------------------------------------------------------------------

    def crash(self, name: str) -> None:
        self.nodes[name].up = False

    def pause(self, name: str) -> None:
        self.nodes[name].paused = True

    def resume(self, name: str) -> None:
        node = self.nodes[name]
        node.paused = False
        self._schedule_wake(node, now=True)

    def set_lag(self, name: str, lag: float) -> None:
        self.nodes[name].lag = lag

    def partition(self, *groups: Iterable[str]) -> None:
        self._groups = {n: i for i, g in enumerate(groups) for n in g}

    def heal(self) -> None:
        self._groups = None

    def leave(self, name: str) -> None:
        node = self.nodes[name]
        node.machine.leave(node.local(self.now))
        self._flush(node)

    # --- running --------------------------------------------------------------------------------

    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def run_until(
        self, t: float, stop: Callable[[], bool] | None = None, *, every: float = 0.05
    ) -> bool:
        """Run events up to time ``t`` (or until ``stop()`` holds, checked each ``every``
        simulated seconds; True if it did)."""
        next_check = self.now
        while self._heap and self._heap[0][0] <= t:
            when, _, action = heapq.heappop(self._heap)
            self.now = when
            action()
            if stop is not None and when >= next_check:
                if stop():
                    return True
                next_check = when + every
        self.now = t
        return stop() if stop is not None else False

    # --- reading --------------------------------------------------------------------------------

    def view(self, name: str) -> dict[str, int]:
        """``name``'s view: member name -> state, for members it holds alive or suspect."""
        return {m.name: m.state for m in self.nodes[name].machine.members()}

    def live(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.up and not n.paused]

    def converged(self, expect: Iterable[str] | None = None) -> bool:
        """Every live node sees exactly ``expect`` (default: the live nodes) as alive."""
        want = set(expect) if expect is not None else {n.name for n in self.live()}
        live = self.live()
        if any(node.machine.num_alive() != len(want) for node in live):
            return False  # the cheap test first: a count is O(1)
        for node in live:
            view = self.view(node.name)
            if set(view) != want or any(s != ALIVE for s in view.values()):
                return False
        return True

    def declared_dead(self, name: str) -> list[str]:
        """Live nodes that no longer hold ``name`` as alive or suspect."""
        return [n.name for n in self.live() if n.name != name and name not in self.view(n.name)]

    def suspected_by(self, name: str) -> list[str]:
        return [n.name for n in self.live() if self.view(n.name).get(name) == SUSPECT]

    # --- the network ----------------------------------------------------------------------------

    def _push(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), action))

    def _reachable(self, a: SimNode, b: SimNode) -> bool:
        if self._groups is None:
            return True
        return self._groups.get(a.name, -1) == self._groups.get(b.name, -1)

    def _lost(self) -> bool:
        return self.loss > 0 and self.rng.random() < self.loss

    def _call(self, src: SimNode, addr: str, packet: pb.Packet) -> None:
        src.packets_sent += 1
        src.bytes_sent += packet.ByteSize()
        dst = self._by_addr.get(addr)
        if dst is None or not dst.up:
            # Nothing listens there any more: the connection is refused, which the caller
            # learns one round trip later (a reachable host answers with a reset).
            if dst is None or self._reachable(src, dst):
                when = self.now + src.lag + 2 * self.latency
                self._push(when, lambda: self._refused(src, packet))
            return
        if self._lost():
            return
        sent = self.now + src.lag
        self._push(sent + self.latency, lambda: self._deliver(src, dst, packet, sent))

    def _deliver(self, src: SimNode, dst: SimNode, packet: pb.Packet, sent: float) -> None:
        if not dst.up or not self._reachable(src, dst):
            return
        if dst.paused:  # held in the socket until the node runs again
            self._push(self.now + 0.05, lambda: self._deliver(src, dst, packet, sent))
            return
        if dst.lag:  # a starved node reads it late
            self._push(self.now + dst.lag, lambda: self._process(src, dst, packet, sent))
            return
        self._process(src, dst, packet, sent)

    def _process(self, src: SimNode, dst: SimNode, packet: pb.Packet, sent: float) -> None:
        if not dst.up:
            return
        reply = dst.machine.receive(packet, dst.local(self.now))
        self._flush(dst)
        if not reply.Messages:
            return
        dst.packets_sent += 1
        dst.bytes_sent += reply.ByteSize()
        if self._lost():
            return
        self._push(self.now + self.latency, lambda: self._reply(dst, src, reply, sent, False))

    def _reply(self, dst: SimNode, src: SimNode, reply: pb.Packet, sent: float, read: bool) -> None:
        if not src.up or not self._reachable(src, dst):
            return
        if self.now - sent > self.call_timeout:
            return  # the call timed out before its answer came: gRPC drops it too
        if src.paused:
            self._push(self.now + 0.05, lambda: self._reply(dst, src, reply, sent, False))
            return
        if src.lag and not read:
            self._push(self.now + src.lag, lambda: self._reply(dst, src, reply, sent, True))
            return
        src.machine.receive_reply(reply, src.local(self.now))
        self._flush(src)

    def _refused(self, src: SimNode, packet: pb.Packet) -> None:
        if src.up and not src.paused:
            src.machine.call_failed(packet, src.local(self.now))
            self._flush(src)

    def _flush(self, node: SimNode) -> None:
        for addr, packet in node.machine.take_outgoing():
            self._call(node, addr, packet)
        for event in node.machine.take_events():
            node.events.append((self.now, event))
        self._schedule_wake(node)

    def _schedule_wake(self, node: SimNode, *, now: bool = False) -> None:
        deadline = node.machine.next_deadline()
        if deadline is None:
            return
        when = max(self.now, node.global_time(deadline)) + node.lag
        if now:
            when = self.now
        if node.wake_at is not None and node.wake_at <= when and node.wake_at >= self.now:
            return  # an earlier wake is already due
        node.wake_at = when
        self._push(when, lambda: self._wake(node, when))

    def _wake(self, node: SimNode, when: float) -> None:
        if node.wake_at != when or not node.up:
            return
        node.wake_at = None
        if node.paused:
            return  # resume() schedules the next wake
        node.machine.tick(node.local(self.now))
        self._flush(node)
