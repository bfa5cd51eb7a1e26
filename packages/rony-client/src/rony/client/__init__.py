"""rony.client: blocking and asyncio SDKs for Rony services, over WebSocket or HTTP.

    from rony.client import AsyncClient, Client
    from rony.core import C_Ping, Ping, Pong

    with Client("ws://127.0.0.1:8080") as c:
        pong = c.call(C_Ping, Ping(ID=1), Pong)

    async with AsyncClient(["ws://a:8080", "ws://b:8080"]) as c:
        pong = await c.call(C_Ping, Ping(ID=1), Pong)

Both twins share one protocol core without I/O (request ids, matching, retries, redirects);
depends on rony.core, aiohttp and websockets only, never on rony.server.
"""

from rony.client import errors
from rony.client._async import AsyncClient, AsyncPushStream
from rony.client._protocol import reply_message
from rony.client._settings import ClientSettings
from rony.client._sync import Client, PushStream
from rony.client._transport import (
    AsyncConnection,
    AsyncTransport,
    ConnectOptions,
    MockReply,
    MockRequest,
    MockTransport,
    SyncConnection,
    SyncTransport,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "AsyncConnection",
    "AsyncPushStream",
    "AsyncTransport",
    "Client",
    "ClientSettings",
    "ConnectOptions",
    "MockReply",
    "MockRequest",
    "MockTransport",
    "PushStream",
    "SyncConnection",
    "SyncTransport",
    "errors",
    "reply_message",
]
