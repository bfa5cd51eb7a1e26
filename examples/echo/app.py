"""The quick-start service: Go Rony's Sample.Echo. Run it with ``hatch run serve``
(``rony serve examples.echo.app:app --gateway 127.0.0.1:8080 --data-dir ./_data``)."""

from __future__ import annotations

from rony.core import RequestCtx
from rony.server import App

from .sample_pb2 import EchoRequest, EchoResponse
from .sample_rony import SampleBase, register_sample


class Sample(SampleBase):
    async def echo(self, ctx: RequestCtx, req: EchoRequest) -> EchoResponse:
        return EchoResponse(ReqID=req.ID, RandomText=req.RandomText)


app = App("echo")
register_sample(app, Sample())
