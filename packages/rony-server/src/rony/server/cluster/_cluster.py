"""The cluster of an Edge: the SWIM state machine driven over grpc.aio, with mutual TLS.

``Cluster`` is the thin asyncio driver of ``SwimMembership``: one task runs its timers, every
packet it wants sent becomes one unary ``Gossip.Exchange`` call (whose reply goes back in), and
the gRPC server feeds the calls that arrive. Around it sits what handlers and apps use: the
members as Go Rony's ``EdgeNode`` (server id, replica set, hash, gateway and tunnel addresses),
indexed by id, hash and replica set, and join / leave / update callbacks.

Security: with ``tls`` every call is mutual TLS against the cluster CA (gRPC refuses a peer
whose certificate the CA did not sign, and one with no certificate, during the handshake).
Without it the cluster runs only when the operator said ``--insecure-cluster``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from rony.core import crc64_iso
from rony.core.pb.msg_pb2 import Edge as EdgeMessage
from rony.server._addrs import hostport
from rony.server.cluster._ca import TLSFiles
from rony.server.cluster._swim import (
    EventKind,
    GossipConfig,
    MemberEvent,
    MemberInfo,
    SwimMembership,
)
from rony.server.pb import gossip_pb2 as pb
from rony.server.pb import gossip_pb2_grpc as pb_grpc
from rony.server.pb.imsg_pb2 import EdgeNode

__all__ = ["Cluster", "ClusterMember", "Subscription"]

log = logging.getLogger("rony.server.cluster")

# A push-pull carries the whole table: memberlist caps it at 20 MiB.
MAX_PACKET_BYTES = 20 * 1024 * 1024
# How long a push-pull call may take (memberlist's TCPTimeout); other calls get the probe
# interval: an answer later than that is of no use to the probe that asked.
PUSH_PULL_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class ClusterMember:
    """A live member of the cluster, as Go Rony's ``ClusterMember``."""

    server_id: str
    replica_set: int
    hash: int
    gateway_addrs: tuple[str, ...]
    tunnel_addrs: tuple[str, ...]
    gossip_addr: str
    state: str  # "alive" or "suspect"

    def to_edge(self) -> EdgeMessage:
        """The wire ``Edge`` of this member (GetNodes, redirects): its gateway addresses."""
        return EdgeMessage(
            ReplicaSet=self.replica_set, ServerID=self.server_id, HostPorts=self.gateway_addrs
        )


def encode_meta(
    server_id: str, replica_set: int, gateway_addrs: Iterable[str], tunnel_addrs: Iterable[str]
) -> bytes:
    return EdgeNode(
        ServerID=server_id.encode(),
        ReplicaSet=replica_set,
        Hash=crc64_iso(server_id),
        GatewayAddr=list(gateway_addrs),
        TunnelAddr=list(tunnel_addrs),
    ).SerializeToString()


def _member(info: MemberInfo) -> ClusterMember | None:
    """The member a gossip entry describes; None when its meta is not an EdgeNode of it."""
    try:
        node = EdgeNode.FromString(info.meta)
        server_id = node.ServerID.decode()
    except Exception:  # hostile or foreign meta: that member is simply not listed
        return None
    if server_id != info.name:
        return None
    return ClusterMember(
        server_id=server_id,
        replica_set=node.ReplicaSet,
        hash=crc64_iso(server_id),  # computed, not trusted
        gateway_addrs=tuple(node.GatewayAddr),
        tunnel_addrs=tuple(node.TunnelAddr),
        gossip_addr=info.addr,
        state=info.state_name,
    )


Callback = Callable[[ClusterMember], Any]


@dataclass(slots=True)
class Subscription:
    """Callbacks for membership changes; ``cancel()`` stops them. A callback may be a plain
    function or a coroutine function (run as a task); its errors are logged, not raised."""

    on_join: Callback | None
    on_leave: Callback | None
    on_update: Callback | None
    _owner: Cluster | None = None

    def cancel(self) -> None:
        if self._owner is not None:
            self._owner._subscriptions.remove(self)
            self._owner = None


class _Servicer(pb_grpc.GossipServicer):
    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    async def Exchange(self, request: pb.Packet, context: Any) -> pb.Packet:
        return self._cluster._on_packet(request)


class Cluster:
    """Gossip membership of one node.

    ``bind`` is the (host, port) the gossip server listens on (port 0 = any free port);
    ``advertise`` the host other nodes dial (default: the bind host); ``seeds`` gossip
    addresses to join through (HOST:PORT; a name resolving to several addresses counts as
    several seeds). ``tls`` None means an insecure cluster (the caller warned about it).
    """

    def __init__(
        self,
        *,
        server_id: str,
        replica_set: int,
        bind: tuple[str, int],
        advertise: str | None = None,
        seeds: Sequence[str] = (),
        tls: TLSFiles | None = None,
        config: GossipConfig | None = None,
        gateway_addrs: Sequence[str] = (),
        tunnel_addrs: Sequence[str] = (),
    ) -> None:
        self.server_id = server_id
        self.replica_set = replica_set
        self.config = config if config is not None else GossipConfig()
        self._bind = bind
        self._advertise = advertise
        self._seeds = list(seeds)
        self._tls = tls
        self._gateway_addrs = tuple(gateway_addrs)
        self._tunnel_addrs = tuple(tunnel_addrs)
        # checked now, so a node whose meta is too large never starts
        self._meta = encode_meta(server_id, replica_set, gateway_addrs, tunnel_addrs)
        SwimMembership(server_id, "-", self._meta, config=self.config)
        self._machine: SwimMembership | None = None
        self._server: grpc.aio.Server | None = None
        self._channels: dict[str, tuple[grpc.aio.Channel, pb_grpc.GossipStub]] = {}
        self._members: dict[str, ClusterMember] = {}
        # alive_by_replica_set's answers, dropped whenever _members changes
        self._alive: dict[int, tuple[ClusterMember, ...]] = {}
        self._subscriptions: list[Subscription] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._kick: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.address: tuple[str, int] | None = None  # the bound gossip (host, port)
        self.advertised: str = ""  # HOST:PORT other nodes reach us at

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen, then begin joining (in the background, retried until a seed answers)."""
        self._loop = loop = asyncio.get_running_loop()
        self._kick = asyncio.Event()
        options = [
            ("grpc.max_receive_message_length", MAX_PACKET_BYTES),
            ("grpc.max_send_message_length", MAX_PACKET_BYTES),
            ("grpc.so_reuseport", 0),
        ]
        server = grpc.aio.server(options=options)
        pb_grpc.add_GossipServicer_to_server(_Servicer(self), server)  # type: ignore[no-untyped-call]
        host, port = self._bind
        target = hostport(host, port)
        if self._tls is not None:
            creds = grpc.ssl_server_credentials(
                [(self._tls.key_pem, self._tls.cert_pem)],
                root_certificates=self._tls.ca_pem,
                require_client_auth=True,
            )
            bound = server.add_secure_port(target, creds)
        else:
            bound = server.add_insecure_port(target)
        if not bound:
            raise OSError(f"gossip: cannot listen on {target}")
        await server.start()
        self._server = server
        self.address = (host, bound)
        adv = self._advertise or host
        self.advertised = hostport(adv, bound)
        machine = SwimMembership(
            self.server_id,
            self.advertised,
            self._meta,
            config=self.config,
            # wall-clock seconds: a restarted node outranks its previous life at once
            incarnation=int(time.time()),
        )
        self._machine = machine
        self._index(machine.self_info())  # this node is a member of its own cluster (as Go's)
        machine.start(loop.time())
        seeds = await _resolve(self._seeds)
        if seeds:
            machine.join(seeds, loop.time())
        self._flush()
        self._runner = loop.create_task(self._run(), name=f"rony-gossip-{self.server_id}")
        log.info(
            "gossip: node %s listening on %s (advertised %s), %s, seeds %s",
            self.server_id,
            hostport(host, bound),
            self.advertised,
            "mutual TLS" if self._tls is not None else "INSECURE (no TLS)",
            ", ".join(seeds) or "none",
        )

    async def leave(self, wait: float = 2.0) -> None:
        """Tell the cluster we leave (peers see ``left``, not ``failed``), waiting at most
        ``wait`` seconds for the announcements to be delivered."""
        machine = self._machine
        if machine is None or machine.leaving or self._loop is None:
            return
        machine.leave(self._loop.time())
        sends = self._flush()
        if sends:
            await asyncio.wait(sends, timeout=wait)

    async def stop(self) -> None:
        """Stop gossiping and close every connection (idempotent). ``leave`` first for a
        graceful exit; without it, peers will find this node dead."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        channels, self._channels = self._channels, {}
        for channel, _ in channels.values():
            await channel.close()
        server, self._server = self._server, None
        if server is not None:
            await server.stop(0.5)

    # --- reading ------------------------------------------------------------------------------

    def members(self) -> list[ClusterMember]:
        """Every live member (alive or suspect), this node included."""
        return list(self._members.values())

    def members_by_replica_set(self, *replica_sets: int) -> list[ClusterMember]:
        want = set(replica_sets)
        return [m for m in self._members.values() if m.replica_set in want]

    def alive_by_replica_set(self, replica_set: int) -> tuple[ClusterMember, ...]:
        """The members of ``replica_set`` in state alive (not suspect), this node included if
        it is one; cached until the membership changes (a remote call reads it every time)."""
        found = self._alive.get(replica_set)
        if found is None:
            found = tuple(
                m
                for m in self._members.values()
                if m.replica_set == replica_set and m.state == "alive"
            )
            self._alive[replica_set] = found
        return found

    def member_by_id(self, server_id: str) -> ClusterMember | None:
        return self._members.get(server_id)

    def member_by_hash(self, hash_: int) -> ClusterMember | None:
        for m in self._members.values():
            if m.hash == hash_:
                return m
        return None

    def total_replicas(self) -> int:
        """The number of distinct replica sets among the live members."""
        return len({m.replica_set for m in self._members.values()})

    def state(self) -> list[MemberInfo]:
        """The whole gossip table (dead and left entries too), for status pages and tests."""
        return self._machine.all_nodes() if self._machine is not None else []

    @property
    def stats(self) -> dict[str, int]:
        return dict(self._machine.stats) if self._machine is not None else {}

    def subscribe(
        self,
        on_join: Callback | None = None,
        on_leave: Callback | None = None,
        on_update: Callback | None = None,
    ) -> Subscription:
        """Call ``on_join(member)`` when a member joins (or comes back), ``on_leave(member)``
        when it leaves or is declared dead, ``on_update(member)`` when its addresses change."""
        sub = Subscription(on_join, on_leave, on_update, self)
        self._subscriptions.append(sub)
        return sub

    # --- updating -----------------------------------------------------------------------------

    def set_gateway_addrs(self, addrs: Sequence[str]) -> None:
        self._set_meta(addrs, self._tunnel_addrs)

    def set_tunnel_addrs(self, addrs: Sequence[str]) -> None:
        self._set_meta(self._gateway_addrs, addrs)

    def _set_meta(self, gateway: Sequence[str], tunnel: Sequence[str]) -> None:
        meta = encode_meta(self.server_id, self.replica_set, gateway, tunnel)
        if self._machine is not None:
            self._machine.set_meta(meta)  # raises MembershipError when too large
            self._flush()
        else:
            SwimMembership(self.server_id, "-", meta, config=self.config)
        self._meta, self._gateway_addrs, self._tunnel_addrs = meta, tuple(gateway), tuple(tunnel)
        if self._machine is not None:
            self._index(self._machine.self_info())

    # --- the driver ---------------------------------------------------------------------------

    async def _run(self) -> None:
        machine, loop, kick = self._machine, self._loop, self._kick
        assert machine is not None
        assert loop is not None
        assert kick is not None
        while True:
            machine.tick(loop.time())
            self._flush()
            deadline = machine.next_deadline()
            delay = 1.0 if deadline is None else max(0.0, deadline - loop.time())
            kick.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await kick.wait()

    def _on_packet(self, packet: pb.Packet) -> pb.Packet:
        machine, loop = self._machine, self._loop
        if machine is None or loop is None:
            return pb.Packet()
        reply = machine.receive(packet, loop.time())
        self._flush()
        return reply

    def _flush(self) -> list[asyncio.Task[None]]:
        machine, loop = self._machine, self._loop
        if machine is None or loop is None:
            return []
        sends = []
        for addr, packet in machine.take_outgoing():
            task = loop.create_task(self._call(addr, packet))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            sends.append(task)
        for event in machine.take_events():
            self._on_event(event)
        if self._kick is not None:
            self._kick.set()  # the next deadline may be earlier now
        return sends

    async def _call(self, addr: str, packet: pb.Packet) -> None:
        push_pull = any(m.HasField("PushPull") for m in packet.Messages)
        timeout = PUSH_PULL_TIMEOUT if push_pull else self.config.probe_interval
        try:
            reply = await self._stub(addr).Exchange(packet, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            log.debug("gossip: call to %s failed: %s", addr, exc.code().name)
            if exc.code() is not grpc.StatusCode.DEADLINE_EXCEEDED:
                self._failed(packet)  # refused, reset, or TLS refused: not just slow
            return
        except (ValueError, OSError) as exc:  # an address gRPC cannot parse or dial
            log.debug("gossip: call to %s failed: %s", addr, exc)
            self._failed(packet)
            return
        machine, loop = self._machine, self._loop
        if machine is not None and loop is not None:
            machine.receive_reply(reply, loop.time())
            self._flush()

    def _failed(self, packet: pb.Packet) -> None:
        machine, loop = self._machine, self._loop
        if machine is not None and loop is not None:
            machine.call_failed(packet, loop.time())
            self._flush()

    def _stub(self, addr: str) -> pb_grpc.GossipStub:
        entry = self._channels.get(addr)
        if entry is None:
            options = [
                ("grpc.max_receive_message_length", MAX_PACKET_BYTES),
                ("grpc.max_send_message_length", MAX_PACKET_BYTES),
                # A restarted peer must be reachable again within a probe or two, not after
                # gRPC's default reconnect back-off (up to 120 s).
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
            ]
            if self._tls is not None:
                creds = grpc.ssl_channel_credentials(
                    self._tls.ca_pem, self._tls.key_pem, self._tls.cert_pem
                )
                channel = grpc.aio.secure_channel(addr, creds, options=options)
            else:
                channel = grpc.aio.insecure_channel(addr, options=options)
            entry = (channel, pb_grpc.GossipStub(channel))  # type: ignore[no-untyped-call]
            self._channels[addr] = entry
        return entry[1]

    def _drop_channel(self, addr: str) -> None:
        entry = self._channels.pop(addr, None)
        if entry is not None and self._loop is not None:
            task = self._loop.create_task(entry[0].close())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # --- events -------------------------------------------------------------------------------

    def _index(self, info: MemberInfo) -> ClusterMember | None:
        member = _member(info)
        if member is not None:
            self._members[info.name] = member
            self._alive.clear()
        return member

    def _on_event(self, event: MemberEvent) -> None:
        info = event.member
        if event.kind in (EventKind.FAIL, EventKind.LEAVE, EventKind.REMOVE):
            gone = self._members.pop(info.name, None)
            self._alive.clear()
            self._drop_channel(info.addr)
            if gone is not None:
                log.info(
                    "gossip: member %s %s",
                    info.name,
                    "left"
                    if event.kind is EventKind.LEAVE
                    else "failed"
                    if event.kind is EventKind.FAIL
                    else "removed",
                )
                self._notify("on_leave", gone)
            return
        old = self._members.get(info.name)
        if old is not None and old.gossip_addr != info.addr:
            self._drop_channel(old.gossip_addr)
        member = self._index(info)
        if member is None:
            log.warning("gossip: member %s sent meta that is not its EdgeNode", info.name)
            return
        if event.kind is EventKind.JOIN or old is None:
            log.info("gossip: member %s joined (replica set %d)", info.name, member.replica_set)
            self._notify("on_join", member)
        elif old is not None and (
            old.gateway_addrs != member.gateway_addrs
            or old.tunnel_addrs != member.tunnel_addrs
            or old.gossip_addr != member.gossip_addr
        ):
            self._notify("on_update", member)

    def _notify(self, which: str, member: ClusterMember) -> None:
        for sub in list(self._subscriptions):
            callback = getattr(sub, which)
            if callback is None:
                continue
            try:
                result = callback(member)
                if asyncio.iscoroutine(result) and self._loop is not None:
                    task = self._loop.create_task(_logged(result, which))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            except Exception:
                log.exception("cluster %s callback %r failed", which, callback)


async def _logged(coro: Any, which: str) -> None:
    try:
        await coro
    except Exception:
        log.exception("cluster %s callback failed", which)


async def _resolve(seeds: Sequence[str]) -> list[str]:
    """HOST:PORT seeds as addresses; a name with several addresses gives several seeds. A
    name that does not resolve now is kept as it is (gRPC resolves it again on each try)."""
    loop = asyncio.get_running_loop()
    out: list[str] = []
    for seed in seeds:
        host, _, port = seed.rpartition(":")
        host = host.strip("[]")
        try:
            infos = await loop.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except (OSError, ValueError):
            out.append(seed)
            continue
        for *_, sockaddr in infos:
            ip = str(sockaddr[0])
            out.append(hostport(ip, int(port)))
    return list(dict.fromkeys(out))
