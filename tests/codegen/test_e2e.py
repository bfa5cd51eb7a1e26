"""End to end: generate a fixture proto into a temp folder, import it, serve it, and call it
through the async stub (WebSocket), the sync stub (HTTP and WebSocket), REST and TestClient."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest

from rony.client import AsyncClient, Client
from rony.core import Kind, RequestCtx, envelope, registry
from rony.core.errors import AccessError, InvalidError, RonyError
from rony.core.testing import MemoryConn
from rony.server import App, Edge
from rony.server.codegen import generate
from rony.server.codegen.plugin import generate as plugin_generate
from rony.server.testing import TestClient, serve
from tests.codegen._util import FIXTURES, GOLDEN, request_for, run

PROTO = "cgcalc/calc.proto"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen")
    generate([FIXTURES / PROTO], out, [FIXTURES])
    return out


@pytest.fixture(scope="module")
def calc(generated: Path) -> Iterator[ModuleType]:
    # The module is imported once per process (its descriptors go into the default pool).
    sys.path.insert(0, str(generated))
    try:
        yield importlib.import_module("cgcalc.calc_rony")
    finally:
        sys.path.remove(str(generated))


@pytest.fixture(scope="module")
def pb(calc: ModuleType) -> ModuleType:
    return importlib.import_module("cgcalc.calc_pb2")


def _impl(calc: ModuleType, pb: ModuleType) -> Any:
    class Calc(calc.CalcBase):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            self.resets = 0

        async def add(self, ctx: RequestCtx, req: Any) -> Any:
            return pb.CalcResult(value=req.a + req.b, by=ctx.kind.name)

        async def div(self, ctx: RequestCtx, req: Any) -> Any:
            if req.b == 0:
                raise InvalidError("B", "division by zero")
            return pb.CalcResult(value=req.a // req.b)

        async def reset(self, ctx: RequestCtx, req: Any) -> Any:
            self.resets += 1
            return pb.CalcResult()

    return Calc()


def _app(calc: ModuleType, pb: ModuleType, *pre: Any) -> tuple[App, Any]:
    app = App("calc")
    impl = _impl(calc, pb)
    calc.register_calc(app, impl, *pre)
    return app, impl


def test_generated_module_registers_ids(calc: ModuleType, pb: ModuleType) -> None:
    assert registry.class_of(calc.C_CalcAdd) is pb.CalcOperands
    assert registry.class_of(calc.C_CalcResult) is pb.CalcResult
    assert registry.name_of(calc.C_CalcDiv) == "CalcDiv"


def test_generation_does_not_depend_on_what_this_process_imported(
    calc: ModuleType, tmp_path: Path
) -> None:
    # The generated module's ids are now in the process-wide registry; the plugin must not
    # mistake them for rony.core built-ins (an in-process `generate` once did).
    assert registry.class_of(calc.C_CalcAdd) is not None
    response = plugin_generate(request_for([PROTO], tmp_path))
    assert not response.error
    assert response.file[0].content == (GOLDEN / "cgcalc" / "calc_rony.py").read_text()


def test_base_class_is_abstract(calc: ModuleType) -> None:
    with pytest.raises(TypeError, match="abstract"):
        calc.CalcBase()


async def test_async_stub_over_websocket(calc: ModuleType, pb: ModuleType) -> None:
    app, impl = _app(calc, pb)
    async with serve(app) as edge, AsyncClient(edge.url) as client:
        stub = calc.CalcClient(client)
        res = await stub.add(pb.CalcOperands(a=2, b=40))
        assert isinstance(res, pb.CalcResult)
        assert (res.value, res.by) == (42, "GATEWAY")
        with pytest.raises(InvalidError) as info:
            await stub.div(pb.CalcOperands(a=1, b=0))
        assert info.value.items == "B"
        assert not hasattr(stub, "reset")  # internal: no stub
        # ... and refused from the gateway even when called by hand.
        with pytest.raises(RonyError):
            await client.call(calc.C_CalcReset, pb.CalcOperands(), pb.CalcResult)
        assert impl.resets == 0


@pytest.mark.parametrize("transport", ["http", "ws"])
async def test_sync_stub(calc: ModuleType, pb: ModuleType, transport: str) -> None:
    app, _ = _app(calc, pb)
    async with serve(app) as edge:

        def blocking() -> tuple[int, str]:
            with Client(edge.url, transport=transport) as client:  # type: ignore[arg-type]
                stub = calc.CalcSyncClient(client)
                res = stub.div(pb.CalcOperands(a=9, b=2), timeout=5.0)
                with pytest.raises(InvalidError):
                    stub.div(pb.CalcOperands(a=9, b=0))
                return res.value, type(res).__name__

        assert await asyncio.to_thread(blocking) == (4, "CalcResult")


async def test_rest_routes(calc: ModuleType, pb: ModuleType) -> None:
    app, _ = _app(calc, pb)
    async with serve(app) as edge, aiohttp.ClientSession() as http:
        async with http.get(f"{edge.url}/calc/add/2/40") as r:
            assert r.status == 200
            assert json.loads(await r.read()) == {"value": "42", "by": "GATEWAY"}
        async with http.get(f"{edge.url}/calc/div?a=9&b=3") as r:
            assert r.status == 200
            assert json.loads(await r.read()) == {"value": "3"}
        async with http.get(f"{edge.url}/calc/div?a=9&b=0") as r:
            assert r.status == 400
            body = json.loads(await r.read())
            assert (body["Code"], body["Items"]) == ("E01", "B")


async def test_pre_handlers_run_first_and_headers_reach_them(
    calc: ModuleType, pb: ModuleType
) -> None:
    seen: list[str] = []

    async def need_token(ctx: RequestCtx) -> None:
        seen.append(ctx.header.get("token", ""))
        if ctx.header.get("token") != "secret":
            ctx.push_error(AccessError("TOKEN"))

    app, _ = _app(calc, pb, need_token)
    async with serve(app) as edge, AsyncClient(edge.url) as client:
        stub = calc.CalcClient(client)
        with pytest.raises(AccessError):
            await stub.add(pb.CalcOperands(a=1, b=1))
        res = await stub.add(pb.CalcOperands(a=1, b=1), header={"token": "secret"})
        assert res.value == 2
    assert seen == ["", "secret"]


async def test_register_on_an_edge_and_in_process(calc: ModuleType, pb: ModuleType) -> None:
    edge = Edge(App("calc-edge"))
    calc.register_calc(edge, _impl(calc, pb))
    assert calc.C_CalcAdd in edge.app.handlers
    assert edge.app.handlers[calc.C_CalcReset].internal
    async with TestClient(edge) as client:
        res = await client.call(calc.C_CalcAdd, pb.CalcOperands(a=3, b=4), pb.CalcResult)
        assert res.value == 7
        rest = await client.rest("GET", "/calc/add/5/6")
        assert rest.status == 200
        assert json.loads(rest.body)["value"] == "11"


async def test_internal_method_reachable_through_the_tunnel_kind(
    calc: ModuleType, pb: ModuleType
) -> None:
    # rony_internal methods run when the dispatch comes from another node (kind TUNNEL).
    app, impl = _app(calc, pb)
    async with TestClient(app) as client:
        assert client.edge is not None
        env = envelope(pb.CalcOperands(), 5, constructor=calc.C_CalcReset)
        conn = MemoryConn(persistent=False)
        replies = await client.edge.dispatcher.dispatch(conn, env, kind=Kind.TUNNEL)
    assert impl.resets == 1
    assert [r.Constructor for r in replies] == [calc.C_CalcResult]


@pytest.mark.slow
def test_client_only_program_imports_stubs_without_rony_server(generated: Path) -> None:
    # A program with rony-core + rony-client only: block rony.server (and aiohttp's server
    # parts) and import the generated module.
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'rony.server' or name.startswith('rony.server.'):\n"
        "            raise ImportError('rony.server is not installed')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"sys.path.insert(0, {str(generated)!r})\n"
        "from cgcalc.calc_rony import C_CalcAdd, CalcClient, CalcSyncClient\n"
        "from cgcalc.calc_pb2 import CalcOperands\n"
        "from rony.client import Client\n"
        "assert not any(m.startswith('rony.server') for m in sys.modules)\n"
        "print(C_CalcAdd, CalcClient.__name__, CalcSyncClient.__name__)\n"
    )
    res = run([sys.executable, "-c", code])
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["3702893579495285056", "CalcClient", "CalcSyncClient"]


async def test_message_classes_named_like_the_generated_locals(tmp_path: Path) -> None:
    # Legal (if unusual) lower-case message names equal to names the generated code binds
    # itself: the handler's `req = ctx.message(req)` raised UnboundLocalError, and a message
    # named `cast` replaced typing.cast.
    protos = tmp_path / "protos" / "cglocals"
    protos.mkdir(parents=True)
    (protos / "names.proto").write_text(
        'syntax = "proto3";\npackage cglocals;\n'
        "service Names {\n"
        "  rpc Take (req) returns (res);\n"
        "  rpc Wrap (target) returns (cast);\n"
        "}\n"
        "message req { int64 id = 1; }\nmessage res { int64 id = 1; }\n"
        "message target { int64 id = 1; }\nmessage cast { int64 id = 1; }\n"
    )
    out = tmp_path / "out"
    generate([protos / "names.proto"], out, [tmp_path / "protos"])
    sys.path.insert(0, str(out))
    try:
        mod = importlib.import_module("cglocals.names_rony")
        pbm = importlib.import_module("cglocals.names_pb2")
    finally:
        sys.path.remove(str(out))

    class Impl(mod.NamesBase):  # type: ignore[name-defined,misc]
        async def take(self, ctx: RequestCtx, req: Any) -> Any:
            return pbm.res(id=req.id + 1)

        async def wrap(self, ctx: RequestCtx, req: Any) -> Any:
            return pbm.cast(id=req.id * 2)

    app = App("names")
    mod.register_names(app, Impl())
    async with TestClient(app) as client:
        assert (await client.call(mod.C_NamesTake, pbm.req(id=1), pbm.res)).id == 2
        assert (await client.call(mod.C_NamesWrap, pbm.target(id=3), pbm.cast)).id == 6
