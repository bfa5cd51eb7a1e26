"""Test helpers for code built on rony.core: an in-memory Conn and envelope builders."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from google.protobuf.message import Message

from rony.core._codec import container_envelope, envelope, unwrap
from rony.core._messages import C_Error
from rony.core.errors import from_message
from rony.core.pb.msg_pb2 import Error, MessageEnvelope

__all__ = ["MemoryConn", "build_container", "build_request", "raise_for_error", "reply_message"]

_conn_ids = itertools.count(1)


class MemoryConn:
    """A Conn that records every envelope sent to it, in order."""

    def __init__(
        self,
        *,
        persistent: bool = True,
        client_ip: str = "127.0.0.1",
        values: Mapping[str, Any] | None = None,
        conn_id: int | None = None,
    ) -> None:
        self._conn_id = conn_id if conn_id is not None else next(_conn_ids)
        self._persistent = persistent
        self._client_ip = client_ip
        self._values: dict[str, Any] = dict(values or {})
        self.sent: list[MessageEnvelope] = []
        self.closed = False

    @property
    def conn_id(self) -> int:
        return self._conn_id

    @property
    def client_ip(self) -> str:
        return self._client_ip

    @property
    def persistent(self) -> bool:
        return self._persistent

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._values[key] = value

    def send(self, env: MessageEnvelope) -> None:
        if self.closed:
            raise ConnectionError("conn is closed")
        self.sent.append(env)


def build_request(
    message: Message,
    request_id: int = 1,
    *,
    constructor: int | None = None,
    header: Mapping[str, str] | None = None,
    json_encoded: bool = False,
) -> MessageEnvelope:
    """A request envelope; ``constructor`` is the RPC method id (defaults to the message's)."""
    return envelope(
        message,
        request_id,
        constructor=constructor,
        header=header or {},
        json_encoded=json_encoded,
    )


def build_container(*envelopes: MessageEnvelope, sync_run: bool = False) -> MessageEnvelope:
    return container_envelope(envelopes, sync_run=sync_run)


def reply_message(env: MessageEnvelope) -> Message:
    """Decode a reply; an Error reply raises the matching ``RonyError``."""
    if env.Constructor == C_Error:
        raise from_message(unwrap(env, Error))
    return unwrap(env)


def raise_for_error(env: MessageEnvelope) -> None:
    if env.Constructor == C_Error:
        reply_message(env)
