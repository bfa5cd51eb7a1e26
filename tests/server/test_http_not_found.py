"""What is not RPC (a POST) nor a REST route gets 404/405 with a JSON Error, not a 400 with a
binary protobuf body; RPC POSTs on any path keep their envelope replies."""

from __future__ import annotations

import aiohttp

from examples.echo.app import app as echo_app
from rony.core import C_Ping, Ping, Pong, decode_envelope, unwrap
from rony.server.testing import serve

from .conftest import req


async def test_get_of_an_unknown_path_is_404_json(http: aiohttp.ClientSession) -> None:
    async with serve(echo_app) as edge:
        for path in ("/", "/favicon.ico", "/no/such/route"):
            async with http.get(edge.url + path) as r:
                assert r.status == 404, path
                assert r.content_type == "application/json"
                body = await r.json()
            assert (body["Code"], body["Items"]) == ("E02", "ROUTE")
            assert f"GET {path}" in body["Description"]
            assert "POST" in body["Description"]  # says where RPC is
        async with http.head(edge.url + "/nothing") as r:
            assert r.status == 404


async def test_other_verbs_are_405_with_allow(http: aiohttp.ClientSession) -> None:
    async with serve(echo_app) as edge:
        async with http.put(edge.url + "/x", data=b"abc") as r:
            assert r.status == 405
            assert r.headers["Allow"] == "POST"
            assert r.content_type == "application/json"
            assert (await r.json())["Items"] == "METHOD"
        # The echo example's REST route is GET /echo/:id/:text: that path also allows GET.
        async with http.delete(edge.url + "/echo/7/hello") as r:
            assert r.status == 405
            assert r.headers["Allow"] == "GET, POST"
            assert "DELETE /echo/7/hello" in (await r.json())["Description"]
        async with http.get(edge.url + "/echo/7/hello") as r:  # the route itself still works
            assert await r.json() == {"ReqID": "7", "RandomText": "hello"}


async def test_rpc_post_on_any_path_keeps_envelope_replies(http: aiohttp.ClientSession) -> None:
    async with serve(echo_app) as edge:
        for path in ("/", "/rpc", "/any/path"):
            async with http.post(edge.url + path, data=req(C_Ping, Ping(ID=4))) as r:
                assert r.status == 200
                assert r.content_type == "application/x-protobuf"
                assert unwrap(decode_envelope(await r.read()), Pong).ID == 4
        async with http.post(edge.url + "/", data=b"") as r:  # a bad RPC stays an E01 envelope
            assert r.status == 400
            assert r.content_type == "application/x-protobuf"
