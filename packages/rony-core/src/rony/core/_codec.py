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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from rony.core._constructor import registry
from rony.core.errors import MalformedError
from rony.core.pb.msg_pb2 import KeyValue, MessageContainer, MessageEnvelope

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "container_envelope",
    "decode_container",
    "decode_envelope",
    "decode_envelope_json",
    "encode_envelope",
    "encode_envelope_json",
    "envelope",
    "header_dict",
    "message_from_json",
    "message_to_json",
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

    def __post_init__(self) -> None:
        for name in ("max_message_size", "max_container_length", "max_header_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be >= 1")


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
    if len(data) > limits.max_message_size:
        raise MalformedError(
            "REQUEST", f"{what} is {len(data)} bytes; limit is {limits.max_message_size}"
        )


def encode_envelope(env: MessageEnvelope) -> bytes:
    return env.SerializeToString()


def decode_envelope(
    data: bytes | bytearray | memoryview, limits: Limits = DEFAULT_LIMITS
) -> MessageEnvelope:
    """Bytes -> MessageEnvelope, or ``MalformedError``."""
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
        constructor = registry.register_message(type(message))
    items = header.items() if isinstance(header, Mapping) else header
    payload = message_to_json(message) if json_encoded else message.SerializeToString()
    return MessageEnvelope(
        Constructor=constructor,
        RequestID=request_id,
        JsonEncoded=json_encoded,
        Message=payload,
        Auth=auth,
        Header=[KeyValue(Key=k, Value=v) for k, v in items],
    )


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


def unwrap(env: MessageEnvelope, message_class: type[M] | None = None) -> Message:
    """Decode an envelope's payload (JSON when ``JsonEncoded``) into its message class.

    Without ``message_class`` the registry names the class; an unknown constructor raises
    ``MalformedError`` with items ``HANDLER``.
    """
    cls: type[Message] | None = message_class or registry.class_of(env.Constructor)
    if cls is None:
        raise MalformedError("HANDLER", f"unknown constructor {env.Constructor}")
    if env.JsonEncoded:
        return message_from_json(env.Message, cls)
    return _parse(cls(), env.Message, cls.DESCRIPTOR.name)


def header_dict(env: MessageEnvelope) -> dict[str, str]:
    return {kv.Key: kv.Value for kv in env.Header}


# --- JSON -------------------------------------------------------------------------------------


def message_to_json(message: Message) -> bytes:
    """Protobuf's JSON mapping, field names as declared (``RandomText``, like Go's protojson)."""
    return json_format.MessageToJson(
        message, preserving_proto_field_name=False, indent=None
    ).encode()


def message_from_json(data: bytes | str, message_class: type[M]) -> M:
    message = message_class()
    try:
        json_format.Parse(data, message, ignore_unknown_fields=False)
    except Exception as exc:
        raise MalformedError(
            "REQUEST", f"{message_class.DESCRIPTOR.name} JSON does not decode: {exc}"
        ) from None
    return message


def encode_envelope_json(env: MessageEnvelope) -> bytes:
    """Go Rony's JSON envelope: ``{"requestId", "header", "cmd", "message"}``."""
    obj: dict[str, Any] = {"requestId": env.RequestID}
    if env.Header:
        obj["header"] = header_dict(env)
    name = registry.name_of(env.Constructor)
    obj["cmd"] = name if name is not None else str(env.Constructor)
    if env.JsonEncoded:
        payload: Any = json.loads(env.Message or b"{}")
    else:
        cls = registry.class_of(env.Constructor)
        if cls is None:
            raise MalformedError("HANDLER", f"unknown constructor {env.Constructor}")
        payload = json_format.MessageToDict(_parse(cls(), env.Message, name or "message"))
    obj["message"] = payload
    return json.dumps(obj, separators=(",", ":")).encode()


def decode_envelope_json(data: bytes | str, limits: Limits = DEFAULT_LIMITS) -> MessageEnvelope:
    """A JSON envelope -> MessageEnvelope with ``JsonEncoded`` set, or ``MalformedError``."""
    raw = data.encode() if isinstance(data, str) else data
    _check_size(raw, limits, "JSON envelope")
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
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
            constructor = _json_uint64(cmd, "cmd") if cmd.isdigit() else 0
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
    message = obj.get("message", {})
    return MessageEnvelope(
        Constructor=constructor,
        RequestID=request_id,
        JsonEncoded=True,
        Message=json.dumps(message, separators=(",", ":")).encode(),
        Header=[KeyValue(Key=k, Value=v) for k, v in header.items()],
    )


def _json_uint64(value: object, field: str) -> int:
    if isinstance(value, bool):
        raise MalformedError("REQUEST", f"{field} must be an unsigned 64-bit integer")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or not 0 <= value < 2**64:
        raise MalformedError("REQUEST", f"{field} must be an unsigned 64-bit integer")
    return value
