"""The codec: Go's binary test vector, round trips (binary, container, JSON), limits, header and
trace-context helpers, and totality: every decoder returns a message or raises MalformedError."""

from __future__ import annotations

import array
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rony.core import (
    TRACEPARENT,
    TRACESTATE,
    C_Error,
    C_MessageContainer,
    C_Ping,
    C_Pong,
    Edge,
    Edges,
    Error,
    GetAllNodes,
    GetNodes,
    HttpBody,
    KeyValue,
    Limits,
    MessageContainer,
    MessageEnvelope,
    Ping,
    Pong,
    Redirect,
    container_envelope,
    decode_container,
    decode_envelope,
    decode_envelope_json,
    encode_envelope,
    encode_envelope_json,
    envelope,
    envelope_bytes,
    header_append,
    header_dict,
    header_get,
    header_set,
    message_from_json,
    message_id,
    message_to_json,
    registry,
    set_trace_context,
    trace_context,
    unwrap,
)
from rony.core.errors import MalformedError

fuzz = settings(deadline=None, max_examples=150)

# --- strategies ------------------------------------------------------------------------------

u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
text = st.text(st.characters(codec="utf-8"), max_size=12)
key_values = st.builds(KeyValue, Key=text, Value=text)
envelopes = st.builds(
    MessageEnvelope,
    Constructor=u64,
    RequestID=u64,
    JsonEncoded=st.booleans(),
    Message=st.binary(max_size=48),
    Auth=st.binary(max_size=8),
    Header=st.lists(key_values, max_size=4),
)
edges = st.builds(Edge, ReplicaSet=u64, ServerID=text, HostPorts=st.lists(text, max_size=3))
payloads: st.SearchStrategy[Any] = st.one_of(
    st.builds(Ping, ID=i64),
    st.builds(Pong, ID=i64),
    st.builds(Error, Code=text, Items=text, Description=text),
    key_values,
    edges,
    st.builds(Edges, Nodes=st.lists(edges, max_size=3)),
    st.builds(
        Redirect,
        Reason=st.sampled_from([0, 1, 3, 4, 5, 6]),
        Edges=st.lists(edges, max_size=2),
        WaitInSec=st.integers(0, 2**32 - 1),
    ),
    st.builds(GetNodes, ReplicaSet=st.lists(u64, max_size=4)),
    st.builds(GetAllNodes),
    st.builds(
        HttpBody, ContentType=text, Header=st.lists(key_values, max_size=2), Body=st.binary()
    ),
)
headers = st.dictionaries(text, text, max_size=4)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
#: Constructors a server sees: registered ones, unknown ones and the container.
constructors = (
    st.sampled_from(
        [
            C_Ping,
            C_Pong,
            C_Error,
            C_MessageContainer,
            message_id("Redirect"),
            message_id("Edges"),
            0,
            1,
        ]
    )
    | u64
)


def total(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a decoder; MalformedError is a fine answer, any other exception fails the test."""
    try:
        return fn(*args, **kwargs)
    except MalformedError as exc:
        assert exc.code == "E01"  # noqa: PT017 (not a single call: pytest.raises cannot say "or")
        return None


def prefixes(data: bytes | str) -> list[Any]:
    return [data[:i] for i in range(len(data))]


# --- the Go binary test vector (inventory §1.4) ----------------------------------------------

GO_PING_ENVELOPE = bytes.fromhex("088080808089b7e2de311101000000000000002202" + "0801")


def test_go_binary_test_vector() -> None:
    env = envelope(Ping(ID=1), 1)
    assert encode_envelope(env) == GO_PING_ENVELOPE
    assert encode_envelope(envelope(Ping(ID=1), 1, constructor=C_Ping)) == GO_PING_ENVELOPE
    back = decode_envelope(GO_PING_ENVELOPE)
    assert (back.Constructor, back.RequestID) == (C_Ping, 1)
    assert unwrap(back) == Ping(ID=1)


def test_other_envelope_field_tags() -> None:
    # JsonEncoded 0x18, Auth 0x42, Header 0x52 (inventory §1.4).
    env = MessageEnvelope(JsonEncoded=True, Auth=b"a", Header=[KeyValue(Key="k", Value="v")])
    assert encode_envelope(env) == bytes.fromhex("180142016152060a016b120176")


def test_decode_accepts_bytearray_and_memoryview() -> None:
    for data in (bytearray(GO_PING_ENVELOPE), memoryview(GO_PING_ENVELOPE)):
        assert decode_envelope(data) == decode_envelope(GO_PING_ENVELOPE)


# --- round trips -----------------------------------------------------------------------------


@fuzz
@given(envelopes)
def test_envelope_binary_round_trip(env: MessageEnvelope) -> None:
    assert decode_envelope(encode_envelope(env)) == env


@fuzz
@given(
    st.one_of(st.sampled_from([0, 1, 127, 128, 2**63, 2**64 - 1]), u64),
    st.one_of(st.sampled_from([0, 1, 2**64 - 1]), u64),
    st.one_of(st.binary(max_size=300), st.sampled_from([b"x" * 127, b"x" * 128, b"x" * 70000])),
)
def test_envelope_bytes_are_protobufs_own_bytes(
    constructor: int, request_id: int, payload: bytes
) -> None:
    # The WebSocket reply path writes these bytes instead of serializing an envelope: they
    # must be the very bytes protobuf gives (defaults left out, fields in number order).
    built = MessageEnvelope(Constructor=constructor, RequestID=request_id, Message=payload)
    assert envelope_bytes(constructor, request_id, payload) == built.SerializeToString()


@pytest.mark.parametrize(("constructor", "request_id"), [(-1, 0), (2**64, 0), (1, -1), (1, 2**64)])
def test_envelope_bytes_refuse_what_is_not_a_uint64(constructor: int, request_id: int) -> None:
    with pytest.raises(ValueError, match="uint64"):
        envelope_bytes(constructor, request_id, b"x")


@fuzz
@given(st.lists(envelopes, max_size=6), st.booleans(), u64)
def test_container_round_trip(envs: list[MessageEnvelope], sync_run: bool, request_id: int) -> None:
    outer = decode_envelope(
        encode_envelope(container_envelope(envs, sync_run=sync_run, request_id=request_id))
    )
    assert (outer.Constructor, outer.RequestID) == (C_MessageContainer, request_id)
    container = decode_container(outer)
    assert list(container.Envelopes) == envs
    assert container.Length == len(envs)
    assert container.SyncRun is sync_run


@fuzz
@given(payloads, u64, headers, st.binary(max_size=8), st.booleans())
def test_envelope_wraps_and_unwraps_payloads(
    msg: Any, request_id: int, header: dict[str, str], auth: bytes, json_encoded: bool
) -> None:
    env = envelope(msg, request_id, header=header, auth=auth, json_encoded=json_encoded)
    assert env.Constructor == message_id(type(msg).DESCRIPTOR.name)
    assert (env.RequestID, env.Auth, env.JsonEncoded) == (request_id, auth, json_encoded)
    assert header_dict(env) == header
    back = decode_envelope(encode_envelope(env))
    assert unwrap(back) == msg
    assert unwrap(back, type(msg)) == msg


@fuzz
@given(payloads, u64, headers, st.booleans())
def test_json_envelope_round_trip(
    msg: Any, request_id: int, header: dict[str, str], json_encoded: bool
) -> None:
    env = envelope(msg, request_id, header=header, json_encoded=json_encoded)
    data = encode_envelope_json(env)
    obj = json.loads(data)
    assert obj["cmd"] == type(msg).DESCRIPTOR.name  # Go Rony's MessageEnvelopeJSON shape
    assert obj["requestId"] == request_id
    back = decode_envelope_json(data)
    assert back.JsonEncoded
    assert (back.Constructor, back.RequestID) == (env.Constructor, request_id)
    assert header_dict(back) == header
    assert unwrap(back) == msg
    assert encode_envelope_json(back) == data  # the JSON form is a fixed point
    assert decode_envelope_json(data.decode()) == back  # str in, same envelope


@fuzz
@given(payloads)
def test_message_json_round_trip(msg: Any) -> None:
    assert message_from_json(message_to_json(msg), type(msg)) == msg
    assert message_from_json(message_to_json(msg).decode(), type(msg)) == msg


def test_json_envelope_reads_go_and_javascript_forms() -> None:
    ping = b'{"requestId": 7, "cmd": "Ping", "message": {"ID": "3"}}'
    env = decode_envelope_json(ping)
    assert (env.Constructor, env.RequestID, unwrap(env)) == (C_Ping, 7, Ping(ID=3))
    # requestId as a string (JavaScript), numeric constructor / cmd, registry.JSONEnvelope key.
    big = 2**64 - 1
    assert decode_envelope_json(f'{{"requestId":"{big}","cmd":"Ping"}}').RequestID == big
    assert decode_envelope_json(f'{{"constructor":{C_Ping}}}').Constructor == C_Ping
    assert decode_envelope_json(f'{{"cmd":"{C_Pong}"}}').Constructor == C_Pong
    # Unknown names become 0 as in Go Rony (the server answers E01 HANDLER).
    assert decode_envelope_json('{"cmd":"NoSuchThing"}').Constructor == 0
    assert decode_envelope_json('{"cmd":"²"}').Constructor == 0  # a digit, but not 0-9


@pytest.mark.parametrize(
    "data",
    [
        "[]",
        '{"requestId": -1}',
        '{"requestId": 18446744073709551616}',
        '{"requestId": true}',
        '{"requestId": 1.5}',
        '{"requestId": "²"}',
        '{"requestId": "' + "1" * 5000 + '"}',
        '{"cmd": 5}',
        '{"cmd": "' + "9" * 5000 + '"}',
        '{"header": {"a": 1}}',
        '{"header": ["a"]}',
        '{"header": {"\\ud800": "x"}}',
        "\ud800",
        "[" * 100_000,
        '{"message": ' + "[" * 100_000 + "}",
    ],
)
def test_bad_json_envelopes_are_malformed(data: str) -> None:
    with pytest.raises(MalformedError):
        decode_envelope_json(data)


# --- limits ----------------------------------------------------------------------------------


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_header_count"):
        Limits(max_header_count=0)
    with pytest.raises(ValueError, match="max_message_size"):
        Limits(max_message_size=True)
    assert Limits() == Limits(max_message_size=4 * 1024 * 1024)


def test_over_limit_envelopes_are_malformed() -> None:
    env = envelope(Ping(ID=1), 1, header=[(f"k{i}", str(i)) for i in range(5)])
    data = encode_envelope(env)
    assert decode_envelope(data, Limits(max_header_count=5)) == env
    with pytest.raises(MalformedError, match="5 headers; limit is 4"):
        decode_envelope(data, Limits(max_header_count=4))
    with pytest.raises(MalformedError, match="limit is 10"):
        decode_envelope(data, Limits(max_message_size=10))
    assert decode_envelope(data, Limits(max_message_size=len(data))) == env
    wide = memoryview(array.array("Q", bytes(8 * 4)))  # 4 items, 32 bytes
    with pytest.raises(MalformedError, match="32 bytes; limit is 10"):
        decode_envelope(wide, Limits(max_message_size=10))
    assert dataclasses.replace(Limits(), max_header_count=4) == Limits(max_header_count=4)
    big = MessageEnvelope(Header=[KeyValue() for _ in range(65)])  # 2 bytes each
    with pytest.raises(MalformedError, match="headers"):
        decode_envelope(encode_envelope(big))

    jdata = encode_envelope_json(env)
    with pytest.raises(MalformedError, match="headers"):
        decode_envelope_json(jdata, Limits(max_header_count=4))
    for form in (jdata, jdata.decode()):
        with pytest.raises(MalformedError, match="limit"):
            decode_envelope_json(form, Limits(max_message_size=len(jdata) - 1))

    msg_json = message_to_json(Ping(ID=12345))
    with pytest.raises(MalformedError, match="limit"):
        message_from_json(msg_json, Ping, Limits(max_message_size=len(msg_json) - 1))


def test_json_payload_within_a_larger_limit_unwraps() -> None:
    # The envelope was decoded within the caller's Limits; unwrap must not re-check its payload
    # against DEFAULT_LIMITS (a node with max_message_size = 8 MiB refused 5 MB JSON requests).
    value = "x" * (5 * 1024 * 1024)
    data = json.dumps({"cmd": "KeyValue", "requestId": 1, "message": {"Value": value}})
    env = decode_envelope_json(data.encode(), Limits(max_message_size=8 * 1024 * 1024))
    assert len(env.Message) > Limits().max_message_size
    assert unwrap(env, KeyValue).Value == value
    assert unwrap(env) == KeyValue(Value=value)


def test_over_limit_containers_are_malformed() -> None:
    inner = [envelope(Ping(ID=i), i, header={"a": "b", "c": "d"}) for i in range(3)]
    outer = container_envelope(inner)
    assert len(decode_container(outer, Limits(max_container_length=3)).Envelopes) == 3
    with pytest.raises(MalformedError, match="3 envelopes; limit is 2"):
        decode_container(outer, Limits(max_container_length=2))
    with pytest.raises(MalformedError, match="headers"):
        decode_container(outer, Limits(max_header_count=1))
    with pytest.raises(MalformedError, match="limit"):
        decode_container(outer, Limits(max_message_size=len(outer.Message) - 1))
    with pytest.raises(MalformedError, match="does not carry"):
        decode_container(envelope(Ping(), 1))
    json_container = MessageEnvelope(Constructor=C_MessageContainer, JsonEncoded=True)
    with pytest.raises(MalformedError, match="binary"):
        decode_container(json_container)


def test_unwrap_unknown_constructor_is_a_handler_error() -> None:
    with pytest.raises(MalformedError) as info:
        unwrap(MessageEnvelope(Constructor=1))
    assert info.value.items == "HANDLER"
    with pytest.raises(MalformedError) as info:
        encode_envelope_json(MessageEnvelope(Constructor=1))
    assert info.value.items == "HANDLER"


# --- totality: a message or MalformedError, never another exception ---------------------------


@fuzz
@given(st.binary(max_size=256))
def test_decode_envelope_random_bytes(data: bytes) -> None:
    total(decode_envelope, data)
    total(decode_envelope, data, Limits(max_message_size=16, max_header_count=1))
    total(decode_envelope, memoryview(data))


@fuzz
@given(envelopes, st.binary(min_size=1, max_size=32))
def test_decode_envelope_prefixes_and_trailing_garbage(env: MessageEnvelope, junk: bytes) -> None:
    data = encode_envelope(env)
    for part in prefixes(data):
        total(decode_envelope, part)
    total(decode_envelope, data + junk)
    total(decode_envelope, junk + data)


@pytest.mark.parametrize("data", ["str", None, 5, [1, 2]])
def test_decode_envelope_refuses_non_bytes(data: Any) -> None:
    with pytest.raises(MalformedError, match="must be bytes"):
        decode_envelope(data)


@fuzz
@given(st.lists(envelopes, max_size=4), st.binary(min_size=1, max_size=16), st.binary(max_size=128))
def test_decode_container_hostile_payloads(
    envs: list[MessageEnvelope], junk: bytes, random: bytes
) -> None:
    good = container_envelope(envs).Message
    small = Limits(max_container_length=1, max_header_count=1, max_message_size=64)
    for payload in [*prefixes(good), good + junk, random]:
        outer = MessageEnvelope(Constructor=C_MessageContainer, Message=payload)
        total(decode_container, outer)
        total(decode_container, outer, small)


@fuzz
@given(payloads, headers, st.binary(min_size=1, max_size=8), st.binary(max_size=128))
def test_decode_envelope_json_hostile_bytes(
    msg: Any, header: dict[str, str], junk: bytes, random: bytes
) -> None:
    data = encode_envelope_json(envelope(msg, 1, header=header))
    for part in [*prefixes(data), data + junk, random]:
        total(decode_envelope_json, part)
    for text_part in prefixes(data.decode()):
        total(decode_envelope_json, text_part)


@fuzz
@given(st.text(max_size=64))
def test_decode_envelope_json_random_text(data: str) -> None:
    total(decode_envelope_json, data)  # includes lone surrogates


@fuzz
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "requestId": json_values,
            "cmd": json_values | st.sampled_from(["Ping", "Error", "1", "²"]),
            "constructor": json_values,
            "header": json_values,
            "message": json_values,
        },
    )
    | json_values
)
def test_decode_envelope_json_random_structures(obj: Any) -> None:
    env = total(decode_envelope_json, json.dumps(obj))
    if env is not None:
        total(unwrap, env)
        total(encode_envelope_json, env)


@fuzz
@given(constructors, st.booleans(), st.binary(max_size=64), st.sampled_from([None, Ping, Redirect]))
def test_unwrap_random_payloads(
    constructor: int, json_encoded: bool, payload: bytes, cls: Any
) -> None:
    env = MessageEnvelope(Constructor=constructor, JsonEncoded=json_encoded, Message=payload)
    total(unwrap, env, cls)
    total(encode_envelope_json, env)


@fuzz
@given(payloads, st.booleans(), st.binary(min_size=1, max_size=8))
def test_unwrap_prefixes_and_trailing_garbage(msg: Any, json_encoded: bool, junk: bytes) -> None:
    good = envelope(msg, 1, json_encoded=json_encoded)
    for payload in [*prefixes(good.Message), good.Message + junk]:
        env = MessageEnvelope(
            Constructor=good.Constructor, JsonEncoded=json_encoded, Message=payload
        )
        total(unwrap, env)
        total(unwrap, env, Redirect)


@fuzz
@given(payloads, st.binary(max_size=64), st.text(max_size=64), json_values)
def test_message_from_json_hostile_input(msg: Any, random: bytes, chars: str, value: Any) -> None:
    good = message_to_json(msg)
    cls = type(msg)
    for data in [*prefixes(good), *prefixes(good.decode()), good + b"}", random, chars]:
        total(message_from_json, data, cls)
    total(message_from_json, json.dumps(value), cls)
    total(message_from_json, json.dumps({f.json_name: value for f in cls.DESCRIPTOR.fields}), cls)


def test_message_from_json_deep_and_odd_input() -> None:
    odd: list[str | bytes] = ["[" * 100_000, '{"ID": "' + "1" * 5000 + '"}', "\ud800", b"\xff"]
    for data in odd:
        with pytest.raises(MalformedError):
            message_from_json(data, Ping)
    with pytest.raises(MalformedError, match="bytes or str"):
        message_from_json(None, Ping)  # type: ignore[arg-type]


# --- header helpers and trace context ---------------------------------------------------------


def test_header_get_set_append() -> None:
    env = envelope(Ping(), 1, header=[("a", "1"), ("b", "2"), ("a", "3")])
    assert header_get(env, "a") == "1"  # the first, as Go Rony's Get
    assert header_get(env, "zz") is None
    assert header_get(env, "zz", "d") == "d"
    assert header_dict(env) == {"a": "3", "b": "2"}  # the last, as Go Rony's JSON form
    header_append(env, "b", "4")
    assert [(kv.Key, kv.Value) for kv in env.Header] == [
        ("a", "1"),
        ("b", "2"),
        ("a", "3"),
        ("b", "4"),
    ]
    header_set(env, {"x-id": "9", "a": "5"}, c="6")
    assert [(kv.Key, kv.Value) for kv in env.Header] == [
        ("a", "5"),
        ("b", "2"),
        ("b", "4"),
        ("x-id", "9"),
        ("c", "6"),
    ]
    header_set(env)  # nothing to do
    assert len(env.Header) == 5
    header_set(env, [("b", "7")])
    assert header_dict(env) == {"a": "5", "b": "7", "x-id": "9", "c": "6"}
    assert decode_envelope(encode_envelope(env)) == env


VALID_PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("parent", "valid"),
    [
        (VALID_PARENT, True),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later", True),
        (VALID_PARENT + "-x", False),  # version 00 has exactly four parts
        ("ff" + VALID_PARENT[2:], False),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),
        (VALID_PARENT.upper(), False),
        ("garbage", False),
    ],
)
def test_trace_context(parent: str, valid: bool) -> None:
    env = envelope(Ping(), 1, header={TRACEPARENT: parent, TRACESTATE: "k=v", "other": "x"})
    expected = {TRACEPARENT: parent, TRACESTATE: "k=v"} if valid else {}
    assert trace_context(env) == expected


def test_set_trace_context_copies_only_trace_keys() -> None:
    env = envelope(Ping(), 1, header={TRACEPARENT: "old", "keep": "1"})
    set_trace_context(env, {TRACEPARENT: VALID_PARENT, "baggage": "no"})
    assert header_dict(env) == {TRACEPARENT: VALID_PARENT, "keep": "1"}
    assert trace_context(env) == {TRACEPARENT: VALID_PARENT}
    set_trace_context(env, {TRACESTATE: "a=b"})
    assert trace_context(env) == {TRACEPARENT: VALID_PARENT, TRACESTATE: "a=b"}


def test_envelope_registers_an_unregistered_class_once() -> None:
    # MessageContainer is registered; a class under its own id round-trips through the registry.
    assert registry.class_of(C_MessageContainer) is MessageContainer
    env = envelope(MessageContainer(Length=2), 5)
    assert env.Constructor == C_MessageContainer
    assert unwrap(env) == MessageContainer(Length=2)
