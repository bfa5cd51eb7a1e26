"""A repository error a handler lets escape reaches the client as a Rony error with its own
code (E08 RECORD for a create of a taken key, E02 RECORD for an update of a missing one), not
as E00; other store errors stay internal. A real node, reached over WebSocket and HTTP."""

from __future__ import annotations

import logging

import pytest

from rony.client import AsyncClient
from rony.core import Ping, Pong, RequestCtx, method_id
from rony.core import errors as rony_errors
from rony.server import App, edge_of
from rony.server.testing import serve
from rony.store.errors import StorageError
from rony.store.repo import AsyncRepository
from tests.store._repo_models import Post, spec

C_Create = method_id("RepoErrors", "Create")  # Ping(ID=n) -> creates post n, Pong(ID=n)
C_Update = method_id("RepoErrors", "Update")  # Ping(ID=n) -> updates post n, Pong(ID=n)
C_Broken = method_id("RepoErrors", "Broken")  # Ping -> the handler raises a StorageError

SPEC = spec()


def _post(n: int) -> object:
    return Post(user_id=1, created=1_700_000_000, id=n, topic="t", title=f"post {n}")


def build_app() -> App:
    app = App("repo-errors")

    async def create(ctx: RequestCtx) -> None:
        n = ctx.message(Ping).ID
        await AsyncRepository(SPEC, edge_of(ctx).store).create(_post(n))
        ctx.push_message(Pong(ID=n))

    async def update(ctx: RequestCtx) -> None:
        n = ctx.message(Ping).ID
        await AsyncRepository(SPEC, edge_of(ctx).store).update(_post(n))
        ctx.push_message(Pong(ID=n))

    async def broken(ctx: RequestCtx) -> None:
        raise StorageError("disk on fire")

    app.handle(C_Create, create)
    app.handle(C_Update, update)
    app.handle(C_Broken, broken)
    return app


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_repository_errors_have_their_codes(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="rony.server")
    async with (
        serve(build_app()) as edge,
        AsyncClient(edge.url, transport=transport) as c,  # type: ignore[arg-type]
    ):
        assert await c.call(C_Create, Ping(ID=5), Pong) == Pong(ID=5)
        with pytest.raises(rony_errors.AlreadyExistsError) as exists:
            await c.call(C_Create, Ping(ID=5), Pong)
        assert (exists.value.code, exists.value.items) == ("E08", "RECORD")
        assert "trepo.Post" in exists.value.description
        assert "exists" in exists.value.description

        with pytest.raises(rony_errors.UnavailableError) as missing:
            await c.call(C_Update, Ping(ID=6), Pong)
        assert (missing.value.code, missing.value.items) == ("E02", "RECORD")
        assert "does not exist" in missing.value.description
        assert await c.call(C_Update, Ping(ID=5), Pong) == Pong(ID=5)  # it is there: fine

        # The client's mistakes above are answered, not logged as the server's failures.
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

        # Any other store error is the server's failure: E00 with nothing of its text, and
        # its traceback in the log.
        with (
            caplog.at_level(logging.ERROR, logger="rony.server"),
            pytest.raises(rony_errors.InternalError) as internal,
        ):
            await c.call(C_Broken, Ping(ID=1), Pong)
        assert (internal.value.code, internal.value.items) == ("E00", "SERVER")
        assert "fire" not in internal.value.description
        logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
        assert any(isinstance(e, StorageError) for e in logged)
        # The node keeps serving on the same connection.
        assert await c.call(C_Create, Ping(ID=7), Pong) == Pong(ID=7)
