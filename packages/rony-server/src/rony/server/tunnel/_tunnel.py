"""``Tunnel``: a node's QUIC listener plus its pool of links to other nodes.

One link per peer address, dialled on the first call and kept while it lives; calls that
arrive while it is being dialled wait for that one handshake. A link that dies is dropped
from the pool (its pending calls fail ``UnavailableError``) and the next call dials again,
which is how a restarted peer is reached.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from aioquic.asyncio.server import QuicServer
from aioquic.quic.connection import QuicConnection

from rony.core.errors import RequestTimeoutError, RonyError, UnavailableError
from rony.server._addrs import hostport
from rony.server.pb.imsg_pb2 import TunnelMessage
from rony.server.tunnel._quic import (
    ClientLink,
    Handler,
    ServerLink,
    TunnelSettings,
    parse_addr,
    quic_configuration,
)

if TYPE_CHECKING:
    from rony.server.cluster._ca import TLSFiles

__all__ = ["Tunnel", "TunnelLink"]


@dataclass(frozen=True, slots=True)
class TunnelLink:
    """One open link of a tunnel (``Tunnel.links``)."""

    peer: str
    """The peer's node name, the CN of its verified certificate."""
    address: str
    """HOST:PORT: the address dialled (outgoing) or the peer's source address (incoming)."""
    outgoing: bool
    """True when this node dialled it (its calls to that peer go on it)."""


class Tunnel:
    """Node-to-node RPC over QUIC with mutual TLS: serve ``handler``, ``call`` other nodes.

    ``start`` is needed to serve only; a tunnel that only calls out never listens. Errors of
    ``call``: ``UnavailableError`` (E02) when no link could be made or it died with the call
    pending, ``RequestTimeoutError`` (E06) when ``timeout`` passed, ``AccessError`` (E07) when
    either end refused the other's certificate, ``FrameTooLargeError`` (an ``InvalidError``,
    E01) when the request or its reply is over ``max_frame_size`` (a reply the server finds too
    large comes back as a plain ``InvalidError``), ``BusyError`` (E09) when the peer has
    ``max_inflight_per_peer`` calls of ours running already, and whatever ``RonyError`` the
    peer's handler raised (``InternalError`` for any other exception there).
    """

    def __init__(
        self, tls: TLSFiles, handler: Handler, settings: TunnelSettings | None = None
    ) -> None:
        self._tls = tls
        self._handler = handler
        self._settings = settings if settings is not None else TunnelSettings()
        self._client_config = quic_configuration(tls, self._settings, is_client=True)
        self._links: dict[str, ClientLink] = {}
        self._dials: dict[str, asyncio.Task[ClientLink]] = {}
        self._server: QuicServer | None = None
        self._server_transport: asyncio.DatagramTransport | None = None
        self._server_links: set[ServerLink] = set()
        self._stopped = False

    @property
    def settings(self) -> TunnelSettings:
        return self._settings

    def links(self) -> list[TunnelLink]:
        """The verified links open now, both ways (for status pages; a snapshot)."""
        out = [
            TunnelLink(link.peer.name, addr, outgoing=True)
            for addr, link in self._links.items()
            if link.peer is not None and link.closed is None
        ]
        out += [
            TunnelLink(link.peer.name, link.peer.address, outgoing=False)
            for link in self._server_links
            if link.peer is not None and link.closed is None
        ]
        return out

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on host:port (port 0: one the OS picks) and return the address bound."""
        if self._stopped:
            raise UnavailableError("TUNNEL", "the tunnel is stopped")
        if self._server is not None:
            raise RuntimeError("the tunnel is started already")
        loop = asyncio.get_running_loop()
        config = quic_configuration(self._tls, self._settings, is_client=False)
        create = partial(
            ServerLink,
            tls=self._tls,
            settings=self._settings,
            handler=self._handler,
            links=self._server_links,
        )
        try:
            transport, server = await loop.create_datagram_endpoint(
                lambda: QuicServer(configuration=config, create_protocol=create),
                local_addr=(host, port),
            )
        except OSError as err:
            where = hostport(host, port)
            raise UnavailableError("TUNNEL", f"cannot listen on {where}: {err}") from None
        self._server, self._server_transport = server, transport
        sockname = transport.get_extra_info("sockname")
        return str(sockname[0]), int(sockname[1])

    def call(
        self,
        addr: str,
        msg: TunnelMessage | bytes,
        *,
        timeout: float,
    ) -> Coroutine[Any, Any, TunnelMessage]:
        """Send ``msg`` (a TunnelMessage, or its encoded bytes) to the node at ``addr``
        ("HOST:PORT") and return its reply.

        ``timeout`` (seconds) bounds the whole call, a dial included; when it passes, the peer
        is told to cancel the handler.
        """
        link = self._links.get(addr)
        if link is not None and link.closed is None:
            # (the usual case: the link's own coroutine, with no second one around it)
            return link.call(msg, link.clock() + timeout)
        return self._dial_and_call(addr, msg, timeout)

    async def _dial_and_call(
        self,
        addr: str,
        msg: TunnelMessage | bytes,
        timeout: float,  # noqa: ASYNC109 (one deadline for the dial and the reply)
    ) -> TunnelMessage:
        deadline = asyncio.get_running_loop().time() + timeout
        link = await self._link(addr, deadline)
        return await link.call(msg, deadline)

    async def stop(self) -> None:
        """Close every link and the listener; pending calls fail. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        why = UnavailableError("TUNNEL", "the tunnel is stopping")
        for dial in self._dials.values():
            dial.cancel()
        links = list(self._links.values())
        self._links.clear()
        for link in links:
            link.shut(why)
        tasks = [task for link in self._server_links for task in link.tasks.values()]
        for server_link in list(self._server_links):
            server_link.shut(why)
        if self._server_transport is not None:
            self._server_transport.close()
        # The handlers were cancelled; wait until they have run their cleanup.
        await asyncio.gather(*tasks, *self._dials.values(), return_exceptions=True)

    # -- the pool

    async def _link(self, addr: str, deadline: float) -> ClientLink:
        if self._stopped:
            raise UnavailableError("TUNNEL", "the tunnel is stopped")
        dial = self._dials.get(addr)
        if dial is None:
            dial = asyncio.get_running_loop().create_task(self._dial(addr))
            self._dials[addr] = dial
            dial.add_done_callback(partial(self._dialled, addr))
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            # shield: a caller whose own timeout is short must not cancel the dial the other
            # callers wait on.
            return await asyncio.wait_for(asyncio.shield(dial), max(remaining, 0.0))
        except TimeoutError:
            raise RequestTimeoutError("TUNNEL", f"no link to {addr} in time") from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if dial.cancelled() and task is not None and not task.cancelling():
                # The dial was cancelled by stop(), not this caller.
                raise UnavailableError("TUNNEL", "the tunnel is stopping") from None
            raise

    def _dialled(self, addr: str, dial: asyncio.Task[ClientLink]) -> None:
        if self._dials.get(addr) is dial:
            del self._dials[addr]
        if not dial.cancelled() and dial.exception() is None:
            link = dial.result()
            if self._stopped:
                link.shut(UnavailableError("TUNNEL", "the tunnel is stopping"))
            else:
                self._links[addr] = link

    async def _dial(self, addr: str) -> ClientLink:
        host, port = parse_addr(addr)
        loop = asyncio.get_running_loop()
        timeout = self._settings.connect_timeout
        link: ClientLink | None = None
        transport: asyncio.BaseTransport | None = None
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
                family, _, _, _, sockaddr = infos[0]
                local = ("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0)
                quic = QuicConnection(configuration=self._client_config)
                transport, link = await loop.create_datagram_endpoint(
                    partial(ClientLink, quic, self._tls, self._settings),
                    local_addr=local,
                    family=family,
                )
                link.connect(sockaddr)
                await link.ready
        except (TimeoutError, OSError, RonyError, asyncio.CancelledError) as err:
            if link is not None:
                link.shut(UnavailableError("TUNNEL", f"the dial to {addr} gave up"))
            elif transport is not None:
                transport.close()
            if isinstance(err, RonyError | asyncio.CancelledError):
                raise
            what = f"in {timeout} s" if isinstance(err, TimeoutError) else f": {err}"
            raise UnavailableError("TUNNEL", f"could not connect to {addr} {what}") from None
        link.on_close = partial(self._forget, addr, link)
        return link

    def _forget(self, addr: str, link: ClientLink) -> None:
        if self._links.get(addr) is link:
            del self._links[addr]
