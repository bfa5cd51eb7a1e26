"""Edges with a cluster, in one process: real gossip over grpc.aio with mutual TLS on 127.0.0.1.

The membership API handlers use, GetNodes / GetAllNodes with Go Rony's semantics, redirects
filled from the membership (RPC and REST), meta updates, callbacks, advertised addresses and
the settings that configure it all.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from rony.client import AsyncClient
from rony.core import (
    C_GetAllNodes,
    C_GetNodes,
    Edges,
    GetNodes,
    Ping,
    RequestCtx,
    crc64_iso,
    method_id,
)
from rony.core.errors import UnavailableError
from rony.server import App, Edge, EdgeSettings, load_settings
from rony.server.cluster._ca import make_test_pki
from rony.server.cluster._swim import GossipConfig, MembershipError
from rony.server.testing import serve
from tests.cluster._edges import edges, until

C_Go = method_id("ClusterTest", "Go")  # Ping(ID=rs) -> redirect this request to replica set rs


def build_app() -> App:
    app = App("cluster-test")

    async def go(ctx: RequestCtx) -> None:
        ctx.push_redirect_request(ctx.message(Ping).ID)

    app.handle(C_Go, go, request_class=Ping, service="ClusterTest", method="Go")
    app.rest("get", "/go/:ID", C_Go, Ping, json_encode=True)
    return app


@contextlib.asynccontextmanager
async def three_nodes(tmp_path: Path) -> AsyncIterator[list[Edge]]:
    """a (replica set 1, the seed), b and c (replica set 2), all mutual TLS."""
    async with edges(tmp_path, build_app(), {"a": 1, "b": 2, "c": 2}) as nodes:
        yield nodes


async def test_membership_api(tmp_path: Path) -> None:
    async with three_nodes(tmp_path) as (a, b, _c):
        cl = b.cluster
        assert cl is not None
        assert sorted(m.server_id for m in cl.members()) == ["a", "b", "c"]
        assert sorted(m.server_id for m in cl.members_by_replica_set(2)) == ["b", "c"]
        assert [m.server_id for m in cl.members_by_replica_set(1, 7)] == ["a"]
        member = cl.member_by_id("a")
        assert member is not None
        assert member.replica_set == 1
        assert member.hash == crc64_iso("a")
        assert cl.member_by_hash(crc64_iso("c")) == cl.member_by_id("c")
        assert cl.member_by_id("nobody") is None
        assert cl.total_replicas() == 2
        assert member.gateway_addrs == tuple(a.advertised_addrs)
        assert member.to_edge().HostPorts == a.advertised_addrs


async def test_get_nodes_answers_from_the_membership(tmp_path: Path) -> None:
    async with three_nodes(tmp_path) as (a, b, _c), AsyncClient(b.url) as client:
        own = await client.call(C_GetNodes, GetNodes(), Edges)  # none listed: b's replica set
        assert sorted(e.ServerID for e in own.Nodes) == ["b", "c"]
        rs1 = await client.call(C_GetNodes, GetNodes(ReplicaSet=[1]), Edges)
        assert [(e.ServerID, list(e.HostPorts)) for e in rs1.Nodes] == [("a", a.advertised_addrs)]
        both = await client.call(C_GetNodes, GetNodes(ReplicaSet=[1, 2]), Edges)
        assert len(both.Nodes) == 3
        everyone = await client.call(C_GetAllNodes, GetNodes(), Edges)
        assert sorted((e.ServerID, e.ReplicaSet) for e in everyone.Nodes) == [
            ("a", 1),
            ("b", 2),
            ("c", 2),
        ]


async def test_redirects_name_the_members_of_the_replica_set(tmp_path: Path) -> None:
    async with three_nodes(tmp_path) as (a, b, c):
        # RPC: the client follows the redirect to a member of replica set 2 and gets its answer
        async with AsyncClient(a.url) as client:
            with pytest.raises(UnavailableError, match="no live member of replica set 9"):
                await client.call(C_Go, Ping(ID=9))
        # REST: a 307 whose Location is a gateway of a member of replica set 2
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{a.url}/go/2", allow_redirects=False) as r,
        ):
            assert r.status == 307
            location = r.headers["Location"]
        members = {addr for n in (b, c) for addr in n.advertised_addrs}
        assert any(location == f"http://{addr}/go/2" for addr in members), location


async def test_meta_updates_reach_every_member_and_callbacks_fire(tmp_path: Path) -> None:
    async with three_nodes(tmp_path) as (a, _b, c):
        assert a.cluster is not None
        assert c.cluster is not None
        updates: list[str] = []
        left: list[str] = []
        sub = a.cluster.subscribe(
            on_update=lambda m: updates.append(m.server_id),
            on_leave=lambda m: left.append(m.server_id),
        )
        c.cluster.set_gateway_addrs(["10.1.2.3:8080"])

        def a_sees_new_address() -> bool:
            m = a.cluster.member_by_id("c")  # type: ignore[union-attr]
            return m is not None and m.gateway_addrs == ("10.1.2.3:8080",)

        await until(a_sees_new_address, "the meta update to reach a")
        assert updates == ["c"]
        with pytest.raises(MembershipError, match="over the limit of 512"):
            c.cluster.set_gateway_addrs([f"10.0.0.{i}:65535" for i in range(40)])
        await c.stop()  # a graceful stop leaves: a sees it at once
        await until(lambda: left == ["c"], "a to see c leave", limit=5)
        sub.cancel()


async def test_a_wildcard_bind_never_advertises_the_wildcard(tmp_path: Path) -> None:
    app = build_app()
    async with serve(
        app, gateway_host="0.0.0.0", gossip_host="0.0.0.0", insecure_cluster=True
    ) as edge:
        assert edge.cluster is not None
        addrs = edge.advertised_addrs
        assert addrs
        assert not any(a.startswith(("0.0.0.0", "[::]")) for a in addrs)
        assert not edge.cluster.advertised.startswith("0.0.0.0")
        member = edge.cluster.member_by_id(edge.server_id)
        assert member is not None
        assert list(member.gateway_addrs) == addrs
    async with serve(app, gateway_host="0.0.0.0", advertise_host="node-1.example") as edge:
        port = edge.gateway_address[1]
        assert edge.advertised_addrs == [f"node-1.example:{port}"]


def test_cluster_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="--insecure-cluster"):
        EdgeSettings(gossip_host="127.0.0.1")
    with pytest.raises(ValueError, match="all of tls_ca, tls_cert and tls_key"):
        EdgeSettings(gossip_host="127.0.0.1", tls_ca="ca.pem")
    with pytest.raises(ValueError, match="join needs a gossip address"):
        EdgeSettings(join=("127.0.0.1:7946",))
    with pytest.raises(ValueError, match="not HOST:PORT"):
        EdgeSettings(gossip_host="127.0.0.1", insecure_cluster=True, join=("nowhere",))
    assert EdgeSettings(gossip_host="127.0.0.1", insecure_cluster=True).cluster_enabled


def test_cluster_settings_from_environment_and_toml(tmp_path: Path) -> None:
    env = {
        "RONY_GOSSIP": "127.0.0.1:7000",
        "RONY_JOIN": "10.0.0.1:7946,10.0.0.2:7946",
        "RONY_INSECURE_CLUSTER": "true",
    }
    s = load_settings(environ=env)
    assert (s.gossip_host, s.gossip_port) == ("127.0.0.1", 7000)
    assert s.join == ("10.0.0.1:7946", "10.0.0.2:7946")
    toml = tmp_path / "node.toml"
    toml.write_text(
        '[rony]\ngossip = "127.0.0.1:0"\ninsecure_cluster = true\n'
        "[rony.gossip_config]\nprobe_interval = 2\nsuspicion_mult = 5\n"
    )
    s = load_settings(config_file=toml, environ={})
    assert s.gossip_config == GossipConfig(probe_interval=2.0, suspicion_mult=5)
    toml.write_text('[rony]\ngossip = "127.0.0.1:0"\n[rony.gossip_config]\nprobe_intervall = 2\n')
    with pytest.raises(ValueError, match="unknown gossip_config setting 'probe_intervall'"):
        load_settings(config_file=toml, environ={})


def test_bad_tls_files_fail_when_the_edge_is_made(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    make_test_pki(pki, ["a", "b"])
    with pytest.raises(ValueError, match=r"b\.key"):  # a key that is not a.pem's
        Edge(
            build_app(),
            gossip_host="127.0.0.1",
            tls_ca=str(pki / "ca.pem"),
            tls_cert=str(pki / "a.pem"),
            tls_key=str(pki / "b.key"),
        )


async def test_a_seed_name_with_several_addresses_is_several_seeds() -> None:
    import socket

    from rony.server.cluster._cluster import _resolve

    expected = {
        f"[{info[4][0]}]:7946" if ":" in str(info[4][0]) else f"{info[4][0]}:7946"
        for info in socket.getaddrinfo("localhost", 7946, type=socket.SOCK_STREAM)
    }
    # (no name that needs a DNS server: tests send nothing beyond this machine)
    seeds = await _resolve(["localhost:7946", "127.0.0.1:7000", "localhost:port"])
    assert set(seeds[: len(expected)]) == expected
    assert "127.0.0.1:7946" in seeds
    assert seeds[len(expected) :] == ["127.0.0.1:7000", "localhost:port"]  # kept as given
