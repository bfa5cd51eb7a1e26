"""The service of the cgapi fixture (every kind of field), for the export and CLI tests."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from google.protobuf.message import Message

from rony.core import RequestCtx
from rony.core.errors import InvalidError
from rony.server import App


def cgapi_app(rony: ModuleType) -> App:
    class Api(rony.ApiBase):  # type: ignore[name-defined,misc]
        async def mirror(self, ctx: RequestCtx, req: Message) -> Message:
            return req

        async def fail(self, ctx: RequestCtx, req: Any) -> Message:
            raise InvalidError(req.text, "as asked")

        async def secret(self, ctx: RequestCtx, req: Message) -> Message:
            return req

    app = App("cgapi")
    rony.register_api(app, Api())
    return app
