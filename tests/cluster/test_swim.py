"""The gossip membership state machine, alone: a manual clock and an in-memory network.

Each scenario is deterministic (seeded) and runs minutes of simulated time in well under a
second or two of real time.
"""

from __future__ import annotations

import math

import pytest

from rony.server.cluster._swim import (
    ALIVE,
    LEFT,
    SUSPECT,
    EventKind,
    GossipConfig,
    MembershipError,
    SwimMembership,
    _Suspicion,
    suspicion_timeout,
)
from rony.server.cluster.sim import SimNetwork
from rony.server.pb import gossip_pb2 as pb


def cluster(n: int, *, seed: int = 1, **kw: object) -> SimNetwork:
    net = SimNetwork(seed=seed, **kw)  # type: ignore[arg-type]
    for i in range(n):
        net.add(f"n{i}", join="n0" if i else None)
        net.run_for(0.01)
    assert net.run_until(net.now + 60, stop=net.converged), "the cluster never converged"
    return net


def fails(net: SimNetwork, since: float = 0.0) -> list[tuple[str, str]]:
    """(observer, member) for every FAIL event after ``since``."""
    return [
        (node.name, ev.member.name)
        for node in net.nodes.values()
        for t, ev in node.events
        if ev.kind is EventKind.FAIL and t >= since
    ]


# --- formulas -----------------------------------------------------------------------------------


def test_suspicion_timeout_is_memberlists() -> None:
    assert suspicion_timeout(4, 1, 1.0) == 4.0  # max(1, log10 n) never below 1
    assert suspicion_timeout(4, 10, 1.0) == 4.0
    assert suspicion_timeout(4, 100, 1.0) == 8.0
    assert suspicion_timeout(4, 10_000, 1.0) == 16.0


def test_suspicion_timer_falls_with_independent_confirmations() -> None:
    s = _Suspicion(start=0.0, k=3, min_t=2.0, max_t=30.0, confirmed={"accuser"})
    assert s.deadline == 30.0
    assert not s.confirm("accuser")  # the first accuser is no confirmation
    expected = [30 - math.log(c + 1) / math.log(4) * 28 for c in (1, 2, 3)]
    for who, want in zip(("a", "b", "c"), expected, strict=True):
        assert s.confirm(who)
        assert s.deadline == pytest.approx(want)
    assert s.deadline == 2.0
    assert not s.confirm("d")  # no more than k confirmations count
    assert not s.confirm("a")
    assert _Suspicion(0.0, 0, 2.0, 12.0, {"x"}).deadline == 2.0  # k = 0: the minimum


def test_config_refuses_nonsense() -> None:
    with pytest.raises(MembershipError, match="probe_timeout"):
        GossipConfig(probe_timeout=2.0)
    with pytest.raises(MembershipError, match="gossip_nodes"):
        GossipConfig(gossip_nodes=0)
    with pytest.raises(MembershipError, match="probe_interval"):
        GossipConfig(probe_interval=float("nan"))


# --- one machine, by hand -----------------------------------------------------------------------


def packet(src: str, *msgs: pb.Message, label: str = "rony") -> pb.Packet:
    return pb.Packet(Cluster=label, From=src, FromAddr=f"{src}:1", Messages=list(msgs))


def test_ping_is_acked_only_for_this_node_and_this_cluster() -> None:
    m = SwimMembership("a", "a:1")
    m.start(0.0)
    ping = pb.Message(Ping=pb.Ping(SeqNo=7, Node="a"))
    acks = [x for x in m.receive(packet("b", ping), 0.0).Messages if x.HasField("Ack")]
    assert [x.Ack.SeqNo for x in acks] == [7]
    other = pb.Message(Ping=pb.Ping(SeqNo=8, Node="someone-else"))
    assert not [x for x in m.receive(packet("b", other), 0.0).Messages if x.HasField("Ack")]
    assert not m.receive(packet("b", ping, label="other-cluster"), 0.0).Messages
    assert m.stats["packets_dropped"] == 1


def test_meta_over_the_limit_is_refused_with_a_clear_error() -> None:
    with pytest.raises(MembershipError, match="513 bytes, over the limit of 512"):
        SwimMembership("a", "a:1", b"x" * 513)
    m = SwimMembership("a", "a:1", b"x" * 512)
    with pytest.raises(MembershipError, match="max_meta_size"):
        m.set_meta(b"y" * 600)
    assert m.meta == b"x" * 512  # unchanged


def test_a_push_pull_over_max_nodes_is_dropped() -> None:
    m = SwimMembership("a", "a:1", config=GossipConfig(max_nodes=3))
    m.start(0.0)
    nodes = [pb.NodeState(Node=f"x{i}", Addr=f"x{i}:1", State=ALIVE) for i in range(4)]
    m.receive(packet("b", pb.Message(PushPull=pb.PushPull(Nodes=nodes))), 0.0)
    assert [x.name for x in m.members()] == ["a"]
    assert m.stats["packets_dropped"] == 1


def test_a_node_refutes_its_own_suspicion_and_death() -> None:
    m = SwimMembership("a", "a:1", incarnation=5)
    m.start(0.0)
    m.receive(packet("b", pb.Message(Suspect=pb.Suspect(Incarnation=5, Node="a", From="b"))), 0)
    assert m.incarnation == 6
    m.receive(packet("b", pb.Message(Dead=pb.Dead(Incarnation=9, Node="a", From="b"))), 0.0)
    assert m.incarnation == 10
    assert m.stats["refutes"] == 2
    assert m.awareness == 2  # Lifeguard: being accused is a sign of our own ill health


# --- clusters -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_200_nodes_converge_and_stay_converged() -> None:
    net = cluster(200, seed=3)
    assert net.now < 30, f"converged only after {net.now:.1f} s"
    net.run_for(30)
    assert net.converged()
    assert not fails(net)


def test_a_crashed_node_is_declared_dead_by_all_then_removed() -> None:
    net = cluster(10)
    net.run_for(5)
    net.crash("n4")
    t0 = net.now
    assert net.run_until(t0 + 30, stop=lambda: len(net.declared_dead("n4")) == 9)
    assert net.now - t0 < 15  # LAN defaults, n = 10: about 2 s to suspect + 4 s of suspicion
    net.run_for(40)  # gossip_to_the_dead_time (30 s) later, the entry is gone
    for node in net.live():
        assert node.machine.member("n4") is None
        kinds = [ev.kind for _, ev in node.events if ev.member.name == "n4"]
        assert EventKind.FAIL in kinds
        assert kinds[-1] is EventKind.REMOVE
    assert sorted(set(fails(net))) == sorted((n.name, "n4") for n in net.live())


def test_a_starved_node_is_not_declared_dead_and_does_not_kill_others() -> None:
    """Lifeguard: for 5 s one node does everything 1.5 s late (3 x the probe timeout)."""
    net = cluster(10, seed=5)
    net.run_for(5)
    t0 = net.now
    net.set_lag("n3", 1.5)
    net.run_for(5)
    net.set_lag("n3", 0.0)
    net.run_for(60)
    assert not fails(net, since=t0)
    assert net.converged()
    assert net.nodes["n3"].machine.stats["probe_failures"] > 0  # it did miss its acks


def test_a_paused_node_is_not_dropped() -> None:
    """SIGSTOP for 3 s, then SIGCONT."""
    net = cluster(5, seed=7)
    net.run_for(5)
    t0 = net.now
    net.pause("n2")
    net.run_for(3)
    net.resume("n2")
    net.run_for(30)
    assert not fails(net, since=t0)
    assert net.converged()


@pytest.mark.parametrize("seed", [11, 12])
def test_packet_loss_causes_no_false_deaths(seed: int) -> None:
    net = cluster(20, seed=seed, loss=0.05)
    t0 = net.now
    net.run_for(120)
    assert not fails(net, since=t0)
    assert net.converged()


def test_a_node_with_a_slow_clock_still_detects_and_is_not_killed() -> None:
    net = SimNetwork(seed=9)
    for i in range(6):
        net.add(f"n{i}", join="n0" if i else None, rate=0.5 if i == 2 else 1.0)
        net.run_for(0.01)
    assert net.run_until(60, stop=net.converged)
    t0 = net.now
    net.run_for(30)
    assert not fails(net, since=t0)
    net.crash("n5")
    assert net.run_until(net.now + 60, stop=lambda: len(net.declared_dead("n5")) == 5)
    assert ("n2", "n5") in fails(net)


def test_a_partition_heals_by_itself() -> None:
    net = cluster(10, seed=13)
    a = [f"n{i}" for i in range(5)]
    b = [f"n{i}" for i in range(5, 10)]
    net.partition(a, b)
    t0 = net.now
    net.run_for(60)  # each half declares the other dead, then removes it (30 s)
    assert all(set(net.view(x)) == set(a) for x in a)
    assert all(set(net.view(x)) == set(b) for x in b)
    assert all(net.nodes[x].machine.member("n9") is None for x in a)  # removed, not just dead
    net.heal()
    assert net.run_until(net.now + 60, stop=net.converged), "the halves never found each other"
    assert net.now - t0 < 120


@pytest.mark.parametrize("incarnation", ["clock", "zero"])
def test_same_name_rejoins_with_a_new_address(incarnation: str) -> None:
    """A node restarts under the same name at a new address, either with a clock-based
    incarnation (outranks at once) or from zero (learns it is dead, refutes)."""
    net = cluster(6, seed=17)
    old_addr = net.nodes["n4"].addr
    net.crash("n4")
    assert net.run_until(net.now + 30, stop=lambda: len(net.declared_dead("n4")) == 5)
    if incarnation == "clock":
        node = net.restart("n4", join="n0")
    else:
        net.nodes["n4"].up = False
        node = net.add("n4", join="n0", incarnation=0)
    assert node.addr != old_addr
    assert net.run_until(net.now + 30, stop=net.converged)
    for other in net.live():
        info = other.machine.member("n4")
        assert info is not None
        assert (info.addr, info.state) == (node.addr, ALIVE)


def test_a_leaving_node_is_seen_left_fast_and_never_failed() -> None:
    net = cluster(8, seed=19)
    net.run_for(3)
    t0 = net.now
    net.leave("n6")
    net.run_for(1.0)
    for node in net.live():
        if node.name == "n6":
            continue
        info = node.machine.member("n6")
        assert info is not None
        assert info.state == LEFT, node.name
    net.crash("n6")  # then the process exits
    net.run_for(40)
    assert not fails(net, since=t0)
    assert all(n.machine.member("n6") is None for n in net.live() if n.name != "n6")


def test_meta_updates_are_gossiped() -> None:
    net = cluster(8, seed=23)
    node = net.nodes["n3"]
    node.machine.set_meta(b"new meta")
    net.run_for(2)
    for other in net.live():
        info = other.machine.member("n3")
        assert info is not None
        assert info.meta == b"new meta"
        if other.name != "n3":
            assert EventKind.UPDATE in [e.kind for _, e in other.events if e.member.name == "n3"]


def test_suspects_are_told_first() -> None:
    """Lifeguard's buddy system: a probe of a suspect carries the suspicion, so a node that
    missed the gossip (here: paused through it) refutes as soon as it is probed."""
    net = cluster(5, seed=29)
    net.pause("n1")
    t0 = net.now
    assert net.run_until(t0 + 10, stop=lambda: len(net.suspected_by("n1")) > 0)
    net.resume("n1")
    assert net.run_until(net.now + 5, stop=lambda: not net.suspected_by("n1"))
    assert net.nodes["n1"].machine.stats["refutes"] >= 1
    assert not fails(net, since=t0)
    assert SUSPECT not in net.view("n0").values()


def test_a_refused_call_moves_the_probe_on_at_once() -> None:
    """Over TCP a refusal is news: the indirect checks go out now, a relay nacks now, and the
    probe fails as soon as every relay has nacked (not at the end of its interval)."""
    m = SwimMembership("a", "a:1", config=GossipConfig(indirect_checks=2))
    m.start(0.0)
    states = [pb.NodeState(Node=n, Addr=f"{n}:1", State=ALIVE) for n in ("b", "c", "d")]
    m.receive(packet("b", pb.Message(PushPull=pb.PushPull(Nodes=states))), 0.0)
    m.take_outgoing()
    m.tick(10.0)  # the first probe
    (addr, ping), *_ = [(a, p) for a, p in m.take_outgoing() if p.Messages[0].HasField("Ping")]
    target = addr.removesuffix(":1")
    m.call_failed(ping, 10.01)
    relayed = [(a, p) for a, p in m.take_outgoing() if p.Messages[0].HasField("IndirectPing")]
    assert len(relayed) == 2
    assert target not in {a.removesuffix(":1") for a, _ in relayed}
    seq = ping.Messages[0].Ping.SeqNo
    for relay, _ in relayed:
        nack = pb.Message(Nack=pb.Nack(SeqNo=seq))
        m.receive(packet(relay.removesuffix(":1"), nack), 10.02)
    info = m.member(target)
    assert info is not None
    assert info.state == SUSPECT  # at 10.02 s, not at the probe's end (11 s)
    assert m.awareness == 0  # every relay answered: nothing wrong with us

    relay = SwimMembership("r", "r:1")
    relay.start(0.0)
    ask = pb.Message(IndirectPing=pb.IndirectPing(SeqNo=5, Node="t", Addr="t:1", Nack=True))
    relay.receive(packet("a", ask), 0.0)
    ((to, out),) = relay.take_outgoing()
    assert to == "t:1"
    relay.call_failed(out, 0.01)
    ((back, nack_packet),) = relay.take_outgoing()
    assert back == "a:1"
    assert [x.Nack.SeqNo for x in nack_packet.Messages if x.HasField("Nack")] == [5]


def test_a_stale_accusation_gets_the_current_incarnation_back() -> None:
    """An accuser that missed our refutation (gossiped only a few times) is told directly,
    in the reply to its (buddy) ping: else its suspicion timer runs out on a live node."""
    m = SwimMembership("a", "a:1", incarnation=6)
    m.start(0.0)
    stale = pb.Message(Suspect=pb.Suspect(Incarnation=5, Node="a", From="b"))
    ping = pb.Message(Ping=pb.Ping(SeqNo=1, Node="a"))
    reply = m.receive(packet("b", ping, stale), 0.0)
    alive = [x.Alive for x in reply.Messages if x.HasField("Alive") and x.Alive.Node == "a"]
    assert alive
    assert {x.Incarnation for x in alive} == {6}
    assert m.incarnation == 6  # no new refutation for old news
    m.receive_reply(packet("c", pb.Message(Dead=pb.Dead(Incarnation=2, Node="a", From="c"))), 0)
    sent = [(addr, x.Alive.Incarnation) for addr, p in m.take_outgoing() for x in p.Messages]
    assert ("c:1", 6) in sent
