"""Acceptance: the tunnel between real ``rony serve`` processes with real certificates.

Three nodes, two replica sets; a client of the node of replica set 1 reaches replica set 2
through it; a peer killed mid-call fails that call with a typed error and the next call goes to
the other member; a node whose certificate another CA signed gets nothing through.
"""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

import pytest

from rony.client import Client, ClientSettings
from rony.core import KeyValue, Ping, envelope
from rony.core import errors as rony_errors
from rony.server.cluster._ca import init_ca, issue, load_tls
from rony.server.pb.imsg_pb2 import TunnelMessage
from rony.server.tunnel import Peer, Tunnel
from tests.cluster._procs import ProcCluster, wait_for
from tests.tunnel._tunnelapp import C_Forward, C_ForwardSlow

pytestmark = pytest.mark.slow

APP = "tests.tunnel._tunnelapp:app"
ONE_TRY = ClientSettings(max_retries=0, request_timeout=15.0)


def test_calls_cross_replica_sets_and_survive_a_killed_peer(tmp_path: Path) -> None:
    procs = ProcCluster(tmp_path, ["a", "b", "c"])
    try:
        a = procs.start("a", app=APP, tunnel=True, replica_set=1).wait_ready()
        b = procs.start("b", seed=a, app=APP, tunnel=True, replica_set=2).wait_ready()
        procs.start("c", seed=a, app=APP, tunnel=True, replica_set=2).wait_ready()
        wait_for(lambda: procs.all_see({"a", "b", "c"}), 30, "the cluster to form")
        with Client(a.url, settings=ONE_TRY) as client:
            seen = {client.call(C_Forward, Ping(ID=2), KeyValue).Key for _ in range(20)}
            assert seen <= {"b", "c"}
            assert seen  # and each answer came through the tunnel from replica set 2

            # b is killed while it runs a request of ours: that call fails, typed
            failure: list[BaseException] = []

            def slow_call() -> None:
                try:
                    client.call(C_ForwardSlow, KeyValue(Key="b", Value="5000"), KeyValue)
                except BaseException as exc:
                    failure.append(exc)

            caller = threading.Thread(target=slow_call)
            caller.start()
            wait_for(lambda: "b" in (a.view() or set()), 5, "b still listed")
            b.proc.kill()
            caller.join(30)
            assert len(failure) == 1
            assert isinstance(
                failure[0], rony_errors.UnavailableError | rony_errors.RequestTimeoutError
            ), failure[0]
            # and the next calls go to the member that is left
            for _ in range(5):
                assert client.call(C_Forward, Ping(ID=2), KeyValue).Key == "c"
    finally:
        procs.close()


def test_a_node_of_another_ca_gets_no_tunnel_request_through(tmp_path: Path) -> None:
    """A real tunnel client with a certificate of another CA dials a node's real tunnel: the
    handshake is refused before any request is read; the node keeps serving."""
    procs = ProcCluster(tmp_path, ["a"])
    rogue_ca = tmp_path / "rogue"
    init_ca(rogue_ca)
    issue(rogue_ca, "rogue")
    rogue_tls = load_tls(rogue_ca / "ca.pem", rogue_ca / "rogue.pem", rogue_ca / "rogue.key")
    try:
        a = procs.start("a", app=APP, tunnel=True, replica_set=1).wait_ready()
        pattern = re.compile(r"tunnel: node a serves QUIC with mutual TLS at (\S+)")
        wait_for(lambda: pattern.search(a.output()) is not None, 10, "a's tunnel address")
        found = pattern.search(a.output())
        assert found is not None
        addr = found.group(1)

        async def handler(msg: TunnelMessage, peer: Peer) -> TunnelMessage:
            return msg

        async def rogue_call() -> None:
            tunnel = Tunnel(rogue_tls, handler)
            try:
                request = TunnelMessage(SenderID=b"rogue", Envelope=envelope(Ping(), 1))
                with pytest.raises(rony_errors.AccessError):
                    await tunnel.call(addr, request, timeout=5)
            finally:
                await tunnel.stop()

        asyncio.run(rogue_call())
        with Client(a.url, settings=ONE_TRY) as client:  # a still serves
            assert client.call(C_Forward, Ping(ID=1), KeyValue).Key == "a"
    finally:
        procs.close()
