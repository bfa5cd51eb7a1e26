"""Rony glue for sample.proto, in the shape protoc-gen-rony generates (see the API contract).

Hand-written until the code generator lands; keep these names (C_SampleEcho, SampleBase,
register_sample, ...). Imports only rony.core at runtime, so a client-only program can use it.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Final

from rony.core import RequestCtx, method_id, registry

from .sample_pb2 import EchoRequest, EchoResponse

if TYPE_CHECKING:
    from rony.server import App, Edge, Handler

__all__ = [
    "C_EchoRequest",
    "C_EchoResponse",
    "C_SampleEcho",
    "SampleBase",
    "register_sample",
]

C_EchoRequest: Final = registry.register_message(EchoRequest)  # 634453994073422796
C_EchoResponse: Final = registry.register_message(EchoResponse)  # 10208763112635265787
C_SampleEcho: Final = method_id("Sample", "Echo")  # 5610266072904040111
registry.register(C_SampleEcho, "SampleEcho", EchoRequest)


class SampleBase(abc.ABC):
    """The Sample service: implement each method, then ``register_sample(app, impl)``."""

    @abc.abstractmethod
    async def echo(self, ctx: RequestCtx, req: EchoRequest) -> EchoResponse: ...


def register_sample(app: App | Edge, impl: SampleBase, *pre_handlers: Handler) -> None:
    """Register the Sample service's handlers (and its REST routes) on an App or Edge."""
    target = app.app if hasattr(app, "dispatcher") else app  # an Edge carries its App

    async def echo_wrapper(ctx: RequestCtx) -> None:
        req = ctx.message(EchoRequest)
        res = await impl.echo(ctx, req)
        if not ctx.stopped:
            ctx.push_message(res, constructor=C_EchoResponse)

    target.handle(
        C_SampleEcho,
        *pre_handlers,
        echo_wrapper,
        request_class=EchoRequest,
        service="Sample",
        method="Echo",
        internal=False,
    )
    target.rest(
        "get",
        "/echo/:ID/:Random",
        C_SampleEcho,
        EchoRequest,
        bind_path_param=("Random=RandomText",),
        bind_query_param=(),
        json_encode=True,
    )
