"""Hostile or garbled gossip: any sequence of well-formed protobuf packets, with any field
values, leaves the state machine consistent and never raises (the gRPC layer has already
parsed the bytes; what is left to survive is nonsense in the fields)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rony.server.cluster._swim import ALIVE, DEAD, LEFT, SUSPECT, GossipConfig, SwimMembership
from rony.server.pb import gossip_pb2 as pb

names = st.sampled_from(["me", "b", "c", "d", "", "x" * 300])
addrs = st.sampled_from(["b:1", "c:1", "me:1", "", "[::1]:7946", "nonsense"])
incs = st.integers(0, 2**32 - 1)
seqs = st.integers(0, 2**32 - 1)
states = st.sampled_from([ALIVE, SUSPECT, DEAD, LEFT, 7])
metas = st.binary(max_size=600)

messages = st.one_of(
    st.builds(lambda s, n: pb.Message(Ping=pb.Ping(SeqNo=s, Node=n)), seqs, names),
    st.builds(
        lambda s, n, a, k: pb.Message(
            IndirectPing=pb.IndirectPing(SeqNo=s, Node=n, Addr=a, Nack=k)
        ),
        seqs,
        names,
        addrs,
        st.booleans(),
    ),
    st.builds(lambda s: pb.Message(Ack=pb.Ack(SeqNo=s)), seqs),
    st.builds(lambda s: pb.Message(Nack=pb.Nack(SeqNo=s)), seqs),
    st.builds(
        lambda i, n, a, m: pb.Message(Alive=pb.Alive(Incarnation=i, Node=n, Addr=a, Meta=m)),
        incs,
        names,
        addrs,
        metas,
    ),
    st.builds(
        lambda i, n, f: pb.Message(Suspect=pb.Suspect(Incarnation=i, Node=n, From=f)),
        incs,
        names,
        names,
    ),
    st.builds(
        lambda i, n, f: pb.Message(Dead=pb.Dead(Incarnation=i, Node=n, From=f)), incs, names, names
    ),
    st.builds(
        lambda j, ns: pb.Message(PushPull=pb.PushPull(Join=j, Nodes=ns)),
        st.booleans(),
        st.lists(
            st.builds(
                lambda n, a, m, i, s: pb.NodeState(Node=n, Addr=a, Meta=m, Incarnation=i, State=s),
                names,
                addrs,
                metas,
                incs,
                states,
            ),
            max_size=5,
        ),
    ),
    st.just(pb.Message()),  # no kind set at all
)
packets = st.builds(
    lambda c, f, fa, ms: pb.Packet(Cluster=c, From=f, FromAddr=fa, Messages=ms),
    st.sampled_from(["rony", "rony", "other"]),
    names,
    addrs,
    st.lists(messages, max_size=6),
)
steps = st.lists(
    st.tuples(st.sampled_from(["call", "reply", "tick", "failed"]), packets, st.floats(0, 5)),
    max_size=40,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_nonsense_never_breaks_the_machine(script: list[tuple[str, pb.Packet, float]]) -> None:
    m = SwimMembership("me", "me:1", b"meta", config=GossipConfig(max_nodes=50), incarnation=10)
    m.start(0.0)
    now = 0.0
    for action, packet, dt in script:
        now += dt
        if action == "call":
            reply = m.receive(packet, now)
            assert isinstance(reply, pb.Packet)
        elif action == "reply":
            m.receive_reply(packet, now)
        elif action == "failed":
            m.call_failed(packet, now)
        else:
            m.tick(now)
        m.take_outgoing()
        m.take_events()
        members = m.members()
        assert members[0].name == "me"
        assert members[0].state == ALIVE
        assert len(members) == m.num_alive()  # the counter matches the table
        assert all(len(x.meta) <= 512 for x in members)
        assert all(0 < len(x.name) <= 256 for x in members)
        deadline = m.next_deadline()
        assert deadline is not None
        assert deadline == deadline  # not NaN
