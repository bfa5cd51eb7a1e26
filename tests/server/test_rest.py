"""REST routes: router priority, exact binding of every scalar kind, JSON and protobuf bodies,
Error and Redirect mapping. In-process (TestClient) and over a socket."""

from __future__ import annotations

import io
import json
from typing import Any

import aiohttp
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from rony.core import (
    Edge,
    Ping,
    Pong,
    RequestCtx,
    envelope,
    message_id,
    registry,
)
from rony.core.errors import UnavailableError
from rony.server import App
from rony.server._app import RestRoute
from rony.server.gateway._rest import RestRouter, split_path
from rony.server.testing import TestClient, serve

F = descriptor_pb2.FieldDescriptorProto


def _kinds_class() -> type[Message]:
    fdp = descriptor_pb2.FileDescriptorProto(name="rest_kinds_test.proto", package="resttest")
    fdp.enum_type.add(name="Color").value.extend(
        [
            descriptor_pb2.EnumValueDescriptorProto(name="RED", number=0),
            descriptor_pb2.EnumValueDescriptorProto(name="GREEN", number=1),
        ]
    )
    msg = fdp.message_type.add(name="Kinds")
    fields = [
        ("i32", F.TYPE_INT32),
        ("i64", F.TYPE_INT64),
        ("u32", F.TYPE_UINT32),
        ("u64", F.TYPE_UINT64),
        ("s64", F.TYPE_SINT64),
        ("fx64", F.TYPE_FIXED64),
        ("f32", F.TYPE_FLOAT),
        ("f64", F.TYPE_DOUBLE),
        ("b", F.TYPE_BOOL),
        ("s", F.TYPE_STRING),
        ("by", F.TYPE_BYTES),
        ("e", F.TYPE_ENUM),
    ]
    for n, (name, t) in enumerate(fields, 1):
        f = msg.field.add(name=name, number=n, type=t, label=F.LABEL_OPTIONAL)
        if t == F.TYPE_ENUM:
            f.type_name = ".resttest.Color"
    msg.field.add(name="rep", number=50, type=F.TYPE_INT32, label=F.LABEL_REPEATED)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("resttest.Kinds"))


Kinds = _kinds_class()
C_Kinds = registry.register_message(Kinds)
C_Echo = message_id("RestTestEcho")
C_Fail = message_id("RestTestFail")
C_Move = message_id("RestTestMove")


def _app() -> App:
    app = App("rest")

    async def echo(ctx: RequestCtx) -> None:
        ctx.push_message(ctx.message(Kinds))

    async def fail(ctx: RequestCtx) -> None:
        raise UnavailableError("ITEM", "gone")

    async def move(ctx: RequestCtx) -> None:
        req = ctx.message(Ping)
        if req.ID == 1:
            ctx.push_redirect_session(0)
        else:
            ctx.push_redirect_request(0)

    app.handle(C_Echo, echo)
    app.handle(C_Fail, fail)
    app.handle(C_Move, move)
    all_fields = ["i32", "i64", "u32", "u64", "s64", "fx64", "f32", "f64", "b", "s", "by", "e"]
    app.rest(
        "get",
        "/kinds/:i32/:I64",
        C_Echo,
        Kinds,
        bind_path_param=["I64=i64"],
        bind_query_param=[f"{f}={f}" for f in all_fields if f not in ("i32", "i64")],
        json_encode=True,
    )
    app.rest("post", "/kinds/bin", C_Echo, Kinds)
    app.rest("post", "/kinds/json", C_Echo, Kinds, json_encode=True)
    app.rest("get", "/fail", C_Fail, Ping, json_encode=True)
    app.rest("get", "/move/:ID", C_Move, Ping, json_encode=True)
    return app


def test_router_priority_static_param_wildcard() -> None:
    def route(path: str) -> RestRoute:
        return RestRoute("GET", path, 1, Ping)

    r = RestRouter([route("/a/b"), route("/a/:x"), route("/a/*rest"), route("/*all")])

    def match(path: str) -> tuple[str, dict[str, str]] | None:
        m = r.match("get", split_path(path))
        return (m[0].path, m[1]) if m else None

    assert match("/a/b") == ("/a/b", {})
    assert match("/a/c") == ("/a/:x", {"x": "c"})
    assert match("/a/b/c") == ("/a/*rest", {"rest": "b/c"})
    assert match("/a/x%2Fy") == ("/a/:x", {"x": "x/y"})  # URL-decoded, still one segment
    assert match("/z/y") == ("/*all", {"all": "z/y"})
    assert r.match("POST", ["a", "b"]) is None


def test_rest_route_validation() -> None:
    app = App()
    with pytest.raises(ValueError, match="no field"):
        app.rest("get", "/x/:id", 1, Kinds, bind_path_param=["id=nope"])
    with pytest.raises(ValueError, match="not a singular scalar"):
        app.rest("get", "/x", 1, Kinds, bind_query_param=["r=rep"])
    with pytest.raises(ValueError, match="param=Field"):
        app.rest("get", "/x", 1, Kinds, bind_query_param=["oops"])
    with pytest.raises(ValueError, match="method"):
        app.rest("fetch", "/x", 1, Kinds)
    # Routes the router cannot tell apart fail at registration, not when the Edge starts.
    app.rest("get", "/a/:x", 1, Kinds)
    with pytest.raises(ValueError, match=r"parameter :y clashes with :x"):
        app.rest("get", "/a/:y/more", 2, Kinds)
    app.rest("get", "/w/*rest", 1, Kinds)
    with pytest.raises(ValueError, match=r"wildcard \*all clashes with /w/\*rest"):
        app.rest("get", "/w/*all", 2, Kinds)
    # One path for two different methods is refused; the same method again replaces its route.
    with pytest.raises(ValueError, match="already the route of constructor 1"):
        app.rest("get", "/a/:x", 2, Kinds)
    app.rest("get", "/a/:x", 1, Kinds, json_encode=True)
    assert sorted((r.path, r.json_encode) for r in app.routes) == [
        ("/a/:x", True),
        ("/w/*rest", False),
    ]

    # An internal method is refused from the gateway: a REST route to it could never run.
    async def h(ctx: RequestCtx) -> None:
        pass

    app.handle(77, h, internal=True)
    with pytest.raises(ValueError, match="internal method"):
        app.rest("get", "/internal", 77, Kinds)
    app.rest("get", "/public", 78, Kinds)
    with pytest.raises(ValueError, match="has a REST route"):
        app.handle(78, h, internal=True)
    # The gateway answers every OPTIONS request as a CORS preflight: such a route never runs.
    with pytest.raises(ValueError, match="CORS preflight"):
        app.rest("options", "/x", 1, Kinds)


async def test_every_scalar_kind_binds_exactly() -> None:
    async with TestClient(_app()) as client:
        q = (
            "u32=4294967295&u64=18446744073709551615&s64=-9&fx64=7&f32=1.5"
            "&f64=0.1&b=true&s=h%C3%A9&by=raw&e=GREEN"
        )
        res = await client.rest("GET", f"/kinds/-2147483648/9223372036854775807?{q}")
        assert res.status == 200, res.body
        assert res.headers["Content-Type"] == "application/json"
        got = Kinds()
        from google.protobuf import json_format

        json_format.Parse(res.body, got)
        want: dict[str, Any] = dict(
            i32=-(2**31),
            i64=2**63 - 1,
            u32=2**32 - 1,
            u64=2**64 - 1,
            s64=-9,
            fx64=7,
            f32=1.5,
            f64=0.1,  # exact double (Go parsed it as float32)
            b=True,
            s="hé",
            by=b"raw",
            e=1,
        )
        for k, v in want.items():
            assert getattr(got, k) == v, k
        res = await client.rest("GET", "/kinds/1/2?e=1&b=0")
        assert res.status == 200
        for bad in ("/kinds/1/2?u32=-1", "/kinds/1/2?b=maybe", "/kinds/x/2", "/kinds/1/2?e=BLUE"):
            res = await client.rest("GET", bad)
            assert res.status == 400, bad
            assert b'"E01"' in res.body
        # int()/float() alone took these ("1_000" bound 1000, "%20" spaces, Arabic-Indic digits).
        for bad in (
            "/kinds/1_000/2",
            "/kinds/%207/2",
            "/kinds/%D9%A3/2",
            "/kinds/1/2?u64=%2B1_0",
            "/kinds/1/2?f64=1_0.5",
            "/kinds/1/2?f32=%201.5",
            "/kinds/1/2?e=%D9%A1",
        ):
            res = await client.rest("GET", bad)
            assert res.status == 400, bad
            assert b'"E01"' in res.body
        res = await client.rest("GET", "/kinds/+3/-4?f64=-1.5e3&f32=.5&u64=%2B8")
        assert res.status == 200, res.body


async def test_protobuf_and_json_bodies() -> None:
    async with TestClient(_app()) as client:
        res = await client.rest("POST", "/kinds/bin", Kinds(s="bin", i32=3).SerializeToString())
        assert res.status == 200
        assert res.headers["Content-Type"] == "application/x-protobuf"
        assert Kinds.FromString(res.body) == Kinds(s="bin", i32=3)
        res = await client.rest("POST", "/kinds/json", b'{"s": "js", "u64": "5"}')
        assert res.status == 200
        assert b'"js"' in res.body
        res = await client.rest("POST", "/kinds/json", b"{broken")
        assert res.status == 400


async def test_json_body_is_checked_against_the_nodes_own_limit(
    http: aiohttp.ClientSession,
) -> None:
    big = b'{"s": "' + b"x" * (5 * 1024 * 1024) + b'"}'  # over the 4 MiB default
    async with (
        serve(_app(), max_message_size=8 * 1024 * 1024) as edge,
        http.post(edge.url + "/kinds/json", data=io.BytesIO(big)) as r,
    ):
        assert r.status == 200
        assert len((await r.json())["s"]) == 5 * 1024 * 1024
    async with TestClient(_app(), max_message_size=8 * 1024 * 1024) as client:
        assert (await client.rest("POST", "/kinds/json", big)).status == 200
    async with TestClient(_app()) as client:  # default limit: refused, 413 as the gateway
        assert (await client.rest("POST", "/kinds/json", big)).status == 413


async def test_test_client_rest_refuses_a_body_over_the_limit_as_the_gateway(
    http: aiohttp.ClientSession,
) -> None:
    # TestClient decoded any binary body whatever its size; the gateway answers 413.
    body = Kinds(s="x" * 64).SerializeToString()
    async with (
        serve(_app(), max_message_size=32) as edge,
        http.post(edge.url + "/kinds/bin", data=body) as r,
    ):
        gateway = (r.status, await r.json())
    async with TestClient(_app(), max_message_size=32) as client:
        res = await client.rest("POST", "/kinds/bin", body)
    assert (res.status, json.loads(res.body)) == gateway
    assert gateway[0] == 413


async def test_error_and_redirect_mapping(http: aiohttp.ClientSession) -> None:
    async with serve(_app(), advertised_addrs=("other.example:9000",)) as edge:
        async with http.get(edge.url + "/fail") as r:
            assert r.status == 404  # E02 Unavailable
            assert await r.json() == {"Code": "E02", "Items": "ITEM", "Description": "gone"}
        async with http.get(edge.url + "/move/1?x=y", allow_redirects=False) as r:
            assert r.status == 308
            assert r.headers["Location"] == "http://other.example:9000/move/1?x=y"
        async with http.get(edge.url + "/move/2", allow_redirects=False) as r:
            assert r.status == 307
        # GetNodes gives the advertised address too.
        assert [list(e.HostPorts) for e in edge.members()] == [["other.example:9000"]]
        assert isinstance(edge.members()[0], Edge)


async def test_rest_over_socket_with_query_and_conn_values(http: aiohttp.ClientSession) -> None:
    app = _app()
    seen: dict[str, Any] = {}

    async def spy(ctx: RequestCtx) -> None:
        seen.update(i32=ctx.conn.get("i32"), q=ctx.conn.get("q"), h=ctx.conn.get("X-Hdr"))
        ctx.push_message(Pong(ID=1))

    app.handle(C_Echo, spy)
    async with (
        serve(app) as edge,
        http.get(edge.url + "/kinds/5/6?q=z", headers={"x-hdr": "v"}) as r,
    ):
        assert r.status == 200
    assert seen == {"i32": "5", "q": "z", "h": "v"}


async def test_a_repeated_query_parameter_is_its_last_value_everywhere(
    http: aiohttp.ClientSession,
) -> None:
    # REST binding took the last value and the conn values the first, so a handler saw
    # ctx.conn.get("s") == "a" next to a bound field s == "b".
    app = _app()
    seen: list[Any] = []

    async def spy(ctx: RequestCtx) -> None:
        seen.append((ctx.conn.get("s"), ctx.conn.get("u32")))
        ctx.push_message(ctx.message(Kinds))

    app.handle(C_Echo, spy)
    path = "/kinds/5/6?s=a&u32=1&s=b&u32=2"
    async with serve(app) as edge:
        async with http.get(edge.url + path) as r:
            assert r.status == 200
            body = await r.json()
        assert (body["s"], body["u32"]) == ("b", 2)
        assert seen == [("b", "2")]
        async with http.ws_connect(edge.url + "/?s=a&s=b") as ws:  # a handshake's query too
            await ws.send_bytes(envelope(Kinds(), 1, constructor=C_Echo).SerializeToString())
            await ws.receive(timeout=5)
        assert seen[-1] == ("b", None)
    async with TestClient(app) as client:  # the in-process client agrees
        res = await client.rest("GET", path)
        assert (json.loads(res.body)["s"], json.loads(res.body)["u32"]) == ("b", 2)
        assert seen[-1] == ("b", "2")


def _closed_enum_class() -> type[Message]:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="rest_closed_enum_test.proto", package="restclosed", syntax="proto2"
    )
    fdp.enum_type.add(name="Shade").value.add(name="DARK", number=0)
    msg = fdp.message_type.add(name="Pick")
    msg.field.add(
        name="c", number=1, type=F.TYPE_ENUM, type_name=".restclosed.Shade", label=F.LABEL_OPTIONAL
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("restclosed.Pick"))


async def test_a_number_a_closed_enum_does_not_list_is_e01(http: aiohttp.ClientSession) -> None:
    # protobuf refuses the number with a ValueError, which escaped bind_request: the gateway
    # answered 500 (an unhandled exception in aiohttp's handler), the TestClient raised it.
    app = App("closed")

    async def echo(ctx: RequestCtx) -> None:
        ctx.push_message(Pong(ID=1))

    app.handle(C_Echo, echo)
    app.rest("get", "/pick/:c", C_Echo, _closed_enum_class(), json_encode=True)
    async with serve(app) as edge:
        async with http.get(edge.url + "/pick/0") as r:
            assert r.status == 200
        async with http.get(edge.url + "/pick/7") as r:
            assert r.status == 400
            body = await r.json()
        assert (body["Code"], body["Items"]) == ("E01", "REQUEST")
        assert "not a value of Shade" in body["Description"]
    async with TestClient(app) as client:
        assert (await client.rest("GET", "/pick/7")).status == 400
