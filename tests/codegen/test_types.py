"""mypy --strict on generated code, and on code that uses it (typed bases and stubs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rony.server.codegen import generate
from tests.codegen._util import FIXTURES, fixture_protos, mypy_strict

USER_CODE = """\
from __future__ import annotations

from cgcalc.calc_pb2 import CalcOperands, CalcResult
from cgcalc.calc_rony import (
    C_CalcAdd,
    CalcBase,
    CalcClient,
    CalcSyncClient,
    register_calc,
    tunnel_calc_add,
    tunnel_calc_reset,
)
from rony.client import AsyncClient, Client
from rony.core import RequestCtx
from rony.server import App, Edge


class Calc(CalcBase):
    async def add(self, ctx: RequestCtx, req: CalcOperands) -> CalcResult:
        return CalcResult(value=req.a + req.b)

    async def div(self, ctx: RequestCtx, req: CalcOperands) -> CalcResult:
        return CalcResult(value=req.a // req.b)

    async def reset(self, ctx: RequestCtx, req: CalcOperands) -> CalcResult:
        return CalcResult()


app = App("calc")
register_calc(app, Calc())
register_calc(Edge(App("other")), Calc())


async def use(client: AsyncClient) -> int:
    res = await CalcClient(client).add(CalcOperands(a=1, b=2), header={"k": "v"}, timeout=1.0)
    return res.value + C_CalcAdd


def use_sync(client: Client) -> str:
    return CalcSyncClient(client).div(CalcOperands(a=1, b=1)).by


async def use_tunnel(ctx: RequestCtx, edge: Edge) -> int:
    # Both a RequestCtx and an Edge are a rony.core.RemoteCaller.
    res = await tunnel_calc_reset(ctx, 2, CalcOperands(a=1), timeout=1.0)
    other = await tunnel_calc_add(edge, 2, CalcOperands(), server_id="b")
    return res.value + other.value
"""

WRONG_CODE = """\
from __future__ import annotations

from cgcalc.calc_pb2 import CalcOperands, CalcResult
from cgcalc.calc_rony import CalcClient, tunnel_calc_add
from rony.client import AsyncClient
from rony.core import RequestCtx


async def use(client: AsyncClient) -> str:
    res = await CalcClient(client).add(CalcOperands(a=1))
    return res.value


async def use_tunnel(ctx: RequestCtx) -> int:
    res = await tunnel_calc_add(ctx, 2, CalcResult())
    return res.value
"""


@pytest.mark.slow
def test_generated_code_passes_mypy_strict(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    generate([FIXTURES / p for p in fixture_protos()], out, [FIXTURES])
    (out / "user_code.py").write_text(USER_CODE)
    (out / "wrong_code.py").write_text(WRONG_CODE)
    files = [*sorted(out.rglob("*_rony.py")), *sorted(out.rglob("*_cli.py"))]
    files += [out / "user_code.py", out / "wrong_code.py"]
    res = mypy_strict(files, [out], tmp_path)
    lines = [ln for ln in res.stdout.splitlines() if ": error:" in ln]
    # Exactly the planted errors: the stub's return type is known (int, not str), and a
    # tunnel helper's request type (CalcOperands, not CalcResult).
    assert len(lines) == 2, res.stdout + res.stderr
    assert "wrong_code.py:11: error: Incompatible return value type" in lines[0]
    assert '(got "int", expected "str")' in lines[0]
    assert 'wrong_code.py:15: error: Argument 3 to "tunnel_calc_add"' in lines[1]
    assert '"CalcResult"; expected "CalcOperands"' in lines[1]
