"""Encode and decode Rony envelopes and containers. No I/O.

Decoding is the trust boundary: bytes from a socket become typed messages here, so every
decoder checks the named limits *before* it allocates and raises ``MalformedError`` (an
``InvalidError``, wire code ``E01``) for anything it cannot read. A server turns that error into an
``Error`` envelope for the client (Go Rony sent nothing back for a bad envelope; that is a
defect we do not copy).

JSON follows Go Rony's ``MessageEnvelopeJSON`` shape, ``{"requestId", "header", "cmd",
"message"}`` with the payload in protobuf's JSON mapping and ``JsonEncoded`` set. We also read
``requestId`` given as a string (JavaScript loses precision above 2**53) and a numeric
``constructor`` key in place of ``cmd``.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from google.protobuf import json_format
from google.protobuf.message import Message

from rony.core._constructor import registry
from rony.core.errors import MalformedError
from rony.core.pb.msg_pb2 import KeyValue, MessageContainer, MessageEnvelope

__all__ = [
    "DEFAULT_LIMITS",
    "TRACEPARENT",
    "TRACESTATE",
    "Limits",
    "container_envelope",
    "decode_container",
    "decode_envelope",
    "decode_envelope_json",
    "encode_envelope",
    "encode_envelope_json",
    "envelope",
    "envelope_bytes",
    "header_append",
    "header_dict",
    "header_get",
    "header_set",
    "message_from_json",
    "message_to_json",
    "set_trace_context",
    "trace_context",
    "unwrap",
]

M = TypeVar("M", bound=Message)

C_MESSAGE_CONTAINER = registry.register_message(MessageContainer)  # also in _messages


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied to every decoded message.

    max_message_size: bytes of one encoded envelope (a frame, an HTTP body). Default 4 MiB, as
        Go Rony's fasthttp body limit.
    max_container_length: envelopes in one MessageContainer. Default 1024.
    max_header_count: Header entries in one envelope. Default 64.
    """

    max_message_size: int = 4 * 1024 * 1024
    max_container_length: int = 1024
    max_header_count: int = 64
    # Derived: an envelope of at most this many bytes is within every limit without counting
    # (each Header entry takes >= 2 bytes on the wire), so decode_envelope skips the checks.
    _unchecked_size: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("max_message_size", "max_container_length", "max_header_count"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Limits.{name} must be an int >= 1, not {value!r}")
        small = min(self.max_message_size, 2 * self.max_header_count + 1)
        object.__setattr__(self, "_unchecked_size", small)


DEFAULT_LIMITS = Limits()


def _parse(message: M, data: bytes, what: str) -> M:
    try:
        message.ParseFromString(data)
    except Exception as exc:  # upb raises DecodeError; be total on hostile bytes.
        raise MalformedError("REQUEST", f"{what} does not decode: {exc}") from None
    return message


def _check_headers(env: MessageEnvelope, limits: Limits) -> None:
    if len(env.Header) > limits.max_header_count:
        raise MalformedError(
            "REQUEST",
            f"envelope has {len(env.Header)} headers; limit is {limits.max_header_count}",
        )


def _check_size(data: bytes | bytearray | memoryview, limits: Limits, what: str) -> None:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedError("REQUEST", f"{what} must be bytes, not {type(data).__name__}")
    # A memoryview's len() counts items, not bytes (memoryview(array("Q", ...))).
    size = data.nbytes if isinstance(data, memoryview) else len(data)
    if size > limits.max_message_size:
        raise MalformedError(
            "REQUEST", f"{what} is {size} bytes; limit is {limits.max_message_size}"
        )


encode_envelope: Callable[[MessageEnvelope], bytes] = MessageEnvelope.SerializeToString
"""MessageEnvelope -> bytes. The unbound method itself: a wrapper costs 0.06 µs per call,
3 % of a whole build+encode+decode (see benchmarks/codec.py)."""


def decode_envelope(
    data: bytes | bytearray | memoryview, limits: Limits = DEFAULT_LIMITS
) -> MessageEnvelope:
    """Bytes -> MessageEnvelope, or ``MalformedError``."""
    if type(data) is bytes and len(data) <= limits._unchecked_size:
        # The hot path: a short envelope cannot break a limit (see Limits._unchecked_size).
        try:
            return MessageEnvelope.FromString(data)  # (cheaper than new + ParseFromString)
        except Exception as exc:  # upb raises DecodeError; be total on hostile bytes.
            raise MalformedError("REQUEST", f"envelope does not decode: {exc}") from None
    _check_size(data, limits, "envelope")
    env = _parse(MessageEnvelope(), bytes(data), "envelope")
    _check_headers(env, limits)
    return env


def decode_container(env: MessageEnvelope, limits: Limits = DEFAULT_LIMITS) -> MessageContainer:
    """The MessageContainer carried by a ``C_MessageContainer`` envelope, or ``MalformedError``."""
    if env.Constructor != C_MESSAGE_CONTAINER:
        raise MalformedError("REQUEST", "envelope does not carry a MessageContainer")
    if env.JsonEncoded:
        raise MalformedError("REQUEST", "a MessageContainer must be binary protobuf")
    _check_size(env.Message, limits, "container")
    container = _parse(MessageContainer(), env.Message, "container")
    if len(container.Envelopes) > limits.max_container_length:
        raise MalformedError(
            "REQUEST",
            f"container has {len(container.Envelopes)} envelopes; "
            f"limit is {limits.max_container_length}",
        )
    for inner in container.Envelopes:
        _check_headers(inner, limits)
    return container


# Constructor id per message class, so the hot path does not recompute a CRC per envelope.
_class_ids: dict[type[Message], int] = {}


def constructor_of(cls: type[Message]) -> int:
    """The constructor id of message class ``cls`` (CRC-64/ISO of its bare name), cached per
    class so a hot path computes no CRC."""
    cid = _class_ids.get(cls)
    if cid is None:
        # Registers the class under its own id (raises ConstructorClashError when a different
        # class holds that id), so the peer's reply can be unwrapped without a generated module.
        cid = _class_ids[cls] = registry.register_message(cls)
    return cid


def envelope(
    message: Message,
    request_id: int = 0,
    *,
    constructor: int | None = None,
    header: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    auth: bytes = b"",
    json_encoded: bool = False,
) -> MessageEnvelope:
    """Wrap a message. ``constructor`` defaults to the message's own id (registered or not)."""
    if constructor is None:
        constructor = _class_ids.get(type(message)) or constructor_of(type(message))
    if json_encoded:
        env = MessageEnvelope(
            Constructor=constructor,
            RequestID=request_id,
            Message=message_to_json(message),
            JsonEncoded=True,
        )
    else:
        # Only non-default fields as keywords: each keyword costs ~0.1 µs in upb.
        env = MessageEnvelope(
            Constructor=constructor, RequestID=request_id, Message=message.SerializeToString()
        )
    if auth:
        env.Auth = auth
    if header:
        items = header.items() if isinstance(header, Mapping) else header
        env.Header.extend([KeyValue(Key=k, Value=v) for k, v in items])
    return env


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_heads: dict[int, bytes] = {}  # constructor -> its field 1 (Constructor)
_ID_TAG = b"\x11"  # field 2 (RequestID), fixed64
_pack_id = struct.Struct("<Q").pack
_SHORT_MESSAGE = [bytes((0x22, n)) for n in range(128)]  # field 4 (Message) of n < 128 bytes


def envelope_bytes(constructor: int, request_id: int, payload: bytes) -> bytes:
    """The bytes of ``MessageEnvelope(Constructor=constructor, RequestID=request_id,
    Message=payload)``, exactly as protobuf serializes it (fields in number order, defaults
    left out; tests/core/test_codec.py checks them against ``SerializeToString``), without
    building the message. A server's reply and a client's request take this path on every
    call: a upb message (its arena, three field writes, the encoder) costs twice as much.
    ``constructor`` and ``request_id`` are uint64 (``ValueError`` otherwise)."""
    head = _heads.get(constructor)
    if head is None:
        if not 0 <= constructor < 1 << 64:
            raise ValueError(f"constructor {constructor} is not a uint64")
        head = b"\x08" + _varint(constructor) if constructor else b""
        if len(_heads) < 4096:  # (the ids of an app's messages: a few hundred at most)
            _heads[constructor] = head
    try:
        rid = _ID_TAG + _pack_id(request_id) if request_id else b""
    except struct.error:
        raise ValueError(f"request id {request_id} is not a uint64") from None
    n = len(payload)
    if n < 128:
        return head + rid + _SHORT_MESSAGE[n] + payload if n else head + rid
    return head + rid + b"\x22" + _varint(n) + payload


def container_envelope(
    envelopes: Iterable[MessageEnvelope], *, sync_run: bool = False, request_id: int = 0
) -> MessageEnvelope:
    """One envelope that carries several in a MessageContainer (one frame, one POST)."""
    envs = list(envelopes)
    container = MessageContainer(Length=len(envs), Envelopes=envs, SyncRun=sync_run)
    return MessageEnvelope(
        Constructor=C_MESSAGE_CONTAINER,
        RequestID=request_id,
        Message=container.SerializeToString(),
    )


_registered = registry._classes.get  # = registry.class_of, minus a method call


@overload
def unwrap(env: MessageEnvelope, message_class: type[M]) -> M: ...
@overload
def unwrap(env: MessageEnvelope, message_class: None = None) -> Message: ...
@overload
def unwrap(env: MessageEnvelope, message_class: type[Message] | None) -> Message: ...
def unwrap(env: MessageEnvelope, message_class: type[Message] | None = None) -> Message:
    """Decode an envelope's payload (JSON when ``JsonEncoded``) into its message class.

    Without ``message_class`` the registry names the class; an unknown constructor raises
    ``MalformedError`` with items ``HANDLER``.
    """
    cls = message_class or _registered(env.Constructor)
    if cls is None:
        raise MalformedError("HANDLER", f"unknown constructor {env.Constructor}")
    if env.JsonEncoded:
        # No size check: the payload is inside an envelope that was decoded within the
        # caller's Limits already (DEFAULT_LIMITS here would refuse what a larger
        # max_message_size let through).
        return _parse_json(env.Message, cls)
    message = cls()
    try:
        message.ParseFromString(env.Message)
    except Exception as exc:  # upb raises DecodeError; be total on hostile bytes.
        raise MalformedError("REQUEST", f"{cls.DESCRIPTOR.name} does not decode: {exc}") from None
    return message


# --- header ---------------------------------------------------------------------------------


def header_dict(env: MessageEnvelope) -> dict[str, str]:
    """The header as a dict; for a repeated key the last value wins (as Go Rony's JSON form)."""
    return {kv.Key: kv.Value for kv in env.Header}


@overload
def header_get(env: MessageEnvelope, key: str) -> str | None: ...
@overload
def header_get(env: MessageEnvelope, key: str, default: str) -> str: ...
def header_get(env: MessageEnvelope, key: str, default: str | None = None) -> str | None:
    """The value of the first header entry named ``key`` (Go Rony's ``Get``), else ``default``."""
    for kv in env.Header:
        if kv.Key == key:
            return kv.Value
    return default


def header_append(env: MessageEnvelope, key: str, value: str) -> None:
    """Add an entry, keeping any earlier entry of the same key (Go Rony's ``Append``)."""
    env.Header.append(KeyValue(Key=key, Value=value))


def header_set(
    env: MessageEnvelope,
    items: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    /,
    **values: str,
) -> None:
    """Set keys like ``dict.update``: an existing key keeps its place and gets the new value
    (repeats of it are dropped); a new key is appended. Other entries are left alone.

    Keys that are not Python identifiers go in ``items``:
    ``header_set(env, {"x-request-id": "7"}, lang="en")``. (Go Rony's ``Set`` replaced the whole
    header instead; ``del env.Header[:]`` first gives that.)
    """
    updates = dict(items.items() if isinstance(items, Mapping) else items)
    updates.update(values)
    if not updates:
        return
    merged: list[KeyValue] = []
    done: set[str] = set()
    for kv in env.Header:
        if kv.Key not in updates:
            merged.append(KeyValue(Key=kv.Key, Value=kv.Value))
        elif kv.Key not in done:
            done.add(kv.Key)
            merged.append(KeyValue(Key=kv.Key, Value=updates[kv.Key]))
    merged.extend(KeyValue(Key=k, Value=v) for k, v in updates.items() if k not in done)
    del env.Header[:]
    env.Header.extend(merged)


# The WebSocket handshake response header in which a Rony node gives its max_message_size
# (the gateway sets it, rony.client reads it). A frame over it is refused before it is sent:
# the server would close with 1009, but a client still writing a large frame often meets a
# reset instead, which reads as a network failure and would be retried.
MAX_MESSAGE_SIZE_HEADER = "X-Rony-Max-Message-Size"


# --- trace context (W3C, as Go Rony's MessageEnvelope.Carrier) -------------------------------

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?")


def _valid_traceparent(value: str) -> bool:
    # W3C Trace Context §3.2: version ff is invalid; version 00 has exactly four parts; a
    # later version may append parts; all-zero trace id or parent id is invalid.
    m = _TRACEPARENT.fullmatch(value)
    if m is None:
        return False
    version, trace_id, parent_id, rest = m.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return False
    return trace_id != "0" * 32 and parent_id != "0" * 16


def trace_context(env: MessageEnvelope) -> dict[str, str]:
    """The W3C trace context in the header, as a carrier for an OpenTelemetry propagator's
    ``extract``: ``{"traceparent": ..., "tracestate": ...}`` (tracestate only when present).

    Empty when ``traceparent`` is missing or invalid (then ``tracestate`` is ignored too, as the
    W3C spec says), so a malformed header starts a new trace instead of failing the request.
    """
    parent = header_get(env, TRACEPARENT)
    if parent is None or not _valid_traceparent(parent):
        return {}
    out = {TRACEPARENT: parent}
    state = header_get(env, TRACESTATE)
    if state is not None:
        out[TRACESTATE] = state
    return out


def set_trace_context(env: MessageEnvelope, carrier: Mapping[str, str]) -> None:
    """Copy ``traceparent``/``tracestate`` from ``carrier`` (e.g. the dict an OpenTelemetry
    propagator's ``inject`` filled) into the header, replacing earlier values. Other keys of
    the carrier are ignored."""
    header_set(env, {k: carrier[k] for k in (TRACEPARENT, TRACESTATE) if k in carrier})


# --- JSON -------------------------------------------------------------------------------------


def message_to_json(message: Message) -> bytes:
    """Protobuf's JSON mapping, field names as declared (``RandomText``, like Go's protojson)."""
    return json_format.MessageToJson(
        message, preserving_proto_field_name=False, indent=None
    ).encode()


def message_from_json(
    data: bytes | str, message_class: type[M], limits: Limits = DEFAULT_LIMITS
) -> M:
    """Protobuf JSON -> ``message_class``, or ``MalformedError`` (also over ``limits``)."""
    name = message_class.DESCRIPTOR.name
    if not isinstance(data, bytes | str):
        raise MalformedError("REQUEST", f"{name} JSON must be bytes or str")
    if len(data) > limits.max_message_size:
        raise MalformedError(
            "REQUEST", f"{name} JSON is {len(data)} long; limit is {limits.max_message_size}"
        )
    return _parse_json(data, message_class)


def _parse_json(data: bytes | str, message_class: type[M]) -> M:
    message = message_class()
    try:
        json_format.Parse(data, message, ignore_unknown_fields=False)
    except Exception as exc:  # ParseError, bad UTF-8, RecursionError on deep nesting, ...
        name = message_class.DESCRIPTOR.name
        raise MalformedError("REQUEST", f"{name} JSON does not decode: {exc}") from None
    return message


def encode_envelope_json(env: MessageEnvelope) -> bytes:
    """Go Rony's JSON envelope: ``{"requestId", "header", "cmd", "message"}``.

    Raises ``MalformedError`` when the payload cannot be read (an unknown constructor with a
    binary payload, or bytes that do not decode); Go Rony dropped such a message silently.
    """
    obj: dict[str, Any] = {"requestId": env.RequestID}
    if env.Header:
        obj["header"] = header_dict(env)
    name = registry.name_of(env.Constructor)
    obj["cmd"] = name if name is not None else str(env.Constructor)
    if env.JsonEncoded:
        try:
            payload: Any = json.loads(env.Message or b"{}")
        except (ValueError, RecursionError) as exc:
            raise MalformedError("REQUEST", f"payload JSON does not decode: {exc}") from None
    else:
        cls = registry.class_of(env.Constructor)
        if cls is None:
            raise MalformedError("HANDLER", f"unknown constructor {env.Constructor}")
        payload = json_format.MessageToDict(_parse(cls(), env.Message, name or "message"))
    obj["message"] = payload
    return json.dumps(obj, separators=(",", ":")).encode()


def decode_envelope_json(data: bytes | str, limits: Limits = DEFAULT_LIMITS) -> MessageEnvelope:
    """A JSON envelope -> MessageEnvelope with ``JsonEncoded`` set, or ``MalformedError``."""
    if isinstance(data, str):
        # A str longer than the limit in characters is longer in UTF-8 bytes too: refuse it
        # before encoding a copy.
        if len(data) > limits.max_message_size:
            raise MalformedError(
                "REQUEST", f"JSON envelope is over {limits.max_message_size} bytes (the limit)"
            )
        try:
            raw: object = data.encode()
        except UnicodeEncodeError:  # lone surrogates
            raise MalformedError("REQUEST", "envelope JSON is not valid Unicode") from None
    else:
        raw = data
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise MalformedError("REQUEST", f"JSON envelope must be bytes, not {type(raw).__name__}")
    _check_size(raw, limits, "JSON envelope")
    try:
        obj = json.loads(bytes(raw))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedError("REQUEST", f"envelope JSON does not decode: {exc}") from None
    if not isinstance(obj, dict):
        raise MalformedError("REQUEST", "envelope JSON must be an object")
    request_id = _json_uint64(obj.get("requestId", 0), "requestId")
    if "cmd" in obj:
        cmd = obj["cmd"]
        if not isinstance(cmd, str):
            raise MalformedError("REQUEST", "cmd must be a string")
        constructor = registry.id_of(cmd)
        if constructor is None:
            # Go Rony maps an unknown name to 0 (no handler: E01 HANDLER); digits are an id.
            constructor = _json_uint64(cmd, "cmd") if _is_digits(cmd) else 0
    else:
        constructor = _json_uint64(obj.get("constructor", 0), "constructor")
    header = obj.get("header") or {}
    if not isinstance(header, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in header.items()
    ):
        raise MalformedError("REQUEST", "header must be an object of strings")
    if len(header) > limits.max_header_count:
        raise MalformedError(
            "REQUEST", f"envelope has {len(header)} headers; limit is {limits.max_header_count}"
        )
    try:
        # The payload stays JSON (unwrap decodes it with the handler's class). Re-encoding what
        # json.loads accepted can still hit the recursion limit, and a header string holding a
        # lone surrogate (a JSON "\\ud800" escape) is refused by protobuf's string field.
        message = json.dumps(obj.get("message", {}), separators=(",", ":")).encode()
        env = MessageEnvelope(
            Constructor=constructor,
            RequestID=request_id,
            JsonEncoded=True,
            Message=message,
            Header=[KeyValue(Key=k, Value=v) for k, v in header.items()],
        )
    except (ValueError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
        raise MalformedError("REQUEST", f"envelope JSON does not decode: {exc}") from None
    return env


def _is_digits(value: str) -> bool:
    # str.isdigit() alone accepts "²" and other Unicode digits that int() refuses.
    return value.isascii() and value.isdigit()


def _json_uint64(value: object, field: str) -> int:
    if isinstance(value, str) and _is_digits(value) and len(value) <= 20:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise MalformedError("REQUEST", f"{field} must be an unsigned 64-bit integer")
    return value
