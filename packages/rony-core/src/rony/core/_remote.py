"""``RemoteCaller``: what generated ``tunnel_*`` helpers call through.

A typing Protocol only, so that generated modules name it at run time without importing
rony.server: both ``RequestCtx`` (inside a handler) and the server's ``Edge`` (anywhere else)
satisfy it with their ``execute_remote`` method (Go Rony's ``TunnelRequest``).
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from google.protobuf.message import Message

__all__ = ["RemoteCaller"]

M = TypeVar("M", bound=Message)


class RemoteCaller(Protocol):
    """An object that runs a request on another node through the tunnel."""

    async def execute_remote(
        self,
        replica_set: int,
        constructor: int,
        message: Message,
        response_class: type[M],
        *,
        timeout: float | None = ...,  # noqa: ASYNC109 - bounds the remote side too
        server_id: str | None = ...,
    ) -> M:
        """Run ``constructor(message)`` on an alive member of ``replica_set`` (or on the node
        ``server_id``) and return its reply decoded as ``response_class``; an Error reply
        raises its ``rony.core.errors`` class."""
        ...
