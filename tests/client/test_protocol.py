"""The client's sans-I/O core, with plain objects and a manual clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rony.client import ClientSettings, errors, reply_message
from rony.client._protocol import (
    Backoff,
    ClientCore,
    Done,
    Exchange,
    Fail,
    Pending,
    PushQueue,
    RequestIds,
    Routing,
    Send,
    Wait,
    decode_frame,
    match_http_replies,
    normalize_url,
)
from rony.core import (
    C_MessageContainer,
    C_Ping,
    C_Pong,
    Edge,
    KeyValue,
    Limits,
    MessageEnvelope,
    Ping,
    Pong,
    Redirect,
    RedirectReason,
    container_envelope,
    envelope,
)
from rony.core import errors as rony_errors

SEEDS = ["ws://a:1", "ws://b:2"]


def core(urls: list[str] | str = SEEDS, **settings: object) -> ClientCore:
    s = ClientSettings(**{"backoff_jitter": 0.0, **settings})  # type: ignore[arg-type]
    return ClientCore(urls, settings=s, rng=random.Random(7))


def ping_exchange(c: ClientCore, now: float = 0.0, **kw: object) -> Exchange:
    return c.exchange(c.request(C_Ping, Ping(ID=1)), now, **kw)  # type: ignore[arg-type]


def redirect_env(
    rid: int, rs: int, hostports: list[str], reason: int, wait: int = 0
) -> MessageEnvelope:
    msg = Redirect(
        Reason=reason,  # type: ignore[arg-type]
        Edges=[Edge(ReplicaSet=rs, ServerID=f"n{rs}", HostPorts=hostports)],
        WaitInSec=wait,
    )
    return envelope(msg, rid)


# --- small parts ---------------------------------------------------------------------------------


def test_backoff_grows_caps_and_jitters_within_bounds() -> None:
    b = Backoff(0.1, 1.0, 0.0)
    assert [b.delay(n) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert b.delay(10_000) == 1.0  # no overflow
    j = Backoff(0.1, 1.0, 0.5, random.Random(1))
    samples = [j.delay(3) for _ in range(200)]
    assert all(0.4 <= d <= 0.8 for d in samples)
    assert len(set(samples)) > 100  # really random


def test_request_ids_are_unique_nonzero_and_wrap_past_zero() -> None:
    ids = RequestIds(start=2**64 - 2)
    got = [ids.next() for _ in range(4)]
    assert got == [2**64 - 2, 2**64 - 1, 1, 2]
    r = RequestIds(random.Random(3))
    seq = [r.next() for _ in range(1000)]
    assert len(set(seq)) == 1000
    assert 0 not in seq


@pytest.mark.parametrize(
    ("url", "transport", "expected"),
    [
        ("127.0.0.1:80", "ws", "ws://127.0.0.1:80/"),
        ("http://h:1", "ws", "ws://h:1/"),
        ("https://h:1/x?y=1", "ws", "wss://h:1/x?y=1"),
        ("ws://h:1/rpc", "http", "http://h:1/rpc"),
        ("wss://h", "http", "https://h/"),
        ("[::1]:9", "http", "http://[::1]:9/"),
    ],
)
def test_normalize_url(url: str, transport: str, expected: str) -> None:
    assert normalize_url(url, transport) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "ftp://h:1", "ws://:1", "ws://h:99999", "ws://h:x"])
def test_normalize_url_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        normalize_url(bad, "ws")


def test_decode_frame_unpacks_containers_and_types_failures() -> None:
    a = envelope(Pong(ID=1), 5)
    b = envelope(Pong(ID=2), 6)
    assert decode_frame(a.SerializeToString(), Limits()) == [a]
    assert decode_frame(container_envelope([a, b]).SerializeToString(), Limits()) == [a, b]
    assert decode_frame(b"", Limits()) == []
    with pytest.raises(errors.DecodeError):
        decode_frame(b"\xff\xff\xff", Limits())
    broken = MessageEnvelope(Constructor=C_MessageContainer, Message=b"\xff\xff")
    with pytest.raises(errors.DecodeError):
        decode_frame(broken.SerializeToString(), Limits())
    with pytest.raises(errors.FrameTooLarge):
        decode_frame(b"x" * 65, Limits(max_message_size=64))
    # past Limits._unchecked_size the checked decoder reads it: same envelopes, same errors
    long = MessageEnvelope(Constructor=C_Pong, RequestID=7, Message=b"m" * 300)
    assert len(long.SerializeToString()) > Limits()._unchecked_size
    assert decode_frame(long.SerializeToString(), Limits()) == [long]
    assert decode_frame(bytearray(a.SerializeToString()), Limits()) == [a]
    with pytest.raises(errors.DecodeError):
        decode_frame(b"\xff" * 300, Limits())
    many = container_envelope([a] * 3).SerializeToString()
    with pytest.raises(errors.DecodeError, match="max_container_length"):
        decode_frame(many, Limits(max_container_length=2))
    text = '{"requestId":"5","cmd":"Pong","message":{"ID":"3"}}'
    (env,) = decode_frame(text, Limits())
    assert env.RequestID == 5
    assert env.JsonEncoded
    assert reply_message(env, Pong) == Pong(ID=3)


def test_pending_matches_loses_per_link_and_drops_late_replies() -> None:
    p: Pending[str] = Pending(late_memory=2)
    link_a, link_b = object(), object()
    p.add(1, link_a, "w1")
    p.add(2, link_b, "w2")
    p.add(3, link_a, "w3")
    with pytest.raises(ValueError, match="in flight"):
        p.add(1, link_b, "dup")
    assert p.resolve(2) == "w2"
    assert p.resolve(2) is None
    assert sorted(p.lose(link_a)) == ["w1", "w3"]
    assert len(p) == 0
    p.add(4, link_a, "w4")
    p.discard(4, abandoned=True)
    assert p.is_late(4)
    assert p.late_replies == 1
    assert not p.is_late(99)
    for rid in (5, 6, 7):
        p.add(rid, link_a, "x")
        p.discard(rid, abandoned=True)
    assert not p.is_late(4)  # forgotten: memory is bounded
    p.add(8, link_a, "w8")
    p.discard(8)  # not abandoned (answered or failed): not remembered
    assert not p.is_late(8)


def test_push_queue_drops_oldest_when_full() -> None:
    q: PushQueue[int] = PushQueue(2)
    assert q.put(1)
    assert q.put(2)
    assert not q.put(3)
    assert q.dropped == 1
    assert len(q) == 2
    assert [q.get(), q.get()] == [2, 3]
    assert not q


def test_routing_failover_penalty_and_replica_sets() -> None:
    r = Routing(["a:1", "b:2", "a:1"], "ws", Backoff(1.0, 8.0, 0.0))
    assert r.seeds == ["ws://a:1/", "ws://b:2/"]
    assert r.pick(None, 0.0) == ("ws://a:1/", 0.0)
    assert r.failed("ws://a:1/", 0.0) == 1.0
    assert r.pick(None, 0.5) == ("ws://b:2/", 0.0)  # failover
    r.failed("ws://b:2/", 0.5)
    assert r.pick(None, 0.6) == ("ws://a:1/", pytest.approx(0.4))  # both down: wait
    assert r.pick(None, 1.0) == ("ws://a:1/", 0.0)  # penalty over
    assert r.failed("ws://a:1/", 1.0) == 2.0  # second failure: longer
    r.succeeded("ws://a:1/")
    assert r.pick(None, 1.1) == ("ws://a:1/", 0.0)
    r.learn([Edge(ReplicaSet=3, ServerID="x", HostPorts=["c:3", "ws://d:4"])])
    assert r.knows(3)
    assert not r.knows(4)
    assert r.candidates(3) == ["ws://c:3/", "ws://d:4/"]
    assert r.candidates(4) == r.seeds  # unknown replica set: the seeds
    r.session_replica_set = 3
    assert r.candidates(None) == ["ws://c:3/", "ws://d:4/"]
    assert r.server_ids["ws://c:3/"] == "x"
    with pytest.raises(ValueError, match="URL"):
        Routing([], "ws", Backoff(1, 1, 0))


# --- the exchange --------------------------------------------------------------------------------


def test_exchange_happy_path() -> None:
    c = core()
    ex = ping_exchange(c)
    act = ex.next(0.0)
    assert act == Send("ws://a:1/", 3.0, 3.0)
    reply = envelope(Pong(ID=1), ex.request_id)
    ex.on_reply(reply, 0.01)
    assert ex.next(0.01) == Done(reply)


def test_exchange_retries_unwritten_failures_with_failover_and_backoff() -> None:
    c = core(max_retries=3, backoff_base=1.0, deadline=100.0)
    ex = ping_exchange(c)
    assert isinstance(a := ex.next(0.0), Send)
    assert a.url == "ws://a:1/"
    ex.on_error(errors.ConnectError("refused"), 0.0)
    assert isinstance(a := ex.next(0.0), Send)
    assert a.url == "ws://b:2/"
    ex.on_error(errors.ConnectError("refused"), 0.0)
    assert ex.next(0.0) == Wait(1.0)  # both penalised
    assert isinstance(a := ex.next(1.0), Send)
    assert a.url == "ws://a:1/"
    ex.on_error(errors.ConnectionLost("gone", written=False), 1.0)
    assert ex.next(1.0) == Wait(4.0)  # back-off grows with the call's failures (3rd)
    assert isinstance(ex.next(5.0), Send)
    ex.on_error(errors.ConnectError("refused"), 5.0)
    act = ex.next(5.0)
    assert isinstance(act, Fail)
    assert isinstance(act.error, errors.RetriesExceeded)
    assert act.error.attempts == 4
    assert isinstance(act.error.__cause__, errors.ConnectError)
    assert not act.error.written


def test_exchange_never_resends_a_written_request_unless_idempotent() -> None:
    c = core()
    ex = ping_exchange(c)
    ex.next(0.0)
    lost = errors.ConnectionLost("reset", written=True)
    ex.on_error(lost, 0.1)
    assert ex.next(0.1) == Fail(lost)
    ex = ping_exchange(c)
    ex.next(0.0)
    timeout = errors.RequestTimeout("slow", written=True)
    ex.on_error(timeout, 3.0)
    assert ex.next(3.0) == Fail(timeout)
    ex = ping_exchange(c, idempotent=True)
    ex.next(0.0)
    ex.on_error(errors.ConnectionLost("reset", written=True), 0.1)
    assert isinstance(ex.next(0.1), Wait)
    assert isinstance(ex.next(1.0), Send)


@pytest.mark.parametrize(
    "err", [errors.DecodeError("x"), errors.FrameTooLarge("x"), errors.UnexpectedResponse("x")]
)
def test_exchange_does_not_retry_deterministic_failures(err: errors.ClientError) -> None:
    ex = ping_exchange(core())
    ex.next(0.0)
    ex.on_error(err, 0.0)
    assert ex.next(0.0) == Fail(err)


def test_exchange_deadline_bounds_attempts_and_waits() -> None:
    c = core(backoff_base=2.0, max_retries=10)
    ex = ping_exchange(c, timeout=5.0)
    a = ex.next(0.0)
    assert isinstance(a, Send)
    assert a.timeout == 3.0
    a = ex.next(4.0)
    assert isinstance(a, Send)
    assert a.timeout == pytest.approx(1.0)
    assert a.dial_timeout == pytest.approx(1.0)
    ex.on_error(errors.ConnectionLost("x", written=False), 4.5)  # wants 2 s back-off: too late
    act = ex.next(4.5)
    assert isinstance(act, Fail)
    assert isinstance(act.error, errors.RequestTimeout)
    assert isinstance(act.error.__cause__, errors.ConnectionLost)
    ex = ping_exchange(c, timeout=1.0)
    act = ex.next(1.0)
    assert isinstance(act, Fail)
    assert isinstance(act.error, errors.RequestTimeout)


def test_default_deadline_is_request_timeout_times_retries() -> None:
    assert ClientSettings().effective_deadline == 15.0
    assert ClientSettings(max_retries=0).effective_deadline == 3.0
    assert ClientSettings(deadline=1.5).effective_deadline == 1.5


def test_redirect_request_goes_to_named_edges_for_this_call_only() -> None:
    c = core()
    ex = ping_exchange(c)
    ex.next(0.0)
    ex.on_reply(
        redirect_env(ex.request_id, 7, ["e:7", "f:7"], RedirectReason.ReplicaSetRequest), 0.0
    )
    act = ex.next(0.0)
    assert isinstance(act, Send)
    assert act.url == "ws://e:7/"
    assert c.routing.session_replica_set is None
    nxt = ping_exchange(c)
    assert nxt.next(0.0) == Send("ws://a:1/", 3.0, 3.0)  # later calls: seeds


def test_redirect_session_switches_later_calls_and_honours_wait() -> None:
    c = core()
    ex = ping_exchange(c)
    ex.next(0.0)
    ex.on_reply(redirect_env(ex.request_id, 7, ["e:7"], RedirectReason.ReplicaSetSession, 2), 1.0)
    assert ex.next(1.0) == Wait(2.0)
    assert isinstance(a := ex.next(3.0), Send)
    assert a.url == "ws://e:7/"
    assert c.routing.session_replica_set == 7
    assert ping_exchange(c).next(3.0) == Send("ws://e:7/", 3.0, 3.0)


def test_redirect_wait_beyond_deadline_fails_at_once() -> None:
    ex = ping_exchange(core(), timeout=2.0)
    ex.next(0.0)
    ex.on_reply(redirect_env(ex.request_id, 1, ["e:1"], RedirectReason.ReplicaSetRequest, 5), 0.1)
    act = ex.next(0.1)
    assert isinstance(act, Fail)
    assert isinstance(act.error, errors.RequestTimeout)


def test_redirects_are_bounded_and_validated() -> None:
    c = core(max_redirects=2)
    ex = ping_exchange(c)
    for _ in range(2):
        ex.next(0.0)
        ex.on_reply(redirect_env(ex.request_id, 1, ["e:1"], 1), 0.0)
    ex.next(0.0)
    ex.on_reply(redirect_env(ex.request_id, 1, ["e:1"], 1), 0.0)
    act = ex.next(0.0)
    assert isinstance(act, Fail)
    assert isinstance(act.error, errors.TooManyRedirects)
    ex = ping_exchange(c)
    ex.next(0.0)
    ex.on_reply(envelope(Redirect(), ex.request_id), 0.0)
    act = ex.next(0.0)
    assert isinstance(act, Fail)
    assert isinstance(act.error, errors.UnexpectedResponse)
    ex = ping_exchange(c)
    ex.next(0.0)
    ex.on_reply(MessageEnvelope(Constructor=envelope(Redirect()).Constructor, Message=b"\xff"), 0)
    act = ex.next(0.0)
    assert isinstance(act, Fail)
    assert isinstance(act.error, errors.DecodeError)


def test_redirect_not_followed_when_disabled() -> None:
    ex = ping_exchange(core(follow_redirects=False))
    ex.next(0.0)
    red = redirect_env(ex.request_id, 1, ["e:1"], 1)
    ex.on_reply(red, 0.0)
    assert ex.next(0.0) == Done(red)


# --- building and reading ------------------------------------------------------------------------


def test_request_carries_headers_auth_and_call_header_wins() -> None:
    c = core(headers={"app": "x", "lang": "en"}, auth=b"token")
    env = c.request(C_Ping, Ping(ID=1), {"lang": "fa"})
    assert env.Auth == b"token"
    assert env.RequestID != 0
    assert [(kv.Key, kv.Value) for kv in env.Header] == [("lang", "fa"), ("app", "x")]
    own = MessageEnvelope(Constructor=C_Ping, RequestID=42, Auth=b"mine")
    prepared = c.prepare(own)
    assert prepared.RequestID == 42
    assert prepared.Auth == b"mine"
    assert not own.Header
    assert c.prepare(MessageEnvelope(Constructor=C_Ping)).RequestID != 0


def test_outgoing_size_limit() -> None:
    c = core(max_message_size=64)
    with pytest.raises(errors.FrameTooLarge) as info:
        c.exchange(c.request(C_Ping, Ping(ID=1), {"k": "v" * 100}), 0.0)
    assert not info.value.written


def test_batch_validation_and_container() -> None:
    c = core(max_container_length=2)
    envs = [c.request(C_Ping, Ping(ID=i)) for i in range(2)]
    ex = c.batch(envs, 0.0, sync_run=True)
    assert ex.request_ids == tuple(e.RequestID for e in envs)
    (inner_a, inner_b) = decode_frame(ex.frame, Limits())
    assert inner_a == envs[0]
    assert inner_b == envs[1]
    with pytest.raises(ValueError, match="at least one"):
        c.batch([], 0.0)
    with pytest.raises(ValueError, match="max_container_length"):
        c.batch(envs * 2, 0.0)
    with pytest.raises(ValueError, match="distinct"):
        c.batch([envs[0], envs[0]], 0.0)


def test_reply_message_types() -> None:
    assert reply_message(envelope(Pong(ID=4), 1), Pong) == Pong(ID=4)
    assert reply_message(envelope(Pong(ID=4), 1)) == Pong(ID=4)
    err = rony_errors.UnavailableError("ITEM", "gone")
    with pytest.raises(rony_errors.UnavailableError) as info:
        reply_message(envelope(err.to_message(), 1), Pong)
    assert (info.value.code, info.value.items, info.value.description) == ("E02", "ITEM", "gone")
    for _ in range(2):  # an Error reply raises even to a caller that expects Error (twice: cached)
        with pytest.raises(rony_errors.UnavailableError):
            reply_message(envelope(err.to_message(), 1), type(err.to_message()))
    with pytest.raises(errors.UnexpectedResponse) as un:
        reply_message(envelope(Ping(ID=4), 1), Pong)
    assert un.value.constructor == C_Ping
    with pytest.raises(errors.UnexpectedResponse, match="unknown constructor"):
        reply_message(MessageEnvelope(Constructor=12345, RequestID=1))
    with pytest.raises(errors.DecodeError):
        reply_message(MessageEnvelope(Constructor=C_Pong, Message=b"\xff\xff"), Pong)


def test_match_http_replies() -> None:
    pushes: list[MessageEnvelope] = []
    a, b = envelope(Pong(ID=1), 11), envelope(Pong(ID=2), 12)
    push = envelope(Pong(ID=3), 0)
    assert match_http_replies([b, push, a], (11, 12), pushes.append) == [a, b]
    assert pushes == [push]
    anon = envelope(rony_errors.InvalidError().to_message(), 0)
    assert match_http_replies([anon], (11,), pushes.append) == [anon]
    with pytest.raises(errors.UnexpectedResponse, match="no envelope"):
        match_http_replies([], (11,), pushes.append)
    with pytest.raises(errors.UnexpectedResponse):
        match_http_replies([a], (11, 12), pushes.append)


def test_settings_validation() -> None:
    for bad in (
        {"dial_timeout": 0},
        {"request_timeout": -1},
        {"deadline": 0},
        {"idle_timeout": float("inf")},
        {"backoff_jitter": 1.5},
        {"max_retries": -1},
        {"max_message_size": 0},
        {"backoff_base": -1},
    ):
        with pytest.raises(ValueError, match="ClientSettings"):
            ClientSettings(**bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ClientSettings(auth="text")  # type: ignore[arg-type]
    assert ClientSettings(idle_timeout=None).ping_interval is None
    assert ClientSettings(idle_timeout=30).ping_interval == 10
    with pytest.raises(ValueError, match="transport"):
        ClientCore("a:1", transport="tcp")  # type: ignore[arg-type]


def test_pending_expire_only_what_is_due() -> None:
    p: Pending[str] = Pending()
    link = object()
    p.add(1, link, "a", deadline=1.0)
    p.add(2, link, "b", deadline=2.0)
    p.add(3, link, "c")  # no deadline
    assert p.expire([1, 2, 3, 99], 1.5) == ["a"]
    assert p.is_late(1)
    assert 2 in p
    assert 3 in p
    p.resolve(2)
    p.add(2, link, "b2", deadline=9.0)  # the id re-used with a later deadline
    assert p.expire([2], 2.5) == []
    assert p.expire([2, 3], 9.0) == ["b2"]


@settings(max_examples=300, deadline=None)
@given(
    constructor=st.integers(1, 2**64 - 1),
    request_id=st.integers(1, 2**64 - 1),
    payload=st.binary(max_size=300),
    auth=st.binary(max_size=20),
    headers=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)
def test_hand_written_request_frame_is_protobufs_own(
    constructor: int, request_id: int, payload: bytes, auth: bytes, headers: dict[str, str]
) -> None:
    c = ClientCore("ws://a:1", settings=ClientSettings(auth=auth, headers=headers))
    expected = MessageEnvelope(
        Constructor=constructor,
        RequestID=request_id,
        Message=payload,
        Auth=auth,
        Header=[KeyValue(Key=k, Value=v) for k, v in headers.items()],
    ).SerializeToString()
    assert c.request_frame(constructor, request_id, payload) == expected


def test_call_exchange_matches_request_and_checks_size() -> None:
    c = core(headers={"a": "b"}, auth=b"x", max_message_size=200)
    ex = c.call_exchange(C_Ping, Ping(ID=7), None, 0.0)
    env = MessageEnvelope.FromString(ex.frame)
    assert env.RequestID == ex.request_id
    assert (env.Constructor, env.Auth, Ping.FromString(env.Message).ID) == (C_Ping, b"x", 7)
    assert [(kv.Key, kv.Value) for kv in env.Header] == [("a", "b")]
    ex2 = c.call_exchange(C_Ping, Ping(ID=7), {"a": "mine"}, 0.0)  # the general path
    assert [(kv.Key, kv.Value) for kv in MessageEnvelope.FromString(ex2.frame).Header] == [
        ("a", "mine")
    ]
    with pytest.raises(errors.FrameTooLarge):
        c.call_exchange(C_Ping, KeyValue(Key="k" * 300), None, 0.0)
