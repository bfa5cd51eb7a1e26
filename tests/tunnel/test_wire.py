"""The remote calls' TunnelMessage bytes, built without a message, are protobuf's own."""

from __future__ import annotations

from rony.core import Ping, envelope, envelope_bytes
from rony.core.pb.msg_pb2 import KeyValue
from rony.server._remote import tunnel_message_bytes, tunnel_message_of
from rony.server.pb.imsg_pb2 import TunnelMessage


def test_tunnel_message_bytes_are_protobufs_own() -> None:
    for sender, rs in ((b"node-a", 1), (b"", 0), (b"b" * 300, 2**40)):
        for payload in (b"", b"x" * 10, b"y" * 200, b"z" * 70_000):
            env = envelope(Ping(ID=7), 99, header={"k": "v"} if payload else {})
            env.Message = payload
            store = [KeyValue(Key="k", Value="v"), KeyValue(Key="q", Value="")]
            expected = TunnelMessage(
                SenderID=sender, SenderReplicaSet=rs, Store=store, Envelope=env
            ).SerializeToString()
            kvs = TunnelMessage(Store=store).SerializeToString()
            assert tunnel_message_bytes(sender, rs, env, kvs) == expected
            plain = TunnelMessage(SenderID=sender, SenderReplicaSet=rs, Envelope=env)
            assert tunnel_message_bytes(sender, rs, env) == plain.SerializeToString()
            assert TunnelMessage.FromString(tunnel_message_bytes(sender, rs, env)) == plain


def test_an_encoded_envelope_makes_the_same_bytes() -> None:
    """The usual call's path: envelope_bytes, then tunnel_message_of, no message built."""
    for payload in (b"", b"x" * 10, b"y" * 127, b"y" * 128, b"z" * 70_000):
        for cid, rid in ((1, 1), (2**64 - 1, 2**63 - 1), (12345, 7)):
            env = envelope(Ping(ID=1), rid, constructor=cid)
            env.Message = payload
            body = envelope_bytes(cid, rid, payload)
            assert body == env.SerializeToString()
            got = tunnel_message_of(b"node-a", 3, body)
            expected = TunnelMessage(SenderID=b"node-a", SenderReplicaSet=3, Envelope=env)
            assert got == expected.SerializeToString()
