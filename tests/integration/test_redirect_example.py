"""examples/redirect on a real cluster: three Edges in one process (a: replica set 1; b and c:
replica set 2) with gossip and tunnel over mutual TLS on 127.0.0.1.

A request for replica set 2 sent to a either comes back as a Redirect the client follows
(client redirect) or is forwarded by a through the tunnel with the generated
``tunnel_sample_info_with_server_redirect`` (server redirect); both answers come from b or c.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from examples.redirect import sample_pb2
from examples.redirect.app import app
from examples.redirect.sample_pb2 import InfoRequest, InfoResponse
from examples.redirect.sample_rony import (
    C_SampleInfoWithClientRedirect,
    C_SampleInfoWithServerRedirect,
    SampleClient,
    SampleSyncClient,
    tunnel_sample_info_with_client_redirect,
    tunnel_sample_info_with_server_redirect,
)
from rony.client import AsyncClient, Client, ClientSettings
from rony.core import Redirect, RedirectReason, method_id
from rony.core.errors import UnavailableError
from rony.server import Edge
from tests.cluster._edges import edges

REPLICA_SET_2 = {"b", "c"}


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[tuple[Edge, Edge, Edge]]:
    """a (replica set 1), b and c (replica set 2): gossip and tunnel over mutual TLS."""
    async with edges(tmp_path, app, {"a": 1, "b": 2, "c": 2}, tunnel=True) as (a, b, c):
        yield a, b, c


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_async_client_both_redirect_kinds(
    nodes: tuple[Edge, Edge, Edge], transport: str
) -> None:
    a, _b, _c = nodes
    async with AsyncClient(a.url, transport=transport) as client:  # type: ignore[arg-type]
        sample = SampleClient(client)
        own = await sample.info_with_client_redirect(InfoRequest(ReplicaSet=1, RandomText="x"))
        assert (own.ServerID, own.RandomText) == ("a", "x")
        # client redirect: a answers with a Redirect to b and c; the client follows it
        res = await sample.info_with_client_redirect(InfoRequest(ReplicaSet=2, RandomText="c1"))
        assert res.ServerID in REPLICA_SET_2
        assert res.RandomText == "c1"
        assert client.session_replica_set is None  # a request redirect: this request only
        # server redirect: a forwards it through the tunnel; the client never leaves a
        res = await sample.info_with_server_redirect(InfoRequest(ReplicaSet=2, RandomText="s1"))
        assert res.ServerID in REPLICA_SET_2
        assert res.RandomText == "s1"
        again = await sample.info_with_server_redirect(InfoRequest(ReplicaSet=1, RandomText="s2"))
        assert again.ServerID == "a"  # the client still talks to a


async def test_the_redirect_names_the_members_of_the_replica_set(
    nodes: tuple[Edge, Edge, Edge],
) -> None:
    a, b, c = nodes
    settings = ClientSettings(follow_redirects=False)
    async with AsyncClient(a.url, settings=settings) as client:
        reply = await client.call(C_SampleInfoWithClientRedirect, InfoRequest(ReplicaSet=2))
    assert isinstance(reply, Redirect)
    assert reply.Reason == RedirectReason.ReplicaSetRequest
    got = {(e.ServerID, e.ReplicaSet, tuple(e.HostPorts)) for e in reply.Edges}
    assert got == {(n.server_id, 2, tuple(n.advertised_addrs)) for n in (b, c)}


async def test_sync_client_both_redirect_kinds(nodes: tuple[Edge, Edge, Edge]) -> None:
    a, _b, _c = nodes

    def calls(transport: str) -> list[InfoResponse]:
        # A blocking client needs its own thread: the nodes run on this test's event loop.
        with Client(a.url, transport=transport) as client:  # type: ignore[arg-type]
            sample = SampleSyncClient(client)
            out = [
                sample.info_with_client_redirect(InfoRequest(ReplicaSet=2, RandomText="c")),
                sample.info_with_server_redirect(InfoRequest(ReplicaSet=2, RandomText="s")),
                sample.info_with_client_redirect(InfoRequest(ReplicaSet=1, RandomText="a")),
            ]
            assert client.session_replica_set is None
            return out

    for transport in ("ws", "http"):
        client_redirect, server_redirect, own = await asyncio.to_thread(calls, transport)
        assert client_redirect.ServerID in REPLICA_SET_2
        assert client_redirect.RandomText == "c"
        assert server_redirect.ServerID in REPLICA_SET_2
        assert server_redirect.RandomText == "s"
        assert own.ServerID == "a"


async def test_rest_client_redirect_is_a_307_to_a_member(nodes: tuple[Edge, Edge, Edge]) -> None:
    a, b, c = nodes
    members = {n.server_id: n.advertised_addrs for n in (b, c)}
    async with aiohttp.ClientSession() as http:
        path = "/info/client-redirect/2/hello"
        async with http.get(a.url + path, allow_redirects=False) as r:
            assert r.status == 307
            location = r.headers["Location"]
        targets = {f"http://{addr}{path}": sid for sid, addrs in members.items() for addr in addrs}
        assert location in targets, location
        async with http.get(location, allow_redirects=False) as r:
            assert r.status == 200
            assert r.content_type == "application/json"
            body = json.loads(await r.read())
        assert body == {"ServerID": targets[location], "RandomText": "hello"}
        # aiohttp following it on its own lands on the same kind of answer
        async with http.get(a.url + path) as r:
            assert r.status == 200
            assert json.loads(await r.read())["ServerID"] in REPLICA_SET_2
        async with http.get(a.url + "/info/client-redirect/1/here") as r:
            assert json.loads(await r.read()) == {"ServerID": "a", "RandomText": "here"}


async def test_rest_server_redirect_answers_from_a_member(nodes: tuple[Edge, Edge, Edge]) -> None:
    a, _b, _c = nodes
    async with (
        aiohttp.ClientSession() as http,
        http.get(a.url + "/info/server-redirect/2/hi", allow_redirects=False) as r,
    ):
        assert r.status == 200
        body = json.loads(await r.read())
    assert body["ServerID"] in REPLICA_SET_2
    assert body["RandomText"] == "hi"


async def test_a_replica_set_with_no_member_is_an_error(nodes: tuple[Edge, Edge, Edge]) -> None:
    a, _b, _c = nodes
    async with AsyncClient(a.url) as client:
        sample = SampleClient(client)
        with pytest.raises(UnavailableError, match="no live member of replica set 9"):
            await sample.info_with_client_redirect(InfoRequest(ReplicaSet=9))
        with pytest.raises(UnavailableError, match="no live member of replica set 9"):
            await sample.info_with_server_redirect(InfoRequest(ReplicaSet=9))


async def test_generated_tunnel_helpers_call_through_the_tunnel(
    nodes: tuple[Edge, Edge, Edge],
) -> None:
    a, b, _c = nodes
    # An Edge is a RemoteCaller: outside any request, a calls a member of replica set 2.
    res = await tunnel_sample_info_with_client_redirect(a, 2, InfoRequest(ReplicaSet=2))
    assert res.ServerID in REPLICA_SET_2
    named = await tunnel_sample_info_with_server_redirect(
        a, 2, InfoRequest(ReplicaSet=2, RandomText="to c"), server_id="c", timeout=5.0
    )
    assert (named.ServerID, named.RandomText) == ("c", "to c")
    # b calls a; the request runs there with kind TUNNEL
    back = await tunnel_sample_info_with_server_redirect(b, 1, InfoRequest(ReplicaSet=1))
    assert back.ServerID == "a"
    # a forwarded request that is not the callee's is refused, not forwarded again
    with pytest.raises(UnavailableError, match="node c is not in replica set 1"):
        await tunnel_sample_info_with_server_redirect(
            a, 2, InfoRequest(ReplicaSet=1), server_id="c"
        )


def test_the_example_imports_beside_the_echo_example() -> None:
    # Both examples name their service Sample, in proto packages of their own.
    import examples.echo.sample_pb2 as echo_pb2
    from examples.echo.app import app as echo_app

    assert (echo_app.name, app.name) == ("echo", "redirect")
    assert echo_pb2.DESCRIPTOR.services_by_name["Sample"].full_name == "service.Sample"
    assert sample_pb2.DESCRIPTOR.services_by_name["Sample"].full_name == "redirect.Sample"
    assert C_SampleInfoWithServerRedirect == method_id("Sample", "InfoWithServerRedirect")
