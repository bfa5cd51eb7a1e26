"""A generated handler whose method returns None (a forgotten ``return``) or the wrong message
fails with an error naming the method and what it returned, not an AttributeError deep in
rony.core; the client gets E00 as for any handler failure."""

from __future__ import annotations

import logging

import pytest

from examples.echo.sample_pb2 import EchoRequest, EchoResponse
from examples.echo.sample_rony import C_SampleEcho, SampleBase, register_sample
from rony.core import Pong, RequestCtx
from rony.core.errors import InternalError
from rony.server import App
from rony.server.testing import TestClient


class Forgetful(SampleBase):
    async def echo(self, ctx: RequestCtx, req: EchoRequest) -> EchoResponse:
        EchoResponse(ReqID=req.ID)  # built, never returned
        return None  # type: ignore[return-value]


class WrongType(SampleBase):
    async def echo(self, ctx: RequestCtx, req: EchoRequest) -> EchoResponse:
        return Pong(ID=1)  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("impl", "returned"),
    [(Forgetful(), "returned None"), (WrongType(), "returned ID: 1")],
)
async def test_method_returning_no_reply_names_the_method(
    impl: SampleBase, returned: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = App("forgetful")
    register_sample(app, impl)
    with caplog.at_level(logging.ERROR, logger="rony.server"):
        async with TestClient(app) as client:
            with pytest.raises(InternalError):
                await client.call(C_SampleEcho, EchoRequest(ID=1), EchoResponse)
    logged = "\n".join(f"{r.getMessage()}\n{r.exc_text or ''}" for r in caplog.records)
    name = type(impl).__qualname__
    assert f"TypeError: {name}.echo() {returned}" in logged
    assert "it must return an EchoResponse (or raise a RonyError)" in logged
    assert "AttributeError" not in logged
