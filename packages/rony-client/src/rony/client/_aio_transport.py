"""The asyncio transport: aiohttp for WebSocket and HTTP (the server's own stack)."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import WSMsgType

from rony.client._transport import (
    AsyncConnection,
    AsyncTransport,
    ConnectOptions,
    Frame,
    server_limit,
    server_too_large,
)
from rony.client.errors import (
    ConnectError,
    ConnectionLost,
    FrameTooLarge,
    RequestTimeout,
    UnexpectedResponse,
)
from rony.core import MAX_MESSAGE_SIZE_HEADER

__all__ = ["AiohttpTransport"]

_MESSAGE_TOO_BIG = 1009
_CONTENT_TYPE = "application/x-protobuf"
_JSON = "application/json"


class _WSConnection:
    __slots__ = ("_opcode", "_server_limit", "_ws")

    def __init__(
        self, ws: aiohttp.ClientWebSocketResponse, server_limit: int | None, text: bool = False
    ) -> None:
        self._ws = ws
        self._server_limit = server_limit
        # JSON mode writes text frames (the frame is UTF-8 JSON already: no decode, no copy).
        self._opcode = WSMsgType.TEXT if text else WSMsgType.BINARY

    async def send(self, frame: bytes) -> None:
        if self._ws.closed:
            raise ConnectionLost("connection is closed", written=False)
        limit = self._server_limit
        if limit is not None and len(frame) > limit:
            raise server_too_large(len(frame), limit)
        try:
            await self._ws.send_frame(frame, self._opcode)
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectionLost(f"write failed: {exc!r}", written=False) from None

    async def recv(self) -> Frame:
        msg = await self._ws.receive()
        kind = msg.type
        if kind is WSMsgType.BINARY:
            data: bytes = msg.data
            return data
        if kind is WSMsgType.TEXT:
            text: str = msg.data
            return text
        if kind is WSMsgType.ERROR:
            exc = msg.data
            if getattr(exc, "code", None) == _MESSAGE_TOO_BIG:
                raise FrameTooLarge(
                    f"a frame exceeded max_message_size; connection closed ({exc})", written=True
                )
            raise ConnectionLost(f"connection failed: {exc!r}", written=True)
        code = self._ws.close_code
        if code == _MESSAGE_TOO_BIG:
            raise FrameTooLarge("peer closed: a frame was too large", written=True)
        raise ConnectionLost(f"connection closed (code {code})", written=True)

    async def close(self) -> None:
        await self._ws.close()


class AiohttpTransport(AsyncTransport):
    """One ``aiohttp.ClientSession`` (made on first use, in the running loop)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self, options: ConnectOptions) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=0,
                # HTTP: at most this many requests at once per host (the rest queue for a
                # connection) instead of one TCP connection per concurrent call.
                limit_per_host=options.pool_size,
                keepalive_timeout=options.keepalive_expiry,
                force_close=False,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None)
            )
        return self._session

    async def connect_async(self, url: str, options: ConnectOptions) -> AsyncConnection:
        session = self._get_session(options)
        try:
            async with asyncio.timeout(options.dial_timeout):
                ws = await session.ws_connect(
                    url,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=1.0),
                    heartbeat=options.ping_interval,
                    max_msg_size=options.max_message_size,
                    headers=dict(options.headers) or None,
                    compress=0,
                    autoping=True,
                )
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            raise ConnectError(f"cannot open {url}: {exc!r}") from None
        # (aiohttp keeps the handshake response only as a private attribute.)
        response = getattr(ws, "_response", None)
        headers = getattr(response, "headers", None) or {}
        return _WSConnection(
            ws, server_limit(headers.get(MAX_MESSAGE_SIZE_HEADER)), text=options.text
        )

    async def round_trip_async(
        self,
        url: str,
        frame: bytes,
        *,
        timeout: float,  # noqa: ASYNC109
        options: ConnectOptions,
    ) -> bytes:
        session = self._get_session(options)
        headers = {"Content-Type": _JSON if options.text else _CONTENT_TYPE, **options.headers}
        limit = options.max_message_size
        client_timeout = aiohttp.ClientTimeout(
            total=timeout, sock_connect=min(timeout, options.dial_timeout)
        )
        try:
            async with session.post(
                url, data=frame, headers=headers, timeout=client_timeout
            ) as resp:
                length = resp.content_length
                if length is not None and length > limit:
                    raise FrameTooLarge(
                        f"reply body is {length} bytes; max_message_size is {limit}", written=True
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(65536):
                    size += len(chunk)
                    if size > limit:
                        raise FrameTooLarge(
                            f"reply body exceeds max_message_size {limit}", written=True
                        )
                    chunks.append(chunk)
                body = b"".join(chunks)
                if not 200 <= resp.status < 300 and not body:
                    raise UnexpectedResponse(f"HTTP {resp.status} {resp.reason} with an empty body")
                return body
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise ConnectError(f"cannot connect to {url}: {exc!r}") from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise RequestTimeout(f"no reply within {timeout:.3g} s", written=True) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectionLost(f"HTTP exchange failed: {exc!r}", written=True) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
