"""The tunnel over real QUIC on 127.0.0.1 with real certificates: calls, limits, failures, mTLS."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.tls import load_pem_private_key

from rony.core.errors import (
    AccessError,
    BusyError,
    InternalError,
    InvalidError,
    NotImplementedRonyError,
    RequestTimeoutError,
    UnavailableError,
)
from rony.core.pb.msg_pb2 import KeyValue, MessageEnvelope
from rony.server.cluster._ca import TLSFiles, make_test_pki
from rony.server.pb.imsg_pb2 import TunnelMessage
from rony.server.tunnel import ALPN, FrameTooLargeError, Peer, Tunnel, TunnelSettings
from rony.server.tunnel._frames import REQUEST, encode_frame
from rony.server.tunnel._quic import CLOSE_REFUSED

MiB = 1024 * 1024


async def wait_for(cond: Callable[[], bool]) -> None:
    """Poll a condition with a 20 s deadline (for state we cannot await directly; generous:
    the suite shares two cores with other tests' processes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20.0
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def msg(text: str = "hi", *, size: int = 0) -> TunnelMessage:
    return TunnelMessage(
        SenderID=b"node-a",
        SenderReplicaSet=1,
        Store=[KeyValue(Key="k", Value=text)],
        Envelope=MessageEnvelope(Constructor=7, RequestID=1, Message=b"x" * size),
    )


class Server:
    """A tunnel whose handler records what it saw and what happened to it."""

    def __init__(self, tls: TLSFiles, settings: TunnelSettings | None = None) -> None:
        self.calls: list[tuple[TunnelMessage, Peer]] = []
        self.cancelled = 0
        self.gate = asyncio.Event()
        self.tunnel = Tunnel(tls, self.handle, settings)
        self.addr = ""

    async def start(self, port: int = 0) -> str:
        host, bound = await self.tunnel.start("127.0.0.1", port)
        self.addr = f"{host}:{bound}"
        return self.addr

    async def handle(self, request: TunnelMessage, peer: Peer) -> TunnelMessage:
        self.calls.append((request, peer))
        command = request.Store[0].Value if request.Store else ""
        if command == "boom":
            raise ZeroDivisionError("boom")
        if command == "nope":
            raise NotImplementedRonyError("HANDLER", "no such thing")
        if command.startswith("big:"):
            return msg(size=int(command[4:]))
        if command == "wait":
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        reply = TunnelMessage()
        reply.CopyFrom(request)
        reply.SenderID = b"server"
        return reply


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, TLSFiles]:
    return make_test_pki(tmp_path / "ca", ["server", "client"])


@pytest.fixture
def foreign(tmp_path: Path) -> dict[str, TLSFiles]:
    return make_test_pki(tmp_path / "foreign", ["intruder"])


@pytest.fixture
async def server(pki: dict[str, TLSFiles]) -> AsyncIterator[Server]:
    node = Server(pki["server"])
    await node.start()
    yield node
    await node.tunnel.stop()


@pytest.fixture
async def client(pki: dict[str, TLSFiles]) -> AsyncIterator[Tunnel]:
    # A short probe: the tests that lose a peer wait for it.
    settings = TunnelSettings(probe_timeout=0.2)
    tunnel = Tunnel(pki["client"], Server(pki["client"]).handle, settings)
    yield tunnel
    await tunnel.stop()


# -- calls


async def test_round_trip(server: Server, client: Tunnel) -> None:
    reply = await client.call(server.addr, msg("hello"), timeout=5)
    assert reply.SenderID == b"server"
    assert reply.Store[0].Value == "hello"
    assert reply.Envelope.Constructor == 7
    [(request, peer)] = server.calls
    assert request == msg("hello")
    assert peer.name == "client"  # the CN of the client's verified certificate
    assert peer.address.startswith("127.0.0.1:")


async def test_a_thousand_concurrent_calls_share_one_link(server: Server, client: Tunnel) -> None:
    replies = await asyncio.gather(
        *(client.call(server.addr, msg(f"m{i}"), timeout=15) for i in range(1000))
    )
    assert [r.Store[0].Value for r in replies] == [f"m{i}" for i in range(1000)]
    assert len(server.calls) == 1000
    # The concurrent first calls shared one handshake: one link on each side.
    assert len(client._links) == 1
    assert len(server.tunnel._server_links) == 1


async def test_an_8_mib_reply(server: Server, client: Tunnel) -> None:
    reply = await client.call(server.addr, msg(f"big:{8 * MiB}"), timeout=15)
    assert len(reply.Envelope.Message) == 8 * MiB
    # And the link carries small calls after it.
    assert (await client.call(server.addr, msg("after"), timeout=5)).Store[0].Value == "after"


async def test_a_request_over_the_limit_fails_at_its_sender(
    server: Server, pki: dict[str, TLSFiles]
) -> None:
    tunnel = Tunnel(pki["client"], server.handle, TunnelSettings(max_frame_size=1024))
    try:
        with pytest.raises(FrameTooLargeError, match="max_frame_size") as err:
            await tunnel.call(server.addr, msg(size=2048), timeout=5)
        assert err.value.code == "E01"
        assert (await tunnel.call(server.addr, msg("ok"), timeout=5)).Store[0].Value == "ok"
        assert [r.Store[0].Value for r, _ in server.calls] == ["ok"]
    finally:
        await tunnel.stop()


async def test_a_reply_over_the_server_limit_is_an_error_reply(pki: dict[str, TLSFiles]) -> None:
    node = Server(pki["server"], TunnelSettings(max_frame_size=4096))
    tunnel = Tunnel(pki["client"], node.handle)
    try:
        await node.start()
        with pytest.raises(InvalidError, match="max_frame_size"):
            await tunnel.call(node.addr, msg("big:8192"), timeout=5)
        assert (await tunnel.call(node.addr, msg("ok"), timeout=5)).Store[0].Value == "ok"
    finally:
        await tunnel.stop()
        await node.tunnel.stop()


async def test_a_reply_over_the_receiver_limit_is_refused_unread(
    server: Server, pki: dict[str, TLSFiles]
) -> None:
    # The server (16 MiB limit) sends 1 MiB; this client allows 64 KiB. It reads the length
    # prefix, fails the call, skips the payload and keeps the link for the next call.
    tunnel = Tunnel(pki["client"], server.handle, TunnelSettings(max_frame_size=64 * 1024))
    try:
        with pytest.raises(FrameTooLargeError, match="reply of"):
            await tunnel.call(server.addr, msg(f"big:{MiB}"), timeout=5)
        assert (await tunnel.call(server.addr, msg("ok"), timeout=5)).Store[0].Value == "ok"
        [link] = tunnel._links.values()
        assert link._decoders[link._stream].buffered == 0
    finally:
        await tunnel.stop()


async def test_handler_errors_come_back_and_the_server_keeps_serving(
    server: Server, client: Tunnel
) -> None:
    with pytest.raises(InternalError) as err:
        await client.call(server.addr, msg("boom"), timeout=5)
    assert err.value.code == "E00"
    assert "boom" not in str(err.value)  # no server internals leak to the caller
    with pytest.raises(NotImplementedRonyError, match="no such thing"):
        await client.call(server.addr, msg("nope"), timeout=5)
    assert (await client.call(server.addr, msg("still"), timeout=5)).Store[0].Value == "still"


# -- cancellation and timeouts


async def test_caller_cancellation_reaches_the_handler(server: Server, client: Tunnel) -> None:
    await client.call(server.addr, msg("warm"), timeout=5)
    call = asyncio.ensure_future(client.call(server.addr, msg("wait"), timeout=5))
    await wait_for(lambda: len(server.calls) == 2)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await wait_for(lambda: server.cancelled == 1)
    assert not server.tunnel._server_links.pop().tasks


async def test_a_timeout_cancels_the_handler(server: Server, client: Tunnel) -> None:
    with pytest.raises(RequestTimeoutError) as err:
        await client.call(server.addr, msg("wait"), timeout=0.3)
    assert err.value.code == "E06"
    await wait_for(lambda: server.cancelled == 1)
    # The link answered the probe that followed the timeout, so it is kept.
    [link] = client._links.values()
    await wait_for(lambda: link._probe is None)
    assert link.closed is None
    assert (await client.call(server.addr, msg("next"), timeout=5)).Store[0].Value == "next"


async def test_calls_over_the_inflight_limit_wait_for_a_slot(pki: dict[str, TLSFiles]) -> None:
    settings = TunnelSettings(max_inflight_per_peer=2)
    node = Server(pki["server"], settings)
    tunnel = Tunnel(pki["client"], node.handle, settings)
    try:
        await node.start()
        waiting = [
            asyncio.ensure_future(tunnel.call(node.addr, msg("wait"), timeout=5)) for _ in range(3)
        ]
        await wait_for(lambda: len(node.calls) == 2)
        with pytest.raises(RequestTimeoutError):
            await tunnel.call(node.addr, msg("x"), timeout=0.2)
        assert len(node.calls) == 2  # the third and fourth never left this node
        node.gate.set()
        assert len(await asyncio.gather(*waiting)) == 3
    finally:
        await tunnel.stop()
        await node.tunnel.stop()


async def test_a_server_answers_busy_over_its_own_limit(pki: dict[str, TLSFiles]) -> None:
    node = Server(pki["server"], TunnelSettings(max_inflight_per_peer=1))
    tunnel = Tunnel(pki["client"], node.handle)  # allows more than the server does
    try:
        await node.start()
        first = asyncio.ensure_future(tunnel.call(node.addr, msg("wait"), timeout=5))
        await wait_for(lambda: len(node.calls) == 1)
        with pytest.raises(BusyError):
            await tunnel.call(node.addr, msg("more"), timeout=5)
        node.gate.set()
        await first
    finally:
        await tunnel.stop()
        await node.tunnel.stop()


# -- links dying and coming back


async def test_peer_stopped_mid_call_then_restarted(
    pki: dict[str, TLSFiles], client: Tunnel
) -> None:
    node = Server(pki["server"])
    addr = await node.start()
    pending = asyncio.ensure_future(client.call(addr, msg("wait"), timeout=10))
    await wait_for(lambda: len(node.calls) == 1)
    await node.tunnel.stop()
    with pytest.raises(UnavailableError) as err:
        await pending
    assert err.value.code == "E02"
    await wait_for(lambda: not client._links)
    # The same address, a new node process-alike: the next call dials again.
    again = Server(pki["server"])
    await again.start(port=int(addr.rpartition(":")[2]))
    try:
        assert (await client.call(addr, msg("back"), timeout=5)).Store[0].Value == "back"
    finally:
        await again.tunnel.stop()


async def test_a_peer_that_vanishes_is_probed_and_redialled(
    pki: dict[str, TLSFiles], client: Tunnel
) -> None:
    node = Server(pki["server"])
    addr = await node.start()
    await client.call(addr, msg("warm"), timeout=5)
    # Gone without a word (as if killed): its socket closes, no CONNECTION_CLOSE is sent.
    assert node.tunnel._server_transport is not None
    node.tunnel._server_transport.abort()
    for link in list(node.tunnel._server_links):
        link._stop_timers()
    with pytest.raises(RequestTimeoutError):
        await client.call(addr, msg("lost"), timeout=0.3)
    await wait_for(lambda: not client._links)  # the probe got no answer: link dropped
    again = Server(pki["server"])
    await again.start(port=int(addr.rpartition(":")[2]))
    try:
        assert (await client.call(addr, msg("back"), timeout=5)).Store[0].Value == "back"
    finally:
        await again.tunnel.stop()
        await node.tunnel.stop()


async def test_nothing_listening(pki: dict[str, TLSFiles]) -> None:
    settings = TunnelSettings(connect_timeout=0.3)
    tunnel = Tunnel(pki["client"], Server(pki["client"]).handle, settings)
    probe = Server(pki["server"])
    addr = await probe.start()
    await probe.tunnel.stop()  # a port that was free a moment ago, now closed
    try:
        with pytest.raises(UnavailableError, match="could not connect"):
            await tunnel.call(addr, msg(), timeout=5)
        with pytest.raises(RequestTimeoutError):
            await tunnel.call(addr, msg(), timeout=0.1)
    finally:
        await tunnel.stop()


@pytest.mark.parametrize("addr", ["nohost", "1.2.3.4:", "::1:80", "h:99999", "h:x", ":80"])
async def test_bad_addresses(client: Tunnel, addr: str) -> None:
    with pytest.raises(InvalidError, match="HOST:PORT"):
        await client.call(addr, msg(), timeout=1)


async def test_stop_is_idempotent_and_final(server: Server, client: Tunnel) -> None:
    await client.call(server.addr, msg(), timeout=5)
    await client.stop()
    await client.stop()
    with pytest.raises(UnavailableError, match="stopped"):
        await client.call(server.addr, msg(), timeout=5)


async def test_ipv6(pki: dict[str, TLSFiles], client: Tunnel) -> None:
    node = Server(pki["server"])
    try:
        host, port = await node.tunnel.start("::1", 0)
    except UnavailableError:
        pytest.skip("no IPv6 loopback here")
    try:
        reply = await client.call(f"[{host}]:{port}", msg("six"), timeout=5)
        assert reply.Store[0].Value == "six"
        assert node.calls[0][1].address.startswith("[::1]:")
    finally:
        await node.tunnel.stop()


# -- mutual TLS


async def test_a_client_from_a_foreign_ca_is_refused(
    server: Server, foreign: dict[str, TLSFiles]
) -> None:
    tunnel = Tunnel(foreign["intruder"], server.handle)
    try:
        with pytest.raises(AccessError) as err:
            await tunnel.call(server.addr, msg(), timeout=5)
        assert err.value.code == "E07"
    finally:
        await tunnel.stop()
    assert server.calls == []


async def test_a_server_from_a_foreign_ca_is_refused(
    pki: dict[str, TLSFiles], foreign: dict[str, TLSFiles]
) -> None:
    impostor = Server(foreign["intruder"])
    addr = await impostor.start()
    tunnel = Tunnel(pki["client"], impostor.handle)
    try:
        with pytest.raises(AccessError, match="certificate"):
            await tunnel.call(addr, msg(), timeout=5)
    finally:
        await tunnel.stop()
        await impostor.tunnel.stop()
    assert impostor.calls == []


class RawClient(QuicConnectionProtocol):
    """A bare aioquic client that sends a well-formed request as early as it can."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.terminated: events.ConnectionTerminated | None = None

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.ConnectionTerminated):
            self.terminated = event


@pytest.mark.parametrize("cert", ["none", "foreign"])
async def test_a_refused_client_never_reaches_the_handler(
    server: Server, foreign: dict[str, TLSFiles], cert: str
) -> None:
    config = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], verify_mode=ssl.CERT_NONE)
    if cert == "foreign":
        config.certificate = foreign["intruder"].cert
        config.private_key = load_pem_private_key(foreign["intruder"].key_pem)
    host, _, port = server.addr.rpartition(":")
    async with connect(
        host, int(port), configuration=config, create_protocol=RawClient, wait_connected=False
    ) as proto:
        assert isinstance(proto, RawClient)
        quic = proto._quic
        sid = quic.get_next_available_stream_id()
        # Queued before the handshake ends: it leaves with the client's Finished.
        quic.send_stream_data(sid, encode_frame(REQUEST, 1, msg().SerializeToString(), MiB))
        proto.transmit()
        await wait_for(lambda: proto.terminated is not None)
        assert proto.terminated is not None
        assert proto.terminated.error_code == CLOSE_REFUSED
    assert server.calls == []
    await wait_for(lambda: not server.tunnel._server_links)
