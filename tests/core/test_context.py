"""Conn ⊃ DispatchCtx ⊃ RequestCtx, on the in-memory conn of rony.core.testing."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from rony.core import (
    C_Error,
    C_Ping,
    C_Pong,
    C_Redirect,
    Conn,
    DispatchCtx,
    Edge,
    Error,
    Kind,
    MessageEnvelope,
    Ping,
    Pong,
    Redirect,
    RedirectReason,
    RequestCtx,
    decode_container,
    encode_envelope_json,
    errors,
    message_id,
    unwrap,
)
from rony.core.testing import (
    MemoryConn,
    build_container,
    build_request,
    raise_for_error,
    reply_message,
)


class FakeServices:
    """Just enough of a server for RequestCtx: members per replica set, recorded calls."""

    def __init__(self, members: dict[int, list[Edge]]) -> None:
        self._members = members
        self.asked: list[int | None] = []

    @property
    def server_id(self) -> str:
        return "node-1"

    @property
    def replica_set(self) -> int:
        return 1

    def members(self, replica_set: int | None = None) -> Sequence[Edge]:
        self.asked.append(replica_set)
        return self._members.get(self.replica_set if replica_set is None else replica_set, [])

    def push(self, conn_id: int, env: MessageEnvelope) -> bool:
        return False


EDGES = {
    7: [
        Edge(ReplicaSet=7, ServerID="a", HostPorts=["10.0.0.1:80"]),
        Edge(ReplicaSet=7, ServerID="b", HostPorts=["10.0.0.2:80", "[::1]:80"]),
    ]
}


def request(
    conn: MemoryConn,
    env: MessageEnvelope | None = None,
    *,
    kind: Kind = Kind.GATEWAY,
    services: FakeServices | None = None,
) -> RequestCtx:
    dispatch = DispatchCtx(conn, kind, server_id="node-1", services=services)
    return dispatch.new_request(env if env is not None else build_request(Ping(ID=5), 42))


def test_memory_conn_is_a_conn() -> None:
    conn = MemoryConn(values={"user": "u1"})
    assert isinstance(conn, Conn)
    assert conn.get("user") == "u1"
    assert conn.get("nope", 3) == 3
    conn.closed = True
    with pytest.raises(ConnectionError):
        conn.send(MessageEnvelope())


def test_identity_and_request() -> None:
    conn = MemoryConn(conn_id=99, client_ip="10.1.2.3")
    env = build_request(Ping(ID=5), 42, header={"lang": "en"})
    ctx = request(conn, env)
    assert (ctx.request_id, ctx.constructor, ctx.conn_id) == (42, C_Ping, 99)
    assert ctx.conn is conn
    assert ctx.conn.client_ip == "10.1.2.3"
    assert (ctx.kind, ctx.server_id) == (Kind.GATEWAY, "node-1")
    assert ctx.header == {"lang": "en"}
    assert ctx.message(Ping) == Ping(ID=5)
    with pytest.raises(errors.MalformedError):
        request(conn, MessageEnvelope(Constructor=C_Ping, Message=b"\xff")).message(Ping)


def test_persistent_conn_sends_pushes_at_once() -> None:
    conn = MemoryConn(persistent=True)
    ctx = request(conn)
    ctx.push_message(Pong(ID=5))
    assert len(conn.sent) == 1  # before the handler finishes
    ctx.push_message(Pong(ID=6))
    assert [unwrap(e) for e in conn.sent] == [Pong(ID=5), Pong(ID=6)]
    assert all((e.RequestID, e.Constructor) == (42, C_Pong) for e in conn.sent)
    assert ctx.dispatch.buffer == []
    assert not ctx.stopped


@pytest.mark.parametrize(
    ("persistent", "kind"), [(False, Kind.GATEWAY), (True, Kind.TUNNEL), (False, Kind.TUNNEL)]
)
def test_non_persistent_or_tunnel_pushes_are_buffered(persistent: bool, kind: Kind) -> None:
    conn = MemoryConn(persistent=persistent)
    ctx = request(conn, kind=kind)
    ctx.push_message(Pong(ID=5))
    ctx.push_custom_message(0, Pong(ID=6), constructor=message_id("Custom"), header={"k": "v"})
    assert conn.sent == []
    out = ctx.dispatch.drain()
    assert [(e.RequestID, e.Constructor) for e in out] == [(42, C_Pong), (0, message_id("Custom"))]
    assert unwrap(out[1], Pong) == Pong(ID=6)
    assert out[1].Header[0].Key == "k"
    assert ctx.dispatch.drain() == []


def test_push_error_stops_and_carries_request_id() -> None:
    conn = MemoryConn()
    ctx = request(conn)
    err = errors.AccessError("USER", "denied")
    ctx.push_error(err)
    assert ctx.stopped
    assert ctx.error is err
    [reply] = conn.sent
    assert (reply.RequestID, reply.Constructor) == (42, C_Error)
    with pytest.raises(errors.AccessError) as info:
        reply_message(reply)
    assert info.value == err
    with pytest.raises(errors.AccessError):
        raise_for_error(reply)


def test_push_custom_error_and_return_error() -> None:
    conn = MemoryConn()
    ctx = request(conn)
    ctx.push_custom_error("E02", "ITEM", "gone")
    assert ctx.stopped
    assert isinstance(ctx.error, errors.UnavailableError)
    ctx2 = request(conn, build_request(Ping(), 43))
    ctx2.return_error(errors.BusyError())
    assert ctx2.stopped
    assert [e.RequestID for e in conn.sent] == [42, 43]
    assert [unwrap(e, Error).Code for e in conn.sent] == ["E02", "E09"]


def test_return_message_pushes_and_stops() -> None:
    conn = MemoryConn()
    ctx = request(conn)
    ctx.return_message(Pong(ID=1))
    assert ctx.stopped
    assert ctx.error is None
    assert reply_message(conn.sent[0]) == Pong(ID=1)
    raise_for_error(conn.sent[0])  # not an error: no exception


@pytest.mark.parametrize(
    ("method", "reason"),
    [
        ("push_redirect_session", RedirectReason.ReplicaSetSession),
        ("push_redirect_request", RedirectReason.ReplicaSetRequest),
    ],
)
def test_redirects_list_the_members_of_the_replica_set(method: str, reason: RedirectReason) -> None:
    conn = MemoryConn()
    services = FakeServices(EDGES)
    ctx = request(conn, services=services)
    getattr(ctx, method)(7)
    assert services.asked == [7]
    assert ctx.stopped
    [reply] = conn.sent
    assert (reply.RequestID, reply.Constructor) == (42, C_Redirect)
    redirect = unwrap(reply, Redirect)
    assert redirect.Reason == reason
    assert list(redirect.Edges) == EDGES[7]
    assert redirect.WaitInSec == 0


def test_redirect_needs_a_server() -> None:
    ctx = request(MemoryConn())
    with pytest.raises(RuntimeError, match="not attached"):
        ctx.push_redirect_session(7)
    assert not ctx.stopped


def test_key_values_are_shared_by_the_dispatch() -> None:
    conn = MemoryConn(values={"conn-key": "c"})
    container = build_container(build_request(Ping(ID=1), 1), build_request(Ping(ID=2), 2))
    dispatch = DispatchCtx(conn)
    first, second = (dispatch.new_request(e) for e in decode_container(container).Envelopes)
    assert first.dispatch is second.dispatch is dispatch
    first.set("user", "u1")
    assert second.get("user") == "u1"
    assert dict(second) == {"user": "u1"}
    assert second.get("conn-key") is None  # per-conn values live on the conn
    assert first.conn.get("conn-key") == "c"
    other = DispatchCtx(conn).new_request(build_request(Ping(), 3))
    assert other.get("user") is None  # not shared across dispatches


def test_next_can_go_releases_once() -> None:
    ctx = request(MemoryConn())
    ctx.next_can_go()  # no callback set: nothing happens
    calls: list[int] = []
    ctx.on_release(lambda: calls.append(1))
    ctx.next_can_go()
    ctx.next_can_go()
    assert calls == [1]
    ctx.on_release(None)
    ctx.next_can_go()
    assert calls == [1]


def test_json_request_gets_json_replies() -> None:
    conn = MemoryConn()
    services = FakeServices(EDGES)
    env = build_request(Ping(ID=5), 42, json_encoded=True)
    ctx = request(conn, env, services=services)
    assert ctx.message(Ping) == Ping(ID=5)
    ctx.push_message(Pong(ID=5))
    ctx.push_error(errors.InvalidError("ID"))
    ctx.push_redirect_request(7)
    assert [e.JsonEncoded for e in conn.sent] == [True, True, True]
    assert conn.sent[0].Message == b'{"ID": "5"}'
    assert unwrap(conn.sent[0]) == Pong(ID=5)
    with pytest.raises(errors.InvalidError):
        reply_message(conn.sent[1])
    assert list(unwrap(conn.sent[2], Redirect).Edges) == EDGES[7]
    for reply in conn.sent:
        assert b'"requestId":42' in encode_envelope_json(reply)


def test_binary_request_gets_binary_replies() -> None:
    conn = MemoryConn()
    ctx = request(conn)
    ctx.push_message(Pong(ID=5))
    ctx.push_error(errors.InvalidError())
    assert [e.JsonEncoded for e in conn.sent] == [False, False]
    assert Pong.FromString(conn.sent[0].Message) == Pong(ID=5)


def test_push_envelope_is_delivered_as_is() -> None:
    conn = MemoryConn(persistent=False)
    ctx = request(conn)
    env = build_request(Pong(ID=1), 77)
    ctx.push_envelope(env)
    assert ctx.dispatch.drain() == [env]
