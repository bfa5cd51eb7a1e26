"""Constructor ids of Rony's own wire messages, registered at import (as Go's msg.rony.go)."""

from __future__ import annotations

from rony.core._constructor import registry
from rony.core.pb.msg_pb2 import (
    Edge,
    Edges,
    Error,
    GetAllNodes,
    GetNodes,
    HttpBody,
    KeyValue,
    MessageContainer,
    MessageEnvelope,
    Ping,
    Pong,
    Redirect,
)

__all__ = [
    "C_Edge",
    "C_Edges",
    "C_Error",
    "C_GetAllNodes",
    "C_GetNodes",
    "C_HttpBody",
    "C_KeyValue",
    "C_MessageContainer",
    "C_MessageEnvelope",
    "C_Ping",
    "C_Pong",
    "C_Redirect",
]

C_MessageEnvelope = registry.register_message(MessageEnvelope)
C_Ping = registry.register_message(Ping)
C_Pong = registry.register_message(Pong)
C_KeyValue = registry.register_message(KeyValue)
C_MessageContainer = registry.register_message(MessageContainer)
C_Error = registry.register_message(Error)
C_Redirect = registry.register_message(Redirect)
C_Edge = registry.register_message(Edge)
C_Edges = registry.register_message(Edges)
C_GetNodes = registry.register_message(GetNodes)
C_GetAllNodes = registry.register_message(GetAllNodes)
C_HttpBody = registry.register_message(HttpBody)
