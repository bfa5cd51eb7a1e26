"""Every decoder a peer's bytes reach, as one-argument targets for fuzzers: ``TARGETS`` maps a
name to ``f(data: bytes) -> None``, which may raise only the decoder's documented errors (a
``RonyError`` the node turns into an Error reply, or the protobuf ``DecodeError`` the tunnel
and gossip layers translate); anything else escaping is a crash. The hypothesis tests here and
the atheris runs of ``benchmarks/soak`` drive the same targets; ``SEEDS`` gives each a few
well-formed inputs to mutate.

* ``envelope``: ``decode_envelope`` (WebSocket binary frame, HTTP body), and
  ``decode_container`` when the envelope is a MessageContainer;
* ``json``: ``decode_envelope_json`` (WebSocket text frame, JSON POST);
* ``rest``: the REST router and ``bind_request`` (path, query and body of a request to one of
  the echo example's routes): the first byte picks the method, the rest is split on 0xFF
  bytes into path / query / body;
* ``tunnel``: ``FrameDecoder`` fed in chunks (split on 0xFE bytes), then each frame's
  payload as a ``TunnelMessage``;
* ``gossip``: a gossip ``Packet`` parsed, then received by a SWIM state machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from urllib.parse import parse_qsl

from google.protobuf.message import DecodeError

from examples.echo.app import app as echo_app
from examples.echo.sample_pb2 import EchoRequest
from examples.echo.sample_rony import C_SampleEcho
from rony.core import (
    C_MessageContainer,
    GetNodes,
    Limits,
    Ping,
    container_envelope,
    decode_container,
    decode_envelope,
    decode_envelope_json,
    envelope,
)
from rony.core.errors import RonyError
from rony.server.cluster._swim import GossipConfig, SwimMembership
from rony.server.gateway._rest import RestRouter, bind_request, query_values, split_path
from rony.server.pb import gossip_pb2 as gpb
from rony.server.pb.imsg_pb2 import TunnelMessage
from rony.server.tunnel._frames import Frame, FrameDecoder, FrameError, encode_frame

LIMITS = Limits(max_message_size=64 * 1024, max_container_length=64, max_header_count=16)
_ROUTER = RestRouter(echo_app.routes)
_METHODS = sorted({r.method for r in echo_app.routes} | {"POST", "GET"})


def fuzz_envelope(data: bytes) -> None:
    try:
        env = decode_envelope(data, LIMITS)
        if env.Constructor == C_MessageContainer:
            decode_container(env, LIMITS)
    except RonyError:
        pass


def fuzz_json(data: bytes) -> None:
    with contextlib.suppress(RonyError):
        decode_envelope_json(data, LIMITS)


def fuzz_rest(data: bytes) -> None:
    method = _METHODS[data[0] % len(_METHODS)] if data else "GET"
    path, _, rest = data[1:].partition(b"\xff")
    query, _, body = rest.partition(b"\xff")
    try:
        match = _ROUTER.match(method, split_path(path.decode("utf-8", "replace")))
        if match is None:
            return
        route, params = match
        pairs = parse_qsl(query.decode("utf-8", "replace"), keep_blank_values=True)
        bind_request(route, params, query_values(pairs), body, LIMITS)
    except RonyError:
        pass


def fuzz_tunnel(data: bytes) -> None:
    decoder = FrameDecoder(4096)
    try:
        for chunk in data.split(b"\xfe"):
            for frame in decoder.feed(chunk):
                if isinstance(frame, Frame):
                    with contextlib.suppress(DecodeError):
                        TunnelMessage.FromString(frame.payload)
    except FrameError:
        pass


def fuzz_gossip(data: bytes) -> None:
    try:
        packet = gpb.Packet.FromString(data)
    except DecodeError:
        return
    m = SwimMembership("me", "me:1", b"meta", config=GossipConfig(max_nodes=20), incarnation=3)
    m.start(0.0)
    m.receive(packet, 1.0)
    m.receive_reply(packet, 2.0)
    m.tick(3.0)
    assert m.members()[0].name == "me"


TARGETS: dict[str, Callable[[bytes], None]] = {
    "envelope": fuzz_envelope,
    "json": fuzz_json,
    "rest": fuzz_rest,
    "tunnel": fuzz_tunnel,
    "gossip": fuzz_gossip,
}


def _seeds() -> dict[str, list[bytes]]:
    e1 = envelope(Ping(ID=1), 1, header={"k": "v"})
    e2 = envelope(EchoRequest(ID=2, RandomText="seed"), 2, constructor=C_SampleEcho)
    e3 = envelope(GetNodes(ReplicaSet=[1, 2]), 3)
    tm = TunnelMessage(SenderID=b"node-a", SenderReplicaSet=1, Envelope=e1)
    alive = gpb.Message(Alive=gpb.Alive(Incarnation=4, Node="b", Addr="b:1", Meta=b"m"))
    ping = gpb.Message(Ping=gpb.Ping(SeqNo=7, Node="me"))
    return {
        "envelope": [
            e1.SerializeToString(),
            container_envelope([e1, e2, e3], sync_run=True).SerializeToString(),
        ],
        "json": [
            b'{"requestId": 9, "cmd": "SampleEcho", "message": {"ID": "1"}}',
            b'{"requestId":"18446744073709551615","cmd":"Ping","header":{"a":"b"},"message":{}}',
        ],
        "rest": [
            b"\x00/echo/1/hello\xff\xff",
            b"\x00/echo/2/x\xffa=1&b=%ZZ\xff" + EchoRequest(ID=5).SerializeToString(),
        ],
        "tunnel": [
            encode_frame(1, 7, tm.SerializeToString(), 4096)
            + b"\xfe"
            + encode_frame(2, 8, b"", 4096),
        ],
        "gossip": [
            gpb.Packet(
                Cluster="rony", From="b", FromAddr="b:1", Messages=[alive, ping]
            ).SerializeToString(),
        ],
    }


SEEDS = _seeds()
