"""The echo example end to end over real sockets: WebSocket (binary and JSON), HTTP RPC, REST."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from examples.echo.app import app as echo_app
from examples.echo.sample_pb2 import EchoRequest, EchoResponse
from examples.echo.sample_rony import C_EchoResponse, C_SampleEcho
from rony.core import (
    C_Edges,
    C_GetAllNodes,
    C_GetNodes,
    C_Ping,
    C_Pong,
    Edges,
    GetNodes,
    Ping,
    Pong,
    container_envelope,
    decode_envelope,
    envelope,
    unwrap,
)
from rony.server.testing import serve

from .conftest import error_of, recv_env, req


def test_constructor_ids_match_go_rony() -> None:
    # Values from Go Rony's generated example/echo/rpc/sample.rony.go.
    assert C_SampleEcho == 5610266072904040111
    assert C_EchoResponse == 10208763112635265787


async def test_ws_echo_and_ping(http: aiohttp.ClientSession) -> None:
    async with serve(echo_app) as edge, http.ws_connect(edge.url) as ws:
        await ws.send_bytes(req(C_SampleEcho, EchoRequest(ID=3, RandomText="hi"), 11))
        env = await recv_env(ws)
        assert (env.RequestID, env.Constructor) == (11, C_EchoResponse)
        assert unwrap(env, EchoResponse) == EchoResponse(ReqID=3, RandomText="hi")
        await ws.send_bytes(req(C_Ping, Ping(ID=-5), 12))
        env = await recv_env(ws)
        assert (env.RequestID, env.Constructor) == (12, C_Pong)
        assert unwrap(env, Pong).ID == -5


async def test_ws_json_text_frames_get_text_replies(http: aiohttp.ClientSession) -> None:
    async with serve(echo_app) as edge, http.ws_connect(edge.url) as ws:
        await ws.send_str(
            json.dumps(
                {"requestId": "77", "cmd": "SampleEcho", "message": {"ID": "9", "RandomText": "j"}}
            )
        )
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.TEXT
        body = json.loads(msg.data)
        assert body["requestId"] == 77
        assert body["cmd"] == "EchoResponse"
        assert body["message"] == {"ReqID": "9", "RandomText": "j"}
        # A bad JSON envelope gets a JSON Error reply, not silence.
        await ws.send_str("{not json")
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.TEXT
        assert json.loads(msg.data)["cmd"] == "Error"


async def test_ws_json_disabled_refuses_text(http: aiohttp.ClientSession) -> None:
    async with serve(echo_app, json_enabled=False) as edge, http.ws_connect(edge.url) as ws:
        await ws.send_str('{"requestId": 1, "cmd": "Ping", "message": {}}')
        msg = await ws.receive(timeout=5)
        assert json.loads(msg.data)["message"]["Code"] == "E01"


async def test_ws_bad_envelope_gets_error_and_conn_survives(http: aiohttp.ClientSession) -> None:
    async with serve(echo_app) as edge, http.ws_connect(edge.url) as ws:
        await ws.send_bytes(b"\xff\xff\xff garbage")
        err = error_of(await recv_env(ws))
        assert (err.Code, err.Items) == ("E01", "REQUEST")
        await ws.send_bytes(req(12345, Ping(ID=1), 5))  # unknown constructor
        env = await recv_env(ws)
        assert env.RequestID == 5
        assert (error_of(env).Code, error_of(env).Items) == ("E01", "HANDLER")
        await ws.send_bytes(req(C_Ping, Ping(ID=2), 6))
        assert unwrap(await recv_env(ws), Pong).ID == 2


async def test_ws_upgrade_on_any_path_and_x_rony_upgrade(http: aiohttp.ClientSession) -> None:
    async with serve(echo_app) as edge:
        async with http.ws_connect(edge.url + "/any/path/at/all") as ws:
            await ws.send_bytes(req(C_Ping, Ping(ID=1), 1))
            assert unwrap(await recv_env(ws), Pong).ID == 1
        # A proxy that stripped Connection: the X-Rony-Upgrade header still upgrades. Send the
        # handshake by hand without `Connection: Upgrade`.
        host, port = edge.gateway_address
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nX-Rony-Upgrade: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await writer.drain()
        status = await reader.readline()
        assert status.startswith(b"HTTP/1.1 101"), status
        writer.close()


async def test_http_body_in_pieces(http: aiohttp.ClientSession) -> None:
    # A body that arrives after its head, in two writes, with a Content-Length and chunked:
    # the gateway reads it whole (the common small body comes with its head, read without
    # waiting).
    body = req(C_SampleEcho, EchoRequest(ID=9, RandomText="pieces" * 20), 31)
    half = len(body) // 2
    async with serve(echo_app) as edge:
        host, port = edge.gateway_address
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for head, parts in [
                (b"Content-Length: %d\r\n" % len(body), [body[:half], body[half:]]),
                (
                    b"Transfer-Encoding: chunked\r\n",
                    [
                        b"%x\r\n%s\r\n" % (half, body[:half]),
                        b"%x\r\n%s\r\n0\r\n\r\n" % (len(body) - half, body[half:]),
                    ],
                ),
            ]:
                writer.write(b"POST / HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n")
                for part in parts:
                    await writer.drain()
                    await asyncio.sleep(0)  # (not a synchronisation: either order must work)
                    writer.write(part)
                await writer.drain()
                status = await reader.readline()
                assert status.startswith(b"HTTP/1.1 200"), status
                length = 0
                while (line := await reader.readline()) != b"\r\n":
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                env = decode_envelope(await reader.readexactly(length))
                assert env.RequestID == 31
                assert unwrap(env, EchoResponse).RandomText == "pieces" * 20
        finally:
            writer.close()


async def test_http_rpc_echo_ping_and_content_type(http: aiohttp.ClientSession) -> None:
    async with serve(echo_app) as edge:
        body = req(C_SampleEcho, EchoRequest(ID=4, RandomText="post"), 21)
        async with http.post(edge.url, data=body) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "application/x-protobuf"
            env = decode_envelope(await r.read())
        assert env.RequestID == 21
        assert unwrap(env, EchoResponse) == EchoResponse(ReqID=4, RandomText="post")
        # GetNodes / GetAllNodes: this node alone, with its advertised gateway address.
        for c in (C_GetNodes, C_GetAllNodes):
            async with http.post(edge.url + "/rpc", data=req(c, GetNodes(), 3)) as r:
                env = decode_envelope(await r.read())
            assert env.Constructor == C_Edges
            nodes = unwrap(env, Edges).Nodes
            assert len(nodes) == 1
            host, port = edge.gateway_address
            assert nodes[0].ServerID == edge.server_id
            assert list(nodes[0].HostPorts) == [f"{host}:{port}"]


async def test_http_keepalive_is_on(http: aiohttp.ClientSession) -> None:
    conn = aiohttp.TCPConnector(limit=1)
    async with serve(echo_app) as edge, aiohttp.ClientSession(connector=conn) as session:
        for i in range(3):
            async with session.post(edge.url, data=req(C_Ping, Ping(ID=i), i + 1)) as r:
                assert r.headers.get("Connection", "").lower() != "close"
                await r.read()
        # One TCP connection served all three requests.
        assert len(conn._conns) == 1


async def test_http_bad_and_empty_bodies_get_400_error(http: aiohttp.ClientSession) -> None:
    async with serve(echo_app) as edge:
        for body in (b"", b"\xff\xff\xff\xff"):
            async with http.post(edge.url, data=body) as r:
                assert r.status == 400
                err = error_of(decode_envelope(await r.read()))
                assert (err.Code, err.Items) == ("E01", "REQUEST")
        async with http.get(edge.url + "/") as r:  # no RPC (not a POST): 404, JSON
            assert r.status == 404


async def test_http_error_reply_status_from_code(http: aiohttp.ClientSession) -> None:
    async with serve(echo_app) as edge:
        async with http.post(edge.url, data=req(999, Ping(), 8)) as r:
            assert r.status == 400  # E01 HANDLER
            env = decode_envelope(await r.read())
        assert env.RequestID == 8
        assert error_of(env).Items == "HANDLER"


async def test_http_container_replies_come_back_as_one_container(
    http: aiohttp.ClientSession,
) -> None:
    async with serve(echo_app) as edge:
        envs = [envelope(Ping(ID=i), 100 + i) for i in range(3)]
        data = container_envelope(envs, sync_run=True).SerializeToString()
        async with http.post(edge.url, data=data) as r:
            assert r.status == 200
            env = decode_envelope(await r.read())
        from rony.core import C_MessageContainer, decode_container

        assert env.Constructor == C_MessageContainer
        inner = decode_container(env).Envelopes
        assert [e.RequestID for e in inner] == [100, 101, 102]
        assert [unwrap(e, Pong).ID for e in inner] == [0, 1, 2]


async def test_http_json_envelope(http: aiohttp.ClientSession) -> None:
    async with serve(echo_app) as edge:
        body = {"requestId": 5, "cmd": "Ping", "message": {"ID": "3"}}
        async with http.post(edge.url, json=body) as r:
            assert r.status == 200
            assert r.content_type == "application/json"
            out = await r.json()
        assert out["cmd"] == "Pong"
        assert out["message"] == {"ID": "3"}
        assert out["requestId"] == 5


async def test_rest_echo(http: aiohttp.ClientSession) -> None:
    async with serve(echo_app) as edge:
        async with http.get(edge.url + "/echo/7/hello") as r:
            assert r.status == 200
            assert r.content_type == "application/json"
            assert await r.json() == {"ReqID": "7", "RandomText": "hello"}
        async with http.get(edge.url + "/echo/8/a%2Fb%20c") as r:  # URL-decoded per segment
            assert await r.json() == {"ReqID": "8", "RandomText": "a/b c"}
        async with http.get(edge.url + "/echo/notanumber/x") as r:
            assert r.status == 400
            assert (await r.json())["Code"] == "E01"
        async with http.post(edge.url + "/echo/7/hello") as r:  # wrong method: RPC path
            assert r.status == 400


async def test_health_and_cors(http: aiohttp.ClientSession) -> None:
    async with serve(echo_app) as edge:
        async with http.get(edge.url + "/healthz") as r:
            assert r.status == 200
            assert (await r.json())["server_id"] == edge.server_id
        headers = {"Origin": "https://a.example", "Access-Control-Request-Method": "POST"}
        async with http.options(edge.url + "/echo/1/x", headers=headers) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == "https://a.example"
            assert "PUT" in r.headers["Access-Control-Allow-Methods"]
        async with http.get(edge.url + "/echo/1/x", headers={"Origin": "https://b.example"}) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "https://b.example"
    async with serve(echo_app, cors_origins=("https://ok.example",)) as edge:
        async with http.get(
            edge.url + "/echo/1/x", headers={"Origin": "https://evil.example"}
        ) as r:
            assert "Access-Control-Allow-Origin" not in r.headers
        async with http.get(edge.url + "/echo/1/x", headers={"Origin": "https://ok.example"}) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "https://ok.example"
