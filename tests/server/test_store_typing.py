"""``Edge.store`` / ``edge_of(ctx).store``: typed without None (a user's mypy --strict passes),
a clear error before ``start()``."""

from __future__ import annotations

from pathlib import Path

import pytest

from rony.server import App, Edge
from tests.codegen._util import mypy_strict

USER_CODE = """\
from __future__ import annotations

from rony.core import Pong, RequestCtx
from rony.server import App, Edge, edge_of

app = App("counter")


async def count(ctx: RequestCtx) -> None:
    store = edge_of(ctx).store
    n = int(await store.get(b"hits") or b"0") + 1
    await store.set(b"hits", str(n).encode(), ttl=60)
    ctx.push_message(Pong(ID=n))


app.handle(77, count)


async def size(edge: Edge) -> int:
    return await edge.store.count()
"""


def test_store_before_start_is_a_clear_error(tmp_path: Path) -> None:
    edge = Edge(App("early"), data_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match=r"store .* not open.*start\(\)"):
        _ = edge.store


async def test_store_stays_reachable_after_stop(tmp_path: Path) -> None:
    async with Edge(App("s"), data_dir=str(tmp_path), gateway_port=0) as edge:
        store = edge.store
        await store.set(b"k", b"v")
    assert edge.store is store  # the closed store, as before: stop() does not forget it
    assert store.store.closed


@pytest.mark.slow
def test_user_code_using_the_store_passes_mypy_strict(tmp_path: Path) -> None:
    src = tmp_path / "user_code.py"
    src.write_text(USER_CODE)
    res = mypy_strict([src], [], tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
