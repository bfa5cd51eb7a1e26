"""Gossip membership: SWIM with Lifeguard, as a sans-I/O state machine.

Theory of operation. Each node keeps a table of the other members (name, address, meta,
incarnation, state) and runs four clocks, all driven by the ``now`` its caller passes in:

* **probe** (every ``probe_interval``, scaled by local health): ping the next member of a
  shuffled round robin. No ack within ``probe_timeout`` → ask ``indirect_checks`` other members
  to ping it for us (each answers with an Ack or, Lifeguard, a Nack proving the relay is up).
  Still no ack at the end of the interval → the member becomes *suspect*.
* **suspicion**: a suspect is declared *dead* when its timer runs out. The timer starts at
  ``max = suspicion_max_timeout_mult × min`` and falls towards
  ``min = suspicion_mult × max(1, log10 n) × probe_interval`` as other members independently
  confirm the suspicion (Lifeguard's local-health-aware suspicion). A node that hears it is
  suspected (or declared dead) refutes with a higher incarnation.
* **gossip** (every ``gossip_interval``): news (alive / suspect / dead messages) goes out to
  ``gossip_nodes`` random members, each item ``retransmit_mult × ceil(log10(n + 1))`` times, and
  rides along on every ping and ack too.
* **push-pull** (every ``push_pull_interval``): full state exchange with one random member;
  joining is a push-pull with a seed.

Lifeguard's local health (*awareness*) is a score from 0 to ``awareness_max_multiplier − 1``:
a failed probe raises it (by the number of missing nacks), a refutation raises it, a probe that
gets its ack lowers it; probe interval and timeout are multiplied by ``score + 1``. A node that
is starved of CPU therefore probes slower and stops accusing healthy members.

Dead and left members stay in the table for ``gossip_to_the_dead_time`` (so news of their death
still spreads) and are then removed: Go Rony kept crashed nodes for ever. Removed dead members
(not left ones) are retried by a push-pull every ``reconnect_interval`` for ``reconnect_timeout``
(as Serf does), which heals a partition without an operator.

I/O is the caller's: ``receive`` takes a packet that arrived as a call and returns the reply;
``receive_reply`` takes a call's reply; ``tick`` runs due timers; ``take_outgoing`` hands over
(address, packet) pairs to send as calls, ``take_events`` the membership changes. The messages
are the protobufs of ``rony/server/pb/gossip.proto``; semantics follow HashiCorp memberlist.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from rony.server.pb import gossip_pb2 as pb

__all__ = [
    "ALIVE",
    "DEAD",
    "LEFT",
    "SUSPECT",
    "EventKind",
    "GossipConfig",
    "MemberEvent",
    "MemberInfo",
    "MembershipError",
    "SwimMembership",
    "suspicion_timeout",
]

ALIVE = pb.ALIVE
SUSPECT = pb.SUSPECT
DEAD = pb.DEAD
LEFT = pb.LEFT
_STATE_NAMES: dict[int, str] = {ALIVE: "alive", SUSPECT: "suspect", DEAD: "dead", LEFT: "left"}
_UINT32 = 0xFFFF_FFFF
# A member's name (its server id) and address are at most this long; longer ones are dropped.
MAX_NAME = 256
# A relay nacks after this fraction of probe_timeout without an ack (see _handle).
NACK_FRACTION = 0.8


class MembershipError(ValueError):
    """A membership setting or a local update that cannot be accepted (e.g. meta too large)."""


@dataclass(frozen=True, slots=True)
class GossipConfig:
    """The protocol's knobs. Defaults are memberlist's ``DefaultLANConfig``.

    ===========================  =======  =========================================================
    setting                      default  meaning
    ===========================  =======  =========================================================
    probe_interval               1 s      time between two probes of this node
    probe_timeout                500 ms   wait for a direct ack before asking others to probe
    indirect_checks              3        members asked to probe for us (ping-req)
    suspicion_mult               4        min suspicion = mult × max(1, log10 n) × probe_interval
    suspicion_max_timeout_mult   6        max suspicion = this × min; falls with confirmations
    retransmit_mult              4        each news item is sent mult × ceil(log10(n + 1)) times
    gossip_interval              200 ms   time between two gossip rounds
    gossip_nodes                 3        members each gossip round goes to
    gossip_to_the_dead_time      30 s     dead/left members kept (and gossiped to), then removed
    push_pull_interval           30 s     full state exchange with one member (slower above 32)
    awareness_max_multiplier     8        local health scales probe times up to this factor
    max_meta_size                512 B    a member's meta; larger is refused (memberlist's limit)
    max_packet_size              1400 B   piggybacked news per packet (memberlist's UDP size)
    max_nodes                    10000    members a push-pull may carry; more is refused
    join_retry_min               0.5 s    first wait before the seeds are tried again, while
                                          this node knows no other member; doubles each time
    join_retry_max               10 s     the longest wait between two tries of the seeds
    leave_fanout                 64       members told of a graceful leave directly (the
                                          rest hear it by gossip)
    reconnect_interval           15 s     one removed-dead member retried (partition healing)
    reconnect_timeout            24 h     how long a dead member is retried after it died
    cluster_label                "rony"   packets with another label are dropped
    ===========================  =======  =========================================================
    """

    probe_interval: float = 1.0
    probe_timeout: float = 0.5
    indirect_checks: int = 3
    suspicion_mult: int = 4
    suspicion_max_timeout_mult: int = 6
    retransmit_mult: int = 4
    gossip_interval: float = 0.2
    gossip_nodes: int = 3
    gossip_to_the_dead_time: float = 30.0
    push_pull_interval: float = 30.0
    awareness_max_multiplier: int = 8
    max_meta_size: int = 512
    max_packet_size: int = 1400
    max_nodes: int = 10_000
    join_retry_min: float = 0.5
    join_retry_max: float = 10.0
    leave_fanout: int = 64
    reconnect_interval: float = 15.0
    reconnect_timeout: float = 24 * 3600.0
    cluster_label: str = "rony"

    def __post_init__(self) -> None:
        for name in (
            "probe_interval",
            "probe_timeout",
            "gossip_interval",
            "gossip_to_the_dead_time",
            "push_pull_interval",
            "reconnect_interval",
            "reconnect_timeout",
            "join_retry_min",
            "join_retry_max",
        ):
            if not getattr(self, name) > 0:
                raise MembershipError(f"GossipConfig.{name} must be > 0 seconds")
        if self.probe_timeout >= self.probe_interval:
            raise MembershipError("GossipConfig.probe_timeout must be < probe_interval")
        for name in (
            "suspicion_mult",
            "suspicion_max_timeout_mult",
            "retransmit_mult",
            "gossip_nodes",
            "awareness_max_multiplier",
            "max_meta_size",
            "max_packet_size",
            "max_nodes",
            "leave_fanout",
        ):
            if getattr(self, name) < 1:
                raise MembershipError(f"GossipConfig.{name} must be >= 1")
        if self.indirect_checks < 0:
            raise MembershipError("GossipConfig.indirect_checks must be >= 0")


def suspicion_timeout(mult: int, n: int, interval: float) -> float:
    """memberlist's minimum suspicion time: mult × max(1, log10 n) × interval."""
    return mult * max(1.0, math.log10(max(1, n))) * interval


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """A member as this node sees it (a snapshot)."""

    name: str
    addr: str
    meta: bytes
    incarnation: int
    state: int

    @property
    def state_name(self) -> str:
        return _STATE_NAMES[self.state]


class EventKind(enum.Enum):
    JOIN = "join"  # new, or back from dead / left
    UPDATE = "update"  # address or meta changed, or a suspicion was refuted
    SUSPECT = "suspect"
    FAIL = "fail"  # declared dead
    LEAVE = "leave"  # left gracefully
    REMOVE = "remove"  # dropped from the table after gossip_to_the_dead_time


@dataclass(frozen=True, slots=True)
class MemberEvent:
    kind: EventKind
    member: MemberInfo


@dataclass(slots=True)
class _Node:
    name: str
    addr: str
    meta: bytes
    incarnation: int
    state: int
    since: float  # local time of the last state change

    def info(self) -> MemberInfo:
        return MemberInfo(self.name, self.addr, self.meta, self.incarnation, self.state)


@dataclass(slots=True)
class _Probe:
    seq: int
    target: str
    indirect_at: float
    end_at: float
    indirect_sent: bool = False
    expected_nacks: int = 0
    nacks: int = 0


@dataclass(slots=True)
class _Relay:
    """An indirect ping we run for ``origin``: its ack (or nack at ``expires``) goes back."""

    origin_addr: str
    origin_seq: int
    expires: float
    nack: bool


@dataclass(slots=True)
class _Suspicion:
    """memberlist's suspicion timer: the deadline falls as independent confirmations come."""

    start: float
    k: int
    min_t: float
    max_t: float
    confirmed: set[str] = field(default_factory=set)

    @property
    def deadline(self) -> float:
        n = len(self.confirmed) - 1  # the first accuser is no confirmation
        if self.k < 1 or n <= 0:
            timeout = self.min_t if self.k < 1 else self.max_t
        else:
            frac = math.log(n + 1) / math.log(self.k + 1)
            timeout = max(self.min_t, self.max_t - frac * (self.max_t - self.min_t))
        return self.start + timeout

    def confirm(self, who: str) -> bool:
        if len(self.confirmed) - 1 >= self.k or who in self.confirmed:
            return False
        self.confirmed.add(who)
        return True


@dataclass(slots=True)
class _Item:
    msg: pb.Message
    size: int
    order: int
    transmits: int = 0


class _Broadcasts:
    """News to piggyback: the newest item about a node replaces older ones (memberlist's
    TransmitLimitedQueue); the least transmitted go first; each goes out ``limit`` times."""

    def __init__(self) -> None:
        self._items: dict[str, _Item] = {}
        self._order = 0

    def __len__(self) -> int:
        return len(self._items)

    def queue(self, node: str, msg: pb.Message) -> None:
        self._order += 1
        self._items[node] = _Item(msg, msg.ByteSize() + 3, self._order)

    def take(self, budget: int, limit: int) -> list[pb.Message]:
        if not self._items:
            return []
        out: list[pb.Message] = []
        items = sorted(self._items.items(), key=lambda kv: (kv[1].transmits, -kv[1].order))
        for node, item in items:
            if item.size > budget:
                continue
            budget -= item.size
            out.append(item.msg)
            item.transmits += 1
            if item.transmits >= limit:
                del self._items[node]
        return out


class SwimMembership:
    """One node's view of the cluster. All times are this node's clock, in seconds.

    Call ``start(now)``, then ``join(seeds, now)`` (or nothing, for the first node).

    ``name`` is the node's unique name (its server id), ``addr`` its advertised gossip address,
    ``meta`` its metadata (at most ``max_meta_size`` bytes). ``incarnation`` starts the node's
    incarnation number: pass the wall clock's seconds, so a node restarted under the same name
    outranks what the cluster remembers of its previous life at once (a stale memory is refuted
    anyway, one round later).
    """

    def __init__(
        self,
        name: str,
        addr: str,
        meta: bytes = b"",
        *,
        config: GossipConfig | None = None,
        incarnation: int = 0,
        rng: random.Random | None = None,
    ) -> None:
        if not name or len(name) > MAX_NAME:
            raise MembershipError(f"a member's name must be 1 to {MAX_NAME} characters")
        self.config = config if config is not None else GossipConfig()
        self._check_meta(meta)
        self.name = name
        self.addr = addr
        self.meta = meta
        self.incarnation = incarnation & _UINT32
        self.awareness = 0
        self.leaving = False
        self._rng = rng if rng is not None else random.Random()
        self._nodes: dict[str, _Node] = {}
        self._node_list: list[_Node] = []  # the same nodes, for sampling without a copy
        self._live = 0  # members alive or suspect, this node excluded
        self._gone: set[str] = set()  # members dead or left, until removed
        self._probe_order: list[str] = []
        self._probe_index = 0
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._suspicions: dict[str, _Suspicion] = {}
        self._failed: dict[str, tuple[str, float]] = {}  # removed dead: name -> (addr, died)
        self._broadcasts = _Broadcasts()
        self._outgoing: list[tuple[str, pb.Packet]] = []
        self._events: list[MemberEvent] = []
        self._seq = self._rng.randrange(_UINT32)
        self._started = False
        self._next_probe = self._next_gossip = self._next_push_pull = 0.0
        self._next_reconnect = 0.0
        self._seeds: list[str] = []
        self._join_wait = 0.0
        self._next_join = math.inf
        # Counters, read by metrics and benchmarks.
        self.stats: dict[str, int] = {
            "probes": 0,
            "probe_failures": 0,
            "refutes": 0,
            "packets_dropped": 0,
        }

    # --- reading -----------------------------------------------------------------------------

    def self_info(self) -> MemberInfo:
        return MemberInfo(self.name, self.addr, self.meta, self.incarnation, ALIVE)

    def members(self) -> list[MemberInfo]:
        """This node and every member that is alive or suspect (dead and left are not)."""
        out = [self.self_info()]
        out.extend(n.info() for n in self._nodes.values() if n.state in (ALIVE, SUSPECT))
        return out

    def all_nodes(self) -> list[MemberInfo]:
        """Every entry of the table, dead and left ones included, plus this node."""
        return [self.self_info(), *(n.info() for n in self._nodes.values())]

    def member(self, name: str) -> MemberInfo | None:
        if name == self.name:
            return self.self_info()
        node = self._nodes.get(name)
        return node.info() if node is not None else None

    def num_alive(self) -> int:
        """Alive and suspect members, this node included (memberlist's estimate of n)."""
        return 1 + self._live

    # --- input ----------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin the clocks and announce ourselves. Call once, before anything else."""
        if self._started:
            return
        self._started = True
        c = self.config
        jitter = self._rng.random()
        self._next_probe = now + c.probe_interval * jitter
        self._next_gossip = now + c.gossip_interval * jitter
        self._next_push_pull = now + self._push_pull_interval() * (0.5 + jitter / 2)
        self._next_reconnect = now + c.reconnect_interval
        self._queue_alive_self()

    def join(self, seeds: Iterable[str], now: float) -> None:
        """Join through ``seeds`` (gossip addresses; their names need not be known): a
        push-pull to each now, and again with back-off (``join_retry_min`` doubling up to
        ``join_retry_max``) for as long as this node knows no other live member, which also
        brings a node back whose every peer went away."""
        self._seeds = [a for a in dict.fromkeys(seeds) if a != self.addr]
        self._join_wait = self.config.join_retry_min
        self._try_seeds(now)

    def _try_seeds(self, now: float) -> None:
        for addr in self._seeds:
            self._send(addr, [self._push_pull(join=True)], piggyback=False)
        self._next_join = now + self._join_wait * (0.75 + self._rng.random() / 2)
        self._join_wait = min(self.config.join_retry_max, self._join_wait * 2)

    def set_meta(self, meta: bytes) -> None:
        """Change this node's meta; the new incarnation is gossiped to everyone."""
        self._check_meta(meta)
        self.meta = meta
        self.incarnation = (self.incarnation + 1) & _UINT32
        self._queue_alive_self()

    def leave(self, now: float) -> None:
        """Announce a graceful leave: a dead-from-itself message, sent at once to
        ``gossip_nodes`` members and gossiped; no more probes after this."""
        if self.leaving:
            return
        self.leaving = True
        msg = pb.Message(Dead=pb.Dead(Incarnation=self.incarnation, Node=self.name, From=self.name))
        self._broadcasts.queue(self.name, msg)
        self._probe = None
        for node in self._pick(self.config.leave_fanout, (ALIVE, SUSPECT), now):
            self._send(node.addr, [msg], piggyback=False)

    def receive(self, packet: pb.Packet, now: float) -> pb.Packet:
        """A packet that arrived as a call; returns the reply (never None: maybe empty)."""
        replies: list[pb.Message] = []
        if not self._accept(packet):
            return pb.Packet(Cluster=self.config.cluster_label, From=self.name)
        for msg in packet.Messages:
            self._handle(msg, packet, now, replies)
        # A push-pull answer is the whole state already: news riding on it would spend
        # retransmits on a node that needs none (memberlist sends push-pulls apart, over TCP).
        full_state = any(m.HasField("PushPull") for m in replies)
        return self._packet(replies, piggyback=not full_state)

    def receive_reply(self, packet: pb.Packet, now: float) -> None:
        """The reply to a call this node made."""
        if not self._accept(packet):
            return
        for msg in packet.Messages:
            self._handle(msg, packet, now, None)

    def call_failed(self, packet: pb.Packet, now: float) -> None:
        """A call carrying ``packet`` failed at once: the peer refused the connection, or
        reset it, or refused our certificate. Not for a call that merely got no answer in
        time (the timers handle that, as over UDP).

        Over UDP, memberlist cannot tell a dead process from a slow one until its timers run
        out. Over TCP a refusal says at once that nothing listens there, so a probe moves on
        without waiting: a failed direct ping goes to the indirect checks now, and a relay
        whose ping failed nacks now instead of after its timer. The verdict still comes only
        from the suspicion timer and its confirmations (this saves about a second of the
        time to detect a crash, never a refutation's chance).
        """
        probe = self._probe
        for msg in packet.Messages:
            kind = msg.WhichOneof("Kind")
            if kind == "Ping":
                seq = msg.Ping.SeqNo
                if probe is not None and probe.seq == seq and not probe.indirect_sent:
                    self._indirect(probe, now)
                relay = self._relays.pop(seq, None)
                if relay is not None and relay.nack:
                    nack = pb.Message(Nack=pb.Nack(SeqNo=relay.origin_seq))
                    self._send(relay.origin_addr, [nack])
            elif (
                kind == "IndirectPing"
                and probe is not None
                and probe.seq == msg.IndirectPing.SeqNo
                and probe.expected_nacks > 0
            ):
                # That relay cannot answer: its silence says nothing of our own health.
                probe.expected_nacks -= 1
                self._probe_settled(probe, now)

    def _probe_settled(self, probe: _Probe, now: float) -> None:
        """Every relay has answered that the target gave it no ack: the probe has failed, and
        waiting out its interval would only delay the suspicion."""
        if self._probe is probe and probe.indirect_sent and 0 < probe.expected_nacks <= probe.nacks:
            self._probe_failed(probe, now)

    def tick(self, now: float) -> None:
        """Run every timer that is due at ``now``."""
        if not self._started:
            return
        c = self.config
        # suspicions that ran out
        for name, susp in list(self._suspicions.items()):
            if susp.deadline <= now:
                del self._suspicions[name]
                node = self._nodes.get(name)
                if node is not None and node.state == SUSPECT:
                    dead = pb.Dead(Incarnation=node.incarnation, Node=name, From=self.name)
                    self._dead(dead, now)
        # relays whose target never answered: nack (or just forget)
        for seq, relay in list(self._relays.items()):
            if relay.expires <= now:
                del self._relays[seq]
                if relay.nack:
                    nack = pb.Message(Nack=pb.Nack(SeqNo=relay.origin_seq))
                    self._send(relay.origin_addr, [nack])
        if self.leaving:
            if self._next_gossip <= now:
                self._next_gossip = now + c.gossip_interval
                self._gossip(now)
            return
        probe = self._probe
        if probe is not None:
            if not probe.indirect_sent and probe.indirect_at <= now:
                self._indirect(probe, now)
            if probe.end_at <= now:
                self._probe_failed(probe, now)
        if self._next_probe <= now and self._probe is None:
            self._start_probe(now)
        if self._next_gossip <= now:
            self._next_gossip = now + c.gossip_interval
            self._reap(now)
            self._gossip(now)
        if self._next_push_pull <= now:
            self._next_push_pull = now + self._push_pull_interval()
            targets = self._pick(1, (ALIVE,), now)
            if targets:
                self._send(targets[0].addr, [self._push_pull(join=False)], piggyback=False)
        if self._next_reconnect <= now:
            self._next_reconnect = now + c.reconnect_interval
            self._reconnect(now)
        if self._seeds and self._next_join <= now:
            if self._live == 0:
                self._try_seeds(now)
            else:  # joined: retry fast again should every member go away later
                self._join_wait = c.join_retry_min
                self._next_join = now + c.join_retry_max

    def next_deadline(self) -> float | None:
        """The earliest time ``tick`` has work to do (None before ``start``)."""
        if not self._started:
            return None
        times = [self._next_gossip]
        if not self.leaving:
            times += [self._next_push_pull, self._next_reconnect, self._next_join]
            probe = self._probe
            if probe is None:
                times.append(self._next_probe)
            else:
                times.append(probe.end_at if probe.indirect_sent else probe.indirect_at)
        times.extend(s.deadline for s in self._suspicions.values())
        times.extend(r.expires for r in self._relays.values())
        return min(times)

    # --- output ---------------------------------------------------------------------------------

    def take_outgoing(self) -> list[tuple[str, pb.Packet]]:
        out, self._outgoing = self._outgoing, []
        return out

    def take_events(self) -> list[MemberEvent]:
        out, self._events = self._events, []
        return out

    # --- messages -------------------------------------------------------------------------------

    def _accept(self, packet: pb.Packet) -> bool:
        if packet.Cluster != self.config.cluster_label or packet.From == "":
            self.stats["packets_dropped"] += 1
            return False
        return True

    def _handle(
        self, msg: pb.Message, packet: pb.Packet, now: float, replies: list[pb.Message] | None
    ) -> None:
        kind = msg.WhichOneof("Kind")
        if kind == "Ping":
            # A ping meant for another node (one that had our address before) gets no ack.
            if replies is not None and msg.Ping.Node in ("", self.name):
                replies.append(pb.Message(Ack=pb.Ack(SeqNo=msg.Ping.SeqNo)))
        elif kind == "Ack":
            self._ack(msg.Ack.SeqNo, now)
        elif kind == "Nack":
            probe = self._probe
            if probe is not None and probe.seq == msg.Nack.SeqNo:
                probe.nacks += 1
                self._probe_settled(probe, now)
        elif kind == "IndirectPing":
            ip = msg.IndirectPing
            if packet.FromAddr and ip.Addr and len(self._relays) < 4 * self.config.max_nodes:
                seq = self._next_seq()
                # The nack must reach the prober before its probe ends (it sent us this at
                # probe_timeout, and gives up at probe_interval = 2 x that by default): a
                # nack timer of a full probe_timeout, as memberlist's, lands just after, and a
                # healthy prober then counts every nack as missing and blames its own health
                # (measured: awareness 2-3 after each real failure, and slower probes).
                wait = self.config.probe_timeout * NACK_FRACTION
                self._relays[seq] = _Relay(packet.FromAddr, ip.SeqNo, now + wait, ip.Nack)
                self._send(ip.Addr, [pb.Message(Ping=pb.Ping(SeqNo=seq, Node=ip.Node))])
        elif kind == "Alive":
            self._alive(msg.Alive, now)
        elif kind == "Suspect":
            self._stale_accusation(msg.Suspect, packet, replies)
            self._suspect(msg.Suspect, now)
        elif kind == "Dead":
            self._stale_accusation(msg.Dead, packet, replies)
            self._dead(msg.Dead, now)
        elif kind == "PushPull":
            pp = msg.PushPull
            if len(pp.Nodes) > self.config.max_nodes:
                self.stats["packets_dropped"] += 1
                return
            refutes = self.stats["refutes"]
            self._merge(pp.Nodes, now)
            if replies is not None:
                replies.append(self._push_pull(join=False))
            elif self.stats["refutes"] != refutes and packet.FromAddr:
                # The peer thinks us dead or suspect: tell it at once, not only by gossip
                # (this is what lets two halves of a healed partition see each other).
                self._send(packet.FromAddr, [self._alive_self_msg()])

    def _stale_accusation(
        self, accusation: pb.Suspect | pb.Dead, packet: pb.Packet, replies: list[pb.Message] | None
    ) -> None:
        """Someone still accuses an incarnation of ours that we refuted already: it missed
        the refutation, which was only gossiped a few times. Tell it directly (memberlist
        ignores such news, and the accuser's timer can then run out on a live node: seen in
        simulation, one run in 30 of a 3 s pause)."""
        if accusation.Node != self.name or accusation.Incarnation >= self.incarnation:
            return
        if self.leaving:
            return
        if replies is not None:
            replies.append(self._alive_self_msg())
        elif packet.FromAddr:
            self._send(packet.FromAddr, [self._alive_self_msg()])

    def _ack(self, seq: int, now: float) -> None:
        probe = self._probe
        if probe is not None and probe.seq == seq:
            self._probe = None
            self._awareness(-1)
            return
        relay = self._relays.pop(seq, None)
        if relay is not None:
            self._send(relay.origin_addr, [pb.Message(Ack=pb.Ack(SeqNo=relay.origin_seq))])

    def _alive(self, a: pb.Alive, now: float) -> None:
        if a.Node == self.name:
            # Someone speaks of us with a newer incarnation (our previous life, or a stale
            # update): outrank it.
            if a.Incarnation > self.incarnation or (
                a.Incarnation == self.incarnation and (a.Meta != self.meta or a.Addr != self.addr)
            ):
                self._refute(a.Incarnation)
            return
        if not a.Node or len(a.Node) > MAX_NAME or len(a.Meta) > self.config.max_meta_size:
            self.stats["packets_dropped"] += 1
            return
        if not a.Addr or len(a.Addr) > MAX_NAME:
            self.stats["packets_dropped"] += 1
            return
        node = self._nodes.get(a.Node)
        if node is None:
            if len(self._nodes) >= self.config.max_nodes:
                self.stats["packets_dropped"] += 1
                return
            node = _Node(a.Node, a.Addr, a.Meta, a.Incarnation, ALIVE, now)
            self._nodes[a.Node] = node
            self._node_list.append(node)
            self._live += 1
            self._failed.pop(a.Node, None)
            # a new member takes a random place in the probe round (memberlist does the same)
            self._probe_order.insert(self._rng.randint(0, len(self._probe_order)), a.Node)
            self._broadcasts.queue(a.Node, pb.Message(Alive=a))
            self._events.append(MemberEvent(EventKind.JOIN, node.info()))
            return
        if a.Incarnation <= node.incarnation:
            return  # old news; a different address at the same incarnation is a conflict
        was = node.state
        changed = node.addr != a.Addr or node.meta != a.Meta
        self._suspicions.pop(a.Node, None)
        node.incarnation, node.addr, node.meta = a.Incarnation, a.Addr, a.Meta
        if was != ALIVE:
            node.state, node.since = ALIVE, now
        if was in (DEAD, LEFT):
            self._live += 1
            self._gone.discard(a.Node)
        self._failed.pop(a.Node, None)
        self._broadcasts.queue(a.Node, pb.Message(Alive=a))
        if was in (DEAD, LEFT):
            self._events.append(MemberEvent(EventKind.JOIN, node.info()))
        elif changed or was == SUSPECT:
            self._events.append(MemberEvent(EventKind.UPDATE, node.info()))

    def _suspect(self, s: pb.Suspect, now: float) -> None:
        if s.Node == self.name:
            if s.Incarnation >= self.incarnation and not self.leaving:
                self._refute(s.Incarnation)
            return
        node = self._nodes.get(s.Node)
        if node is None or s.Incarnation < node.incarnation:
            return
        susp = self._suspicions.get(s.Node)
        if susp is not None:
            if susp.confirm(s.From):  # a new, independent accuser: gossip it on
                self._broadcasts.queue(s.Node, pb.Message(Suspect=s))
            return
        if node.state != ALIVE:
            return
        c = self.config
        n = self.num_alive()
        k = c.suspicion_mult - 2
        if n - 2 < k:
            k = 0  # too few members to expect confirmations
        min_t = suspicion_timeout(c.suspicion_mult, n, c.probe_interval)
        self._suspicions[s.Node] = _Suspicion(
            now, k, min_t, c.suspicion_max_timeout_mult * min_t, {s.From}
        )
        node.incarnation, node.state, node.since = s.Incarnation, SUSPECT, now
        self._broadcasts.queue(s.Node, pb.Message(Suspect=s))
        self._events.append(MemberEvent(EventKind.SUSPECT, node.info()))

    def _dead(self, d: pb.Dead, now: float) -> None:
        if d.Node == self.name:
            if not self.leaving and d.Incarnation >= self.incarnation:
                self._refute(d.Incarnation)
            return
        node = self._nodes.get(d.Node)
        if node is None or d.Incarnation < node.incarnation:
            return
        self._suspicions.pop(d.Node, None)
        if node.state in (DEAD, LEFT):
            return
        left = d.From == d.Node
        node.incarnation, node.since = d.Incarnation, now
        self._live -= 1
        self._gone.add(d.Node)
        node.state = LEFT if left else DEAD
        self._broadcasts.queue(d.Node, pb.Message(Dead=d))
        self._events.append(MemberEvent(EventKind.LEAVE if left else EventKind.FAIL, node.info()))

    def _merge(self, states: Iterable[pb.NodeState], now: float) -> None:
        for st in states:
            if st.State == ALIVE:
                self._alive(
                    pb.Alive(Incarnation=st.Incarnation, Node=st.Node, Addr=st.Addr, Meta=st.Meta),
                    now,
                )
            elif st.State == LEFT:
                self._dead(pb.Dead(Incarnation=st.Incarnation, Node=st.Node, From=st.Node), now)
            else:
                # Someone else's dead verdict is only a suspicion here (memberlist does the same):
                # we see for ourselves before we bury a member.
                self._suspect(
                    pb.Suspect(Incarnation=st.Incarnation, Node=st.Node, From=self.name), now
                )

    def _refute(self, accused: int) -> None:
        self.incarnation = (max(self.incarnation, accused) + 1) & _UINT32
        self.stats["refutes"] += 1
        self._awareness(1)
        self._queue_alive_self()

    # --- probing --------------------------------------------------------------------------------

    def _start_probe(self, now: float) -> None:
        c = self.config
        scale = self.awareness + 1
        self._next_probe = now + c.probe_interval * scale
        target = self._next_target()
        if target is None:
            return
        self.stats["probes"] += 1
        seq = self._next_seq()
        self._probe = _Probe(seq, target.name, now + c.probe_timeout * scale, self._next_probe)
        msgs = [pb.Message(Ping=pb.Ping(SeqNo=seq, Node=target.name))]
        if target.state == SUSPECT:
            # Lifeguard's buddy system: the suspect hears of it first, and can refute.
            msgs.append(
                pb.Message(
                    Suspect=pb.Suspect(
                        Incarnation=target.incarnation, Node=target.name, From=self.name
                    )
                )
            )
        self._send(target.addr, msgs)

    def _next_target(self) -> _Node | None:
        for _ in range(2):
            while self._probe_index < len(self._probe_order):
                name = self._probe_order[self._probe_index]
                self._probe_index += 1
                node = self._nodes.get(name)
                if node is not None and node.state in (ALIVE, SUSPECT):
                    return node
            # a round is over: reshuffle the members, as memberlist does
            self._probe_order = list(self._nodes)
            self._rng.shuffle(self._probe_order)
            self._probe_index = 0
        return None

    def _indirect(self, probe: _Probe, now: float) -> None:
        probe.indirect_sent = True
        target = self._nodes.get(probe.target)
        if target is None:
            return
        relays = [
            n
            for n in self._pick(self.config.indirect_checks + 1, (ALIVE,), now)
            if n.name != probe.target
        ][: self.config.indirect_checks]
        probe.expected_nacks = len(relays)
        ping = pb.IndirectPing(SeqNo=probe.seq, Node=target.name, Addr=target.addr, Nack=True)
        for relay in relays:
            self._send(relay.addr, [pb.Message(IndirectPing=ping)])

    def _probe_failed(self, probe: _Probe, now: float) -> None:
        self._probe = None
        self.stats["probe_failures"] += 1
        missing = probe.expected_nacks - probe.nacks
        self._awareness(missing if probe.expected_nacks > 0 else 1)
        node = self._nodes.get(probe.target)
        if node is not None and node.state in (ALIVE, SUSPECT):
            self._suspect(
                pb.Suspect(Incarnation=node.incarnation, Node=node.name, From=self.name), now
            )

    def _awareness(self, delta: int) -> None:
        top = self.config.awareness_max_multiplier - 1
        self.awareness = min(top, max(0, self.awareness + delta))

    # --- gossip, push-pull, reaping -----------------------------------------------------------

    def _gossip(self, now: float) -> None:
        targets = self._pick(self.config.gossip_nodes, (ALIVE, SUSPECT, DEAD, LEFT), now)
        for node in targets:
            news = self._take_broadcasts(self.config.max_packet_size)
            if not news:
                return
            self._outgoing.append((node.addr, self._packet(news, piggyback=False)))

    def _reap(self, now: float) -> None:
        keep = self.config.gossip_to_the_dead_time
        reaped = False
        for name in list(self._gone):
            node = self._nodes[name]
            if now - node.since > keep:
                del self._nodes[name]
                self._gone.discard(name)
                reaped = True
                if node.state == DEAD:
                    self._failed[name] = (node.addr, node.since)
                self._events.append(MemberEvent(EventKind.REMOVE, node.info()))
        if reaped:
            self._node_list = list(self._nodes.values())
        limit = self.config.reconnect_timeout
        for name, (_, died) in list(self._failed.items()):
            if now - died > limit:
                del self._failed[name]

    def _reconnect(self, now: float) -> None:
        """Push-pull with one dead member, so that a partition heals by itself."""
        candidates = [n.addr for n in self._nodes.values() if n.state == DEAD]
        candidates += [addr for addr, _ in self._failed.values()]
        if candidates:
            addr = self._rng.choice(candidates)
            self._send(addr, [self._push_pull(join=False)], piggyback=False)

    def _push_pull(self, *, join: bool) -> pb.Message:
        nodes = [
            pb.NodeState(
                Node=self.name,
                Addr=self.addr,
                Meta=self.meta,
                Incarnation=self.incarnation,
                State=ALIVE,
            )
        ]
        nodes.extend(
            pb.NodeState(
                Node=n.name, Addr=n.addr, Meta=n.meta, Incarnation=n.incarnation, State=n.state
            )
            for n in self._nodes.values()
        )
        return pb.Message(PushPull=pb.PushPull(Join=join, Nodes=nodes))

    def _push_pull_interval(self) -> float:
        """memberlist's pushPullScale: slower above 32 members, so its cost stays flat."""
        base = self.config.push_pull_interval
        n = self.num_alive()
        if n <= 32:
            return base
        return base * (math.ceil(math.log2(n) - math.log2(32)) + 1)

    # --- helpers ----------------------------------------------------------------------------------

    def _pick(self, k: int, states: tuple[int, ...], now: float) -> list[_Node]:
        """Up to ``k`` random members in ``states`` (dead/left ones only while recent)."""
        keep = self.config.gossip_to_the_dead_time
        nodes = self._node_list

        def fits(n: _Node) -> bool:
            return n.state in states and (n.state in (ALIVE, SUSPECT) or now - n.since <= keep)

        if len(nodes) > 4 * k:
            # Large table: sample by rejection (O(k), not O(n)); a sparse match falls through.
            chosen: dict[str, _Node] = {}
            for _ in range(8 * k):
                n = nodes[self._rng.randrange(len(nodes))]
                if fits(n):
                    chosen[n.name] = n
                    if len(chosen) == k:
                        return list(chosen.values())
        pool = [n for n in nodes if fits(n)]
        if len(pool) <= k:
            self._rng.shuffle(pool)
            return pool
        return self._rng.sample(pool, k)

    def _send(self, addr: str, msgs: list[pb.Message], *, piggyback: bool = True) -> None:
        self._outgoing.append((addr, self._packet(msgs, piggyback=piggyback)))

    def _packet(self, msgs: list[pb.Message], *, piggyback: bool) -> pb.Packet:
        if piggyback:
            used = sum(m.ByteSize() for m in msgs)
            msgs = msgs + self._take_broadcasts(self.config.max_packet_size - used)
        return pb.Packet(
            Cluster=self.config.cluster_label, From=self.name, FromAddr=self.addr, Messages=msgs
        )

    def _take_broadcasts(self, budget: int) -> list[pb.Message]:
        if budget <= 0 or not len(self._broadcasts):
            return []
        limit = self.config.retransmit_mult * math.ceil(math.log10(self.num_alive() + 1))
        return self._broadcasts.take(budget, max(1, limit))

    def _alive_self_msg(self) -> pb.Message:
        return pb.Message(
            Alive=pb.Alive(
                Incarnation=self.incarnation, Node=self.name, Addr=self.addr, Meta=self.meta
            )
        )

    def _queue_alive_self(self) -> None:
        self._broadcasts.queue(self.name, self._alive_self_msg())

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & _UINT32
        return self._seq

    def _check_meta(self, meta: bytes) -> None:
        if len(meta) > self.config.max_meta_size:
            raise MembershipError(
                f"node meta is {len(meta)} bytes, over the limit of "
                f"{self.config.max_meta_size} (max_meta_size): fewer or shorter addresses"
            )
