"""Calls between nodes: a handler on one node runs a request on a node of another replica set.

The caller picks an alive member of the replica set from the cluster membership and sends a
Go Rony ``TunnelMessage`` (SenderID, SenderReplicaSet, Store, Envelope) over the tunnel; the
callee runs it through the same dispatch pipeline as a gateway request, with kind TUNNEL
(``rony_internal`` methods are reachable this way only), and answers one TunnelMessage whose
Envelope is the reply, or a MessageContainer when the handler pushed several (Go Rony
panicked on that). An Error reply raises the ``rony.core.errors`` class of its code.

Cancellation: a caller that is cancelled (its own handler_timeout, its client gone) cancels
the remote request too (the tunnel sends a cancel frame). Go Rony's tunnel had a fixed 3 s
read deadline and no cancellation.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf.message import Message

from rony.core import (
    C_Error,
    C_MessageContainer,
    Kind,
    MessageContainer,
    MessageEnvelope,
    constructor_of,
    envelope,
    envelope_bytes,
    registry,
    unwrap,
)
from rony.core.errors import (
    InternalError,
    RequestTimeoutError,
    RonyError,
    UnavailableError,
    from_message,
)
from rony.core.pb.msg_pb2 import Error, KeyValue
from rony.server.pb.imsg_pb2 import TunnelMessage

if TYPE_CHECKING:
    from rony.server._edge import Edge
    from rony.server._tracing import Tracing
    from rony.server.cluster._cluster import ClusterMember
    from rony.server.tunnel import Peer

__all__ = [
    "TunnelConn",
    "call_remote",
    "remote_call",
    "serve_tunnel",
    "tunnel_message_bytes",
    "tunnel_message_of",
]

M = TypeVar("M", bound=Message)

_conn_ids = itertools.count(2_000_000_000)
# A member whose tunnel failed a call goes to the back of the line for this long (seconds),
# so calls do not keep waiting on a peer the gossip has not declared dead yet.
PENALTY = 10.0


class TunnelConn:
    """The Conn of a tunnel request: not persistent (replies are buffered and sent back as
    one TunnelMessage); its values are the request's Store key/values; ``client_ip`` is the
    calling node's address and ``peer`` its verified certificate name."""

    __slots__ = ("_address", "_conn_id", "_values", "peer")

    def __init__(self, peer: str, address: str, values: dict[str, Any]) -> None:
        self._conn_id = next(_conn_ids)
        self._address = address
        self._values = values  # the conn's own dict: callers pass a fresh one
        self.peer = peer

    @property
    def conn_id(self) -> int:
        return self._conn_id

    @property
    def client_ip(self) -> str:
        return self._address.rpartition(":")[0].strip("[]")

    @property
    def persistent(self) -> bool:
        return False

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._values[key] = value

    def send(self, env: MessageEnvelope) -> None:  # never called: the conn is not persistent
        raise RuntimeError("a tunnel conn is not persistent")


def _one_envelope(replies: Sequence[MessageEnvelope]) -> MessageEnvelope:
    if len(replies) == 1:
        return replies[0]
    return envelope(MessageContainer(Length=len(replies), Envelopes=list(replies)))


_SHORT_VARINTS = [bytes((n,)) for n in range(128)]


def _varint(n: int) -> bytes:
    if n < 128:
        return _SHORT_VARINTS[n]  # (a small envelope: most calls and replies)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_heads: dict[tuple[bytes, int], bytes] = {}


def _sender_head(sender_id: bytes, replica_set: int) -> bytes:
    """A TunnelMessage's SenderID and SenderReplicaSet fields, encoded as protobuf does
    (defaults left out), once per node."""
    head = _heads.get((sender_id, replica_set))
    if head is None:
        head = TunnelMessage(SenderID=sender_id, SenderReplicaSet=replica_set).SerializeToString()
        _heads[(sender_id, replica_set)] = head
    return head


def tunnel_message_bytes(
    sender_id: bytes, replica_set: int, env: MessageEnvelope, store: bytes = b""
) -> bytes:
    """The bytes of ``TunnelMessage(SenderID, SenderReplicaSet, Store, Envelope=env)`` as
    protobuf serializes it (fields in number order; ``store`` the Store field already encoded),
    without building the message and copying ``env`` into it: every remote call and every reply
    takes this path. tests/tunnel/test_wire.py checks it against ``SerializeToString``."""
    return tunnel_message_of(sender_id, replica_set, env.SerializeToString(), store)


def tunnel_message_of(sender_id: bytes, replica_set: int, body: bytes, store: bytes = b"") -> bytes:
    """``tunnel_message_bytes`` of an envelope already encoded (``body``): the usual call
    encodes its envelope straight to bytes (``envelope_bytes``), with no message built."""
    n = len(body)
    size = _SHORT_VARINTS[n] if n < 128 else _varint(n)
    return b"".join((_sender_head(sender_id, replica_set), store, b"\x22", size, body))


def serve_tunnel(edge: Edge, msg: TunnelMessage, peer: Peer) -> Coroutine[Any, Any, bytes]:
    """The tunnel's handler on the callee: dispatch the envelope as a TUNNEL request; the
    awaitable gives the encoded reply TunnelMessage."""
    values = {kv.Key: kv.Value for kv in msg.Store} if msg.Store else {}
    conn = TunnelConn(peer.name, peer.address, values)
    return _serve(edge, edge.dispatcher.dispatch(conn, msg.Envelope, kind=Kind.TUNNEL))


async def _serve(edge: Edge, dispatch: Coroutine[Any, Any, list[MessageEnvelope]]) -> bytes:
    replies = await dispatch
    env = replies[0] if len(replies) == 1 else _one_envelope(replies)
    return tunnel_message_bytes(edge._sender_id, edge.replica_set, env)


def _targets(edge: Edge, replica_set: int, server_id: str | None) -> Sequence[ClusterMember]:
    """Members to try, best first: the named one, or the alive members of the replica set
    in random order, those whose tunnel failed in the last ``PENALTY`` seconds last, and this
    node after the others (a local call needs no tunnel, but a busy replica set should not
    always land on the caller)."""
    cluster = edge.cluster
    if cluster is None:
        raise UnavailableError("TUNNEL", "this node runs no cluster (--gossip)")
    if server_id is not None:
        member = cluster.member_by_id(server_id)
        if member is None:
            raise UnavailableError("MEMBER", f"no live member {server_id!r}")
        return [member]
    alive = cluster.alive_by_replica_set(replica_set)
    if not alive:
        raise UnavailableError("REPLICA_SET", f"no live member of replica set {replica_set}")
    if len(alive) == 1:
        return alive
    start = random.randrange(len(alive))  # a random rotation: the load spreads
    members = list(alive[start:] + alive[:start])
    failed = edge._remote_failures
    if failed:
        now = asyncio.get_running_loop().time()
        for name, when in list(failed.items()):
            if now - when >= PENALTY:
                del failed[name]
    if failed or any(m.server_id == edge.server_id for m in members):

        def rank(m: ClusterMember) -> tuple[bool, bool]:
            return m.server_id in failed, m.server_id == edge.server_id

        members.sort(key=rank)  # stable: the rotation stays within each rank
    return members


async def remote_call(
    edge: Edge,
    attempts: int,
    retry_wait: float,
    replica_set: int,
    constructor: int,
    message: Message,
    response_class: type[M] | None,
    timeout: float | None,  # noqa: ASYNC109 - bounds the remote side too
    server_id: str | None,
    header: Mapping[str, str] | None,
    store: Mapping[str, str] | None,
) -> Any:
    """``Edge.execute_remote`` and ``try_execute_remote``: one coroutine, whose usual call
    (one try, on another node, no header, no store, the node not tracing) builds no envelope:
    the request goes straight to TunnelMessage bytes and the reply is decoded in place. Every
    other call takes ``call_remote`` (retries, a local member, headers and the trace context,
    the Store) and ``reply_of``; both ways give the same replies and the same errors."""
    limit = edge.settings.remote_timeout if timeout is None else timeout
    # Inside a request, its handler_timeout bounds the remote call too: the caller gets a
    # typed timeout when its own time is up (Go Rony's tunnel waited a fixed 3 s).
    dispatcher = edge.dispatcher
    deadline = dispatcher.deadline_of(asyncio.current_task())
    if deadline is not None:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise RequestTimeoutError("TUNNEL", "the request's handler_timeout has passed")
        limit = min(limit, left)
    tunnel = edge.tunnel
    calls = edge.remote_calls  # outcomes and round trips, for /metrics (rony.server._metrics)
    started = _monotonic()
    if (
        attempts <= 1
        and tunnel is not None
        and dispatcher.tracing is None
        and not (header or store)
    ):
        try:
            first = _targets(edge, replica_set, server_id)[0]
        except BaseException as exc:  # (no member alive: E02, counted as the tries would)
            calls.failed(exc)
            raise
        if first.tunnel_addrs and first.server_id != edge.server_id:
            # A correlation id, not a secret (as request_envelope).
            request_id = random.getrandbits(63) or 1
            body = envelope_bytes(constructor, request_id, message.SerializeToString())
            msg = tunnel_message_of(edge._sender_id, edge.replica_set, body)
            try:
                reply = await tunnel.call(first.tunnel_addrs[0], msg, timeout=limit)
            except (UnavailableError, RequestTimeoutError) as exc:
                edge._remote_failures[first.server_id] = asyncio.get_running_loop().time()
                calls.failed(exc)
                raise
            except BaseException as exc:
                calls.failed(exc)
                raise
            out = reply.Envelope
            if response_class is not None:
                expected = constructor_of(response_class)
                if out.Constructor == expected and expected != C_Error:
                    calls.answered(started, ())
                    return unwrap(out, response_class)  # (reply_of's answer, without its checks)
            replies = _replies(out)
            calls.answered(started, replies)
            return reply_of(replies, response_class)
    env = request_envelope(constructor, message, header)
    try:
        replies = await call_remote(
            edge,
            replica_set,
            env,
            timeout=limit,
            attempts=attempts,
            retry_wait=retry_wait,
            server_id=server_id,
            store=store,
        )
    except BaseException as exc:
        calls.failed(exc)
        raise
    calls.answered(started, replies)
    return reply_of(replies, response_class)


def call_remote(
    edge: Edge,
    replica_set: int,
    env: MessageEnvelope,
    *,
    timeout: float,
    attempts: int = 1,
    retry_wait: float = 0.0,
    server_id: str | None = None,
    store: Mapping[str, str] | None = None,
) -> Coroutine[Any, Any, list[MessageEnvelope]]:
    """Send ``env`` to a member of ``replica_set`` (or to ``server_id``) and return its
    replies. Up to ``attempts`` tries, each on the next member (round the list), ``retry_wait``
    seconds apart, while the tunnel fails (a member unreachable, dead mid-call, or silent past
    ``timeout``); an answer, even an Error, ends the tries. The request id stays the same.
    When the node traces, the call is a CLIENT span whose context ``env`` carries."""
    call = _call_remote(edge, replica_set, env, timeout, attempts, retry_wait, server_id, store)
    tracing = edge.dispatcher.tracing
    return call if tracing is None else _traced_call(tracing, edge, replica_set, env, call)


async def _traced_call(
    tracing: Tracing,
    edge: Edge,
    replica_set: int,
    env: MessageEnvelope,
    call: Coroutine[Any, Any, list[MessageEnvelope]],
) -> list[MessageEnvelope]:
    try:
        with tracing.call_span(edge.app, replica_set, env):  # (puts traceparent into env)
            return await call
    finally:
        call.close()  # (never started if the span failed: no "never awaited" warning)


async def _call_remote(
    edge: Edge,
    replica_set: int,
    env: MessageEnvelope,
    timeout: float,  # noqa: ASYNC109 - the tunnel call's own deadline
    attempts: int,
    retry_wait: float,
    server_id: str | None,
    store: Mapping[str, str] | None,
) -> list[MessageEnvelope]:
    members = _targets(edge, replica_set, server_id)
    kvs = b""
    if store:
        kvs = TunnelMessage(
            Store=[KeyValue(Key=k, Value=v) for k, v in store.items()]
        ).SerializeToString()
    msg = tunnel_message_bytes(edge._sender_id, edge.replica_set, env, kvs)
    first = members[0]
    tunnel = edge.tunnel
    if (
        attempts <= 1
        and tunnel is not None
        and first.tunnel_addrs
        and first.server_id != edge.server_id
    ):
        # The usual call: one try, on another node (the loop below, without its setup).
        try:
            reply = await tunnel.call(first.tunnel_addrs[0], msg, timeout=timeout)
        except (UnavailableError, RequestTimeoutError):
            edge._remote_failures[first.server_id] = asyncio.get_running_loop().time()
            raise
        return _replies(reply.Envelope)
    last: RonyError | None = None
    for i, member in enumerate(itertools.islice(itertools.cycle(members), max(1, attempts))):
        if i and retry_wait > 0:
            await asyncio.sleep(retry_wait)
        if member.server_id == edge.server_id:
            conn = TunnelConn(edge.server_id, "127.0.0.1:0", dict(store or {}))
            return await edge.dispatcher.dispatch(conn, env, kind=Kind.TUNNEL)
        if edge.tunnel is None:
            raise UnavailableError("TUNNEL", "this node runs no tunnel (--tunnel)")
        if not member.tunnel_addrs:
            last = UnavailableError("TUNNEL", f"member {member.server_id} has no tunnel")
            continue
        try:
            reply = await edge.tunnel.call(member.tunnel_addrs[0], msg, timeout=timeout)
        except (UnavailableError, RequestTimeoutError) as exc:  # the next member
            edge._remote_failures[member.server_id] = asyncio.get_running_loop().time()
            last = exc
            continue
        return _replies(reply.Envelope)
    assert last is not None
    raise last


def _replies(out: MessageEnvelope) -> list[MessageEnvelope]:
    """The envelopes of a reply: a MessageContainer's, or the one."""
    if out.Constructor == C_MessageContainer:
        return list(unwrap(out, MessageContainer).Envelopes)
    return [out]


def reply_of(replies: Sequence[MessageEnvelope], response_class: type[M] | None) -> Any:
    """The one reply of a remote call, decoded; an Error raises its class."""
    for env in replies:
        if env.Constructor == C_Error:
            raise from_message(unwrap(env, Error))
    if len(replies) != 1:
        raise InternalError("TUNNEL", f"expected one reply, got {len(replies)}")
    env = replies[0]
    if response_class is None:
        return unwrap(env)
    if env.Constructor != constructor_of(response_class):
        name = registry.name_of(env.Constructor)
        raise InternalError(
            "TUNNEL",
            f"the reply is {name or env.Constructor}, not the {response_class.__name__} expected",
        )
    return unwrap(env, response_class)


def request_envelope(
    constructor: int, message: Message, header: Mapping[str, str] | None
) -> MessageEnvelope:
    # A correlation id, not a secret: random's generator (secrets costs a system call).
    request_id = random.getrandbits(63) or 1
    return envelope(message, request_id, constructor=constructor, header=header or {})


_monotonic = time.monotonic
